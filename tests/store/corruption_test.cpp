#include <boost/test/unit_test.hpp>

#include <leveldb/db.h>

#include "fixture.hpp"
#include "store/layout.hpp"
#include "store/record_codec.hpp"

using namespace syncmesh::store;
using namespace syncmesh::store::test;

namespace {

// Writes raw bytes under a key while the store is closed, the way a damaged
// disk or a foreign program would, then reopens the store.
struct damage_fixture : mem_store_fixture {
  damage_fixture() {
    create_tables();
    batch b;
    b.changes.push_back(upsert("app.users", user(42, "ada", "1.5")));
    b.changes.push_back(upsert("app.users", user(43, "bob", "2.5")));
    BOOST_REQUIRE(db->apply(b).is_ok());
  }

  // Closes the store and opens its database directly.
  std::unique_ptr<leveldb::DB> open_raw() {
    db.reset();
    leveldb::Options lo;
    lo.env = env.get();
    leveldb::DB* raw = nullptr;
    BOOST_REQUIRE(leveldb::DB::Open(lo, opts.path, &raw).ok());
    return std::unique_ptr<leveldb::DB>(raw);
  }

  void put_raw(const std::string& key, const std::string& bytes) {
    BOOST_REQUIRE(open_raw()->Put({}, key, bytes).ok());
  }

  std::string get_raw(const std::string& key) {
    std::string v;
    BOOST_REQUIRE(open_raw()->Get({}, key, &v).ok());
    return v;
  }
};

void expect_corruption_naming(const status& st, const std::string& name) {
  BOOST_TEST((st.code() == errc::corruption), st.to_string());
  BOOST_TEST(st.message().find(name) != std::string::npos, st.message());
  BOOST_TEST(st.message().find("data directory") != std::string::npos, st.message());
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(store_corruption, damage_fixture)

BOOST_AUTO_TEST_CASE(a_truncated_row_is_a_corruption_error_naming_the_row) {
  auto key = layout::row_key("app.users", {value::integer(42)});
  auto good = get_raw(key);
  for (std::size_t n : {std::size_t{0}, std::size_t{3}, good.size() / 2, good.size() - 1}) {
    put_raw(key, good.substr(0, n));
    reopen();
    auto r = db->get("app.users", {value::integer(42)});
    BOOST_REQUIRE(!r.is_ok());
    expect_corruption_naming(r.error(), "row app.users(42)");
    // The rest of the table stays readable row by row.
    BOOST_TEST(db->get("app.users", {value::integer(43)}).is_ok());
    auto whole = db->scan("app.users");
    BOOST_REQUIRE(!whole.is_ok());
    expect_corruption_naming(whole.error(), "row app.users(42)");
  }
}

BOOST_AUTO_TEST_CASE(a_flipped_byte_in_a_row_fails_its_checksum) {
  auto key = layout::row_key("app.users", {value::integer(42)});
  auto bytes = get_raw(key);
  bytes[bytes.size() - 2] ^= 0x20;
  put_raw(key, bytes);
  reopen();
  auto r = db->get("app.users", {value::integer(42)});
  BOOST_REQUIRE(!r.is_ok());
  expect_corruption_naming(r.error(), "row app.users(42)");
  BOOST_TEST(r.error().message().find("checksum") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_damaged_change_log_entry_is_a_corruption_error_naming_its_position) {
  auto key = layout::log_key(2);
  auto good = get_raw(key);
  put_raw(key, good.substr(0, good.size() - 4));
  reopen();
  auto r = db->read_changes(1, 0);
  BOOST_REQUIRE(!r.is_ok());
  expect_corruption_naming(r.error(), "change-log entry 2");
  auto first = db->read_changes(1, 1);
  BOOST_TEST(first.is_ok());
}

BOOST_AUTO_TEST_CASE(well_formed_msgpack_of_the_wrong_shape_is_corruption_too) {
  // A valid envelope around a payload that is not a change record.
  change_record c;
  c.seq = 2;
  auto sealed_row = encode_row({value::integer(1)});
  auto key = layout::log_key(2);
  put_raw(key, std::string(1, 'C') + sealed_row.substr(1));
  reopen();
  auto r = db->read_changes(2, 0);
  BOOST_REQUIRE(!r.is_ok());
  expect_corruption_naming(r.error(), "change-log entry 2");
}

BOOST_AUTO_TEST_CASE(garbage_job_state_and_outbox_values_are_corruption_errors) {
  put_raw(layout::job_key("app.users"), "not a record at all");
  put_raw(layout::outbox_key(7), std::string("O\0\0\0\0", 5));
  reopen();
  auto j = db->job("app.users");
  BOOST_REQUIRE(!j.is_ok());
  expect_corruption_naming(j.error(), "job state of view 'app.users'");
  auto o = db->outbox();
  BOOST_REQUIRE(!o.is_ok());
  expect_corruption_naming(o.error(), "outbox entry 7");
}

BOOST_AUTO_TEST_CASE(a_damaged_schema_refuses_the_open_with_a_sentence) {
  put_raw(layout::schema_key("app.users"), "S1234garbage");
  auto r = store::open(opts);
  BOOST_REQUIRE(!r.is_ok());
  expect_corruption_naming(r.error(), "schema of table 'app.users'");
}

BOOST_AUTO_TEST_CASE(a_store_written_by_a_newer_format_is_refused_with_a_sentence) {
  put_raw(layout::meta_key("format"), std::to_string(layout::format_version + 1));
  auto r = store::open(opts);
  BOOST_REQUIRE(!r.is_ok());
  BOOST_TEST((r.error().code() == errc::format_too_new));
  BOOST_TEST(r.error().message().find("newer syncmesh") != std::string::npos, r.error().message());
  BOOST_TEST(r.error().message().find("format " + std::to_string(layout::format_version + 1))
               != std::string::npos);
  // The refusal changed nothing: the marker is still the newer one.
  BOOST_TEST(get_raw(layout::meta_key("format")) == std::to_string(layout::format_version + 1));
}

BOOST_AUTO_TEST_SUITE_END()
