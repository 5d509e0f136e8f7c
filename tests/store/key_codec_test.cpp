#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include <boost/test/unit_test.hpp>

#include "store/key_codec.hpp"
#include "seed.hpp"

using namespace syncmesh::store;

namespace {

// Componentwise order the encoding must follow (same-shaped keys).
bool less_than(const value& a, const value& b) {
  if (a.kind() != b.kind())
    return a.kind() < b.kind();
  switch (a.kind()) {
    case value_kind::null: return false;
    case value_kind::boolean: return a.as_bool() < b.as_bool();
    case value_kind::integer: return a.as_int() < b.as_int();
    case value_kind::real: return a.as_real() < b.as_real();
    case value_kind::text: return a.as_text() < b.as_text();
    case value_kind::bytes: return a.as_bytes() < b.as_bytes();
    case value_kind::exact:
      return std::tie(a.as_exact().type_name, a.as_exact().text)
             < std::tie(b.as_exact().type_name, b.as_exact().text);
  }
  return false;
}

bool less_than(const row& a, const row& b) {
  return std::lexicographical_compare(a.begin(), a.end(), b.begin(), b.end(),
                                      [](const value& x, const value& y) { return less_than(x, y); });
}

std::string random_string(std::mt19937_64& rng) {
  // Small alphabet with NUL and 0xff so escapes and prefixes collide often.
  static const char alphabet[] = {'\0', '\x01', 'a', 'b', '\xfe', '\xff'};
  std::string s(rng() % 5, 'a');
  for (auto& c : s)
    c = alphabet[rng() % sizeof alphabet];
  return s;
}

} // namespace

BOOST_AUTO_TEST_SUITE(key_codec)

BOOST_AUTO_TEST_CASE(integers_sort_numerically_including_negatives_and_extremes) {
  std::vector<std::int64_t> xs = {std::numeric_limits<std::int64_t>::min(), -1'000'000, -1, 0, 1,
                                  255, 256, 1'000'000, std::numeric_limits<std::int64_t>::max()};
  // Extra parentheses: Boost.Test's own string comparison treats char as
  // signed, the store compares bytes unsigned as LevelDB does.
  for (size_t i = 0; i + 1 < xs.size(); ++i)
    BOOST_TEST((encode_key({value::integer(xs[i])}) < encode_key({value::integer(xs[i + 1])})));
}

BOOST_AUTO_TEST_CASE(reals_sort_numerically_across_sign_and_infinity) {
  std::vector<double> xs = {-std::numeric_limits<double>::infinity(), -1e300, -1.5, -0.0, 0.5, 1.0,
                            1e300, std::numeric_limits<double>::infinity()};
  for (size_t i = 0; i + 1 < xs.size(); ++i)
    BOOST_TEST((encode_key({value::real(xs[i])}) < encode_key({value::real(xs[i + 1])})));
}

BOOST_AUTO_TEST_CASE(text_with_embedded_nul_keeps_prefix_order_in_composite_keys) {
  auto k = [](std::string s, std::int64_t i) {
    return encode_key({value::text(std::move(s)), value::integer(i)});
  };
  BOOST_TEST((k("a", 99) < k(std::string("a\0", 2), 0)));
  BOOST_TEST((k(std::string("a\0", 2), 99) < k("ab", 0)));
  BOOST_TEST((k("", 5) < k("a", 0)));
}

BOOST_AUTO_TEST_CASE(random_keys_sort_like_their_values_and_round_trip) {
  std::mt19937_64 rng(syncmesh::test::test_seed());
  std::vector<row> keys;
  for (int i = 0; i < 2000; ++i) {
    row k;
    k.push_back(value::text(random_string(rng)));
    k.push_back(value::integer(static_cast<std::int64_t>(rng() % 7) - 3));
    k.push_back(value::bytes(random_string(rng)));
    k.push_back(value::real(std::ldexp(static_cast<double>(rng() % 9) - 4, 3)));
    k.push_back(rng() % 2 ? value::boolean(rng() % 2) : value::null());
    keys.push_back(std::move(k));
  }
  for (size_t i = 0; i + 1 < keys.size(); ++i) {
    const auto& a = keys[i];
    const auto& b = keys[i + 1];
    BOOST_TEST((encode_key(a) < encode_key(b)) == less_than(a, b),
               to_display(a) << " vs " << to_display(b));
    auto back = decode_key(encode_key(a));
    BOOST_REQUIRE(back.is_ok());
    BOOST_TEST(to_display(*back) == to_display(a));
  }
}

BOOST_AUTO_TEST_CASE(exact_values_round_trip_with_their_type_name) {
  row k = {value::exact("numeric", "12.3400"), value::exact("timestamptz", "2026-01-01 00:00:00+00")};
  auto back = decode_key(encode_key(k));
  BOOST_REQUIRE(back.is_ok());
  BOOST_TEST((*back == k));
}

BOOST_AUTO_TEST_CASE(truncated_or_unknown_key_bytes_are_corruption_not_a_crash) {
  auto full = encode_key({value::text("hello"), value::integer(42)});
  for (size_t n = 1; n < full.size(); ++n) {
    auto r = decode_key(std::string_view(full).substr(0, n));
    if (!r)
      BOOST_TEST((r.error().code() == errc::corruption));
  }
  auto r = decode_key(std::string("\x7f", 1));
  BOOST_REQUIRE(!r.is_ok());
  BOOST_TEST(r.error().message().find("unknown type tag") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()
