#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "store/status.hpp"
#include "store/value.hpp"

namespace syncmesh::store {

/// Order-preserving encoding of key tuples: for keys a and b of the same
/// shape, encode_key(a) < encode_key(b) bytewise exactly when a < b
/// componentwise (integers and reals numerically, text and bytes bytewise,
/// false < true; null sorts first). Every component is self-delimiting, so a
/// tuple is the concatenation of its parts and a prefix of a tuple encodes a
/// range. Exact values order by type name, then text.
void encode_key_part(std::string& out, const value& v);
std::string encode_key(const row& key);

/// Decodes a whole encoded tuple; corruption names what was wrong.
result<row> decode_key(std::string_view bytes);

/// Decodes one component from the front of `bytes` and advances past it.
result<value> decode_key_part(std::string_view& bytes);

/// Fixed-width big-endian unsigned integer, for sequence-ordered keys.
void encode_u64_be(std::string& out, std::uint64_t v);
std::uint64_t decode_u64_be(std::string_view bytes);  // REQUIRES: size() >= 8

/// Lowercase hex, for naming raw keys in error messages.
std::string to_hex(std::string_view bytes);

} // namespace syncmesh::store
