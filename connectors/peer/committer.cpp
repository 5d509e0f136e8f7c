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

class inline_committer_impl final : public committer {
public:
  explicit inline_committer_impl(store::store& db) : db_(db) {}

  void submit(store::batch b) override {
    if (failed_) {
      done_.push_back(skipped());
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
      todo_.push_back(std::move(b));
      ++open_;
    }
    work_.notify_one();
  }

  void wait() override {
    std::unique_lock<std::mutex> lock(mu_);
    idle_.wait(lock, [this] { return open_ == 0; });
  }

  std::vector<store::status> take_done() override {
    std::lock_guard<std::mutex> lock(mu_);
    return std::exchange(done_, {});
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
      work_.wait(lock, [this] { return stop_ || !todo_.empty(); });
      if (todo_.empty())
        return;  // stopped, and nothing left
      auto b = std::move(todo_.front());
      todo_.pop_front();
      store::status st = skipped();
      if (!failed_) {
        lock.unlock();
        auto r = db_.apply(b);
        st = r ? store::status::ok() : r.error();
        lock.lock();
        if (!st)
          failed_ = true;
      }
      done_.push_back(std::move(st));
      --open_;
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
  std::deque<store::batch> todo_;
  std::vector<store::status> done_;
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
