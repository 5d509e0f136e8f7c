#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace syncmesh::scenarios {

struct run_options {
  std::string script;            // path of the .lua file
  std::uint64_t seed = 0;        // 0: a fresh seed (printed)
  std::string report_path;       // empty: no JSON report
  bool keep_dirs = false;        // keep node directories and logs after the run
  std::string binary;            // the syncmesh executable that runs nodes
};

/// Runs one scenario script: starts what it asks for (node processes,
/// throwaway PostgreSQL servers, fault proxies), runs its steps and checks,
/// prints a summary in words and writes the report. Everything it started is
/// stopped and its directories removed, whether the run passes, fails, or is
/// interrupted with SIGINT. Returns the exit code: 0 passed, 1 a check failed
/// or the script raised an error, 2 the script could not be loaded, 130
/// interrupted.
int run_scenario(const run_options& opts);

struct scenario_info {
  std::string path;
  std::string name;         // file name without .lua
  std::string description;  // the script's first "--- " comment line
};

/// The scenarios in `dir`, by name.
std::vector<scenario_info> list_scenarios(const std::string& dir);

} // namespace syncmesh::scenarios
