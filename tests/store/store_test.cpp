#include <atomic>
#include <map>
#include <set>
#include <thread>

#include <boost/test/unit_test.hpp>

#include "fixture.hpp"
#include "store/key_codec.hpp"
#include "store/layout.hpp"

using namespace syncmesh::store;
using namespace syncmesh::store::test;
using std::chrono::steady_clock;

BOOST_FIXTURE_TEST_SUITE(store_apply, mem_store_fixture)

// A remote records which outbox seqs it took per node and incarnation:
// the incarnation must survive restarts and differ for a new directory,
// whose seqs start again at 1.
BOOST_AUTO_TEST_CASE(a_data_directory_keeps_its_incarnation_and_a_new_one_gets_another) {
  const auto first = db->incarnation();
  BOOST_TEST(first.size() == 16u);
  BOOST_TEST(first.find_first_not_of("0123456789abcdef") == std::string::npos, first);
  reopen();
  BOOST_TEST(db->incarnation() == first);
  db.reset();
  opts.path = "/mem/another";  // the same node id, a directory made afresh
  reopen();
  BOOST_TEST(db->incarnation() != first);
}

BOOST_AUTO_TEST_CASE(applied_rows_read_back_and_scan_in_primary_key_order) {
  create_tables();
  batch b;
  for (std::int64_t id : {30, -5, 7, 1000, 0})
    b.changes.push_back(upsert("app.users", user(id, "u" + std::to_string(id))));
  BOOST_REQUIRE(db->apply(b).is_ok());

  auto got = db->get("app.users", {value::integer(7)});
  BOOST_REQUIRE(got.is_ok());
  BOOST_REQUIRE(got->has_value());
  BOOST_TEST(((**got) == user(7, "u7")));

  auto rows = db->scan("app.users");
  BOOST_REQUIRE(rows.is_ok());
  std::vector<std::int64_t> ids;
  for (const auto& r : *rows)
    ids.push_back(r[0].as_int());
  BOOST_TEST(ids == (std::vector<std::int64_t>{-5, 0, 7, 30, 1000}), boost::test_tools::per_element());

  scan_options range;
  range.from = {value::integer(0)};
  range.to = {value::integer(30)};
  auto some = db->scan("app.users", range);
  BOOST_REQUIRE(some.is_ok());
  BOOST_TEST(some->size() == 2u);
}

// A writer that holds the stored row hands it over: the log takes it
// without a read. Within its own batch the writer knows what its earlier
// changes did (the peer replicator merges them in order), so the store
// keeps no map of them; a change in the same batch without a known row
// still reads the row as the batch left it.
BOOST_AUTO_TEST_CASE(a_known_old_row_is_logged_as_given_and_a_change_without_one_reads_the_batch) {
  create_tables();
  batch first;
  first.changes.push_back(upsert("app.users", user(1, "one")));
  BOOST_REQUIRE(db->apply(first).is_ok());
  // Applies one batch of upserts of user 1 named `names`, each with the
  // known old row `known` gives (none where it gives ""); the old rows the
  // log then holds.
  auto old_rows = [&](std::vector<std::string> names, std::vector<std::string> known) {
    batch b;
    for (std::size_t i = 0; i < names.size(); ++i) {
      auto c = upsert("app.users", user(1, names[i]));
      if (!known[i].empty())
        c.known_old_row = std::optional<row>{user(1, known[i])};
      b.changes.push_back(c);
    }
    auto applied = db->apply(b);
    BOOST_REQUIRE(applied.is_ok());
    auto log = db->read_changes(applied->first_seq, 0);
    BOOST_REQUIRE(log.is_ok());
    BOOST_REQUIRE(log->size() == names.size());
    std::vector<std::optional<row>> out;
    for (const auto& e : *log)
      out.push_back(e.old_row);
    return out;
  };
  using rows = std::vector<std::optional<row>>;
  BOOST_TEST((old_rows({"two", "three"}, {"one", "two"}) == rows{user(1, "one"), user(1, "two")}));
  BOOST_TEST(((**db->get("app.users", {value::integer(1)})) == user(1, "three")));
  // A known row, then a change that reads: the second sees the first's row.
  BOOST_TEST((old_rows({"four", "five"}, {"three", ""}) == rows{user(1, "three"), user(1, "four")}));
  // Every change with a known row: the store takes the writer's word for
  // the batch's own earlier changes (it keeps no map to check them by).
  BOOST_TEST((old_rows({"six", "seven"}, {"five", "as the writer says"})
              == rows{user(1, "five"), user(1, "as the writer says")}));
  BOOST_TEST(((**db->get("app.users", {value::integer(1)})) == user(1, "seven")));
}

