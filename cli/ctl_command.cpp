#include "cli/ctl_command.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <future>
#include <iostream>

#include <unistd.h>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "actors/peer_actor.hpp"
#include "actors/selector.hpp"
#include "cli/table.hpp"
#include "messaging/control_client.hpp"
#include "messaging/event_bus.hpp"

namespace syncmesh::cli {

namespace {

using nlohmann::json;

struct ctl_options {
  std::string node = "tcp://127.0.0.1:7400";
  bool json_out = false;
  int timeout_ms = 5000;
  std::string selector = "*";
  std::string view;
  int limit = 0;
  std::string upsert;
  std::string remove;
  std::string remote;
  std::string table;
  bool down = false;
  bool up = false;
  std::string format = "text";
  std::string type_prefix;
  int count = 0;
  int events_timeout_ms = 0;
  std::string origin;
  std::string hlc;
};

ctl_options opts;
CLI::App* ctl = nullptr;
std::vector<CLI::Option*> timeout_options;  // ctl's own and each verb's

int fail(int code, const std::string& sentence) {
  std::cerr << "syncmesh ctl: " << sentence << "\n";
  return code;
}

// "--node" takes an endpoint, or a node's data directory (its node.json
// names the endpoints).
std::string resolve_endpoint(const std::string& node, std::string& error) {
  if (node.rfind("tcp://", 0) == 0 || node.rfind("ipc://", 0) == 0)
    return node;
  std::ifstream in(node + "/node.json");
  if (!in) {
    error = "'" + node + "' is neither an endpoint (tcp://HOST:PORT) nor the data directory of "
            "a running node (no node.json there)";
    return {};
  }
  auto j = json::parse(in, nullptr, false);
  if (!j.is_object() || !j.contains("control")) {
    error = node + "/node.json does not name a control endpoint";
    return {};
  }
  if (auto pid = j.value("pid", 0L); pid > 0 && ::kill(static_cast<pid_t>(pid), 0) != 0
                                     && errno == ESRCH) {
    error = "the node recorded in " + node + "/node.json (pid " + std::to_string(pid)
            + ") is not running; start it with `syncmesh node --config ...`";
    return {};
  }
  return j["control"].get<std::string>();
}

std::string cell(const json& v) {
  if (v.is_null())
    return "-";
  if (v.is_string())
    return v.get<std::string>().empty() ? "-" : v.get<std::string>();
  return v.dump();
}

// "in 1.5s" or "2.0s ago"; a past time stamped by the node a moment "ahead"
// (clock readings are truncated to milliseconds) reads as "0.0s ago".
std::string age(const json& at_ms, bool past = false) {
  if (!at_ms.is_number() || at_ms.get<std::int64_t>() == 0)
    return "-";
  using namespace std::chrono;
  auto now = duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
  auto d = at_ms.get<std::int64_t>() - now;
  if (past && d > 0)
    d = 0;
  auto s = std::to_string(std::llabs(d) / 1000) + "." + std::to_string(std::llabs(d) % 1000 / 100)
           + "s";
  return d >= 0 ? "in " + s : s + " ago";
}

// "reserved, 24 kB retained": a replication slot's wal_status and the WAL
// it holds back, as the view's last slot report says; "-" without one.
std::string slot_cell(const json& v) {
  auto it = v.find("slot");
  if (it == v.end() || !it->is_object() || !it->contains("wal_status"))
    return "-";
  std::string out = cell((*it)["wal_status"]);
  if (auto b = it->find("retained_bytes"); b != it->end() && b->is_number()) {
    auto bytes = b->get<std::int64_t>();
    out += ", " + (bytes < 10 * 1024 ? std::to_string(bytes) + " B"
                   : bytes < 10 * 1024 * 1024 ? std::to_string(bytes / 1024) + " kB"
                                              : std::to_string(bytes / (1024 * 1024)) + " MB")
           + " retained";
  }
  return out;
}

// A sync view's queue: "3 pending (oldest 2s), 1 failed, 1 conflicted".
std::string outbox_cell(const json& v) {
  if (!v.contains("outbox") || !v["outbox"].is_object())
    return "-";
  const auto& ob = v["outbox"];
  std::string out = std::to_string(ob.value("pending", 0)) + " pending";
  if (ob.contains("oldest_pending_age_ms") && ob["oldest_pending_age_ms"].is_number())
    out += " (oldest " + std::to_string(ob["oldest_pending_age_ms"].get<std::uint64_t>() / 1000)
           + "s)";
  for (const auto* k : {"failed", "conflicted"})
    if (ob.value(k, 0) > 0)
      out += ", " + std::to_string(ob.value(k, 0)) + " " + k;
  return out;
}

void print_status(const json& views) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& v : views) {
    if (v.contains("error") && !v.contains("persistence")) {
      rows.push_back({cell(v["view"]), "-", "-", "-", cell(v.value("state", json("failed"))),
                      "-", "-", "-", "-", "-", "-", cell(v["error"])});
      continue;
    }
    rows.push_back({v["namespace"].get<std::string>() + "." + v["name"].get<std::string>(),
                    cell(v["persistence"]), cell(v["mode"]),
                    v["enabled"].get<bool>() ? "yes" : "no", cell(v["state"]),
                    cell(v["retry_count"]), cell(v["last_seen_commit"]),
                    age(v["next_retry_at"]), age(v["updated_at"], true), slot_cell(v),
                    outbox_cell(v), cell(v["last_error"])});
  }
  print_table(std::cout,
              {"VIEW", "PERSISTENCE", "MODE", "ENABLED", "STATE", "RETRIES", "LAST SEEN",
               "NEXT RETRY", "UPDATED", "SLOT", "OUTBOX", "LAST ERROR"},
              rows);
}

