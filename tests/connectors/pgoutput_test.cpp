#include <libpq-fe.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include <boost/test/unit_test.hpp>

#include "connectors/postgres/pgoutput.hpp"
#include "scenarios/postgres_server.hpp"
#include "tests/store/seed.hpp"

using namespace syncmesh::connectors::postgres;
using syncmesh::store::errc;
using syncmesh::store::value;

namespace {

/// Builds a pgoutput message the way PostgreSQL's proto.c writes one:
/// big-endian integers, zero-terminated strings.
class wire {
public:
  explicit wire(char type) { out_.push_back(type); }

  wire& u8(std::uint8_t v) {
    out_.push_back(static_cast<char>(v));
    return *this;
  }
  wire& i16(std::int16_t v) { return big(static_cast<std::uint16_t>(v), 2); }
  wire& u32(std::uint32_t v) { return big(v, 4); }
  wire& i32(std::int32_t v) { return big(static_cast<std::uint32_t>(v), 4); }
  wire& u64(std::uint64_t v) { return big(v, 8); }
  wire& i64(std::int64_t v) { return big(static_cast<std::uint64_t>(v), 8); }
  wire& str(std::string_view s) {
    out_.append(s);
    out_.push_back('\0');
    return *this;
  }
  wire& raw(std::string_view s) {
    out_.append(s);
    return *this;
  }

  // Tuple columns.
  wire& null_col() { return u8('n'); }
  wire& unchanged_col() { return u8('u'); }
  wire& text_col(std::string_view s) {
    u8('t').i32(static_cast<std::int32_t>(s.size()));
    return raw(s);
  }

  const std::string& bytes() const { return out_; }

private:
  wire& big(std::uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i)
      out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    return *this;
  }

  std::string out_;
};

constexpr std::uint32_t items_oid = 16385;

std::string a_begin() { return wire('B').u64(0x16B3748).i64(757'000'000'123'456).u32(734).bytes(); }

std::string a_commit() {
  return wire('C').u8(0).u64(0x16B3748).u64(0x16B3778).i64(757'000'000'123'456).bytes();
}

std::string an_origin() { return wire('O').u64(0x1'0000'0042).str("node_a").bytes(); }

std::string a_relation() {
  return wire('R')
    .u32(items_oid)
    .str("public")
    .str("items")
    .u8('d')
    .i16(3)
    .u8(1).str("id").u32(20).i32(-1)
    .u8(0).str("name").u32(25).i32(-1)
    .u8(0).str("price").u32(1700).i32((10 << 16 | 2) + 4)
    .bytes();
}

std::string a_type() { return wire('Y').u32(16390).str("public").str("mood").bytes(); }

std::string an_insert() {
  return wire('I').u32(items_oid).u8('N').i16(3).text_col("1").null_col().unchanged_col().bytes();
}

std::string an_update_of_the_new_row_only() {
  return wire('U').u32(items_oid).u8('N').i16(3).text_col("1").text_col("ada").unchanged_col()
    .bytes();
}

std::string an_update_with_the_old_key() {
  return wire('U')
    .u32(items_oid)
    .u8('K').i16(3).text_col("1").null_col().null_col()
    .u8('N').i16(3).text_col("2").text_col("ada").text_col("12.50")
    .bytes();
}

std::string an_update_with_the_old_row() {
  return wire('U')
    .u32(items_oid)
    .u8('O').i16(3).text_col("1").text_col("ada").text_col("12.50")
    .u8('N').i16(3).text_col("1").text_col("ada lovelace").text_col("12.50")
    .bytes();
}

std::string a_delete_by_key() {
  return wire('D').u32(items_oid).u8('K').i16(3).text_col("3").null_col().null_col().bytes();
}

std::string a_delete_with_the_old_row() {
  return wire('D').u32(items_oid).u8('O').i16(3).text_col("3").text_col("").text_col("1.00")
    .bytes();
}

std::string a_truncate_of_three_relations() {
  return wire('T').i32(3).u8(3).u32(items_oid).u32(16400).u32(16410).bytes();
}

std::string a_logical_message() {
  return wire('M').u8(1).u64(0x16B3800).str("syncmesh").i32(5).raw(std::string("he\0lo", 5))
    .bytes();
}

/// Every well-formed sample, for the tests that damage them.
std::vector<std::string> every_sample() {
  return {a_begin(),
          a_commit(),
          an_origin(),
          a_relation(),
          a_type(),
          an_insert(),
          an_update_of_the_new_row_only(),
          an_update_with_the_old_key(),
          an_update_with_the_old_row(),
          a_delete_by_key(),
          a_delete_with_the_old_row(),
          a_truncate_of_three_relations(),
          a_logical_message()};
}

/// What a decode gave, for a failure message; safe to call either way
/// (Boost.Test evaluates a message's operands even when the check passes).
std::string shown(const syncmesh::store::result<pg_message>& r) {
  return r.is_ok() ? "decoded " + describe(*r) : r.error().to_string();
}

std::string shown(const syncmesh::store::result<value>& r) {
  return r.is_ok() ? "converted to " + r->to_display() : r.error().to_string();
}

template <class T>
T decoded_as(std::string_view payload) {
  auto r = decode(payload);
  BOOST_REQUIRE_MESSAGE(r.is_ok(), r.error().to_string());
  BOOST_REQUIRE_MESSAGE(std::holds_alternative<T>(*r), "decoded " << describe(*r));
  return std::get<T>(std::move(r).value());
}

