#pragma once

#include <string>

namespace syncmesh::cli {

/// `syncmesh node --config FILE`: runs a node until SIGINT or SIGTERM, then
/// shuts it down in order. Returns the process exit code.
int run_node(const std::string& config_path);

} // namespace syncmesh::cli
