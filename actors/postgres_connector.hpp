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
/// acknowledged as durable. A lost stream is reported to its view as
/// `down`; the view retries on its own timer.
///
/// Runs detached: libpq calls block this actor's own thread, never a CAF
/// worker.
caf::actor spawn_postgres_connector(caf::actor_system& sys, node_context_ptr ctx,
                                    const remote_config& remote);

/// "syncmesh_<node>_<view>", lowercased, other characters as '_', at most
/// 63 bytes: the slot and publication name of a followed view.
std::string replication_name(const std::string& node_id, const std::string& view);

} // namespace syncmesh::actors
