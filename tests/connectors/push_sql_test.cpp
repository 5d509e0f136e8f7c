// The SQL of a sync view's push, without a server: compare-and-set against
// the base row, forced writes, values as text parameters, quoted names.

#include <optional>
#include <string>
#include <vector>

#include <boost/test/unit_test.hpp>

#include "connectors/postgres/push.hpp"

using namespace syncmesh::connectors::postgres;
using syncmesh::store::row;
using syncmesh::store::value;

namespace {

push_table items() {
  push_table t;
  t.schema = "public";
  t.name = "it\"ems";
  auto col = [](std::string name, std::uint32_t oid, std::string type) {
    column_info c;
    c.name = std::move(name);
    c.type_oid = oid;
    c.type_name = std::move(type);
    return c;
  };
  t.columns = {col("id", 20, "bigint"), col("title", 25, "text"), col("doc", 114, "json")};
  t.key = {0};
  return t;
}

using params = std::vector<std::optional<std::string>>;

} // namespace

BOOST_AUTO_TEST_SUITE(push_sql)

BOOST_AUTO_TEST_CASE(an_update_is_a_compare_and_set_on_every_column_of_its_base_row) {
  row base{value::integer(7), value::text("old"), value::exact("json", "{}")};
  auto s = update_from(items(), {value::integer(7), value::text("new"), value::null()}, &base);
  BOOST_TEST(s.sql
               == "UPDATE \"public\".\"it\"\"ems\" SET \"title\" = $1::text, \"doc\" = $2::json "
                  "WHERE \"id\" = $3::bigint AND \"id\" IS NOT DISTINCT FROM $4::bigint AND "
                  "\"title\" IS NOT DISTINCT FROM $5::text AND \"doc\"::text IS NOT DISTINCT FROM "
                  "$6::text",
             s.sql);
  BOOST_TEST((s.params == params{"new", std::nullopt, "7", "7", "old", "{}"}));
}

BOOST_AUTO_TEST_CASE(a_version_column_narrows_the_compare_and_set_to_itself) {
  auto t = items();
  t.version_column = 1;
  row base{value::integer(7), value::text("v1"), value::null()};
  auto s = delete_from(t, {value::integer(7)}, &base);
  BOOST_TEST(s.sql == "DELETE FROM \"public\".\"it\"\"ems\" WHERE \"id\" = $1::bigint AND \"title\" "
                      "IS NOT DISTINCT FROM $2::text",
             s.sql);
  BOOST_TEST((s.params == params{"7", "v1"}));
}

BOOST_AUTO_TEST_CASE(a_write_without_a_base_is_an_insert_that_conflicts_or_a_forced_upsert) {
  row r{value::integer(1), value::text("a"), value::null()};
  auto insert = insert_new(items(), r);
  BOOST_TEST(insert.sql.find("ON CONFLICT DO NOTHING") != std::string::npos, insert.sql);
  auto forced = update_from(items(), r, nullptr);
  BOOST_TEST(forced.sql.find("ON CONFLICT (\"id\") DO UPDATE SET \"title\" = EXCLUDED.\"title\", "
                             "\"doc\" = EXCLUDED.\"doc\"")
               != std::string::npos,
             forced.sql);
  auto del = delete_from(items(), {value::integer(1)}, nullptr);
  BOOST_TEST(del.sql == "DELETE FROM \"public\".\"it\"\"ems\" WHERE \"id\" = $1::bigint", del.sql);
}

// id GENERATED ALWAYS AS IDENTITY, len GENERATED ALWAYS AS (...) STORED.
BOOST_AUTO_TEST_CASE(an_identity_key_is_written_overriding_and_a_generated_column_never) {
  auto t = items();
  t.columns[0].identity_always = true;
  t.columns[2].generated = true;
  row r{value::integer(5), value::text("a"), value::null()};
  auto insert = insert_new(t, r);
  BOOST_TEST(insert.sql == "INSERT INTO \"public\".\"it\"\"ems\" (\"id\", \"title\") OVERRIDING "
                           "SYSTEM VALUE VALUES ($1::bigint, $2::text) ON CONFLICT DO NOTHING",
             insert.sql);
  BOOST_TEST((insert.params == params{"5", "a"}));
  auto forced = update_from(t, r, nullptr);
  BOOST_TEST(forced.sql.find("OVERRIDING SYSTEM VALUE VALUES ($1::bigint, $2::text) ON CONFLICT "
                             "(\"id\") DO UPDATE SET \"title\" = EXCLUDED.\"title\"")
               != std::string::npos,
             forced.sql);
  row base{value::integer(5), value::text("old"), value::integer(3)};
  auto update = update_from(t, r, &base);
  BOOST_TEST(update.sql == "UPDATE \"public\".\"it\"\"ems\" SET \"title\" = $1::text WHERE \"id\" = "
                           "$2::bigint AND \"id\" IS NOT DISTINCT FROM $3::bigint AND \"title\" IS "
                           "NOT DISTINCT FROM $4::text",
             update.sql);
  std::vector<bulk_write> writes(2);
  row k1{value::integer(5)}, k2{value::integer(6)};
  row r2{value::integer(6), value::text("b"), value::null()};
  writes[0].key = &k1;
  writes[0].row = &r;
  writes[1].key = &k2;
  writes[1].row = &r2;
  auto copied = copy_inserts(t, writes);
  BOOST_REQUIRE(copied.has_value());
  BOOST_TEST(copied->sql == "COPY \"public\".\"it\"\"ems\" (\"id\", \"title\") FROM STDIN", copied->sql);
  BOOST_TEST(copied->data == "5\ta\n6\tb\n", copied->data);
  auto bulk = bulk_statements(t, writes);
  BOOST_REQUIRE(bulk.size() == 1u);
  BOOST_TEST(bulk[0].stmt.sql.find("(\"id\", \"title\") OVERRIDING SYSTEM VALUE SELECT v.n0::bigint, "
                                   "v.n1::text FROM")
               != std::string::npos,
             bulk[0].stmt.sql);
}

