#include "actors/memory_connector.hpp"

#include <deque>
#include <unordered_map>
#include <map>
#include <set>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "actors/backoff.hpp"
#include "actors/errors.hpp"
#include "actors/messages.hpp"
#include "store/key_codec.hpp"

namespace syncmesh::actors {

namespace {

/// Changes kept for subscribers that join at an older position.
constexpr std::size_t history_changes_max = 100'000;
/// Mutation ids remembered for deduplication.
constexpr std::size_t mutations_kept_max = 1'000'000;

struct memory_table {
  store::schema shape;
  std::map<std::string, store::row> rows;  // by encoded primary key
};

struct memory_state {
  node_context_ptr ctx;
  remote_config cfg;
  std::map<std::string, memory_table> tables;
  std::uint64_t position = 0;
  // Applied change sets, oldest first, for catch-up subscriptions.
  std::deque<std::pair<caf::actor_addr, change_set>> history;
  std::size_t history_changes = 0;
  std::map<std::string, std::set<caf::actor>> subscribers;  // by table
  std::set<caf::actor> watchers;
  // Pushed mutation ids and how often each was applied (bounded: the oldest
  // are forgotten past mutations_kept_max).
  std::unordered_map<std::string, std::uint32_t> applied;
  std::deque<std::string> applied_order;
  std::uint64_t mutations_applied = 0;
  std::uint64_t retransmissions_skipped = 0;
  /// Whether each view's last push went through whole (change_set::after_previous).
  push_chain push_ends;
  std::uint64_t applied_twice = 0;
  std::uint32_t acks_to_drop = 0;
  // Snapshots taken and waiting for snapshot_delay_ms, by id.
  std::map<std::uint64_t, std::pair<caf::typed_response_promise<snapshot_ref>, snapshot_ref>>
    delayed;
  std::uint64_t next_delayed = 0;
  bool outage = false;   // the simulated remote is unreachable
  bool up = true;        // what the connector currently believes
  std::string down_reason;
  std::uint32_t reconnect_attempts = 0;
  std::uint64_t reconnect_gen = 0;
  std::unique_ptr<backoff> reconnect;

