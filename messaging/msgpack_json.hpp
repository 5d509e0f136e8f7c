#pragma once

#include <cstddef>
#include <string_view>

#include <nlohmann/json.hpp>

#include "store/status.hpp"

namespace syncmesh::messaging {

/// Nesting deeper than this is refused before a document is built: the
/// MessagePack reader recurses once per level, so an unbounded depth would let
/// one small frame exhaust the stack of the thread that decodes it.
inline constexpr std::size_t msgpack_depth_max = 64;

/// Parses `bytes` as exactly one MessagePack value into a JSON document.
/// `what` names the thing being decoded in error sentences ("control request").
/// Errors (invalid_argument): the bytes are empty, truncated, not MessagePack,
/// followed by trailing bytes, nested deeper than msgpack_depth_max, or hold a
/// map key that is not a string. Never throws.
store::result<nlohmann::json> parse_msgpack_json(std::string_view bytes, std::string_view what);

/// The MessagePack encoding of `doc` as a byte string. Every JSON document
/// has one, so this fails only by running out of memory.
std::string to_msgpack_bytes(const nlohmann::json& doc);

} // namespace syncmesh::messaging
