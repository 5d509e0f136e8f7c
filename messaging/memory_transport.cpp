#include "messaging/memory_transport.hpp"

#include <algorithm>
#include <vector>

namespace syncmesh::messaging {

class memory_network::node final : public transport {
public:
  node(memory_network& net, std::string id) : net_(net), id_(std::move(id)) {}

  const std::string& local_id() const override { return id_; }
  void set_handler(transport_handler handler) override { handler_ = std::move(handler); }
  void connect(const std::string& peer) override { net_.connect(id_, peer); }
  void disconnect(const std::string& peer) override {
    net_.disconnect(id_, peer, "closed by " + id_);
  }
  bool send(const std::string& peer, std::string frame) override {
    return net_.send(id_, peer, std::move(frame));
  }

  const transport_handler& handler() const noexcept { return handler_; }

private:
  memory_network& net_;
  std::string id_;
  transport_handler handler_;
};

memory_network::memory_network(scheduler& clock, std::uint64_t seed, std::size_t in_flight_max)
  : clock_(clock), rng_(seed), in_flight_max_(in_flight_max),
    alive_(std::make_shared<bool>(true)) {}

memory_network::~memory_network() = default;

memory_network::pair memory_network::key(const std::string& a, const std::string& b) {
  return a < b ? pair{a, b} : pair{b, a};
}

memory_network::node* memory_network::find(const std::string& id) const {
  auto it = nodes_.find(id);
  return it == nodes_.end() ? nullptr : it->second.get();
}

transport& memory_network::attach(const std::string& node_id) {
  auto& slot = nodes_[node_id];
  if (!slot)
    slot = std::make_unique<node>(*this, node_id);
  try_pending_connects();
  return *slot;
}

void memory_network::set_faults(const link_faults& faults) { default_faults_ = faults; }

void memory_network::set_faults(const std::string& from, const std::string& to,
                                const link_faults& faults) {
  faults_[{from, to}] = faults;
}

const link_faults& memory_network::faults_of(const std::string& from,
                                             const std::string& to) const {
  auto it = faults_.find({from, to});
  return it == faults_.end() ? default_faults_ : it->second;
}

void memory_network::partition(const std::string& a, const std::string& b) {
  partitions_.insert(key(a, b));
}

void memory_network::heal(const std::string& a, const std::string& b) {
  partitions_.erase(key(a, b));
  try_pending_connects();
}

void memory_network::heal_all() {
  partitions_.clear();
  try_pending_connects();
}

bool memory_network::is_partitioned(const std::string& a, const std::string& b) const {
  return partitions_.count(key(a, b)) > 0;
}

bool memory_network::is_linked(const std::string& a, const std::string& b) const {
  return links_.count(key(a, b)) > 0;
}

void memory_network::cut(const std::string& a, const std::string& b) {
  disconnect(a, b, "the network cut the link between " + key(a, b).first + " and " +
                     key(a, b).second);
  pending_.erase({b, a});
}

std::uint64_t memory_network::draw_delay(const link_faults& f) {
  if (f.delay_ms_max <= f.delay_ms_min)
    return f.delay_ms_min;
  return std::uniform_int_distribution<std::uint64_t>(f.delay_ms_min, f.delay_ms_max)(rng_);
}

bool memory_network::chance(double p) {
  if (p <= 0.0)
    return false;
  if (p >= 1.0)
    return true;
  return std::uniform_real_distribution<double>(0.0, 1.0)(rng_) < p;
}

void memory_network::connect(const std::string& from, const std::string& to) {
  if (is_linked(from, to))
    return;
  pending_.insert({from, to});
  try_pending_connects();
}

// Every pending attempt gets one try after a link delay; one that cannot
// succeed then (peer absent or partitioned away) waits for attach() or heal().
void memory_network::try_pending_connects() {
  std::vector<pair> attempts(pending_.begin(), pending_.end());
  for (const auto& [from, to] : attempts) {
    std::weak_ptr<bool> alive = alive_;
    clock_.at(clock_.now_ms() + draw_delay(faults_of(from, to)),
              [this, alive, from = from, to = to] {
                if (alive.expired() || !pending_.count({from, to}))
                  return;
                if (!find(to) || is_partitioned(from, to) || is_linked(from, to))
                  return;
                establish(from, to);
              });
  }
}

void memory_network::establish(const std::string& a, const std::string& b) {
  links_[key(a, b)] = next_epoch_++;
  pending_.erase({a, b});
  pending_.erase({b, a});
  for (const auto& [self, peer] : {pair{a, b}, pair{b, a}})
    if (auto* n = find(self); n && n->handler().connected)
      n->handler().connected(peer);
}

void memory_network::disconnect(const std::string& from, const std::string& to,
                                const std::string& reason) {
  pending_.erase({from, to});
  if (!links_.erase(key(from, to)))
    return;
  std::weak_ptr<bool> alive = alive_;
  for (const auto& [self, peer] : {pair{from, to}, pair{to, from}})
    clock_.at(clock_.now_ms(), [this, alive, self = self, peer = peer, reason] {
      if (alive.expired())
        return;
      if (auto* n = find(self); n && n->handler().disconnected)
        n->handler().disconnected(peer, reason);
    });
}

bool memory_network::send(const std::string& from, const std::string& to, std::string frame) {
  auto link = links_.find(key(from, to));
  if (link == links_.end()) {
    ++counters_.unlinked;
    return false;
  }
  ++counters_.sent;
  const auto& f = faults_of(from, to);
  if (is_partitioned(from, to)) {
    ++counters_.partitioned;
    return true;
  }
  if (chance(f.loss)) {
    ++counters_.lost;
    return true;
  }
  const int copies = chance(f.duplicate) ? 2 : 1;
  if (copies == 2)
    ++counters_.duplicated;
  const auto epoch = link->second;
  for (int i = 0; i < copies; ++i) {
    auto& in_flight = in_flight_[{from, to}];
    if (in_flight >= in_flight_max_) {
      ++counters_.overflowed;
      continue;
    }
    auto delay = draw_delay(f);
    if (f.reorder_ms_max > 0 && chance(f.reorder)) {
      delay += std::uniform_int_distribution<std::uint64_t>(1, f.reorder_ms_max)(rng_);
      ++counters_.held_back;
    }
    ++in_flight;
    std::weak_ptr<bool> alive = alive_;
    clock_.at(clock_.now_ms() + delay,
              [this, alive, from, to, epoch, copy = (i + 1 < copies ? frame : std::move(frame))] {
                if (!alive.expired())
                  deliver(from, to, epoch, copy);
              });
  }
  return true;
}

void memory_network::deliver(const std::string& from, const std::string& to,
                             std::uint64_t link_epoch, const std::string& frame) {
  --in_flight_[{from, to}];
  auto link = links_.find(key(from, to));
  if (link == links_.end() || link->second != link_epoch) {
    ++counters_.unlinked;  // the link closed (or was replaced) while the frame was in flight
    return;
  }
  if (is_partitioned(from, to)) {
    ++counters_.partitioned;
    return;
  }
  ++counters_.delivered;
  if (auto* n = find(to); n && n->handler().received)
    n->handler().received(from, frame);
}

} // namespace syncmesh::messaging
