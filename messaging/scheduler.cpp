#include "messaging/scheduler.hpp"

#include <algorithm>

namespace syncmesh::messaging {

void manual_scheduler::at(std::uint64_t when_ms, std::function<void()> fn) {
  queue_.emplace(std::make_pair(std::max(when_ms, now_ms_), next_seq_++), std::move(fn));
}

std::optional<std::uint64_t> manual_scheduler::next_due_ms() const {
  if (queue_.empty())
    return std::nullopt;
  return queue_.begin()->first.first;
}

void manual_scheduler::run_next() {
  auto it = queue_.begin();
  now_ms_ = std::max(now_ms_, it->first.first);
  auto fn = std::move(it->second);
  queue_.erase(it);
  fn();
}

std::size_t manual_scheduler::advance(std::uint64_t ms) {
  const auto until = now_ms_ + ms;
  std::size_t ran = 0;
  while (!queue_.empty() && queue_.begin()->first.first <= until) {
    run_next();
    ++ran;
  }
  now_ms_ = until;
  return ran;
}

std::size_t manual_scheduler::run_until_idle(std::uint64_t horizon_ms) {
  const auto until = now_ms_ + horizon_ms;
  std::size_t ran = 0;
  while (!queue_.empty() && queue_.begin()->first.first <= until) {
    run_next();
    ++ran;
  }
  return ran;
}

} // namespace syncmesh::messaging
