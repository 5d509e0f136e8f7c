#include <cmath>
#include <set>

#include <boost/test/unit_test.hpp>

#include "actors/backoff.hpp"

using namespace syncmesh::actors;

BOOST_AUTO_TEST_SUITE(backoff_schedule)

BOOST_AUTO_TEST_CASE(delays_double_from_the_initial_delay_up_to_the_cap) {
  backoff_config cfg{500, 4'000, 0.0};
  backoff b(cfg, 1);
  std::vector<std::int64_t> got;
  for (std::uint32_t attempt = 1; attempt <= 7; ++attempt)
    got.push_back(b.delay(attempt).count());
  BOOST_TEST(got == (std::vector<std::int64_t>{500, 1000, 2000, 4000, 4000, 4000, 4000}),
             boost::test_tools::per_element());
  BOOST_TEST(backoff::base_delay_ms(cfg, 1'000'000) == 4'000u);
}

BOOST_AUTO_TEST_CASE(jitter_stays_within_its_bounds_and_under_the_cap) {
  backoff_config cfg{1'000, 8'000, 0.25};
  for (std::uint64_t seed = 0; seed < 200; ++seed) {
    backoff b(cfg, seed);
    for (std::uint32_t attempt = 1; attempt <= 6; ++attempt) {
      auto base = static_cast<double>(backoff::base_delay_ms(cfg, attempt));
      auto d = static_cast<double>(b.delay(attempt).count());
      BOOST_TEST(d >= std::floor(base * 0.75));
      BOOST_TEST(d <= std::min(std::ceil(base * 1.25), 8'000.0));
    }
  }
}

BOOST_AUTO_TEST_CASE(jitter_actually_spreads_the_delays) {
  backoff_config cfg{1'000, 8'000, 0.25};
  std::set<std::int64_t> seen;
  for (std::uint64_t seed = 0; seed < 50; ++seed)
    seen.insert(backoff(cfg, seed).delay(1).count());
  BOOST_TEST(seen.size() > 20u);
}

BOOST_AUTO_TEST_CASE(the_same_seed_replays_the_same_delays) {
  backoff_config cfg{100, 10'000, 0.5};
  backoff a(cfg, 42), b(cfg, 42);
  for (std::uint32_t attempt = 1; attempt <= 10; ++attempt)
    BOOST_TEST(a.delay(attempt).count() == b.delay(attempt).count());
}

BOOST_AUTO_TEST_SUITE_END()