// One line per view: what was dropped upstream, or why it could not be.
bool print_forgotten(const json& results) {
  bool ok = true;
  for (const auto& r : results) {
    std::string view = r.value("view", r.value("namespace", "") + "." + r.value("name", ""));
    if (r.contains("error")) {
      ok = false;
      std::cout << view << ": " << r["error"].get<std::string>() << "\n";
      continue;
    }
    std::string dropped;
    for (const auto& d : r.value("dropped", json::array()))
      dropped += (dropped.empty() ? "" : ", ") + d.get<std::string>();
    std::cout << view << ": stopped; "
              << (dropped.empty() ? "nothing upstream to drop" : "dropped " + dropped) << "\n";
  }
  return ok;
}

bool print_runs(const json& results) {
  bool failed = false;
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : results) {
    bool skipped = r.value("skipped", false);
    failed = failed || r.contains("error");
    rows.push_back({cell(r["view"]), skipped ? "-" : cell(r.value("run", json())),
                    cell(r.value("state", json())),
                    skipped ? "-" : cell(r.value("pulled", json())),
                    skipped ? "-" : cell(r.value("pushed", json())),
                    skipped ? cell(r["reason"]) : cell(r.value("error", json("")))});
  }
  print_table(std::cout, {"VIEW", "RUN", "STATE", "PULLED", "PUSHED", "NOTE"}, rows);
  return !failed;
}

void print_query(const json& q) {
  std::vector<std::string> header;
  for (const auto& c : q["columns"])
    header.push_back(c.get<std::string>());
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : q["rows"]) {
    std::vector<std::string> row;
    for (const auto& v : r)
      row.push_back(v.is_string() ? v.get<std::string>() : v.dump());
    rows.push_back(std::move(row));
  }
  if (header.empty())
    std::cout << "(" << q.value("note", "no columns") << ")\n";
  else
    print_table(std::cout, header, rows);
  std::cout << "(" << rows.size() << " row" << (rows.size() == 1 ? "" : "s")
            << (q.value("truncated", false) ? ", truncated; use --limit" : "") << ")\n";
}

