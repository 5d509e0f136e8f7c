// UUID version 7 keys for inserts that leave their key out.

#include <set>
#include <string>

#include <boost/test/unit_test.hpp>

#include "actors/client_key.hpp"

using syncmesh::actors::uuid_v7;

BOOST_AUTO_TEST_SUITE(client_key)

BOOST_AUTO_TEST_CASE(a_uuid_v7_carries_its_milliseconds_version_and_variant) {
  std::mt19937_64 rng(7);
  // 2026-12-02T00:00:00Z = 1796169600000 ms = 0x01a2340d0c00 (hex, 48 bits).
  auto u = uuid_v7(1796169600000, rng);
  BOOST_TEST(u.size() == 36u);
  BOOST_TEST(u.substr(0, 13) == "01a2340d-0c00", u);
  BOOST_TEST(u[14] == '7', u);                                       // version
  BOOST_TEST(std::string("89ab").find(u[19]) != std::string::npos, u);  // variant 10
  for (std::size_t i : {8u, 13u, 18u, 23u})
    BOOST_TEST(u[i] == '-', u);
}

BOOST_AUTO_TEST_CASE(uuids_of_one_millisecond_differ_and_later_ones_sort_after) {
  std::mt19937_64 rng(11);
  std::set<std::string> seen;
  for (int i = 0; i < 10000; ++i)
    seen.insert(uuid_v7(1000, rng));
  BOOST_TEST(seen.size() == 10000u);
  BOOST_TEST(uuid_v7(1001, rng) > *seen.rbegin());
}

BOOST_AUTO_TEST_SUITE_END()
