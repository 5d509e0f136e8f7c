#pragma once

// Waiting in tests for something another process or thread makes true.

#include <chrono>
#include <thread>

namespace syncmesh::test {

/// Looks at `condition` until it holds or `timeout` passes; true when it
/// held. It is looked at at least once and once more at the deadline; between
/// looks the caller waits `poll` (the condition lives in another process or
/// thread, which offers nothing to block on). The wait ends as soon as the
/// condition holds.
template <class Condition, class Timeout, class Poll>
bool await(Condition&& condition, Timeout timeout, Poll poll) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (condition())
      return true;
    if (std::chrono::steady_clock::now() >= deadline)
      return false;
    std::this_thread::sleep_for(poll);
  }
}

} // namespace syncmesh::test