void print_topology(const json& t, const std::string& format) {
  if (format == "dot") {
    std::cout << "digraph syncmesh {\n  rankdir=LR;\n";
    for (const auto& n : t["nodes"]) {
      std::string shape = n["kind"] == "node" ? "box" : n["kind"] == "remote" ? "cylinder"
                                                                              : "ellipse";
      std::cout << "  \"" << n["id"].get<std::string>() << "\" [label=\""
                << n["name"].get<std::string>() << "\", shape=" << shape << "];\n";
    }
    for (const auto& e : t["edges"])
      std::cout << "  \"" << e["from"].get<std::string>() << "\" -> \""
                << e["to"].get<std::string>() << "\" [label=\"" << e["kind"].get<std::string>()
                << "\"];\n";
    std::cout << "}\n";
    return;
  }
  std::cout << "node " << t["node"].get<std::string>() << "\n";
  for (const auto& n : t["nodes"]) {
    if (n["kind"] != "view")
      continue;
    std::string remote, source, kind;
    for (const auto& e : t["edges"])
      if (e["from"] == n["id"] && e["kind"] != "owns") {
        remote = e["to"].get<std::string>().substr(7);
        source = e.value("source", "");
        kind = e["kind"].get<std::string>();
      }
    std::cout << "├── view " << n["name"].get<std::string>() << " ("
              << n["persistence"].get<std::string>() << ")"
              << (n["running"].get<bool>() ? "" : " [not running]") << "\n"
              << "│   └── " << kind << " " << remote << "/" << source << "\n";
  }
  for (const auto& n : t["nodes"])
    if (n["kind"] == "table")
      std::cout << "├── peer table " << n["name"].get<std::string>() << "\n";
  for (const auto& e : t["edges"])
    if (e["kind"] == "link")
      std::cout << "├── link " << e["to"].get<std::string>().substr(5) << " ("
                << e.value("mode", "") << ", " << e.value("role", "") << ", "
                << e.value("state", "") << ")"
                << (e.value("endpoint", "").empty() ? "" : " -> " + e.value("endpoint", ""))
                << "\n";
  for (const auto& n : t["nodes"])
    if (n["kind"] == "remote")
      std::cout << "└── remote " << n["name"].get<std::string>() << " ("
                << n["type"].get<std::string>() << ")"
                << (n["running"].get<bool>() ? "" : " [not running]") << "\n";
}

/// How often `ctl sync` on a terminal asks for the progress of a snapshot.
constexpr std::chrono::milliseconds progress_poll_interval{250};
/// Characters of the progress bar itself.
constexpr std::size_t progress_bar_width = 30;

// One line "ns.view [#####.....] 41% 412000/1000000 rows" for the views whose
// snapshot is running; empty when none is.
std::string progress_line(const json& views) {
  std::uint64_t done = 0, estimated = 0;
  std::string name;
  int running = 0;
  for (const auto& v : views) {
    if (!v.is_object() || !v.contains("progress") || !v["progress"].is_object())
      continue;
    ++running;
    name = v.value("namespace", "") + "." + v.value("name", "");
    done += v["progress"].value("rows_done", std::uint64_t{0});
    estimated += v["progress"].value("rows_estimated", std::uint64_t{0});
  }
  if (running == 0)
    return {};
  std::string label = running == 1 ? name : std::to_string(running) + " views";
  if (estimated == 0)
    return label + " " + std::to_string(done) + " rows";
  auto filled = static_cast<std::size_t>(progress_bar_width * std::min(done, estimated) / estimated);
  return label + " [" + std::string(filled, '#') + std::string(progress_bar_width - filled, '.')
         + "] " + std::to_string(std::min<std::uint64_t>(100, done * 100 / estimated)) + "% "
         + std::to_string(done) + "/" + std::to_string(estimated) + " rows";
}

// Runs a sync or resume while drawing a progress bar on stderr (a
// terminal) from `status` calls on a second connection.
store::result<messaging::control_reply> call_with_progress(zmq::context_t& zctx,
                                                           const std::string& endpoint,
                                                           std::chrono::milliseconds timeout,
                                                           const std::string& verb,
                                                           const json& args) {
  auto run = std::async(std::launch::async, [&] {
    messaging::control_client client(zctx, endpoint, timeout);
    return client.call(verb, args);
  });
  messaging::control_client watcher(zctx, endpoint, std::chrono::milliseconds(2000));
  std::size_t drawn = 0;
  while (run.wait_for(progress_poll_interval) != std::future_status::ready) {
    auto st = watcher.call("status", json{{"selector", args.value("selector", json("*"))}});
    if (!st || !st->ok)
      continue;
    auto line = progress_line(st->result);
    std::cerr << "\r" << line << std::string(drawn > line.size() ? drawn - line.size() : 0, ' ')
              << std::flush;
    drawn = line.size();
  }
  if (drawn > 0)
    std::cerr << "\r" << std::string(drawn, ' ') << "\r" << std::flush;
  return run.get();
}

