#include <iostream>

#include <CLI/CLI.hpp>

#include "cli/ctl_command.hpp"
#include "cli/keygen_command.hpp"
#include "cli/node_command.hpp"
#include "cli/scenario_command.hpp"
#include "cli/store_demo.hpp"

int main(int argc, char** argv) {
  CLI::App app{"syncmesh: an actor-based distributed sync runtime"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "syncmesh 0.1.0");

  syncmesh::cli::store_demo_options demo;
  auto* demo_cmd = app.add_subcommand(
    "demo", "Show the durable local store: concurrent writers, change log, cursors, reopen");
  demo_cmd->add_option("--data-dir", demo.data_dir,
                       "Store directory (default: a temporary one, removed afterwards)");
  demo_cmd->add_option("--durability", demo.durability, "fsync (default) or buffered")
    ->check(CLI::IsMember({"fsync", "buffered"}));
  demo_cmd->add_option("--writers", demo.writers, "Concurrent writer threads")
    ->check(CLI::Range(1, 64));
  demo_cmd->add_option("--batches", demo.batches_per_writer, "Batches per writer")
    ->check(CLI::Range(1, 100000));
  demo_cmd->add_flag("--json", demo.json, "Print one JSON object instead of prose");

  std::string config_path;
  auto* node_cmd = app.add_subcommand("node", "Run a node from a TOML config until SIGINT/SIGTERM");
  node_cmd->add_option("--config", config_path, "The node's config file")->required();

  syncmesh::cli::keygen_options keygen;
  auto* keygen_cmd = app.add_subcommand(
    "keygen", "Write a CURVE key pair for peer links: PATH (secret, mode 0600) and PATH.pub");
  keygen_cmd->add_option("--out", keygen.out, "The secret key file; the public key goes to PATH.pub")
    ->capture_default_str();
  keygen_cmd->add_flag("--force", keygen.force, "Replace existing key files");
  keygen_cmd->add_flag("--json", keygen.json, "Print one JSON object instead of prose");

  auto* ctl_cmd = syncmesh::cli::add_ctl_command(app);
  auto* scenario_cmd = syncmesh::cli::add_scenario_command(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // Help and --version exit 0; a usage error exits 2, as the README says
    // (CLI11's own codes, 106 and up, would collide with nothing we document).
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  if (demo_cmd->parsed())
    return syncmesh::cli::run_store_demo(demo);
  if (node_cmd->parsed())
    return syncmesh::cli::run_node(config_path);
  if (keygen_cmd->parsed())
    return syncmesh::cli::run_keygen(keygen);
  if (ctl_cmd->parsed())
    return syncmesh::cli::run_ctl();
  if (scenario_cmd->parsed())
    return syncmesh::cli::run_scenario_command();
  return 0;
}
