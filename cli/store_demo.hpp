#pragma once

#include <string>

namespace syncmesh::cli {

struct store_demo_options {
  std::string data_dir;   // empty: a fresh temporary directory, removed after
  std::string durability = "fsync";
  int writers = 8;
  int batches_per_writer = 50;
  bool json = false;
};

/// `syncmesh demo`: shows the durable store at work — a table, concurrent
/// group-committed writers, the change log, a cursor, and the data surviving
/// a reopen. Returns the process exit code.
int run_store_demo(const store_demo_options& opts);

} // namespace syncmesh::cli
