#include "actors/node.hpp"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <zmq.hpp>

#include "actors/control_actor.hpp"
#include "actors/errors.hpp"
#include "actors/messages.hpp"
#include "actors/supervisor.hpp"
#include "messaging/control_server.hpp"
#include "messaging/event_bus.hpp"

namespace syncmesh::actors {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

/// How long an orderly shutdown may take before the node gives up waiting.
constexpr auto shutdown_timeout = std::chrono::seconds(30);

// Joins the control server's thread and the actors: requests go to the
// control actor once it runs (until then they are refused with a sentence),
// replies go to the server until it stops.
struct reply_target {
  std::mutex mutex;
  messaging::control_server* server = nullptr;
  caf::actor control;
};

std::string events_endpoint_for(const node_config& cfg) {
  if (!cfg.events_endpoint.empty())
    return cfg.events_endpoint;
  auto colon = cfg.control_endpoint.rfind(':');
  auto port = cfg.control_endpoint.substr(colon + 1);
  if (colon == std::string::npos || port == "*" || port == "0")
    return cfg.control_endpoint.substr(0, colon + 1) + "*";
  try {
    return cfg.control_endpoint.substr(0, colon + 1) + std::to_string(std::stoi(port) + 1);
  } catch (const std::exception&) {
    return cfg.control_endpoint.substr(0, colon + 1) + "*";
  }
}

std::string read_owner(const fs::path& node_json) {
  std::ifstream in(node_json);
  auto j = json::parse(in, nullptr, false);
  if (j.is_object() && j.contains("pid"))
    return " (pid " + j["pid"].dump() + ")";
  return "";
}

} // namespace

struct node::impl {
  node_config cfg;
  std::shared_ptr<store::store> db;
  zmq::context_t zmq_ctx{1};
  std::unique_ptr<messaging::event_publisher> events;
  std::unique_ptr<caf::actor_system_config> sys_cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::actor supervisor;
  caf::actor control;
  std::shared_ptr<reply_target> target = std::make_shared<reply_target>();
  std::unique_ptr<messaging::control_server> server;
  std::string control_endpoint;
  std::string events_endpoint;
  fs::path node_json;
  bool started = false;  // node.json written: this process owns the directory
  bool stopped = false;

  ~impl() { stop(); }

  void stop() {
    if (stopped)
      return;
    stopped = true;
    {
      std::lock_guard<std::mutex> guard{target->mutex};
      target->server = nullptr;
      target->control = caf::actor{};
    }
    if (server)
      server->stop();
    if (sys && supervisor) {
      caf::scoped_actor self{*sys};
      self->request(supervisor, shutdown_timeout, shutdown_atom::value)
        .receive([](bool) {},
                 [&](const caf::error& err) {
                   spdlog::warn("orderly shutdown did not finish: {}", describe(err));
                 });
      self->send_exit(control, caf::exit_reason::user_shutdown);
    }
    supervisor = caf::actor{};
    control = caf::actor{};
    sys.reset();  // waits for every actor to finish
    server.reset();
    events.reset();
    db.reset();
    if (started) {
      std::error_code ec;
      fs::remove(node_json, ec);
      spdlog::info("node '{}' stopped", cfg.node_id);
    }
  }
};

