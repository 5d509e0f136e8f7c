#pragma once

#include <caf/fwd.hpp>

#include "actors/node_context.hpp"

namespace syncmesh::actors {

/// The root of a node's actors. Spawns the store actor, one connector per
/// remote, the peer actor when the config has [[tables]] (peer_actor.hpp)
/// and one view actor per view; monitors them; restarts a crashed
/// child after a capped exponential backoff, and gives up on a child that
/// crashed more than restart_intensity_max times within restart_window_ms:
/// the child is then marked failed with the reason (in status, in the
/// persisted job state, in the log and as an `error` event) and the node
/// stays up.
///
/// It also fans control requests out to the views a selector names:
///   (sync_atom | stop_atom | resume_atom | status_atom, string selector)
///       -> string: JSON array, one record per matching view, in config
///          order | error unknown_view naming what matched nothing
///   (exec_atom, string view, string ops)              -> string | error
///       (a peer table's name in place of the view: a write through peer
///       sync, answered by the peer actor)
///   (links_atom)     -> string: JSON array of the peer links ("[]" without
///                       peer tables)
///   (wait_atom, string origin, string hlc, uint64 timeout_ms) -> string | error
///       answered by the peer actor once this node holds origin's changes
///       up to that stamp, refused (timed_out) after timeout_ms
///   (exec_atom, string remote, string table, string ops) -> string | error
///       a write made at a memory remote (as if by another client)
///   (outage_atom, string remote, bool on)             -> bool up
///   (stats_atom, string remote)                       -> string: the
///       connector's counters as JSON (memory: mutations applied, skipped
///       retransmissions, mutations applied twice)
///   (children_atom)  -> string: JSON of every child, its kind, state, restarts
///   (children_atom, string name) -> actor: the child's current handle, or
///                       an invalid one while it is down (diagnostics, tests)
///   (shutdown_atom)  -> bool: views stop, then connectors, then the store
///                       actor; answered when all are down
caf::actor spawn_supervisor(caf::actor_system& sys, node_context_ptr ctx);

} // namespace syncmesh::actors
