#pragma once

#include <CLI/CLI.hpp>

namespace syncmesh::cli {

/// Adds `syncmesh ctl` and its verbs to `app`; run_ctl() runs whichever was
/// parsed and returns the exit code: 0 done, 1 refused by the node, 2 node
/// unreachable or bad usage, 3 the request ran but a view failed.
CLI::App* add_ctl_command(CLI::App& app);
int run_ctl();

} // namespace syncmesh::cli
