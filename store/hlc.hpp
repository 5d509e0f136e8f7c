#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "store/status.hpp"

namespace syncmesh::store {

/// A hybrid logical clock reading: wall-clock milliseconds since the Unix
/// epoch in the high 48 bits, a logical counter in the low 16. Totally
/// ordered as a plain integer; ties between nodes break on node id.
class hlc_timestamp {
public:
  static constexpr std::uint64_t logical_bits = 16;
  static constexpr std::uint64_t logical_max = (1ULL << logical_bits) - 1;

  constexpr hlc_timestamp() = default;
  constexpr hlc_timestamp(std::uint64_t wall_ms, std::uint64_t logical)
    : packed_((wall_ms << logical_bits) | (logical & logical_max)) {}

  static constexpr hlc_timestamp from_packed(std::uint64_t packed) {
    hlc_timestamp t;
    t.packed_ = packed;
    return t;
  }

  constexpr std::uint64_t packed() const { return packed_; }
  constexpr std::uint64_t wall_ms() const { return packed_ >> logical_bits; }
  constexpr std::uint64_t logical() const { return packed_ & logical_max; }

  std::string to_string() const;  // "1700000000123.4"
  /// The reading to_string() printed: "WALL_MS.LOGICAL", both decimal, the
  /// logical part at most logical_max and the wall time within 48 bits;
  /// nothing for any other text.
  static std::optional<hlc_timestamp> parse(std::string_view text);

  constexpr bool operator<(hlc_timestamp o) const { return packed_ < o.packed_; }
  constexpr bool operator<=(hlc_timestamp o) const { return packed_ <= o.packed_; }
  constexpr bool operator>(hlc_timestamp o) const { return packed_ > o.packed_; }
  constexpr bool operator==(hlc_timestamp o) const { return packed_ == o.packed_; }
  constexpr bool operator!=(hlc_timestamp o) const { return packed_ != o.packed_; }

private:
  std::uint64_t packed_ = 0;
};

/// The time seam: where the hybrid clock reads physical time.
class physical_clock {
public:
  virtual ~physical_clock() = default;
  /// Milliseconds since the Unix epoch.
  virtual std::uint64_t now_ms() = 0;
};

/// The operating system's real-time clock. Thread-safe.
physical_clock& system_physical_clock();

/// A clock that only moves when told to; for tests.
class manual_physical_clock final : public physical_clock {
public:
  explicit manual_physical_clock(std::uint64_t start_ms) : now_ms_(start_ms) {}
  std::uint64_t now_ms() override { return now_ms_; }
  void set(std::uint64_t ms) { now_ms_ = ms; }
  void advance(std::uint64_t ms) { now_ms_ += ms; }

private:
  std::uint64_t now_ms_;
};

/// Hybrid logical clock (Kulkarni et al.). Readings are strictly increasing,
/// stay close to physical time, and follow causality: a reading taken after
/// observe(t) is greater than t. Thread-safe.
class hybrid_clock {
public:
  /// `floor` is the greatest reading handed out before (e.g. read back from
  /// the store at open), so readings never go backwards across restarts even
  /// if the physical clock did. Remote stamps more than `max_skew_ms` ahead
  /// of physical time are refused.
  hybrid_clock(physical_clock& physical, std::uint64_t max_skew_ms,
               hlc_timestamp floor = {});

  /// A new reading for a local event or an outgoing message.
  hlc_timestamp now();

  /// Merges a remote reading; returns the new local reading, greater than
  /// both. clock_skew when `remote` is too far in the future: the clock is
  /// then unchanged.
  result<hlc_timestamp> observe(hlc_timestamp remote);

  /// The last reading handed out.
  hlc_timestamp last() const;

  std::uint64_t max_skew_ms() const { return max_skew_ms_; }

private:
  hlc_timestamp advance_locked(std::uint64_t wall_ms, std::uint64_t logical);

  physical_clock& physical_;
  const std::uint64_t max_skew_ms_;
  mutable std::mutex mu_;
  hlc_timestamp last_;
};

} // namespace syncmesh::store
