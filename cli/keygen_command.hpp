#pragma once

#include <string>

namespace syncmesh::cli {

struct keygen_options {
  std::string out = "node.key";  // the secret key file; the public one is OUT.pub
  bool force = false;            // replace existing files
  bool json = false;             // print one JSON object instead of prose
};

/// `syncmesh keygen`: writes a fresh CURVE key pair (messaging/curve_keys.hpp)
/// and prints the public key, never the secret one. Returns the exit code:
/// 0 written, 1 refused (a file exists without --force) or failed.
int run_keygen(const keygen_options& opts);

} // namespace syncmesh::cli
