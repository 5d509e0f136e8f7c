#pragma once

// A committer for deterministic tests: writes each batch some virtual time
// after it is given, in order, then tells the replicator (commits_done), so
// the replicator merges the next deltas while commits are in flight, as it
// does with thread_committer. Optionally fails some writes (writing
// nothing), to drive the replicator's go-back-N.

#include <deque>
#include <functional>
#include <memory>
#include <random>

#include "connectors/peer/committer.hpp"
#include "messaging/scheduler.hpp"

namespace syncmesh::test {

class sim_committer final : public peer::committer {
public:
  /// Each write happens delay_ms after it is given (0: at the next turn of
  /// the scheduler); with probability `fail`, it fails instead. `done` is
  /// called after each one (it calls the replicator's commits_done).
  sim_committer(store::store& db, messaging::scheduler& clock, std::uint64_t delay_ms,
                double fail, std::uint64_t seed, std::function<void()> done)
      : db_(db), clock_(clock), delay_ms_(delay_ms), fail_(fail), rng_(seed),
        done_(std::move(done)) {}

  ~sim_committer() override { *alive_ = false; }

  void submit(store::batch b) override {
    todo_.push_back(std::move(b));
    std::weak_ptr<bool> alive = alive_;
    clock_.at(clock_.now_ms() + delay_ms_, [this, alive] {
      if (alive.expired() || todo_.empty())
        return;  // gone, or written by wait() already
      write_one();
      if (done_)
        done_();
    });
  }

  void wait() override {
    while (!todo_.empty())
      write_one();
  }

  std::vector<store::status> take_done() override { return std::exchange(results_, {}); }

  void resume() override { failed_ = false; }

  std::uint64_t injected_failures() const { return injected_; }
  void set_failures(double fail) { fail_ = fail; }

private:
  void write_one() {
    auto b = std::move(todo_.front());
    todo_.pop_front();
    if (failed_) {
      results_.push_back(store::status::io_error("not written: an earlier commit failed"));
      return;
    }
    if (fail_ > 0 && std::uniform_real_distribution<double>(0, 1)(rng_) < fail_) {
      ++injected_;
      failed_ = true;
      results_.push_back(store::status::io_error("injected write failure"));
      return;
    }
    auto r = db_.apply(b);
    if (!r)
      failed_ = true;
    results_.push_back(r ? store::status::ok() : r.error());
  }

  store::store& db_;
  messaging::scheduler& clock_;
  std::uint64_t delay_ms_;
  double fail_;
  std::mt19937_64 rng_;
  std::function<void()> done_;
  std::deque<store::batch> todo_;
  std::vector<store::status> results_;
  bool failed_ = false;
  std::uint64_t injected_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

} // namespace syncmesh::test
