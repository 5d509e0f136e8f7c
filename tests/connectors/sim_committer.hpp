#pragma once

// A committer for deterministic tests: writes each batch some virtual time
// after it is given, in order, and tells the replicator (commits_done) a
// little later still, so the replicator merges the next deltas while
// commits are in flight, and the store may hold a commit the replicator
// has not taken back yet — as with thread_committer. Optionally fails some
// writes (writing nothing), to drive the replicator's go-back-N.

#include <deque>
#include <functional>
#include <memory>
#include <random>
#include <utility>

#include "connectors/peer/committer.hpp"
#include "messaging/scheduler.hpp"

namespace syncmesh::test {

class sim_committer final : public peer::committer {
public:
  /// Each write happens delay_ms after it is given (0: at the next turn of
  /// the scheduler) and is reported 0 to notice_ms_max later; with
  /// probability `fail`, it fails instead. `done` (which calls the
  /// replicator's commits_done) is the report.
  sim_committer(store::store& db, messaging::scheduler& clock, std::uint64_t delay_ms,
                std::uint64_t notice_ms_max, double fail, std::uint64_t seed,
                std::function<void()> done)
      : db_(db), clock_(clock), delay_ms_(delay_ms), notice_ms_max_(notice_ms_max), fail_(fail),
        rng_(seed), done_(std::move(done)) {}

  ~sim_committer() override { *alive_ = false; }

  void submit(store::batch b) override {
    const auto due = clock_.now_ms() + delay_ms_;
    given_.emplace_back(due, std::move(b));
    std::weak_ptr<bool> alive = alive_;
    clock_.at(due, [this, alive] {
      if (alive.expired())
        return;
      // What is due, in order (an earlier wait() may have written it).
      bool wrote = false;
      while (!given_.empty() && given_.front().first <= clock_.now_ms()) {
        write_one();
        wrote = true;
      }
      if (!wrote)
        return;
      const auto notice = notice_ms_max_ == 0 ? 0 : rng_() % (notice_ms_max_ + 1);
      std::weak_ptr<bool> still = alive_;
      clock_.at(clock_.now_ms() + notice, [this, still] {
        if (!still.expired() && done_)
          done_();
      });
    });
  }

  void wait() override {
    while (!given_.empty())
      write_one();
  }

  std::vector<store::status> take_done() override { return std::exchange(results_, {}); }

  void resume() override { failed_ = false; }

  std::uint64_t injected_failures() const { return injected_; }
  void set_failures(double fail) { fail_ = fail; }
  /// The next write fails (once).
  void fail_next() { fail_next_ = true; }
  /// Batches given and not yet written.
  std::size_t pending() const { return given_.size(); }
  /// Batches written (or failed) whose results were not taken yet.
  std::size_t unreported() const { return results_.size(); }

private:
  void write_one() {
    auto b = std::move(given_.front().second);
    given_.pop_front();
    if (failed_) {
      results_.push_back(store::status::io_error("not written: an earlier commit failed"));
      return;
    }
    if (b.empty()) {
      results_.push_back(store::status::ok());
      return;
    }
    if (std::exchange(fail_next_, false)
        || (fail_ > 0 && std::uniform_real_distribution<double>(0, 1)(rng_) < fail_)) {
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
  std::uint64_t notice_ms_max_;
  double fail_;
  bool fail_next_ = false;
  std::mt19937_64 rng_;
  std::function<void()> done_;
  std::deque<std::pair<std::uint64_t, store::batch>> given_;  // (due, batch)
  std::vector<store::status> results_;
  bool failed_ = false;
  std::uint64_t injected_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

} // namespace syncmesh::test