// A writer keeps its own bookkeeping about a row in the row's record (the
// peer replicator its merge stamps): it reads it back with the row, and
// every other reader sees the row alone.
BOOST_AUTO_TEST_CASE(a_change_whose_key_is_not_its_rows_is_refused_and_nothing_is_written) {
  create_tables();
  batch b;
  b.changes.push_back(upsert("app.users", user(1, "one")));
  auto wrong = upsert("app.users", user(2, "two"));
  wrong.key = row{value::integer(3)};
  b.changes.push_back(wrong);
  auto got = db->apply(b);
  BOOST_REQUIRE(!got.is_ok());
  BOOST_TEST(got.error().message().find("names key (3) but its row has key (2)") != std::string::npos,
             got.error().message());
  BOOST_TEST(db->scan("app.users", {}).value().empty());

  b.changes.back().key = row{value::integer(2)};
  BOOST_TEST(db->apply(b).is_ok());
  BOOST_TEST(db->scan("app.users", {}).value().size() == 2u);
}

BOOST_AUTO_TEST_CASE(a_rows_meta_reads_back_with_it_and_nowhere_else) {
  create_tables();
  batch b;
  auto c = upsert("app.users", user(1, "one"));
  c.meta = std::string("stamps\0of one", 13);
  b.changes.push_back(c);
  b.changes.push_back(upsert("app.users", user(2, "two")));  // no meta
  auto applied = db->apply(b);
  BOOST_REQUIRE(applied.is_ok());

  const row k1{value::integer(1)}, k2{value::integer(2)}, k3{value::integer(3)};
  auto got = db->get_stored("app.users", {&k1, &k2, &k3});
  BOOST_REQUIRE(got.is_ok());
  BOOST_REQUIRE(got->size() == 3u);
  BOOST_REQUIRE((*got)[0].has_value());
  BOOST_TEST(((*got)[0]->values == user(1, "one")));
  BOOST_TEST((*got)[0]->meta == std::string("stamps\0of one", 13));
  BOOST_REQUIRE((*got)[1].has_value());
  BOOST_TEST((*got)[1]->meta.empty());
  BOOST_TEST(!(*got)[2].has_value());
  // get, scan and the change log: the row without its meta.
  BOOST_TEST(((**db->get("app.users", k1)) == user(1, "one")));
  BOOST_TEST(((*db->scan("app.users"))[0] == user(1, "one")));
  auto log = db->read_changes(applied->first_seq, 0);
  BOOST_REQUIRE(log.is_ok());
  BOOST_TEST(((*log)[0].new_row == std::optional<row>{user(1, "one")}));

  // A write without meta drops it; a remove takes it with the row.
  batch plain;
  plain.changes.push_back(upsert("app.users", user(1, "uno")));
  BOOST_REQUIRE(db->apply(plain).is_ok());
  BOOST_TEST((*db->get_stored("app.users", {&k1}))[0]->meta.empty());
  batch again;
  c.meta = "again";
  again.changes.push_back(c);
  BOOST_REQUIRE(db->apply(again).is_ok());
  batch gone;
  gone.changes.push_back(erase("app.users", k1));
  BOOST_REQUIRE(db->apply(gone).is_ok());
  BOOST_TEST(!(*db->get_stored("app.users", {&k1}))[0].has_value());
}

