// Staged copies: a table replaced in bounded batches and swapped in by one.

#include <boost/test/unit_test.hpp>

#include <leveldb/db.h>
#include <leveldb/iterator.h>

#include "faulty_fixture.hpp"
#include "store/fault_env.hpp"
#include "store/layout.hpp"

using namespace syncmesh::store;
using namespace syncmesh::store::test;

namespace {

std::vector<std::string> names_of(const std::vector<row>& rows) {
  std::vector<std::string> out;
  for (const auto& r : rows)
    out.push_back(r[1].as_text());
  return out;
}

batch stage_rows(std::uint64_t generation, std::int64_t from, std::int64_t to,
                 const std::string& name) {
  batch b;
  staged_rows sr;
  sr.table = "app.users";
  sr.generation = generation;
  auto rows = std::make_shared<std::vector<row>>();
  for (auto id = from; id < to; ++id)
    rows->push_back(user(id, name + std::to_string(id)));
  sr.rows = std::move(rows);
  b.stage.push_back(std::move(sr));
  return b;
}

batch swap_in(std::uint64_t generation) {
  batch b;
  b.swaps.push_back({"app.users", generation});
  return b;
}

// Keys in the whole database that start with `prefix`.
std::size_t raw_keys_with(const options& opts, char prefix) {
  leveldb::Options lo;
  lo.env = opts.env;
  leveldb::DB* raw = nullptr;
  auto s = leveldb::DB::Open(lo, opts.path, &raw);
  BOOST_REQUIRE_MESSAGE(s.ok(), s.ToString());
  std::unique_ptr<leveldb::DB> db{raw};
  std::unique_ptr<leveldb::Iterator> it{db->NewIterator({})};
  std::size_t n = 0;
  for (it->Seek(std::string(1, prefix)); it->Valid() && it->key()[0] == prefix; it->Next())
    ++n;
  return n;
}

void collect_all(store& db) {
  for (int steps = 0; db.has_garbage(); ++steps) {
    BOOST_REQUIRE(steps < 1000);
    auto more = db.collect_garbage(7);
    BOOST_REQUIRE_MESSAGE(more.is_ok(), more.error().to_string());
  }
}

struct staging_fixture : mem_store_fixture {
  staging_fixture() {
    create_tables();
    batch b;
    for (std::int64_t id = 0; id < 5; ++id)
      b.changes.push_back(upsert("app.users", user(id, "old" + std::to_string(id))));
    BOOST_REQUIRE(db->apply(b).is_ok());
  }
};

} // namespace

BOOST_FIXTURE_TEST_SUITE(store_staging, staging_fixture)

BOOST_AUTO_TEST_CASE(readers_see_the_old_copy_until_the_swap_and_the_new_one_after) {
  auto generation = db->begin_staging(users_schema());
  BOOST_REQUIRE(generation.is_ok());
  BOOST_REQUIRE(db->apply(stage_rows(*generation, 10, 20, "new")).is_ok());
  BOOST_REQUIRE(db->apply(stage_rows(*generation, 20, 30, "new")).is_ok());

  BOOST_TEST(db->scan("app.users")->size() == 5u);
  BOOST_TEST((*db->get("app.users", {value::integer(3)}))->at(1).as_text() == "old3");
  BOOST_TEST(!db->get("app.users", {value::integer(15)})->has_value());

  auto before = db->last_seq();
  batch swap = swap_in(*generation);
  swap.cursors.emplace_back("view:app.users", "42");
  auto done = db->apply(swap);
  BOOST_REQUIRE_MESSAGE(done.is_ok(), done.error().to_string());

  auto rows = db->scan("app.users");
  BOOST_REQUIRE(rows.is_ok());
  BOOST_TEST(rows->size() == 20u);
  BOOST_TEST(rows->front()[1].as_text() == "new10");
  BOOST_TEST(!db->get("app.users", {value::integer(3)})->has_value());
  BOOST_TEST((*db->get("app.users", {value::integer(29)}))->at(1).as_text() == "new29");
  BOOST_TEST(**db->cursor("view:app.users") == "42");

  // One change-log entry says the table was replaced; none per row.
  BOOST_TEST(db->last_seq() == before + 1);
  auto log = db->read_changes(before + 1, 0);
  BOOST_REQUIRE(log->size() == 1u);
  BOOST_TEST(((*log)[0].op == change_op::replace));
  BOOST_TEST((*log)[0].table == "app.users");

  // The new copy is what a restarted store reads, too.
  reopen();
  BOOST_TEST(db->scan("app.users")->size() == 20u);
}

