#include <set>

#include <boost/test/unit_test.hpp>
#include <caf/all.hpp>

#include "actor_fixture.hpp"
#include "actors/connector.hpp"
#include "actors/store_actor.hpp"
#include "actors/view_actor.hpp"

using namespace syncmesh;
using namespace syncmesh::actors;
using namespace syncmesh::actors::test;
using nlohmann::json;
using replies = std::shared_ptr<std::vector<std::string>>;

namespace {

// One view wired to a memory connector and a store actor, as the supervisor
// would wire it.
struct view_fixture : actor_fixture {
  explicit view_fixture(const std::string& persistence = "materialized",
                        node_config cfg = base_config())
    : actor_fixture(std::move(cfg)) {
    vcfg = view_of("items", persistence);
    store = spawn_store_actor(*sys, ctx);
    connector = spawn_connector(*sys, ctx, ctx->config.remotes.front());
    spawned.insert(spawned.end(), {store, connector});
  }

  caf::actor start_view() {
    view = spawn_view(*sys, ctx, vcfg, 1, connector, store);
    spawned.push_back(view);
    run();
    return view;
  }

  json status() {
    auto out = std::make_shared<std::vector<std::string>>();
    ask(view, out, status_atom::value);
    run();
    BOOST_REQUIRE_EQUAL(out->size(), 1u);
    auto answered = json::parse(out->front());
    // The control server answers `status` from the board: after every step
    // it must say exactly what the view actor says.
    auto posted = ctx->board->read({vcfg.full_name()});
    BOOST_REQUIRE(posted);
    BOOST_TEST(posted->front().dump() == answered.dump());
    return answered;
  }

  std::size_t local_rows() {
    auto rows = ctx->db->scan("shop.items");
    return rows ? rows->size() : 0;
  }

  void remote_upsert(std::int64_t id, const std::string& title) {
    auto cs = std::make_shared<change_set>();
    cs->table = "items";
    store::change c;
    c.table = "items";
    c.new_row = store::row{store::value::integer(id), store::value::text(title)};
    cs->changes.push_back(c);
    caf::anon_send(connector, exec_atom::value, changes_ref{cs});
    run();
  }

  void outage(bool on) {
    caf::anon_send(connector, outage_atom::value, on);
    run();
  }

  view_config vcfg;
  caf::actor store, connector, view;
};

} // namespace

BOOST_AUTO_TEST_SUITE(view_actor)

BOOST_FIXTURE_TEST_CASE(four_concurrent_syncs_on_an_idle_view_make_exactly_two_runs,
                        view_fixture) {
  start_view();  // a never-synced view runs once at start
  BOOST_REQUIRE_EQUAL(count_events("sync:start"), 1u);
  auto out = std::make_shared<std::vector<std::string>>();
  for (int i = 0; i < 4; ++i)
    ask(view, out, sync_atom::value);
  run();
  BOOST_TEST(count_events("sync:start") == 3u);  // the start-up run plus two
  BOOST_REQUIRE_EQUAL(out->size(), 4u);
  std::vector<std::uint64_t> runs;
  for (const auto& r : *out) {
    auto j = json::parse(r);
    BOOST_TEST(j["state"] == "synced");
    runs.push_back(j["run"].get<std::uint64_t>());
  }
  std::sort(runs.begin(), runs.end());
  // The first caller started run 2; the three that arrived while it ran
  // share run 3, which started after all of their calls.
  BOOST_TEST(runs == (std::vector<std::uint64_t>{2, 3, 3, 3}), boost::test_tools::per_element());
}

BOOST_FIXTURE_TEST_CASE(a_storm_of_a_thousand_syncs_yields_at_most_two_runs, view_fixture) {
  start_view();
  auto before = count_events("sync:start");
  auto out = std::make_shared<std::vector<std::string>>();
  for (int i = 0; i < 1000; ++i)
    ask(view, out, sync_atom::value);
  run();
  BOOST_TEST(count_events("sync:start") - before == 2u);
  BOOST_TEST(out->size() == 1000u);
  for (const auto& r : *out)
    BOOST_TEST(json::parse(r)["state"] == "synced");
}

