// The store survives real process crashes: a child process
// (store_crash_writer) applies batches and acknowledges each one on a pipe;
// the test SIGKILLs it at a seeded moment, reopens the store and checks that
// every acknowledged batch is there whole, and that no batch is there in
// part. One seed replays the choice of kill points (SYNCMESH_SEED=N); the
// moment the kill lands inside the writer is up to the OS scheduler.

#include <boost/test/unit_test.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <random>
#include <string>
#include <system_error>
#include <vector>

#include "store/store.hpp"
#include "crash_workload.hpp"

extern char** environ;

namespace st = syncmesh::store;

namespace {

constexpr const char* table_name = "crash.items";
constexpr const char* cursor_source = "crash";
constexpr const char* node_id = "crash-node";

/// Kills per durability setting; every tenth one lands right after spawn,
/// during open and recovery.
constexpr int kills = 60;
constexpr int kill_at_spawn_every = 10;
/// Upper bound of the acknowledgements awaited before a kill.
constexpr std::uint64_t acks_before_kill_max = 40;
/// How long the writer may go without acknowledging, or without exiting
/// once killed, before the test calls it stalled.
constexpr auto writer_stall_max = std::chrono::seconds(60);

using st::crash::payload_of;
using st::crash::rows_in_batch;

st::row expected_row(std::uint64_t b, std::uint64_t j) {
  return {st::value::integer(static_cast<std::int64_t>(b)),
          st::value::integer(static_cast<std::int64_t>(j)), st::value::text(payload_of(b, j))};
}

// "(b, j)": a row of crash.items named by its key, without its payload.
std::string key_display(const st::row& r) {
  return st::to_display(st::row(r.begin(), r.begin() + std::min<std::size_t>(r.size(), 2)));
}

std::string errno_text(int err) {
  return std::system_category().message(err);
}

std::optional<std::uint64_t> parse_u64(const std::string& text) {
  std::uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || end != text.data() + text.size() || text.empty())
    return std::nullopt;
  return v;
}

/// SYNCMESH_SEED when set, else a fresh seed from the clock.
std::uint64_t test_seed() {
  if (const char* env = std::getenv("SYNCMESH_SEED")) {
    auto seed = parse_u64(env);
    BOOST_REQUIRE_MESSAGE(seed, "SYNCMESH_SEED='" << env << "' is not a non-negative integer");
    return *seed;
  }
  return static_cast<std::uint64_t>(
    std::chrono::high_resolution_clock::now().time_since_epoch().count());
}

/// A fresh directory under $TMPDIR (or /tmp), removed with everything in it
/// when the guard goes, also when the test fails.
class temp_dir {
public:
  temp_dir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/syncmesh-crash-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr)
      BOOST_FAIL("mkdtemp(" << tmpl << ") failed: " << errno_text(errno));
    path_ = tmpl;
  }
  ~temp_dir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const std::string& path() const { return path_; }

private:
  std::string path_;
};

/// A running store_crash_writer with its stdout on a pipe. The destructor
/// kills and reaps a child that is still running, so a failing test leaves
/// no process behind.
class writer_process {
public:
  writer_process(const std::string& dir, std::uint64_t first_batch, st::durability_mode d) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0)
      BOOST_FAIL("pipe2 failed: " << errno_text(errno));
    out_fd_ = fds[0];
    posix_spawn_file_actions_t actions;
    ::posix_spawn_file_actions_init(&actions);
    // dup2 clears close-on-exec on the child's fd 1 only.
    ::posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    std::string exe = SYNCMESH_CRASH_WRITER;
    std::string first = std::to_string(first_batch);
    std::string durability = st::to_string(d);
    std::vector<char*> argv{exe.data(), const_cast<char*>(dir.c_str()), first.data(),
                            durability.data(), nullptr};
    int err = ::posix_spawn(&pid_, exe.c_str(), &actions, nullptr, argv.data(), environ);
    ::posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    if (err != 0) {
      pid_ = -1;
      ::close(out_fd_);
      out_fd_ = -1;
      BOOST_FAIL("could not start " << exe << ": " << errno_text(err));
    }
  }

  ~writer_process() {
    if (pid_ > 0)
      kill_and_reap();
    if (out_fd_ >= 0)
      ::close(out_fd_);
  }
  writer_process(const writer_process&) = delete;
  writer_process& operator=(const writer_process&) = delete;

  int out_fd() const { return out_fd_; }

  /// SIGKILLs the child (harmless if it already exited) and returns its wait
  /// status.
  int kill_and_reap() {
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    pid_ = -1;
    return status;
  }

