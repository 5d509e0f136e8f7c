#pragma once

#include <cstdint>
#include <system_error>

namespace syncmesh::messaging {

/// Why messaging refused a frame from a peer. Plugs into std::error_code.
/// The numbers are also the codes 1-6 of the peer protocol's `error` message
/// (peer_protocol.hpp), so a refusal reads the same on both sides.
enum class errc : std::uint8_t {
  ok = 0,
  frame_too_large = 1,   // longer than the receiver's bound; not parsed at all
  malformed_frame = 2,   // not exactly one MessagePack value, truncated, or too deep
  version_mismatch = 3,  // another protocol version; fatal for the link
  unknown_message = 4,   // a message type this version does not know
  invalid_field = 5,     // a field missing, of the wrong type, out of range or inconsistent
  non_canonical = 6,     // well-formed, but not encoded as this protocol writes it
};

const std::error_category& messaging_category() noexcept;
std::error_code make_error_code(errc e) noexcept;

} // namespace syncmesh::messaging

namespace std {
template <>
struct is_error_code_enum<syncmesh::messaging::errc> : true_type {};
} // namespace std