BOOST_AUTO_TEST_CASE(a_meta_only_change_rewrites_the_meta_and_logs_nothing) {
  create_tables();
  batch b;
  auto c = upsert("app.users", user(1, "one"));
  c.meta = "first";
  b.changes.push_back(c);
  BOOST_REQUIRE(db->apply(b).is_ok());
  const auto seq = db->last_seq();

  batch meta;
  auto m = upsert("app.users", user(1, "one"));
  m.meta = "second";
  m.meta_only = true;
  m.known_old_row = std::optional<row>{user(1, "one")};
  meta.changes.push_back(m);
  auto applied = db->apply(meta);
  BOOST_REQUIRE(applied.is_ok());
  BOOST_TEST(applied->first_seq == 0u);
  BOOST_TEST(db->last_seq() == seq);
  const row k1{value::integer(1)};
  BOOST_TEST((*db->get_stored("app.users", {&k1}))[0]->meta == "second");

  // The store checks the row itself: without a known old row it is the
  // same; a writer wrong about the row gets an ordinary, logged upsert.
  auto again = m;
  again.known_old_row.reset();
  again.meta = "third";
  batch quiet;
  quiet.changes.push_back(again);
  BOOST_REQUIRE(db->apply(quiet).is_ok());
  BOOST_TEST(db->last_seq() == seq);
  BOOST_TEST((*db->get_stored("app.users", {&k1}))[0]->meta == "third");
  auto wrong = m;
  wrong.new_row = user(1, "changed");
  wrong.meta = "fourth";
  batch loud;
  loud.changes.push_back(wrong);
  auto logged = db->apply(loud);
  BOOST_REQUIRE(logged.is_ok());
  BOOST_TEST(db->last_seq() == seq + 1);
  auto entry = db->read_changes(logged->first_seq, 1);
  BOOST_REQUIRE(entry.is_ok());
  BOOST_REQUIRE(entry->size() == 1u);
  BOOST_TEST(((*entry)[0].old_row == std::optional<row>{user(1, "one")}));
  BOOST_TEST(((*entry)[0].new_row == std::optional<row>{user(1, "changed")}));
  BOOST_TEST((*db->get_stored("app.users", {&k1}))[0]->meta == "fourth");

  // The row it checks against is the row as the batch's own earlier
  // changes leave it, known old rows or not.
  batch both;
  auto gone = erase("app.users", k1);
  gone.known_old_row = std::optional<row>{user(1, "changed")};
  both.changes.push_back(gone);
  auto back = m;
  back.new_row = user(1, "changed");
  back.known_old_row = std::optional<row>{user(1, "changed")};
  back.meta = "fifth";
  both.changes.push_back(back);
  auto two = db->apply(both);
  BOOST_REQUIRE(two.is_ok());
  BOOST_TEST(two->last_seq == two->first_seq + 1);  // the remove and the insert, both logged
  BOOST_TEST((*db->get_stored("app.users", {&k1}))[0]->meta == "fifth");

  // Meta only where there is meta, and on inserts and updates only.
  auto refused = [&](change bad) {
    batch x;
    x.changes.push_back(std::move(bad));
    auto r = db->apply(x);
    BOOST_REQUIRE(!r.is_ok());
    BOOST_TEST(r.error().code() == errc::invalid_argument);
    BOOST_TEST(r.error().message().find("meta") != std::string::npos, r.error().message());
  };
  auto bare = m;
  bare.meta.reset();
  refused(bare);
  auto removing = erase("app.users", k1);
  removing.meta = "x";
  refused(removing);
  BOOST_TEST((*db->get_stored("app.users", {&k1}))[0]->meta == "fifth");
}

