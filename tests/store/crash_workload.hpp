#pragma once

// The batches the crash test's writer applies, shared by the writer
// (crash_writer.cpp) and the checker (crash_test.cpp) so both agree on what
// batch b holds.

#include <cstdint>
#include <string>

namespace syncmesh::store::crash {

/// Rows in batch b: 1 to 23.
inline std::uint64_t rows_in_batch(std::uint64_t b) { return 1 + (b * 7919 % 23); }

/// The payload of row j of batch b. One row in seven carries a few hundred
/// bytes; the others are short.
inline std::string payload_of(std::uint64_t b, std::uint64_t j) {
  const std::size_t size = (b + j) % 7 == 0 ? 200 + (b * 13 + j * 29) % 200 : 8 + (b * 5 + j) % 24;
  std::string out = std::to_string(b) + "/" + std::to_string(j) + ":";
  for (std::size_t n = 0; out.size() < size; ++n)
    out.push_back(static_cast<char>('a' + (b * 31 + j * 17 + n) % 26));
  return out;
}

} // namespace syncmesh::store::crash
