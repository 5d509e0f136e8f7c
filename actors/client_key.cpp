#include "actors/client_key.hpp"

#include <array>

namespace syncmesh::actors {

std::string uuid_v7(std::int64_t unix_ms, std::mt19937_64& rng) {
  std::array<unsigned char, 16> b{};
  auto ms = static_cast<std::uint64_t>(unix_ms);
  for (int i = 0; i < 6; ++i)
    b[static_cast<std::size_t>(i)] = static_cast<unsigned char>(ms >> (40 - 8 * i));
  auto r1 = rng(), r2 = rng();
  for (std::size_t i = 6; i < 16; ++i) {
    auto& r = i < 11 ? r1 : r2;
    b[i] = static_cast<unsigned char>(r);
    r >>= 8;
  }
  b[6] = static_cast<unsigned char>(0x70 | (b[6] & 0x0f));  // version 7
  b[8] = static_cast<unsigned char>(0x80 | (b[8] & 0x3f));  // variant 10
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (std::size_t i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10)
      out.push_back('-');
    out.push_back(digits[b[i] >> 4]);
    out.push_back(digits[b[i] & 15]);
  }
  return out;
}

std::mt19937_64 entropy_seeded_engine() {
  std::random_device rd;
  std::seed_seq seq{rd(), rd(), rd(), rd(), rd(), rd(), rd(), rd()};
  return std::mt19937_64(seq);
}

} // namespace syncmesh::actors
