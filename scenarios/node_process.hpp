#pragma once

#include <chrono>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <sys/types.h>

#include "store/status.hpp"

namespace zmq {
class context_t;
}

namespace syncmesh::messaging {
class control_client;
class event_subscriber;
} // namespace syncmesh::messaging

namespace syncmesh::scenarios {

/// Events kept per node for reports and failure messages.
inline constexpr std::size_t node_events_kept_max = 1000;

/// One `syncmesh node` process owned by the scenario runner: its directory
/// (config, data, log), its control client and its event feed. The process
/// dies with the runner (PR_SET_PDEATHSIG) and with this object.
class node_process {
public:
  /// Writes `config_toml` to <dir>/node.toml and starts the node; returns
  /// once it serves its control socket. Errors carry the node's own words
  /// (the tail of its log) when it refuses to start.
  static store::result<std::unique_ptr<node_process>>
  launch(zmq::context_t& ctx, std::string name, std::string binary, std::string dir,
         const std::string& config_toml, std::chrono::milliseconds start_timeout);

  ~node_process();
  node_process(const node_process&) = delete;
  node_process& operator=(const node_process&) = delete;

  const std::string& name() const { return name_; }
  const std::string& dir() const { return dir_; }
  /// The running process's id (-1 when none runs).
  pid_t pid() const { return pid_; }
  /// The endpoint the node's data/node.json names under `key` ("control",
  /// "events", "peer"); empty when it names none (or the node never served).
  std::string endpoint(const std::string& key) const;
  std::string log_path() const { return dir_ + "/node.log"; }
  bool running();

  /// Sends a control request. A reply with ok=false becomes invalid_argument
  /// carrying the node's sentence; no reply is io_error.
  store::result<nlohmann::json> call(const std::string& verb,
                                     nlohmann::json args = nlohmann::json::object(),
                                     std::chrono::milliseconds timeout = std::chrono::seconds(30));

  /// Sends `count` copies of a request at once, each on its own connection,
  /// and returns every reply (in no particular order).
  std::vector<store::result<nlohmann::json>>
  call_concurrently(const std::string& verb, const nlohmann::json& args, std::size_t count,
                    std::chrono::milliseconds timeout = std::chrono::seconds(300));

  /// Graceful stop: SIGTERM, then wait (SIGKILL past the timeout).
  store::status shutdown(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  /// SIGKILL and reap; the data directory stays.
  void kill();
  /// Starts the node again on the same directory and config.
  store::status start(std::chrono::milliseconds timeout = std::chrono::seconds(30));

  /// Moves events that arrived into events(); waits up to `timeout` for the
  /// first one.
  void drain_events(std::chrono::milliseconds timeout = std::chrono::milliseconds(0));
  const std::deque<nlohmann::json>& events() const { return events_; }

  /// The last `lines` lines of the node's log.
  std::string log_tail(std::size_t lines = 20) const;

private:
  node_process(zmq::context_t& ctx, std::string name, std::string binary, std::string dir);
  void reap(bool block);

  zmq::context_t& ctx_;
  std::string name_;
  std::string binary_;
  std::string dir_;
  pid_t pid_ = -1;
  int last_wait_status_ = 0;  // waitpid's status of the last process reaped
  std::unique_ptr<messaging::control_client> client_;
  std::unique_ptr<messaging::event_subscriber> subscriber_;
  std::deque<nlohmann::json> events_;
};

} // namespace syncmesh::scenarios