void print_links(const json& links) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& l : links)
    rows.push_back({cell(l["peer"]), cell(l["role"]), cell(l["mode"]), cell(l["state"]),
                    cell(l["sent"]), cell(l["applied"]), cell(l["duplicates"]),
                    cell(l["nacked"]), cell(l["nacks_received"]), cell(l["unacked"]),
                    cell(l["lag_changes"]) + " / " + cell(l["lag_ms"]) + " ms",
                    // A held link says why first: nothing more goes out on it.
                    l.value("held", std::string()).empty()
                      ? cell(l["last_refusal"])
                      : "held: " + l["held"].get<std::string>()});
  if (rows.empty()) {
    std::cout << "(no peer links)\n";
    return;
  }
  print_table(std::cout,
              {"PEER", "ROLE", "MODE", "STATE", "SENT", "APPLIED", "DUPLICATES", "NACKED",
               "NACKS RECEIVED", "UNACKED", "LAG", "LAST REFUSAL"},
              rows);
}

void print_children(const json& children) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& c : children)
    rows.push_back({cell(c["kind"]), cell(c["name"]),
                    c.value("escalated", false) ? "given up"
                    : c.value("running", false) ? "running"
                                                : "restarting",
                    cell(c["restarts"]), cell(c["reason"])});
  print_table(std::cout, {"KIND", "NAME", "STATE", "RESTARTS", "LAST FAILURE"}, rows);
}

void print_conflicts(const json& records) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& c : records)
    rows.push_back({cell(c["view"]), cell(c["seq"]), cell(c["state"]), cell(c["op"]),
                    c["key"].dump(), c["local"].dump(), c["remote"].dump(), cell(c["winner"]),
                    cell(c["error"])});
  if (rows.empty()) {
    std::cout << "(no conflicts or failed writes)\n";
    return;
  }
  print_table(std::cout,
              {"VIEW", "SEQ", "STATE", "OP", "KEY", "LOCAL", "REMOTE", "WINNER", "ERROR"}, rows);
}

json parse_rows(const std::string& text, const char* what, std::string& error) {
  if (text.empty())
    return json::array();
  auto j = json::parse(text, nullptr, false);
  if (j.is_discarded()) {
    error = std::string("--") + what + " is not JSON: " + text;
    return {};
  }
  return j.is_array() ? j : json::array({j});
}

} // namespace

