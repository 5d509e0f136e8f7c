#include "actors/peer_actor.hpp"

#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>

#include "actors/errors.hpp"
#include "actors/messages.hpp"
#include "actors/row_json.hpp"
#include "actors/trust_policy.hpp"
#include "connectors/peer/replicator.hpp"
#include "messaging/curve_keys.hpp"
#include "messaging/zmq_transport.hpp"

namespace syncmesh::actors {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

/// The replicator's transport: sends, connects and disconnects go straight
/// to the ZeroMQ transport (thread-safe); the handler is called by the
/// actor with what the I/O thread reported, so it runs on the actor.
class actor_side_transport final : public messaging::transport {
public:
  explicit actor_side_transport(messaging::zmq_transport& net) : net_(net) {}

  const std::string& local_id() const override { return net_.local_id(); }
  void set_handler(messaging::transport_handler handler) override {
    handler_ = std::move(handler);
  }
  void connect(const std::string& peer) override { net_.connect(peer); }
  void disconnect(const std::string& peer) override { net_.disconnect(peer); }
  [[nodiscard]] bool send(const std::string& peer, std::string frame) override {
    return net_.send(peer, std::move(frame));
  }

  const messaging::transport_handler& handler() const { return handler_; }

private:
  messaging::zmq_transport& net_;
  messaging::transport_handler handler_;
};

/// The replicator's clock and timers on the actor clock: at() is a delayed
/// message (timer_atom, id) to the actor, which then calls fire(id).
class actor_scheduler final : public messaging::scheduler {
public:
  explicit actor_scheduler(caf::event_based_actor* self) : self_(self) {}

  std::uint64_t now_ms() const override {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        self_->clock().now().time_since_epoch())
                                        .count());
  }

  void at(std::uint64_t when_ms, std::function<void()> fn) override {
    auto id = ++next_id_;
    pending_.emplace(id, std::move(fn));
    auto now = now_ms();
    // Due now (a commit of received deltas, most often): straight into the
    // mailbox, behind the frames already there, without a round trip
    // through the clock's thread.
    if (when_ms <= now)
      self_->send(self_, timer_atom::value, id);
    else
      self_->delayed_send(self_, std::chrono::milliseconds(when_ms - now), timer_atom::value, id);
  }

  void fire(std::uint64_t id) {
    auto it = pending_.find(id);
    if (it == pending_.end())
      return;
    auto fn = std::move(it->second);
    pending_.erase(it);
    fn();
  }

private:
  caf::event_based_actor* self_;
  std::uint64_t next_id_ = 0;
  std::map<std::uint64_t, std::function<void()>> pending_;
};

struct peer_state {
  node_context_ptr ctx;
  // Destroyed in reverse order: the replicator first, the ZeroMQ transport
  // (which joins its threads) last.
  std::unique_ptr<messaging::zmq_transport> zmq;
  std::unique_ptr<actor_side_transport> net;
  std::unique_ptr<actor_scheduler> clock;
  std::unique_ptr<peer::replicator> rep;
  std::string endpoint;
  std::string failure;  // why the transport or replicator could not start
  std::map<std::string, peer::link_state> last_states;
  // What the last events said: log entries dropped, and full syncs per link.
  std::uint64_t last_dropped = 0;
  std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> last_full_syncs;
  std::map<std::string, std::string> last_held;  // by peer: why its link holds, as last reported
  /// Custom trust policies, by the peer of the link that names one, and the
  /// verdicts on the delta being handed to the replicator, by (origin, HLC)
  /// of each change: empty takes it, a sentence refuses it.
  std::map<std::string, caf::actor> policies;
  std::map<std::string, std::string> policy_names;
  std::map<std::pair<std::string, std::uint64_t>, std::string> verdicts;
  std::uint64_t frames_received = 0;  // for peer_config::failpoint_fail_after_frames
  /// `wait` requests not answered yet, by id: answered when the version
  /// vector holds their stamp, or refused when their time runs out.
  struct waiter {
    std::string origin;
    store::hlc_timestamp hlc;
    caf::typed_response_promise<std::string> rp;
    std::chrono::steady_clock::time_point since;
    std::chrono::steady_clock::time_point deadline;
  };
  std::map<std::uint64_t, waiter> waiters;
  std::uint64_t next_waiter = 0;
  /// When the wait timer fires next (none: no waiter), and its number: a
  /// wait_over message of another number is an earlier timer, replaced.
  std::optional<std::chrono::steady_clock::time_point> sweep_at;
  std::uint64_t sweep_number = 0;

