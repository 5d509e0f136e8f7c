// Nodes whose frame_bytes_max differ: each tells the other its bound in its
// greeting, and a sender keeps every frame within the receiver's. A row too
// big for the receiver's frames holds the link, says so in its status, and
// is sent, with everything after it, once the receiver's bound is raised.

#include <set>

#include "tests/connectors/peer_cluster.hpp"

using namespace syncmesh;
using namespace syncmesh::test;
namespace wire = messaging::peer;

namespace {

constexpr std::size_t small_frames = 8 * 1024;
constexpr std::size_t large_frames = 256 * 1024;

/// "hub" takes frames of up to 256 KiB, "a" (which dials it) 8 KiB.
cluster mismatched() {
  return cluster({{"hub", {link("a")}}, {"a", {link("hub", true)}}},
                 [](peer::replicator_config& cfg) {
                   const bool is_a = cfg.links.front().peer == "hub";
                   cfg.limits.frame_bytes_max = is_a ? small_frames : large_frames;
                 });
}

} // namespace

BOOST_AUTO_TEST_SUITE(peer_frame_limit)

BOOST_AUTO_TEST_CASE(a_sender_keeps_its_deltas_within_the_receivers_smaller_frames) {
  auto c = mismatched();
  auto& hub = c.nodes["hub"];
  auto& a = c.nodes["a"];
  BOOST_TEST_REQUIRE((hub.link("a").state == peer::link_state::live));

  // 1 KiB rows: the hub's own bound would put ~120 of them in a delta,
  // 16 times what a takes in a frame.
  const std::string body(1024, 'x');
  for (std::int64_t id = 1; id <= 300; ++id)
    hub.write(id, body + std::to_string(id));
  for (int ms = 0; ms < 10'000 && a.rows() < 300; ms += 10)
    c.sched.advance(10);

  BOOST_TEST(a.rows() == 300u);
  BOOST_TEST(a.link("hub").frames_refused == 0u);
  BOOST_TEST(*peer::table_digest(*a.db, "app.notes") == *peer::table_digest(*hub.db, "app.notes"));
  BOOST_TEST(hub.link("a").held.empty());
}

BOOST_AUTO_TEST_CASE(a_row_too_big_for_the_receivers_frames_holds_the_link_and_loses_nothing) {
  auto c = mismatched();
  auto& hub = c.nodes["hub"];
  auto& a = c.nodes["a"];
  BOOST_TEST_REQUIRE((hub.link("a").state == peer::link_state::live));

  hub.write(1, "before");
  hub.write(2, std::string(20 * 1024, 'y'));  // fits the hub's frames, not a's
  hub.write(3, "after");
  a.write(10, "from a");  // the other direction is not held
  c.sched.advance(2'000);

  BOOST_TEST(a.rows() == 2u);  // rows 1 and 10; row 2 waits, and row 3 behind it
  BOOST_TEST((a.row(1) == hub.row(1)));
  BOOST_TEST(a.row(2).empty());
  BOOST_TEST(a.row(3).empty());
  BOOST_TEST(hub.rows() == 4u);
  BOOST_TEST(a.link("hub").frames_refused == 0u);  // nothing too big was sent
  const auto held = hub.link("a").held;
  BOOST_TEST(held.find("key (2)") != std::string::npos, held);
  BOOST_TEST(held.find("frame_bytes_max allows on node 'a' (8192)") != std::string::npos, held);
  BOOST_TEST(held.find("this node") == std::string::npos, held);  // the hub's own bound is enough
  BOOST_TEST(held.find("raised to at least") != std::string::npos, held);
  BOOST_TEST((hub.link("a").state == peer::link_state::live));  // heartbeats go on

  // a's bound raised, as after a restart with a new config: everything
  // arrives, in order.
  a.cfg.limits.frame_bytes_max = large_frames;
  c.nodes.at("a").transport->disconnect("hub");
  c.restart("a");
  for (int ms = 0; ms < 10'000 && a.rows() < 4; ms += 10)
    c.sched.advance(10);

  BOOST_TEST(a.rows() == 4u);
  BOOST_TEST((a.row(2) == hub.row(2)));
  BOOST_TEST(*peer::table_digest(*a.db, "app.notes") == *peer::table_digest(*hub.db, "app.notes"));
  BOOST_TEST(hub.link("a").held.empty());
}

BOOST_AUTO_TEST_CASE(a_full_sync_holds_at_a_row_too_big_for_the_peers_frames_and_completes_nothing) {
  cluster c({{"hub", {link("late")}}});
  auto& hub = c.nodes["hub"];
  hub.write(1, "before");
  hub.write(2, std::string(20 * 1024, 'y'));
  hub.write(3, "after");

  // A peer with 8 KiB frames asks for everything.
  raw_peer late(c, "late");
  BOOST_TEST_REQUIRE(late.linked);
  late.send(wire::encode(
    wire::hello{"late", wire::link_mode::bidirectional, {"app.notes"}, small_frames}));
  late.send(wire::encode(wire::resume{64, std::uint64_t{1} << 30}));
  late.send(wire::encode(wire::sync_request{wire::sync_kind::full, {}}));
  c.sched.advance(2'000);

  std::set<std::string> keys;  // a batch not acknowledged is sent again
  bool completed = false;
  for (const auto& m : late.got) {
    if (const auto* b = std::get_if<wire::sync_batch>(&m))
      for (const auto& ch : b->changes)
        keys.insert(store::to_display(ch.key));
    completed = completed || std::holds_alternative<wire::sync_complete>(m);
  }
  // Row 1 went; row 2 holds the sync, and row 3 waits behind it; no
  // sync_complete, so late counts nothing of the hub's as held.
  BOOST_TEST((keys == std::set<std::string>{"(1)"}));
  BOOST_TEST(!completed);
  BOOST_TEST(hub.link("late").full_syncs_sent == 0u);
  const auto held = hub.link("late").held;
  BOOST_TEST(held.find("key (2)") != std::string::npos, held);
  BOOST_TEST(held.find("node 'late' (8192)") != std::string::npos, held);
}

BOOST_AUTO_TEST_SUITE_END()
