#pragma once

#include <CLI/CLI.hpp>

namespace syncmesh::cli {

/// Adds `syncmesh scenario run FILE|NAME [--seed N] [--report F] [--keep-dirs]`
/// and `syncmesh scenario list` to `app`.
CLI::App* add_scenario_command(CLI::App& app);
int run_scenario_command();

} // namespace syncmesh::cli
