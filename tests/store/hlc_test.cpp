#include <boost/test/unit_test.hpp>

#include "store/hlc.hpp"

using namespace syncmesh::store;

BOOST_AUTO_TEST_SUITE(hlc)

BOOST_AUTO_TEST_CASE(readings_strictly_increase_even_when_physical_time_stands_still) {
  manual_physical_clock pt(1000);
  hybrid_clock c(pt, 500);
  auto a = c.now();
  auto b = c.now();
  auto d = c.now();
  BOOST_TEST(a.wall_ms() == 1000u);
  BOOST_TEST((a < b && b < d));
  BOOST_TEST(d.logical() == 2u);
}

BOOST_AUTO_TEST_CASE(a_printed_reading_parses_back_and_nothing_else_does) {
  const hlc_timestamp t(1'700'000'000'123ULL, 4);
  BOOST_TEST(t.to_string() == "1700000000123.4");
  auto back = hlc_timestamp::parse(t.to_string());
  BOOST_TEST_REQUIRE(back.has_value());
  BOOST_TEST(back->packed() == t.packed());
  const hlc_timestamp top((1ULL << 48) - 1, hlc_timestamp::logical_max);
  auto top_back = hlc_timestamp::parse(top.to_string());
  BOOST_TEST_REQUIRE(top_back.has_value());
  BOOST_TEST(top_back->packed() == top.packed());
  for (const char* bad : {"", ".", "17", "17.", ".4", "17.4.1", "17.x", "-1.0", "17 .4", "17.65536",
                          "281474976710656.0", "99999999999999999999999.0"})
    BOOST_TEST(!hlc_timestamp::parse(bad).has_value(), "'" << bad << "' parsed");
}

BOOST_AUTO_TEST_CASE(readings_do_not_go_backwards_when_physical_time_does) {
  manual_physical_clock pt(5000);
  hybrid_clock c(pt, 500);
  auto a = c.now();
  pt.set(4000);
  auto b = c.now();
  BOOST_TEST((a < b));
  BOOST_TEST(b.wall_ms() == 5000u);
}

BOOST_AUTO_TEST_CASE(a_floor_from_before_a_restart_keeps_readings_above_it) {
  manual_physical_clock pt(1000);
  hlc_timestamp floor{9000, 7};
  hybrid_clock c(pt, 500, floor);
  BOOST_TEST((floor < c.now()));
}

BOOST_AUTO_TEST_CASE(a_remote_stamp_within_the_skew_bound_moves_the_clock_past_it) {
  manual_physical_clock pt(1000);
  hybrid_clock c(pt, 500);
  hlc_timestamp remote{1400, 3};
  auto merged = c.observe(remote);
  BOOST_REQUIRE(merged.is_ok());
  BOOST_TEST((remote < *merged));
  BOOST_TEST((remote < c.now()));
}

BOOST_AUTO_TEST_CASE(a_remote_stamp_past_the_skew_bound_is_refused_and_the_clock_is_unchanged) {
  manual_physical_clock pt(1000);
  hybrid_clock c(pt, 500);
  auto before = c.now();
  auto r = c.observe(hlc_timestamp{1501, 0});
  BOOST_REQUIRE(!r.is_ok());
  BOOST_TEST((r.error().code() == errc::clock_skew));
  BOOST_TEST(r.error().message().find("max_clock_skew_ms") != std::string::npos);
  BOOST_TEST((c.last() == before));
}

BOOST_AUTO_TEST_CASE(logical_counter_overflow_carries_into_the_wall_part) {
  manual_physical_clock pt(1000);
  hybrid_clock c(pt, 500, hlc_timestamp{1000, hlc_timestamp::logical_max});
  auto t = c.now();
  BOOST_TEST(t.wall_ms() == 1001u);
  BOOST_TEST(t.logical() == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
