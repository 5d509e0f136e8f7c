#pragma once

#include <cstdint>

#include <caf/fwd.hpp>

#include "actors/node_context.hpp"

namespace syncmesh::actors {

/// One view's sync job: its state machine idle -> running -> synced | failed
/// (a realtime or sync view that follows its change stream stays running),
/// persisted in the store, with coalesced runs and retries on its own timer.
///
///   (sync_atom)                 -> string (JSON run result)
///       Idempotent. While a run is in flight, every further sync joins one
///       follow-up run and is answered with that run's result, so each caller
///       sees a run that started after its call. A stopped view answers at
///       once with "skipped".
///   (stop_atom)                 -> string (JSON status)
///       Disables the job: ends its change stream, drops its retry timer; a
///       later sync does not restart it.
///   (forget_atom)               -> string (JSON status with "dropped")
///       Stops the job as stop does and has the connector drop what the
///       remote keeps for the view (PostgreSQL: its slot and publication);
///       "dropped" names each. The local copy stays; resume starts afresh.
///   (slot_atom, string json)    -> void: the connector's report on the
///       view's replication slot, shown in status as "slot"; wal_status
///       "lost" makes the view publish slot:invalidated and copy again
///   (resume_atom)               -> string (JSON run result)
///       Re-enables the job and runs it (catching up on what was missed).
///   (status_atom)               -> string (JSON status record, with the
///                                  running snapshot's progress)
///   (exec_atom, string json)    -> string (JSON) | error read_only
///       Local writes {"upsert": [row...], "delete": [key...]}, for `sync`
///       views: applied locally with outbox entries in one store batch and
///       pushed to the remote when it is reachable.
///   (connector_atom, actor)     -> void: the remote's connector restarted
///   (restart_atom, actor)       -> void: the store actor restarted
///
/// A run: push pending outbox entries (sync views), take a snapshot, replace
/// the local copy atomically, then (realtime and sync views) follow the
/// change stream from the snapshot's position. The snapshot arrives in pieces
/// (remote_config::snapshot_batch_rows rows each) that are staged into a new
/// generation of the local table, at most snapshot_batches_in_flight_max
/// store batches at a time; when the last is durable, one batch swaps the
/// copy in together with the job state and the cursor. Readers see the old
/// copy until then. Status carries `progress` {rows_done, rows_estimated}
/// while a snapshot is staged (null otherwise). A failed run retries after a capped exponential
/// backoff with jitter; a connector coming back up triggers a run at once.
caf::actor spawn_view(caf::actor_system& sys, node_context_ptr ctx, view_config cfg,
                      std::uint64_t relation_id, caf::actor connector, caf::actor store);

} // namespace syncmesh::actors
