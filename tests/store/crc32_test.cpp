// The row envelope's checksum: a faster CRC-32 that must equal zlib's, or
// every record written before it would read back as damaged.

#include <random>
#include <string>

#include <boost/test/unit_test.hpp>
#include <zlib.h>

#include "seed.hpp"
#include "store/crc32.hpp"

BOOST_AUTO_TEST_SUITE(store_crc32)

BOOST_AUTO_TEST_CASE(the_checksum_equals_zlibs_for_every_length_and_alignment) {
  std::mt19937_64 rng(syncmesh::test::test_seed());
  std::string buffer(4096 + 16, '\0');
  for (auto& c : buffer)
    c = static_cast<char>(rng() & 0xff);
  BOOST_TEST(syncmesh::store::crc32(nullptr, 0) == 0u);
  BOOST_TEST(syncmesh::store::crc32("123456789", 9) == 0xcbf43926u);  // the CRC-32 check value
  for (std::size_t offset = 0; offset < 8; ++offset)
    for (std::size_t size = 0; size <= 300; ++size) {
      const char* p = buffer.data() + offset;
      auto want = static_cast<std::uint32_t>(
        ::crc32(0L, reinterpret_cast<const Bytef*>(p), static_cast<uInt>(size)));
      BOOST_TEST(syncmesh::store::crc32(p, size) == want, "offset " << offset << " size " << size);
    }
  auto whole = static_cast<std::uint32_t>(
    ::crc32(0L, reinterpret_cast<const Bytef*>(buffer.data()), static_cast<uInt>(buffer.size())));
  BOOST_TEST(syncmesh::store::crc32(buffer.data(), buffer.size()) == whole);
}

BOOST_AUTO_TEST_SUITE_END()
