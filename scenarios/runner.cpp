#include "scenarios/runner.hpp"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>

#include <lua.hpp>
#include <poll.h>
#include <zmq.hpp>

#include "messaging/curve_keys.hpp"
#include "scenarios/fault_proxy.hpp"
#include "scenarios/lua_json.hpp"
#include "scenarios/node_process.hpp"
#include "scenarios/postgres_server.hpp"

namespace syncmesh::scenarios {

namespace fs = std::filesystem;
using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

namespace {

volatile std::sig_atomic_t interrupted = 0;

void on_sigint(int) { interrupted = 1; }

/// How long `await` waits between two looks at its condition when no event
/// arrives sooner.
constexpr milliseconds await_poll_max{50};
constexpr milliseconds node_start_timeout{30'000};

struct runner {
  run_options opts;
  std::uint64_t seed = 0;
  std::mt19937_64 rng;
  std::string run_dir;
  zmq::context_t ctx{1};
  std::vector<std::unique_ptr<node_process>> nodes;
  std::vector<std::unique_ptr<postgres_server>> pgs;
  std::vector<std::unique_ptr<fault_proxy>> proxies;
  json steps = json::array();
  json checks = json::array();
  json figures = json::object();
  std::string failure;  // the first failed check
  std::string step;     // the step running now
  steady_clock::time_point started = steady_clock::now();

  ~runner() { cleanup(); }

  void cleanup() {
    for (auto& n : nodes)
      if (n && n->running())
        (void) n->shutdown(milliseconds(5'000));
    nodes.clear();
    proxies.clear();
    pgs.clear();
    if (!run_dir.empty() && !opts.keep_dirs) {
      std::error_code ec;
      fs::remove_all(run_dir, ec);
    }
  }

  void record_check(const std::string& name, bool ok, const std::string& detail) {
    checks.push_back({{"name", name}, {"ok", ok}, {"detail", detail}, {"step", step}});
    if (!ok && failure.empty())
      failure = name + (detail.empty() ? "" : ": " + detail);
    std::cout << (ok ? "  ✓ " : "  ✗ ") << name << (ok || detail.empty() ? "" : " — " + detail)
              << std::endl;
  }

  void drain_all(milliseconds wait) {
    if (nodes.empty()) {
      ::poll(nullptr, 0, static_cast<int>(wait.count()));
      return;
    }
    bool waited = false;
    for (auto& n : nodes) {
      n->drain_events(waited ? milliseconds(0) : wait);
      waited = waited || n->running();
    }
  }
};

const char* runner_key = "syncmesh.runner";

runner& R(lua_State* L) {
  lua_getfield(L, LUA_REGISTRYINDEX, runner_key);
  auto* r = static_cast<runner*>(lua_touserdata(L, -1));
  lua_pop(L, 1);
  return *r;
}

void interruption_hook(lua_State* L, lua_Debug*) {
  if (interrupted)
    luaL_error(L, "interrupted by SIGINT");
}

[[noreturn]] void raise(lua_State* L, const std::string& sentence) {
  luaL_error(L, "%s", sentence.c_str());
  std::abort();  // luaL_error does not return
}

// --- nodes ------------------------------------------------------------------

struct node_ref {
  std::size_t index;
};

node_process& check_node(lua_State* L, int arg = 1) {
  auto* ref = static_cast<node_ref*>(luaL_checkudata(L, arg, "syncmesh.node"));
  return *R(L).nodes.at(ref->index);
}

json call_node(lua_State* L, node_process& n, const std::string& verb, json args,
               milliseconds timeout = milliseconds(300'000)) {
  auto r = n.call(verb, std::move(args), timeout);
  if (!r)
    raise(L, "node '" + n.name() + "' " + verb + ": " + r.error().message());
  return std::move(r).value();
}

json selector_arg(lua_State* L, int index) {
  if (lua_isnoneornil(L, index))
    return "*";
  if (lua_type(L, index) == LUA_TSTRING) {
    std::string s = lua_tostring(L, index);
    if (s == "*")
      return "*";
    json sel = json::object();
    std::size_t start = 0;
    while (start <= s.size()) {
      auto end = s.find(',', start);
      auto item = s.substr(start, end == std::string::npos ? std::string::npos : end - start);
      auto dot = item.rfind('.');
      if (dot == std::string::npos)
        raise(L, "selector '" + s + "': write views as ns.view or ns.*");
      auto ns = item.substr(0, dot), name = item.substr(dot + 1);
      if (name == "*")
        sel[ns] = "*";
      else
        sel[ns].push_back(name);
      if (end == std::string::npos)
        break;
      start = end + 1;
    }
    return sel;
  }
  return to_json(L, index, "selector");
}

int node_start(lua_State* L) {
  auto& r = R(L);
  std::string name = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TTABLE);
  for (const auto& n : r.nodes)
    if (n->name() == name)
      raise(L, "node.start: a node named '" + name + "' already exists in this scenario");
  auto cfg = to_json(L, 2, "node '" + name + "' config");
  if (!cfg.is_object())
    raise(L, "node.start: the config of '" + name + "' must be a table of settings");
  auto dir = r.run_dir + "/" + name;
  fs::create_directories(dir);
  if (!cfg.contains("node_id"))
    cfg["node_id"] = name;
  cfg["data_dir"] = dir + "/data";
  if (!cfg.contains("control_endpoint"))
    cfg["control_endpoint"] = "tcp://127.0.0.1:0";
  if (!cfg.contains("events_endpoint"))
    cfg["events_endpoint"] = "tcp://127.0.0.1:0";
  if (!cfg.contains("seed"))
    cfg["seed"] = (r.seed + r.nodes.size() + 1) & 0x7fffffffffffffffULL;
  auto launched = node_process::launch(r.ctx, name, r.opts.binary, dir, to_toml(cfg),
                                       node_start_timeout);
  if (!launched)
    raise(L, "node '" + name + "' did not start: " + launched.error().message());
  r.nodes.push_back(std::move(launched).value());
  auto* ref = static_cast<node_ref*>(lua_newuserdatauv(L, sizeof(node_ref), 0));
  ref->index = r.nodes.size() - 1;
  luaL_setmetatable(L, "syncmesh.node");
  return 1;
}

int push_result(lua_State* L, const json& j) {
  push_json(L, j);
  return 1;
}

// A call given a deadline in ms as its last argument answers nil and the
// error instead of raising: for nodes that may die meanwhile (failpoints).
int call_or_nil(lua_State* L, node_process& n, const std::string& verb, json args,
                lua_Integer timeout_ms) {
  auto r = n.call(verb, std::move(args), milliseconds(timeout_ms));
  if (!r) {
    lua_pushnil(L);
    lua_pushstring(L, r.error().message().c_str());
    return 2;
  }
  return push_result(L, *r);
}

int node_status(lua_State* L) {
  auto& n = check_node(L);
  if (!lua_isnoneornil(L, 3))
    return call_or_nil(L, n, "status", {{"selector", selector_arg(L, 2)}}, luaL_checkinteger(L, 3));
  return push_result(L, call_node(L, n, "status", {{"selector", selector_arg(L, 2)}}));
}
int node_conflicts(lua_State* L) {
  auto& n = check_node(L);
  json args = json::object();
  if (!lua_isnoneornil(L, 2))
    args["view"] = luaL_checkstring(L, 2);
  return push_result(L, call_node(L, n, "conflicts", args));
}
int node_sync(lua_State* L) {
  auto& n = check_node(L);
  return push_result(L, call_node(L, n, "sync", {{"selector", selector_arg(L, 2)}}));
}
int node_forget(lua_State* L) {
  auto& n = check_node(L);
  return push_result(L, call_node(L, n, "forget", {{"selector", selector_arg(L, 2)}}));
}
int node_stop_views(lua_State* L) {
  auto& n = check_node(L);
  return push_result(L, call_node(L, n, "stop", {{"selector", selector_arg(L, 2)}}));
}
int node_resume(lua_State* L) {
  auto& n = check_node(L);
  return push_result(L, call_node(L, n, "resume", {{"selector", selector_arg(L, 2)}}));
}
int node_query(lua_State* L) {
  auto& n = check_node(L);
  json args = {{"view", luaL_checkstring(L, 2)}};
  if (!lua_isnoneornil(L, 3))
    args["limit"] = luaL_checkinteger(L, 3);
  return push_result(L, call_node(L, n, "query", args));
}
int node_rows(lua_State* L) {
  // query(view).rows as tables keyed by column name
  auto& n = check_node(L);
  auto q = call_node(L, n, "query", {{"view", luaL_checkstring(L, 2)}});
  json rows = json::array();
  for (const auto& r : q["rows"]) {
    json obj = json::object();
    for (std::size_t i = 0; i < q["columns"].size() && i < r.size(); ++i)
      obj[q["columns"][i].get<std::string>()] = r[i];
    rows.push_back(obj);
  }
  return push_result(L, rows);
}
int node_sync_concurrently(lua_State* L) {
  auto& n = check_node(L);
  auto count = luaL_checkinteger(L, 2);
  if (count < 1 || count > 1000)
    raise(L, "sync_concurrently: the number of calls must be between 1 and 1000");
  auto replies = n.call_concurrently("sync", {{"selector", selector_arg(L, 3)}},
                                     static_cast<std::size_t>(count));
  json out = json::array();
  for (auto& r : replies) {
    if (!r)
      raise(L, "node '" + n.name() + "' sync: " + r.error().message());
    out.push_back(*r);
  }
  return push_result(L, out);
}

int node_exec(lua_State* L) {
  auto& n = check_node(L);
  auto ops = to_json(L, 3, "exec");
  ops["view"] = luaL_checkstring(L, 2);
  if (!lua_isnoneornil(L, 4))
    return call_or_nil(L, n, "exec", ops, luaL_checkinteger(L, 4));
  return push_result(L, call_node(L, n, "exec", ops));
}
int node_exec_remote(lua_State* L) {
  auto& n = check_node(L);
  auto ops = to_json(L, 4, "exec_remote");
  ops["remote"] = luaL_checkstring(L, 2);
  ops["table"] = luaL_checkstring(L, 3);
  return push_result(L, call_node(L, n, "exec", ops));
}
int node_outage(lua_State* L) {
  auto& n = check_node(L);
  bool on = lua_isnoneornil(L, 3) ? true : lua_toboolean(L, 3);
  return push_result(L, call_node(L, n, "remote", {{"remote", luaL_checkstring(L, 2)},
                                                   {"outage", on}}));
}
int node_remote_stats(lua_State* L) {
  auto& n = check_node(L);
  return push_result(L, call_node(L, n, "remote", {{"remote", luaL_checkstring(L, 2)}}));
}

// check_applied_once(n, remote): no mutation pushed to a memory remote was
// applied more than once, however often it was retransmitted.
int l_check_applied_once(lua_State* L) {
  auto& n = check_node(L, 1);
  std::string remote = luaL_checkstring(L, 2);
  auto stats = call_node(L, n, "remote", {{"remote", remote}});
  auto twice = stats.value("applied_twice", 0);
  auto name = "no write applied twice at " + n.name() + ":" + remote;
  R(L).record_check(name, twice == 0,
                    twice == 0 ? "" : std::to_string(twice) + " mutations applied twice");
  if (twice != 0)
    raise(L, "check failed: " + name);
  return 0;
}

int node_topology(lua_State* L) {
  auto& n = check_node(L);
  return push_result(L, call_node(L, n, "topology", json::object()));
}
// n:wait(origin, hlc [, ms]): returns once the node holds origin's changes
// up to the stamp (what n:exec on a peer table answered as hlc); waits 60 s
// and raises, or with `ms` waits that long and answers nil and the error.
int node_wait(lua_State* L) {
  auto& n = check_node(L);
  json args = {{"origin", luaL_checkstring(L, 2)}, {"hlc", luaL_checkstring(L, 3)}};
  if (!lua_isnoneornil(L, 4)) {
    const auto ms = luaL_checkinteger(L, 4);
    args["timeout_ms"] = ms;
    return call_or_nil(L, n, "wait", args, ms + 15'000);
  }
  args["timeout_ms"] = 60'000;  // the node's default (actors::wait_default_ms)
  return push_result(L, call_node(L, n, "wait", args));
}
int node_links(lua_State* L) {
  auto& n = check_node(L);
  return push_result(L, call_node(L, n, "links", json::object()));
}
// The peer endpoint the node bound, as its node.json says (the node must be
// running).
int node_peer_endpoint(lua_State* L) {
  auto& n = check_node(L);
  const auto peer = n.endpoint("peer");
  if (peer.empty())
    raise(L, "node '" + n.name() + "' has no peer endpoint: is it running, with [[tables]] "
                                   "and a [peer] listen endpoint?");
  lua_pushstring(L, peer.c_str());
  return 1;
}
int node_events(lua_State* L) {
  auto& n = check_node(L);
  n.drain_events();
  json out = json::array();
  for (const auto& e : n.events())
    out.push_back(e);
  return push_result(L, out);
}
int node_shutdown(lua_State* L) {
  auto& n = check_node(L);
  if (auto st = n.shutdown(); !st)
    raise(L, st.message());
  return 0;
}
int node_kill(lua_State* L) {
  check_node(L).kill();
  return 0;
}
int node_restart(lua_State* L) {
  auto& n = check_node(L);
  if (n.running())
    if (auto st = n.shutdown(); !st)
      raise(L, st.message());
  if (auto st = n.start(node_start_timeout); !st)
    raise(L, "node '" + n.name() + "' did not restart: " + st.message());
  return 0;
}
int node_start_again(lua_State* L) {
  auto& n = check_node(L);
  if (auto st = n.start(node_start_timeout); !st)
    raise(L, "node '" + n.name() + "' did not start: " + st.message());
  return 0;
}
int node_running(lua_State* L) {
  lua_pushboolean(L, check_node(L).running());
  return 1;
}
int node_name(lua_State* L) {
  lua_pushstring(L, check_node(L).name().c_str());
  return 1;
}
int node_log(lua_State* L) {
  lua_pushstring(L, check_node(L).log_path().c_str());
  return 1;
}

// A digest of a view's rows: equal digests mean equal rows (FNV-1a over the
// canonical JSON of the rows in key order).
std::string digest_of(const json& query) {
  auto text = query["rows"].dump();
  std::uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : text) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

int node_digest(lua_State* L) {
  auto& n = check_node(L);
  auto q = call_node(L, n, "query", {{"view", luaL_checkstring(L, 2)}});
  if (q.value("truncated", false))
    raise(L, "digest: view '" + q["view"].get<std::string>()
               + "' holds more rows than one query returns; raise query_rows_max");
  lua_pushstring(L, digest_of(q).c_str());
  return 1;
}

// --- scenario functions -----------------------------------------------------

int l_say(lua_State* L) {
  std::cout << "  " << luaL_checkstring(L, 1) << std::endl;
  return 0;
}

int l_seed(lua_State* L) {
  lua_pushinteger(L, static_cast<lua_Integer>(R(L).seed & 0x7fffffffffffffffULL));
  return 1;
}

int l_random(lua_State* L) {
  auto lo = luaL_checkinteger(L, 1);
  auto hi = luaL_checkinteger(L, 2);
  if (hi < lo)
    raise(L, "random(lo, hi) needs lo <= hi");
  std::uniform_int_distribution<lua_Integer> d(lo, hi);
  lua_pushinteger(L, d(R(L).rng));
  return 1;
}

int l_check(lua_State* L) {
  bool ok = lua_toboolean(L, 1);
  std::string name = luaL_optstring(L, 2, "check");
  std::string detail = luaL_optstring(L, 3, "");
  R(L).record_check(name, ok, detail);
  if (!ok)
    raise(L, "check failed: " + name + (detail.empty() ? "" : " (" + detail + ")"));
  return 0;
}

int l_check_equal(lua_State* L) {
  auto a = to_json(L, 1, "check_equal");
  auto b = to_json(L, 2, "check_equal");
  std::string name = luaL_optstring(L, 3, "values are equal");
  bool ok = a == b;
  R(L).record_check(name, ok, ok ? "" : a.dump() + " ~= " + b.dump());
  if (!ok)
    raise(L, "check failed: " + name + " (" + a.dump() + " ~= " + b.dump() + ")");
  return 0;
}

int l_await(lua_State* L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  auto timeout = milliseconds(luaL_optinteger(L, 2, 10'000));
  std::string name = luaL_optstring(L, 3, "condition");
  auto& r = R(L);
  auto start = steady_clock::now();
  auto deadline = start + timeout;
  while (true) {
    if (interrupted)
      raise(L, "interrupted by SIGINT");
    lua_pushvalue(L, 1);
    lua_call(L, 0, 1);
    bool ok = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (ok) {
      auto ms = std::chrono::duration_cast<milliseconds>(steady_clock::now() - start).count();
      r.record_check(name, true, "after " + std::to_string(ms) + " ms");
      return 0;
    }
    auto now = steady_clock::now();
    if (now >= deadline) {
      r.record_check(name, false, "not true within " + std::to_string(timeout.count()) + " ms");
      raise(L, "check failed: " + name + " (not true within " + std::to_string(timeout.count())
                 + " ms)");
    }
    // Wake on the next event from any node, or look again shortly.
    r.drain_all(std::min(await_poll_max,
                         std::chrono::duration_cast<milliseconds>(deadline - now)));
  }
}

int traceback(lua_State* L);

int l_step(lua_State* L) {
  std::string name = luaL_checkstring(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  auto& r = R(L);
  auto outer = r.step;
  r.step = name;
  std::cout << "▸ " << name << std::endl;
  auto start = steady_clock::now();
  lua_pushcfunction(L, traceback);
  lua_pushvalue(L, 2);
  int rc = lua_pcall(L, 0, 0, -2);
  auto ms = std::chrono::duration_cast<milliseconds>(steady_clock::now() - start).count();
  r.steps.push_back({{"name", name}, {"ms", ms}, {"ok", rc == LUA_OK}});
  r.step = outer;
  if (rc != LUA_OK)
    return lua_error(L);  // the error (with its traceback) travels on
  lua_pop(L, 1);
  return 0;
}

// keygen(name) -> secret key path, public key path, public key (Z85): a
// CURVE key pair written into the run directory, as `syncmesh keygen` does.
int l_keygen(lua_State* L) {
  auto& r = R(L);
  std::string name = luaL_checkstring(L, 1);
  auto keys = messaging::generate_curve_key_pair();
  if (!keys)
    raise(L, "keygen: " + keys.error().message());
  fs::create_directories(r.run_dir + "/keys");
  auto path = r.run_dir + "/keys/" + name + ".key";
  if (auto st = messaging::write_curve_key_files(path, *keys, true); !st)
    raise(L, "keygen: " + st.message());
  lua_pushstring(L, path.c_str());
  lua_pushstring(L, (path + ".pub").c_str());
  lua_pushstring(L, keys->public_key.c_str());
  return 3;
}

int l_figure(lua_State* L) {
  std::string name = luaL_checkstring(L, 1);
  R(L).figures[name] = to_json(L, 2, "figure");
  std::cout << "  · " << name << " = " << R(L).figures[name].dump() << std::endl;
  return 0;
}

double percentile(std::vector<double> xs, double p) {
  if (xs.empty())
    return 0;
  std::sort(xs.begin(), xs.end());
  auto i = static_cast<std::size_t>(p * static_cast<double>(xs.size() - 1) + 0.5);
  return xs[std::min(i, xs.size() - 1)];
}

// workload{node=, view=, writes=, key_space=, rate=, make=function(i, key)}
int l_workload(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  auto& r = R(L);
  lua_getfield(L, 1, "node");
  auto& n = check_node(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, 1, "view");
  std::string view = luaL_checkstring(L, -1);
  lua_pop(L, 1);
  lua_getfield(L, 1, "writes");
  auto writes = luaL_optinteger(L, -1, 100);
  lua_pop(L, 1);
  lua_getfield(L, 1, "key_space");
  auto key_space = luaL_optinteger(L, -1, 1000);
  lua_pop(L, 1);
  lua_getfield(L, 1, "rate");
  auto rate = luaL_optnumber(L, -1, 0);
  lua_pop(L, 1);
  lua_getfield(L, 1, "make");
  bool has_make = lua_isfunction(L, -1);
  int make_index = lua_gettop(L);
  std::uniform_int_distribution<lua_Integer> key_of(1, std::max<lua_Integer>(1, key_space));
  json acknowledged = json::object();
  std::vector<double> latencies;
  lua_Integer failed = 0;
  auto start = steady_clock::now();
  for (lua_Integer i = 1; i <= writes; ++i) {
    if (interrupted)
      raise(L, "interrupted by SIGINT");
    if (rate > 0) {
      auto due = start + std::chrono::duration_cast<steady_clock::duration>(
                           std::chrono::duration<double>(static_cast<double>(i - 1) / rate));
      auto now = steady_clock::now();
      if (due > now)
        r.drain_all(std::chrono::duration_cast<milliseconds>(due - now));
    }
    auto key = key_of(r.rng);
    json row;
    if (has_make) {
      lua_pushvalue(L, make_index);
      lua_pushinteger(L, i);
      lua_pushinteger(L, key);
      lua_call(L, 2, 1);
      row = to_json(L, -1, "workload row");
      lua_pop(L, 1);
    } else {
      row = {{"id", key}, {"title", "write-" + std::to_string(i)}};
    }
    auto t0 = steady_clock::now();
    auto res = n.call("exec", {{"view", view}, {"upsert", json::array({row})}});
    auto ms = std::chrono::duration<double, std::milli>(steady_clock::now() - t0).count();
    if (res) {
      latencies.push_back(ms);
      acknowledged[std::to_string(key)] = row;
    } else {
      ++failed;
    }
  }
  json out = {{"acknowledged", latencies.size()},
              {"failed", failed},
              {"p50_ms", percentile(latencies, 0.50)},
              {"p99_ms", percentile(latencies, 0.99)},
              {"rows", acknowledged}};
  return push_result(L, out);
}

// check_acknowledged(node, view, workload_result[, key_column]): every
// acknowledged write is present with its last acknowledged value.
int l_check_acknowledged(lua_State* L) {
  auto& n = check_node(L, 1);
  std::string view = luaL_checkstring(L, 2);
  auto w = to_json(L, 3, "workload result");
  std::string key_column = luaL_optstring(L, 4, "id");
  auto q = call_node(L, n, "query", {{"view", view}});
  std::map<std::string, json> present;
  for (const auto& row : q["rows"]) {
    json obj = json::object();
    for (std::size_t i = 0; i < q["columns"].size() && i < row.size(); ++i)
      obj[q["columns"][i].get<std::string>()] = row[i];
    present[obj[key_column].dump()] = obj;
  }
  std::size_t lost = 0;
  std::string example;
  for (const auto& [key, expected] : w["rows"].items()) {
    auto it = present.find(expected[key_column].dump());
    bool match = it != present.end();
    if (match)
      for (const auto& [col, v] : expected.items())
        match = match && it->second.contains(col) && it->second[col] == v;
    if (!match && ++lost == 1)
      example = expected.dump();
  }
  auto name = "no acknowledged write lost on " + n.name() + ":" + view;
  R(L).record_check(name, lost == 0,
                    lost == 0 ? "" : std::to_string(lost) + " missing or stale, e.g. " + example);
  if (lost > 0)
    raise(L, "check failed: " + name);
  return 0;
}

// --- PostgreSQL and fault proxies ---------------------------------------------

postgres_server& check_pg(lua_State* L) {
  auto* idx = static_cast<std::size_t*>(luaL_checkudata(L, 1, "syncmesh.postgres"));
  return *R(L).pgs.at(*idx);
}

// Whether a PostgreSQL server is installed (Debian's postgresql package).
int pg_available(lua_State* L) {
  bool found = false;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/usr/lib/postgresql", ec))
    found = found || fs::exists(e.path() / "bin" / "initdb");
  lua_pushboolean(L, found);
  return 1;
}

int pg_start(lua_State* L) {
  postgres_options po;
  if (lua_istable(L, 1)) {
    auto cfg = to_json(L, 1, "postgres.start");
    if (cfg.contains("settings"))
      for (const auto& [k, v] : cfg["settings"].items())
        po.settings.emplace_back(k, v.is_string() ? v.get<std::string>() : v.dump());
  }
  auto started = postgres_server::start(po);
  if (!started)
    raise(L, "postgres.start: " + started.error().message());
  auto& r = R(L);
  r.pgs.push_back(std::move(started).value());
  auto* idx = static_cast<std::size_t*>(lua_newuserdatauv(L, sizeof(std::size_t), 0));
  *idx = r.pgs.size() - 1;
  luaL_setmetatable(L, "syncmesh.postgres");
  return 1;
}

int pg_sql(lua_State* L) {
  auto& pg = check_pg(L);
  auto res = pg.sql(luaL_checkstring(L, 2), luaL_optstring(L, 3, "postgres"));
  if (!res)
    raise(L, res.error().message());
  json rows = json::array();
  for (const auto& row : res->rows) {
    json r = json::array();
    for (const auto& v : row)
      r.push_back(v ? json(*v) : json(nullptr));
    rows.push_back(r);
  }
  return push_result(L, {{"columns", res->columns}, {"rows", rows}, {"tag", res->command_tag}});
}

int pg_stop(lua_State* L) {
  if (auto st = check_pg(L).stop(); !st)
    raise(L, st.message());
  return 0;
}
int pg_start_again(lua_State* L) {
  if (auto st = check_pg(L).start_again(); !st)
    raise(L, st.message());
  return 0;
}
int pg_restart(lua_State* L) {
  if (auto st = check_pg(L).restart(); !st)
    raise(L, st.message());
  return 0;
}
int pg_conninfo(lua_State* L) {
  lua_pushstring(L, check_pg(L).conninfo().c_str());
  return 1;
}

fault_proxy& check_proxy(lua_State* L) {
  auto* idx = static_cast<std::size_t*>(luaL_checkudata(L, 1, "syncmesh.proxy"));
  return *R(L).proxies.at(*idx);
}

int proxy_new(lua_State* L) {
  std::string host = luaL_checkstring(L, 1);
  auto port = luaL_checkinteger(L, 2);
  auto& r = R(L);
  auto p = fault_proxy::start(host, static_cast<std::uint16_t>(port), r.rng());
  if (!p)
    raise(L, "fault.proxy: " + p.error().message());
  r.proxies.push_back(std::move(p).value());
  auto* idx = static_cast<std::size_t*>(lua_newuserdatauv(L, sizeof(std::size_t), 0));
  *idx = r.proxies.size() - 1;
  luaL_setmetatable(L, "syncmesh.proxy");
  return 1;
}
int proxy_partition(lua_State* L) {
  check_proxy(L).partition();
  return 0;
}
int proxy_heal(lua_State* L) {
  check_proxy(L).heal();
  return 0;
}
int proxy_delay(lua_State* L) {
  if (auto st = check_proxy(L).delay(milliseconds(luaL_checkinteger(L, 2)),
                                     milliseconds(luaL_optinteger(L, 3, 0)));
      !st)
    raise(L, st.message());
  return 0;
}
int proxy_drop(lua_State* L) {
  if (auto st = check_proxy(L).drop(luaL_checknumber(L, 2)); !st)
    raise(L, st.message());
  return 0;
}
int proxy_cut(lua_State* L) {
  check_proxy(L).cut();
  return 0;
}
int proxy_port(lua_State* L) {
  lua_pushinteger(L, check_proxy(L).port());
  return 1;
}

// --- wiring -------------------------------------------------------------------

int traceback(lua_State* L) {
  const char* msg = lua_tostring(L, 1);
  if (msg && std::string(msg).find("\nstack traceback:") != std::string::npos) {
    lua_pushvalue(L, 1);  // already has one (re-raised from a step)
    return 1;
  }
  luaL_traceback(L, L, msg ? msg : "(error object is not a string)", 1);
  return 1;
}

void register_type(lua_State* L, const char* name, const luaL_Reg* methods) {
  luaL_newmetatable(L, name);
  lua_newtable(L);
  luaL_setfuncs(L, methods, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
}

void register_api(lua_State* L) {
  static const luaL_Reg node_methods[] = {
    {"status", node_status},   {"sync", node_sync},
    {"conflicts", node_conflicts}, {"stop", node_stop_views}, {"resume", node_resume}, {"forget", node_forget},
    {"query", node_query},     {"rows", node_rows},
    {"exec", node_exec},       {"exec_remote", node_exec_remote},
    {"sync_concurrently", node_sync_concurrently},
    {"outage", node_outage},   {"topology", node_topology},
    {"links", node_links},     {"peer_endpoint", node_peer_endpoint},
    {"wait", node_wait},
    {"remote_stats", node_remote_stats},
    {"events", node_events},   {"shutdown", node_shutdown},
    {"kill", node_kill},       {"restart", node_restart},
    {"start", node_start_again}, {"running", node_running},
    {"name", node_name},       {"log", node_log},
    {"digest", node_digest},   {nullptr, nullptr}};
  register_type(L, "syncmesh.node", node_methods);
  static const luaL_Reg pg_methods[] = {{"sql", pg_sql},         {"stop", pg_stop},
                                        {"start", pg_start_again}, {"restart", pg_restart},
                                        {"conninfo", pg_conninfo}, {nullptr, nullptr}};
  register_type(L, "syncmesh.postgres", pg_methods);
  static const luaL_Reg proxy_methods[] = {{"partition", proxy_partition}, {"heal", proxy_heal},
                                           {"delay", proxy_delay},         {"drop", proxy_drop},
                                           {"cut", proxy_cut},             {"port", proxy_port},
                                           {nullptr, nullptr}};
  register_type(L, "syncmesh.proxy", proxy_methods);

  static const luaL_Reg node_lib[] = {{"start", node_start}, {nullptr, nullptr}};
  luaL_newlib(L, node_lib);
  lua_setglobal(L, "node");
  static const luaL_Reg pg_lib[] = {{"start", pg_start}, {"available", pg_available},
                                    {nullptr, nullptr}};
  luaL_newlib(L, pg_lib);
  lua_setglobal(L, "postgres");
  static const luaL_Reg fault_lib[] = {{"proxy", proxy_new}, {nullptr, nullptr}};
  luaL_newlib(L, fault_lib);
  lua_setglobal(L, "fault");
  static const luaL_Reg globals[] = {
    {"say", l_say},         {"seed", l_seed},         {"random", l_random},
    {"check", l_check},     {"check_equal", l_check_equal},
    {"await", l_await},     {"step", l_step},         {"figure", l_figure},
    {"keygen", l_keygen},
    {"workload", l_workload}, {"check_acknowledged", l_check_acknowledged},
    {"check_applied_once", l_check_applied_once},
    {nullptr, nullptr}};
  for (const auto* g = globals; g->name; ++g) {
    lua_pushcfunction(L, g->func);
    lua_setglobal(L, g->name);
  }
}

std::uint64_t fresh_seed() {
  std::random_device rd;
  return ((static_cast<std::uint64_t>(rd()) << 32) ^ rd()) & 0x7fffffffffffffffULL;
}

} // namespace

int run_scenario(const run_options& opts) {
  runner r;
  r.opts = opts;
  r.seed = opts.seed ? opts.seed : fresh_seed();
  r.rng.seed(r.seed);
  auto name = fs::path(opts.script).stem().string();
  std::cout << "scenario " << name << " — seed " << r.seed << " (replay: --seed " << r.seed
            << ")" << std::endl;

  char tmpl[] = "/tmp/syncmesh-scenario-XXXXXX";
  if (!::mkdtemp(tmpl)) {
    std::cerr << "syncmesh scenario: cannot create a temporary directory under /tmp\n";
    return 2;
  }
  r.run_dir = tmpl;

  struct sigaction sa {}, old_int {}, old_term {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, &old_int);
  ::sigaction(SIGTERM, &sa, &old_term);
  interrupted = 0;

  std::unique_ptr<lua_State, void (*)(lua_State*)> state(luaL_newstate(), lua_close);
  lua_State* L = state.get();
  luaL_openlibs(L);
  lua_pushlightuserdata(L, &r);
  lua_setfield(L, LUA_REGISTRYINDEX, runner_key);
  register_api(L);
  lua_sethook(L, interruption_hook, LUA_MASKCOUNT, 1000);

  int exit_code = 0;
  std::string error;
  if (luaL_loadfilex(L, opts.script.c_str(), "t") != LUA_OK) {
    error = lua_tostring(L, -1);
    exit_code = 2;
  } else {
    lua_pushcfunction(L, traceback);
    lua_insert(L, -2);
    if (lua_pcall(L, 0, 0, -2) != LUA_OK) {
      error = lua_tostring(L, -1) ? lua_tostring(L, -1) : "error";
      exit_code = interrupted ? 130 : 1;
    }
  }
  if (!r.failure.empty() && exit_code == 0)
    exit_code = 1;

  auto elapsed = std::chrono::duration_cast<milliseconds>(steady_clock::now() - r.started).count();
  std::size_t passed = 0;
  for (const auto& c : r.checks)
    passed += c["ok"].get<bool>() ? 1 : 0;
  json report = {{"scenario", name},
                 {"script", opts.script},
                 {"seed", r.seed},
                 {"ok", exit_code == 0},
                 {"ms", elapsed},
                 {"steps", r.steps},
                 {"checks", r.checks},
                 {"figures", r.figures},
                 {"error", error},
                 {"failed_check", r.failure}};
  json nodes = json::object();
  for (auto& n : r.nodes) {
    n->drain_events();
    json last = json::array();
    auto& evs = n->events();
    for (auto it = evs.size() > 10 ? evs.end() - 10 : evs.begin(); it != evs.end(); ++it)
      last.push_back(*it);
    nodes[n->name()] = {{"log", n->log_path()}, {"last_events", last}};
  }
  report["nodes"] = nodes;

  if (exit_code == 0) {
    std::cout << "PASS " << name << ": " << r.steps.size() << " steps, " << passed
              << " checks, " << elapsed << " ms" << std::endl;
  } else {
    std::cout << "FAIL " << name << " (seed " << r.seed << ")" << std::endl;
    if (!r.failure.empty())
      std::cout << "  failed check: " << r.failure << std::endl;
    if (!error.empty())
      std::cout << "  " << error << std::endl;
    for (auto& n : r.nodes) {
      std::cout << "  node " << n->name() << " — last events:" << std::endl;
      for (const auto& e : report["nodes"][n->name()]["last_events"])
        std::cout << "    " << e.dump() << std::endl;
      std::cout << "  node " << n->name() << " — log " << n->log_path()
                << (opts.keep_dirs ? "" : " (removed after the run; --keep-dirs keeps it)")
                << ", last lines:\n"
                << n->log_tail(8);
    }
  }
  r.cleanup();
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);
  if (!opts.report_path.empty()) {
    std::ofstream out(opts.report_path);
    out << report.dump(2) << "\n";
    if (!out)
      std::cerr << "syncmesh scenario: cannot write the report to " << opts.report_path << "\n";
  }
  if (opts.keep_dirs)
    std::cout << "  directories kept in " << r.run_dir << std::endl;
  return exit_code;
}

std::vector<scenario_info> list_scenarios(const std::string& dir) {
  std::vector<scenario_info> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.path().extension() != ".lua")
      continue;
    scenario_info info;
    info.path = entry.path().string();
    info.name = entry.path().stem().string();
    std::ifstream in(entry.path());
    std::string line;
    while (std::getline(in, line))
      if (line.rfind("--- ", 0) == 0) {
        info.description = line.substr(4);
        break;
      }
    out.push_back(std::move(info));
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.name < b.name; });
  return out;
}

} // namespace syncmesh::scenarios