BOOST_FIXTURE_TEST_CASE(a_materialized_run_copies_the_source_and_records_the_job, view_fixture) {
  start_view();
  BOOST_TEST(local_rows() == 2u);
  auto st = status();
  BOOST_TEST(st["state"] == "synced");
  BOOST_TEST(st["retry_count"] == 0);
  auto job = ctx->db->job("shop.items");
  BOOST_REQUIRE(job.is_ok());
  BOOST_REQUIRE(job->has_value());
  BOOST_TEST((*job)->state == "synced");
  BOOST_TEST((*job)->persistence == "materialized");
  // A remote write reaches a materialized view only with the next sync.
  remote_upsert(3, "fig");
  BOOST_TEST(local_rows() == 2u);
  auto out = std::make_shared<std::vector<std::string>>();
  ask(view, out, sync_atom::value);
  run();
  BOOST_TEST(local_rows() == 3u);
  BOOST_TEST(json::parse(out->front())["pulled"] == 3);
}

namespace {

node_config small_batches() {
  auto cfg = base_config();
  cfg.remotes.front().snapshot_batch_rows = 3;
  return cfg;
}

struct small_batch_view : view_fixture {
  small_batch_view() : view_fixture("materialized", small_batches()) {}
};

} // namespace

BOOST_FIXTURE_TEST_CASE(a_resync_stages_in_small_batches_and_readers_see_old_or_new_never_a_mix,
                        small_batch_view) {
  start_view();
  BOOST_REQUIRE_EQUAL(local_rows(), 2u);
  for (int i = 3; i <= 10; ++i)
    remote_upsert(i, "item-" + std::to_string(i));
  BOOST_REQUIRE_EQUAL(local_rows(), 2u);  // materialized: nothing until a sync
  auto before = ctx->db->last_seq();

  auto out = std::make_shared<std::vector<std::string>>();
  ask(view, out, sync_atom::value);
  // Step through every message: 10 rows in batches of 3 are four staged
  // applies and a swap; a reader between any two steps sees 2 rows or 10.
  std::size_t steps = 0;
  std::set<std::size_t> seen;
  while (sched->try_run_once()) {
    ++steps;
    seen.insert(local_rows());
  }
  BOOST_TEST(steps > 5u);
  BOOST_TEST((seen == std::set<std::size_t>{2u, 10u}));
  BOOST_REQUIRE_EQUAL(out->size(), 1u);
  BOOST_TEST(json::parse(out->front())["pulled"] == 10);
  auto st = status();
  BOOST_TEST(st["state"] == "synced");
  BOOST_TEST(st["progress"].is_null());
  // One change-log entry for the whole copy.
  auto log = ctx->db->read_changes(before + 1, 0);
  BOOST_REQUIRE(log.is_ok());
  std::size_t replaces = 0;
  for (const auto& c : *log)
    replaces += c.op == syncmesh::store::change_op::replace ? 1 : 0;
  BOOST_TEST(replaces == 1u);
  // The copy the swap retired is collected by the store actor.
  BOOST_TEST(!ctx->db->has_garbage());
}

BOOST_FIXTURE_TEST_CASE(failed_runs_retry_on_their_own_with_the_exact_backoff_schedule,
                        view_fixture) {
  outage(true);
  start_view();
  BOOST_TEST(status()["state"] == "failed");
  BOOST_TEST(count_events("sync:start") == 1u);
  // Retries at 500, 1000, 2000, 4000 (cap), 4000 ms after each failure.
  std::size_t runs = 1;
  for (std::int64_t delay : {500, 1000, 2000, 4000, 4000}) {
    auto st = status();
    BOOST_TEST(st["retry_count"] == runs);
    BOOST_TEST(st["last_error"].get<std::string>().find("simulated outage") != std::string::npos);
    BOOST_TEST(!st["next_retry_at"].is_null());
    advance(delay - 1);
    BOOST_TEST_CONTEXT("retry " << runs << " after " << delay << " ms") {
      BOOST_TEST(count_events("sync:start") == runs);  // not yet
      advance(1);
      BOOST_TEST(count_events("sync:start") == runs + 1);  // exactly on time
    }
    ++runs;
  }
}

