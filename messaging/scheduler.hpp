#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <utility>

namespace syncmesh::messaging {

/// The time seam of code that moves frames: what time it is, and running
/// something later. Every delay, timeout and retry of the in-memory
/// transport goes through one, so a test decides when time passes. An
/// adapter onto an actor system's clock (actors/actor_clock_scheduler.hpp;
/// CAF's test_coordinator in tests) lets actors and transports share one
/// virtual time.
class scheduler {
public:
  virtual ~scheduler() = default;

  /// Milliseconds on this scheduler's clock; never decreases.
  virtual std::uint64_t now_ms() const = 0;

  /// Runs `fn` once when the clock reaches `when_ms`, on the scheduler's own
  /// context. Callbacks due at the same time run in the order they were
  /// scheduled; a time already past means "as soon as possible".
  virtual void at(std::uint64_t when_ms, std::function<void()> fn) = 0;
};

/// A scheduler whose clock moves only when told. Deterministic: the order of
/// callbacks depends only on their due times and the order they were
/// scheduled in. Not thread-safe; one thread drives it.
class manual_scheduler final : public scheduler {
public:
  explicit manual_scheduler(std::uint64_t start_ms = 0) : now_ms_(start_ms) {}

  std::uint64_t now_ms() const override { return now_ms_; }
  void at(std::uint64_t when_ms, std::function<void()> fn) override;

  /// Moves the clock forward by `ms`, running every callback due on the way
  /// in order, each with the clock at its due time (callbacks they schedule
  /// run too, if due). Returns how many ran.
  std::size_t advance(std::uint64_t ms);

  /// Runs callbacks in order, moving the clock to each, until none is left
  /// or the next is due later than now + `horizon_ms`. Returns how many ran.
  std::size_t run_until_idle(std::uint64_t horizon_ms);

  std::size_t pending() const noexcept { return queue_.size(); }
  std::optional<std::uint64_t> next_due_ms() const;

private:
  // Runs the earliest callback. REQUIRES: !queue_.empty()
  void run_next();

  std::uint64_t now_ms_;
  std::uint64_t next_seq_ = 0;
  std::map<std::pair<std::uint64_t, std::uint64_t>, std::function<void()>> queue_;  // (due, seq)
};

} // namespace syncmesh::messaging