CLI::App* add_ctl_command(CLI::App& app) {
  ctl = app.add_subcommand("ctl", "Drive a running node over its control socket");
  ctl->require_subcommand(1);
  if (const char* env = std::getenv("SYNCMESH_NODE"))
    opts.node = env;
  ctl->add_option("--node", opts.node,
                  "Control endpoint (tcp://HOST:PORT) or the node's data directory; default "
                  "$SYNCMESH_NODE or tcp://127.0.0.1:7400")
    ->capture_default_str();
  ctl->add_flag("--json", opts.json_out, "Print the node's JSON reply, for scripts");
  timeout_options.push_back(ctl->add_option("--timeout", opts.timeout_ms,
                                   "Milliseconds to wait for the node (sync and resume: "
                                   "300000 unless given)")
    ->check(CLI::Range(1, 3'600'000))
    ->capture_default_str());

  auto* status = ctl->add_subcommand("status", "One record per view: state, retries, errors");
  status->add_option("selector", opts.selector, "'*' (default) or ns.view,ns.*");
  auto* sync = ctl->add_subcommand("sync", "Run the selected views' sync jobs (idempotent)");
  sync->add_option("selector", opts.selector, "'*' (default) or ns.view,ns.*");
  auto* stop = ctl->add_subcommand("stop", "Halt and disable the selected views' jobs");
  stop->add_option("selector", opts.selector, "'*' or ns.view,ns.*")->required();
  auto* resume = ctl->add_subcommand("resume", "Re-enable the selected views and catch up");
  resume->add_option("selector", opts.selector, "'*' or ns.view,ns.*")->required();
  auto* forget = ctl->add_subcommand(
    "forget", "Stop the selected views and drop what their remotes keep for them (slot, publication)");
  forget->add_option("selector", opts.selector, "'*' or ns.view,ns.*")->required();
  auto* query = ctl->add_subcommand("query", "Read a view's or a peer table's rows");
  query->add_option("view", opts.view, "ns.view or ns.table")->required();
  query->add_option("--limit", opts.limit, "At most this many rows")->check(CLI::PositiveNumber);
  auto* exec = ctl->add_subcommand(
    "exec", "Write rows to a sync view, a peer table (--table) or a memory remote");
  exec->add_option("view", opts.view, "ns.view (omit with --remote)");
  exec->add_option("--upsert", opts.upsert, "A JSON row object or a list of them");
  exec->add_option("--delete", opts.remove, "A JSON key object or a list of them");
  exec->add_option("--remote", opts.remote, "Write at this memory remote instead of a view");
  exec->add_option("--table", opts.table,
                   "A peer table (ns.table), or the remote's table with --remote");
  auto* remote = ctl->add_subcommand(
    "remote", "A remote's counters; --down/--up take a memory remote down or bring it back");
  remote->add_option("name", opts.remote, "Remote name")->required();
  remote->add_flag("--down", opts.down, "Simulate losing the remote");
  remote->add_flag("--up", opts.up, "End the simulated outage");
  auto* events = ctl->add_subcommand("events", "Follow the node's events");
  events->add_option("--type", opts.type_prefix, "Only events whose type starts with this");
  events->add_option("--count", opts.count, "Exit after this many events")->check(CLI::PositiveNumber);
  events->add_option("--for", opts.events_timeout_ms, "Exit after this many milliseconds")
    ->check(CLI::PositiveNumber);
  auto* wait = ctl->add_subcommand(
    "wait", "Wait until the node holds a peer's changes up to a stamp (what exec --table printed)");
  wait->add_option("--origin", opts.origin, "The node that made the changes")->required();
  wait->add_option("--hlc", opts.hlc, "Its stamp, WALL_MS.LOGICAL, as exec --table prints it")
    ->required();
  ctl->add_subcommand("links", "One record per peer link: state, counts, last refusal");
  ctl->add_subcommand("children",
                      "The supervised actors (store, connectors, peer, views): running, restarts");
  auto* conflicts = ctl->add_subcommand(
    "conflicts", "Writes of sync views that conflicted or failed upstream, with both versions");
  conflicts->add_option("view", opts.view, "ns.view (default: every view)");
  auto* topology = ctl->add_subcommand("topology", "The node's views, remotes and links");
  topology->add_option("--format", opts.format, "text (default), dot or json")
    ->check(CLI::IsMember({"text", "dot", "json"}));
  // --json, --node and --timeout are accepted after the verb too
  // (`ctl status --json`).
  for (auto* verb : ctl->get_subcommands([](CLI::App*) { return true; })) {
    verb->add_flag("--json", opts.json_out, "Print the node's JSON reply, for scripts");
    verb->add_option("--node", opts.node, "Control endpoint or the node's data directory");
    timeout_options.push_back(
      verb->add_option("--timeout", opts.timeout_ms, "Milliseconds to wait for the node")
        ->check(CLI::Range(1, 3'600'000)));
  }
  return ctl;
}

