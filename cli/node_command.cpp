#include "cli/node_command.hpp"

#include <csignal>
#include <iostream>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "actors/node.hpp"

namespace syncmesh::cli {

int run_node(const std::string& config_path) {
  // Signals are taken synchronously by this thread; every thread started
  // from here on inherits the block.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto logger = spdlog::stderr_color_mt("syncmesh");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  auto cfg = actors::load_node_config(config_path);
  if (!cfg) {
    std::cerr << "syncmesh node: " << cfg.error().message() << "\n";
    return 2;
  }
  spdlog::set_level(spdlog::level::from_str(cfg->log_level));
  auto n = actors::node::start(*cfg);
  if (!n) {
    std::cerr << "syncmesh node: " << n.error().message() << "\n";
    return 1;
  }
  std::cout << "node " << cfg->node_id << " control " << (*n)->control_endpoint() << " events "
            << (*n)->events_endpoint() << std::endl;
  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("received {}, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
  (*n)->stop();
  return 0;
}

} // namespace syncmesh::cli
