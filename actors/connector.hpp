#pragma once

// The contract every connector actor implements, whatever its remote
// (in-process memory source now; PostgreSQL and peers later):
//
//   (snapshot_atom, table, string view, bool follow) -> snapshot_ref | error
//       the table's rows and the change-stream position they are current at;
//       `follow` says the view will subscribe from that position next (a
//       PostgreSQL connector then takes the snapshot from a new replication
//       slot named for `view`)
//       A large snapshot comes in pieces (`more` set): the view then asks
//   (snapshot_next_atom, string view)     -> snapshot_ref | error
//       for the next piece, one at a time, so at most a piece or two are in
//       memory; the last piece has `more` unset, and only then does a
//       following view's subscribe find its slot ready
//   (snapshot_cancel_atom, string view)   -> void
//       abandons the view's unfinished snapshot (a failed run)
//   (subscribe_atom, table, string view, actor, from, stream_gate_ref)
//                                          -> uint64 position | error
//       `actor` receives (changes_atom, changes_ref) for every change after
//       position `from`, in order, until unsubscribed or the remote goes down;
//       without a snapshot just before, this resumes the view's stream where
//       it left off (an error if the remote cannot: take a snapshot then).
//       With a gate, a connector may instead apply each change set to the
//       store itself while the gate is open, then send it marked `applied`
//       (no changes, only its position); the memory connector never does
//   (ack_atom, table, uint64 position)     -> void
//       everything up to `position` is durable locally; the connector may
//       confirm it upstream (PostgreSQL: the slot's confirmed flush LSN)
//   (unsubscribe_atom, table, actor)       -> void
//   (push_atom, table, changes_ref, actor) -> push_report_ref | error
//       applies local writes at the remote, in order, each once (by mutation
//       id) and against its base version; the report says per write whether
//       it was applied, failed or conflicted. The change stream does not
//       send them back to `actor` as changes (PostgreSQL: as echoes only).
//       An error means nothing is known: the writes are pushed again.
//       A change set marked after_previous was sent before the answer to
//       the view's push ahead of it: it is pushed only if that push went
//       through clean (push_chain in messages.hpp), refused otherwise.
//   (forget_atom, table, string view)      -> string (JSON)
//       ends the view's stream and drops what the remote keeps for it (a
//       PostgreSQL slot and publication); the JSON lists what was dropped
//   (lease_atom, string view, uint64 n)    -> string (JSON) | error
//       PostgreSQL: {"column", "sequence", "ids"}: the view's key column
//       when its table has a one-column key fed by a sequence (serial or
//       identity), and n fresh values of that sequence, in nextval order;
//       column and sequence are null (and ids empty) when the key has none
//   (health_atom)                          -> (bool up, string reason)
//   (health_atom, actor watcher)           -> (bool up, string reason)
//       and from then on `watcher` receives (up_atom, remote) and
//       (down_atom, remote, reason) on every change
//
// A connector may send a view (slot_atom, string JSON): the health of the
// view's replication slot (wal_status, retained bytes); "wal_status" =
// "lost" means the slot was invalidated and the view must snapshot again.
//
// A connector that loses its remote reports down and reconnects on its own
// with capped exponential backoff (delayed messages, never sleeps).

#include <string>

#include <caf/fwd.hpp>

#include "actors/node_context.hpp"

namespace syncmesh::actors {

/// Spawns the connector for `remote` (by kind). Unknown kinds are refused
/// when the config is loaded, so this does not fail.
caf::actor spawn_connector(caf::actor_system& sys, node_context_ptr ctx,
                           const remote_config& remote);

} // namespace syncmesh::actors