// Many keys through one iterator: in key order, out of order, repeated,
// before the first row and past the last.
BOOST_AUTO_TEST_CASE(get_stored_finds_keys_in_any_order) {
  create_tables();
  batch b;
  for (std::int64_t id : {10, 20, 30})
    b.changes.push_back(upsert("app.users", user(id, "u" + std::to_string(id))));
  BOOST_REQUIRE(db->apply(b).is_ok());
  std::vector<std::int64_t> ids{5, 10, 15, 20, 40, 30, 10, 50, 20};
  std::vector<row> keys;
  for (auto id : ids)
    keys.push_back({value::integer(id)});
  std::vector<const row*> ptrs;
  for (const auto& k : keys)
    ptrs.push_back(&k);
  auto got = db->get_stored("app.users", ptrs);
  BOOST_REQUIRE(got.is_ok());
  std::vector<std::int64_t> found;
  for (std::size_t i = 0; i < ids.size(); ++i)
    found.push_back((*got)[i] ? (*got)[i]->values[0].as_int() : -1);
  BOOST_TEST(found == (std::vector<std::int64_t>{-1, 10, -1, 20, -1, 30, 10, -1, 20}),
             boost::test_tools::per_element());
  auto wrong = db->get_stored("app.nope", ptrs);
  BOOST_REQUIRE(!wrong.is_ok());
  BOOST_TEST(wrong.error().message().find("app.nope") != std::string::npos);

  auto page = db->scan_stored("app.users", encode_key({value::integer(15)}), 2);
  BOOST_REQUIRE(page.is_ok());
  BOOST_REQUIRE(page->size() == 2u);
  BOOST_TEST((*page)[0].first == encode_key({value::integer(20)}));
  BOOST_TEST(((*page)[1].second.values == user(30, "u30")));
}

BOOST_AUTO_TEST_CASE(ext_last_finds_the_greatest_name_under_a_prefix_in_one_seek) {
  BOOST_TEST(!db->ext_last("log/").value().has_value());
  batch b;
  for (const char* name : {"log/1", "log/3", "log/2", "lob/9", "loh/0", "log"})
    b.ext.emplace_back(name, std::string("v-") + name);
  BOOST_REQUIRE(db->apply(b).is_ok());
  auto last = db->ext_last("log/");
  BOOST_REQUIRE(last.is_ok());
  BOOST_REQUIRE(last->has_value());
  BOOST_TEST((*last)->first == "log/3");
  BOOST_TEST((*last)->second == "v-log/3");
  BOOST_TEST(db->ext_last("loh/").value()->first == "loh/0");  // the last extension record
  BOOST_TEST(db->ext_last("lob").value()->first == "lob/9");
  BOOST_TEST(db->ext_last("log").value()->first == "log/3");
  BOOST_TEST(!db->ext_last("lod").value().has_value());
  BOOST_TEST(!db->ext_last("z").value().has_value());
}

BOOST_AUTO_TEST_CASE(composite_keys_scan_by_key_prefix) {
  create_tables();
  batch b;
  for (auto tenant : {"acme", "zeta", "acme2"})
    for (std::int64_t seq : {3, 1, 2})
      b.changes.push_back(upsert("app.events", {value::text(tenant), value::integer(seq),
                                                value::bytes(std::string("\0x", 2))}));
  BOOST_REQUIRE(db->apply(b).is_ok());
  scan_options only_acme;
  only_acme.from = {value::text("acme")};
  only_acme.to = {value::text("acme"), value::integer(std::numeric_limits<std::int64_t>::max())};
  auto rows = db->scan("app.events", only_acme);
  BOOST_REQUIRE(rows.is_ok());
  BOOST_REQUIRE(rows->size() == 3u);
  BOOST_TEST((*rows)[0][1].as_int() == 1);
  BOOST_TEST((*rows)[2][1].as_int() == 3);
  BOOST_TEST((*rows)[0][2].as_bytes() == std::string("\0x", 2));
}

BOOST_AUTO_TEST_CASE(the_change_log_records_stamps_origin_and_old_and_new_rows) {
  create_tables();
  batch b1;
  b1.changes.push_back(upsert("app.users", user(1, "ada", "10.00")));
  auto r1 = db->apply(b1);
  BOOST_REQUIRE(r1.is_ok());
  clock.advance(5);
  batch b2;
  b2.changes.push_back(upsert("app.users", user(1, "ada", "12.50")));
  b2.changes.push_back(erase("app.users", {value::integer(1)}));
  auto r2 = db->apply(b2);
  BOOST_REQUIRE(r2.is_ok());
  BOOST_TEST(r2->first_seq == 2u);
  BOOST_TEST(r2->last_seq == 3u);

  auto log = db->read_changes(1, 0);
  BOOST_REQUIRE(log.is_ok());
  BOOST_REQUIRE(log->size() == 3u);
  const auto& ins = (*log)[0];
  BOOST_TEST(ins.seq == 1u);
  BOOST_TEST(ins.origin == "node-a");
  BOOST_TEST(!ins.old_row.has_value());
  BOOST_TEST((ins.new_row == std::optional<row>(user(1, "ada", "10.00"))));
  const auto& upd = (*log)[1];
  BOOST_TEST((upd.old_row == std::optional<row>(user(1, "ada", "10.00"))));
  BOOST_TEST((upd.new_row == std::optional<row>(user(1, "ada", "12.50"))));
  const auto& del = (*log)[2];
  BOOST_TEST((del.op == change_op::remove));
  BOOST_TEST((del.old_row == std::optional<row>(user(1, "ada", "12.50"))));
  BOOST_TEST((ins.hlc < upd.hlc && upd.hlc < del.hlc));
  BOOST_TEST(!db->get("app.users", {value::integer(1)})->has_value());
}

