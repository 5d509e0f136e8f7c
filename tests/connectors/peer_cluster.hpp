#pragma once

// A few replicators on one in-memory network without faults, for
// deterministic tests of link behaviour (refusals, bad input).

#include <boost/test/unit_test.hpp>

#include <leveldb/env.h>
#include <leveldb/helpers/memenv.h>

#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "connectors/peer/replicator.hpp"
#include "messaging/memory_transport.hpp"
#include "tests/connectors/sim_committer.hpp"

namespace syncmesh::test {

using store::value;


class scheduler_clock final : public store::physical_clock {
public:
  explicit scheduler_clock(const messaging::scheduler& s) : s_(s) {}
  std::uint64_t now_ms() override { return s_.now_ms(); }

private:
  const messaging::scheduler& s_;
};

inline store::schema notes() {
  store::schema s;
  s.table = "app.notes";
  s.columns = {{"id", store::value_kind::integer, "bigint", false},
               {"body", store::value_kind::text, "text", true},
               {"secret", store::value_kind::text, "text", true}};
  s.primary_key = {0};
  return s;
}

struct node {
  std::unique_ptr<leveldb::Env> env;
  std::unique_ptr<scheduler_clock> clock;
  std::unique_ptr<store::store> db;
  std::unique_ptr<messaging::transport> decorator;  // over the network's transport, if any
  messaging::transport* transport = nullptr;         // what the replicator sends on
  peer::replicator_config cfg;
  std::unique_ptr<peer::replicator> rep;

  std::size_t rows() const { return db->scan("app.notes", {}).value().size(); }
  /// The row with key `id`, or an empty row.
  store::row row(std::int64_t id) const {
    auto rows = db->scan("app.notes", {});
    BOOST_REQUIRE(rows.is_ok());
    for (const auto& r : *rows)
      if (r[0] == value::integer(id))
        return r;
    return {};
  }
  const peer::link_stats link(const std::string& peer) const { return rep->stats().at(peer); }
  store::hlc_timestamp write(std::int64_t id, const std::string& body = "note",
                             const std::string& secret = "s") {
    auto w = rep->write("app.notes",
                        {{value::integer(id), value::text(body), value::text(secret)}}, {});
    BOOST_REQUIRE(w.is_ok());
    return *w;
  }
  void remove(std::int64_t id) {
    BOOST_REQUIRE(rep->write("app.notes", {}, {{value::integer(id)}}).is_ok());
  }
};

/// Puts a decorator over node `id`'s transport `net`, or returns null.
using transport_decorator = std::function<std::unique_ptr<messaging::transport>(
  const std::string& id, messaging::transport& net)>;

/// Nodes on one network without faults, each with the links given, after
/// half a second of virtual time (every link is up by then). `tune` may
/// change each node's replicator config; a string names the tie winner;
/// `decorate` may wrap a node's transport; `before_start` may write to a
/// node's store before its replicator starts.
struct cluster {
  messaging::manual_scheduler sched{1'700'000'000'000ULL};
  messaging::memory_network net{sched, 7};
  std::map<std::string, node> nodes;

  explicit cluster(const std::map<std::string, std::vector<peer::link_config>>& links,
                   std::function<void(peer::replicator_config&)> tune = {},
                   const transport_decorator& decorate = {},
                   const std::function<void(const std::string&, node&)>& before_start = {}) {
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
      if (tune)
        tune(cfg);
      auto* t = &net.attach(id);
      if (decorate)
        if ((n.decorator = decorate(id, *t)))
          t = n.decorator.get();
      n.transport = t;
      n.cfg = cfg;
      n.rep = std::make_unique<peer::replicator>(*n.db, *t, sched, cfg);
    }
    for (auto& [id, n] : nodes) {
      if (before_start)
        before_start(id, n);
      BOOST_REQUIRE(n.rep->start().is_ok());
    }
    sched.advance(500);
  }

  /// A new replicator for node `id` over the same store, as after a
  /// restart of the node.
  void restart(const std::string& id) {
    auto& n = nodes.at(id);
    n.rep.reset();
    n.rep = std::make_unique<peer::replicator>(*n.db, *n.transport, sched, n.cfg);
    BOOST_REQUIRE(n.rep->start().is_ok());
  }

  /// Node `id` again, as restart() makes it, with its commits written by
  /// a sim_committer `delay_ms` after they are given (and reported then),
  /// up to `in_flight_max` in flight; then two seconds for its links to
  /// come back.
  sim_committer& pipeline(const std::string& id, std::uint64_t delay_ms,
                          std::size_t in_flight_max = 4) {
    auto& n = nodes.at(id);
    n.rep.reset();
    n.cfg.commits_in_flight_max = in_flight_max;
    auto writes = std::make_unique<sim_committer>(*n.db, sched, delay_ms, 0, 0.0, 1, [&n] {
      if (n.rep)
        n.rep->commits_done();
    });
    auto& out = *writes;
    n.rep = std::make_unique<peer::replicator>(*n.db, *n.transport, sched, n.cfg, std::move(writes));
    BOOST_REQUIRE(n.rep->start().is_ok());
    sched.advance(2000);
    return out;
  }

  cluster(const std::map<std::string, std::vector<peer::link_config>>& links,
          const std::string& tie_winner)
      : cluster(links, [tie_winner](peer::replicator_config& cfg) { cfg.tie_winner = tie_winner; }) {}
};

/// A peer that speaks raw frames: whatever a test wants to send, and every
/// frame the hub answers, decoded.
struct raw_peer {
  raw_peer(cluster& c, const std::string& id) : c(c), net(c.net.attach(id)) {
    messaging::transport_handler h;
    h.connected = [this](const std::string&) { linked = true; };
    h.disconnected = [this](const std::string&, const std::string&) { linked = false; };
    h.received = [this](const std::string&, std::string frame) {
      auto m = peer::wire::decode(frame, peer::wire::limits{});
      if (m)
        got.push_back(std::move(m).value());
    };
    net.set_handler(std::move(h));
    net.connect("hub");
    c.sched.advance(100);
  }

  void send(std::string frame) {
    BOOST_REQUIRE(net.send("hub", std::move(frame)));
    c.sched.advance(50);
  }

  /// The errors the hub sent back so far.
  std::vector<peer::wire::error> errors() const {
    std::vector<peer::wire::error> out;
    for (const auto& m : got)
      if (auto* e = std::get_if<peer::wire::error>(&m))
        out.push_back(*e);
    return out;
  }

  std::vector<peer::wire::delta_nack> nacks() const {
    std::vector<peer::wire::delta_nack> out;
    for (const auto& m : got)
      if (auto* n = std::get_if<peer::wire::delta_nack>(&m))
        out.push_back(*n);
    return out;
  }

  cluster& c;
  messaging::transport& net;
  bool linked = false;
  std::vector<peer::wire::message> got;
};

inline peer::link_config link(const std::string& peer, bool connects = false) {
  peer::link_config l;
  l.peer = peer;
  l.connects = connects;
  return l;
}


} // namespace syncmesh::test
