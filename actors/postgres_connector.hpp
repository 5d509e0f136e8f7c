#pragma once

#include <caf/fwd.hpp>

#include "actors/node_context.hpp"

namespace syncmesh::actors {

/// The connector of a `kind = "postgres"` remote (connector.hpp's contract).
///
/// A snapshot for a view that will follow the stream creates the view's
/// logical replication slot (pgoutput, exported snapshot) and publication,
/// runs the COPY inside that snapshot on a second connection, and holds the
/// replication connection until the view subscribes; the stream then starts
/// at the slot's consistent point, so snapshot and stream hand over without
/// gap or duplicate. Each followed view's stream is read by its own thread,
/// which turns every upstream transaction into one change set (position =
/// the commit's end LSN) and confirms to PostgreSQL only what the view has
/// acknowledged as durable; a realtime view's filters are applied to every
/// row on that thread. A lost stream is reported to its view as `down`
/// (or, when PostgreSQL invalidated the slot, as a slot report saying
/// wal_status lost); the view retries on its own timer.
///
/// Every `heartbeat_ms` the connector writes a heartbeat into the WAL while
/// a stream runs and sends each realtime view of the remote a report on its
/// slot (connector.hpp). A view of a query is copied with COPY (query) and
/// never followed. `forget` drops a view's slot and publication.
///
/// Runs detached: libpq calls block this actor's own thread, never a CAF
/// worker.
caf::actor spawn_postgres_connector(caf::actor_system& sys, node_context_ptr ctx,
                                    const remote_config& remote);

/// "syncmesh_<node>_<view>", lowercased, other characters as '_', at most
/// 63 bytes: the slot and publication name of a followed view.
std::string replication_name(const std::string& node_id, const std::string& view);

} // namespace syncmesh::actors
