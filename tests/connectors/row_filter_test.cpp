// View filters evaluated on decoded pgoutput rows: the comparisons each type
// makes in PostgreSQL, NULL, unchanged TOAST, and what is refused when a
// filter is compiled.

#include <optional>
#include <string>
#include <vector>

#include <boost/test/unit_test.hpp>

#include "connectors/postgres/row_filter.hpp"

using namespace syncmesh::connectors::postgres;
using syncmesh::store::errc;

namespace {

struct col {
  std::string name;
  std::uint32_t oid;
  std::string collation = "";
};

table_info table_of(const std::vector<col>& cols) {
  table_info t;
  t.oid = 16400;
  t.schema = "public";
  t.name = "items";
  for (const auto& c : cols) {
    column_info ci;
    ci.name = c.name;
    ci.type_oid = c.oid;
    ci.type_name = "oid " + std::to_string(c.oid);
    ci.collation = c.collation;
    t.columns.push_back(ci);
  }
  t.primary_key = {cols.front().name};
  return t;
}

relation relation_of(const table_info& t) {
  relation r;
  r.oid = t.oid;
  r.namespace_name = t.schema;
  r.name = t.name;
  for (const auto& c : t.columns) {
    relation_column rc;
    rc.name = c.name;
    rc.type_oid = c.type_oid;
    r.columns.push_back(rc);
  }
  return r;
}

// A tuple from texts: nullopt is NULL, "\x01u" marks an unchanged TOAST value.
tuple_data tuple_of(const std::vector<std::optional<std::string>>& texts) {
  tuple_data out;
  for (const auto& t : texts) {
    if (!t)
      out.push_back({column_kind::null, {}});
    else if (*t == "\x01u")
      out.push_back({column_kind::unchanged_toast, {}});
    else
      out.push_back({column_kind::text, *t});
  }
  return out;
}

const std::optional<std::string> null_value = std::nullopt;
const std::optional<std::string> unchanged = std::string("\x01u");

column_filter filter(const std::string& column, filter_op op, std::vector<std::string> values) {
  return column_filter{column, op, std::move(values)};
}

/// Compiles one filter on a two-column table (id int8, c of `oid`) and
/// evaluates it on c = `text`.
filter_verdict on(std::uint32_t oid, filter_op op, std::vector<std::string> values,
                  const std::optional<std::string>& text, const std::string& collation = "C") {
  auto t = table_of({{"id", 20}, {"c", oid, collation}});
  auto f = row_filter::compile({filter("c", op, std::move(values))}, t);
  BOOST_REQUIRE_MESSAGE(f.is_ok(), f.error().to_string());
  auto v = f->evaluate(relation_of(t), tuple_of({std::string("1"), text}));
  BOOST_REQUIRE_MESSAGE(v.is_ok(), v.error().to_string());
  return *v;
}

constexpr auto match = filter_verdict::match;
constexpr auto no_match = filter_verdict::no_match;

} // namespace

namespace syncmesh::connectors::postgres {
inline std::ostream& boost_test_print_type(std::ostream& out, filter_verdict v) {
  return out << (v == filter_verdict::match ? "match"
                 : v == filter_verdict::no_match ? "no_match" : "unknown");
}
} // namespace syncmesh::connectors::postgres

BOOST_AUTO_TEST_SUITE(row_filter_suite)

BOOST_AUTO_TEST_CASE(integers_compare_as_numbers_not_as_text) {
  BOOST_TEST(on(20, filter_op::lt, {"10"}, std::string("9")) == match);
  BOOST_TEST(on(20, filter_op::lt, {"10"}, std::string("10")) == no_match);
  BOOST_TEST(on(20, filter_op::le, {"10"}, std::string("10")) == match);
  BOOST_TEST(on(23, filter_op::gt, {"-5"}, std::string("-4")) == match);
  BOOST_TEST(on(21, filter_op::ge, {"+7"}, std::string("6")) == no_match);
  BOOST_TEST(on(20, filter_op::eq, {" 42 "}, std::string("42")) == match);
  BOOST_TEST(on(20, filter_op::in, {"1", "2", "100"}, std::string("100")) == match);
  BOOST_TEST(on(20, filter_op::in, {"1", "2", "100"}, std::string("3")) == no_match);
}