BOOST_AUTO_TEST_CASE(a_remote_change_keeps_its_origin_stamp_and_advances_the_local_clock) {
  create_tables();
  hlc_timestamp remote{clock.now_ms() + 1000, 4};
  batch b;
  auto c = upsert("app.users", user(9, "remote"));
  c.hlc = remote;
  c.origin = "node-b";
  b.changes.push_back(c);
  BOOST_REQUIRE(db->apply(b).is_ok());
  auto log = db->read_changes(1, 0);
  BOOST_REQUIRE(log->size() == 1u);
  BOOST_TEST(((*log)[0].hlc == remote));
  BOOST_TEST((*log)[0].origin == "node-b");
  BOOST_TEST((remote < db->clock().now()));
}

BOOST_AUTO_TEST_CASE(a_change_stamped_too_far_in_the_future_rejects_the_whole_batch) {
  create_tables();
  batch b;
  b.changes.push_back(upsert("app.users", user(1, "fine")));
  auto c = upsert("app.users", user(2, "future"));
  c.hlc = hlc_timestamp{clock.now_ms() + opts.max_clock_skew_ms + 1, 0};
  c.origin = "node-b";
  b.changes.push_back(c);
  b.cursors.emplace_back("peer:node-b", "77");
  auto r = db->apply(b);
  BOOST_REQUIRE(!r.is_ok());
  BOOST_TEST((r.error().code() == errc::clock_skew));
  BOOST_TEST(!db->get("app.users", {value::integer(1)})->has_value());
  BOOST_TEST(!db->cursor("peer:node-b")->has_value());
  BOOST_TEST(db->last_seq() == 0u);
}

BOOST_AUTO_TEST_CASE(truncate_removes_every_row_of_the_table_and_only_that_table) {
  create_tables();
  batch b;
  for (std::int64_t id = 0; id < 20; ++id)
    b.changes.push_back(upsert("app.users", user(id, "x")));
  b.changes.push_back(upsert("app.events", {value::text("t"), value::integer(1), value::null()}));
  BOOST_REQUIRE(db->apply(b).is_ok());
  batch t;
  t.changes.push_back(upsert("app.users", user(100, "staged in the same batch")));
  change trunc;
  trunc.table = "app.users";
  trunc.op = change_op::truncate;
  t.changes.push_back(trunc);
  t.changes.push_back(upsert("app.users", user(200, "after")));
  BOOST_REQUIRE(db->apply(t).is_ok());
  auto rows = db->scan("app.users");
  BOOST_REQUIRE(rows->size() == 1u);
  BOOST_TEST((*rows)[0][0].as_int() == 200);
  BOOST_TEST(db->scan("app.events")->size() == 1u);
}

