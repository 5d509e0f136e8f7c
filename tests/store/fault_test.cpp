#include <boost/test/unit_test.hpp>

#include <leveldb/db.h>

#include "faulty_fixture.hpp"
#include "store/layout.hpp"

using namespace syncmesh::store;
using namespace syncmesh::store::test;

namespace {

// The faulty store, with the batch the tests try and what must survive it.
struct faulty_store_fixture : faulty_store {
  batch next_batch() {
    batch b;
    b.changes.push_back(upsert("app.users", user(1, "after")));
    b.changes.push_back(upsert("app.users", user(2, "new")));
    b.cursors.emplace_back("src", "11");
    return b;
  }

  void expect_unchanged() {
    auto one = db->get("app.users", {value::integer(1)});
    BOOST_REQUIRE_MESSAGE(one.is_ok(), one.error().to_string());
    BOOST_REQUIRE(one->has_value());
    BOOST_TEST((**one)[1].as_text() == "before");
    BOOST_TEST(!db->get("app.users", {value::integer(2)})->has_value());
    BOOST_TEST(**db->cursor("src") == "10");
    BOOST_TEST(db->last_seq() == 1u);
    BOOST_TEST(db->read_changes(1, 0)->size() == 1u);
  }

};

} // namespace

BOOST_FIXTURE_TEST_SUITE(store_faults, faulty_store_fixture)

BOOST_AUTO_TEST_CASE(a_failed_write_is_an_io_error_and_leaves_the_store_readable_and_unchanged) {
  faults.fail_writes(true);
  auto r = db->apply(next_batch());
  BOOST_REQUIRE(!r.is_ok());
  BOOST_TEST((r.error().code() == errc::io_error));
  BOOST_TEST(r.error().message().find("injected write failure") != std::string::npos);
  BOOST_TEST(r.error().message().find("check free space") != std::string::npos);
  BOOST_TEST(faults.injected() > 0u);
  expect_unchanged();

  // After the disk recovers and the node restarts, the data is as it was
  // and writes work again.
  faults.fail_writes(false);
  reopen();
  expect_unchanged();
  auto again = db->apply(next_batch());
  BOOST_REQUIRE_MESSAGE(again.is_ok(), again.error().to_string());
  BOOST_TEST(again->first_seq == 2u);
  BOOST_TEST(**db->cursor("src") == "11");
}

BOOST_AUTO_TEST_CASE(a_failed_sync_is_an_io_error_and_the_writer_is_not_acknowledged) {
  faults.fail_syncs(true);
  auto r = db->apply(next_batch());
  BOOST_REQUIRE(!r.is_ok());
  BOOST_TEST((r.error().code() == errc::io_error));
  BOOST_TEST(r.error().message().find("injected sync failure") != std::string::npos);
  // Reads keep working while the store refuses writes, and it says why.
  BOOST_TEST(db->get("app.users", {value::integer(1)}).is_ok());
  BOOST_TEST(db->scan("app.users").is_ok());
  faults.fail_syncs(false);
  auto later = db->apply(next_batch());
  BOOST_REQUIRE(!later.is_ok());
  BOOST_TEST((later.error().code() == errc::closed));
  BOOST_TEST(later.error().message().find("restart the node") != std::string::npos);
  // After a restart the batch whose sync failed is whole or absent.
  reopen();
  auto two = db->get("app.users", {value::integer(2)});
  BOOST_REQUIRE(two.is_ok());
  auto cursor = **db->cursor("src");
  BOOST_TEST((cursor == (two->has_value() ? "11" : "10")));
}

BOOST_AUTO_TEST_CASE(a_store_that_cannot_create_its_files_fails_to_open_with_a_sentence) {
  db.reset();
  faults.fail_creates(true);
  auto r = store::open(opts);
  BOOST_REQUIRE(!r.is_ok());
  BOOST_TEST((r.error().code() == errc::io_error));
  BOOST_TEST(r.error().message().find(opts.path) != std::string::npos);
  faults.fail_creates(false);
  reopen();
  expect_unchanged();
}

BOOST_AUTO_TEST_CASE(buffered_durability_also_reports_write_failures) {
  db.reset();
  opts.durability = durability_mode::buffered;
  reopen();
  faults.fail_writes(true);
  auto r = db->apply(next_batch());
  BOOST_REQUIRE(!r.is_ok());
  BOOST_TEST((r.error().code() == errc::io_error));
  expect_unchanged();
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(store_durability_option)

BOOST_AUTO_TEST_CASE(durability_names_parse_and_unknown_names_get_a_sentence) {
  BOOST_TEST((*parse_durability("fsync") == durability_mode::fsync));
  BOOST_TEST((*parse_durability("buffered") == durability_mode::buffered));
  auto bad = parse_durability("sometimes");
  BOOST_REQUIRE(!bad.is_ok());
  BOOST_TEST(bad.error().message().find("use \"fsync\"") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