BOOST_AUTO_TEST_CASE(numerics_compare_exactly_whatever_their_scale_or_notation) {
  BOOST_TEST(on(1700, filter_op::lt, {"10"}, std::string("9.99")) == match);
  BOOST_TEST(on(1700, filter_op::lt, {"10"}, std::string("10.00")) == no_match);
  BOOST_TEST(on(1700, filter_op::eq, {"10"}, std::string("10.000")) == match);
  BOOST_TEST(on(1700, filter_op::eq, {"1e1"}, std::string("10.0")) == match);
  BOOST_TEST(on(1700, filter_op::gt, {"0.1"}, std::string("0.10000000000000000001")) == match);
  BOOST_TEST(on(1700, filter_op::lt, {"-1.5"}, std::string("-1.25")) == no_match);
  BOOST_TEST(on(1700, filter_op::lt, {"-1.25"}, std::string("-1.5")) == match);
  BOOST_TEST(on(1700, filter_op::eq, {"0"}, std::string("-0.00")) == match);
  BOOST_TEST(on(1700, filter_op::gt, {"123456789012345678901234567890"},
                std::string("123456789012345678901234567891")) == match);
  // NaN equals NaN and sorts above everything, Infinity included.
  BOOST_TEST(on(1700, filter_op::gt, {"Infinity"}, std::string("NaN")) == match);
  BOOST_TEST(on(1700, filter_op::eq, {"nan"}, std::string("NaN")) == match);
  BOOST_TEST(on(1700, filter_op::lt, {"-1e100"}, std::string("-Infinity")) == match);
}

BOOST_AUTO_TEST_CASE(floats_put_nan_above_everything_as_postgresql_does) {
  BOOST_TEST(on(701, filter_op::lt, {"0.5"}, std::string("0.25")) == match);
  BOOST_TEST(on(701, filter_op::gt, {"Infinity"}, std::string("NaN")) == match);
  BOOST_TEST(on(700, filter_op::eq, {"NaN"}, std::string("NaN")) == match);
  BOOST_TEST(on(701, filter_op::ge, {"1e+300"}, std::string("-Infinity")) == no_match);
}

BOOST_AUTO_TEST_CASE(booleans_accept_postgresql_spellings_and_false_sorts_first) {
  BOOST_TEST(on(16, filter_op::eq, {"true"}, std::string("t")) == match);
  BOOST_TEST(on(16, filter_op::eq, {"yes"}, std::string("f")) == no_match);
  BOOST_TEST(on(16, filter_op::eq, {"OFF"}, std::string("f")) == match);
  BOOST_TEST(on(16, filter_op::lt, {"true"}, std::string("f")) == match);
  BOOST_TEST(on(16, filter_op::in, {"0", "1"}, std::string("t")) == match);
}

BOOST_AUTO_TEST_CASE(text_compares_bytes_and_char_n_ignores_trailing_blanks) {
  BOOST_TEST(on(25, filter_op::eq, {"red"}, std::string("red")) == match);
  BOOST_TEST(on(25, filter_op::eq, {"red"}, std::string("Red")) == no_match);
  BOOST_TEST(on(25, filter_op::eq, {"red"}, std::string("red ")) == no_match);
  BOOST_TEST(on(1043, filter_op::in, {"a", "b"}, std::string("b")) == match);
  BOOST_TEST(on(25, filter_op::lt, {"b"}, std::string("B")) == match);  // 'B' < 'b' in C
  BOOST_TEST(on(25, filter_op::lt, {"b"}, std::string("ab")) == match);
  BOOST_TEST(on(1042, filter_op::eq, {"ab"}, std::string("ab   ")) == match);
  BOOST_TEST(on(2950, filter_op::eq, {"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"},
                std::string("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")) == match);
}

BOOST_AUTO_TEST_CASE(null_never_matches_not_even_a_range_or_an_in_list) {
  for (auto op : {filter_op::eq, filter_op::lt, filter_op::le, filter_op::gt, filter_op::ge})
    BOOST_TEST(on(20, op, {"1"}, null_value) == no_match);
  BOOST_TEST(on(20, filter_op::in, {"1", "2"}, null_value) == no_match);
  BOOST_TEST(on(25, filter_op::eq, {""}, null_value) == no_match);
  BOOST_TEST(on(25, filter_op::eq, {""}, std::string("")) == match);
  BOOST_TEST(on(16, filter_op::eq, {"false"}, null_value) == no_match);
}

