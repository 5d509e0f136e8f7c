#pragma once

// Seeded random peer protocol messages, every one valid under the default
// limits: for round-trip and mutation tests, and for the fuzz corpus
// (fuzz/make_peer_corpus.cpp).

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "messaging/peer_protocol.hpp"

namespace syncmesh::test {

class peer_message_gen {
public:
  explicit peer_message_gen(std::uint64_t seed) : rng_(seed) {}

  messaging::peer::message any() { return of_type(static_cast<int>(pick(1, 14))); }

  /// A message of type `type` (1..14, messaging::peer::message_type).
  messaging::peer::message of_type(int type) {
    using namespace messaging::peer;
    switch (type) {
      case 1: return hello{node_id(), mode(), tables(), number_nonzero()};
      case 2: return hello_ack{node_id(), mode(), tables(), number_nonzero()};
      case 3: {
        auto kind = static_cast<sync_kind>(pick(0, 2));
        return sync_request{kind, kind == sync_kind::from_watermark ? marks() : watermark{}};
      }
      case 4: return sync_start{number()};
      case 5: return sync_batch{number_nonzero(), changes()};
      case 6: return sync_complete{marks()};
      case 7: return delta{number_nonzero(), changes()};
      case 8: return delta_ack{number_nonzero(), marks()};
      case 9:
        return delta_nack{number_nonzero(), static_cast<nack_reason>(pick(1, nack_reason_max)),
                          sentence()};
      case 10: return pause{};
      case 11: return resume{pick(1, limits{}.credits_max), pick(1, std::uint64_t{1} << 40)};
      case 12: return ping{number()};
      case 13: return pong{number()};
      default:
        return error{static_cast<error_code>(pick(1, error_code_max)), sentence(),
                     pick(0, 1) == 1};
    }
  }

  std::uint64_t pick(std::uint64_t lo, std::uint64_t hi) {
    return std::uniform_int_distribution<std::uint64_t>(lo, hi)(rng_);
  }

  std::mt19937_64& rng() { return rng_; }

private:
  // Integers of every width, so every MessagePack integer form appears.
  std::uint64_t number() {
    switch (pick(0, 4)) {
      case 0: return pick(0, 127);
      case 1: return pick(128, 0xffff);
      case 2: return pick(0x10000, 0xffffffffULL);
      case 3: return pick(0x100000000ULL, std::numeric_limits<std::uint64_t>::max());
      default: return pick(0, 3);
    }
  }

  std::uint64_t number_nonzero() {
    auto n = number();
    return n == 0 ? 1 : n;
  }

  std::string word(std::size_t lo, std::size_t hi) {
    static const std::vector<std::string> pieces = {"a", "b", "z", "0", "9", "-", "_", ".",
                                                    " ", "\xc3\xa9", "\xc3\x9f", "\xe6\x97\xa5",
                                                    "\xf0\x9f\x99\x82"};
    std::string s;
    auto n = pick(lo, hi);
    for (std::size_t i = 0; i < n; ++i)
      s += pieces[pick(0, pieces.size() - 1)];
    return s;
  }

  std::string node_id() { return "n" + word(0, 12); }
  std::string table() { return "t" + word(0, pick(0, 3) == 0 ? 60 : 8); }
  std::string sentence() { return word(0, pick(0, 5) == 0 ? 300 : 20); }

  messaging::peer::link_mode mode() {
    return static_cast<messaging::peer::link_mode>(pick(1, 3));
  }

  std::vector<std::string> tables() {
    std::vector<std::string> out;
    auto n = pick(0, 6);
    for (std::size_t i = 0; i < n; ++i) {
      auto t = table() + std::to_string(i);  // distinct
      out.push_back(t);
    }
    return out;
  }

  messaging::peer::watermark marks() {
    messaging::peer::watermark w;
    auto n = pick(0, 6);
    for (std::size_t i = 0; i < n; ++i)
      w[node_id()] = store::hlc_timestamp::from_packed(number_nonzero());
    return w;
  }

  store::value value(bool nullable) {
    switch (pick(nullable ? 0 : 1, 6)) {
      case 0: return store::value::null();
      case 1: return store::value::boolean(pick(0, 1) == 1);
      case 2: {
        if (pick(0, 20) == 0)
          return store::value::integer(std::numeric_limits<std::int64_t>::min());
        auto n = static_cast<std::int64_t>(number() >> 1);
        return store::value::integer(pick(0, 1) ? n : -n);
      }
      case 3: {
        // Integral reals (1.0, -0.0) are the ones a careless encoder turns
        // into integers; infinities and tiny values test the float64 form.
        static const double specials[] = {0.0, -0.0, 1.0, -2.0, 1e300, 1.5, 1e-310,
                                          std::numeric_limits<double>::infinity()};
        if (pick(0, 1))
          return store::value::real(specials[pick(0, 7)]);
        return store::value::real(
          std::uniform_real_distribution<double>(-1e9, 1e9)(rng_));
      }
      case 4: return store::value::text(word(0, pick(0, 4) == 0 ? 80 : 6));
      case 5: {
        std::string bytes;
        auto n = pick(0, pick(0, 4) == 0 ? 300 : 8);
        for (std::size_t i = 0; i < n; ++i)
          bytes.push_back(static_cast<char>(pick(0, 255)));
        return store::value::bytes(bytes);
      }
      default: return store::value::exact(pick(0, 1) ? "numeric" : "timestamptz", word(1, 8));
    }
  }

  store::row row(std::size_t lo, std::size_t hi, bool nullable) {
    store::row r;
    auto n = pick(lo, hi);
    for (std::size_t i = 0; i < n; ++i)
      r.push_back(value(nullable));
    return r;
  }

  messaging::peer::change one_change() {
    messaging::peer::change c;
    c.hlc = store::hlc_timestamp::from_packed(number_nonzero());
    c.origin = node_id();
    c.table = table();
    c.op = static_cast<store::change_op>(pick(1, 4));
    if (c.op != store::change_op::truncate)
      c.key = row(1, 3, false);
    if (c.op == store::change_op::insert || c.op == store::change_op::update) {
      c.new_row = row(1, 8, true);
      if (pick(0, 1) == 1)  // a write that set some of the columns
        for (std::uint32_t i = 0; i < c.new_row->size() && c.columns.size() + 1 < c.new_row->size(); ++i)
          if (pick(0, 1) == 1)
            c.columns.push_back(i);
    }
    return c;
  }

  std::vector<messaging::peer::change> changes() {
    std::vector<messaging::peer::change> out;
    auto n = pick(1, pick(0, 9) == 0 ? 200 : 5);
    for (std::size_t i = 0; i < n; ++i)
      out.push_back(one_change());
    return out;
  }

  std::mt19937_64 rng_;
};

} // namespace syncmesh::test
