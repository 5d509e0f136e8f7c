// Credit-based flow control on the in-memory network: a receiver that
// commits slowly holds its sender to the credit it grants, in batches and
// in bytes, and pauses it while batches wait, and a peer that sends beyond
// its credit is told so.

#include <set>

#include "tests/connectors/peer_cluster.hpp"

using namespace syncmesh;
using namespace syncmesh::test;
namespace wire = messaging::peer;

namespace {

/// Watches the credit a node grants on its links, from the frames it sends
/// (its acknowledgements and grants: a peer may send deltas up to the last
/// acknowledged one plus the window of the last grant), and counts the new
/// deltas it receives beyond what it had granted when they arrived. A
/// decorator over the real transport: frames pass unchanged.
class credit_watch final : public messaging::transport {
public:
  explicit credit_watch(messaging::transport& net) : net_(net) {}

  const std::string& local_id() const override { return net_.local_id(); }
  void connect(const std::string& peer) override { net_.connect(peer); }
  void disconnect(const std::string& peer) override { net_.disconnect(peer); }

  void set_handler(messaging::transport_handler h) override {
    auto inner = std::move(h);
    messaging::transport_handler outer;
    outer.connected = [this, inner](const std::string& peer) {
      peers_[peer] = {};  // delta ids start again on a new link
      if (inner.connected)
        inner.connected(peer);
    };
    outer.disconnected = inner.disconnected;
    outer.received = [this, inner](const std::string& peer, std::string frame) {
      auto m = wire::decode(frame, wire::limits{});
      if (m)
        if (auto* d = std::get_if<wire::delta>(&m.value())) {
          auto& p = peers_[peer];
          ++deltas;
          if (d->id > p.limit)
            ++beyond_credit;
          if (d->id > p.acked) {
            p.held[d->id] = frame.size();
            std::uint64_t sum = 0;
            for (const auto& [id, bytes] : p.held)
              sum += bytes;
            if (p.held.size() > 1)
              held_bytes_max = std::max(held_bytes_max, sum);
            held_batches_max = std::max<std::uint64_t>(held_batches_max, p.held.size());
          }
        }
      if (inner.received)
        inner.received(peer, std::move(frame));
    };
    net_.set_handler(std::move(outer));
  }

  [[nodiscard]] bool send(const std::string& peer, std::string frame) override {
    auto m = wire::decode(frame, wire::limits{});
    if (m) {
      auto& p = peers_[peer];
      if (auto* a = std::get_if<wire::delta_ack>(&m.value())) {
        p.acked = std::max(p.acked, a->id);
        p.held.erase(p.held.begin(), p.held.upper_bound(p.acked));
      }
      if (auto* r = std::get_if<wire::resume>(&m.value())) {
        p.window = r->credits;
        granted_bytes = r->bytes;
      }
      if (std::holds_alternative<wire::pause>(m.value()))
        ++pauses;
      p.limit = std::max(p.limit, p.acked + p.window);
    }
    return net_.send(peer, std::move(frame));
  }

