#include "actors/connector.hpp"

#include <caf/actor.hpp>

#include "actors/memory_connector.hpp"
#include "actors/postgres_connector.hpp"

namespace syncmesh::actors {

caf::actor spawn_connector(caf::actor_system& sys, node_context_ptr ctx,
                           const remote_config& remote) {
  // The config loader refuses kinds without a connector, so every remote
  // that reaches here has one.
  if (remote.kind == "postgres")
    return spawn_postgres_connector(sys, std::move(ctx), remote);
  return spawn_memory_connector(sys, std::move(ctx), remote);
}

} // namespace syncmesh::actors
