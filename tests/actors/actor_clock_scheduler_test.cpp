// The in-memory network and the replicator on CAF's test clock: frames,
// replicator timers and actors' delayed messages move on one virtual time.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <boost/test/unit_test.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/send.hpp>

#include "actors/actor_clock_scheduler.hpp"
#include "actors/messages.hpp"
#include "tests/connectors/peer_cluster.hpp"
#include "tests/store/seed.hpp"

using namespace syncmesh;
using namespace std::chrono_literals;

namespace {

std::string joined(const std::vector<std::string>& xs) {
  std::string out;
  for (const auto& x : xs)
    out += (out.empty() ? "" : " ") + x;
  return "ran: [" + out + "]";
}

constexpr std::uint64_t wall_ms = 1'700'000'000'000ULL;

struct clock_fixture {
  clock_fixture() {
    actors::register_message_types(cfg);
    cfg.set("scheduler.policy", caf::atom("testing"));
    cfg.set("logger.inline-output", true);
    sys = std::make_unique<caf::actor_system>(cfg);
    sched = &dynamic_cast<caf::scheduler::test_coordinator&>(sys->scheduler());
    clock = std::make_unique<actors::actor_clock_scheduler>(*sys, wall_ms);
  }
  ~clock_fixture() {
    clock.reset();
    sched->run();
  }

  /// One millisecond of virtual time, and everything it made ready.
  void tick() {
    sched->advance_time(1ms);
    sched->run();
  }

  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::scheduler::test_coordinator* sched = nullptr;
  std::unique_ptr<actors::actor_clock_scheduler> clock;
};

// Two replicators on one network timed by `clock`: a connects to b.
struct pair_of_nodes {
  messaging::memory_network net;
  std::map<std::string, test::node> nodes;

  pair_of_nodes(messaging::scheduler& clock, std::uint64_t seed) : net(clock, seed) {
    messaging::link_faults faults;
    faults.delay_ms_min = 20;
    faults.delay_ms_max = 30;
    faults.loss = 0.2;
    faults.duplicate = 0.1;
    net.set_faults("a", "b", faults);
    net.set_faults("b", "a", faults);
    for (const auto* id : {"a", "b"}) {
      auto& n = nodes[id];
      n.env.reset(leveldb::NewMemEnv(leveldb::Env::Default()));
      n.clock = std::make_unique<test::scheduler_clock>(clock);
      store::options so;
      so.path = std::string("/mem/") + id;
      so.node_id = id;
      so.env = n.env.get();
      so.clock = n.clock.get();
      so.durability = store::durability_mode::buffered;
      n.db = std::move(store::store::open(so)).value();
      peer::replicator_config rc;
      rc.tables = {test::notes()};
      rc.links = {std::string(id) == "a" ? test::link("b", true) : test::link("a")};
      n.rep = std::make_unique<peer::replicator>(*n.db, net.attach(id), clock, rc);
    }
    for (auto& [id, n] : nodes)
      BOOST_REQUIRE(n.rep->start().is_ok());
  }
};

} // namespace

BOOST_FIXTURE_TEST_SUITE(actor_clock_scheduler_tests, clock_fixture)

BOOST_AUTO_TEST_CASE(callbacks_run_when_the_test_clock_reaches_them_in_scheduling_order) {
  std::vector<std::string> ran;
  auto t0 = clock->now_ms();
  BOOST_TEST(t0 == wall_ms);
  clock->at(t0 + 10, [&] { ran.push_back("a@" + std::to_string(clock->now_ms() - t0)); });
  clock->at(t0 + 5, [&] { ran.push_back("b@" + std::to_string(clock->now_ms() - t0)); });
  clock->at(t0 + 10, [&] { ran.push_back("c@" + std::to_string(clock->now_ms() - t0)); });
  clock->at(t0 - 50, [&] { ran.push_back("past@" + std::to_string(clock->now_ms() - t0)); });
  BOOST_TEST(clock->pending() == 4u);
  sched->run();
  BOOST_TEST(ran.empty());  // nothing runs before the clock moves
  tick();  // a time already past is due at once
  BOOST_TEST(ran == (std::vector<std::string>{"past@1"}), joined(ran));
  for (int i = 0; i < 3; ++i)
    tick();
  BOOST_TEST(ran.size() == 1u, joined(ran));
  tick();
  BOOST_TEST(ran == (std::vector<std::string>{"past@1", "b@5"}), joined(ran));
  for (int i = 0; i < 5; ++i)
    tick();
  BOOST_TEST(ran == (std::vector<std::string>{"past@1", "b@5", "a@10", "c@10"}), joined(ran));
  BOOST_TEST(clock->pending() == 0u);
}

BOOST_AUTO_TEST_CASE(a_callback_left_pending_never_runs_after_the_scheduler_is_gone) {
  bool ran = false;
  clock->at(clock->now_ms() + 5, [&] { ran = true; });
  clock.reset();
  for (int i = 0; i < 10; ++i)
    tick();
  BOOST_TEST(!ran);
}

// An actor's delayed message writes on a; the write reaches b only through
// the network's delays and losses, all on the test clock. Run twice from one
// seed, the virtual time of arrival and every frame count are the same.
BOOST_AUTO_TEST_CASE(actor_timers_and_network_frames_share_one_virtual_time) {
  auto seed = test::test_seed();
  struct outcome {
    std::uint64_t written_at = 0, arrived_at = 0, sent = 0, lost = 0, duplicated = 0;
  };
  auto run_once = [&](clock_fixture& f) {
    outcome o;
    pair_of_nodes p(*f.clock, seed);
    auto start = f.clock->now_ms();
    auto* a = &p.nodes.at("a");
    auto* clk = f.clock.get();
    auto writer = f.sys->spawn([a, clk, &o](caf::event_based_actor* self) -> caf::behavior {
      self->delayed_send(self, 1s, std::uint64_t{1});
      return {[a, clk, &o](std::uint64_t) {
        o.written_at = clk->now_ms();
        a->write(1, "from a timer");
      }};
    });
    f.sched->run();  // the actor starts, and sets its timer, at `start`
    auto& b = p.nodes.at("b");
    for (int i = 0; i < 10'000 && b.rows() == 0; ++i) {
      f.tick();
      if (o.written_at == 0)
        BOOST_REQUIRE(b.rows() == 0u);  // nothing to replicate before the timer
    }
    BOOST_REQUIRE_MESSAGE(b.rows() == 1u, "b never received a's write; seed " << seed);
    o.arrived_at = f.clock->now_ms();
    BOOST_TEST(o.written_at - start == 1000u);   // the actor's timer, on the same clock
    BOOST_TEST(o.arrived_at - o.written_at >= 20u);  // at least one network delay later
    auto c = p.net.counters();
    o.sent = c.sent;
    o.lost = c.lost;
    o.duplicated = c.duplicated;
    caf::anon_send_exit(writer, caf::exit_reason::user_shutdown);
    f.sched->run();
    return o;
  };
  auto first = run_once(*this);
  clock_fixture again;
  auto second = run_once(again);
  BOOST_TEST(first.arrived_at - wall_ms == second.arrived_at - wall_ms);
  BOOST_TEST(first.sent == second.sent);
  BOOST_TEST(first.lost == second.lost);
  BOOST_TEST(first.duplicated == second.duplicated);
}

BOOST_AUTO_TEST_SUITE_END()
