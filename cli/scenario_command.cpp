#include "cli/scenario_command.hpp"

#include <cstdlib>
#include <filesystem>
#include <iostream>

#include <unistd.h>

#include "cli/table.hpp"
#include "scenarios/runner.hpp"

namespace syncmesh::cli {

namespace {

namespace fs = std::filesystem;

CLI::App* scenario = nullptr;
CLI::App* run_cmd = nullptr;
scenarios::run_options opts;

std::string scenario_dir() {
  if (const char* d = std::getenv("SYNCMESH_SCENARIO_DIR"))
    return d;
  return SYNCMESH_SCENARIO_DIR;
}

std::string self_path() {
  std::error_code ec;
  auto p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? "syncmesh" : p.string();
}

} // namespace

CLI::App* add_scenario_command(CLI::App& app) {
  scenario = app.add_subcommand("scenario", "Run scenario scripts against clusters of nodes");
  scenario->require_subcommand(1);
  run_cmd = scenario->add_subcommand("run", "Run one scenario script");
  run_cmd->add_option("script", opts.script, "A .lua file, or the name of a shipped scenario")
    ->required();
  run_cmd->add_option("--seed", opts.seed, "Replay a run with this seed (printed by every run)");
  run_cmd->add_option("--report", opts.report_path, "Write a JSON report here");
  run_cmd->add_flag("--keep-dirs", opts.keep_dirs, "Keep node directories and logs");
  scenario->add_subcommand("list", "The shipped scenarios and what each shows");
  return scenario;
}

int run_scenario_command() {
  if (run_cmd->parsed()) {
    if (!fs::exists(opts.script)) {
      auto shipped = scenario_dir() + "/" + opts.script
                     + (opts.script.size() > 4
                            && opts.script.compare(opts.script.size() - 4, 4, ".lua") == 0
                          ? ""
                          : ".lua");
      if (!fs::exists(shipped)) {
        std::cerr << "syncmesh scenario: no script '" << opts.script
                  << "' (not a file, and not a shipped scenario in " << scenario_dir()
                  << "); `syncmesh scenario list` shows the shipped ones\n";
        return 2;
      }
      opts.script = shipped;
    }
    opts.binary = self_path();
    return scenarios::run_scenario(opts);
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& s : scenarios::list_scenarios(scenario_dir()))
    rows.push_back({s.name, s.description});
  if (rows.empty()) {
    std::cerr << "syncmesh scenario: no scenarios in " << scenario_dir()
              << " (set SYNCMESH_SCENARIO_DIR)\n";
    return 2;
  }
  print_table(std::cout, {"SCENARIO", "WHAT IT SHOWS"}, rows);
  return 0;
}

} // namespace syncmesh::cli
