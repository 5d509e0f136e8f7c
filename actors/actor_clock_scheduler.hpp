#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include <caf/fwd.hpp>

#include "messaging/scheduler.hpp"

namespace syncmesh::actors {

/// A messaging::scheduler on an actor system's clock, so that frames on the
/// in-memory network, the replicator's timers and actors' delayed messages
/// move on one time. Under CAF's test_coordinator that time is virtual:
/// `sched.advance_time(d)` (then `sched.run()`) delivers the frames and runs
/// the timers due within `d`, interleaved with actors' timeouts in due
/// order — one seed and one sequence of steps give one run.
///
/// Each callback is a message to a small actor, scheduled on the clock at its
/// due time; callbacks due at the same time run in the order they were
/// scheduled (the clock keeps equal due times in insertion order and the
/// actor's mailbox is FIFO). They run in that actor's context, one at a time:
/// code the callbacks drive (memory_network, replicator) must be touched by
/// nothing else while the system runs — true on test_coordinator, where
/// everything runs on the test's thread.
///
/// now_ms() is milliseconds since the clock's epoch plus `offset_ms` (CAF's
/// test clock starts at its epoch; a realistic wall time keeps HLCs sane).
/// Callbacks still pending when the scheduler is destroyed never run.
class actor_clock_scheduler final : public messaging::scheduler {
public:
  explicit actor_clock_scheduler(caf::actor_system& sys, std::uint64_t offset_ms = 0);
  ~actor_clock_scheduler() override;
  actor_clock_scheduler(const actor_clock_scheduler&) = delete;
  actor_clock_scheduler& operator=(const actor_clock_scheduler&) = delete;

  std::uint64_t now_ms() const override;
  void at(std::uint64_t when_ms, std::function<void()> fn) override;

  /// Callbacks scheduled and not yet run.
  std::size_t pending() const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace syncmesh::actors
