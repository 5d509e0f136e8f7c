#pragma once

#include <chrono>
#include <cstdint>
#include <random>

#include "actors/node_config.hpp"

namespace syncmesh::actors {

/// Capped exponential backoff with jitter, for retries and restarts. The
/// schedule is a pure function of the config, the attempt number and the
/// seed, so a seeded run replays the same delays.
class backoff {
public:
  backoff(backoff_config cfg, std::uint64_t seed) : cfg_(cfg), rng_(seed) {}

  /// The delay before retry number `attempt` (1 = the first retry) without
  /// jitter: min(initial_ms * 2^(attempt-1), max_ms).
  static std::uint64_t base_delay_ms(const backoff_config& cfg, std::uint32_t attempt);

  /// The delay before retry number `attempt`: the base delay times a factor
  /// drawn uniformly from [1 - jitter, 1 + jitter], capped at max_ms, at
  /// least 1 ms.
  std::chrono::milliseconds delay(std::uint32_t attempt);

  const backoff_config& config() const { return cfg_; }

private:
  backoff_config cfg_;
  std::mt19937_64 rng_;
};

} // namespace syncmesh::actors
