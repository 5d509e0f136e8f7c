#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "messaging/memory_transport.hpp"
#include "messaging/scheduler.hpp"
#include "tests/store/seed.hpp"

using namespace syncmesh::messaging;

namespace {

// Everything the nodes of a network saw, in order, with the virtual time.
struct recorder {
  explicit recorder(manual_scheduler& c) : clock(c) {}

  manual_scheduler& clock;
  std::vector<std::string> events;

  transport_handler for_node(const std::string& self) {
    transport_handler h;
    h.connected = [this, self](const std::string& peer) {
      events.push_back(at() + self + " connected to " + peer);
    };
    h.disconnected = [this, self](const std::string& peer, const std::string& reason) {
      events.push_back(at() + self + " lost " + peer + ": " + reason);
    };
    h.received = [this, self](const std::string& peer, std::string frame) {
      events.push_back(at() + self + " got " + frame + " from " + peer);
      frames[self].push_back(frame);
    };
    return h;
  }

  std::string at() const { return "t=" + std::to_string(clock.now_ms()) + " "; }

  std::map<std::string, std::vector<std::string>> frames;
};

// Two nodes, a and b, linked.
struct pair_fixture {
  manual_scheduler clock;
  recorder seen{clock};
  memory_network net;
  transport& a;
  transport& b;

  explicit pair_fixture(std::uint64_t seed = 1, std::size_t in_flight_max = 10000)
    : net(clock, seed, in_flight_max), a(net.attach("a")), b(net.attach("b")) {
    a.set_handler(seen.for_node("a"));
    b.set_handler(seen.for_node("b"));
    a.connect("b");
    clock.run_until_idle(1000);
    BOOST_TEST_REQUIRE(net.is_linked("a", "b"));
  }

  void send_numbered(transport& from, const std::string& to, int n) {
    for (int i = 0; i < n; ++i)
      BOOST_TEST_REQUIRE(from.send(to, std::to_string(i)));
  }

