// COPY text encoded straight into stored rows: the same rows the slower path
// (parse the line, convert each field, encode the row) stores, and the same
// refusals.

#include <string>
#include <vector>

#include <boost/test/unit_test.hpp>

#include "connectors/postgres/copy_encoder.hpp"
#include "connectors/postgres/replication_stream.hpp"
#include "store/key_codec.hpp"
#include "store/record_codec.hpp"

using namespace syncmesh::connectors::postgres;
using namespace syncmesh;
using store::value_kind;

namespace {

// id int8 key, then one column of each type the encoder converts itself and
// two it leaves to to_value() (bytea, interval).
const std::vector<std::uint32_t> oids = {20, 23, 21, 16, 701, 700, 25, 2950,
                                         1700, 1184, 1082, 17, 1186};

store::schema shape() {
  store::schema s;
  s.table = "pg.items";
  const char* names[] = {"id", "i4", "i2", "flag", "f8", "f4", "title", "uid",
                         "price", "at", "day", "blob", "span"};
  for (std::size_t i = 0; i < oids.size(); ++i) {
    store::column c;
    c.name = names[i];
    c.nullable = i != 0;
    switch (oids[i]) {
      case 20: case 23: case 21: c.kind = value_kind::integer; break;
      case 16: c.kind = value_kind::boolean; break;
      case 701: case 700: c.kind = value_kind::real; break;
      case 25: case 2950: c.kind = value_kind::text; break;
      case 17: c.kind = value_kind::bytes; break;
      default:
        c.kind = value_kind::exact;
        c.type_name = oids[i] == 1700 ? "numeric" : oids[i] == 1184 ? "timestamptz"
                    : oids[i] == 1082 ? "date" : "interval";
    }
    s.columns.push_back(c);
  }
  s.primary_key = {0};
  return s;
}

// What the store stores for `line` when the row is built value by value.
std::string slow_path(const std::string& line, const store::schema& s = shape(),
                      const std::vector<std::uint32_t>& oids = ::oids) {
  auto fields = parse_copy_text_row(line);
  BOOST_REQUIRE(fields.is_ok());
  type_names names;
  store::row r;
  for (std::size_t i = 0; i < fields->size(); ++i) {
    if (!(*fields)[i]) {
      r.push_back(store::value::null());
      continue;
    }
    auto v = to_value(oids[i], *(*fields)[i], names);
    BOOST_REQUIRE_MESSAGE(v.is_ok(), v.error().to_string());
    if (v->kind() == value_kind::exact)
      r.push_back(store::value::exact(s.columns[i].type_name, v->as_exact().text));
    else
      r.push_back(*v);
  }
  return store::encode_key(s.key_of(r)) + "|" + store::encode_row(r);
}

} // namespace

BOOST_AUTO_TEST_SUITE(copy_encoder_rows)

BOOST_AUTO_TEST_CASE(copy_lines_encode_to_the_rows_the_value_path_stores) {
  const std::vector<std::string> lines = {
    "1\t2\t3\tt\t0.5\t1.25\titem one\ta0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\t12.30\t"
    "2026-11-23 17:49:06.123456+00\t2026-11-23\t\\\\x00ff\t1 day\n",
    "-9223372036854775808\t-2147483648\t-32768\tf\t-Infinity\tNaN\ttab\\there\\\\n\\N\t"
    "\\N\t-0.00\t\\N\t\\N\t\\\\x\t\\N",
    "9223372036854775807\t\\N\t\\N\t\\N\t2\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\n",
    "42\t0\t0\tt\t1e308\t0\t\\101\\x42\\n\t\\N\t1e5\tinfinity\t-infinity\t\\\\x41\t00:00:01"};
  copy_encoder enc(shape(), oids);
  for (const auto& line : lines) {
    auto st = enc.add_line(line);
    BOOST_REQUIRE_MESSAGE(st.is_ok(), st.to_string());
  }
  auto rows = enc.rows().take();
  BOOST_REQUIRE(rows->size() == lines.size());
  std::size_t i = 0;
  rows->for_each([&](std::string_view key, std::string_view val) {
    BOOST_TEST(std::string(key) + "|" + std::string(val) == slow_path(lines[i]), "line " << i);
    ++i;
  });
}

// A line without a backslash has no escape and no NULL: its fields are
// split in place, and must come out as the general parser's.
BOOST_AUTO_TEST_CASE(lines_without_a_backslash_encode_the_same_rows) {
  auto s = shape();
  s.columns.resize(11);  // up to `day`: the text of a bytea always holds a backslash
  std::vector<std::uint32_t> some(oids.begin(), oids.begin() + 11);
  const std::vector<std::string> lines = {
    "7\t8\t9\tf\t0.125\t-2\tplain text\t00000000-0000-0000-0000-000000000000\t0.1\t"
    "2024-01-01 00:00:00+05:30\t2024-01-01\n",
    "8\t1\t2\tt\t3\t4\t\tu\t5\t2024-01-01 00:00:00+00\t2024-01-02"};
  copy_encoder enc(s, some);
  for (const auto& line : lines) {
    auto st = enc.add_line(line);
    BOOST_REQUIRE_MESSAGE(st.is_ok(), st.to_string());
  }
  auto short_line = enc.add_line("9\t1\t2");
  BOOST_TEST(short_line.message().find("a row of 3 fields for 11 columns") != std::string::npos,
             short_line.message());
  auto rows = enc.rows().take();
  BOOST_REQUIRE(rows->size() == lines.size());
  std::size_t i = 0;
  rows->for_each([&](std::string_view key, std::string_view val) {
    BOOST_TEST(std::string(key) + "|" + std::string(val) == slow_path(lines[i], s, some),
               "line " << i);
    ++i;
  });
}

BOOST_AUTO_TEST_CASE(a_bad_line_is_refused_with_a_sentence_and_earlier_rows_stay) {
  copy_encoder enc(shape(), oids);
  const std::string good = "1\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N";
  BOOST_REQUIRE(enc.add_line(good).is_ok());

  auto out_of_range = enc.add_line("2\t2147483648\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N");
  BOOST_TEST(!out_of_range.is_ok());
  BOOST_TEST(out_of_range.message().find("out of range for int4") != std::string::npos,
             out_of_range.message());
  auto not_bool = enc.add_line("3\t\\N\t\\N\tyes\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N");
  BOOST_TEST(not_bool.message().find("neither 't' nor 'f'") != std::string::npos,
             not_bool.message());
  auto null_key = enc.add_line("\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N\t\\N");
  BOOST_TEST(null_key.message().find("key column 'id' is NULL") != std::string::npos, null_key.message());
  auto short_line = enc.add_line("4\t5");
  BOOST_TEST(short_line.message().find("a row of 2 fields for 13 columns") != std::string::npos,
             short_line.message());
  auto long_line = enc.add_line(good + "\textra");
  BOOST_TEST(long_line.message().find("a row of 14 fields for 13 columns") != std::string::npos,
             long_line.message());
  auto lone_backslash = enc.add_line("5\t\\");
  BOOST_TEST(lone_backslash.message().find("lone backslash") != std::string::npos,
             lone_backslash.message());

  auto rows = enc.rows().take();
  BOOST_TEST(rows->size() == 1u);
  rows->for_each([&](std::string_view key, std::string_view val) {
    BOOST_TEST(std::string(key) + "|" + std::string(val) == slow_path(good));
  });
}

BOOST_AUTO_TEST_SUITE_END()
