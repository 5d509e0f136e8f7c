#include "actors/errors.hpp"

#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>
#include <caf/message.hpp>

namespace syncmesh::actors {

caf::atom_value error_category() noexcept { return caf::atom("syncmesh"); }

caf::error make_error(errc code, std::string message) {
  return caf::error{static_cast<std::uint8_t>(code), error_category(),
                    caf::make_message(std::move(message))};
}

std::string describe(const caf::error& err) {
  if (!err)
    return "ok";
  if (err.category() == error_category() && err.context().match_elements<std::string>())
    return err.context().get_as<std::string>(0);
  return caf::to_string(err);
}

void register_error_category(caf::actor_system_config& cfg) {
  cfg.add_error_category(error_category(), [](std::uint8_t, caf::atom_value,
                                               const caf::message& ctx) -> std::string {
    if (ctx.match_elements<std::string>())
      return ctx.get_as<std::string>(0);
    return "syncmesh error";
  });
}

} // namespace syncmesh::actors