  peer_state() = default;
  peer_state(const peer_state&) = delete;
  peer_state& operator=(const peer_state&) = delete;
  /// The actor is going (stopped, failed, restarted by the supervisor): a
  /// wait still pending is answered now, not left for its caller's timeout.
  ~peer_state() {
    for (auto& [id, w] : waiters)
      w.rp.deliver(make_error(errc::escalated,
                              "peer sync stopped while waiting for the changes of '" + w.origin
                                + "' up to " + w.hlc.to_string()
                                + "; ask again once `syncmesh ctl children` shows it running"));
  }

  static inline const char* name = "peer";
};

using peer_actor = caf::stateful_actor<peer_state>;


/// REQUIRES: `op` came from load_node_config.
peer::filter_op filter_op_of(const std::string& op) {
  if (op == "<")
    return peer::filter_op::lt;
  if (op == "<=")
    return peer::filter_op::le;
  if (op == ">")
    return peer::filter_op::gt;
  if (op == ">=")
    return peer::filter_op::ge;
  if (op == "in")
    return peer::filter_op::in;
  return peer::filter_op::eq;
}

peer::wire::link_mode mode_of(const std::string& m) {
  if (m == "push")
    return peer::wire::link_mode::push;
  if (m == "pull")
    return peer::wire::link_mode::pull;
  return peer::wire::link_mode::bidirectional;
}

const char* peer_port_file = "peer_port";

/// With an OS-chosen port (":0" or ":*"), the port bound on an earlier start
/// (kept in <data_dir>/peer_port), so peers configured with it find the
/// node again after a restart; otherwise `listen` as it is.
std::string remembered_listen(const node_context& ctx) {
  const auto& listen = ctx.config.peer.listen;
  auto colon = listen.rfind(':');
  if (colon == std::string::npos || listen.rfind("tcp://", 0) != 0)
    return listen;
  auto port = listen.substr(colon + 1);
  if (port != "0" && port != "*")
    return listen;
  std::ifstream in(fs::path(ctx.config.data_dir) / peer_port_file);
  std::string kept;
  if (!(in >> kept) || kept.empty() || kept.find_first_not_of("0123456789") != std::string::npos)
    return listen;
  return listen.substr(0, colon + 1) + kept;
}

