#include "actors/actor_clock_scheduler.hpp"

#include <chrono>
#include <map>
#include <utility>

#include <caf/actor.hpp>
#include <caf/actor_cast.hpp>
#include <caf/actor_clock.hpp>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/send.hpp>

namespace syncmesh::actors {

namespace {

// The callbacks live here, shared by the scheduler and its actor: the actor
// may outlive the scheduler (it is stopped, not joined), and then finds the
// table empty.
struct callbacks {
  std::uint64_t next_id = 0;
  std::map<std::uint64_t, std::function<void()>> pending;
};

} // namespace

struct actor_clock_scheduler::impl {
  caf::actor_system& sys;
  std::uint64_t offset_ms;
  std::shared_ptr<callbacks> table = std::make_shared<callbacks>();
  caf::actor runner;

  impl(caf::actor_system& s, std::uint64_t offset) : sys(s), offset_ms(offset) {
    runner = sys.spawn([t = table](caf::event_based_actor*) -> caf::behavior {
      return {[t](std::uint64_t id) {
        auto it = t->pending.find(id);
        if (it == t->pending.end())
          return;
        auto fn = std::move(it->second);
        t->pending.erase(it);
        fn();
      }};
    });
  }
};

actor_clock_scheduler::actor_clock_scheduler(caf::actor_system& sys, std::uint64_t offset_ms)
  : impl_(std::make_unique<impl>(sys, offset_ms)) {}

actor_clock_scheduler::~actor_clock_scheduler() {
  impl_->table->pending.clear();
  caf::anon_send_exit(impl_->runner, caf::exit_reason::user_shutdown);
}

std::uint64_t actor_clock_scheduler::now_ms() const {
  auto since = impl_->sys.clock().now().time_since_epoch();
  return impl_->offset_ms
         + static_cast<std::uint64_t>(
           std::chrono::duration_cast<std::chrono::milliseconds>(since).count());
}

void actor_clock_scheduler::at(std::uint64_t when_ms, std::function<void()> fn) {
  auto id = impl_->table->next_id++;
  impl_->table->pending.emplace(id, std::move(fn));
  // A time already past is due now: the clock delivers it at its next tick
  // (under test_coordinator, at the next advance or trigger).
  auto due_ms = std::max(when_ms, now_ms()) - impl_->offset_ms;
  caf::actor_clock::time_point due{std::chrono::duration_cast<caf::actor_clock::duration_type>(
    std::chrono::milliseconds(due_ms))};
  impl_->sys.clock().schedule_message(
    due, caf::actor_cast<caf::strong_actor_ptr>(impl_->runner),
    caf::make_mailbox_element(nullptr, caf::make_message_id(), {}, id));
}

std::size_t actor_clock_scheduler::pending() const { return impl_->table->pending.size(); }

} // namespace syncmesh::actors