BOOST_AUTO_TEST_CASE(every_filter_must_hold_and_an_unchanged_toast_value_is_unknown) {
  auto t = table_of({{"id", 20}, {"price", 1700}, {"kind", 25}, {"note", 25}});
  auto f = row_filter::compile({filter("price", filter_op::lt, {"10"}),
                                filter("kind", filter_op::in, {"a", "b"})},
                               t);
  BOOST_REQUIRE(f.is_ok());
  auto rel = relation_of(t);
  auto eval = [&](std::vector<std::optional<std::string>> row) {
    auto v = f->evaluate(rel, tuple_of(row));
    BOOST_REQUIRE(v.is_ok());
    return *v;
  };
  BOOST_TEST(eval({std::string("1"), std::string("5"), std::string("a"), unchanged}) == match);
  BOOST_TEST(eval({std::string("1"), std::string("50"), std::string("a"), null_value}) == no_match);
  BOOST_TEST(eval({std::string("1"), std::string("5"), std::string("c"), null_value}) == no_match);
  BOOST_TEST(eval({std::string("1"), std::string("5"), unchanged, null_value})
             == filter_verdict::unknown);
  // A false filter decides, whatever the unknown one would say.
  BOOST_TEST(eval({std::string("1"), std::string("50"), unchanged, null_value}) == no_match);
  BOOST_TEST(f->columns() == (std::vector<std::string>{"price", "kind"}));
  BOOST_TEST(row_filter{}.evaluate(rel, tuple_of({std::string("1"), null_value, null_value,
                                                  null_value}))
               .value()
             == match);
}

BOOST_AUTO_TEST_CASE(a_row_whose_text_is_not_of_its_type_is_corruption_naming_the_column) {
  auto t = table_of({{"id", 20}, {"n", 20}});
  auto f = row_filter::compile({filter("n", filter_op::eq, {"1"})}, t);
  BOOST_REQUIRE(f.is_ok());
  auto v = f->evaluate(relation_of(t), tuple_of({std::string("1"), std::string("one")}));
  BOOST_REQUIRE(!v.is_ok());
  BOOST_TEST(v.error().code() == errc::corruption);
  BOOST_TEST(v.error().message().find("'n'") != std::string::npos, v.error().message());
}

BOOST_AUTO_TEST_CASE(dates_compare_as_days_with_infinities_at_the_ends) {
  BOOST_TEST(on(1082, filter_op::lt, {"2024-03-01"}, std::string("2024-02-29")) == match);
  BOOST_TEST(on(1082, filter_op::lt, {"2024-03-01"}, std::string("2024-03-01")) == no_match);
  BOOST_TEST(on(1082, filter_op::ge, {"2024-3-1"}, std::string("2024-03-01")) == match);
  // A five-digit year is later than any four-digit one, as text would not say.
  BOOST_TEST(on(1082, filter_op::gt, {"9999-12-31"}, std::string("10000-01-01")) == match);
  BOOST_TEST(on(1082, filter_op::lt, {"0001-01-01"}, std::string("0001-12-31 BC")) == match);
  BOOST_TEST(on(1082, filter_op::gt, {"0044-03-15 BC"}, std::string("0043-01-01 BC")) == match);
  BOOST_TEST(on(1082, filter_op::gt, {"294276-12-31"}, std::string("infinity")) == match);
  BOOST_TEST(on(1082, filter_op::lt, {"0001-01-01 BC"}, std::string("-infinity")) == match);
  BOOST_TEST(on(1082, filter_op::eq, {"Infinity"}, std::string("infinity")) == match);
}

BOOST_AUTO_TEST_CASE(timestamps_compare_to_the_microsecond) {
  BOOST_TEST(on(1114, filter_op::ge, {"2024-01-01"}, std::string("2024-01-01 00:00:00")) == match);
  BOOST_TEST(on(1114, filter_op::lt, {"2024-01-01"}, std::string("2023-12-31 23:59:59.999999"))
             == match);
  BOOST_TEST(on(1114, filter_op::gt, {"2024-01-01 12:00:00.5"}, std::string("2024-01-01 12:00:00.500001"))
             == match);
  BOOST_TEST(on(1114, filter_op::eq, {"2024-01-01T12:00"}, std::string("2024-01-01 12:00:00"))
             == match);
  BOOST_TEST(on(1114, filter_op::eq, {"2024-01-01 24:00"}, std::string("2024-01-02 00:00:00"))
             == match);
  BOOST_TEST(on(1114, filter_op::lt, {"2024-01-01"}, std::string("-infinity")) == match);
  BOOST_TEST(on(1114, filter_op::in, {"2024-01-01 10:00", "2024-01-01 11:00"},
                std::string("2024-01-01 11:00:00")) == match);
}