  std::size_t out_of_order(const std::vector<std::string>& got) const {
    std::size_t n = 0;
    for (std::size_t i = 1; i < got.size(); ++i)
      n += std::stoi(got[i]) < std::stoi(got[i - 1]);
    return n;
  }
};

// A run with every fault on: three nodes, a partition that comes and goes,
// a cut and a reconnect. Returns everything every node saw.
std::vector<std::string> faulty_run(std::uint64_t seed) {
  manual_scheduler clock;
  recorder seen{clock};
  memory_network net(clock, seed);
  link_faults f;
  f.delay_ms_min = 1;
  f.delay_ms_max = 40;
  f.loss = 0.1;
  f.duplicate = 0.1;
  f.reorder = 0.2;
  f.reorder_ms_max = 100;
  net.set_faults(f);
  std::vector<transport*> nodes;
  for (const char* id : {"a", "b", "c"}) {
    nodes.push_back(&net.attach(id));
    nodes.back()->set_handler(seen.for_node(id));
  }
  nodes[0]->connect("b");
  nodes[0]->connect("c");
  nodes[1]->connect("c");
  clock.run_until_idle(1000);
  for (int round = 0; round < 60; ++round) {
    if (round == 20)
      net.partition("a", "b");
    if (round == 30)
      net.cut("b", "c");
    if (round == 35)
      nodes[2]->connect("b");
    if (round == 40)
      net.heal_all();
    for (auto* from : nodes)
      for (const char* to : {"a", "b", "c"})
        if (from->local_id() != to)
          (void)from->send(to, from->local_id() + std::to_string(round));
    clock.advance(10);
  }
  clock.run_until_idle(10'000);
  const auto& c = net.counters();
  seen.events.push_back("counters sent=" + std::to_string(c.sent) + " delivered=" +
                        std::to_string(c.delivered) + " lost=" + std::to_string(c.lost) +
                        " duplicated=" + std::to_string(c.duplicated) + " held_back=" +
                        std::to_string(c.held_back) + " partitioned=" +
                        std::to_string(c.partitioned) + " unlinked=" +
                        std::to_string(c.unlinked));
  return seen.events;
}

} // namespace

BOOST_AUTO_TEST_SUITE(virtual_time)

BOOST_AUTO_TEST_CASE(callbacks_run_in_time_order_and_ties_in_the_order_scheduled) {
  manual_scheduler clock(100);
  std::vector<std::string> ran;
  clock.at(130, [&] { ran.push_back("c@" + std::to_string(clock.now_ms())); });
  clock.at(110, [&] { ran.push_back("a@" + std::to_string(clock.now_ms())); });
  clock.at(110, [&] {
    ran.push_back("b@" + std::to_string(clock.now_ms()));
    clock.at(clock.now_ms() + 5, [&] { ran.push_back("b2@" + std::to_string(clock.now_ms())); });
  });
  clock.at(50, [&] { ran.push_back("past@" + std::to_string(clock.now_ms())); });
  BOOST_TEST(clock.advance(9) == 1u);  // only the one already due
  BOOST_TEST(clock.now_ms() == 109u);
  BOOST_TEST(clock.advance(21) == 4u);
  BOOST_TEST(clock.now_ms() == 130u);
  std::vector<std::string> want{"past@100", "a@110", "b@110", "b2@115", "c@130"};
  BOOST_TEST(ran == want, boost::test_tools::per_element());
  BOOST_TEST(clock.pending() == 0u);
  BOOST_TEST(!clock.next_due_ms().has_value());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(memory_transport)

BOOST_AUTO_TEST_CASE(frames_arrive_whole_and_in_order_after_exactly_the_configured_delay) {
  pair_fixture p;
  link_faults f;
  f.delay_ms_min = f.delay_ms_max = 25;
  p.net.set_faults(f);
  p.send_numbered(p.a, "b", 3);
  p.clock.advance(24);
  BOOST_TEST(p.seen.frames["b"].empty());
  p.clock.advance(1);
  std::vector<std::string> want{"0", "1", "2"};
  BOOST_TEST(p.seen.frames["b"] == want, boost::test_tools::per_element());
  BOOST_TEST(p.seen.events.back() == "t=26 b got 2 from a");
  BOOST_TEST(p.net.counters().delivered == 3u);
}

BOOST_AUTO_TEST_CASE(one_seed_replays_the_same_run_frame_for_frame_and_another_differs) {
  auto seed = syncmesh::test::test_seed();
  auto first = faulty_run(seed);
  auto again = faulty_run(seed);
  BOOST_TEST(first.size() > 150u);  // about 300: a run with something in it
  BOOST_TEST(first == again, "seed " << seed << " did not replay its run");
  BOOST_TEST(faulty_run(seed + 1) != first, "seeds " << seed << " and " << seed + 1
                                                     << " gave the same run");
  BOOST_TEST_MESSAGE(first.back());
}

BOOST_AUTO_TEST_CASE(loss_drops_about_the_configured_share_and_counts_every_frame) {
  pair_fixture p(7);
  link_faults f;
  f.loss = 0.25;
  p.net.set_faults(f);
  p.send_numbered(p.a, "b", 4000);
  p.clock.run_until_idle(1000);
  const auto& c = p.net.counters();
  BOOST_TEST(c.delivered + c.lost == 4000u);
  BOOST_TEST(c.lost == 4000u - p.seen.frames["b"].size());
  BOOST_TEST(c.lost > 850u);
  BOOST_TEST(c.lost < 1150u);
  BOOST_TEST(p.out_of_order(p.seen.frames["b"]) == 0u);  // loss alone never reorders
}

BOOST_AUTO_TEST_CASE(duplication_delivers_copies_and_counts_each) {
  pair_fixture p(8);
  link_faults f;
  f.duplicate = 0.5;
  p.net.set_faults(f);
  p.send_numbered(p.a, "b", 2000);
  p.clock.run_until_idle(1000);
  const auto& c = p.net.counters();
  BOOST_TEST(p.seen.frames["b"].size() == 2000u + c.duplicated);
  BOOST_TEST(c.duplicated > 850u);
  BOOST_TEST(c.duplicated < 1150u);
}

BOOST_AUTO_TEST_CASE(frames_reorder_only_when_their_delays_differ) {
  pair_fixture steady(9);
  link_faults fixed;
  fixed.delay_ms_min = fixed.delay_ms_max = 30;
  steady.net.set_faults(fixed);
  steady.send_numbered(steady.a, "b", 500);
  steady.clock.run_until_idle(1000);
  BOOST_TEST(steady.out_of_order(steady.seen.frames["b"]) == 0u);

  pair_fixture shaken(9);
  link_faults f = fixed;
  f.reorder = 0.2;
  f.reorder_ms_max = 50;
  shaken.net.set_faults(f);
  for (int i = 0; i < 500; ++i) {  // one frame per ms, so a held-back one is overtaken
    BOOST_TEST_REQUIRE(shaken.a.send("b", std::to_string(i)));
    shaken.clock.advance(1);
  }
  shaken.clock.run_until_idle(1000);
  BOOST_TEST(shaken.seen.frames["b"].size() == 500u);
  BOOST_TEST(shaken.net.counters().held_back > 50u);
  BOOST_TEST(shaken.out_of_order(shaken.seen.frames["b"]) > 50u);
}

BOOST_AUTO_TEST_CASE(faults_of_one_direction_leave_the_other_alone) {
  pair_fixture p;
  link_faults drop_all;
  drop_all.loss = 1.0;
  p.net.set_faults("a", "b", drop_all);
  p.send_numbered(p.a, "b", 10);
  p.send_numbered(p.b, "a", 10);
  p.clock.run_until_idle(1000);
  BOOST_TEST(p.seen.frames["b"].empty());
  BOOST_TEST(p.seen.frames["a"].size() == 10u);
}

BOOST_AUTO_TEST_CASE(a_partition_silences_both_ways_and_loses_frames_in_flight_until_healed) {
  pair_fixture p;
  link_faults f;
  f.delay_ms_min = f.delay_ms_max = 10;
  p.net.set_faults(f);
  auto& c = p.net.attach("c");
  c.set_handler(p.seen.for_node("c"));
  p.a.connect("c");
  p.clock.run_until_idle(1000);

  BOOST_TEST_REQUIRE(p.a.send("b", "in flight"));
  p.net.partition("a", "b");
  BOOST_TEST(p.a.send("b", "into the void"));  // a partition is silence, not a refusal
  BOOST_TEST(p.b.send("a", "back into the void"));
  BOOST_TEST(p.a.send("c", "to c"));
  p.clock.run_until_idle(1000);
  BOOST_TEST(p.seen.frames["b"].empty());
  BOOST_TEST(p.seen.frames["a"].empty());
  BOOST_TEST(p.seen.frames["c"] == std::vector<std::string>{"to c"},
             boost::test_tools::per_element());
  BOOST_TEST(p.net.counters().partitioned == 3u);
  BOOST_TEST(p.net.is_linked("a", "b"));  // nobody was told: heartbeats must notice

  p.net.heal("a", "b");
  BOOST_TEST(p.a.send("b", "after"));
  p.clock.run_until_idle(1000);
  BOOST_TEST(p.seen.frames["b"] == std::vector<std::string>{"after"},
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_connect_across_a_partition_or_to_an_absent_node_completes_later) {
  manual_scheduler clock;
  recorder seen{clock};
  memory_network net(clock, 3);
  auto& a = net.attach("a");
  a.set_handler(seen.for_node("a"));
  a.connect("b");  // b does not exist yet
  clock.run_until_idle(1000);
  BOOST_TEST(!net.is_linked("a", "b"));
  BOOST_TEST(!a.send("b", "x"));
  BOOST_TEST(net.counters().unlinked == 1u);

  net.partition("a", "b");
  auto& b = net.attach("b");
  b.set_handler(seen.for_node("b"));
  clock.run_until_idle(1000);
  BOOST_TEST(!net.is_linked("a", "b"));

  net.heal_all();
  clock.run_until_idle(1000);
  BOOST_TEST(net.is_linked("a", "b"));
  std::vector<std::string> want{"t=3 a connected to b", "t=3 b connected to a"};
  BOOST_TEST(seen.events == want, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_disconnect_or_cut_tells_both_sides_and_drops_what_was_in_flight) {
  pair_fixture p;
  link_faults f;
  f.delay_ms_min = f.delay_ms_max = 10;
  p.net.set_faults(f);
  BOOST_TEST_REQUIRE(p.a.send("b", "lost with the link"));
  p.a.disconnect("b");
  BOOST_TEST(!p.a.send("b", "refused"));
  p.clock.run_until_idle(1000);
  BOOST_TEST(p.seen.frames["b"].empty());
  BOOST_TEST(p.net.counters().unlinked == 2u);
  auto n = p.seen.events.size();
  BOOST_TEST_REQUIRE(n >= 2u);
  BOOST_TEST(p.seen.events[n - 2] == "t=1 a lost b: closed by a");
  BOOST_TEST(p.seen.events[n - 1] == "t=1 b lost a: closed by a");

  p.b.connect("a");
  p.clock.run_until_idle(1000);
  BOOST_TEST_REQUIRE(p.net.is_linked("a", "b"));
  p.net.cut("a", "b");
  p.clock.run_until_idle(1000);
  BOOST_TEST(!p.net.is_linked("a", "b"));
  BOOST_TEST(p.seen.events.back() == "t=21 b lost a: the network cut the link between a and b");
}

BOOST_AUTO_TEST_CASE(frames_past_the_in_flight_bound_are_dropped_and_counted) {
  pair_fixture p(1, /*in_flight_max=*/10);
  link_faults f;
  f.delay_ms_min = f.delay_ms_max = 5;
  p.net.set_faults(f);
  p.send_numbered(p.a, "b", 15);
  p.clock.run_until_idle(1000);
  BOOST_TEST(p.seen.frames["b"].size() == 10u);
  BOOST_TEST(p.net.counters().overflowed == 5u);
  // Once delivered, the queue has room again.
  BOOST_TEST(p.a.send("b", "room"));
  p.clock.run_until_idle(1000);
  BOOST_TEST(p.seen.frames["b"].back() == "room");
}

BOOST_AUTO_TEST_SUITE_END()