void remember_port(const node_context& ctx, const std::string& bound) {
  auto colon = bound.rfind(':');
  if (colon == std::string::npos || bound.rfind("tcp://", 0) != 0)
    return;
  auto path = fs::path(ctx.config.data_dir) / peer_port_file;
  auto tmp = path;
  tmp += ".tmp";
  {
    std::ofstream out(tmp);
    out << bound.substr(colon + 1) << "\n";
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
}

void publish(peer_actor* self, json event) {
  event["at"] = std::chrono::duration_cast<std::chrono::milliseconds>(
                  self->clock().now().time_since_epoch())
                  .count()
                + self->state.ctx->wall_offset_ms;
  if (self->state.ctx->publish)
    self->state.ctx->publish(event);
}

// Publishes a `link` event for every link whose state changed since the
// last look, a `full_sync` event for every full sync completed since (sent
// or received), and a `peer_log` event when compaction dropped entries.
void report_states(peer_actor* self) {
  auto& st = self->state;
  if (!st.rep)
    return;
  const auto stats = st.rep->stats();
  for (const auto& [peer, s] : stats) {
    auto& last = st.last_states[peer];
    if (last == s.state)
      continue;
    publish(self, {{"type", "link"},
                   {"peer", peer},
                   {"from", peer::to_string(last)},
                   {"to", peer::to_string(s.state)},
                   {"lag_changes", s.lag_changes},
                   {"lag_ms", s.lag_ms}});
    last = s.state;
  }
  for (const auto& [peer, s] : stats) {
    auto& [sent, received] = st.last_full_syncs[peer];
    if (s.full_syncs_sent > sent)
      publish(self, {{"type", "full_sync"}, {"peer", peer}, {"direction", "sent"},
                     {"total", s.full_syncs_sent}});
    if (s.full_syncs_received > received)
      publish(self, {{"type", "full_sync"}, {"peer", peer}, {"direction", "received"},
                     {"total", s.full_syncs_received}});
    sent = s.full_syncs_sent;
    received = s.full_syncs_received;
  }
  for (const auto& [peer, s] : stats) {
    auto& last = st.last_held[peer];
    if (s.held == last)
      continue;
    if (!s.held.empty()) {
      spdlog::warn("peer: the link to '{}' holds: {}", peer, s.held);
      publish(self, {{"type", "peer_held"}, {"peer", peer}, {"why", s.held}});
    }
    last = s.held;
  }
  if (st.rep->log_entries_dropped() > st.last_dropped) {
    json floor = json::object();
    for (const auto& [origin, at] : st.rep->log_floor())
      floor[origin] = at.to_string();
    publish(self, {{"type", "peer_log"},
                   {"dropped", st.rep->log_entries_dropped() - st.last_dropped},
                   {"floor", floor}});
    st.last_dropped = st.rep->log_entries_dropped();
  }
}

/// The newest stamp of `origin` this node holds durably (zero for none).
store::hlc_timestamp held_of(const peer_actor* self, const std::string& origin) {
  const auto& vv = self->state.rep->held();
  auto it = vv.find(origin);
  return it == vv.end() ? store::hlc_timestamp{} : it->second;
}

json waited_json(const std::string& origin, store::hlc_timestamp hlc, store::hlc_timestamp held,
                 std::chrono::steady_clock::time_point since) {
  return {{"origin", origin},
          {"hlc", hlc.to_string()},
          {"held", held.to_string()},
          {"waited_ms", std::chrono::duration<double, std::milli>(
                          std::chrono::steady_clock::now() - since)
                          .count()}};
}

/// Answers the `wait` requests whose stamp the version vector now holds.
void wake_waiters(peer_actor* self) {
  auto& ws = self->state.waiters;
  for (auto it = ws.begin(); it != ws.end();) {
    const auto held = held_of(self, it->second.origin);
    if (held < it->second.hlc) {
      ++it;
      continue;
    }
    it->second.rp.deliver(waited_json(it->second.origin, it->second.hlc, held, it->second.since).dump());
    it = ws.erase(it);
  }
}

/// What every step of this actor ends with: events for what changed, and
/// answers for the waits it satisfied.
void after_step(peer_actor* self) {
  report_states(self);
  wake_waiters(self);
}

/// Sets the wait timer to fire at `at`.
void set_wait_timer(peer_actor* self, std::chrono::steady_clock::time_point at) {
  auto& st = self->state;
  st.sweep_at = at;
  const auto in = std::chrono::ceil<std::chrono::milliseconds>(at - std::chrono::steady_clock::now());
  self->delayed_send(self, std::max(in, std::chrono::milliseconds(0)), wait_over_atom::value,
                     ++st.sweep_number);
}

/// `wait`: answers once this node holds every change of `origin` up to the
/// stamp `hlc_text` (what `exec` on that node answered), durably; refused
/// after `timeout_ms`.
caf::result<std::string> wait_for(peer_actor* self, const std::string& origin,
                                  const std::string& hlc_text, std::uint64_t timeout_ms) {
  auto& st = self->state;
  auto hlc = store::hlc_timestamp::parse(hlc_text);
  if (!hlc || hlc->packed() == 0)
    return make_error(errc::invalid_request,
                      "'" + hlc_text + "' is not an HLC stamp; give one as `exec` on a peer table "
                        "prints it, WALL_MS.LOGICAL (e.g. 1700000000123.4)");
  if (origin.empty())
    return make_error(errc::invalid_request, "wait needs the node id whose changes to wait for");
  timeout_ms = std::min(timeout_ms, wait_max_ms);
  const auto since = std::chrono::steady_clock::now();
  if (const auto held = held_of(self, origin); !(held < *hlc))
    return waited_json(origin, *hlc, held, since).dump();
  const auto id = st.next_waiter++;
  auto rp = self->make_response_promise<std::string>();
  const auto deadline = since + std::chrono::milliseconds(timeout_ms);
  st.waiters.emplace(id, peer_state::waiter{origin, *hlc, rp, since, deadline});
  // One timer for all waits: it fires at the earliest deadline (waits
  // answered before theirs leave nothing behind in the actor clock).
  if (!st.sweep_at || deadline < *st.sweep_at)
    set_wait_timer(self, deadline);
  return rp;
}

/// A wait timer fired: the waits whose time ran out are refused with what
/// this node holds of their origin, and the current timer (`number`) is set
/// again for the next deadline.
void wait_over(peer_actor* self, std::uint64_t number) {
  auto& st = self->state;
  const auto now = std::chrono::steady_clock::now();
  std::optional<std::chrono::steady_clock::time_point> next;
  for (auto it = st.waiters.begin(); it != st.waiters.end();) {
    const auto& w = it->second;
    if (w.deadline > now) {
      next = next ? std::min(*next, w.deadline) : w.deadline;
      ++it;
      continue;
    }
    const auto held = held_of(self, w.origin);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now - w.since).count();
    it->second.rp.deliver(make_error(
      errc::timed_out,
      "node '" + st.ctx->config.node_id + "' "
        + (held.packed() == 0 ? "holds no change of '" + w.origin + "' yet"
                              : "holds the changes of '" + w.origin + "' up to " + held.to_string())
        + ", not up to " + w.hlc.to_string() + ", after " + std::to_string(ms)
        + " ms; `syncmesh ctl links` shows whether its links are live"));
    it = st.waiters.erase(it);
  }
  if (number != st.sweep_number)
    return;  // a replaced timer: the current one still comes
  st.sweep_at.reset();
  if (next)
    set_wait_timer(self, *next);
}

