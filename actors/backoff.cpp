#include "actors/backoff.hpp"

#include <algorithm>
#include <cmath>

namespace syncmesh::actors {

std::uint64_t backoff::base_delay_ms(const backoff_config& cfg, std::uint32_t attempt) {
  if (attempt == 0)
    attempt = 1;
  // Doubling past 2^40 ms would only ever hit the cap.
  auto shift = std::min<std::uint32_t>(attempt - 1, 40);
  auto d = cfg.initial_ms << shift;
  if (d / (1ULL << shift) != cfg.initial_ms)  // overflowed
    return cfg.max_ms;
  return std::min(d, cfg.max_ms);
}

std::chrono::milliseconds backoff::delay(std::uint32_t attempt) {
  auto base = static_cast<double>(base_delay_ms(cfg_, attempt));
  std::uniform_real_distribution<double> factor(1.0 - cfg_.jitter, 1.0 + cfg_.jitter);
  auto d = cfg_.jitter > 0 ? base * factor(rng_) : base;
  d = std::min(d, static_cast<double>(cfg_.max_ms));
  return std::chrono::milliseconds(std::max<std::int64_t>(1, std::llround(d)));
}

} // namespace syncmesh::actors