int run_ctl() {
  std::string error;
  auto endpoint = resolve_endpoint(opts.node, error);
  if (!error.empty())
    return fail(2, error);
  auto* sub = ctl->get_subcommands().front();
  std::string verb = sub->get_name();
  json args = json::object();
  if (verb == "status" || verb == "sync" || verb == "stop" || verb == "resume"
      || verb == "forget") {
    auto sel = actors::selector::parse(opts.selector);
    if (!sel)
      return fail(2, sel.error().message());
    args["selector"] = sel->to_json();
  } else if (verb == "query") {
    args["view"] = opts.view;
    if (opts.limit > 0)
      args["limit"] = opts.limit;
  } else if (verb == "exec") {
    auto up = parse_rows(opts.upsert, "upsert", error);
    auto del = error.empty() ? parse_rows(opts.remove, "delete", error) : json();
    if (!error.empty())
      return fail(2, error);
    if (up.empty() && del.empty())
      return fail(2, "exec needs --upsert and/or --delete");
    if (!opts.remote.empty()) {
      if (opts.table.empty())
        return fail(2, "exec --remote needs --table");
      args["remote"] = opts.remote;
      args["table"] = opts.table;
    } else if (opts.view.empty() && !opts.table.empty()) {
      args["table"] = opts.table;
    } else if (opts.view.empty()) {
      return fail(2, "exec needs a view (ns.view), --table ns.table (a peer table) or --remote "
                     "and --table");
    } else {
      args["view"] = opts.view;
    }
    if (!up.empty())
      args["upsert"] = up;
    if (!del.empty())
      args["delete"] = del;
  } else if (verb == "conflicts") {
    if (!opts.view.empty())
      args["view"] = opts.view;
  } else if (verb == "remote") {
    if (opts.down && opts.up)
      return fail(2, "remote takes --down or --up, not both");
    args["remote"] = opts.remote;
    if (opts.down || opts.up)
      args["outage"] = opts.down;
  } else if (verb == "wait") {
    args["origin"] = opts.origin;
    args["hlc"] = opts.hlc;
  } else if (verb == "events") {
    verb = "hello";
  }
  const bool timeout_given = std::any_of(timeout_options.begin(), timeout_options.end(),
                                         [](CLI::Option* o) { return o->count() > 0; });
  if (verb == "wait")
    args["timeout_ms"] = timeout_given ? static_cast<std::uint64_t>(opts.timeout_ms)
                                       : actors::wait_default_ms;

  zmq::context_t zctx{1};
  // A sync waits for whole runs; give it longer than a status. A wait is
  // refused by the node when its time runs out; give the reply time to come.
  auto timeout = std::chrono::milliseconds(
    verb == "wait"                                        ? args["timeout_ms"].get<int>() + 15'000
    : (verb == "sync" || verb == "resume") && !timeout_given ? 300'000
                                                          : opts.timeout_ms);
  messaging::control_client client(zctx, endpoint, timeout);
  // A person at a terminal sees a snapshot's progress; scripts do not.
  bool progress = (verb == "sync" || verb == "resume") && !opts.json_out
                  && ::isatty(STDERR_FILENO) == 1;
  auto reply = progress ? call_with_progress(zctx, endpoint, timeout, verb, args)
                        : client.call(verb, args);
  if (!reply)
    return fail(2, reply.error().message());
  if (!reply->ok)
    return fail(1, reply->error);
  const auto& result = reply->result;

  if (sub->get_name() == "events") {
    auto subscriber = messaging::event_subscriber::connect(
      zctx, result["events_endpoint"].get<std::string>(), opts.type_prefix);
    if (!subscriber)
      return fail(2, subscriber.error().message());
    auto deadline = std::chrono::steady_clock::now()
                    + std::chrono::milliseconds(opts.events_timeout_ms > 0 ? opts.events_timeout_ms
                                                                           : 1'000'000'000);
    int seen = 0;
    while (std::chrono::steady_clock::now() < deadline && (opts.count == 0 || seen < opts.count)) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
      auto e = (*subscriber)->next(std::min(left, std::chrono::milliseconds(1000)));
      if (!e)
        return fail(2, e.error().message());
      if (!*e)
        continue;
      ++seen;
      if (opts.json_out) {
        std::cout << (*e)->dump() << std::endl;
      } else {
        auto ev = **e;
        std::string line = ev.value("type", "?");
        for (const auto* k : {"view", "from", "to", "run", "pulled", "pushed", "message"})
          if (ev.contains(k))
            line += std::string(" ") + k + "=" + cell(ev[k]);
        std::cout << line << std::endl;
      }
    }
    return 0;
  }

  if (opts.json_out) {
    std::cout << result.dump(2) << "\n";
    if (verb == "sync" || verb == "resume" || verb == "forget")
      for (const auto& r : result)
        if (r.contains("error"))
          return verb == "forget" ? 1 : 3;
    return 0;
  }
  if (verb == "status" || verb == "stop")
    print_status(result);
  else if (verb == "forget")
    return print_forgotten(result) ? 0 : 1;
  else if (verb == "sync" || verb == "resume")
    return print_runs(result) ? 0 : 3;
  else if (verb == "query")
    print_query(result);
  else if (verb == "links")
    print_links(result);
  else if (verb == "wait")
    std::cout << "holds the changes of " << cell(result["origin"]) << " up to "
              << cell(result["held"]) << " (waited for " << cell(result["hlc"]) << ", "
              << static_cast<long long>(result.value("waited_ms", 0.0)) << " ms)\n";
  else if (verb == "children")
    print_children(result);
  else if (verb == "conflicts")
    print_conflicts(result);
  else if (verb == "topology" && opts.format != "json")
    print_topology(result, opts.format);
  else if (verb == "remote" && !args.contains("outage"))
    std::cout << result.dump(2) << "\n";
  else if (verb == "remote")
    std::cout << "remote " << opts.remote
              << (opts.down ? ": outage started; its views fail and retry on their own\n"
                            : ": outage ended; the connector reconnects on its next retry and "
                              "its views follow\n");
  else
    std::cout << result.dump(2) << "\n";
  return 0;
}

} // namespace syncmesh::cli