/// Starts the transport and the replicator; a sentence when either cannot.
std::string start(peer_actor* self) {
  auto& st = self->state;
  const auto& cfg = st.ctx->config;
  messaging::zmq_transport_options o;
  o.node_id = cfg.node_id;
  o.bind_endpoint = remembered_listen(*st.ctx);
  o.limits.frame_bytes_max = cfg.peer.frame_bytes_max;
  o.insecure = cfg.peer.insecure;
  o.heartbeat_interval = std::chrono::milliseconds(cfg.peer.heartbeat_ms);
  o.heartbeat_timeout = std::chrono::milliseconds(cfg.peer.dead_after_ms);
  o.reconnect_interval = std::chrono::milliseconds(cfg.peer.reconnect_initial_ms);
  o.reconnect_interval_max = std::chrono::milliseconds(cfg.peer.reconnect_max_ms);
  o.log = [](const std::string& sentence) { spdlog::warn("peer transport: {}", sentence); };
  if (!cfg.peer.secret_key_file.empty()) {
    auto keys = messaging::load_curve_key_pair(cfg.peer.secret_key_file);
    if (!keys)
      return keys.error().message();
    auto pub = messaging::load_curve_public_key(cfg.peer.public_key_file);
    if (!pub)
      return pub.error().message();
    if (*pub != keys->public_key)
      return "the public key in '" + cfg.peer.public_key_file + "' does not belong to the "
             "secret key in '" + cfg.peer.secret_key_file + "'; give the pair `syncmesh keygen` "
             "wrote";
    o.keys = std::move(keys).value();
    for (const auto& a : cfg.peer.allow)
      o.allowed_clients[a.key] = a.node;
  }
  auto started = messaging::zmq_transport::start(o);
  if (!started && o.bind_endpoint != cfg.peer.listen) {
    spdlog::warn("peer: cannot bind the port of the last start ({}): {}; letting the OS choose "
                 "a new one, so peers configured with the old port must be told",
                 o.bind_endpoint, started.error().message());
    o.bind_endpoint = cfg.peer.listen;
    started = messaging::zmq_transport::start(o);
  }
  if (!started)
    return started.error().message();
  st.zmq = std::move(started).value();
  st.endpoint = st.zmq->bound_endpoint();
  remember_port(*st.ctx, st.endpoint);

  peer::replicator_config rc;
  for (const auto& t : cfg.tables)
    rc.tables.push_back(peer_table_schema(t));
  for (const auto& l : cfg.links) {
    peer::link_config lc;
    lc.peer = l.peer;
    lc.mode = mode_of(l.mode);
    lc.connects = !l.endpoint.empty();
    lc.tables = l.tables;
    lc.trusted_origins.insert(l.trusted_origins.begin(), l.trusted_origins.end());
    lc.excluded = l.exclude;
    const auto& policy = l.trust_policy.empty() ? cfg.peer.trust_policy : l.trust_policy;
    if (!policy.empty()) {
      auto actor = spawn_trust_policy(self->system(), policy);
      if (!actor)
        return "link '" + l.peer + "' names trust policy '" + policy
               + "', which is not registered in this process";
      st.policies[l.peer] = actor;
      st.policy_names[l.peer] = policy;
      // The replicator asks synchronously; the actor asked the policy
      // before it handed the frame over (see ask_policy), so the verdict
      // is here. A change it was not asked about is refused.
      lc.trust = [self, policy](const peer::wire::change& c) -> std::optional<std::string> {
        auto& v = self->state.verdicts;
        auto it = v.find({c.origin, c.hlc.packed()});
        if (it == v.end())
          return "the trust policy '" + policy + "' was not asked about it";
        if (it->second.empty())
          return std::nullopt;
        return it->second;
      };
    }
    for (const auto& f : l.filters)
      lc.filters.push_back({f.table, f.column, filter_op_of(f.op), f.values});
    rc.links.push_back(std::move(lc));
    if (!l.endpoint.empty())
      if (auto added = st.zmq->add_peer(l.peer, {l.endpoint, l.server_key}); !added)
        return "link '" + l.peer + "': " + added.message();
  }
  rc.tie_winner = cfg.peer.tie_winner;
  rc.batch_max = cfg.peer.batch_max;
  rc.in_flight_max = cfg.peer.in_flight_max;
  rc.credits = cfg.peer.credits;
  rc.credit_bytes = cfg.peer.credit_bytes;
  rc.pause_at = cfg.peer.pause_at;
  rc.commit_delay_ms = cfg.peer.commit_delay_ms;
  rc.commits_in_flight_max = cfg.peer.commits_in_flight_max;
  rc.retransmit_ms = cfg.peer.retransmit_ms;
  rc.heartbeat_ms = cfg.peer.heartbeat_ms;
  rc.dead_after_ms = cfg.peer.dead_after_ms;
  rc.reconnect_initial_ms = cfg.peer.reconnect_initial_ms;
  rc.reconnect_max_ms = cfg.peer.reconnect_max_ms;
  rc.tombstone_retention_ms = cfg.peer.tombstone_retention_ms;
  rc.log_retention_ms = cfg.peer.log_retention_ms;
  rc.gc_interval_ms = cfg.peer.gc_interval_ms;
  rc.seed = cfg.seed == 0 ? std::random_device{}() : cfg.seed;
  rc.limits.frame_bytes_max = cfg.peer.frame_bytes_max;
  if (rc.credit_bytes < 2 * static_cast<std::uint64_t>(rc.limits.frame_bytes_max))
    spdlog::warn("peer: credit_bytes ({}) is less than twice frame_bytes_max ({}), so a peer "
                 "sends this node one delta at a time; raise credit_bytes for a deeper pipeline",
                 rc.credit_bytes, rc.limits.frame_bytes_max);

  st.net = std::make_unique<actor_side_transport>(*st.zmq);
  st.clock = std::make_unique<actor_scheduler>(self);
  // What the I/O thread sees goes to the actor as a message; nothing else
  // happens on that thread. The transport listens from start() on, so a
  // peer that attaches in the moment before set_handler() goes unreported;
  // the replicator then hears frames on a link it holds down and ignores
  // them, the peer hears no hello within dead_after_ms, drops the link and
  // dials again, and that attach is reported.
  caf::weak_actor_ptr weak{self->ctrl()};
  auto to_self = [weak](auto&&... xs) {
    if (auto strong = weak.lock())
      caf::anon_send(caf::actor_cast<caf::actor>(strong), std::forward<decltype(xs)>(xs)...);
  };
  messaging::transport_handler h;
  h.connected = [to_self](const std::string& peer) { to_self(link_up_atom::value, peer); };
  h.disconnected = [to_self](const std::string& peer, const std::string& reason) {
    to_self(link_down_atom::value, peer, reason);
  };
  h.received = [to_self](const std::string& peer, std::string frame) {
    to_self(frame_atom::value, peer, std::move(frame));
  };
  st.zmq->set_handler(std::move(h));
  // Received changes are written on the committer's thread while the
  // actor merges the next ones; it says when a commit is done.
  auto committer = peer::thread_committer(*st.ctx->db, [to_self] { to_self(committed_atom::value); });
  st.rep = std::make_unique<peer::replicator>(*st.ctx->db, *st.net, *st.clock, std::move(rc),
                                              std::move(committer));
  if (auto s = st.rep->start(); !s)
    return s.message();
  for (const auto& l : cfg.links)
    st.last_states[l.peer] = peer::link_state::down;
  return {};
}