BOOST_AUTO_TEST_CASE(an_identity_column_outside_the_key_is_inserted_but_never_updated) {
  auto t = items();
  t.columns[2].identity_always = true;  // "doc" stands in for a GENERATED ALWAYS identity
  row r{value::integer(5), value::text("a"), value::integer(9)};
  auto forced = update_from(t, r, nullptr);
  BOOST_TEST(forced.sql.find("OVERRIDING SYSTEM VALUE") != std::string::npos, forced.sql);
  BOOST_TEST(forced.sql.find("DO UPDATE SET \"title\" = EXCLUDED.\"title\"") != std::string::npos,
             forced.sql);
  BOOST_TEST(forced.sql.find("\"doc\" = EXCLUDED") == std::string::npos, forced.sql);
  auto update = update_from(t, r, &r);
  BOOST_TEST(update.sql.find("SET \"title\" = $1::text WHERE") != std::string::npos, update.sql);
}

BOOST_AUTO_TEST_CASE(a_table_of_key_columns_only_checks_its_base_with_a_locking_read) {
  push_table t;
  t.schema = "public";
  t.name = "tags";
  column_info c;
  c.name = "tag";
  c.type_oid = 25;
  c.type_name = "text";
  t.columns = {c};
  t.key = {0};
  row r{value::text("x")};
  auto update = update_from(t, r, &r);
  BOOST_TEST(update.sql == "SELECT 1 FROM \"public\".\"tags\" WHERE \"tag\" = $1::text AND \"tag\" IS "
                           "NOT DISTINCT FROM $2::text FOR UPDATE",
             update.sql);
  BOOST_TEST(update_from(t, r, nullptr).sql.find("DO NOTHING") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(values_travel_as_postgres_text_input) {
  BOOST_TEST(!text_for(value::null()).has_value());
  BOOST_TEST(*text_for(value::boolean(true)) == "t");
  BOOST_TEST(*text_for(value::integer(-42)) == "-42");
  BOOST_TEST(std::stod(*text_for(value::real(0.1))) == 0.1);  // reads back as the same double
  BOOST_TEST(*text_for(value::real(1.0 / 0.0)) == "Infinity");
  BOOST_TEST(*text_for(value::bytes(std::string("\x01\xff", 2))) == "\\x01ff");
  BOOST_TEST(*text_for(value::exact("numeric", "1.50")) == "1.50");
}

BOOST_AUTO_TEST_CASE(copy_fields_escape_what_copy_text_format_reads_specially) {
  std::string out;
  append_copy_field(out, std::string("a\tb\nc\rd\\e"));
  out.push_back('|');
  append_copy_field(out, std::nullopt);
  out.push_back('|');
  append_copy_field(out, std::string("\\N"));  // the text \N, not NULL
  BOOST_TEST(out == "a\\tb\\nc\\rd\\\\e|\\N|\\\\N");
}

BOOST_AUTO_TEST_CASE(a_batch_of_only_inserts_is_one_copy_of_its_rows_in_column_order) {
  auto t = items();
  row r1{value::integer(1), value::text("one"), value::null()};
  row r2{value::integer(2), value::text("two\tlines\n"), value::text("{}")};
  row k1{value::integer(1)}, k2{value::integer(2)};
  std::vector<bulk_write> ws(2);
  ws[0].key = &k1;
  ws[0].row = &r1;
  ws[1].key = &k2;
  ws[1].row = &r2;
  auto c = copy_inserts(t, ws);
  BOOST_REQUIRE(c);
  BOOST_TEST(c->sql == "COPY \"public\".\"it\"\"ems\" (\"id\", \"title\", \"doc\") FROM STDIN");
  BOOST_TEST(c->data == "1\tone\t\\N\n2\ttwo\\tlines\\n\t{}\n");
  BOOST_TEST(c->rows == 2u);
}

BOOST_AUTO_TEST_CASE(copy_lines_spell_every_kind_of_value_as_text_for_does) {
  auto t = items();
  std::vector<value> kinds{value::null(), value::boolean(true), value::boolean(false),
                           value::integer(-9223372036854775807LL - 1), value::integer(42),
                           value::real(0.1), value::real(-2.0), value::text(""),
                           value::text("plain"), value::text("tab\there\\ and \\N"),
                           value::bytes(std::string("\x00\xff\t", 3)),
                           value::exact("numeric", "12.50"), value::exact("json", "{\"a\":\"\\n\"}")};
  std::vector<row> rows, keys;
  for (std::size_t i = 0; i < kinds.size(); ++i) {
    rows.push_back({value::integer(static_cast<std::int64_t>(i)), kinds[i], kinds[kinds.size() - 1 - i]});
    keys.push_back({value::integer(static_cast<std::int64_t>(i))});
  }
  std::vector<bulk_write> ws(kinds.size());
  std::string expected;
  for (std::size_t i = 0; i < kinds.size(); ++i) {
    ws[i].key = &keys[i];
    ws[i].row = &rows[i];
    for (std::size_t c = 0; c < 3; ++c) {
      if (c)
        expected.push_back('\t');
      append_copy_field(expected, text_for(rows[i][c]));
    }
    expected.push_back('\n');
  }
  auto c = copy_inserts(t, ws);
  BOOST_REQUIRE(c);
  BOOST_TEST(c->data == expected);
}

BOOST_AUTO_TEST_CASE(a_batch_with_an_update_a_delete_or_a_key_twice_is_no_copy) {
  auto t = items();
  row r1{value::integer(1), value::text("one"), value::null()};
  row k1{value::integer(1)};
  bulk_write insert;
  insert.key = &k1;
  insert.row = &r1;
  auto update = insert;
  update.base = &r1;
  bulk_write remove;
  remove.remove = true;
  remove.key = &k1;
  remove.base = &r1;
  BOOST_TEST(!copy_inserts(t, {update}));
  BOOST_TEST(!copy_inserts(t, {remove}));
  BOOST_TEST(!copy_inserts(t, {insert, insert}));
  BOOST_TEST(copy_inserts(t, {insert}).has_value());
}

BOOST_AUTO_TEST_CASE(pushed_seqs_are_recorded_as_runs_naming_the_node_and_view) {
  BOOST_TEST((runs_of({}).empty()));
  auto runs = runs_of({3, 4, 5, 9, 11, 12});
  BOOST_TEST_REQUIRE(runs.size() == 3u);
  BOOST_TEST((runs[0] == seq_run{3, 5}));
  BOOST_TEST((runs[1] == seq_run{9, 9}));
  BOOST_TEST((runs[2] == seq_run{11, 12}));
  BOOST_TEST(covered(runs, 4));
  BOOST_TEST(covered(runs, 9));
  BOOST_TEST(!covered(runs, 6));
  BOOST_TEST(!covered(runs, 13));
  const pusher who{"n", "0123456789abcdef", "pg.orders"};
  BOOST_TEST(record_pushes(runs, who)
             == "INSERT INTO syncmesh.pushes (node, incarnation, view, first_seq, last_seq) VALUES "
                "(E'n', E'0123456789abcdef', E'pg.orders', 3, 5), "
                "(E'n', E'0123456789abcdef', E'pg.orders', 9, 9), "
                "(E'n', E'0123456789abcdef', E'pg.orders', 11, 12)");
  BOOST_TEST(recorded_pushes(who, 3, 12)
             == "(SELECT first_seq, last_seq FROM syncmesh.pushes WHERE (node, incarnation, view) = "
                "(E'n', E'0123456789abcdef', E'pg.orders') AND first_seq BETWEEN 3 AND 12) UNION ALL "
                "(SELECT first_seq, last_seq FROM syncmesh.pushes WHERE (node, incarnation, view) = "
                "(E'n', E'0123456789abcdef', E'pg.orders') AND first_seq < 3 ORDER BY first_seq DESC "
                "LIMIT 1)");
  // Names come from the config: quotes and backslashes stay inside the literal.
  const pusher odd{"it's", "0123456789abcdef", "a\\b"};
  BOOST_TEST(record_pushes({{1, 1}}, odd).find("(E'it\\'s', E'0123456789abcdef', E'a\\\\b', 1, 1)")
             != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