  static inline const char* name = "memory_connector";
};

caf::error down_error(const memory_state& st) {
  return make_error(errc::remote_down, "remote '" + st.cfg.name + "' is down (" + st.down_reason
                                         + "); the connector reconnects on its own");
}

void apply_changes(memory_table& t, const std::vector<store::change>& changes) {
  for (const auto& c : changes) {
    switch (c.op) {
      case store::change_op::insert:
      case store::change_op::update:
        t.rows[store::encode_key(t.shape.key_of(*c.new_row))] = *c.new_row;
        break;
      case store::change_op::remove: t.rows.erase(store::encode_key(c.key)); break;
      case store::change_op::truncate: t.rows.clear(); break;
      case store::change_op::replace: break;  // written by a store, never pushed
    }
  }
}

} // namespace

namespace {

using memory_actor = caf::stateful_actor<memory_state>;

void notify_watchers(memory_actor* self) {
  auto& st = self->state;
  for (const auto& w : st.watchers) {
    if (st.up)
      self->send(w, up_atom::value, st.cfg.name);
    else
      self->send(w, down_atom::value, st.cfg.name, st.down_reason);
  }
}

void schedule_reconnect(memory_actor* self) {
  auto& st = self->state;
  ++st.reconnect_attempts;
  self->delayed_send(self, st.reconnect->delay(st.reconnect_attempts), reconnect_atom::value,
                     st.reconnect_gen);
}

// Validates and applies a change set as a write at the remote; publishes it
// to subscribers of the table except `origin`.
caf::result<std::uint64_t> remote_write(memory_actor* self, const change_set& cs,
                                        const caf::actor_addr& origin) {
  auto& st = self->state;
  if (!st.up)
    return down_error(st);
  auto it = st.tables.find(cs.table);
  if (it == st.tables.end())
    return make_error(errc::invalid_request, "remote '" + st.cfg.name + "' has no table '"
                                               + cs.table + "'");
  for (const auto& c : cs.changes) {
    store::status check;
    if (c.op == store::change_op::insert || c.op == store::change_op::update)
      check = c.new_row ? it->second.shape.check_row(*c.new_row)
                        : store::status::invalid_argument("an insert carries no row");
    else if (c.op == store::change_op::remove)
      check = it->second.shape.check_key(c.key);
    if (!check)
      return make_error(errc::invalid_request, "remote '" + st.cfg.name + "' refused a write: "
                                                 + check.message());
  }
  // Each pushed mutation once (unless configured otherwise): a writer that
  // lost an acknowledgement sends the same mutation ids again.
  change_set fresh = cs;
  if (!cs.mutation_ids.empty()) {
    fresh.changes.clear();
    fresh.mutation_ids.clear();
    for (std::size_t i = 0; i < cs.changes.size() && i < cs.mutation_ids.size(); ++i) {
      const auto& id = cs.mutation_ids[i];
      auto [slot, first] = st.applied.emplace(id, 0);
      if (first) {
        st.applied_order.push_back(id);
        if (st.applied_order.size() > mutations_kept_max) {
          st.applied.erase(st.applied_order.front());
          st.applied_order.pop_front();
        }
      }
      if (slot->second > 0 && st.cfg.dedupe_mutations) {
        ++st.retransmissions_skipped;
        continue;
      }
      if (++slot->second == 2)
        ++st.applied_twice;
      ++st.mutations_applied;
      fresh.changes.push_back(cs.changes[i]);
      fresh.mutation_ids.push_back(id);
    }
  }
  apply_changes(it->second, fresh.changes);
  change_set stamped = fresh;
  stamped.position = ++st.position;
  st.history.emplace_back(origin, stamped);
  st.history_changes += stamped.changes.size();
  while (st.history_changes > history_changes_max && st.history.size() > 1) {
    st.history_changes -= st.history.front().second.changes.size();
    st.history.pop_front();
  }
  auto ref = changes_ref{std::make_shared<const change_set>(std::move(stamped))};
  for (const auto& sub : st.subscribers[cs.table])
    if (sub.address() != origin)
      self->send(sub, changes_atom::value, ref);
  if (!cs.mutation_ids.empty() && st.acks_to_drop > 0) {
    --st.acks_to_drop;
    return make_error(errc::remote_down, "remote '" + st.cfg.name
                                           + "' applied the push but its acknowledgement was "
                                             "lost (drop_push_acks)");
  }
  return st.position;
}

caf::behavior memory_connector_impl(memory_actor* self, node_context_ptr ctx, remote_config cfg) {
  auto& st = self->state;
  st.ctx = ctx;
  st.cfg = cfg;
  st.reconnect = std::make_unique<backoff>(ctx->config.retry,
                                           ctx->config.seed ^ std::hash<std::string>{}(cfg.name));
  for (const auto& t : cfg.tables) {
    memory_table mt;
    mt.shape = memory_table_schema(t);
    for (const auto& r : t.rows)
      mt.rows[store::encode_key(mt.shape.key_of(r))] = r;
    st.tables.emplace(t.name, std::move(mt));
  }
  st.acks_to_drop = cfg.drop_push_acks;
  if (cfg.start_down) {
    st.outage = true;
    st.up = false;
    st.down_reason = "configured to start down";
    schedule_reconnect(self);
  }
  self->set_down_handler([self](const caf::down_msg& dm) {
    for (auto& [table, subs] : self->state.subscribers)
      for (auto i = subs.begin(); i != subs.end();)
        i = i->address() == dm.source ? subs.erase(i) : std::next(i);
    for (auto i = self->state.watchers.begin(); i != self->state.watchers.end();)
      i = i->address() == dm.source ? self->state.watchers.erase(i) : std::next(i);
  });

  return {
    [self](ack_atom, const std::string&, std::uint64_t) {
      // Nothing to confirm: the memory remote keeps no per-reader state.
    },
    [self](snapshot_atom, const std::string& table, const std::string&,
           bool) -> caf::result<snapshot_ref> {
      auto& st = self->state;
      if (!st.up)
        return down_error(st);
      auto it = st.tables.find(table);
      if (it == st.tables.end())
        return make_error(errc::invalid_request,
                          "remote '" + st.cfg.name + "' has no table '" + table + "'");
      auto snap = std::make_shared<snapshot>();
      snap->shape = it->second.shape;
      for (const auto& [key, r] : it->second.rows)
        snap->rows.push_back(r);
      snap->position = st.position;
      if (st.cfg.snapshot_delay_ms == 0)
        return snapshot_ref{std::move(snap)};
      auto rp = self->make_response_promise<snapshot_ref>();
      auto id = ++st.next_delayed;
      st.delayed.emplace(id, std::make_pair(rp, snapshot_ref{std::move(snap)}));
      self->delayed_send(self, std::chrono::milliseconds(st.cfg.snapshot_delay_ms),
                         deliver_atom::value, id);
      return rp;
    },
    [self](deliver_atom, std::uint64_t id) {
      auto it = self->state.delayed.find(id);
      if (it == self->state.delayed.end())
        return;
      it->second.first.deliver(it->second.second);
      self->state.delayed.erase(it);
    },
    [self](subscribe_atom, const std::string& table, const std::string&, const caf::actor& sub,
           std::uint64_t from, const stream_gate_ref&) -> caf::result<std::uint64_t> {
      // The gate is not used: changes reach the view as messages.
      auto& st = self->state;
      if (!st.up)
        return down_error(st);
      if (from > st.position)
        return make_error(errc::invalid_request,
                          "position " + std::to_string(from) + " is ahead of remote '"
                            + st.cfg.name + "' (it restarted and forgot); take a new snapshot");
      if (!st.tables.count(table))
        return make_error(errc::invalid_request,
                          "remote '" + st.cfg.name + "' has no table '" + table + "'");
      if (from < st.position && !st.history.empty() && st.history.front().second.position > from + 1)
        return make_error(errc::invalid_request,
                          "position " + std::to_string(from) + " of remote '" + st.cfg.name
                            + "' is no longer retained; take a new snapshot");
      if (st.subscribers[table].insert(sub).second)
        self->monitor(sub);
      for (const auto& [origin, cs] : st.history)
        if (cs.table == table && cs.position > from && origin != sub.address())
          self->send(sub, changes_atom::value,
                     changes_ref{std::make_shared<const change_set>(cs)});
      return st.position;
    },
    [self](unsubscribe_atom, const std::string& table, const caf::actor& sub) {
      self->state.subscribers[table].erase(sub);
    },
    [self](forget_atom, const std::string&, const std::string&) {
      // A memory remote keeps nothing per view.
      return nlohmann::json{{"remote", self->state.cfg.name}, {"dropped", nlohmann::json::array()}}
        .dump();
    },
    [self](push_atom, const std::string& table, const changes_ref& cs,
           const caf::actor& origin) -> caf::result<push_report_ref> {
      if (!cs.ptr || cs.ptr->table != table)
        return make_error(errc::invalid_request, "a push names no changes for table " + table);
      auto& chain = self->state.push_ends;
      if (auto why = chain.refusal(*cs.ptr); !why.empty())
        return make_error(errc::invalid_request, std::move(why));
      auto written = remote_write(self, *cs.ptr, origin.address());
      if (written.flag == caf::rt_error) {
        chain.ended(cs.ptr->view, nullptr);
        return written.err;
      }
      // A memory remote takes every write as it comes: no base versions,
      // no conflicts, and no echoes on its stream.
      auto report = std::make_shared<push_report>();
      report->position = written.value.get_as<std::uint64_t>(0);
      push_outcome applied;
      applied.state = store::outbox_state::applied;
      applied.written = true;
      report->outcomes.assign(cs.ptr->changes.size(), applied);
      chain.ended(cs.ptr->view, report.get());
      return push_report_ref{std::move(report)};
    },
    [self](exec_atom, const changes_ref& cs) -> caf::result<std::uint64_t> {
      if (!cs.ptr)
        return make_error(errc::invalid_request, "an exec carries no changes");
      return remote_write(self, *cs.ptr, caf::actor_addr{});
    },
    [self](health_atom) { return caf::make_message(self->state.up, self->state.down_reason); },
    [self](stats_atom) {
      const auto& st = self->state;
      return nlohmann::json{{"remote", st.cfg.name},
                            {"up", st.up},
                            {"mutations_applied", st.mutations_applied},
                            {"retransmissions_skipped", st.retransmissions_skipped},
                            {"applied_twice", st.applied_twice},
                            {"position", st.position}}
        .dump();
    },
    [self](health_atom, const caf::actor& watcher) {
      if (self->state.watchers.insert(watcher).second)
        self->monitor(watcher);
      return caf::make_message(self->state.up, self->state.down_reason);
    },
    [self](outage_atom, bool on) {
      auto& st = self->state;
      st.outage = on;
      if (on && st.up) {
        st.up = false;
        st.down_reason = "simulated outage";
        st.subscribers.clear();  // a lost remote ends every stream
        st.reconnect_attempts = 0;
        ++st.reconnect_gen;
        notify_watchers(self);
        schedule_reconnect(self);
      }
      return st.up;
    },
    [self](reconnect_atom, std::uint64_t gen) {
      auto& st = self->state;
      if (gen != st.reconnect_gen || st.up)
        return;
      if (st.outage) {
        schedule_reconnect(self);
        return;
      }
      st.up = true;
      st.down_reason.clear();
      st.reconnect_attempts = 0;
      notify_watchers(self);
    },
  };
}

} // namespace

caf::actor spawn_memory_connector(caf::actor_system& sys, node_context_ptr ctx,
                                  const remote_config& remote) {
  return sys.spawn(memory_connector_impl, std::move(ctx), remote);
}

} // namespace syncmesh::actors
