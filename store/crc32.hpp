#pragma once

#include <cstddef>
#include <cstdint>

namespace syncmesh::store {

/// CRC-32 as zlib's crc32() computes it (ISO-HDLC: reflected polynomial
/// 0xEDB88320, initial and final value 0xFFFFFFFF), so the checksums already
/// on disk stay valid. Slicing by eight bytes: for the ~100-byte payloads of
/// stored rows it takes a third of zlib's time, which a snapshot pays once
/// per row. Thread-safe (the tables are built at compile time).
std::uint32_t crc32(const char* data, std::size_t size) noexcept;

} // namespace syncmesh::store
