#pragma once

// Keys a node makes up itself: a sync view with `client_key = "uuid"` gives
// an insert that leaves its key out a fresh UUID, online or offline, with
// no lease from the remote. Version 7 (RFC 9562): 48 bits of Unix
// milliseconds, then 74 random bits — time-ordered, so a B-tree index upstream
// takes them near its right edge, and unique across nodes by chance alone
// (2^74 values per millisecond).

#include <cstdint>
#include <random>
#include <string>

namespace syncmesh::actors {

/// A UUID version 7 in the canonical text form (8-4-4-4-12 lower-case hex)
/// for Unix time `unix_ms`, its random bits drawn from `rng`.
std::string uuid_v7(std::int64_t unix_ms, std::mt19937_64& rng);

/// An engine seeded from the operating system's entropy: two nodes (or two
/// restarts of one) never draw the same bits.
std::mt19937_64 entropy_seeded_engine();

} // namespace syncmesh::actors
