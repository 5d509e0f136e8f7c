#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <utility>

#include "messaging/scheduler.hpp"
#include "messaging/transport.hpp"

namespace syncmesh::messaging {

/// Faults the in-memory network applies to the frames of one direction.
/// Probabilities are in [0, 1]; every draw comes from the network's seed.
struct link_faults {
  std::uint64_t delay_ms_min = 1;  // each frame's delay is uniform in [min, max];
  std::uint64_t delay_ms_max = 1;  // unequal delays reorder frames
  double loss = 0.0;               // a frame is dropped
  double duplicate = 0.0;          // a frame arrives twice (the copy has its own delay)
  double reorder = 0.0;            // a frame is held back a further 1..reorder_ms_max
  std::uint64_t reorder_ms_max = 0;
};

/// What happened to the frames sent on a network (every direction).
struct network_counters {
  std::uint64_t sent = 0;         // send() calls that returned true
  std::uint64_t delivered = 0;    // frames handed to a receiver, copies included
  std::uint64_t lost = 0;         // dropped by `loss`
  std::uint64_t duplicated = 0;   // extra copies made by `duplicate`
  std::uint64_t held_back = 0;    // frames delayed by `reorder`
  std::uint64_t partitioned = 0;  // dropped because a partition stood at send or delivery
  std::uint64_t overflowed = 0;   // dropped because in_flight_max frames were in flight
  std::uint64_t unlinked = 0;     // sent without a link, or in flight when it closed
};

/// Nodes in one process joined by in-memory links with seeded faults:
/// delay, loss, duplication, reordering and partitions, all timed by a
/// scheduler. One seed and one order of calls give one run, frame for frame
/// — so a failing test replays from its seed.
///
/// Links behave as ZeroMQ's do: connect() keeps trying until the peer is
/// attached and reachable; a partition silences a link without closing it
/// (heartbeats must notice) and in-flight frames across it are lost; cut()
/// closes a link as a reset connection does. Not thread-safe: the
/// scheduler's driver is the only caller.
class memory_network {
public:
  /// `clock` times every delivery and must outlive the network's use of it
  /// (callbacks left on it after the network is gone do nothing). At most
  /// `in_flight_max` frames are in flight per direction; more are dropped,
  /// as a full ZeroMQ queue drops them.
  memory_network(scheduler& clock, std::uint64_t seed, std::size_t in_flight_max = 10000);
  ~memory_network();
  memory_network(const memory_network&) = delete;
  memory_network& operator=(const memory_network&) = delete;

  /// The transport of node `node_id`, owned by the network.
  /// REQUIRES: `node_id` is not attached yet.
  transport& attach(const std::string& node_id);

  /// Faults of every direction that has none of its own.
  void set_faults(const link_faults& faults);
  /// Faults of frames from `from` to `to` only.
  void set_faults(const std::string& from, const std::string& to, const link_faults& faults);

  /// Silences everything between `a` and `b`, both ways, until heal().
  void partition(const std::string& a, const std::string& b);
  void heal(const std::string& a, const std::string& b);
  void heal_all();
  bool is_partitioned(const std::string& a, const std::string& b) const;

  /// Closes the link between `a` and `b`, if any, as a reset connection:
  /// both sides see `disconnected`; neither reconnects on its own.
  void cut(const std::string& a, const std::string& b);

  bool is_linked(const std::string& a, const std::string& b) const;
  const network_counters& counters() const noexcept { return counters_; }

private:
  class node;
  friend class node;
  using pair = std::pair<std::string, std::string>;  // ordered: first < second

  static pair key(const std::string& a, const std::string& b);
  const link_faults& faults_of(const std::string& from, const std::string& to) const;
  std::uint64_t draw_delay(const link_faults& f);
  bool chance(double p);

  void connect(const std::string& from, const std::string& to);
  void disconnect(const std::string& from, const std::string& to, const std::string& reason);
  bool send(const std::string& from, const std::string& to, std::string frame);
  void try_pending_connects();
  void establish(const std::string& a, const std::string& b);
  void deliver(const std::string& from, const std::string& to, std::uint64_t link_epoch,
               const std::string& frame);
  node* find(const std::string& id) const;

  scheduler& clock_;
  std::mt19937_64 rng_;
  const std::size_t in_flight_max_;
  std::shared_ptr<bool> alive_;  // scheduled callbacks check it
  std::map<std::string, std::unique_ptr<node>> nodes_;
  link_faults default_faults_;
  std::map<pair, link_faults> faults_;             // directed: (from, to)
  std::set<pair> partitions_;                      // undirected
  std::map<pair, std::uint64_t> links_;            // undirected → epoch of the link
  std::uint64_t next_epoch_ = 1;
  std::set<pair> pending_;                         // directed connect attempts: (from, to)
  std::map<pair, std::size_t> in_flight_;          // directed
  network_counters counters_;
};

} // namespace syncmesh::messaging