/// Asserts that `payload` is refused as corruption with every phrase in the
/// error message.
void expect_corruption(std::string_view payload, std::initializer_list<std::string> phrases) {
  auto r = decode(payload);
  BOOST_REQUIRE_MESSAGE(!r.is_ok(), shown(r));
  BOOST_TEST((r.error().code() == errc::corruption), r.error().to_string());
  for (const auto& phrase : phrases)
    BOOST_TEST(r.error().message().find(phrase) != std::string::npos,
               "'" << phrase << "' missing from: " << r.error().message());
}

tuple_column text(std::string s) { return {column_kind::text, std::move(s)}; }
const tuple_column null_column{column_kind::null, ""};
const tuple_column unchanged{column_kind::unchanged_toast, ""};

} // namespace

BOOST_AUTO_TEST_SUITE(pgoutput_decode)

BOOST_AUTO_TEST_CASE(a_begin_carries_the_final_lsn_the_commit_time_and_the_xid) {
  auto b = decoded_as<begin_message>(a_begin());
  BOOST_TEST(b.final_lsn == 0x16B3748u);
  BOOST_TEST(b.commit_time_us == 757'000'000'123'456);
  BOOST_TEST(b.xid == 734u);
  BOOST_TEST(describe(b) == "Begin xid 734, final LSN 0/16B3748, committed "
                            "2023-12-27 13:46:40.123456 UTC");
}

BOOST_AUTO_TEST_CASE(a_commit_carries_its_flags_both_lsns_and_the_commit_time) {
  auto c = decoded_as<commit_message>(a_commit());
  BOOST_TEST(c.flags == 0u);
  BOOST_TEST(c.commit_lsn == 0x16B3748u);
  BOOST_TEST(c.end_lsn == 0x16B3778u);
  BOOST_TEST(c.commit_time_us == 757'000'000'123'456);
  BOOST_TEST(to_string(kind_of(c)) == std::string("Commit"));
}

BOOST_AUTO_TEST_CASE(an_origin_names_the_replication_origin_and_its_lsn) {
  auto o = decoded_as<origin_message>(an_origin());
  BOOST_TEST(o.origin_lsn == 0x1'0000'0042u);
  BOOST_TEST(o.name == "node_a");
  BOOST_TEST(describe(o) == "Origin 'node_a' at 1/42");
}

BOOST_AUTO_TEST_CASE(a_relation_describes_its_columns_with_key_flags_types_and_modifiers) {
  auto r = decoded_as<relation>(a_relation());
  BOOST_TEST(r.oid == items_oid);
  BOOST_TEST(r.namespace_name == "public");
  BOOST_TEST(r.name == "items");
  BOOST_TEST(r.replica_identity == 'd');
  BOOST_REQUIRE(r.columns.size() == 3u);
  BOOST_TEST(r.columns[0].is_key());
  BOOST_TEST(r.columns[0].name == "id");
  BOOST_TEST(r.columns[0].type_oid == 20u);
  BOOST_TEST(r.columns[0].type_modifier == -1);
  BOOST_TEST(!r.columns[1].is_key());
  BOOST_TEST(r.columns[1].name == "name");
  BOOST_TEST(r.columns[2].type_oid == 1700u);
  BOOST_TEST(r.columns[2].type_modifier == (10 << 16 | 2) + 4);
  BOOST_TEST(describe(r) == "Relation 16385 public.items, replica identity default, "
                            "columns (id key, name, price)");
}

BOOST_AUTO_TEST_CASE(a_relation_without_columns_decodes) {
  auto r = decoded_as<relation>(wire('R').u32(7).str("").str("empty").u8('n').i16(0).bytes());
  BOOST_TEST(r.namespace_name.empty());
  BOOST_TEST(r.replica_identity == 'n');
  BOOST_TEST(r.columns.empty());
}

BOOST_AUTO_TEST_CASE(a_type_names_a_type_that_is_not_built_in) {
  auto t = decoded_as<type_message>(a_type());
  BOOST_TEST(t.oid == 16390u);
  BOOST_TEST(t.namespace_name == "public");
  BOOST_TEST(t.name == "mood");
}

BOOST_AUTO_TEST_CASE(an_insert_carries_text_null_and_unchanged_toast_columns) {
  auto i = decoded_as<insert_message>(an_insert());
  BOOST_TEST(i.relation_oid == items_oid);
  BOOST_TEST((i.new_tuple == tuple_data{text("1"), null_column, unchanged}));
  BOOST_TEST(describe(i) == "Insert into 16385 new ('1', null, unchanged)");
}

BOOST_AUTO_TEST_CASE(an_empty_text_column_is_text_not_null) {
  auto i = decoded_as<insert_message>(wire('I').u32(1).u8('N').i16(1).text_col("").bytes());
  BOOST_TEST((i.new_tuple == tuple_data{text("")}));
}

BOOST_AUTO_TEST_CASE(an_update_that_keeps_the_key_carries_only_the_new_row) {
  auto u = decoded_as<update_message>(an_update_of_the_new_row_only());
  BOOST_TEST((u.old_kind == old_tuple_kind::none));
  BOOST_TEST(u.old_tuple.empty());
  BOOST_TEST((u.new_tuple == tuple_data{text("1"), text("ada"), unchanged}));
}

