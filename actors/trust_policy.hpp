#pragma once

#include <functional>
#include <string>
#include <vector>

#include <caf/fwd.hpp>

namespace syncmesh::actors {

/// Custom trust policies of peer links: actors that decide, change by
/// change, whether a node takes what a peer sends it, besides the
/// `trusted_origins` list. A [[links]] entry (or [peer], for every link)
/// names one with `trust_policy = "name"`; the node spawns one policy actor
/// per link that names it.
///
/// A policy actor answers
///   (trust_atom, trust_request) -> trust_verdicts
/// (actors/messages.hpp) with one verdict per change, in order: an empty
/// string takes the change, a sentence refuses it. A refused change is
/// nacked to the peer with that sentence (reason policy_refused) and counted
/// as `nacked` in `ctl links`. A policy that fails or does not answer within
/// [peer] heartbeat_ms decides nothing: the delta is dropped unacknowledged
/// and the peer sends it again.
///
/// A policy makes a node's own decision from what it sees: the changes and
/// which peer relayed them, never what the peer claims about its rights.
using trust_policy_factory = std::function<caf::actor(caf::actor_system& sys)>;

/// Registers `make` under `name`, for every node this process starts later.
/// A program that embeds syncmesh calls it before loading a config that
/// names the policy (loading refuses unknown names). Thread-safe. False,
/// and nothing changes, when `name` is empty or taken.
bool register_trust_policy(const std::string& name, trust_policy_factory make);

/// The registered names, sorted; the built-in ones among them:
///   refuse_deletes — takes inserts and updates, refuses removes and
///                    truncates (a peer may add and change rows here but
///                    never take them away).
std::vector<std::string> trust_policy_names();

/// A new actor of the policy registered as `name`; an invalid handle when no
/// policy has that name.
caf::actor spawn_trust_policy(caf::actor_system& sys, const std::string& name);

} // namespace syncmesh::actors