json links_json(peer_actor* self) {
  auto& st = self->state;
  auto stats = st.rep->stats();
  json out = json::array();
  for (const auto& l : st.ctx->config.links) {
    const auto& s = stats[l.peer];
    out.push_back({{"peer", l.peer},
                   {"role", l.endpoint.empty() ? "server" : "client"},
                   {"endpoint", l.endpoint},
                   {"mode", l.mode},
                   {"state", peer::to_string(s.state)},
                   {"sent", s.sent_changes},
                   {"applied", s.applied_changes},
                   {"duplicates", s.duplicate_changes},
                   {"nacked", s.nacked},
                   {"nacks_received", s.nacks_received},
                   {"frames_refused", s.frames_refused},
                   {"dropped", s.dropped_changes},
                   {"unacked", s.unacked},
                   {"over_credit", s.over_credit},
                   {"pauses_sent", s.pauses_sent},
                   {"pauses_received", s.pauses_received},
                   {"full_syncs_sent", s.full_syncs_sent},
                   {"full_syncs_received", s.full_syncs_received},
                   {"lag_changes", s.lag_changes},
                   {"lag_ms", s.lag_ms},
                   {"last_refusal", s.last_refusal},
                   {"held", s.held}});
  }
  return out;
}

caf::result<std::string> exec(peer_actor* self, const std::string& table,
                              const std::string& ops_text) {
  auto& st = self->state;
  const peer_table_config* tc = nullptr;
  for (const auto& t : st.ctx->config.tables)
    if (t.name == table)
      tc = &t;
  if (!tc)
    return make_error(errc::unknown_view, "no peer table is named '" + table + "'");
  auto shape = peer_table_schema(*tc);
  auto ops = json::parse(ops_text, nullptr, false);
  auto changes = changes_from_json(shape, ops);
  if (!changes)
    return make_error(errc::invalid_request, changes.error().message());
  std::vector<store::row> upserts, removes;
  for (auto& c : *changes) {
    if (c.new_row)
      upserts.push_back(std::move(*c.new_row));
    else
      removes.push_back(std::move(c.key));
  }
  auto written = st.rep->write(table, upserts, removes);
  after_step(self);
  if (!written)
    // Refused as given (a row too big for a peer frame, say), or the store failed.
    return make_error(written.error().code() == store::errc::invalid_argument
                        ? errc::invalid_request
                        : errc::store_failed,
                      "the write to peer table '" + table + "' failed: "
                        + written.error().message());
  // The stamp of the write's last change: `wait` on another node answers
  // once that node holds it, and with it every change of this node before.
  return json{{"table", table},
              {"upserted", upserts.size()},
              {"deleted", removes.size()},
              {"origin", st.ctx->config.node_id},
              {"hlc", written->to_string()}}
    .dump();
}

