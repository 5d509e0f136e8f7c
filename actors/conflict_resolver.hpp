#pragma once

#include <functional>
#include <string>
#include <vector>

#include <caf/fwd.hpp>

namespace syncmesh::actors {

/// Custom conflict resolvers of sync views: actors that decide how a write
/// that met a changed row ends, when `conflict = "custom"` and
/// `conflict_resolver = "name"` on the view. The connector asks the view's
/// resolver actor
///   (resolve_atom, conflict_request) -> conflict_decision
/// (actors/messages.hpp) inside the push's transaction and writes what it
/// decides: "local" forces the write, "remote" keeps the upstream row,
/// "merged" writes the row it gives (or deletes, for null). The conflict is
/// recorded either way, with both versions and the winner, as for the
/// built-in policies. A resolver that fails, answers nonsense or does not
/// answer within 5 s leaves the upstream row standing, and the record says
/// why.
using conflict_resolver_factory = std::function<caf::actor(caf::actor_system& sys)>;

/// Registers `make` under `name`, for every node this process starts later
/// (before the config that names it is loaded: loading refuses unknown
/// names). Thread-safe. False, and nothing changes, when `name` is empty or
/// taken.
bool register_conflict_resolver(const std::string& name, conflict_resolver_factory make);

/// The registered names, sorted; the built-in ones among them:
///   merge_nonnull — a field-level merge: each column takes the write's
///                   value where it is not null, the upstream row's
///                   otherwise; a delete on either side wins.
std::vector<std::string> conflict_resolver_names();

/// A new actor of the resolver registered as `name`; an invalid handle when
/// none has that name.
caf::actor spawn_conflict_resolver(caf::actor_system& sys, const std::string& name);

} // namespace syncmesh::actors
