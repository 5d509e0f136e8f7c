#pragma once

#include <caf/fwd.hpp>

#include "actors/node_context.hpp"

namespace syncmesh::actors {

/// The node's peer links: owns the ZeroMQ transport ([peer], [[links]]) and
/// the replicator that keeps the [[tables]] in step with the peers
/// (connectors/peer/replicator.hpp). Runs detached: the replicator applies
/// to the store itself, and an apply may fsync.
///
/// The replicator is single-threaded and every call into it happens inside
/// this actor: the transport's I/O thread only sends the actor what it saw
/// (a link up or down, a frame), and the replicator's timers are delayed
/// messages to itself on the actor clock.
///
/// A link with a custom trust policy (actors/trust_policy.hpp) has its
/// policy actor, spawned and stopped with this one, asked about each delta
/// before the replicator takes it.
///
/// When the transport cannot start (a listen endpoint that cannot be bound,
/// unreadable keys) the actor stays up and answers every request with that
/// sentence, so the node can refuse to start with it.
///
///   (endpoint_atom) -> string: the bound listen endpoint ("" without one)
///   (exec_atom, string table, string ops) -> string: JSON {table,
///       upserted, deleted, origin, hlc}: a local write ({"upsert": [rows],
///       "delete": [keys]}) through the replicator, and the stamp of its
///       last change
///   (wait_atom, string origin, string hlc, uint64 timeout_ms) -> string:
///       JSON {origin, hlc, held, waited_ms} once the version vector holds
///       origin's changes up to hlc durably (a change is held once its
///       commit is written; changes of one origin arrive in stamp order, so
///       holding a stamp holds every change of that origin before it);
///       refused with timed_out and what is held after timeout_ms. Changes
///       this node does not take (tables, filters of its links) do not
///       move the vector, so wait for a stamp of a change it takes; a node
///       that takes a narrowed link counts what it withholds as held (see
///       the replicator), so the guarantee is for its full links.
///   (links_atom) -> string: JSON array, one record per configured link
///       (state, counters, last refusal)
caf::actor spawn_peer_actor(caf::actor_system& sys, node_context_ptr ctx);

/// How long a `wait` waits unless its caller says, and the most it may ask
/// for. The peer actor refuses a wait when its time runs out; each hop
/// outside it (supervisor, control actor, ctl) waits 5 s longer than the
/// one inside, so that refusal reaches the caller.
inline constexpr std::uint64_t wait_default_ms = 60'000;
inline constexpr std::uint64_t wait_max_ms = 3'600'000;

} // namespace syncmesh::actors