BOOST_AUTO_TEST_CASE(changes_after_the_swap_apply_to_the_new_copy) {
  auto generation = db->begin_staging(users_schema());
  BOOST_REQUIRE(db->apply(stage_rows(*generation, 10, 12, "new")).is_ok());
  BOOST_REQUIRE(db->apply(swap_in(*generation)).is_ok());
  batch b;
  b.changes.push_back(upsert("app.users", user(11, "changed")));
  b.changes.push_back(erase("app.users", {value::integer(10)}));
  BOOST_REQUIRE(db->apply(b).is_ok());
  BOOST_TEST(names_of(*db->scan("app.users")) == std::vector<std::string>{"changed"},
             boost::test_tools::per_element());
  auto log = db->read_changes(db->last_seq() - 1, 0);
  BOOST_REQUIRE(log->size() == 2u);
  BOOST_TEST((*log)[0].old_row.has_value());
  BOOST_TEST((*log)[0].old_row->at(1).as_text() == "new11");

  batch t;
  change truncate;
  truncate.table = "app.users";
  truncate.op = change_op::truncate;
  t.changes.push_back(truncate);
  BOOST_REQUIRE(db->apply(t).is_ok());
  BOOST_TEST(db->scan("app.users")->empty());
}

BOOST_AUTO_TEST_CASE(a_swap_installs_the_schema_the_copy_was_staged_with) {
  auto wider = users_schema();
  wider.columns.push_back({"email", value_kind::text, "", true});
  auto generation = db->begin_staging(wider);
  BOOST_REQUIRE(generation.is_ok());
  batch b;
  b.stage.push_back({"app.users", *generation,
                     std::make_shared<std::vector<row>>(std::vector<row>{
                       {value::integer(1), value::text("ada"), value::null(), value::text("a@x")}}),
                     nullptr});
  BOOST_REQUIRE(db->apply(b).is_ok());
  BOOST_TEST((*db->table("app.users"))->columns.size() == 3u);
  BOOST_REQUIRE(db->apply(swap_in(*generation)).is_ok());
  BOOST_TEST((*db->table("app.users"))->columns.size() == 4u);
  BOOST_TEST((*db->get("app.users", {value::integer(1)}))->at(3).as_text() == "a@x");

  // A table that did not exist is created by its first swap.
  auto fresh = users_schema();
  fresh.table = "app.fresh";
  auto g2 = db->begin_staging(fresh);
  batch s;
  s.stage.push_back(
    {"app.fresh", *g2, std::make_shared<std::vector<row>>(std::vector<row>{user(7, "seven")}),
     nullptr});
  s.swaps.push_back({"app.fresh", *g2});
  BOOST_REQUIRE(db->apply(s).is_ok());
  BOOST_TEST(db->scan("app.fresh")->size() == 1u);
}

BOOST_AUTO_TEST_CASE(staged_rows_that_do_not_fit_the_staged_schema_are_refused_whole) {
  auto generation = db->begin_staging(users_schema());
  batch b = stage_rows(*generation, 10, 12, "new");
  auto rows = std::make_shared<std::vector<row>>(*b.stage[0].rows);
  rows->push_back({value::text("not a number"), value::null(), value::null()});
  b.stage[0].rows = rows;
  auto r = db->apply(b);
  BOOST_REQUIRE(!r.is_ok());
  BOOST_TEST((r.error().code() == errc::invalid_argument));
  BOOST_REQUIRE(db->apply(swap_in(*generation)).is_ok());
  BOOST_TEST(db->scan("app.users")->empty());
}

