// Refusals decided by the receiving node from its own config, on the
// in-memory network without faults: a push-only link and an untrusted
// origin, each answered with a delta_nack that both sides count; excluded
// columns and row filters of a link, both ways; and the tie winner.

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

BOOST_AUTO_TEST_CASE(a_custom_trust_policy_refuses_the_changes_it_judges_with_its_reason_and_takes_the_rest) {
  // The hub's policy on a's link: no deletes, and no row 13.
  std::vector<std::string> asked;
  auto to_a = link("a");
  to_a.trust = [&](const peer::wire::change& c) -> std::optional<std::string> {
    asked.push_back(c.origin + ":" + store::to_string(c.op));
    if (c.op == store::change_op::remove)
      return std::string("deletes are not taken from peers");
    if (c.key == store::row{value::integer(13)})
      return std::string("row 13 is the hub's own");
    return std::nullopt;
  };
  cluster c({{"hub", {to_a}}, {"a", {link("hub", true)}}});
  auto& hub = c.nodes["hub"];
  auto& a = c.nodes["a"];

  a.write(1);
  a.write(2);
  a.write(13);
  a.remove(2);
  c.sched.advance(500);
  BOOST_TEST(hub.rows() == 2u);  // 1 and 2: the delete and row 13 refused
  BOOST_TEST(!hub.row(2).empty());
  BOOST_TEST(hub.row(13).empty());
  BOOST_TEST(hub.link("a").nacked == 2u);
  BOOST_TEST(a.link("hub").nacks_received >= 1u);
  const auto why = hub.link("a").last_refusal;
  BOOST_TEST((why.find("deletes are not taken") != std::string::npos
              || why.find("row 13") != std::string::npos), why);
  BOOST_TEST(asked.size() == 4u);  // each new change once, nothing already held

  // Held changes are not asked about again; the hub's own writes still flow.
  hub.write(3);
  c.sched.advance(500);
  BOOST_TEST(a.rows() == 3u);  // 1, 3, 13 (a deleted 2)
  BOOST_TEST(asked.size() == 4u);
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

BOOST_AUTO_TEST_CASE(excluded_columns_never_cross_the_link_and_values_received_for_them_are_ignored) {
  auto to_a = link("a");
  to_a.excluded = {"app.notes.secret"};  // only the hub's side says so
  cluster c({{"hub", {to_a}}, {"a", {link("hub", true)}}});
  auto& hub = c.nodes["hub"];
  auto& a = c.nodes["a"];

  // Sent: the hub's new row reaches a without its secret.
  hub.write(1, "one", "hub secret");
  c.sched.advance(500);
  BOOST_TEST((a.row(1) == store::row{value::integer(1), value::text("one"), value::null()}));

  // Received: a sends its secret (a excludes nothing); the hub ignores it.
  a.write(2, "two", "a secret");
  c.sched.advance(500);
  BOOST_TEST((hub.row(2) == store::row{value::integer(2), value::text("two"), value::null()}));
  BOOST_TEST(hub.link("a").nacked == 0u);

  // An upsert that changes the secret alone crosses as the row's key only
  // (it still says that the row exists), both ways.
  a.write(2, "two", "a secret, changed");
  const auto sent = hub.link("a").sent_changes;
  hub.write(1, "one", "hub secret, changed");
  c.sched.advance(500);
  BOOST_TEST(hub.link("a").sent_changes == sent + 1);
  BOOST_TEST((hub.row(2) == store::row{value::integer(2), value::text("two"), value::null()}));
  BOOST_TEST((a.row(1) == store::row{value::integer(1), value::text("one"), value::null()}));
  BOOST_TEST(hub.link("a").nacked == 0u);
  BOOST_TEST(a.link("hub").unacked == 0u);

  // Other columns of the same rows still cross both ways.
  hub.write(1, "one, edited", "hub secret, changed");
  a.write(2, "two, edited", "a secret, changed");
  c.sched.advance(500);
  BOOST_TEST((a.row(1) == store::row{value::integer(1), value::text("one, edited"), value::null()}));
  BOOST_TEST((hub.row(2) == store::row{value::integer(2), value::text("two, edited"), value::null()}));
}

BOOST_AUTO_TEST_CASE(a_peers_update_of_excluded_columns_only_is_dropped_and_counted) {
  auto to_a = link("a");
  to_a.excluded = {"app.notes.secret"};
  cluster c({{"hub", {to_a}}});
  auto& hub = c.nodes["hub"];
  const auto at = hub.write(1, "one", "hub secret");

  // A peer that speaks the protocol by hand and sends an update (op
  // update) of the secret alone.
  auto& a = c.net.attach("a");
  messaging::transport_handler quiet;
  quiet.connected = [](const std::string&) {};
  quiet.disconnected = [](const std::string&, const std::string&) {};
  quiet.received = [](const std::string&, std::string) {};
  a.set_handler(quiet);
  a.connect("hub");
  c.sched.advance(50);
  namespace wire = peer::wire;
  BOOST_REQUIRE(a.send("hub", wire::encode(wire::hello{"a", wire::link_mode::push, {"app.notes"}})));
  c.sched.advance(50);
  BOOST_TEST_REQUIRE((hub.link("a").state == peer::link_state::live));
  wire::change u;
  u.hlc = store::hlc_timestamp::from_packed(at.packed() + 1);
  u.origin = "a";
  u.table = "app.notes";
  u.op = store::change_op::update;
  u.key = {value::integer(1)};
  u.new_row = store::row{value::integer(1), value::text("one"), value::text("a secret")};
  u.columns = {2};
  BOOST_REQUIRE(a.send("hub", wire::encode(wire::delta{1, {u}})));
  c.sched.advance(100);
  BOOST_TEST(hub.link("a").dropped_changes == 1u);
  BOOST_TEST(hub.link("a").nacked == 0u);
  BOOST_TEST(hub.link("a").applied_changes == 0u);
  BOOST_TEST((hub.row(1) == store::row{value::integer(1), value::text("one"), value::text("hub secret")}));
}

BOOST_AUTO_TEST_CASE(a_row_filter_withholds_rows_outside_it_and_refuses_them_from_the_peer) {
  peer::row_filter small_ids{"app.notes", "id", peer::filter_op::lt, {value::integer(10)}};
  auto to_a = link("a");
  to_a.filters = {small_ids};  // only the hub's side says so
  cluster c({{"hub", {to_a}}, {"a", {link("hub", true)}}});
  auto& hub = c.nodes["hub"];
  auto& a = c.nodes["a"];

  hub.write(1);
  hub.write(20);
  c.sched.advance(500);
  BOOST_TEST(a.rows() == 1u);
  BOOST_TEST(!a.row(1).empty());

  a.write(30);  // outside the hub's filter: refused
  a.write(5);   // inside: taken
  c.sched.advance(500);
  BOOST_TEST(hub.rows() == 3u);  // 1, 20 and 5
  BOOST_TEST(hub.row(30).empty());
  BOOST_TEST(!hub.row(5).empty());
  BOOST_TEST(hub.link("a").nacked == 1u);
  BOOST_TEST(hub.link("a").last_refusal.find("outside") != std::string::npos);
  BOOST_TEST(hub.link("a").last_refusal.find("'id <'") != std::string::npos);
  BOOST_TEST(a.link("hub").nacks_received == 1u);

  // Removes always cross: of a row a holds, and of one it never had.
  hub.remove(1);
  hub.remove(20);
  c.sched.advance(500);
  BOOST_TEST(a.row(1).empty());
  BOOST_TEST(a.rows() == 2u);  // 5 and its own 30
  BOOST_TEST(a.link("hub").nacked == 0u);
}

BOOST_AUTO_TEST_CASE(a_filter_with_in_admits_its_values_only_and_null_never_matches) {
  peer::row_filter f{"app.notes", "body", peer::filter_op::in,
                     {value::text("a"), value::text("b")}};
  BOOST_TEST(f.admits(value::text("a")));
  BOOST_TEST(f.admits(value::text("b")));
  BOOST_TEST(!f.admits(value::text("c")));
  BOOST_TEST(!f.admits(value::null()));
  peer::row_filter ge{"app.notes", "body", peer::filter_op::ge, {value::text("m")}};
  BOOST_TEST(ge.admits(value::text("m")));
  BOOST_TEST(ge.admits(value::text("z")));
  BOOST_TEST(!ge.admits(value::text("a")));
  BOOST_TEST(!ge.admits(value::null()));
}

BOOST_AUTO_TEST_CASE(a_link_that_excludes_a_key_column_or_an_unknown_column_does_not_start) {
  auto start_with = [](const std::vector<peer::link_config>& ls) {
    messaging::manual_scheduler sched{1'700'000'000'000ULL};
    messaging::memory_network net{sched, 7};
    std::unique_ptr<leveldb::Env> env(leveldb::NewMemEnv(leveldb::Env::Default()));
    scheduler_clock clock(sched);
    store::options so;
    so.path = "/mem/x";
    so.node_id = "x";
    so.env = env.get();
    so.clock = &clock;
    so.durability = store::durability_mode::buffered;
    auto db = std::move(store::store::open(so)).value();
    peer::replicator_config cfg;
    cfg.tables = {notes()};
    cfg.links = ls;
    peer::replicator rep(*db, net.attach("x"), sched, cfg);
    return rep.start().message();
  };
  auto l = link("a");
  l.excluded = {"app.notes.id"};
  BOOST_TEST(start_with({l}).find("a key column") != std::string::npos);
  l.excluded = {"app.notes.colour"};
  BOOST_TEST(start_with({l}).find("no column 'colour'") != std::string::npos);
  l.excluded = {};
  l.filters = {{"app.notes", "id", peer::filter_op::lt, {}}};
  BOOST_TEST(start_with({l}).find("needs one value") != std::string::npos);
  // Taking changes over two links, one of them partial: a change the
  // partial link leaves out would look held when the other brings it.
  auto partial = link("a");
  partial.excluded = {"app.notes.secret"};
  BOOST_TEST(start_with({partial}).empty());  // alone it is fine
  BOOST_TEST(start_with({partial, link("b")}).find("must take them whole on each")
             != std::string::npos);
  partial.mode = peer::wire::link_mode::push;  // takes nothing over it
  BOOST_TEST(start_with({partial, link("b")}).empty());
}

BOOST_AUTO_TEST_CASE(two_upserts_of_one_key_in_one_write_end_with_the_second) {
  cluster c({{"hub", {link("a")}}, {"a", {link("hub", true)}}});
  auto& hub = c.nodes["hub"];
  hub.write(1, "original");
  c.sched.advance(500);
  // One write: the body changes and changes back while the secret changes.
  BOOST_REQUIRE(hub.rep->write("app.notes",
                               {{value::integer(1), value::text("changed"), value::text("s")},
                                {value::integer(1), value::text("original"), value::text("t")}},
                               {}));
  c.sched.advance(500);
  for (auto* n : {&hub, &c.nodes["a"]})
    BOOST_TEST((n->row(1) == store::row{value::integer(1), value::text("original"),
                                        value::text("t")}));
}

BOOST_AUTO_TEST_CASE(between_equal_hlcs_the_tie_winners_write_wins_on_every_node) {
  for (const std::string winner : {"", "a"}) {
    cluster c({{"a", {link("b")}}, {"b", {link("a", true)}}}, winner);
    auto& a = c.nodes["a"];
    auto& b = c.nodes["b"];
    // The same virtual millisecond on both nodes, nothing received yet
    // that would move either clock: equal HLCs.
    const auto at_a = a.write(1, "from a");
    const auto at_b = b.write(1, "from b");
    BOOST_TEST_REQUIRE((at_a == at_b));
    c.sched.advance(500);
    // No winner: the larger node id ("b"); winner "a": a.
    const auto expected = value::text(winner.empty() ? "from b" : "from a");
    BOOST_TEST((a.row(1).at(1) == expected), "tie winner '" << winner << "'");
    BOOST_TEST((b.row(1).at(1) == expected), "tie winner '" << winner << "'");
  }
}

// A change goes whole in one frame: a local write of a row no frame can
// hold is refused, saying why, instead of stalling every link it is sent on.
BOOST_AUTO_TEST_CASE(a_local_write_of_a_row_too_big_for_any_peer_frame_is_refused_saying_so) {
  cluster c({{"a", {link("b")}}, {"b", {link("a", true)}}},
            [](peer::replicator_config& cfg) { cfg.limits.frame_bytes_max = 64 * 1024; });
  auto& a = c.nodes["a"];
  auto& b = c.nodes["b"];
  auto big = a.rep->write(
    "app.notes", {{value::integer(1), value::text(std::string(70'000, 'x')), value::text("s")}}, {});
  BOOST_TEST_REQUIRE(!big.is_ok());
  const auto why = big.error().message();
  BOOST_TEST(why.find("frame_bytes_max (65536)") != std::string::npos, why);
  BOOST_TEST(why.find("nothing was written") != std::string::npos, why);
  BOOST_TEST(a.rows() == 0u);
  // Rows that fit still go, big ones too, and the link is not held up.
  a.write(2, std::string(60'000, 'y'));
  a.write(3);
  c.sched.advance(1000);
  BOOST_TEST(b.rows() == 2u);
  BOOST_TEST(a.link("b").unacked == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
