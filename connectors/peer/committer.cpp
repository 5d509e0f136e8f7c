#include "connectors/peer/committer.hpp"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

namespace syncmesh::peer {

namespace {

store::status skipped() {
  return store::status::io_error("not written: an earlier commit failed");
}

/// Whether `b` holds only changes and extension records (what the
/// replicator's commits hold), so that it can be written as part of one
/// batch with the batches around it.
bool joinable(const store::batch& b) {
  return b.create_tables.empty() && b.stage.empty() && b.swaps.empty() && b.cursors.empty()
         && b.outbox_put.empty() && b.outbox_remove.empty() && b.jobs.empty();
}

/// Changes past which a write takes no further batches.
constexpr std::size_t joined_changes_max = 4096;

class inline_committer_impl final : public committer {
public:
  explicit inline_committer_impl(store::store& db) : db_(db) {}

  void submit(store::batch b) override {
    if (failed_) {
      done_.push_back(skipped());
      return;
    }
    if (b.empty()) {
      done_.push_back(store::status::ok());  // nothing to write (or sync)
      return;
    }
    auto r = db_.apply(b);
    if (!r) {
      failed_ = true;
      done_.push_back(r.error());
      return;
    }
    done_.push_back(store::status::ok());
  }

  void wait() override {}

  std::vector<store::status> take_done() override { return std::exchange(done_, {}); }

  void resume() override { failed_ = false; }

private:
  store::store& db_;
  bool failed_ = false;
  std::vector<store::status> done_;
};

class thread_committer_impl final : public committer {
public:
  thread_committer_impl(store::store& db, std::function<void()> done)
      : db_(db), notify_(std::move(done)), thread_([this] { run(); }) {}

  ~thread_committer_impl() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    work_.notify_one();
    thread_.join();
  }

  void submit(store::batch b) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      given_.push_back(std::move(b));
      ++open_;
    }
    work_.notify_one();
  }

  void wait() override {
    std::unique_lock<std::mutex> lock(mu_);
    idle_.wait(lock, [this] { return open_ == 0; });
  }

  std::vector<store::status> take_done() override {
    std::vector<store::batch> spent;
    std::vector<store::status> done;
    {
      std::lock_guard<std::mutex> lock(mu_);
      spent.swap(spent_);
      done.swap(done_);
    }
    return done;  // the written batches are freed here, off the writing thread
  }

  void resume() override {
    std::lock_guard<std::mutex> lock(mu_);
    failed_ = false;
  }

private:
  // Writes what is given until stopped; what was given before the stop is
  // written first.
  void run() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      work_.wait(lock, [this] { return stop_ || !given_.empty(); });
      if (given_.empty())
        return;  // stopped, and nothing left
      // The batches given while the last write was on its way go as one
      // (one LevelDB write, one sync): extension records named twice
      // end as the later batch wrote them, and the store takes the
      // changes in order, as it does for a commit group.
      auto b = std::move(given_.front());
      given_.pop_front();
      std::size_t n = 1;
      if (joinable(b))
        while (!given_.empty() && joinable(given_.front())
               && b.changes.size() + given_.front().changes.size() <= joined_changes_max) {
          auto& next = given_.front();
          b.changes.insert(b.changes.end(), std::make_move_iterator(next.changes.begin()),
                           std::make_move_iterator(next.changes.end()));
          b.ext.insert(b.ext.end(), std::make_move_iterator(next.ext.begin()),
                       std::make_move_iterator(next.ext.end()));
          given_.pop_front();
          ++n;
        }
      store::status st = skipped();
      if (!failed_ && b.empty()) {
        st = store::status::ok();  // nothing to write (or sync)
      } else if (!failed_) {
        lock.unlock();
        auto r = db_.apply(b);
        st = r ? store::status::ok() : r.error();
        lock.lock();
        if (!st)
          failed_ = true;
      }
      // Freed by take_done(), on the thread that made them, since the
      // writing thread is the one the others wait for.
      spent_.push_back(std::move(b));
      // All of them or none: a failure fails each (the first with the
      // store's sentence).
      done_.push_back(st);
      for (std::size_t i = 1; i < n; ++i)
        done_.push_back(st ? st : skipped());
      open_ -= n;
      if (open_ == 0)
        idle_.notify_all();
      lock.unlock();
      if (notify_)
        notify_();
      lock.lock();
    }
  }

  store::store& db_;
  std::function<void()> notify_;
  std::mutex mu_;
  std::condition_variable work_;
  std::condition_variable idle_;
  std::deque<store::batch> given_;
  std::vector<store::status> done_;
  std::vector<store::batch> spent_;  // written, not yet freed
  std::size_t open_ = 0;  // given and not yet done
  bool failed_ = false;
  bool stop_ = false;
  std::thread thread_;  // last: started once the members above exist
};

} // namespace

std::unique_ptr<committer> inline_committer(store::store& db) {
  return std::make_unique<inline_committer_impl>(db);
}

std::unique_ptr<committer> thread_committer(store::store& db, std::function<void()> done) {
  return std::make_unique<thread_committer_impl>(db, std::move(done));
}

} // namespace syncmesh::peer
