#include <boost/test/unit_test.hpp>
#include <caf/all.hpp>

#include "actor_fixture.hpp"
#include "actors/supervisor.hpp"

using namespace syncmesh;
using namespace syncmesh::actors;
using namespace syncmesh::actors::test;
using nlohmann::json;

namespace {

node_config two_views() {
  auto cfg = base_config();
  cfg.views = {view_of("items", "realtime"), view_of("copy", "materialized")};
  return cfg;
}

struct supervisor_fixture : actor_fixture {
  supervisor_fixture() : actor_fixture(two_views()) {
    sup = spawn_supervisor(*sys, ctx);
    spawned.push_back(sup);
    run();
  }

  caf::actor child(const std::string& name) {
    caf::actor found;
    sys->spawn([&, name](caf::event_based_actor* self) {
      self->request(sup, caf::infinite, children_atom::value, name)
        .then([&](const caf::actor& h) { found = h; });
    });
    run();
    return found;
  }

  json children() {
    auto out = std::make_shared<std::vector<std::string>>();
    ask(sup, out, children_atom::value);
    run();
    return json::parse(out->front());
  }

  json child_info(const std::string& name) {
    for (const auto& c : children())
      if (c["name"] == name)
        return c;
    return {};
  }

  template <class Atom>
  std::string ask_text(Atom atom, const std::string& arg) {
    auto out = std::make_shared<std::vector<std::string>>();
    ask(sup, out, atom, arg);
    run();
    BOOST_REQUIRE_EQUAL(out->size(), 1u);
    return out->front();
  }

  /// `status` as the control server answers it from the board, checked to
  /// be what the supervisor answers through the actors.
  json board_status(const std::string& sel) {
    std::vector<std::string> order;
    for (const auto& v : ctx->config.views)
      order.push_back(v.full_name());
    auto fast = answer_from_board(*ctx->board, order, "status", {{"selector", json::parse(sel)}});
    BOOST_REQUIRE(fast);
    BOOST_TEST(fast->dump() == json::parse(ask_text(status_atom::value, sel)).dump());
    return *fast;
  }

  void crash(const std::string& name) {
    auto h = child(name);
    BOOST_REQUIRE(static_cast<bool>(h));
    caf::anon_send_exit(h, caf::exit_reason::kill);
    run();
  }

  caf::actor sup;
};

} // namespace

BOOST_FIXTURE_TEST_SUITE(supervisor, supervisor_fixture)

BOOST_AUTO_TEST_CASE(a_crashed_view_is_restarted_after_the_backoff_and_keeps_its_state) {
  BOOST_TEST(json::parse(ask_text(status_atom::value, "\"*\"")).size() == 2u);
  auto before = child("shop.items");
  crash("shop.items");
  BOOST_TEST(!static_cast<bool>(child("shop.items")));  // down while the restart timer runs
  BOOST_TEST(board_status("\"*\"")[0]["state"] == "failed");
  advance(199);
  BOOST_TEST(!static_cast<bool>(child("shop.items")));
  advance(1);  // restart.initial_ms = 200
  auto after = child("shop.items");
  BOOST_REQUIRE(static_cast<bool>(after));
  BOOST_TEST((after != before));
  BOOST_TEST(child_info("shop.items")["restarts"] == 1);
  auto st = board_status(R"({"shop": ["items"]})");
  BOOST_TEST(st[0]["state"] == "running");  // realtime: following its stream again
  BOOST_TEST(ctx->db->scan("shop.items")->size() == 2u);
}

BOOST_AUTO_TEST_CASE(restart_delays_back_off_exponentially) {
  crash("shop.items");
  advance(200);
  BOOST_REQUIRE(child("shop.items"));
  crash("shop.items");  // second crash in the window: 400 ms
  advance(399);
  BOOST_TEST(!static_cast<bool>(child("shop.items")));
  advance(1);
  BOOST_TEST(static_cast<bool>(child("shop.items")));
}

BOOST_AUTO_TEST_CASE(too_many_crashes_in_the_window_escalate_and_the_node_stays_up) {
  crash("shop.items");
  advance(200);
  crash("shop.items");
  advance(400);
  crash("shop.items");  // third crash > restart_intensity_max = 2
  advance(10'000);
  BOOST_TEST(!static_cast<bool>(child("shop.items")));
  auto info = child_info("shop.items");
  BOOST_TEST(info["escalated"] == true);
  BOOST_TEST(info["reason"].get<std::string>().find("crashed 3 times") != std::string::npos);
  // status says so, the persisted job says so, and an error event says so.
  auto st = board_status("\"*\"");
  BOOST_TEST(st[0]["view"] == "shop.items");
  BOOST_TEST(st[0]["state"] == "failed");
  BOOST_TEST(st[0]["error"].get<std::string>().find("no longer restarted") != std::string::npos);
  auto job = ctx->db->job("shop.items");
  BOOST_REQUIRE(job.is_ok() && job->has_value());
  BOOST_TEST((*job)->state == "failed");
  BOOST_TEST((*job)->last_error.find("crashed 3 times") != std::string::npos);
  BOOST_TEST(count_events("error") >= 1u);
  // The other view keeps serving.
  BOOST_TEST(st[1]["state"] == "synced");
  auto sync = json::parse(ask_text(sync_atom::value, R"({"shop": ["copy"]})"));
  BOOST_TEST(sync[0]["state"] == "synced");
}

BOOST_AUTO_TEST_CASE(crashes_spread_beyond_the_window_do_not_escalate) {
  for (int i = 0; i < 5; ++i) {
    crash("shop.items");
    advance(70'000);  // past restart_window_ms: the old crashes are forgotten
    BOOST_REQUIRE_MESSAGE(static_cast<bool>(child("shop.items")), "restart " << i);
  }
  BOOST_TEST(child_info("shop.items")["escalated"] == false);
  BOOST_TEST(child_info("shop.items")["restarts"] == 5);
}

BOOST_AUTO_TEST_CASE(a_restarted_connector_is_handed_to_its_views) {
  crash("inventory");
  advance(200);
  BOOST_REQUIRE(static_cast<bool>(child("inventory")));
  auto sync = json::parse(ask_text(sync_atom::value, "\"*\""));
  BOOST_TEST(sync[0]["state"] == "running");
  BOOST_TEST(sync[1]["state"] == "synced");
}

BOOST_AUTO_TEST_CASE(unknown_selectors_are_errors_not_empty_successes) {
  auto r = ask_text(status_atom::value, R"({"shop": ["nope"]})");
  BOOST_TEST(r.find("no view matches shop.nope") != std::string::npos, r);
  auto bad = ask_text(sync_atom::value, R"({"": 3})");
  BOOST_TEST(bad.find("error") == 0u, bad);
}

BOOST_AUTO_TEST_CASE(shutdown_stops_views_then_connectors_then_the_store) {
  auto out = std::make_shared<std::vector<std::string>>();
  bool done = false;
  sys->spawn([&](caf::event_based_actor* self) {
    self->request(sup, caf::infinite, shutdown_atom::value).then([&](bool ok) { done = ok; });
  });
  run();
  BOOST_TEST(done);
  BOOST_TEST(!static_cast<bool>(child("shop.items")));
}

BOOST_AUTO_TEST_SUITE_END()
