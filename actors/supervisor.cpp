#include "actors/supervisor.hpp"

#include <deque>
#include <map>
#include <set>

#include <caf/all.hpp>

#include "actors/backoff.hpp"
#include "actors/connector.hpp"
#include "actors/errors.hpp"
#include "actors/messages.hpp"
#include "actors/peer_actor.hpp"
#include "actors/row_json.hpp"
#include "actors/selector.hpp"
#include "actors/store_actor.hpp"
#include "actors/view_actor.hpp"

namespace syncmesh::actors {

namespace {

using nlohmann::json;

constexpr auto quick_timeout = std::chrono::seconds(10);
/// A sync waits for a whole run (push, snapshot, apply, subscribe).
constexpr auto run_timeout = std::chrono::minutes(5);

enum class child_kind { store, connector, peer, view };

const char* to_string(child_kind k) {
  switch (k) {
    case child_kind::store: return "store";
    case child_kind::connector: return "connector";
    case child_kind::peer: return "peer";
    case child_kind::view: return "view";
  }
  return "?";
}

struct child {
  child_kind kind = child_kind::view;
  std::string name;        // "store", remote name, or view "ns.name"
  caf::actor handle;       // invalid while down
  std::deque<caf::actor_clock::time_point> crashes;  // within the window
  std::uint32_t restarts = 0;
  std::uint64_t restart_gen = 0;
  bool escalated = false;
  std::string reason;      // why it last went down
  std::unique_ptr<backoff> restart_backoff;
};

struct supervisor_state {
  node_context_ptr ctx;
  std::map<std::string, child> children;  // by "kind:name"
  std::map<caf::actor_addr, std::string> by_addr;  // live children
  // Every child handle ever spawned (one per start), shared with the exit
  // functor that outlives this state.
  std::shared_ptr<std::vector<caf::actor>> handles = std::make_shared<std::vector<caf::actor>>();
  std::vector<std::string> view_order;      // config order
  bool shutting_down = false;
  caf::typed_response_promise<bool> shutdown_rp;
  std::size_t waiting_for = 0;

