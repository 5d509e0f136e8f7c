#pragma once

#include <cstdint>
#include <string>

#include <caf/fwd.hpp>
#include <caf/error.hpp>

namespace syncmesh::actors {

/// Errors actors reply with. Each carries a sentence (describe()).
enum class errc : std::uint8_t {
  remote_down = 1,   // the view's remote is unreachable; it retries on its own
  invalid_request,   // the caller asked for something malformed
  unknown_view,      // a selector or name matches no configured view
  store_failed,      // the local store refused or failed a write
  stopped,           // the view is stopped; resume it first
  read_only,         // the view takes no local writes
  escalated,         // a child crashed too often and was given up on
  slot_invalidated,  // the view's replication slot lost WAL it needed; take a new snapshot
  timed_out,         // what the caller waited for did not happen in the time it gave
};

/// The CAF error category of errc.
caf::atom_value error_category() noexcept;

caf::error make_error(errc code, std::string message);

/// The sentence of an error made by make_error (or CAF's rendering of
/// another error).
std::string describe(const caf::error& err);

void register_error_category(caf::actor_system_config& cfg);

} // namespace syncmesh::actors