BOOST_FIXTURE_TEST_CASE(a_view_recovers_by_itself_when_its_remote_returns, view_fixture) {
  vcfg = view_of("items", "realtime");
  outage(true);
  start_view();
  BOOST_TEST(status()["state"] == "failed");
  outage(false);
  // The connector reconnects on its own timer; the view follows without any
  // sync call.
  advance(4'000);
  auto st = status();
  BOOST_TEST(st["state"] == "running");  // following the stream again
  BOOST_TEST(st["retry_count"] == 0);
  BOOST_TEST(st["last_error"] == "");
  BOOST_TEST(local_rows() == 2u);
  BOOST_TEST(st["streaming"] == true);
  remote_upsert(3, "fig");
  BOOST_TEST(local_rows() == 3u);  // and it follows the stream again
}

// A resumed view counts as following its stream from the subscription on;
// a stream lost before the answer comes must fail that run (and retry), not
// leave the view "synced" on a stream that is gone.
BOOST_FIXTURE_TEST_CASE(a_stream_lost_before_the_subscription_is_answered_fails_the_run_and_resumes,
                        view_fixture) {
  vcfg = view_of("items", "realtime");
  start_view();
  BOOST_REQUIRE(status()["streaming"] == true);
  auto out = std::make_shared<std::vector<std::string>>();
  ask(view, out, stop_atom::value);
  run();
  remote_upsert(3, "fig");  // while stopped
  caf::anon_send(view, resume_atom::value);
  sched->run_once();  // the view takes the resume and asks to subscribe
  // The stream is lost before the connector's answer reaches the view.
  caf::anon_send(view, down_atom::value, std::string("inventory"), std::string("cut"));
  run();
  auto st = status();
  BOOST_TEST(st["state"] == "failed", st.dump());
  BOOST_TEST(st["streaming"] == false);
  advance(60'000);  // the retry follows on from the stream
  st = status();
  BOOST_TEST(st["state"] == "running", st.dump());
  BOOST_TEST(st["streaming"] == true);
  BOOST_TEST(local_rows() == 3u);  // the write made while stopped arrived
  remote_upsert(4, "kiwi");
  BOOST_TEST(local_rows() == 4u);
}

BOOST_FIXTURE_TEST_CASE(a_realtime_view_applies_the_stream_without_gap_or_duplicate,
                        view_fixture) {
  vcfg = view_of("items", "realtime");
  start_view();
  for (int i = 3; i < 50; ++i)
    remote_upsert(i, "item-" + std::to_string(i));
  BOOST_TEST(local_rows() == 49u);
  // The change log holds the snapshot (one `replace` entry, not one per
  // row) and each change once.
  auto log = ctx->db->read_changes(1, 0);
  BOOST_REQUIRE(log.is_ok());
  BOOST_REQUIRE(log->size() == 1u + 47u);
  BOOST_TEST(((*log)[0].op == syncmesh::store::change_op::replace));
  BOOST_TEST(status()["last_seen_commit"] == "47");
}

BOOST_FIXTURE_TEST_CASE(stop_disables_the_job_and_sync_does_not_restart_it, view_fixture) {
  vcfg = view_of("items", "realtime");
  start_view();
  auto out = std::make_shared<std::vector<std::string>>();
  ask(view, out, stop_atom::value);
  run();
  BOOST_TEST(status()["enabled"] == false);
  BOOST_TEST(status()["state"] == "idle");
  remote_upsert(3, "missed while stopped");
  BOOST_TEST(local_rows() == 2u);
  auto runs = count_events("sync:start");
  ask(view, out, sync_atom::value);
  run();
  BOOST_TEST(json::parse(out->back())["skipped"] == true);
  BOOST_TEST(count_events("sync:start") == runs);
  // resume catches up on what was missed, through the normal sync path.
  ask(view, out, resume_atom::value);
  run();
  BOOST_TEST(json::parse(out->back())["state"] == "running");
  BOOST_TEST(local_rows() == 3u);
  BOOST_TEST(status()["enabled"] == true);
  remote_upsert(4, "after resume");
  BOOST_TEST(local_rows() == 4u);
}

BOOST_FIXTURE_TEST_CASE(stop_leaves_no_retry_timer_behind, view_fixture) {
  outage(true);
  start_view();
  BOOST_TEST(status()["state"] == "failed");
  auto out = std::make_shared<std::vector<std::string>>();
  ask(view, out, stop_atom::value);
  run();
  outage(false);
  auto runs = count_events("sync:start");
  // Far past every backoff step, the connector's reconnect and every request
  // timeout (a snapshot may take 30 minutes).
  advance(60'000);
  advance(31 * 60'000);
  BOOST_TEST(count_events("sync:start") == runs);
  BOOST_TEST(status()["state"] == "idle");
  BOOST_TEST(status()["next_retry_at"].is_null());
  BOOST_TEST(!sched->clock().has_pending_timeout());
}

BOOST_FIXTURE_TEST_CASE(a_restarted_view_finds_its_job_state_where_it_left_it, view_fixture) {
  vcfg = view_of("items", "realtime");
  start_view();
  auto out = std::make_shared<std::vector<std::string>>();
  ask(view, out, stop_atom::value);
  run();
  caf::anon_send_exit(view, caf::exit_reason::kill);
  run();
  start_view();
  auto st = status();
  BOOST_TEST(st["enabled"] == false);
  BOOST_TEST(st["state"] == "idle");
  BOOST_TEST(local_rows() == 2u);
}

BOOST_FIXTURE_TEST_CASE(local_writes_on_a_sync_view_queue_offline_and_drain_on_reconnect,
                        view_fixture) {
  vcfg = view_of("items", "sync");
  start_view();
  outage(true);
  auto out = std::make_shared<std::vector<std::string>>();
  ask(view, out, exec_atom::value, std::string(R"({"upsert": [{"id": 10, "title": "offline"}]})"));
  run();
  BOOST_REQUIRE_EQUAL(out->size(), 1u);
  BOOST_TEST(json::parse(out->front())["applied"] == 1);
  BOOST_TEST(local_rows() == 3u);
  BOOST_TEST(status()["outbox"]["pending"] == 1);
  outage(false);
  advance(4'000);  // reconnect, then the view's run pushes the outbox first
  auto st = status();
  BOOST_TEST(st["outbox"]["pending"] == 0);
  BOOST_TEST(st["outbox"]["applied"] == 1);
  BOOST_TEST(st["state"] == "running");
  BOOST_TEST(local_rows() == 3u);  // the snapshot after the push holds the write
}

BOOST_FIXTURE_TEST_CASE(writes_to_a_read_only_view_are_refused_with_a_sentence, view_fixture) {
  start_view();
  auto out = std::make_shared<std::vector<std::string>>();
  ask(view, out, exec_atom::value, std::string(R"({"upsert": [{"id": 10, "title": "x"}]})"));
  run();
  BOOST_REQUIRE_EQUAL(out->size(), 1u);
  BOOST_TEST(out->front().find("takes no local writes") != std::string::npos, out->front());
  BOOST_TEST(local_rows() == 2u);
}

BOOST_AUTO_TEST_SUITE_END()