  static inline const char* name = "supervisor";
};

using sup_actor = caf::stateful_actor<supervisor_state>;

std::string key_of(child_kind k, const std::string& name) {
  return std::string(to_string(k)) + ":" + name;
}

const view_config* find_view(const node_context& ctx, const std::string& full) {
  for (const auto& v : ctx.config.views)
    if (v.full_name() == full)
      return &v;
  return nullptr;
}

bool is_peer_table(const node_context& ctx, const std::string& name) {
  for (const auto& t : ctx.config.tables)
    if (t.name == name)
      return true;
  return false;
}

caf::actor handle_of(sup_actor* self, child_kind k, const std::string& name) {
  auto it = self->state.children.find(key_of(k, name));
  return it == self->state.children.end() ? caf::actor{} : it->second.handle;
}

void publish(sup_actor* self, json event) {
  event["at"] = std::chrono::duration_cast<std::chrono::milliseconds>(
                  self->clock().now().time_since_epoch())
                  .count()
                + self->state.ctx->wall_offset_ms;
  self->state.ctx->publish(event);
}

caf::actor spawn_child(sup_actor* self, child& c) {
  auto& ctx = self->state.ctx;
  auto& sys = self->system();
  caf::actor h;
  switch (c.kind) {
    case child_kind::store: h = spawn_store_actor(sys, ctx); break;
    case child_kind::connector:
      for (const auto& r : ctx->config.remotes)
        if (r.name == c.name)
          h = spawn_connector(sys, ctx, r);
      break;
    case child_kind::peer: h = spawn_peer_actor(sys, ctx); break;
    case child_kind::view: {
      auto* v = find_view(*ctx, c.name);
      std::uint64_t relation_id = 0;
      for (std::size_t i = 0; i < ctx->config.views.size(); ++i)
        if (ctx->config.views[i].full_name() == c.name)
          relation_id = i + 1;
      h = spawn_view(sys, ctx, *v, relation_id, handle_of(self, child_kind::connector, v->remote),
                     handle_of(self, child_kind::store, "store"));
      break;
    }
  }
  self->monitor(h);
  self->state.handles->push_back(h);
  c.handle = h;
  self->state.by_addr[h.address()] = key_of(c.kind, c.name);
  return h;
}

// What status says about a view whose actor is not running.
json not_running_record(const child& c) {
  return {{"view", c.name},
          {"state", "failed"},
          {"error", c.escalated ? c.reason : "the view is restarting: " + c.reason}};
}

// Shows a view that is not running on the status board.
void post_not_running(sup_actor* self, const child& c) {
  if (c.kind == child_kind::view && self->state.ctx->board)
    self->state.ctx->board->publish(c.name, not_running_record(c));
}

// Records a child given up on, where users look: the job state (views), the
// log and the event bus.
void escalate(sup_actor* self, child& c) {
  auto& ctx = self->state.ctx;
  c.escalated = true;
  auto why = to_string(c.kind) + std::string(" '") + c.name + "' crashed "
             + std::to_string(c.crashes.size()) + " times within "
             + std::to_string(ctx->config.restart_window_ms)
             + " ms and is no longer restarted (last reason: " + c.reason
             + "); fix the cause and restart the node";
  c.reason = why;
  post_not_running(self, c);
  publish(self, {{"type", "error"}, {"child", c.name}, {"message", why}});
  if (c.kind == child_kind::view) {
    store::job_state job;
    if (auto saved = ctx->db->job(c.name); saved && *saved)
      job = **saved;
    job.view = c.name;
    job.state = "failed";
    job.last_error = why;
    job.next_retry_at_ms = 0;
    auto b = std::make_shared<store::batch>();
    b->jobs.push_back(job);
    self->request(handle_of(self, child_kind::store, "store"), quick_timeout, apply_atom::value,
                  batch_ref{b})
      .then([](std::uint64_t) {},
            [self](const caf::error& err) {
              publish(self, {{"type", "error"},
                             {"message", "could not record the escalation: " + describe(err)}});
            });
  }
}

void on_child_down(sup_actor* self, const caf::down_msg& dm) {
  auto& st = self->state;
  auto a = st.by_addr.find(dm.source);
  if (a == st.by_addr.end())
    return;
  auto key = a->second;
  st.by_addr.erase(a);
  auto& c = st.children[key];
  c.handle = caf::actor{};
  if (st.shutting_down) {
    if (st.waiting_for > 0 && --st.waiting_for == 0)
      self->send(self, shutdown_atom::value, true);  // next stage
    return;
  }
  c.reason = caf::to_string(dm.reason);
  auto now = self->clock().now();
  c.crashes.push_back(now);
  auto window = std::chrono::milliseconds(st.ctx->config.restart_window_ms);
  while (!c.crashes.empty() && now - c.crashes.front() > window)
    c.crashes.pop_front();
  if (c.crashes.size() > st.ctx->config.restart_intensity_max) {
    escalate(self, c);
    return;
  }
  post_not_running(self, c);
  auto delay = c.restart_backoff->delay(static_cast<std::uint32_t>(c.crashes.size()));
  publish(self, {{"type", "error"},
                 {"child", c.name},
                 {"message", std::string(to_string(c.kind)) + " '" + c.name + "' crashed ("
                               + c.reason + "); restarting in "
                               + std::to_string(delay.count()) + " ms"}});
  self->delayed_send(self, delay, restart_atom::value, key, ++c.restart_gen);
}

void restart_child(sup_actor* self, const std::string& key, std::uint64_t gen) {
  auto& st = self->state;
  auto it = st.children.find(key);
  if (it == st.children.end() || st.shutting_down)
    return;
  auto& c = it->second;
  if (c.restart_gen != gen || c.handle || c.escalated)
    return;
  ++c.restarts;
  auto h = spawn_child(self, c);
  // Tell the actors that hold the old handle.
  for (auto& [k, other] : st.children) {
    if (other.kind != child_kind::view || !other.handle)
      continue;
    if (c.kind == child_kind::connector && find_view(*st.ctx, other.name)->remote == c.name)
      self->send(other.handle, connector_atom::value, h);
    if (c.kind == child_kind::store)
      self->send(other.handle, restart_atom::value, h);
  }
}

// Answers the current request with `dest`'s reply to `xs`.
template <class T, class Timeout, class... Ts>
caf::result<T> forward(sup_actor* self, const caf::actor& dest, Timeout timeout, Ts&&... xs) {
  auto rp = self->make_response_promise<T>();
  self->request(dest, timeout, std::forward<Ts>(xs)...)
    .then([rp](const T& x) mutable { rp.deliver(x); },
          [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
  return rp;
}

// Fans `atom` out to the views the selector names and answers with a JSON
// array of their replies, in config order.
template <class Atom, class Timeout>
caf::result<std::string> fan_out(sup_actor* self, const std::string& sel_text, Atom atom,
                                 Timeout timeout) {
  auto& st = self->state;
  auto parsed = json::parse(sel_text, nullptr, false);
  if (parsed.is_discarded())
    return make_error(errc::invalid_request, "the selector is not JSON: " + sel_text);
  auto sel = selector::from_json(parsed);
  if (!sel)
    return make_error(errc::invalid_request, sel.error().message());
  std::set<std::string> known(st.view_order.begin(), st.view_order.end());
  if (auto missing = sel->unknown_names(known); !missing.empty())
    return make_error(errc::unknown_view, missing);
  auto targets = views_covered(*sel, st.view_order).value_or(std::vector<std::string>{});
  auto rp = self->make_response_promise<std::string>();
  auto results = std::make_shared<std::vector<json>>(targets.size());
  auto pending = std::make_shared<std::size_t>(targets.size());
  auto complete = [rp, results, pending]() mutable {
    if (--*pending == 0)
      rp.deliver(json(*results).dump());
  };
  if (targets.empty())
    rp.deliver(std::string("[]"));
  for (std::size_t i = 0; i < targets.size(); ++i) {
    auto& c = st.children[key_of(child_kind::view, targets[i])];
    if (!c.handle) {
      (*results)[i] = not_running_record(c);
      complete();
      continue;
    }
    self->request(c.handle, timeout, atom)
      .then(
        [results, i, complete](const std::string& reply) mutable {
          (*results)[i] = json::parse(reply);
          complete();
        },
        [results, i, name = targets[i], complete](const caf::error& err) mutable {
          (*results)[i] = {{"view", name}, {"error", describe(err)}};
          complete();
        });
  }
  return rp;
}

// Shutdown stages: views, then connectors, then the store.
void shutdown_stage(sup_actor* self) {
  auto& st = self->state;
  for (auto kind : {child_kind::view, child_kind::connector, child_kind::peer, child_kind::store}) {
    std::vector<caf::actor> live;
    for (auto& [k, c] : st.children)
      if (c.kind == kind && c.handle)
        live.push_back(c.handle);
    if (live.empty())
      continue;
    st.waiting_for = live.size();
    for (auto& h : live)
      self->send_exit(h, caf::exit_reason::user_shutdown);
    return;
  }
  st.shutdown_rp.deliver(true);
  self->quit();
}

caf::behavior supervisor_impl(sup_actor* self, node_context_ptr ctx) {
  auto& st = self->state;
  st.ctx = ctx;
  std::uint64_t salt = 0;
  auto add = [&](child_kind kind, const std::string& name, const backoff_config& bc) {
    child c;
    c.kind = kind;
    c.name = name;
    c.restart_backoff = std::make_unique<backoff>(bc, ctx->config.seed + ++salt);
    auto key = key_of(kind, name);
    st.children.emplace(key, std::move(c));
    spawn_child(self, st.children[key]);
  };
  add(child_kind::store, "store", ctx->config.restart);
  for (const auto& r : ctx->config.remotes)
    add(child_kind::connector, r.name, ctx->config.restart);
  if (!ctx->config.tables.empty())
    add(child_kind::peer, "peer", ctx->config.restart);
  for (const auto& v : ctx->config.views) {
    st.view_order.push_back(v.full_name());
    add(child_kind::view, v.full_name(), ctx->config.restart);
  }
  self->set_down_handler([self](const caf::down_msg& dm) { on_child_down(self, dm); });
  // Children never outlive their supervisor, however it ends. (Links would
  // do this too, but a child killed with exit_reason::kill would then take
  // the supervisor down with it: kill cannot be trapped.)
  self->attach_functor([handles = st.handles] {
    for (const auto& h : *handles)
      caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
  });

  return {
    [self](sync_atom, const std::string& sel) {
      return fan_out(self, sel, sync_atom::value, run_timeout);
    },
    [self](resume_atom, const std::string& sel) {
      return fan_out(self, sel, resume_atom::value, run_timeout);
    },
    [self](stop_atom, const std::string& sel) {
      return fan_out(self, sel, stop_atom::value, quick_timeout);
    },
    [self](forget_atom, const std::string& sel) {
      return fan_out(self, sel, forget_atom::value, run_timeout);
    },
    [self](status_atom, const std::string& sel) {
      return fan_out(self, sel, status_atom::value, quick_timeout);
    },
    [self](exec_atom, const std::string& view, const std::string& ops) -> caf::result<std::string> {
      if (!find_view(*self->state.ctx, view) && is_peer_table(*self->state.ctx, view)) {
        auto h = handle_of(self, child_kind::peer, "peer");
        if (!h)
          return make_error(errc::escalated, "peer sync is not running: "
                                               + self->state.children[key_of(child_kind::peer, "peer")].reason);
        return forward<std::string>(self, h, quick_timeout, exec_atom::value, view, ops);
      }
      if (!find_view(*self->state.ctx, view))
        return make_error(errc::unknown_view, "no view is named '" + view
                                                + "'; `syncmesh ctl status` lists the views");
      auto h = handle_of(self, child_kind::view, view);
      if (!h)
        return make_error(errc::escalated, "view '" + view + "' is not running: "
                                             + self->state.children[key_of(child_kind::view, view)].reason);
      return forward<std::string>(self, h, run_timeout, exec_atom::value, ops);
    },
    [self](exec_atom, const std::string& remote, const std::string& table,
           const std::string& ops_text) -> caf::result<std::uint64_t> {
      const remote_config* rc = nullptr;
      for (const auto& r : self->state.ctx->config.remotes)
        if (r.name == remote)
          rc = &r;
      if (!rc)
        return make_error(errc::invalid_request, "no remote is named '" + remote + "'");
      const memory_table_config* tc = nullptr;
      for (const auto& t : rc->tables)
        if (t.name == table)
          tc = &t;
      if (!tc)
        return make_error(errc::invalid_request,
                          "remote '" + remote + "' has no table '" + table + "'");
      auto shape = memory_table_schema(*tc);
      auto ops = json::parse(ops_text, nullptr, false);
      auto changes = changes_from_json(shape, ops);
      if (!changes)
        return make_error(errc::invalid_request, changes.error().message());
      auto cs = std::make_shared<change_set>();
      cs->table = table;
      cs->changes = std::move(changes).value();
      auto h = handle_of(self, child_kind::connector, remote);
      if (!h)
        return make_error(errc::escalated, "the connector of remote '" + remote
                                             + "' is not running");
      return forward<std::uint64_t>(self, h, quick_timeout, exec_atom::value, changes_ref{cs});
    },
    [self](stats_atom, const std::string& remote) -> caf::result<std::string> {
      auto h = handle_of(self, child_kind::connector, remote);
      if (!h)
        return make_error(errc::invalid_request, "no running connector for remote '" + remote
                                                   + "'");
      return forward<std::string>(self, h, quick_timeout, stats_atom::value);
    },
    [self](outage_atom, const std::string& remote, bool on) -> caf::result<bool> {
      auto h = handle_of(self, child_kind::connector, remote);
      if (!h)
        return make_error(errc::invalid_request, "no running connector for remote '" + remote
                                                   + "'");
      return forward<bool>(self, h, quick_timeout, outage_atom::value, on);
    },
    [self](links_atom) -> caf::result<std::string> {
      if (self->state.ctx->config.tables.empty())
        return std::string("[]");
      auto h = handle_of(self, child_kind::peer, "peer");
      if (!h)
        return make_error(errc::escalated, "peer sync is not running: "
                                             + self->state.children[key_of(child_kind::peer, "peer")].reason);
      return forward<std::string>(self, h, quick_timeout, links_atom::value);
    },
    [self](wait_atom, const std::string& origin, const std::string& hlc,
           std::uint64_t timeout_ms) -> caf::result<std::string> {
      if (self->state.ctx->config.tables.empty())
        return make_error(errc::invalid_request,
                          "node '" + self->state.ctx->config.node_id
                            + "' has no peer tables, so it holds no peer's changes to wait for");
      auto h = handle_of(self, child_kind::peer, "peer");
      if (!h)
        return make_error(errc::escalated, "peer sync is not running: "
                                             + self->state.children[key_of(child_kind::peer, "peer")].reason);
      // The peer actor refuses the wait itself when its time runs out.
      timeout_ms = std::min(timeout_ms, wait_max_ms);
      return forward<std::string>(self, h, std::chrono::milliseconds(timeout_ms) + std::chrono::seconds(5),
                                  wait_atom::value, origin, hlc, timeout_ms);
    },
    [self](children_atom) {
      auto out = json::array();
      for (const auto& [key, c] : self->state.children)
        out.push_back({{"kind", to_string(c.kind)},
                       {"name", c.name},
                       {"running", static_cast<bool>(c.handle)},
                       {"escalated", c.escalated},
                       {"restarts", c.restarts},
                       {"reason", c.reason}});
      return out.dump();
    },
    [self](children_atom, const std::string& name) -> caf::actor {
      for (const auto& [key, c] : self->state.children)
        if (c.name == name)
          return c.handle;
      return caf::actor{};
    },
    [self](restart_atom, const std::string& key, std::uint64_t gen) {
      restart_child(self, key, gen);
    },
    [self](shutdown_atom) -> caf::result<bool> {
      auto& st = self->state;
      if (st.shutting_down)
        return true;
      st.shutting_down = true;
      st.shutdown_rp = self->make_response_promise<bool>();
      shutdown_stage(self);
      return st.shutdown_rp;
    },
    [self](shutdown_atom, bool) { shutdown_stage(self); },
  };
}

} // namespace

caf::actor spawn_supervisor(caf::actor_system& sys, node_context_ptr ctx) {
  return sys.spawn(supervisor_impl, std::move(ctx));
}

} // namespace syncmesh::actors
