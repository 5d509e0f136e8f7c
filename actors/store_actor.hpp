#pragma once

#include <caf/fwd.hpp>

#include "actors/node_context.hpp"

namespace syncmesh::actors {

/// The node's one writer: applies batches to the store in the order it
/// receives them.
///
///   (apply_atom, batch_ref) -> uint64 last_seq | error store_failed
///
/// Between applies it deletes the store's garbage (table copies a swap
/// retired, stagings a failed run abandoned, and what a crash left behind)
/// in bounded steps it sends itself, so writers never wait for all of it.
///
/// Reads do not go through it: store::store reads are thread-safe and see
/// every apply this actor has answered. Runs detached (its own thread) when
/// ctx->detached_io, so an fsync never blocks a CAF worker.
caf::actor spawn_store_actor(caf::actor_system& sys, node_context_ptr ctx);

} // namespace syncmesh::actors