private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
};

std::string describe_wait_status(int status) {
  if (WIFEXITED(status))
    return "exited with status " + std::to_string(WEXITSTATUS(status))
           + " (its reason is on stderr above)";
  if (WIFSIGNALED(status))
    return "was killed by signal " + std::to_string(WTERMSIG(status));
  return "ended with wait status " + std::to_string(status);
}

/// The acknowledgements on the writer's stdout: one line "b\n" per applied
/// batch, in batch order.
class ack_reader {
public:
  ack_reader(int fd, std::uint64_t last_acked) : fd_(fd), last_(last_acked) {}

  /// The last batch acknowledged so far, by this writer or an earlier one.
  std::uint64_t last() const { return last_; }
  bool at_eof() const { return eof_; }

  /// Waits for more output and consumes it. Returns "" or what went wrong:
  /// a stall past writer_stall_max, a read error, a line that is not the
  /// next batch.
  std::string read_more() {
    pollfd p{fd_, POLLIN, 0};
    const int timeout_ms =
      static_cast<int>(std::chrono::milliseconds(writer_stall_max).count());
    int ready = ::poll(&p, 1, timeout_ms);
    if (ready < 0 && errno == EINTR)
      return {};
    if (ready < 0)
      return "poll on the writer's stdout failed: " + errno_text(errno);
    if (ready == 0)
      return "the writer produced no output for "
             + std::to_string(std::chrono::seconds(writer_stall_max).count())
             + " s after batch " + std::to_string(last_) + "; it is stalled";
    char buf[4096];
    auto n = ::read(fd_, buf, sizeof buf);
    if (n < 0 && errno == EINTR)
      return {};
    if (n < 0)
      return "reading the writer's stdout failed: " + errno_text(errno);
    if (n == 0) {
      eof_ = true;
      if (!partial_.empty())
        return "the writer's output ends in a partial line '" + partial_ + "'";
      return {};
    }
    partial_.append(buf, static_cast<std::size_t>(n));
    for (auto nl = partial_.find('\n'); nl != std::string::npos; nl = partial_.find('\n')) {
      auto line = partial_.substr(0, nl);
      partial_.erase(0, nl + 1);
      auto b = parse_u64(line);
      if (!b || *b != last_ + 1)
        return "the writer acknowledged '" + line + "' where batch " + std::to_string(last_ + 1)
               + " was next";
      last_ = *b;
    }
    return {};
  }

private:
  int fd_;
  std::uint64_t last_;
  std::string partial_;
  bool eof_ = false;
};