BOOST_AUTO_TEST_CASE(an_abandoned_staging_is_refused_and_its_rows_are_collected) {
  auto first = db->begin_staging(users_schema());
  BOOST_REQUIRE(db->apply(stage_rows(*first, 10, 30, "first")).is_ok());
  // A new run begins again: the first staging is garbage from now on.
  auto second = db->begin_staging(users_schema());
  BOOST_TEST(*second != *first);
  BOOST_TEST(db->has_garbage());
  auto late = db->apply(stage_rows(*first, 30, 31, "late"));
  BOOST_REQUIRE(!late.is_ok());
  BOOST_TEST(late.error().message().find("not being staged") != std::string::npos);
  BOOST_REQUIRE(!db->apply(swap_in(*first)).is_ok());

  BOOST_REQUIRE(db->apply(stage_rows(*second, 40, 42, "second")).is_ok());
  collect_all(*db);
  BOOST_REQUIRE(db->apply(swap_in(*second)).is_ok());
  BOOST_TEST(names_of(*db->scan("app.users"))
               == (std::vector<std::string>{"second40", "second41"}),
             boost::test_tools::per_element());

  // The retired generation-0 copy goes too; only the live rows remain.
  collect_all(*db);
  db.reset();
  BOOST_TEST(raw_keys_with(opts, layout::row_prefix) == 0u);
  BOOST_TEST(raw_keys_with(opts, layout::generation_row_prefix) == 2u);
}

BOOST_AUTO_TEST_CASE(abort_staging_makes_the_rows_garbage_and_a_later_swap_fails) {
  auto generation = db->begin_staging(users_schema());
  BOOST_REQUIRE(db->apply(stage_rows(*generation, 10, 20, "new")).is_ok());
  db->abort_staging("app.users", *generation);
  BOOST_TEST(db->has_garbage());
  BOOST_REQUIRE(!db->apply(swap_in(*generation)).is_ok());
  collect_all(*db);
  BOOST_TEST(db->scan("app.users")->size() == 5u);
  db.reset();
  BOOST_TEST(raw_keys_with(opts, layout::generation_row_prefix) == 0u);
}

BOOST_AUTO_TEST_CASE(a_crash_mid_staging_leaves_the_old_copy_and_the_next_open_collects_the_rest) {
  auto generation = db->begin_staging(users_schema());
  BOOST_REQUIRE(db->apply(stage_rows(*generation, 10, 40, "new")).is_ok());
  reopen();  // the process died before the swap
  BOOST_TEST(names_of(*db->scan("app.users")).front() == "old0");
  BOOST_TEST(db->scan("app.users")->size() == 5u);
  BOOST_TEST(db->has_garbage());
  // The generation of the dead staging is never handed out again.
  auto next = db->begin_staging(users_schema());
  BOOST_TEST(*next > *generation);
  BOOST_REQUIRE(!db->apply(swap_in(*generation)).is_ok());
  collect_all(*db);
  db.reset();
  BOOST_TEST(raw_keys_with(opts, layout::generation_row_prefix) == 0u);
}

BOOST_AUTO_TEST_CASE(a_crash_before_the_retired_copy_is_collected_is_finished_at_the_next_open) {
  auto generation = db->begin_staging(users_schema());
  BOOST_REQUIRE(db->apply(stage_rows(*generation, 10, 12, "new")).is_ok());
  BOOST_REQUIRE(db->apply(swap_in(*generation)).is_ok());
  auto second = db->begin_staging(users_schema());
  BOOST_REQUIRE(db->apply(stage_rows(*second, 20, 23, "newer")).is_ok());
  BOOST_REQUIRE(db->apply(swap_in(*second)).is_ok());
  reopen();  // nothing was collected
  BOOST_TEST(db->scan("app.users")->size() == 3u);
  BOOST_TEST(db->has_garbage());
  collect_all(*db);
  BOOST_TEST(db->scan("app.users")->size() == 3u);
  db.reset();
  BOOST_TEST(raw_keys_with(opts, layout::row_prefix) == 0u);
  BOOST_TEST(raw_keys_with(opts, layout::generation_row_prefix) == 3u);
}

