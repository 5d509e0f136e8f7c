#pragma once

#include <cstdint>
#include <functional>

#include <caf/fwd.hpp>

#include "actors/node_context.hpp"
#include "messaging/control_codec.hpp"

namespace syncmesh::actors {

/// Sends a reply to the client that made request `token`. Thread-safe.
using reply_fn = std::function<void(std::uint64_t token, const messaging::control_reply&)>;

/// Serves the control protocol: takes (control_atom, uint64 token, string
/// verb, string args_json) from the control server's thread and answers each
/// through `reply`, exactly once, with a result or a sentence.
///
/// Verbs: hello, status, sync, stop, resume (args: {"selector": ...}),
/// query ({"view", "limit"}), exec ({"view", "upsert", "delete"} or
/// {"remote", "table", "upsert", "delete"}), remote ({"remote", "outage"}),
/// topology, children.
caf::actor spawn_control_actor(caf::actor_system& sys, node_context_ptr ctx,
                               caf::actor supervisor, reply_fn reply,
                               nlohmann::json hello_extra = nlohmann::json::object());

} // namespace syncmesh::actors