/// Reopens the store at `dir` and checks it against the acknowledgements:
/// the cursor is at or past `last_acked` and `cursor_before`, batches up to
/// the cursor are whole, none past it has a row, and the change log holds
/// exactly their inserts in order. Returns "" or what is wrong; on success
/// sets `cursor` to the batch the cursor names (0: none yet). The store is
/// closed again on return.
std::string check_store(const std::string& dir, std::uint64_t last_acked,
                        std::uint64_t cursor_before, std::uint64_t& cursor) {
  st::options opts;
  opts.path = dir;
  opts.node_id = node_id;
  auto opened = st::store::open(opts);
  if (!opened)
    return "reopening the store failed: " + opened.error().to_string();
  const auto& db = **opened;

  auto pos = db.cursor(cursor_source);
  if (!pos)
    return "reading the cursor failed: " + pos.error().to_string();
  std::uint64_t c = 0;
  if (*pos) {
    auto parsed = parse_u64(**pos);
    if (!parsed)
      return "the cursor holds '" + **pos + "', not a batch number";
    c = *parsed;
  }
  if (c < last_acked)
    return "the cursor is at batch " + std::to_string(c) + " but batch "
           + std::to_string(last_acked) + " was acknowledged: acknowledged batches were lost";
  if (c < cursor_before)
    return "the cursor went back from batch " + std::to_string(cursor_before) + " to "
           + std::to_string(c);

  std::uint64_t expected_rows = 0;
  for (std::uint64_t b = 1; b <= c; ++b)
    expected_rows += rows_in_batch(b);

  // Rows: exactly (1, 0) .. (c, rows_in_batch(c) - 1) in key order, so every
  // batch up to the cursor is whole and no batch past it has begun.
  auto tbl = db.table(table_name);
  if (!tbl)
    return "reading the catalog failed: " + tbl.error().to_string();
  std::vector<st::row> rows;
  if (*tbl) {
    auto scanned = db.scan(table_name);
    if (!scanned)
      return "scanning " + std::string(table_name) + " failed: " + scanned.error().to_string();
    rows = std::move(scanned).value();
  }
  std::uint64_t b = 1;
  std::uint64_t j = 0;
  for (const auto& r : rows) {
    if (b > c)
      return "row " + key_display(r) + " exists but the cursor is at batch "
             + std::to_string(c) + ": a batch landed without its cursor, or in part";
    if (r != expected_row(b, j))
      return "batch " + std::to_string(b) + " is not whole: found row " + key_display(r)
             + (key_display(r) == key_display(expected_row(b, j)) ? " with a wrong payload" : "")
             + " where row " + key_display(expected_row(b, j)) + " belongs";
    if (++j == rows_in_batch(b)) {
      ++b;
      j = 0;
    }
  }
  if (rows.size() != expected_rows)
    return "batch " + std::to_string(b) + " is not whole: it has " + std::to_string(j)
           + " of its " + std::to_string(rows_in_batch(b)) + " rows, and the cursor is at batch "
           + std::to_string(c);

  // Change log: one insert per row, in apply order, ending with batch c.
  if (db.last_seq() != expected_rows)
    return "the change log ends at seq " + std::to_string(db.last_seq()) + " but batches 1.."
           + std::to_string(c) + " wrote " + std::to_string(expected_rows) + " changes";
  auto log = db.read_changes(1, 0);
  if (!log)
    return "reading the change log failed: " + log.error().to_string();
  if (log->size() != expected_rows)
    return "the change log holds " + std::to_string(log->size()) + " entries, not "
           + std::to_string(expected_rows);
  b = 1;
  j = 0;
  for (std::size_t i = 0; i < log->size(); ++i) {
    const auto& e = (*log)[i];
    auto want = expected_row(b, j);
    st::row want_key{want[0], want[1]};
    if (e.seq != i + 1 || e.table != table_name || e.op != st::change_op::insert
        || e.origin != node_id || e.key != want_key || e.old_row || !e.new_row
        || *e.new_row != want)
      return "change-log entry " + std::to_string(i + 1) + " (seq " + std::to_string(e.seq)
             + ", key " + st::to_display(e.key) + ") is not the insert of row "
             + key_display(want);
    if (++j == rows_in_batch(b)) {
      ++b;
      j = 0;
    }
  }
  const auto last_batch = st::value::integer(static_cast<std::int64_t>(c));
  if (c > 0 && (log->empty() || log->back().key[0] != last_batch))
    return "the change log's last entry does not belong to batch " + std::to_string(c);

  cursor = c;
  return {};
}

