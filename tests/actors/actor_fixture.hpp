#pragma once

// Deterministic actor tests: CAF's test_coordinator runs every actor on the
// test's thread and owns a virtual clock, so timers fire only when the test
// advances time. The store lives in LevelDB's in-memory Env.

#include <memory>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/timespan.hpp>
#include <caf/send.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <leveldb/env.h>
#include <leveldb/helpers/memenv.h>
#include <nlohmann/json.hpp>

#include "actors/messages.hpp"
#include "actors/node_context.hpp"

namespace syncmesh::actors::test {

inline node_config base_config() {
  node_config cfg;
  cfg.node_id = "node-t";
  cfg.data_dir = "/mem";
  cfg.seed = 7;
  cfg.retry = {500, 4'000, 0.0};    // exact delays unless a test sets jitter
  cfg.restart = {200, 1'000, 0.0};
  cfg.restart_intensity_max = 2;
  cfg.restart_window_ms = 60'000;
  remote_config inv;
  inv.name = "inventory";
  inv.kind = "memory";
  memory_table_config items;
  items.name = "items";
  items.columns = {{"id", "integer", true, false}, {"title", "text", false, true}};
  items.rows = {{store::value::integer(1), store::value::text("apple")},
                {store::value::integer(2), store::value::text("pear")}};
  inv.tables.push_back(items);
  cfg.remotes.push_back(inv);
  return cfg;
}

inline view_config view_of(const std::string& name, const std::string& persistence) {
  view_config v;
  v.ns = "shop";
  v.name = name;
  v.persistence = persistence;
  v.remote = "inventory";
  v.source = "items";
  return v;
}

struct actor_fixture {
  explicit actor_fixture(node_config cfg = base_config()) {
    register_message_types(sys_cfg);
    sys_cfg.set("scheduler.policy", caf::atom("testing"));
    sys_cfg.set("logger.inline-output", true);
    sys = std::make_unique<caf::actor_system>(sys_cfg);
    sched = &dynamic_cast<caf::scheduler::test_coordinator&>(sys->scheduler());
    env.reset(leveldb::NewMemEnv(leveldb::Env::Default()));
    open_context(std::move(cfg));
  }

  ~actor_fixture() {
    for (auto& a : spawned)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    sched->run();
  }

  void open_context(node_config cfg) {
    store::options so;
    so.path = "/mem/store";
    so.node_id = cfg.node_id;
    so.env = env.get();
    auto db = store::store::open(so);
    if (!db)
      throw std::runtime_error(db.error().to_string());
    auto c = std::make_shared<node_context>();
    c->config = std::move(cfg);
    c->db = std::shared_ptr<store::store>(std::move(db).value());
    c->detached_io = false;
    c->board = std::make_shared<status_board>();
    auto* sink = &events;
    c->publish = [sink](const nlohmann::json& e) { sink->push_back(e); };
    ctx = c;
  }

  /// Sends `xs` to `dest` as a request from a fresh client actor; the reply
  /// (or the error's sentence, prefixed "error: ") lands in `out`.
  template <class... Ts>
  void ask(const caf::actor& dest, std::shared_ptr<std::vector<std::string>> out, Ts... xs) {
    spawned.push_back(sys->spawn([=](caf::event_based_actor* self) {
      self->request(dest, caf::infinite, xs...)
        .then([out](const std::string& s) { out->push_back(s); },
              [out](const caf::error& e) { out->push_back("error: " + caf::to_string(e)); });
    }));
  }

  /// Runs every message that is ready; timers only fire via advance().
  void run() { sched->run(); }

  /// Moves virtual time forward by `ms`, fires what is due, and runs.
  void advance(std::int64_t ms) {
    sched->advance_time(std::chrono::milliseconds(ms));
    sched->run();
  }

  std::size_t count_events(const std::string& type, const std::string& view = "") const {
    std::size_t n = 0;
    for (const auto& e : events)
      if (e.value("type", "") == type && (view.empty() || e.value("view", "") == view))
        ++n;
    return n;
  }

  caf::actor_system_config sys_cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::scheduler::test_coordinator* sched = nullptr;
  std::unique_ptr<leveldb::Env> env;
  std::shared_ptr<node_context> ctx;
  std::vector<nlohmann::json> events;
  std::vector<caf::actor> spawned;
};

} // namespace syncmesh::actors::test
