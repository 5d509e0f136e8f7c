#include <boost/test/unit_test.hpp>

#include <cmath>
#include <limits>
#include <string>

#include "store/record_codec.hpp"
#include "store/value.hpp"

using namespace syncmesh::store;

BOOST_AUTO_TEST_SUITE(value_codec)

// msgpack-cxx's pack_double writes an integral double as an integer; a stored
// real 2.0 then read back as the integer 2, a different value.
BOOST_AUTO_TEST_CASE(a_stored_real_reads_back_as_a_real_even_when_integral) {
  row r{value::real(2.0), value::real(-0.0), value::real(0.0), value::real(1e18),
        value::real(std::numeric_limits<double>::infinity()), value::real(0.5),
        value::integer(2), value::integer(std::numeric_limits<std::int64_t>::min())};
  auto back = decode_row(encode_row(r), "R/items/1");
  BOOST_TEST_REQUIRE(back.is_ok(), back.error().to_string());
  BOOST_TEST((*back == r));
  for (std::size_t i = 0; i < 6; ++i)
    BOOST_TEST((back->at(i).kind() == value_kind::real), "value " << i);
  BOOST_TEST(std::signbit(back->at(1).as_real()));
}

BOOST_AUTO_TEST_SUITE_END()