/// Hands a frame from `peer` to the replicator.
void deliver(peer_actor* self, const std::string& peer, std::string frame) {
  if (auto& f = self->state.net->handler().received)
    f(peer, std::move(frame));
  after_step(self);
}

/// A frame from a peer whose link has a custom trust policy. The
/// replicator is synchronous and single-threaded (it runs on the in-memory
/// network in tests, with a plain function as policy), and the policy is an
/// actor: so a delta goes to the policy first, and to the replicator with
/// the verdicts once they are in. `await` holds every other message of
/// this actor meanwhile, so frames, timers and writes keep their order.
void ask_policy(peer_actor* self, const std::string& peer, std::string frame) {
  auto& st = self->state;
  peer::wire::limits lim;
  lim.frame_bytes_max = st.ctx->config.peer.frame_bytes_max;
  auto m = peer::wire::decode(frame, lim);
  // Deltas and a full sync's batches carry changes; nothing else does.
  const std::vector<peer::wire::change>* changes = nullptr;
  if (m) {
    if (const auto* d = std::get_if<peer::wire::delta>(&m.value()))
      changes = &d->changes;
    else if (const auto* b = std::get_if<peer::wire::sync_batch>(&m.value()))
      changes = &b->changes;
  }
  if (!changes) {
    deliver(self, peer, std::move(frame));  // nothing to judge
    return;
  }
  trust_request req;
  req.peer = peer;
  std::vector<std::pair<std::string, std::uint64_t>> asked;
  for (const auto& c : *changes) {
    trust_change tc;
    tc.origin = c.origin;
    tc.table = c.table;
    tc.op = store::to_string(c.op);
    json key = json::array();
    for (const auto& v : c.key)
      key.push_back(to_json(v));
    tc.key = key.dump();
    if (c.new_row) {
      json row = json::array();
      for (const auto& v : *c.new_row)
        row.push_back(to_json(v));
      tc.row = row.dump();
    }
    req.changes.push_back(std::move(tc));
    asked.emplace_back(c.origin, c.hlc.packed());
  }
  const auto name = st.policy_names[peer];
  auto judged = [self, peer, asked, frame = std::move(frame)](
                  const std::vector<std::string>& refusals) mutable {
    auto& v = self->state.verdicts;
    for (std::size_t i = 0; i < asked.size(); ++i)
      v[asked[i]] = refusals[i];
    deliver(self, peer, std::move(frame));
    v.clear();
  };
  self->request(st.policies[peer], std::chrono::milliseconds(st.ctx->config.peer.heartbeat_ms),
                trust_atom::value, std::move(req))
    .await(
      [judged, name, n = asked.size()](trust_verdicts& out) mutable {
        if (out.refusals.size() != n)
          out.refusals.assign(n, "the trust policy '" + name + "' answered "
                                   + std::to_string(out.refusals.size()) + " verdicts for "
                                   + std::to_string(n) + " changes; fix the policy");
        judged(out.refusals);
      },
      [self, peer, name](caf::error& e) mutable {
        // No verdict is not a refusal: a nack would be final, and the
        // changes would be lost here for a policy's hiccup. Dropped
        // unacknowledged, the delta comes again and the policy is asked again.
        auto why = "the trust policy '" + name + "' did not answer about a delta from '" + peer
                   + "' (" + self->system().render(e)
                   + "); the delta is not taken, and the peer sends it again";
        spdlog::warn("peer: {}", why);
        publish(self, {{"type", "error"}, {"message", why}});
      });
}

