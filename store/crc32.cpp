#include "store/crc32.hpp"

#include <array>
#include <cstring>

namespace syncmesh::store {

namespace {

using tables = std::array<std::array<std::uint32_t, 256>, 8>;

constexpr tables make_tables() {
  tables t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k)
      c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
    t[0][i] = c;
  }
  // t[k][i]: the CRC of byte i followed by k zero bytes.
  for (std::uint32_t i = 0; i < 256; ++i)
    for (std::size_t k = 1; k < 8; ++k)
      t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xff];
  return t;
}

constexpr tables table = make_tables();

} // namespace

std::uint32_t crc32(const char* data, std::size_t size) noexcept {
  const auto* p = reinterpret_cast<const unsigned char*>(data);
  std::uint32_t c = 0xffffffffu;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  while (size >= 8) {
    std::uint64_t w = 0;
    std::memcpy(&w, p, sizeof w);
    w ^= c;
    c = table[7][w & 0xff] ^ table[6][(w >> 8) & 0xff] ^ table[5][(w >> 16) & 0xff]
        ^ table[4][(w >> 24) & 0xff] ^ table[3][(w >> 32) & 0xff] ^ table[2][(w >> 40) & 0xff]
        ^ table[1][(w >> 48) & 0xff] ^ table[0][w >> 56];
    p += 8;
    size -= 8;
  }
#endif
  while (size-- > 0)
    c = table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
  return ~c;
}

} // namespace syncmesh::store