  std::uint64_t deltas = 0;         // received
  std::uint64_t beyond_credit = 0;  // received with an id past the credit granted
  std::uint64_t pauses = 0;         // sent
  std::uint64_t granted_bytes = 0;  // the byte window of the last grant sent
  /// Received and not yet acknowledged, at most: the frames' bytes (while
  /// more than one batch is held) and the batches.
  std::uint64_t held_bytes_max = 0;
  std::uint64_t held_batches_max = 0;

private:
  struct grants {
    std::uint64_t acked = 0, window = 0, limit = 0;
    std::map<std::uint64_t, std::size_t> held;  // delta id -> frame bytes, not yet acknowledged
  };
  messaging::transport& net_;
  std::map<std::string, grants> peers_;
};

/// Puts a credit_watch over node a's transport and points `watch` at it.
transport_decorator watch_a(credit_watch*& watch) {
  return [&watch](const std::string& id,
                  messaging::transport& net) -> std::unique_ptr<messaging::transport> {
    if (id != "a")
      return nullptr;
    auto w = std::make_unique<credit_watch>(net);
    watch = w.get();
    return w;
  };
}

/// A hub whose link to "rogue" takes `credits` batches and `credit_bytes`
/// bytes and commits nothing for a second (while the rogue sends); the
/// rogue sends no heartbeats.
cluster rogue_hub(std::size_t credits, std::uint64_t credit_bytes) {
  return cluster({{"hub", {link("rogue")}}}, [=](peer::replicator_config& cfg) {
    cfg.credits = credits;
    cfg.pause_at = credits;
    cfg.credit_bytes = credit_bytes;
    cfg.commit_delay_ms = 1'000;
    cfg.dead_after_ms = 10'000;
  });
}

/// The rogue's greeting; true once the hub granted it the window given.
bool greet(raw_peer& rogue, std::size_t credits, std::uint64_t credit_bytes) {
  rogue.send(wire::encode(wire::hello{"rogue", wire::link_mode::bidirectional, {}}));
  bool granted = false;
  for (const auto& m : rogue.got)
    if (auto* r = std::get_if<wire::resume>(&m))
      granted = r->credits == credits && r->bytes == credit_bytes;
  return granted;
}

/// A delta of one insert made on the rogue: row `id` with `body`.
std::string rogue_delta(std::uint64_t id, const std::string& body = "r") {
  wire::change ch;
  ch.hlc = store::hlc_timestamp(1'700'000'000'000ULL + id, 0);
  ch.origin = "rogue";
  ch.table = "app.notes";
  ch.op = store::change_op::insert;
  ch.key = {value::integer(static_cast<std::int64_t>(id))};
  ch.new_row = store::row{value::integer(static_cast<std::int64_t>(id)), value::text(body),
                          value::null()};
  return wire::encode(wire::delta{id, {ch}});
}

} // namespace

BOOST_AUTO_TEST_SUITE(peer_flow)