caf::behavior failed_behavior(peer_actor* self) {
  auto refuse = [self]() -> caf::error {
    return make_error(errc::escalated, "peer sync did not start: " + self->state.failure);
  };
  return {
    [refuse](endpoint_atom) -> caf::result<std::string> { return refuse(); },
    [refuse](links_atom) -> caf::result<std::string> { return refuse(); },
    [refuse](exec_atom, const std::string&, const std::string&) -> caf::result<std::string> {
      return refuse();
    },
    [refuse](wait_atom, const std::string&, const std::string&, std::uint64_t)
      -> caf::result<std::string> { return refuse(); },
  };
}

caf::behavior peer_impl(peer_actor* self, node_context_ptr ctx) {
  self->state.ctx = std::move(ctx);
  if (auto why = start(self); !why.empty()) {
    self->state.failure = why;
    self->state.rep.reset();
    self->state.zmq.reset();
    for (const auto& [peer, p] : self->state.policies)
      caf::anon_send_exit(p, caf::exit_reason::user_shutdown);
    self->state.policies.clear();
    spdlog::error("peer sync did not start: {}", why);
    publish(self, {{"type", "error"}, {"child", "peer"}, {"message", "peer sync did not start: " + why}});
    return failed_behavior(self);
  }
  self->attach_functor([policies = self->state.policies] {
    for (const auto& [peer, p] : policies)
      caf::anon_send_exit(p, caf::exit_reason::user_shutdown);
  });
  spdlog::info("peer: listening on {}, {} link(s), {} table(s)", self->state.endpoint,
               self->state.ctx->config.links.size(), self->state.ctx->config.tables.size());
  return {
    [self](link_up_atom, const std::string& peer) {
      if (auto& f = self->state.net->handler().connected)
        f(peer);
      after_step(self);
    },
    [self](link_down_atom, const std::string& peer, const std::string& reason) {
      if (auto& f = self->state.net->handler().disconnected)
        f(peer, reason);
      after_step(self);
    },
    [self](frame_atom, const std::string& peer, std::string& frame) {
      const auto fail_after = self->state.ctx->config.peer.failpoint_fail_after_frames;
      if (fail_after > 0 && ++self->state.frames_received > fail_after) {
        static std::atomic<bool> failed_once{false};
        if (!failed_once.exchange(true)) {
          spdlog::warn("peer: failpoint_fail_after_frames = {}: failing on purpose", fail_after);
          self->quit(make_error(errc::invalid_request, "failpoint_fail_after_frames: failed on purpose "
                                                "after " + std::to_string(fail_after) + " frames"));
          return;
        }
      }
      if (self->state.policies.count(peer))
        ask_policy(self, peer, std::move(frame));
      else
        deliver(self, peer, std::move(frame));
    },
    [self](timer_atom, std::uint64_t id) {
      self->state.clock->fire(id);
      after_step(self);
    },
    [self](committed_atom) {
      self->state.rep->commits_done();
      after_step(self);
    },
    [self](endpoint_atom) { return self->state.endpoint; },
    [self](links_atom) { return links_json(self).dump(); },
    [self](exec_atom, const std::string& table, const std::string& ops) {
      return exec(self, table, ops);
    },
    [self](wait_atom, const std::string& origin, const std::string& hlc,
           std::uint64_t timeout_ms) { return wait_for(self, origin, hlc, timeout_ms); },
    [self](wait_over_atom, std::uint64_t number) { wait_over(self, number); },
  };
}

} // namespace

caf::actor spawn_peer_actor(caf::actor_system& sys, node_context_ptr ctx) {
  if (ctx->detached_io)
    return sys.spawn<caf::detached>(peer_impl, std::move(ctx));
  return sys.spawn(peer_impl, std::move(ctx));
}

} // namespace syncmesh::actors
