#include <boost/test/unit_test.hpp>

#include <cmath>
#include <limits>
#include <random>
#include <string>

#include <msgpack.hpp>

#include "seed.hpp"
#include "store/crc32.hpp"
#include "store/record_codec.hpp"
#include "store/value.hpp"
#include "store/value_codec.hpp"

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

// --- mp_cursor: the hot records' reader ------------------------------------

namespace {

std::string random_text(std::mt19937_64& rng, bool long_ones) {
  // Lengths across fixstr, str8, str16 and str32 (and bin8/16/32).
  static const std::size_t lengths[] = {0, 1, 31, 32, 255, 256, 65535, 65536};
  std::size_t n = long_ones && rng() % 3 == 0 ? lengths[rng() % 8] : rng() % 40;
  std::string s(n, '\0');
  for (auto& c : s)
    c = static_cast<char>(rng());
  return s;
}

value random_value(std::mt19937_64& rng, bool long_texts) {
  static const std::int64_t edges[] = {0, 127, 128, 255, 256, 65535, 65536, 4294967295LL,
                                       4294967296LL, -1, -32, -33, -128, -129, -32768, -32769,
                                       std::numeric_limits<std::int64_t>::max(),
                                       std::numeric_limits<std::int64_t>::min()};
  switch (rng() % 7) {
    case 0: return value::null();
    case 1: return value::boolean(rng() % 2 == 0);
    case 2: return value::integer(rng() % 2 ? edges[rng() % 18] : static_cast<std::int64_t>(rng()));
    case 3: return value::real(std::ldexp(static_cast<double>(rng() % 1000000) - 500000.0,
                                          static_cast<int>(rng() % 40) - 20));
    case 4: return value::text(random_text(rng, long_texts));
    case 5: return value::bytes(random_text(rng, long_texts));
    default: return value::exact("numeric", std::to_string(rng() % 100000) + ".25");
  }
}

// A record as the store seals it: tag, CRC-32 of the payload, payload.
std::string sealed(char tag, const std::string& payload) {
  std::string out(1, tag);
  auto crc = crc32(payload.data(), payload.size());
  for (int i = 0; i < 4; ++i)
    out.push_back(static_cast<char>((crc >> (8 * i)) & 0xff));
  return out + payload;
}

} // namespace

BOOST_AUTO_TEST_CASE(the_cursor_reads_every_value_as_msgpack_cxx_does) {
  auto seed = syncmesh::test::test_seed();
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 300; ++round) {
    row r;
    // fixarray, array16 and (in three rounds) array32
    auto n = round < 3 ? 65536 + rng() % 1000 : rng() % 2 ? rng() % 16 : rng() % 400;
    for (std::size_t i = 0; i < n; ++i)
      r.push_back(random_value(rng, n < 16));
    msgpack::sbuffer buf;
    append_row(buf, r);
    mp_cursor in(std::string_view(buf.data(), buf.size()));
    auto fast = in.read_row("row");
    BOOST_TEST(in.remaining() == 0u);
    auto handle = msgpack::unpack(buf.data(), buf.size());
    auto slow = read_row(handle.get(), "row");
    BOOST_TEST_REQUIRE(slow.is_ok());
    BOOST_TEST_REQUIRE((fast == *slow), "round " << round << " of seed " << seed);
    BOOST_TEST_REQUIRE((fast == r), "round " << round << " of seed " << seed);
  }
  // Forms append_value never writes but other MessagePack writers do.
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_array(6);
  pk.pack_fix_int8(-5);
  pk.pack_fix_uint16(7);
  pk.pack_fix_int64(9);
  pk.pack_float(1.5f);
  pk.pack_fix_uint64(std::numeric_limits<std::uint64_t>::max());
  pk.pack_nil();
  mp_cursor in(std::string_view(buf.data(), buf.size()));
  BOOST_TEST(in.array("row") == 6u);
  BOOST_TEST((in.read_value() == value::integer(-5)));
  BOOST_TEST((in.read_value() == value::integer(7)));
  BOOST_TEST((in.read_value() == value::integer(9)));
  BOOST_TEST((in.read_value() == value::real(1.5)));
  BOOST_CHECK_THROW(in.read_value(), mp_cursor::error);  // beyond int64
}

BOOST_AUTO_TEST_CASE(damaged_change_and_outbox_records_are_corruption_never_a_crash) {
  auto seed = syncmesh::test::test_seed();
  std::mt19937_64 rng(seed);
  change_record c;
  c.seq = 77;
  c.origin = "node-a";
  c.table = "app.items";
  c.op = change_op::update;
  c.key = {value::integer(1)};
  c.old_row = row{value::integer(1), value::text("old"), value::null()};
  c.new_row = row{value::integer(1), value::text("new"), value::exact("numeric", "2.50")};
  outbox_entry e;
  e.seq = 9;
  e.mutation_id = "node-a:9";
  e.view = "pg.items";
  e.table = "app.items";
  e.key = {value::integer(1)};
  e.base_version = "base";
  e.new_row = row{value::integer(1), value::bytes("\x01\x02")};
  e.last_error = "none";
  auto change_bytes = encode_change(c);
  auto outbox_bytes = encode_outbox(e);
  BOOST_TEST_REQUIRE(decode_change(change_bytes, "C/77").is_ok());
  BOOST_TEST_REQUIRE((*decode_outbox(outbox_bytes, "O/9") == e));
  auto check = [&](const std::string& payload, bool change) {
    if (change) {
      auto r = decode_change(sealed('C', payload), "C/77");
      BOOST_TEST((r.is_ok() || r.error().code() == errc::corruption));
    } else {
      auto r = decode_outbox(sealed('O', payload), "O/9");
      BOOST_TEST((r.is_ok() || r.error().code() == errc::corruption));
    }
  };
  for (bool change : {true, false}) {
    auto payload = (change ? change_bytes : outbox_bytes).substr(record_header_size);
    // Every truncation, sealed with a matching checksum, is corruption.
    for (std::size_t n = 0; n < payload.size(); ++n) {
      auto cut = payload.substr(0, n);
      auto r = change ? decode_change(sealed('C', cut), "C/77").error().code()
                      : decode_outbox(sealed('O', cut), "O/9").error().code();
      BOOST_TEST((r == errc::corruption), "truncated to " << n);
    }
    BOOST_TEST((decode_change(sealed('C', payload + "\xc0"), "C/77").error().code()
                == errc::corruption || !change));
    // Random damage with a matching checksum: read or refused, nothing else.
    for (int round = 0; round < 2000; ++round) {
      auto bent = payload;
      for (int k = 0, flips = 1 + static_cast<int>(rng() % 4); k < flips; ++k)
        bent[rng() % bent.size()] = static_cast<char>(rng());
      check(bent, change);
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
