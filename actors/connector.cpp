#include "actors/connector.hpp"

#include <caf/actor.hpp>

#include "actors/memory_connector.hpp"

namespace syncmesh::actors {

caf::actor spawn_connector(caf::actor_system& sys, node_context_ptr ctx,
                           const remote_config& remote) {
  // The config loader refuses kinds without a connector, so every remote
  // that reaches here has one. Only "memory" exists so far.
  return spawn_memory_connector(sys, std::move(ctx), remote);
}

} // namespace syncmesh::actors
