#include "actors/control_actor.hpp"

#include <caf/all.hpp>

#include "actors/errors.hpp"
#include "actors/messages.hpp"
#include "actors/peer_actor.hpp"
#include "actors/row_json.hpp"
#include "actors/selector.hpp"

namespace syncmesh::actors {

namespace {

using nlohmann::json;

constexpr auto quick_timeout = std::chrono::seconds(10);
constexpr auto run_timeout = std::chrono::minutes(5);

constexpr const char* verbs =
  "hello, status, sync, stop, resume, forget, query, exec, wait, conflicts, remote, links, "
  "topology, children";

struct control_state {
  node_context_ptr ctx;
  caf::actor supervisor;
  reply_fn reply;
  json hello_extra;

  static inline const char* name = "control";
};

using control_actor = caf::stateful_actor<control_state>;

void answer(control_actor* self, std::uint64_t token, json result) {
  messaging::control_reply r;
  r.ok = true;
  r.result = std::move(result);
  self->state.reply(token, r);
}

void refuse(control_actor* self, std::uint64_t token, std::string sentence) {
  messaging::control_reply r;
  r.ok = false;
  r.error = std::move(sentence);
  self->state.reply(token, r);
}

// Asks the supervisor and answers with its JSON-text reply.
template <class Timeout, class... Ts>
void ask(control_actor* self, std::uint64_t token, Timeout timeout, Ts&&... xs) {
  self->request(self->state.supervisor, timeout, std::forward<Ts>(xs)...)
    .then([self, token](const std::string& text) { answer(self, token, json::parse(text)); },
          [self, token](const caf::error& err) { refuse(self, token, describe(err)); });
}

std::string selector_arg(const json& args, std::string& error) {
  auto it = args.find("selector");
  auto sel = selector::from_json(it == args.end() ? json("*") : *it);
  if (!sel) {
    error = sel.error().message();
    return {};
  }
  return sel->to_json().dump();
}

std::string string_arg(const json& args, const char* name, std::string& error) {
  auto it = args.find(name);
  if (it == args.end() || !it->is_string() || it->get<std::string>().empty()) {
    error = std::string("this request needs '") + name + "' (a non-empty string)";
    return {};
  }
  return it->get<std::string>();
}

void query(control_actor* self, std::uint64_t token, const json& args) {
  auto& ctx = *self->state.ctx;
  std::string error;
  auto view = string_arg(args, "view", error);
  if (!error.empty())
    return refuse(self, token, error);
  bool known = false;
  for (const auto& v : ctx.config.views)
    known = known || v.full_name() == view;
  for (const auto& t : ctx.config.tables)
    known = known || t.name == view;
  if (!known)
    return refuse(self, token,
                  "no view is named '" + view + "'"
                    + (ctx.config.tables.empty()
                         ? "; `syncmesh ctl status` lists the views"
                         : " and no peer table either; `syncmesh ctl status` lists the views "
                           "and `syncmesh ctl topology` the peer tables"));
  auto limit = ctx.config.query_rows_max;
  if (auto it = args.find("limit"); it != args.end()) {
    if (!it->is_number_unsigned() || it->get<std::uint64_t>() == 0)
      return refuse(self, token, "'limit' must be a positive integer");
    limit = std::min<std::uint64_t>(limit, it->get<std::uint64_t>());
  }
  auto shape = ctx.db->table(view);
  if (!shape)
    return refuse(self, token, shape.error().to_string());
  if (!*shape)
    return answer(self, token, {{"view", view}, {"columns", json::array()},
                                {"rows", json::array()}, {"truncated", false},
                                {"note", "the view has not synced yet"}});
  store::scan_options so;
  so.limit = limit + 1;
  auto rows = ctx.db->scan(view, so);
  if (!rows)
    return refuse(self, token, rows.error().to_string());
  json cols = json::array();
  for (const auto& c : (*shape)->columns)
    cols.push_back(c.name);
  json out_rows = json::array();
  bool truncated = rows->size() > limit;
  for (std::size_t i = 0; i < rows->size() && i < limit; ++i) {
    json r = json::array();
    for (const auto& v : (*rows)[i])
      r.push_back(to_json(v));
    out_rows.push_back(std::move(r));
  }
  answer(self, token, {{"view", view}, {"columns", cols}, {"rows", out_rows},
                       {"truncated", truncated}});
}

void exec(control_actor* self, std::uint64_t token, const json& args) {
  json ops = json::object();
  for (const auto* k : {"upsert", "delete"})
    if (args.contains(k))
      ops[k] = args[k];
  for (const auto& [k, v] : args.items())
    if (k != "upsert" && k != "delete" && k != "view" && k != "remote" && k != "table")
      return refuse(self, token, "exec takes view (or remote and table), upsert and delete, not '"
                                   + k + "'");
  std::string error;
  if (!args.contains("remote") && !args.contains("view") && args.contains("table")) {
    // A peer table: `exec --table ns.table`.
    auto table = string_arg(args, "table", error);
    if (!error.empty())
      return refuse(self, token, error);
    return ask(self, token, run_timeout, exec_atom::value, table, ops.dump());
  }
  if (args.contains("remote")) {
    auto remote = string_arg(args, "remote", error);
    auto table = error.empty() ? string_arg(args, "table", error) : std::string{};
    if (!error.empty())
      return refuse(self, token, error);
    self->request(self->state.supervisor, quick_timeout, exec_atom::value, remote, table,
                  ops.dump())
      .then(
        [self, token, remote](std::uint64_t position) {
          answer(self, token, {{"remote", remote}, {"position", position}});
        },
        [self, token](const caf::error& err) { refuse(self, token, describe(err)); });
    return;
  }
  auto view = string_arg(args, "view", error);
  if (!error.empty())
    return refuse(self, token, error);
  ask(self, token, run_timeout, exec_atom::value, view, ops.dump());
}

void topology(control_actor* self, std::uint64_t token, json links);

// Topology asks for the links first (an error there leaves them without
// state), then for the children.
void topology(control_actor* self, std::uint64_t token) {
  self->request(self->state.supervisor, quick_timeout, links_atom::value)
    .then([self, token](const std::string& text) { topology(self, token, json::parse(text)); },
          [self, token](const caf::error&) { topology(self, token, json::array()); });
}

void topology(control_actor* self, std::uint64_t token, json links) {
  self->request(self->state.supervisor, quick_timeout, children_atom::value)
    .then(
      [self, token, links](const std::string& text) {
        auto& cfg = self->state.ctx->config;
        auto children = json::parse(text);
        auto running = [&](const std::string& kind, const std::string& name) {
          for (const auto& c : children)
            if (c["kind"] == kind && c["name"] == name)
              return c["running"].get<bool>();
          return false;
        };
        json nodes = json::array(), edges = json::array();
        nodes.push_back({{"id", "node:" + cfg.node_id}, {"kind", "node"}, {"name", cfg.node_id}});
        for (const auto& r : cfg.remotes) {
          nodes.push_back({{"id", "remote:" + r.name}, {"kind", "remote"}, {"name", r.name},
                           {"type", r.kind}, {"running", running("connector", r.name)}});
        }
        for (const auto& v : cfg.views) {
          nodes.push_back({{"id", "view:" + v.full_name()}, {"kind", "view"},
                           {"name", v.full_name()}, {"persistence", v.persistence},
                           {"running", running("view", v.full_name())}});
          edges.push_back({{"from", "node:" + cfg.node_id}, {"to", "view:" + v.full_name()},
                           {"kind", "owns"}});
          edges.push_back({{"from", "view:" + v.full_name()}, {"to", "remote:" + v.remote},
                           {"kind", v.persistence == "sync" ? "two-way" : "pull"},
                           {"source", v.source}});
        }
        for (const auto& t : cfg.tables) {
          nodes.push_back({{"id", "table:" + t.name}, {"kind", "table"}, {"name", t.name},
                           {"running", running("peer", "peer")}});
          edges.push_back({{"from", "node:" + cfg.node_id}, {"to", "table:" + t.name},
                           {"kind", "owns"}});
        }
        for (const auto& l : cfg.links) {
          std::string state = "unknown";
          for (const auto& rec : links)
            if (rec.value("peer", "") == l.peer)
              state = rec.value("state", "unknown");
          nodes.push_back({{"id", "peer:" + l.peer}, {"kind", "peer"}, {"name", l.peer},
                           {"running", running("peer", "peer")}});
          edges.push_back({{"from", "node:" + cfg.node_id}, {"to", "peer:" + l.peer},
                           {"kind", "link"}, {"mode", l.mode},
                           {"role", l.endpoint.empty() ? "server" : "client"},
                           {"state", state}, {"endpoint", l.endpoint}});
        }
        answer(self, token, {{"node", cfg.node_id}, {"nodes", nodes}, {"edges", edges}});
      },
      [self, token](const caf::error& err) { refuse(self, token, describe(err)); });
}

void dispatch(control_actor* self, std::uint64_t token, const std::string& verb,
              const json& args) {
  auto& st = self->state;
  std::string error;
  if (verb == "hello") {
    auto hello = st.hello_extra;
    hello["node_id"] = st.ctx->config.node_id;
    hello["protocol"] = "syncmesh-control/1";
    return answer(self, token, hello);
  }
  if (verb == "status" || verb == "sync" || verb == "stop" || verb == "resume"
      || verb == "forget") {
    auto sel = selector_arg(args, error);
    if (!error.empty())
      return refuse(self, token, error);
    if (verb == "forget")
      return ask(self, token, run_timeout, forget_atom::value, sel);
    if (verb == "status")
      return ask(self, token, quick_timeout, status_atom::value, sel);
    if (verb == "stop")
      return ask(self, token, quick_timeout, stop_atom::value, sel);
    if (verb == "sync")
      return ask(self, token, run_timeout, sync_atom::value, sel);
    return ask(self, token, run_timeout, resume_atom::value, sel);
  }
  if (verb == "query")
    return query(self, token, args);
  if (verb == "exec")
    return exec(self, token, args);
  if (verb == "remote") {
    auto remote = string_arg(args, "remote", error);
    if (!error.empty())
      return refuse(self, token, error);
    auto it = args.find("outage");
    if (it == args.end())
      return ask(self, token, quick_timeout, stats_atom::value, remote);
    if (!it->is_boolean())
      return refuse(self, token, "remote takes 'outage': true (take it down) or false, or "
                                 "nothing to read its counters");
    self->request(st.supervisor, quick_timeout, outage_atom::value, remote, it->get<bool>())
      .then([self, token, remote](bool up) { answer(self, token, {{"remote", remote}, {"up", up}}); },
            [self, token](const caf::error& err) { refuse(self, token, describe(err)); });
    return;
  }
  if (verb == "conflicts") {
    // Durable records the view actors wrote with the outbox states they
    // explain (conflicted and failed writes); read straight from the store.
    std::string prefix = "conflict/";
    if (auto it = args.find("view"); it != args.end()) {
      if (!it->is_string())
        return refuse(self, token, "conflicts takes 'view': \"ns.view\", or nothing for all views");
      prefix += it->get<std::string>() + "/";
    }
    auto records = st.ctx->db->ext_scan(prefix);
    if (!records)
      return refuse(self, token, "could not read the conflict records: "
                                   + records.error().message());
    json out = json::array();
    for (const auto& [name, text] : *records) {
      auto rec = json::parse(text, nullptr, false);
      if (!rec.is_discarded())
        out.push_back(std::move(rec));
    }
    return answer(self, token, out);
  }
  if (verb == "wait") {
    // Until this node holds a peer's changes up to a stamp (an `exec` on a
    // peer table answers with its origin and stamp): read-your-writes
    // across nodes, for scripts and benchmarks.
    for (const auto& [k, v] : args.items())
      if (k != "origin" && k != "hlc" && k != "timeout_ms")
        return refuse(self, token, "wait takes origin, hlc and timeout_ms, not '" + k + "'");
    auto origin = string_arg(args, "origin", error);
    auto hlc = error.empty() ? string_arg(args, "hlc", error) : std::string{};
    if (!error.empty())
      return refuse(self, token, error);
    std::uint64_t ms = wait_default_ms;
    if (auto it = args.find("timeout_ms"); it != args.end()) {
      if (!it->is_number_unsigned() || it->get<std::uint64_t>() == 0
          || it->get<std::uint64_t>() > wait_max_ms)
        return refuse(self, token, "wait's timeout_ms must be a whole number of milliseconds "
                                   "from 1 to " + std::to_string(wait_max_ms));
      ms = it->get<std::uint64_t>();
    }
    return ask(self, token, std::chrono::milliseconds(ms) + std::chrono::seconds(10),
               wait_atom::value, origin, hlc, ms);
  }
  if (verb == "topology")
    return topology(self, token);
  if (verb == "links")
    return ask(self, token, quick_timeout, links_atom::value);
  if (verb == "children")
    return ask(self, token, quick_timeout, children_atom::value);
  refuse(self, token, "unknown verb '" + verb + "'; the node understands: " + verbs);
}

caf::behavior control_impl(control_actor* self, node_context_ptr ctx, caf::actor supervisor,
                           reply_fn reply, json hello_extra) {
  self->state.ctx = std::move(ctx);
  self->state.supervisor = std::move(supervisor);
  self->state.reply = std::move(reply);
  self->state.hello_extra = std::move(hello_extra);
  return {
    [self](control_atom, std::uint64_t token, const std::string& verb, const std::string& args) {
      auto parsed = json::parse(args, nullptr, false);
      if (parsed.is_discarded() || !parsed.is_object())
        return refuse(self, token, "the request's args are not a JSON object");
      dispatch(self, token, verb, parsed);
    },
  };
}

} // namespace

caf::actor spawn_control_actor(caf::actor_system& sys, node_context_ptr ctx,
                               caf::actor supervisor, reply_fn reply, nlohmann::json hello_extra) {
  return sys.spawn(control_impl, std::move(ctx), std::move(supervisor), std::move(reply),
                   std::move(hello_extra));
}

} // namespace syncmesh::actors
