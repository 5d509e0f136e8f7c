#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include <nlohmann/json.hpp>

#include "actors/node_config.hpp"
#include "actors/status_board.hpp"
#include "store/store.hpp"

namespace syncmesh::actors {

/// What every actor of a node shares. Built once by the node before any
/// actor starts; immutable afterwards except through the store.
struct node_context {
  node_config config;
  /// The node's store. Actors read it directly (reads are thread-safe and see
  /// every committed apply); they write only through the store actor.
  std::shared_ptr<store::store> db;
  /// The event bus: sync:start, sync:end, error, conflict, state. Must be
  /// thread-safe and must not block.
  std::function<void(const nlohmann::json&)> publish;
  /// Wall-clock milliseconds = actor-clock milliseconds + this offset; the
  /// actor clock is the only time source actors read.
  std::int64_t wall_offset_ms = 0;
  /// Run the store actor on its own thread (blocking fsync off the CAF
  /// workers). Tests on CAF's test_coordinator set this to false.
  bool detached_io = true;
  /// Where view actors publish their status for the control server's fast
  /// path; may be null (actor tests), then nobody reads it.
  std::shared_ptr<status_board> board;
};

using node_context_ptr = std::shared_ptr<const node_context>;

} // namespace syncmesh::actors
