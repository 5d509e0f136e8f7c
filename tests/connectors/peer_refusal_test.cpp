// Refusals decided by the receiving node from its own config, on the
// in-memory network without faults: a push-only link and an untrusted
// origin, each answered with a delta_nack that both sides count.

#include "tests/connectors/peer_cluster.hpp"

using namespace syncmesh;
using namespace syncmesh::test;


BOOST_AUTO_TEST_SUITE(peer_refusal)

BOOST_AUTO_TEST_CASE(a_push_only_link_refuses_the_spokes_writes_with_a_nack_both_sides_count) {
  auto to_a = link("a");
  to_a.mode = peer::wire::link_mode::push;  // the hub takes nothing from a
  cluster c({{"hub", {to_a, link("b")}}, {"a", {link("hub", true)}}, {"b", {link("hub", true)}}});
  auto& hub = c.nodes["hub"];
  auto& a = c.nodes["a"];
  BOOST_TEST_REQUIRE((hub.link("a").state == peer::link_state::live));

  a.write(1);
  c.sched.advance(500);
  BOOST_TEST(hub.rows() == 0u);
  BOOST_TEST(hub.link("a").nacked == 1u);
  BOOST_TEST(hub.link("a").last_refusal.find("mode push") != std::string::npos);
  BOOST_TEST(a.link("hub").nacks_received == 1u);
  BOOST_TEST(a.link("hub").unacked == 0u);  // refused and acknowledged: not sent again
  c.sched.advance(5'000);
  BOOST_TEST(hub.link("a").nacked == 1u);

  hub.write(2);
  c.sched.advance(500);
  BOOST_TEST(a.rows() == 2u);  // the hub still pushes to a
  BOOST_TEST(c.nodes["b"].rows() == 1u);
}

BOOST_AUTO_TEST_CASE(changes_made_on_an_untrusted_origin_are_nacked_even_when_a_trusted_peer_relays_them) {
  // c dials a, a dials the hub; the hub takes over a's link only changes
  // made on the hub or on a.
  auto to_a = link("a");
  to_a.trusted_origins = {"hub", "a"};
  cluster c({{"hub", {to_a}}, {"a", {link("hub", true), link("c")}}, {"c", {link("a", true)}}});
  auto& hub = c.nodes["hub"];
  auto& a = c.nodes["a"];

  c.nodes["c"].write(1);
  c.sched.advance(500);
  BOOST_TEST(a.rows() == 1u);    // a trusts anyone
  BOOST_TEST(hub.rows() == 0u);  // the hub does not trust c
  BOOST_TEST(hub.link("a").nacked == 1u);
  BOOST_TEST(hub.link("a").last_refusal.find("made on 'c'") != std::string::npos);
  BOOST_TEST(a.link("hub").nacks_received == 1u);

  a.write(2);
  c.sched.advance(500);
  BOOST_TEST(hub.rows() == 1u);  // a's own change is taken
  BOOST_TEST(c.nodes["c"].rows() == 2u);
}

BOOST_AUTO_TEST_CASE(lag_counts_what_a_cut_off_peer_has_not_acknowledged_and_drains_on_heal) {
  cluster c({{"hub", {link("a")}}, {"a", {link("hub", true)}}});
  auto& hub = c.nodes["hub"];
  BOOST_TEST(hub.link("a").lag_changes == 0u);
  c.net.partition("hub", "a");
  for (std::int64_t id = 1; id <= 3; ++id)
    hub.write(id);
  c.sched.advance(300);
  BOOST_TEST(hub.link("a").lag_changes == 3u);
  BOOST_TEST(hub.link("a").lag_ms >= 300u);
  c.net.heal_all();
  c.sched.advance(10'000);
  BOOST_TEST(c.nodes["a"].rows() == 3u);
  BOOST_TEST(hub.link("a").lag_changes == 0u);
  BOOST_TEST(hub.link("a").lag_ms == 0u);
}

BOOST_AUTO_TEST_CASE(tombstones_go_after_the_retention_bound_and_live_rows_stay) {
  cluster c({{"hub", {link("a")}}, {"a", {link("hub", true)}}}, [](peer::replicator_config& cfg) {
    cfg.tombstone_retention_ms = 5'000;
    cfg.gc_interval_ms = 1'000;
    cfg.gc_batch = 1;  // rounds resume where the last one stopped
  });
  auto& hub = c.nodes["hub"];
  hub.write(1);
  hub.write(2);
  hub.write(3);
  BOOST_REQUIRE(hub.rep->write("app.notes", {}, {{value::integer(2)}, {value::integer(3)}}));
  c.sched.advance(1'000);
  for (auto* n : {&hub, &c.nodes["a"]}) {
    BOOST_TEST(n->rows() == 1u);
    BOOST_TEST(n->rep->state_of("app.notes", {value::integer(2)})->has_value());  // kept for now
  }
  c.sched.advance(10'000);
  for (auto* n : {&hub, &c.nodes["a"]}) {
    BOOST_TEST(!n->rep->state_of("app.notes", {value::integer(2)})->has_value());
    BOOST_TEST(!n->rep->state_of("app.notes", {value::integer(3)})->has_value());
    BOOST_TEST(n->rep->state_of("app.notes", {value::integer(1)})->has_value());
    BOOST_TEST(n->rows() == 1u);
    BOOST_TEST(n->rep->tombstones_collected() == 2u);
  }
}

BOOST_AUTO_TEST_SUITE_END()
