// Refusals decided by the receiving node from its own config, on the
// in-memory network without faults: a push-only link and an untrusted
// origin, each answered with a delta_nack that both sides count.

#include <boost/test/unit_test.hpp>

#include <leveldb/env.h>
#include <leveldb/helpers/memenv.h>

#include <map>
#include <memory>
#include <vector>

#include "connectors/peer/replicator.hpp"
#include "messaging/memory_transport.hpp"

using namespace syncmesh;
using store::value;

namespace {

class scheduler_clock final : public store::physical_clock {
public:
  explicit scheduler_clock(const messaging::scheduler& s) : s_(s) {}
  std::uint64_t now_ms() override { return s_.now_ms(); }

private:
  const messaging::scheduler& s_;
};

store::schema notes() {
  store::schema s;
  s.table = "app.notes";
  s.columns = {{"id", store::value_kind::integer, "bigint", false},
               {"body", store::value_kind::text, "text", true}};
  s.primary_key = {0};
  return s;
}

struct node {
  std::unique_ptr<leveldb::Env> env;
  std::unique_ptr<scheduler_clock> clock;
  std::unique_ptr<store::store> db;
  std::unique_ptr<peer::replicator> rep;

  std::size_t rows() const { return db->scan("app.notes", {}).value().size(); }
  const peer::link_stats link(const std::string& peer) const { return rep->stats().at(peer); }
  void write(std::int64_t id) {
    auto w = rep->write("app.notes", {{value::integer(id), value::text("note")}}, {});
    BOOST_REQUIRE(w.is_ok());
  }
};

/// Nodes on one network without faults, each with the links given, after
/// half a second of virtual time (every link is up by then).
struct cluster {
  messaging::manual_scheduler sched{1'700'000'000'000ULL};
  messaging::memory_network net{sched, 7};
  std::map<std::string, node> nodes;

  explicit cluster(const std::map<std::string, std::vector<peer::link_config>>& links) {
    for (const auto& [id, ls] : links) {
      auto& n = nodes[id];
      n.env.reset(leveldb::NewMemEnv(leveldb::Env::Default()));
      n.clock = std::make_unique<scheduler_clock>(sched);
      store::options so;
      so.path = "/mem/" + id;
      so.node_id = id;
      so.env = n.env.get();
      so.clock = n.clock.get();
      so.durability = store::durability_mode::buffered;
      n.db = std::move(store::store::open(so)).value();
      peer::replicator_config cfg;
      cfg.tables = {notes()};
      cfg.links = ls;
      n.rep = std::make_unique<peer::replicator>(*n.db, net.attach(id), sched, cfg);
    }
    for (auto& [id, n] : nodes)
      BOOST_REQUIRE(n.rep->start().is_ok());
    sched.advance(500);
  }
};

peer::link_config link(const std::string& peer, bool connects = false) {
  peer::link_config l;
  l.peer = peer;
  l.connects = connects;
  return l;
}

} // namespace

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

BOOST_AUTO_TEST_SUITE_END()