BOOST_AUTO_TEST_CASE(invalid_batches_write_nothing_and_say_what_is_wrong) {
  create_tables();
  struct bad_case {
    const char* what;
    change c;
    const char* expect;
  };
  std::vector<bad_case> cases = {
    {"unknown table", upsert("app.nope", user(1, "x")), "does not exist"},
    {"short row", upsert("app.users", {value::integer(1)}), "3 columns but the row has 1"},
    {"wrong kind", upsert("app.users", {value::text("1"), value::text("x"), value::null()}),
     "holds integer values but got text"},
    {"null key", upsert("app.users", {value::null(), value::text("x"), value::null()}),
     "not nullable"},
    {"wrong key width", erase("app.events", {value::text("only tenant")}),
     "2-column primary key"},
  };
  for (const auto& bc : cases) {
    batch b;
    b.changes.push_back(upsert("app.users", user(1, "valid part")));
    b.changes.push_back(bc.c);
    b.cursors.emplace_back("src", "1");
    auto r = db->apply(b);
    BOOST_TEST_CONTEXT(bc.what) {
      BOOST_REQUIRE(!r.is_ok());
      BOOST_TEST(r.error().message().find(bc.expect) != std::string::npos, r.error().message());
      BOOST_TEST(!db->get("app.users", {value::integer(1)})->has_value());
      BOOST_TEST(!db->cursor("src")->has_value());
    }
  }
  BOOST_TEST(db->last_seq() == 0u);
  auto st = db->create_table([] {
    auto s = users_schema();
    s.columns[1].kind = value_kind::integer;
    return s;
  }());
  BOOST_TEST((st.code() == errc::invalid_argument));
  BOOST_TEST(st.message().find("different schema") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(cursors_jobs_and_outbox_commit_with_the_changes) {
  create_tables();
  batch b;
  b.changes.push_back(upsert("app.users", user(1, "ada")));
  b.cursors.emplace_back("pg:main", "0/16B3748");
  job_state j;
  j.view = "app.users";
  j.persistence = "sync";
  j.state = "synced";
  j.retry_count = 2;
  j.last_error = "connection refused";
  b.jobs.push_back(j);
  outbox_entry e;
  e.view = "app.users";
  e.table = "app.users";
  e.key = {value::integer(1)};
  e.new_row = user(1, "ada");
  b.outbox_put.push_back(e);
  b.outbox_put.push_back(e);
  auto r = db->apply(b);
  BOOST_REQUIRE(r.is_ok());
  BOOST_TEST(r->outbox_seqs == (std::vector<std::uint64_t>{1, 2}), boost::test_tools::per_element());

  reopen();
  BOOST_TEST(**db->cursor("pg:main") == "0/16B3748");
  auto job = db->job("app.users");
  BOOST_REQUIRE(job->has_value());
  BOOST_TEST(((**job) == j));
  auto out = db->outbox();
  BOOST_REQUIRE(out->size() == 2u);
  BOOST_TEST((*out)[0].mutation_id == "node-a:1");
  BOOST_TEST((*out)[1].mutation_id == "node-a:2");
  BOOST_TEST(((*out)[0].state == outbox_state::pending));

  batch done;
  auto applied = (*out)[0];
  applied.state = outbox_state::applied;
  done.outbox_put.push_back(applied);
  done.outbox_remove.push_back(2);
  e.seq = 0;
  done.outbox_put.push_back(e);
  auto r2 = db->apply(done);
  BOOST_REQUIRE(r2.is_ok());
  BOOST_TEST(r2->outbox_seqs.back() == 3u);  // numbering continues after reopen
  out = db->outbox();
  BOOST_REQUIRE(out->size() == 2u);
  BOOST_TEST(((*out)[0].state == outbox_state::applied));
  BOOST_TEST((*out)[1].seq == 3u);
}

BOOST_AUTO_TEST_CASE(sequence_numbers_and_the_clock_continue_across_a_reopen) {
  create_tables();
  batch b;
  b.changes.push_back(upsert("app.users", user(1, "a")));
  b.changes.push_back(upsert("app.users", user(2, "b")));
  auto r = db->apply(b);
  BOOST_REQUIRE(r.is_ok());
  auto last_stamp = r->hlc;
  clock.set(clock.now_ms() - 60'000);  // the machine's clock jumps back
  reopen();
  BOOST_TEST(db->last_seq() == 2u);
  batch b2;
  b2.changes.push_back(upsert("app.users", user(3, "c")));
  auto r2 = db->apply(b2);
  BOOST_REQUIRE(r2.is_ok());
  BOOST_TEST(r2->first_seq == 3u);
  BOOST_TEST((last_stamp < r2->hlc));
  BOOST_TEST(db->tables().size() == 2u);
}

BOOST_AUTO_TEST_CASE(a_store_refuses_to_open_under_another_node_id) {
  opts.node_id = "node-z";
  auto r = store::open(opts);
  BOOST_REQUIRE(!r.is_ok());
  BOOST_TEST(r.error().message().find("belongs to node 'node-a'") != std::string::npos);
  opts.node_id = "";
  db.reset();
  auto same = store::open(opts);
  BOOST_REQUIRE(same.is_ok());
  BOOST_TEST((*same)->node_id() == "node-a");
}

BOOST_AUTO_TEST_CASE(concurrent_writers_are_all_applied_with_distinct_gapless_positions) {
  create_tables();
  constexpr int writers = 8;
  constexpr int per_writer = 200;
  std::vector<std::vector<std::uint64_t>> seqs(writers);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w)
    threads.emplace_back([&, w] {
      for (int i = 0; i < per_writer; ++i) {
        batch b;
        b.changes.push_back(upsert("app.users", user(w * 10'000 + i, "w")));
        b.changes.push_back(upsert("app.users", user(w * 10'000 + i + 5'000, "w")));
        b.cursors.emplace_back("writer-" + std::to_string(w), std::to_string(i));
        auto r = db->apply(b);
        if (!r || r->last_seq != r->first_seq + 1) {
          ++failures;
          return;
        }
        seqs[w].push_back(r->first_seq);
      }
    });
  for (auto& t : threads)
    t.join();
  BOOST_REQUIRE(failures == 0);
  std::set<std::uint64_t> all;
  for (const auto& v : seqs) {
    BOOST_TEST(std::is_sorted(v.begin(), v.end()));
    all.insert(v.begin(), v.end());
  }
  BOOST_TEST(all.size() == std::size_t{writers * per_writer});
  BOOST_TEST(db->last_seq() == std::uint64_t{2 * writers * per_writer});
  BOOST_TEST(db->scan("app.users")->size() == std::size_t{2 * writers * per_writer});
  for (int w = 0; w < writers; ++w)
    BOOST_TEST(**db->cursor("writer-" + std::to_string(w)) == std::to_string(per_writer - 1));
  // Every change-log entry follows its predecessor in one gapless sequence.
  auto log = db->read_changes(1, 0);
  BOOST_REQUIRE(log->size() == std::size_t{2 * writers * per_writer});
  for (std::size_t i = 0; i < log->size(); ++i)
    BOOST_TEST((*log)[i].seq == i + 1);
}

BOOST_AUTO_TEST_CASE(concurrent_writers_on_shared_keys_log_each_change_with_the_row_it_replaced) {
  create_tables();
  constexpr int writers = 8;
  constexpr int per_writer = 500;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w)
    threads.emplace_back([&, w] {
      for (int i = 0; i < per_writer; ++i) {
        batch b;
        for (int k = 0; k < 4; ++k) {
          auto id = static_cast<std::int64_t>((i * 7 + k * 13 + w) % 50);
          b.changes.push_back(upsert("app.users", user(id, "w", std::to_string(w * 100000 + i))));
        }
        if (!db->apply(b))
          ++failures;
      }
    });
  for (auto& t : threads)
    t.join();
  BOOST_REQUIRE(failures == 0);
  // Replaying the log key by key, every entry's old row is the row the
  // previous entry for that key left: groups see each other's writes.
  auto log = db->read_changes(1, 0);
  BOOST_REQUIRE(log.is_ok());
  BOOST_REQUIRE(log->size() == std::size_t{writers * per_writer * 4});
  std::map<std::string, std::optional<row>> last;
  std::size_t wrong = 0;
  for (const auto& c : *log) {
    auto k = to_display(c.key);
    auto it = last.find(k);
    if (c.old_row != (it == last.end() ? std::nullopt : it->second))
      ++wrong;
    last[k] = c.new_row;
  }
  BOOST_TEST(wrong == 0u);
  for (const auto& [k, r] : last) {
    auto key = r->at(0);
    BOOST_TEST(((**db->get("app.users", {key})) == *r), k);
  }
}

BOOST_AUTO_TEST_CASE(a_group_never_exceeds_its_change_bound) {
  db.reset();
  opts.group_commit_changes_max = 3;
  reopen();
  create_tables();
  batch big;
  for (std::int64_t id = 0; id < 10; ++id)
    big.changes.push_back(upsert("app.users", user(id, "x")));
  // A single batch larger than the bound still goes through whole.
  auto r = db->apply(big);
  BOOST_REQUIRE(r.is_ok());
  BOOST_TEST(r->last_seq - r->first_seq + 1 == 10u);
  opts.group_commit_changes_max = 0;
  db.reset();
  auto refused = store::open(opts);
  BOOST_REQUIRE(!refused.is_ok());
  BOOST_TEST(refused.error().message().find("group_commit_changes_max") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_follower_reads_from_any_position_and_waits_for_new_changes) {
  create_tables();
  for (std::int64_t id = 1; id <= 5; ++id) {
    batch b;
    b.changes.push_back(upsert("app.users", user(id, "x")));
    BOOST_REQUIRE(db->apply(b).is_ok());
  }
  change_follower from_three(*db, 3);
  auto first = from_three.next(100, steady_clock::now());
  BOOST_REQUIRE(first.is_ok());
  BOOST_TEST(first->size() == 3u);
  BOOST_TEST(first->front().seq == 3u);
  BOOST_TEST(from_three.position() == 6u);

  std::atomic<std::uint64_t> notified{0};
  auto id = db->add_commit_listener([&](std::uint64_t seq) { notified = seq; });
  std::thread writer([&] {
    batch b;
    b.changes.push_back(upsert("app.users", user(6, "late")));
    (void) db->apply(b);
  });
  auto more = from_three.next(100, steady_clock::now() + std::chrono::seconds(30));
  writer.join();
  db->remove_commit_listener(id);
  BOOST_REQUIRE(more.is_ok());
  BOOST_REQUIRE(more->size() == 1u);
  BOOST_TEST(more->front().seq == 6u);
  BOOST_TEST(notified.load() == 6u);

  auto none = from_three.next(100, steady_clock::now() + std::chrono::milliseconds(10));
  BOOST_TEST(none->empty());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_FIXTURE_TEST_SUITE(store_extension_records, mem_store_fixture)

BOOST_AUTO_TEST_CASE(extension_records_land_with_the_rows_and_scan_by_name) {
  create_tables();
  batch b;
  b.changes.push_back(upsert("app.users", user(1, "ann")));
  b.ext.emplace_back("peer/v/app.users/1", std::string("state of 1"));
  b.ext.emplace_back("peer/v/app.users/2", std::string("state of 2"));
  b.ext.emplace_back("peer/vv", std::string("watermarks"));
  BOOST_REQUIRE(db->apply(b).is_ok());
  BOOST_TEST(**db->ext("peer/vv") == "watermarks");
  BOOST_TEST(!db->ext("peer/none")->has_value());
  auto versions = db->ext_scan("peer/v/");
  BOOST_REQUIRE(versions.is_ok());
  BOOST_REQUIRE_EQUAL(versions->size(), 2u);
  BOOST_TEST((*versions)[0].first == "peer/v/app.users/1");
  BOOST_TEST((*versions)[1].second == "state of 2");
  auto from_two = db->ext_scan("peer/v/", "peer/v/app.users/2", 10);
  BOOST_REQUIRE_EQUAL(from_two->size(), 1u);
  BOOST_TEST(db->ext_scan("peer/", {}, 1)->size() == 1u);

  batch erase;
  erase.ext.emplace_back("peer/v/app.users/1", std::nullopt);
  BOOST_REQUIRE(db->apply(erase).is_ok());
  BOOST_TEST(db->ext_scan("peer/v/")->size() == 1u);
}

BOOST_AUTO_TEST_CASE(a_batch_refused_for_its_rows_writes_no_extension_record) {
  create_tables();
  batch b;
  b.changes.push_back(upsert("app.nope", user(1, "ann")));
  b.ext.emplace_back("peer/vv", std::string("watermarks"));
  BOOST_TEST(!db->apply(b).is_ok());
  BOOST_TEST(!db->ext("peer/vv")->has_value());
  batch unnamed;
  unnamed.ext.emplace_back("", std::string("x"));
  BOOST_TEST(db->apply(unnamed).error().message().find("needs a name") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