BOOST_AUTO_TEST_CASE(an_update_that_changes_the_key_carries_the_old_key) {
  auto u = decoded_as<update_message>(an_update_with_the_old_key());
  BOOST_TEST((u.old_kind == old_tuple_kind::key));
  BOOST_TEST((u.old_tuple == tuple_data{text("1"), null_column, null_column}));
  BOOST_TEST((u.new_tuple == tuple_data{text("2"), text("ada"), text("12.50")}));
  BOOST_TEST(describe(u) == "Update 16385 key ('1', null, null) new ('2', 'ada', '12.50')");
}

BOOST_AUTO_TEST_CASE(an_update_of_a_replica_identity_full_table_carries_the_old_row) {
  auto u = decoded_as<update_message>(an_update_with_the_old_row());
  BOOST_TEST((u.old_kind == old_tuple_kind::full));
  BOOST_TEST((u.old_tuple == tuple_data{text("1"), text("ada"), text("12.50")}));
  BOOST_TEST((u.new_tuple == tuple_data{text("1"), text("ada lovelace"), text("12.50")}));
}

BOOST_AUTO_TEST_CASE(a_delete_carries_the_key_or_the_whole_old_row) {
  auto by_key = decoded_as<delete_message>(a_delete_by_key());
  BOOST_TEST(by_key.relation_oid == items_oid);
  BOOST_TEST((by_key.old_kind == old_tuple_kind::key));
  BOOST_TEST((by_key.old_tuple == tuple_data{text("3"), null_column, null_column}));

  auto full = decoded_as<delete_message>(a_delete_with_the_old_row());
  BOOST_TEST((full.old_kind == old_tuple_kind::full));
  BOOST_TEST((full.old_tuple == tuple_data{text("3"), text(""), text("1.00")}));
  BOOST_TEST(describe(full) == "Delete from 16385 old ('3', '', '1.00')");
}

BOOST_AUTO_TEST_CASE(a_truncate_lists_every_relation_and_its_options) {
  auto t = decoded_as<truncate_message>(a_truncate_of_three_relations());
  BOOST_TEST((t.relation_oids == std::vector<std::uint32_t>{items_oid, 16400, 16410}));
  BOOST_TEST(t.cascade());
  BOOST_TEST(t.restart_identity());
  BOOST_TEST(describe(t) == "Truncate 16385, 16400, 16410 cascade restart identity");

  auto plain = decoded_as<truncate_message>(wire('T').i32(1).u8(0).u32(items_oid).bytes());
  BOOST_TEST(!plain.cascade());
  BOOST_TEST(!plain.restart_identity());
}

BOOST_AUTO_TEST_CASE(a_logical_message_carries_its_prefix_and_binary_content) {
  auto m = decoded_as<logical_message>(a_logical_message());
  BOOST_TEST(m.transactional);
  BOOST_TEST(m.message_lsn == 0x16B3800u);
  BOOST_TEST(m.prefix == "syncmesh");
  BOOST_TEST(m.content == std::string("he\0lo", 5));
  BOOST_TEST(describe(m) == "Message transactional prefix 'syncmesh' at 0/16B3800, 5 bytes");
}

BOOST_AUTO_TEST_CASE(every_kind_is_named_as_postgresql_names_it) {
  const std::vector<std::string> names{"Begin",  "Commit", "Origin", "Relation", "Type",
                                       "Insert", "Update", "Update", "Update",   "Delete",
                                       "Delete", "Truncate", "Message"};
  const auto samples = every_sample();
  BOOST_REQUIRE(samples.size() == names.size());
  for (std::size_t i = 0; i < samples.size(); ++i) {
    auto m = decode(samples[i]);
    BOOST_REQUIRE_MESSAGE(m.is_ok(), m.error().to_string());
    BOOST_TEST(to_string(kind_of(*m)) == names[i]);
    BOOST_TEST(static_cast<char>(kind_of(*m)) == samples[i][0]);
  }
}

