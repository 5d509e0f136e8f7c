#pragma once

#include <caf/fwd.hpp>

#include "actors/node_context.hpp"

namespace syncmesh::actors {

/// The in-process connector: a named in-memory source whose tables come from
/// the config and which tests, scripts and `ctl remote` can mutate and take
/// down. It implements the whole connector contract (connector.hpp),
/// including a change stream with positions and reconnect backoff, so the
/// runtime is testable before PostgreSQL and peers arrive.
///
/// Beyond the contract it takes:
///   (exec_atom, changes_ref)  -> uint64 position   a write made at the remote
///   (outage_atom, bool on)    -> bool              simulate losing the remote
///                                                  (on) or its return (off)
caf::actor spawn_memory_connector(caf::actor_system& sys, node_context_ptr ctx,
                                  const remote_config& remote);

} // namespace syncmesh::actors