void acknowledged_batches_survive_kills(st::durability_mode durability) {
  const auto seed = test_seed();
  const std::string mode = st::to_string(durability);
  BOOST_TEST_MESSAGE("store_crash " << mode << ": replay with SYNCMESH_SEED=" << seed);
  std::mt19937_64 rng{seed};
  std::uniform_int_distribution<std::uint64_t> acks_before_kill{0, acks_before_kill_max};

  temp_dir dir;
  std::uint64_t cursor = 0;      // the batch the store's cursor named at the last check
  std::uint64_t last_acked = 0;  // the newest batch any writer acknowledged
  std::uint64_t total_acks = 0;
  int kills_before_first_ack = 0;    // the writer died during open, recovery or batch 1
  std::uint64_t unacked_batches = 0; // applied but killed before its ack was written
  const auto started = std::chrono::steady_clock::now();

  for (int k = 0; k < kills; ++k) {
    const std::uint64_t target = k % kill_at_spawn_every == 0 ? 0 : acks_before_kill(rng);
    auto where = [&] {
      return mode + " kill " + std::to_string(k + 1) + " of " + std::to_string(kills)
             + " (after " + std::to_string(target) + " acks, writer from batch "
             + std::to_string(cursor + 1) + "); replay with SYNCMESH_SEED=" + std::to_string(seed);
    };

    writer_process writer{dir.path(), cursor + 1, durability};
    ack_reader acks{writer.out_fd(), cursor};
    std::string error;
    while (error.empty() && !acks.at_eof() && acks.last() - cursor < target)
      error = acks.read_more();
    const bool died_early = acks.at_eof();
    const int status = writer.kill_and_reap();
    BOOST_REQUIRE_MESSAGE(error.empty(), error << "; " << where());
    BOOST_REQUIRE_MESSAGE(!died_early, "the writer " << describe_wait_status(status)
                                                     << " before it was killed; " << where());
    BOOST_REQUIRE_MESSAGE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
                          "the writer " << describe_wait_status(status)
                                        << " instead of dying by SIGKILL; " << where());
    // Acknowledgements still in the pipe were given before the kill: they count.
    while (error.empty() && !acks.at_eof())
      error = acks.read_more();
    BOOST_REQUIRE_MESSAGE(error.empty(), error << "; " << where());
    total_acks += acks.last() - cursor;
    kills_before_first_ack += acks.last() == cursor ? 1 : 0;
    last_acked = acks.last();

    std::uint64_t next_cursor = 0;
    error = check_store(dir.path(), last_acked, cursor, next_cursor);
    BOOST_REQUIRE_MESSAGE(error.empty(), error << "; " << where());
    unacked_batches += next_cursor - last_acked;
    cursor = next_cursor;
  }

  const auto took_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::steady_clock::now() - started)
                         .count();
  BOOST_TEST_MESSAGE("store_crash " << mode << ": " << kills << " kills ("
                                    << kills_before_first_ack << " before the writer's first ack), "
                                    << total_acks << " acknowledged batches, " << unacked_batches
                                    << " applied but unacknowledged, " << cursor
                                    << " batches in the store, " << took_ms << " ms");
  // A run in which no writer ever got a batch acknowledged checked nothing.
  BOOST_TEST(total_acks > 0u);
}

} // namespace

BOOST_AUTO_TEST_SUITE(store_crash)

BOOST_AUTO_TEST_CASE(acknowledged_batches_survive_sigkill_and_no_batch_is_left_in_part_with_fsync) {
  acknowledged_batches_survive_kills(st::durability_mode::fsync);
}

BOOST_AUTO_TEST_CASE(
  acknowledged_batches_survive_sigkill_and_no_batch_is_left_in_part_when_buffered) {
  acknowledged_batches_survive_kills(st::durability_mode::buffered);
}

BOOST_AUTO_TEST_SUITE_END()