node::node(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
node::~node() = default;

const std::string& node::control_endpoint() const { return impl_->control_endpoint; }
const std::string& node::events_endpoint() const { return impl_->events_endpoint; }
std::shared_ptr<store::store> node::store() const { return impl_->db; }
void node::stop() { impl_->stop(); }

store::result<std::unique_ptr<node>> node::start(const node_config& cfg) {
  auto p = std::make_unique<impl>();
  p->cfg = cfg;
  std::error_code ec;
  fs::create_directories(cfg.data_dir, ec);
  if (ec)
    return store::status::io_error("cannot create the data directory '" + cfg.data_dir
                                   + "': " + ec.message());
  auto dir = fs::path(cfg.data_dir);
  p->node_json = dir / "node.json";

  store::options so;
  so.path = (dir / "store").string();
  so.node_id = cfg.node_id;
  so.durability = cfg.durability;
  auto opened = store::store::open(so);
  if (!opened) {
    auto msg = opened.error().message();
    if (msg.find("lock") != std::string::npos || msg.find("LOCK") != std::string::npos)
      return store::status::io_error("the data directory '" + cfg.data_dir
                                     + "' is in use by another syncmesh node"
                                     + read_owner(p->node_json)
                                     + "; stop that node first or give this one another "
                                       "data_dir");
    return opened.error();
  }
  p->db = std::shared_ptr<store::store>(std::move(opened).value());

  auto events = messaging::event_publisher::bind(p->zmq_ctx, events_endpoint_for(cfg));
  if (!events)
    return events.error();
  p->events = std::move(events).value();
  p->events_endpoint = p->events->last_endpoint();

  auto ctx = std::make_shared<node_context>();
  ctx->config = cfg;
  ctx->db = p->db;
  auto* publisher = p->events.get();
  auto node_id = cfg.node_id;
  ctx->publish = [publisher, node_id](const json& event) {
    auto e = event;
    e["node"] = node_id;
    auto type = e.value("type", "");
    if (type == "error")
      spdlog::warn("{}: {}", e.value("view", e.value("child", node_id)), e.value("message", ""));
    else if (type == "state")
      spdlog::info("{}: {} -> {}", e.value("view", ""), e.value("from", ""), e.value("to", ""));
    (void) publisher->publish(e);
  };
  using namespace std::chrono;
  ctx->wall_offset_ms =
    duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count()
    - duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
  ctx->detached_io = true;
  auto board = std::make_shared<status_board>();
  ctx->board = board;
  std::vector<std::string> view_order;
  for (const auto& v : cfg.views)
    view_order.push_back(v.full_name());

  // Bind the control socket before any actor starts: a node that cannot
  // serve its control socket must not start syncing.
  auto target = p->target;
  auto server = messaging::control_server::start(
    p->zmq_ctx, cfg.control_endpoint, cfg.control_request_bytes_max,
    [target, board, view_order](std::uint64_t token, messaging::control_request req) {
      // `status`, and `sync` on stopped views, are answered here on the
      // server's thread from what the view actors published.
      if (auto result = answer_from_board(*board, view_order, req.verb, req.args)) {
        messaging::control_reply r;
        r.ok = true;
        r.result = std::move(*result);
        std::lock_guard<std::mutex> guard{target->mutex};
        if (target->server)
          target->server->reply(token, r);
        return;
      }
      std::lock_guard<std::mutex> guard{target->mutex};
      if (target->control)
        caf::anon_send(target->control, control_atom::value, token, req.verb, req.args.dump());
      else if (target->server)
        target->server->reply(token, messaging::control_reply::failure(
                                       req.id, "the node is starting; try again in a moment"));
    });
  if (!server)
    return server.error();
  p->server = std::move(server).value();
  {
    std::lock_guard<std::mutex> guard{target->mutex};
    target->server = p->server.get();
  }

  p->sys_cfg = std::make_unique<caf::actor_system_config>();
  register_message_types(*p->sys_cfg);
  // Idle workers go from a short spin straight to a condition variable that
  // an enqueue notifies, instead of CAF's default middle phase of 50 us
  // sleeps: a control request that lands on a dozing worker then waits for a
  // wake-up (a few us), not for a sleep to run out (50-100 us per hop).
  p->sys_cfg->set("work-stealing.moderate-poll-attempts", std::size_t{0});
  p->sys = std::make_unique<caf::actor_system>(*p->sys_cfg);
  p->supervisor = spawn_supervisor(*p->sys, ctx);

  // The peer endpoint goes into node.json, so the node answers only once
  // the peer actor has bound it; one that cannot is a node that does not
  // start, with the peer actor's sentence.
  std::string peer_endpoint;
  if (!cfg.tables.empty()) {
    caf::scoped_actor self{*p->sys};
    std::string failure;
    caf::actor peer;
    self->request(p->supervisor, shutdown_timeout, children_atom::value, std::string("peer"))
      .receive([&](const caf::actor& h) { peer = h; },
               [&](const caf::error& err) { failure = describe(err); });
    if (peer)
      self->request(peer, shutdown_timeout, endpoint_atom::value)
        .receive([&](const std::string& ep) { peer_endpoint = ep; },
                 [&](const caf::error& err) { failure = describe(err); });
    else if (failure.empty())
      failure = "the peer actor did not start";
    if (!failure.empty())
      return store::status::invalid_argument(failure);
  }

  reply_fn reply = [target](std::uint64_t token, const messaging::control_reply& r) {
    std::lock_guard<std::mutex> guard{target->mutex};
    if (target->server)
      target->server->reply(token, r);
  };
  p->control = spawn_control_actor(*p->sys, ctx, p->supervisor, reply,
                                   json{{"events_endpoint", p->events_endpoint},
                                        {"peer_endpoint", peer_endpoint},
                                        {"pid", static_cast<long>(::getpid())}});
  {
    std::lock_guard<std::mutex> guard{target->mutex};
    target->control = p->control;
  }
  p->control_endpoint = p->server->last_endpoint();

  json info = {{"node_id", cfg.node_id},
               {"pid", static_cast<long>(::getpid())},
               {"control", p->control_endpoint},
               {"events", p->events_endpoint},
               {"peer", peer_endpoint},
               {"data_dir", fs::absolute(dir).string()}};
  auto tmp = p->node_json;
  tmp += ".tmp";
  {
    std::ofstream out(tmp);
    out << info.dump(2) << "\n";
  }
  fs::rename(tmp, p->node_json, ec);
  p->started = !ec;
  if (ec)
    return store::status::io_error("cannot write '" + p->node_json.string() + "': " + ec.message());
  spdlog::info("node '{}' serving control on {} and events on {}{}", cfg.node_id,
               p->control_endpoint, p->events_endpoint,
               peer_endpoint.empty() ? std::string() : ", peers on " + peer_endpoint);
  return std::unique_ptr<node>(new node(std::move(p)));
}

} // namespace syncmesh::actors
