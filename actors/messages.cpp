#include "actors/messages.hpp"

#include <caf/actor_system_config.hpp>

#include "actors/errors.hpp"

namespace syncmesh::actors {

void register_message_types(caf::actor_system_config& cfg) {
  cfg.add_message_types<caf::id_block::syncmesh>();
  register_error_category(cfg);
}

} // namespace syncmesh::actors