BOOST_AUTO_TEST_CASE(a_format_1_store_is_upgraded_by_its_first_swap_and_not_before) {
  auto format = [&] {
    db.reset();
    leveldb::Options lo;
    lo.env = opts.env;
    leveldb::DB* raw = nullptr;
    BOOST_REQUIRE(leveldb::DB::Open(lo, opts.path, &raw).ok());
    std::unique_ptr<leveldb::DB> ldb{raw};
    std::string v;
    BOOST_REQUIRE(ldb->Get({}, layout::meta_key("format"), &v).ok());
    return v;
  };
  // Make it a store an older build wrote.
  format();
  {
    leveldb::Options lo;
    lo.env = opts.env;
    leveldb::DB* raw = nullptr;
    BOOST_REQUIRE(leveldb::DB::Open(lo, opts.path, &raw).ok());
    std::unique_ptr<leveldb::DB> ldb{raw};
    BOOST_REQUIRE(ldb->Put({}, layout::meta_key("format"), "1").ok());
  }
  reopen();
  batch b;
  b.changes.push_back(upsert("app.users", user(9, "plain")));
  BOOST_REQUIRE(db->apply(b).is_ok());
  BOOST_TEST(format() == "1");
  reopen();
  auto generation = db->begin_staging(users_schema());
  BOOST_REQUIRE(db->apply(stage_rows(*generation, 1, 2, "new")).is_ok());
  BOOST_TEST(format() == "1");
  reopen();
  generation = db->begin_staging(users_schema());
  BOOST_REQUIRE(db->apply(stage_rows(*generation, 1, 2, "new")).is_ok());
  BOOST_REQUIRE(db->apply(swap_in(*generation)).is_ok());
  // Only as far as generations need: a format-2 build still opens it.
  BOOST_TEST(format() == std::to_string(layout::generations_format_version));
}

// A store an older build wrote stays readable by it until the first row
// with meta (which that build could not read) writes format 3 with it.
BOOST_AUTO_TEST_CASE(a_format_2_store_is_upgraded_by_its_first_row_with_meta) {
  auto raw_db = [&] {
    db.reset();
    leveldb::Options lo;
    lo.env = opts.env;
    leveldb::DB* raw = nullptr;
    BOOST_REQUIRE(leveldb::DB::Open(lo, opts.path, &raw).ok());
    return std::unique_ptr<leveldb::DB>{raw};
  };
  auto format = [&] {
    auto ldb = raw_db();
    std::string v;
    BOOST_REQUIRE(ldb->Get({}, layout::meta_key("format"), &v).ok());
    return v;
  };
  BOOST_REQUIRE(raw_db()->Put({}, layout::meta_key("format"), "2").ok());
  reopen();
  batch b;
  b.changes.push_back(upsert("app.users", user(9, "plain")));
  BOOST_REQUIRE(db->apply(b).is_ok());
  BOOST_TEST(format() == "2");
  reopen();
  batch m;
  auto c = upsert("app.users", user(9, "with meta"));
  c.meta = "m";
  m.changes.push_back(c);
  BOOST_REQUIRE(db->apply(m).is_ok());
  BOOST_TEST(format() == "3");
  reopen();
  const row k{value::integer(9)};
  BOOST_TEST((*db->get_stored("app.users", {&k}))[0]->meta == "m");
}

BOOST_AUTO_TEST_SUITE_END()


BOOST_FIXTURE_TEST_SUITE(store_staging_faults, faulty_store)

BOOST_AUTO_TEST_CASE(a_failed_swap_leaves_the_old_copy_and_the_reopened_store_collects_the_stage) {
  auto generation = db->begin_staging(users_schema());
  BOOST_REQUIRE(db->apply(stage_rows(*generation, 10, 20, "new")).is_ok());
  faults.fail_writes(true);
  auto r = db->apply(swap_in(*generation));
  BOOST_REQUIRE(!r.is_ok());
  BOOST_TEST((r.error().code() == errc::io_error));
  BOOST_TEST(names_of(*db->scan("app.users")) == std::vector<std::string>{"before"},
             boost::test_tools::per_element());
  faults.fail_writes(false);
  reopen();
  BOOST_TEST(names_of(*db->scan("app.users")) == std::vector<std::string>{"before"},
             boost::test_tools::per_element());
  BOOST_TEST(db->has_garbage());
  collect_all(*db);
  BOOST_TEST(!db->has_garbage());
}

BOOST_AUTO_TEST_SUITE_END()
