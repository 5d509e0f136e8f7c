#include "store/hlc.hpp"

#include <algorithm>
#include <chrono>

namespace syncmesh::store {

std::string hlc_timestamp::to_string() const {
  return std::to_string(wall_ms()) + "." + std::to_string(logical());
}

std::optional<hlc_timestamp> hlc_timestamp::parse(std::string_view text) {
  const auto dot = text.find('.');
  if (dot == std::string_view::npos)
    return std::nullopt;
  auto number = [](std::string_view digits, std::uint64_t max) -> std::optional<std::uint64_t> {
    if (digits.empty() || digits.size() > 20)
      return std::nullopt;
    std::uint64_t v = 0;
    for (char c : digits) {
      if (c < '0' || c > '9')
        return std::nullopt;
      const auto d = static_cast<std::uint64_t>(c - '0');
      if (v > (max - d) / 10)
        return std::nullopt;
      v = v * 10 + d;
    }
    return v;
  };
  auto wall = number(text.substr(0, dot), (1ULL << (64 - logical_bits)) - 1);
  auto logical = number(text.substr(dot + 1), logical_max);
  if (!wall || !logical)
    return std::nullopt;
  return hlc_timestamp(*wall, *logical);
}

namespace {

class system_clock_impl final : public physical_clock {
public:
  std::uint64_t now_ms() override {
    using namespace std::chrono;
    return static_cast<std::uint64_t>(
      duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
  }
};

} // namespace

physical_clock& system_physical_clock() {
  static system_clock_impl instance;
  return instance;
}

hybrid_clock::hybrid_clock(physical_clock& physical, std::uint64_t max_skew_ms,
                           hlc_timestamp floor)
  : physical_(physical), max_skew_ms_(max_skew_ms), last_(floor) {}

hlc_timestamp hybrid_clock::advance_locked(std::uint64_t wall_ms, std::uint64_t logical) {
  // The logical counter overflowing carries into the wall part: the clock
  // runs a millisecond ahead rather than repeating a reading.
  if (logical > hlc_timestamp::logical_max) {
    wall_ms += 1;
    logical = 0;
  }
  last_ = hlc_timestamp{wall_ms, logical};
  return last_;
}

hlc_timestamp hybrid_clock::now() {
  std::lock_guard<std::mutex> guard{mu_};
  auto pt = physical_.now_ms();
  if (pt > last_.wall_ms())
    return advance_locked(pt, 0);
  return advance_locked(last_.wall_ms(), last_.logical() + 1);
}

result<hlc_timestamp> hybrid_clock::observe(hlc_timestamp remote) {
  std::lock_guard<std::mutex> guard{mu_};
  auto pt = physical_.now_ms();
  if (remote.wall_ms() > pt + max_skew_ms_)
    return status::clock_skew("a remote clock reading " + remote.to_string() + " is "
                              + std::to_string(remote.wall_ms() - pt)
                              + " ms ahead of this node's clock, more than the allowed "
                              + std::to_string(max_skew_ms_)
                              + " ms; check NTP on both machines or raise max_clock_skew_ms");
  auto wall = std::max({pt, last_.wall_ms(), remote.wall_ms()});
  std::uint64_t logical = 0;
  if (wall == last_.wall_ms() && wall == remote.wall_ms())
    logical = std::max(last_.logical(), remote.logical()) + 1;
  else if (wall == last_.wall_ms())
    logical = last_.logical() + 1;
  else if (wall == remote.wall_ms())
    logical = remote.logical() + 1;
  return advance_locked(wall, logical);
}

hlc_timestamp hybrid_clock::last() const {
  std::lock_guard<std::mutex> guard{mu_};
  return last_;
}

} // namespace syncmesh::store