// PostgreSQL prints a timestamptz in the session's TimeZone: the same instant
// arrives with any offset, and compares as that instant.
BOOST_AUTO_TEST_CASE(timestamptz_compare_as_instants_whatever_their_offset) {
  BOOST_TEST(on(1184, filter_op::eq, {"2024-01-01 00:00:00+00"},
                std::string("2024-01-01 05:30:00+05:30")) == match);
  BOOST_TEST(on(1184, filter_op::eq, {"2024-01-01T00:00:00Z"},
                std::string("2023-12-31 19:00:00-05")) == match);
  BOOST_TEST(on(1184, filter_op::lt, {"2024-01-01 00:00:00+00"},
                std::string("2024-01-01 00:59:59.999999+01")) == match);
  BOOST_TEST(on(1184, filter_op::ge, {"2024-01-01 00:00:00+0100"},
                std::string("2023-12-31 23:00:00+00")) == match);
  // Local mean time offsets carry seconds.
  BOOST_TEST(on(1184, filter_op::eq, {"1850-01-01 00:00:00+00"},
                std::string("1850-01-01 00:53:28+00:53:28")) == match);
  BOOST_TEST(on(1184, filter_op::gt, {"2024-01-01 00:00:00+00"}, std::string("infinity")) == match);
  BOOST_TEST(on(1184, filter_op::lt, {"2024-01-01 00:00:00+00"},
                std::string("0001-01-01 00:00:00+00 BC")) == match);
  // Text a timestamptz cannot have is corruption naming the column.
  auto t = table_of({{"id", 20}, {"at", 1184}});
  auto f = row_filter::compile({filter("at", filter_op::gt, {"2024-01-01 00:00+00"})}, t);
  BOOST_REQUIRE(f.is_ok());
  auto v = f->evaluate(relation_of(t), tuple_of({std::string("1"), std::string("01/02/2024")}));
  BOOST_REQUIRE(!v.is_ok());
  BOOST_TEST(v.error().message().find("column 'at'") != std::string::npos, v.error().message());
}

BOOST_AUTO_TEST_CASE(compiling_refuses_what_the_stream_cannot_evaluate_with_a_sentence) {
  auto t = table_of({{"id", 20}, {"at", 1184}, {"title", 25, "en_US.UTF-8"}, {"n", 23},
                     {"span", 1186}, {"day", 1082}});
  auto refused = [&](column_filter f, const std::string& says) {
    auto r = row_filter::compile({f}, t);
    BOOST_REQUIRE(!r.is_ok());
    BOOST_TEST(r.error().code() == errc::invalid_argument);
    BOOST_TEST(r.error().message().find(says) != std::string::npos, r.error().message());
  };
  refused(filter("colour", filter_op::eq, {"red"}), "no column 'colour'");
  refused(filter("span", filter_op::gt, {"1 day"}), "make the view materialized");
  refused(filter("at", filter_op::gt, {"2024-01-01"}), "with its UTC offset");
  refused(filter("at", filter_op::gt, {"2024-01-01 10:00"}), "session's TimeZone");
  refused(filter("at", filter_op::gt, {"yesterday"}), "not an ISO date");
  refused(filter("day", filter_op::eq, {"2024-02-30"}), "out of range");
  refused(filter("day", filter_op::eq, {"2024-02-01 10:00"}), "without a time");
  refused(filter("at", filter_op::eq, {"2024-02-01 10:00:00.1234567+00"}), "six fractional");
  refused(filter("title", filter_op::lt, {"m"}), "COLLATE \"C\"");
  refused(filter("n", filter_op::eq, {"1.5"}), "not an integer");
  refused(filter("n", filter_op::lt, {"1", "2"}), "exactly one");
  // Equality on text does not depend on the collation's order.
  BOOST_TEST(row_filter::compile({filter("title", filter_op::in, {"a"})}, t).is_ok());
  BOOST_TEST(byte_ordered_collation("C.UTF-8"));
  BOOST_TEST(byte_ordered_collation("POSIX"));
  BOOST_TEST(!byte_ordered_collation("en_US.utf8"));
}

BOOST_AUTO_TEST_SUITE_END()