BOOST_AUTO_TEST_CASE(describe_shortens_long_text_for_a_log_line) {
  const std::string big(100'000, 'x');
  auto i = decoded_as<insert_message>(wire('I').u32(1).u8('N').i16(1).text_col(big).bytes());
  const std::string line = describe(i);
  BOOST_TEST(line.size() < 100u, line);
  BOOST_TEST(line.find("100000 bytes") != std::string::npos, line);

  // A cut never splits a UTF-8 character.
  std::string accents = "x";
  for (int k = 0; k < 100; ++k)
    accents += "\u00e9";
  auto j = decoded_as<insert_message>(wire('I').u32(1).u8('N').i16(1).text_col(accents).bytes());
  BOOST_TEST(describe(j) == "Insert into 1 new ('x" + accents.substr(1, 30) + "…' (201 bytes))");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(pgoutput_damaged_input)

BOOST_AUTO_TEST_CASE(every_message_cut_short_anywhere_is_corruption_naming_its_type) {
  for (const auto& sample : every_sample()) {
    const std::string name = to_string(kind_of(*decode(sample)));
    for (std::size_t len = 1; len < sample.size(); ++len) {
      BOOST_TEST_CONTEXT(name << " cut to " << len << " of " << sample.size() << " bytes") {
        expect_corruption(std::string_view(sample).substr(0, len),
                          {"pgoutput " + name + " message is"});
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(a_cut_names_the_field_it_fell_in_and_the_offset) {
  expect_corruption(a_begin().substr(0, 9 + 3),
                    {"Begin message is cut off", "commit timestamp", "offset 9",
                     "only 3 of the 12-byte payload are left"});
  expect_corruption(a_commit().substr(0, 1), {"Commit message is cut off", "flags"});
  expect_corruption(a_relation().substr(0, 5 + 7 + 6 + 1),
                    {"Relation message is cut off", "column count"});
  // Insert: type, oid, 'N', count, 't' len "1", 'n', then column 3's kind.
  expect_corruption(an_insert().substr(0, 1 + 4 + 1 + 2 + 6 + 1),
                    {"Insert message is cut off", "kind byte of column 3 in the new tuple"});
  expect_corruption(an_update_with_the_old_key().substr(0, 1 + 4 + 1 + 1),
                    {"Update message is cut off", "column count of the old key"});
  expect_corruption(a_truncate_of_three_relations().substr(0, 5),
                    {"Truncate message is cut off", "options"});
}

BOOST_AUTO_TEST_CASE(a_string_without_its_terminating_zero_is_corruption) {
  expect_corruption(wire('O').u64(1).raw("node_a").bytes(),
                    {"Origin message is damaged", "origin name", "no terminating zero"});
  expect_corruption(wire('Y').u32(1).str("public").raw("mood").bytes(),
                    {"Type message", "type name", "no terminating zero"});
}

BOOST_AUTO_TEST_CASE(an_empty_payload_is_corruption) {
  expect_corruption("", {"empty"});
}

BOOST_AUTO_TEST_CASE(bytes_after_a_complete_message_are_corruption) {
  for (const auto& sample : every_sample()) {
    const std::string name = to_string(kind_of(*decode(sample)));
    BOOST_TEST_CONTEXT(name) {
      expect_corruption(sample + "x", {"pgoutput " + name + " message", "1 byte left over"});
    }
  }
}

BOOST_AUTO_TEST_CASE(an_unknown_type_byte_is_corruption_naming_the_byte) {
  expect_corruption("Z", {"type 'Z' (0x5a)", "unknown"});
  expect_corruption(std::string(1, '\0') + "abc", {"type 0x00", "unknown"});
  expect_corruption(std::string(1, '\xff'), {"type 0xff"});
}

BOOST_AUTO_TEST_CASE(a_streaming_message_says_the_stream_must_use_protocol_version_1) {
  expect_corruption(wire('S').u32(734).u8(1).bytes(),
                    {"Stream Start", "not part of protocol version 1", "proto_version '1'"});
}

BOOST_AUTO_TEST_CASE(a_bad_tuple_column_kind_is_corruption_naming_the_column) {
  expect_corruption(wire('I').u32(1).u8('N').i16(2).text_col("1").u8('x').bytes(),
                    {"Insert message is damaged", "kind byte of column 2 in the new tuple",
                     "'x' (0x78)", "'n' (null), 'u' (unchanged TOAST) or 't' (text)"});
  expect_corruption(wire('D').u32(1).u8('K').i16(1).u8(0).bytes(),
                    {"Delete message", "column 1 in the old key", "0x00"});
}

BOOST_AUTO_TEST_CASE(a_binary_column_is_refused_with_what_to_do) {
  expect_corruption(wire('I').u32(1).u8('N').i16(1).u8('b').i32(4).u32(7).bytes(),
                    {"binary format", "without the 'binary' option"});
}

BOOST_AUTO_TEST_CASE(a_length_past_the_end_is_corruption_not_a_read_past_the_buffer) {
  expect_corruption(wire('I').u32(1).u8('N').i16(1).u8('t').i32(10).raw("abc").bytes(),
                    {"Insert message is cut off", "text of column 1 in the new tuple",
                     "needs 10 bytes", "only 3 of the 16-byte payload are left"});
  expect_corruption(wire('I').u32(1).u8('N').i16(1).u8('t').i32(0x7fffffff).raw("abc").bytes(),
                    {"needs 2147483647 bytes"});
  expect_corruption(wire('M').u8(0).u64(1).str("p").i32(100).raw("short").bytes(),
                    {"Message message is cut off", "content", "needs 100 bytes"});
  // A count that promises more columns than bytes remain.
  expect_corruption(wire('I').u32(1).u8('N').i16(32767).bytes(),
                    {"Insert message is cut off", "kind byte of column 1 in the new tuple"});
  expect_corruption(wire('R').u32(1).str("s").str("t").u8('d').i16(32767).bytes(),
                    {"Relation message is cut off", "column flags"});
  expect_corruption(wire('T').i32(0x7fffffff).u8(0).u32(1).bytes(),
                    {"Truncate message is damaged", "relation count is 2147483647",
                     "only 4 bytes of 4-byte relation oids follow"});
}

BOOST_AUTO_TEST_CASE(a_negative_length_or_count_is_corruption) {
  expect_corruption(wire('I').u32(1).u8('N').i16(1).u8('t').i32(-1).bytes(),
                    {"text length of column 1 in the new tuple is -1", "negative"});
  expect_corruption(wire('I').u32(1).u8('N').i16(-2).bytes(),
                    {"column count of the new tuple is -2"});
  expect_corruption(wire('R').u32(1).str("s").str("t").u8('d').i16(-1).bytes(),
                    {"Relation message", "column count is -1"});
  expect_corruption(wire('T').i32(-3).u8(0).bytes(), {"Truncate message", "relation count is -3"});
  expect_corruption(wire('M').u8(0).u64(1).str("p").i32(-5).bytes(),
                    {"Message message", "content length is -5"});
}

BOOST_AUTO_TEST_CASE(a_wrong_tuple_marker_is_corruption_saying_which_belongs) {
  expect_corruption(wire('I').u32(1).u8('K').i16(0).bytes(),
                    {"Insert message is damaged", "new tuple marker is 'K'", "'N' belongs"});
  expect_corruption(wire('U').u32(1).u8('X').i16(0).bytes(),
                    {"Update message", "tuple marker is 'X'",
                     "'K' (old key), 'O' (old tuple) or 'N'"});
  expect_corruption(wire('U').u32(1).u8('K').i16(0).u8('O').i16(0).bytes(),
                    {"Update message", "new tuple marker is 'O'"});
  expect_corruption(wire('D').u32(1).u8('N').i16(0).bytes(),
                    {"Delete message", "old tuple marker is 'N'"});
}

BOOST_AUTO_TEST_CASE(an_unknown_replica_identity_is_corruption) {
  expect_corruption(wire('R').u32(1).str("s").str("t").u8('q').i16(0).bytes(),
                    {"Relation message", "replica identity is 'q'"});
}

BOOST_AUTO_TEST_CASE(random_and_mutated_bytes_never_crash_and_fail_only_as_corruption) {
  std::mt19937_64 rng(syncmesh::test::test_seed());
  const auto samples = every_sample();
  const std::string type_bytes = "BCORYIUDTMSxw";
  std::size_t refused = 0;
  for (int round = 0; round < 20'000; ++round) {
    std::string payload;
    if (round % 2 == 0) {
      // A valid message with a few bytes overwritten, dropped or appended.
      payload = samples[rng() % samples.size()];
      const int edits = 1 + static_cast<int>(rng() % 3);
      for (int e = 0; e < edits && !payload.empty(); ++e) {
        const std::size_t at = rng() % payload.size();
        switch (rng() % 3) {
          case 0: payload[at] = static_cast<char>(rng()); break;
          case 1: payload.erase(at, 1 + rng() % 4); break;
          default: payload.insert(at, 1, static_cast<char>(rng())); break;
        }
      }
    } else {
      payload.push_back(type_bytes[rng() % type_bytes.size()]);
      const std::size_t len = rng() % 40;
      for (std::size_t i = 0; i < len; ++i)
        payload.push_back(static_cast<char>(rng() % 4 == 0 ? 0 : rng()));
    }
    auto r = decode(payload);
    if (r.is_ok()) {
      (void)describe(*r);
    } else {
      ++refused;
      BOOST_TEST_REQUIRE((r.error().code() == errc::corruption), r.error().to_string());
      BOOST_TEST_REQUIRE(r.error().message().find("pgoutput") != std::string::npos);
    }
  }
  BOOST_TEST(refused > 10'000u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(pgoutput_relations_and_values)

BOOST_AUTO_TEST_CASE(the_relation_cache_keeps_the_latest_description_of_each_oid) {
  relation_cache cache;
  BOOST_TEST(cache.find(items_oid) == nullptr);

  auto first = decoded_as<relation>(a_relation());
  cache.update(first);
  BOOST_REQUIRE(cache.find(items_oid) != nullptr);
  BOOST_TEST(cache.find(items_oid)->columns.size() == 3u);

  // ALTER TABLE ... DROP COLUMN price: the stream describes the table again.
  auto altered = first;
  altered.columns.pop_back();
  cache.update(altered);
  BOOST_TEST(cache.size() == 1u);
  BOOST_TEST(cache.find(items_oid)->columns.size() == 2u);
  BOOST_TEST(cache.find(items_oid + 1) == nullptr);
}

BOOST_AUTO_TEST_CASE(booleans_integers_and_reals_become_their_own_kinds) {
  const type_names names;
  BOOST_TEST((*to_value(16, "t", names) == value::boolean(true)));
  BOOST_TEST((*to_value(16, "f", names) == value::boolean(false)));
  BOOST_TEST((*to_value(21, "-32768", names) == value::integer(-32768)));
  BOOST_TEST((*to_value(23, "2147483647", names) == value::integer(2147483647)));
  BOOST_TEST((*to_value(20, "-9223372036854775808", names)
              == value::integer(INT64_MIN)));
  BOOST_TEST((*to_value(701, "0.25", names) == value::real(0.25)));
  BOOST_TEST((*to_value(700, "-1.5e+30", names) == value::real(-1.5e30)));
  BOOST_TEST(to_value(701, "Infinity", names)->as_real() > 1e308);
  BOOST_TEST(to_value(701, "-Infinity", names)->as_real() < -1e308);
  const double nan = to_value(701, "NaN", names)->as_real();
  BOOST_TEST((nan != nan));
}

BOOST_AUTO_TEST_CASE(text_like_types_and_uuid_become_text) {
  const type_names names;
  for (std::uint32_t oid : {25u, 1043u, 1042u, 19u})
    BOOST_TEST((*to_value(oid, "ada 'the' first", names) == value::text("ada 'the' first")));
  BOOST_TEST((*to_value(2950, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", names)
              == value::text("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11")));
}

BOOST_AUTO_TEST_CASE(bytea_hex_text_becomes_bytes) {
  const type_names names;
  BOOST_TEST((*to_value(17, "\\xdeadBEEF00", names)
              == value::bytes(std::string("\xde\xad\xbe\xef\0", 5))));
  BOOST_TEST((*to_value(17, "\\x", names) == value::bytes("")));
}

BOOST_AUTO_TEST_CASE(numeric_time_and_json_types_stay_exact_under_their_type_name) {
  const type_names names;
  BOOST_TEST((*to_value(1700, "12.50", names) == value::exact("numeric", "12.50")));
  BOOST_TEST((*to_value(1114, "2024-01-02 03:04:05", names)
              == value::exact("timestamp", "2024-01-02 03:04:05")));
  BOOST_TEST((*to_value(1184, "2024-01-02 03:04:05+00", names)
              == value::exact("timestamptz", "2024-01-02 03:04:05+00")));
  BOOST_TEST((*to_value(1082, "2024-01-02", names) == value::exact("date", "2024-01-02")));
  BOOST_TEST((*to_value(1083, "03:04:05", names) == value::exact("time", "03:04:05")));
  BOOST_TEST((*to_value(114, "{\"a\":1}", names) == value::exact("json", "{\"a\":1}")));
  BOOST_TEST((*to_value(3802, "{\"a\": 1}", names) == value::exact("jsonb", "{\"a\": 1}")));
}

BOOST_AUTO_TEST_CASE(other_types_are_exact_under_a_built_in_name_the_stream_s_name_or_the_oid) {
  type_names names;
  BOOST_TEST((*to_value(1186, "1 day", names) == value::exact("interval", "1 day")));
  BOOST_TEST((*to_value(1007, "{1,2}", names) == value::exact("int4[]", "{1,2}")));
  BOOST_TEST((*to_value(16390, "happy", names) == value::exact("oid:16390", "happy")));
  names.update(decoded_as<type_message>(a_type()));
  BOOST_TEST((*to_value(16390, "happy", names) == value::exact("public.mood", "happy")));
  names.update(type_message{16391, "", "catalog_type"});
  BOOST_TEST(names.name_of(16391) == "catalog_type");
}

BOOST_AUTO_TEST_CASE(text_a_type_cannot_have_is_corruption_naming_type_and_text) {
  const type_names names;
  auto expect_bad = [&](std::uint32_t oid, std::string_view text, std::string phrase) {
    auto r = to_value(oid, text, names);
    BOOST_REQUIRE_MESSAGE(!r.is_ok(), std::string(text) << " " << shown(r));
    BOOST_TEST((r.error().code() == errc::corruption), r.error().to_string());
    BOOST_TEST(r.error().message() == phrase);
  };
  expect_bad(20, "abc", "int8 text 'abc' is not an integer");
  expect_bad(20, "", "int8 text '' is not an integer");
  expect_bad(20, "12 ", "int8 text '12 ' is not an integer");
  expect_bad(20, "1.5", "int8 text '1.5' is not an integer");
  expect_bad(20, "99999999999999999999",
             "int8 text '99999999999999999999' is out of range for int8");
  expect_bad(21, "32768", "int2 text '32768' is out of range for int2");
  expect_bad(23, "-2147483649", "int4 text '-2147483649' is out of range for int4");
  expect_bad(16, "true", "bool text 'true' is neither 't' nor 'f'");
  expect_bad(701, "1,5", "float8 text '1,5' is not a number");
  expect_bad(701, "1e999", "float8 text '1e999' is out of range for float8");
  expect_bad(17, "deadbeef", "bytea text 'deadbeef' is not hex-format bytea ('\\x' and pairs of "
                             "hex digits; set bytea_output = 'hex' on the server)");
  expect_bad(17, "\\xabc", "bytea text '\\xabc' is not hex-format bytea ('\\x' and pairs of hex "
                           "digits; set bytea_output = 'hex' on the server)");
  expect_bad(17, "\\xzz",
             "bytea text '\\xzz' is not hex-format bytea (a non-hex digit follows '\\x')");
}

BOOST_AUTO_TEST_CASE(a_bad_column_value_names_the_column) {
  const type_names names;
  const relation_column id{relation_column::key_flag, "id", 20, -1};
  auto r = to_value(id, text("abc"), names);
  BOOST_REQUIRE(!r.is_ok());
  BOOST_TEST((r.error().code() == errc::corruption));
  BOOST_TEST(r.error().message() == "int8 column 'id' has text 'abc', which is not an integer");

  auto long_text = to_value(id, text(std::string(1000, '9')), names);
  BOOST_REQUIRE(!long_text.is_ok());
  BOOST_TEST(long_text.error().message().size() < 200u, long_text.error().message());
}

BOOST_AUTO_TEST_CASE(a_null_column_is_null_and_an_unchanged_toast_column_has_no_value) {
  const type_names names;
  const relation_column big{0, "big", 25, -1};
  BOOST_TEST(to_value(big, null_column, names)->is_null());
  auto r = to_value(big, unchanged, names);
  BOOST_REQUIRE(!r.is_ok());
  BOOST_TEST((r.error().code() == errc::invalid_argument));
  BOOST_TEST(r.error().message().find("column 'big' is an unchanged TOASTed value")
             != std::string::npos, r.error().message());
}

BOOST_AUTO_TEST_CASE(a_tuple_converts_to_values_with_unchanged_toast_left_out) {
  const type_names names;
  const auto rel = decoded_as<relation>(a_relation());
  auto values = to_values(rel, {text("7"), unchanged, text("1.00")}, names);
  BOOST_REQUIRE_MESSAGE(values.is_ok(), values.error().to_string());
  BOOST_REQUIRE(values->size() == 3u);
  BOOST_TEST(((*values)[0] == value::integer(7)));
  BOOST_TEST(!(*values)[1].has_value());
  BOOST_TEST(((*values)[2] == value::exact("numeric", "1.00")));

  auto short_tuple = to_values(rel, {text("7")}, names);
  BOOST_REQUIRE(!short_tuple.is_ok());
  BOOST_TEST((short_tuple.error().code() == errc::corruption));
  BOOST_TEST(short_tuple.error().message().find("public.items (16385) has 1 columns but the "
                                                "relation describes 3")
             != std::string::npos, short_tuple.error().message());

  auto bad = to_values(rel, {text("x"), null_column, null_column}, names);
  BOOST_REQUIRE(!bad.is_ok());
  BOOST_TEST(bad.error().message() == "int8 column 'id' has text 'x', which is not an integer");
}

BOOST_AUTO_TEST_SUITE_END()

// --- against a real PostgreSQL 15 -------------------------------------------

namespace {

using syncmesh::scenarios::postgres_server;

void run(postgres_server& server, const std::string& statement) {
  auto r = server.sql(statement);
  BOOST_REQUIRE_MESSAGE(r.is_ok(), statement << " -> " << r.error().to_string());
}

/// The payloads of every change the slot holds, read over libpq as
/// pg_logical_slot_get_binary_changes returns them: one pgoutput message per
/// row, as bytea text.
std::vector<std::string> slot_payloads(postgres_server& server) {
  std::unique_ptr<PGconn, decltype(&PQfinish)> conn(PQconnectdb(server.conninfo().c_str()),
                                                    &PQfinish);
  BOOST_REQUIRE(conn);
  BOOST_REQUIRE_MESSAGE(PQstatus(conn.get()) == CONNECTION_OK, PQerrorMessage(conn.get()));
  // timestamptz values print in the reading session's time zone.
  std::unique_ptr<PGresult, decltype(&PQclear)> set(PQexec(conn.get(), "SET TimeZone = 'UTC'"),
                                                    &PQclear);
  BOOST_REQUIRE_MESSAGE(PQresultStatus(set.get()) == PGRES_COMMAND_OK, PQerrorMessage(conn.get()));
  std::unique_ptr<PGresult, decltype(&PQclear)> res(
    PQexec(conn.get(), "SELECT data FROM pg_logical_slot_get_binary_changes('slot', NULL, NULL, "
                       "'proto_version', '1', 'publication_names', 'pub', 'messages', 'true')"),
    &PQclear);
  BOOST_REQUIRE_MESSAGE(PQresultStatus(res.get()) == PGRES_TUPLES_OK, PQerrorMessage(conn.get()));
  const type_names no_names;
  std::vector<std::string> payloads;
  for (int row = 0; row < PQntuples(res.get()); ++row) {
    auto bytes = to_value(17, PQgetvalue(res.get(), row, 0), no_names);
    BOOST_REQUIRE_MESSAGE(bytes.is_ok(), bytes.error().to_string());
    payloads.push_back(bytes->as_bytes());
  }
  return payloads;
}

std::string kinds_of(const std::vector<pg_message>& messages) {
  std::string kinds;
  for (const auto& m : messages)
    kinds += static_cast<char>(kind_of(m));
  return kinds;
}

template <class T>
const T& nth(const std::vector<pg_message>& messages, std::size_t i) {
  BOOST_REQUIRE(i < messages.size());
  BOOST_REQUIRE_MESSAGE(std::holds_alternative<T>(messages[i]), describe(messages[i]));
  return std::get<T>(messages[i]);
}

std::vector<std::optional<value>> values_of(const relation& rel, const tuple_data& tuple,
                                            const type_names& names) {
  auto values = to_values(rel, tuple, names);
  BOOST_REQUIRE_MESSAGE(values.is_ok(), values.error().to_string());
  return std::move(values).value();
}

} // namespace

BOOST_AUTO_TEST_SUITE(pgoutput_real_server)

BOOST_AUTO_TEST_CASE(a_real_server_s_changes_decode_in_order_with_their_values) {
  auto started = postgres_server::start();
  BOOST_REQUIRE_MESSAGE(started.is_ok(), started.error().to_string());
  auto& server = *started.value();

  run(server, "CREATE TYPE mood AS ENUM ('happy', 'sad');"
              "CREATE TABLE items (id int8 PRIMARY KEY, name text, qty int4, small int2,"
              "  price numeric(10,2), ok bool, ratio float8, data bytea, tag uuid,"
              "  at timestamptz, doc jsonb, feeling mood, big text);"
              // Out of line and uncompressed, so a long value is TOASTed on disk.
              "ALTER TABLE items ALTER COLUMN big SET STORAGE EXTERNAL;"
              "CREATE PUBLICATION pub FOR TABLE items");
  run(server, "SELECT pg_create_logical_replication_slot('slot', 'pgoutput')");
  run(server, "SELECT pg_replication_origin_create('node_a')");

  const std::string big(100'000, 'x');
  run(server, "INSERT INTO items VALUES"
              " (1, 'ada', 7, -3, 12.50, true, 0.25, '\\xdeadbeef',"
              "  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '2024-01-02 03:04:05+00', '{\"a\": 1}',"
              "  'happy', 'short'),"
              " (2, 'bob', 1, NULL, NULL, false, NULL, NULL, NULL, NULL, NULL, NULL,"
              "  repeat('x', 100000))");
  run(server, "UPDATE items SET qty = qty + 1 WHERE id = 2");  // big stays TOASTed
  run(server, "UPDATE items SET id = 3 WHERE id = 1");         // the key changes
  run(server, "DELETE FROM items WHERE id = 3");
  run(server, "SELECT pg_logical_emit_message(true, 'syncmesh', 'hello')");
  run(server, "SELECT pg_replication_origin_session_setup('node_a');"
              "INSERT INTO items (id, name) VALUES (4, 'from node_a')");
  run(server, "TRUNCATE items");

  std::vector<pg_message> messages;
  for (const auto& payload : slot_payloads(server)) {
    auto m = decode(payload);
    BOOST_REQUIRE_MESSAGE(m.is_ok(), m.error().to_string());
    BOOST_TEST_MESSAGE(describe(*m));
    messages.push_back(std::move(m).value());
  }
  // TRUNCATE gives the table a new file, which makes pgoutput describe it
  // (and its types) again before the Truncate.
  BOOST_REQUIRE(kinds_of(messages) == "BYRIIC" "BUC" "BUC" "BDC" "BMC" "BOIC" "BYRTC");

  // Every transaction's Begin names the LSN its Commit carries.
  for (std::size_t i = 0; i < messages.size(); ++i)
    if (auto* c = std::get_if<commit_message>(&messages[i])) {
      std::size_t b = i;
      while (!std::holds_alternative<begin_message>(messages[b]))
        --b;
      BOOST_TEST(std::get<begin_message>(messages[b]).final_lsn == c->commit_lsn);
      BOOST_TEST(c->end_lsn > c->commit_lsn);
    }

  type_names names;
  names.update(nth<type_message>(messages, 1));
  const auto& rel = nth<relation>(messages, 2);
  relation_cache cache;
  cache.update(rel);
  BOOST_TEST(rel.namespace_name == "public");
  BOOST_TEST(rel.name == "items");
  BOOST_TEST(rel.replica_identity == 'd');
  BOOST_REQUIRE(rel.columns.size() == 13u);
  BOOST_TEST(rel.columns[0].name == "id");
  BOOST_TEST(rel.columns[0].is_key());
  BOOST_TEST(!rel.columns[1].is_key());
  BOOST_TEST(rel.columns[4].type_modifier == (10 << 16 | 2) + 4);  // numeric(10,2)

  const auto& first = nth<insert_message>(messages, 3);
  BOOST_REQUIRE(cache.find(first.relation_oid) != nullptr);
  const std::vector<std::optional<value>> ada{
    value::integer(1),
    value::text("ada"),
    value::integer(7),
    value::integer(-3),
    value::exact("numeric", "12.50"),
    value::boolean(true),
    value::real(0.25),
    value::bytes("\xde\xad\xbe\xef"),
    value::text("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    value::exact("timestamptz", "2024-01-02 03:04:05+00"),
    value::exact("jsonb", "{\"a\": 1}"),
    value::exact("public.mood", "happy"),
    value::text("short"),
  };
  const auto first_values = values_of(rel, first.new_tuple, names);
  for (std::size_t i = 0; i < ada.size(); ++i)
    BOOST_TEST((first_values[i] == ada[i]), rel.columns[i].name << ": "
                                              << (first_values[i] ? first_values[i]->to_display()
                                                                  : "unchanged"));

  const auto& second = nth<insert_message>(messages, 4);
  BOOST_TEST((second.new_tuple[12] == text(big)));
  BOOST_TEST((second.new_tuple[3].kind == column_kind::null));

  // The update leaves the TOASTed column out: it arrives as 'u', with no old row.
  const auto& toast_kept = nth<update_message>(messages, 7);
  BOOST_TEST((toast_kept.old_kind == old_tuple_kind::none));
  BOOST_TEST((toast_kept.new_tuple[0] == text("2")));
  BOOST_TEST((toast_kept.new_tuple[2] == text("2")));
  BOOST_TEST((toast_kept.new_tuple[12].kind == column_kind::unchanged_toast));
  BOOST_TEST(!values_of(rel, toast_kept.new_tuple, names)[12].has_value());

  // A changed key sends the old key: the key column, every other column null.
  const auto& rekeyed = nth<update_message>(messages, 10);
  BOOST_TEST((rekeyed.old_kind == old_tuple_kind::key));
  BOOST_REQUIRE(rekeyed.old_tuple.size() == 13u);
  BOOST_TEST((rekeyed.old_tuple[0] == text("1")));
  for (std::size_t i = 1; i < 13; ++i)
    BOOST_TEST((rekeyed.old_tuple[i].kind == column_kind::null));
  BOOST_TEST((rekeyed.new_tuple[0] == text("3")));
  BOOST_TEST((rekeyed.new_tuple[1] == text("ada")));

  const auto& removed = nth<delete_message>(messages, 13);
  BOOST_TEST((removed.old_kind == old_tuple_kind::key));
  BOOST_TEST((removed.old_tuple[0] == text("3")));

  const auto& note = nth<logical_message>(messages, 16);
  BOOST_TEST(note.transactional);
  BOOST_TEST(note.prefix == "syncmesh");
  BOOST_TEST(note.content == "hello");

  const auto& origin = nth<origin_message>(messages, 19);
  BOOST_TEST(origin.name == "node_a");
  const auto& from_node = nth<insert_message>(messages, 20);
  BOOST_TEST((from_node.new_tuple[1] == text("from node_a")));

  BOOST_TEST(nth<relation>(messages, 24).oid == rel.oid);
  const auto& truncated = nth<truncate_message>(messages, 25);
  BOOST_TEST((truncated.relation_oids == std::vector<std::uint32_t>{rel.oid}));
  BOOST_TEST(!truncated.cascade());
}

BOOST_AUTO_TEST_SUITE_END()
