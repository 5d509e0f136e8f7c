#pragma once

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>

#include <boost/test/unit_test.hpp>

namespace syncmesh::test {

/// The seed of a randomized test: SYNCMESH_SEED when set (to replay a
/// failure), otherwise fresh from the clock. Printed so a failure can be
/// replayed.
inline std::uint64_t test_seed() {
  std::uint64_t seed;
  if (const char* s = std::getenv("SYNCMESH_SEED")) {
    char* end = nullptr;
    seed = std::strtoull(s, &end, 10);
    BOOST_TEST_REQUIRE((*s != '\0' && *end == '\0'),
                       "SYNCMESH_SEED='" << s << "' is not a number; give the seed a failed run printed");
  } else
    seed = static_cast<std::uint64_t>(
      std::chrono::steady_clock::now().time_since_epoch().count());
  BOOST_TEST_MESSAGE("seed " << seed << " (replay with SYNCMESH_SEED=" << seed << ")");
  return seed;
}

} // namespace syncmesh::test