BOOST_AUTO_TEST_CASE(a_slow_receiver_holds_its_sender_to_the_credit_and_pauses_it_and_nothing_is_lost) {
  credit_watch* watch = nullptr;
  cluster c(
    {{"hub", {link("a")}}, {"a", {link("hub", true)}}},
    [](peer::replicator_config& cfg) {
      cfg.batch_max = 5;
      cfg.in_flight_max = 16;     // the sender would send 16 deltas at once
      cfg.credits = 4;            // the receiver takes 4
      cfg.pause_at = 3;
      cfg.commit_delay_ms = 40;   // and commits them slowly
    },
    watch_a(watch));
  auto& hub = c.nodes["hub"];
  auto& a = c.nodes["a"];
  BOOST_TEST_REQUIRE((hub.link("a").state == peer::link_state::live));

  for (std::int64_t id = 1; id <= 200; ++id)
    hub.write(id, "note " + std::to_string(id));
  std::set<peer::link_state> seen;
  std::uint64_t unacked_max = 0;
  for (int ms = 0; ms < 10'000 && a.rows() < 200; ++ms) {
    c.sched.advance(1);
    seen.insert(hub.link("a").state);
    unacked_max = std::max(unacked_max, hub.link("a").unacked);
  }
  c.sched.advance(1'000);  // the last acknowledgements and grants arrive

  BOOST_TEST(a.rows() == 200u);
  BOOST_TEST(*peer::table_digest(*a.db, "app.notes") == *peer::table_digest(*hub.db, "app.notes"));
  BOOST_TEST(watch->deltas >= 40u);         // 200 changes, 5 a delta
  BOOST_TEST(watch->beyond_credit == 0u);   // never more than granted
  BOOST_TEST(unacked_max <= 4u);
  BOOST_TEST(a.link("hub").over_credit == 0u);
  BOOST_TEST(watch->pauses > 0u);
  BOOST_TEST(a.link("hub").pauses_sent == watch->pauses);
  BOOST_TEST(hub.link("a").pauses_received > 0u);
  BOOST_TEST(seen.count(peer::link_state::paused) == 1u);
  BOOST_TEST((hub.link("a").state == peer::link_state::live));
  BOOST_TEST(hub.link("a").unacked == 0u);
  BOOST_TEST(hub.link("a").lag_changes == 0u);
}

BOOST_AUTO_TEST_CASE(a_peer_that_sends_beyond_its_credit_gets_over_credit_and_that_delta_is_dropped) {
  auto c = rogue_hub(4, peer::replicator_config{}.credit_bytes);
  auto& hub = c.nodes["hub"];
  raw_peer rogue(c, "rogue");
  BOOST_TEST_REQUIRE(rogue.linked);
  // The window the hub grants when the link goes live.
  BOOST_TEST_REQUIRE(greet(rogue, 4, peer::replicator_config{}.credit_bytes));

  for (std::uint64_t id = 1; id <= 5; ++id)
    rogue.send(rogue_delta(id));
  auto errors = rogue.errors();
  BOOST_REQUIRE_EQUAL(errors.size(), 1u);
  BOOST_TEST((errors[0].code == wire::error_code::over_credit));
  BOOST_TEST(!errors[0].fatal);
  BOOST_TEST(errors[0].message.find("delta 5") != std::string::npos);
  BOOST_TEST(hub.link("rogue").over_credit == 1u);
  BOOST_TEST(rogue.linked);

  // The four within credit are committed and acknowledged; the fifth was
  // dropped, and is taken when sent again within the new credit.
  c.sched.advance(1'000);
  BOOST_TEST(hub.rows() == 4u);
  std::uint64_t acked = 0;
  for (const auto& m : rogue.got)
    if (auto* a = std::get_if<wire::delta_ack>(&m))
      acked = std::max(acked, a->id);
  BOOST_TEST(acked == 4u);
  rogue.send(rogue_delta(5));
  c.sched.advance(1'000);
  BOOST_TEST(hub.rows() == 5u);
  BOOST_TEST(hub.link("rogue").over_credit == 1u);
}

BOOST_AUTO_TEST_CASE(big_rows_are_held_to_the_byte_window_while_small_ones_use_the_batch_window) {
  // Frames of up to 64 KB; the receiver grants 64 batches but only 160 KB,
  // and commits slowly. Rows of about 8 KB: the sender keeps a delta back
  // until one more frame at its largest fits.
  credit_watch* watch = nullptr;
  cluster c(
    {{"hub", {link("a")}}, {"a", {link("hub", true)}}},
    [](peer::replicator_config& cfg) {
      cfg.limits.frame_bytes_max = 64 * 1024;
      cfg.in_flight_max = 64;
      cfg.credits = 64;
      cfg.pause_at = 64;
      cfg.credit_bytes = 160 * 1024;
      cfg.commit_delay_ms = 40;
    },
    watch_a(watch));
  auto& hub = c.nodes["hub"];
  auto& a = c.nodes["a"];
  BOOST_TEST_REQUIRE((hub.link("a").state == peer::link_state::live));
  for (std::int64_t id = 1; id <= 120; ++id)
    hub.write(id, std::string(8000, static_cast<char>('a' + id % 26)));
  std::uint64_t unacked_max = 0;
  for (int ms = 0; ms < 20'000 && a.rows() < 120; ++ms) {
    c.sched.advance(1);
    unacked_max = std::max(unacked_max, hub.link("a").unacked);
  }
  c.sched.advance(1'000);
  BOOST_TEST(a.rows() == 120u);
  BOOST_TEST(*peer::table_digest(*a.db, "app.notes") == *peer::table_digest(*hub.db, "app.notes"));
  BOOST_TEST(watch->granted_bytes == 160u * 1024);
  BOOST_TEST(watch->held_bytes_max <= 160u * 1024);  // what a held at once, in frames
  BOOST_TEST(watch->held_batches_max >= 2u);         // more than one batch at once
  BOOST_TEST(watch->held_bytes_max > 64u * 1024);    // more than one frame's worth at once
  // Each write goes as a delta of its own row (a frame of over 8,000
  // bytes): the sender adds one while its unacknowledged frames and one
  // more at 64 KB fit in 160 KB, so at most (160 - 64) KB / 8,000 + 1.
  BOOST_TEST(unacked_max <= 13u);
  BOOST_TEST(a.link("hub").over_credit == 0u);

  // Small rows: the same window takes many batches at once.
  for (std::int64_t id = 1000; id < 1400; ++id)
    hub.write(id, "s");
  unacked_max = 0;
  for (int ms = 0; ms < 20'000 && a.rows() < 520; ++ms) {
    c.sched.advance(1);
    unacked_max = std::max(unacked_max, hub.link("a").unacked);
  }
  c.sched.advance(1'000);
  BOOST_TEST(a.rows() == 520u);
  BOOST_TEST(unacked_max > 13u);
  BOOST_TEST(a.link("hub").over_credit == 0u);
}

BOOST_AUTO_TEST_CASE(a_peer_that_sends_beyond_its_byte_window_gets_over_credit_and_that_delta_is_dropped) {
  auto c = rogue_hub(64, 3000);
  auto& hub = c.nodes["hub"];
  raw_peer rogue(c, "rogue");
  BOOST_TEST_REQUIRE(rogue.linked);
  BOOST_TEST_REQUIRE(greet(rogue, 64, 3000));
  const std::string big(1200, 'r');

  // Two frames of about 1.3 KB fit in 3,000 bytes; the third does not.
  for (std::uint64_t id = 1; id <= 3; ++id)
    rogue.send(rogue_delta(id, big));
  auto errors = rogue.errors();
  BOOST_REQUIRE_EQUAL(errors.size(), 1u);
  BOOST_TEST((errors[0].code == wire::error_code::over_credit));
  BOOST_TEST(!errors[0].fatal);
  BOOST_TEST(errors[0].message.find("delta 3") != std::string::npos);
  BOOST_TEST(errors[0].message.find("3000 bytes") != std::string::npos);
  BOOST_TEST(hub.link("rogue").over_credit == 1u);
  BOOST_TEST(rogue.linked);

  // Once the two are durable the window is empty again: the third is taken.
  c.sched.advance(1'000);
  BOOST_TEST(hub.rows() == 2u);
  rogue.send(rogue_delta(3, big));
  c.sched.advance(1'000);
  BOOST_TEST(hub.rows() == 3u);
  BOOST_TEST(hub.link("rogue").over_credit == 1u);
}

BOOST_AUTO_TEST_CASE(a_receiver_that_keeps_up_grants_again_and_never_pauses_its_sender) {
  // The default window and pause mark; many small deltas, so the sender
  // lives on grants renewed as the receiver commits.
  cluster c({{"hub", {link("a")}}, {"a", {link("hub", true)}}},
            [](peer::replicator_config& cfg) { cfg.batch_max = 5; });
  auto& hub = c.nodes["hub"];
  for (std::int64_t id = 1; id <= 500; ++id)
    hub.write(id);
  std::set<peer::link_state> seen;
  for (int ms = 0; ms < 2'000; ++ms) {
    c.sched.advance(1);
    seen.insert(hub.link("a").state);
  }
  BOOST_TEST(c.nodes["a"].rows() == 500u);
  BOOST_TEST(seen.count(peer::link_state::paused) == 0u);
  BOOST_TEST(c.nodes["a"].link("hub").pauses_sent == 0u);
  BOOST_TEST(c.nodes["a"].link("hub").over_credit == 0u);
}

BOOST_AUTO_TEST_CASE(a_delta_over_rows_held_far_apart_and_new_ones_merges_into_each_rows_own_state) {
  // The receiver reads the merge states of a delta's rows together, in
  // name order: held ones far apart (more held rows between them than one
  // read takes), held ones next to each other, and new ones past them all.
  // An update that sets one column keeps the others only if the row's own
  // state was found.
  cluster c({{"hub", {link("a")}}, {"a", {link("hub", true)}}});
  auto& hub = c.nodes["hub"];
  auto& a = c.nodes["a"];
  std::vector<store::row> held;
  for (std::int64_t id = 0; id < 100; ++id)
    held.push_back({value::integer(id), value::text("old"), value::text("kept " + std::to_string(id))});
  BOOST_REQUIRE(a.rep->write("app.notes", held, {}).is_ok());
  c.sched.advance(500);
  BOOST_REQUIRE(hub.rows() == 100u);
  std::vector<store::row> mixed;
  for (std::int64_t id : {0, 1, 2, 50, 98, 99, 500, 501, 1000})
    mixed.push_back({value::integer(id), value::text("new"),
                     value::text(id < 100 ? "kept " + std::to_string(id) : "fresh")});
  BOOST_REQUIRE(hub.rep->write("app.notes", mixed, {}).is_ok());
  c.sched.advance(500);
  BOOST_TEST(a.rows() == 103u);
  for (std::int64_t id : {0, 1, 2, 50, 98, 99})
    BOOST_TEST((a.row(id) == store::row{value::integer(id), value::text("new"),
                                        value::text("kept " + std::to_string(id))}));
  BOOST_TEST((a.row(49) == held[49]));
  BOOST_TEST((a.row(1000) == store::row{value::integer(1000), value::text("new"),
                                        value::text("fresh")}));
  BOOST_TEST(*peer::table_digest(*a.db, "app.notes") == *peer::table_digest(*hub.db, "app.notes"));
}

BOOST_AUTO_TEST_SUITE_END()
