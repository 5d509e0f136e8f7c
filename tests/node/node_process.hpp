#pragma once

// Real `syncmesh` processes for the node suite: a temporary directory per
// test, a node started from a TOML config with posix_spawn, `syncmesh ctl`
// runs with their output and exit code, and waits that poll a condition until
// a deadline. Every child a test starts is killed and reaped by the end of
// the test, whether it passed or not.

#include "tests/await.hpp"
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

extern char** environ;

namespace syncmesh::node_test {

namespace fs = std::filesystem;
using json = nlohmann::json;
using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;

/// How long a test waits for something that should happen.
inline constexpr milliseconds wait_max{10'000};
/// How long one `syncmesh ctl` run may take before the test gives up on it.
inline constexpr milliseconds ctl_run_max{20'000};
/// The pause between two looks at a polled condition.
inline constexpr milliseconds poll_interval{10};

inline std::string syncmesh_binary() { return SYNCMESH_BINARY; }

/// Polls `condition` until it returns true or `timeout` passes. True when
/// it held; it is always tried at least once, and once more at the deadline.
/// Keep the result in a variable before asserting on it: Boost.Test may build
/// an assertion's message before it evaluates the predicate, so a message
/// that shows what the wait saw must be built after the wait.
template <class Condition>
bool await(Condition&& condition, milliseconds timeout = wait_max) {
  return syncmesh::test::await(std::forward<Condition>(condition), timeout, poll_interval);
}

[[noreturn]] inline void throw_errno(const std::string& what, int err = errno) {
  throw std::system_error(err, std::generic_category(), what);
}

inline std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void write_file(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out)
    throw std::runtime_error("cannot write " + p.string());
}

/// The last `n` lines of `text`, for failure messages.
inline std::string tail(const std::string& text, std::size_t n = 20) {
  std::size_t pos = text.size();
  for (std::size_t lines = 0; pos > 0 && lines <= n;) {
    --pos;
    if (text[pos] == '\n')
      ++lines;
  }
  return text.substr(pos);
}

/// A fresh directory under the system temp directory (mkdtemp), removed
/// with everything in it when the guard goes away.

/// The state a view rests in once its job is done: a materialized copy is
/// synced; realtime and sync views keep running, following their stream.
inline std::string settled_state(const nlohmann::json& view) {
  return view.value("persistence", "") == "materialized" ? "synced" : "running";
}

class temp_dir {
public:
  temp_dir() {
    std::string pattern = (fs::temp_directory_path() / "syncmesh-node-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr)
      throw_errno("mkdtemp " + pattern);
    path_ = pattern;
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const fs::path& path() const { return path_; }

  /// Writes `text` to `name` inside the directory and returns its path.
  fs::path write(const std::string& name, const std::string& text) const {
    write_file(path_ / name, text);
    return path_ / name;
  }

private:
  fs::path path_;
};

/// Exit status in the shell's convention: the exit code, or 128 + signal.
inline int exit_code_of(int wstatus) {
  if (WIFEXITED(wstatus))
    return WEXITSTATUS(wstatus);
  if (WIFSIGNALED(wstatus))
    return 128 + WTERMSIG(wstatus);
  return -1;
}

/// posix_spawn attributes for a child that starts clean: no blocked signals
/// and default dispositions for the ones the node and ctl care about,
/// whatever the test runner set up.
class spawn_attributes {
public:
  spawn_attributes() {
    if (int e = posix_spawnattr_init(&attr_))
      throw_errno("posix_spawnattr_init", e);
    sigset_t none;
    sigemptyset(&none);
    sigset_t defaults;
    sigemptyset(&defaults);
    for (int s : {SIGINT, SIGTERM, SIGPIPE, SIGCHLD, SIGHUP})
      sigaddset(&defaults, s);
    posix_spawnattr_setsigmask(&attr_, &none);
    posix_spawnattr_setsigdefault(&attr_, &defaults);
    posix_spawnattr_setflags(&attr_, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  }
  ~spawn_attributes() { posix_spawnattr_destroy(&attr_); }
  spawn_attributes(const spawn_attributes&) = delete;
  spawn_attributes& operator=(const spawn_attributes&) = delete;
  const posix_spawnattr_t* get() const { return &attr_; }

private:
  posix_spawnattr_t attr_;
};

class file_actions {
public:
  file_actions() {
    if (int e = posix_spawn_file_actions_init(&fa_))
      throw_errno("posix_spawn_file_actions_init", e);
  }
  ~file_actions() { posix_spawn_file_actions_destroy(&fa_); }
  file_actions(const file_actions&) = delete;
  file_actions& operator=(const file_actions&) = delete;

  void open(int fd, const std::string& path, int flags) {
    paths_.push_back(path);  // posix_spawn reads the path at spawn time
    if (int e = posix_spawn_file_actions_addopen(&fa_, fd, paths_.back().c_str(), flags, 0644))
      throw_errno("posix_spawn_file_actions_addopen " + path, e);
  }
  void dup2(int from, int to) {
    if (int e = posix_spawn_file_actions_adddup2(&fa_, from, to))
      throw_errno("posix_spawn_file_actions_adddup2", e);
  }
  const posix_spawn_file_actions_t* get() const { return &fa_; }

private:
  posix_spawn_file_actions_t fa_;
  std::vector<std::string> paths_;
};

inline pid_t spawn(const std::vector<std::string>& args, const file_actions& fa) {
  std::vector<char*> argv;
  for (const auto& a : args)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  spawn_attributes attr;
  pid_t pid = 0;
  if (int e = posix_spawn(&pid, argv[0], fa.get(), attr.get(), argv.data(), environ))
    throw_errno("posix_spawn " + args[0], e);
  return pid;
}

/// A child process with stdin from /dev/null and stdout and stderr in
/// files. The guard SIGKILLs and reaps a child still running at its end.
class child_process {
public:
  child_process(const std::vector<std::string>& args, fs::path out, fs::path err)
      : out_(std::move(out)), err_(std::move(err)) {
    file_actions fa;
    fa.open(0, "/dev/null", O_RDONLY);
    fa.open(1, out_.string(), O_WRONLY | O_CREAT | O_TRUNC);
    fa.open(2, err_.string(), O_WRONLY | O_CREAT | O_TRUNC);
    pid_ = spawn(args, fa);
  }
  ~child_process() { kill_now(); }
  child_process(const child_process&) = delete;
  child_process& operator=(const child_process&) = delete;

  pid_t pid() const { return pid_; }
  std::string out() const { return read_file(out_); }
  std::string err() const { return read_file(err_); }

  /// True while the child has not exited (reaps it when it has).
  bool running() {
    if (exit_code_)
      return false;
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      exit_code_ = exit_code_of(status);
      return false;
    }
    return r == 0;
  }

  /// The exit code once the child exits within `timeout`; nothing if it is
  /// still running then.
  std::optional<int> wait_for(milliseconds timeout) {
    if (await([&] { return !running(); }, timeout))
      return exit_code_;
    return std::nullopt;
  }

  void signal(int sig) {
    if (running())
      ::kill(pid_, sig);
  }

  /// SIGKILL and reap; the exit code is then 128 + 9 unless it had exited.
  void kill_now() {
    if (!running())
      return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
    exit_code_ = exit_code_of(status);
  }

  std::optional<int> exit_code() const { return exit_code_; }

private:
  fs::path out_, err_;
  pid_t pid_ = 0;
  std::optional<int> exit_code_;
};

/// What a finished command printed and how it ended.
struct run_result {
  int exit_code = -1;
  std::string out;
  std::string err;
  bool timed_out = false;
  milliseconds took{0};

  /// stdout as JSON (discarded JSON when it is not).
  json out_json() const { return json::parse(out, nullptr, false); }
};

inline std::ostream& operator<<(std::ostream& os, const run_result& r) {
  return os << "exit " << r.exit_code << (r.timed_out ? " (timed out)" : "") << " after "
            << r.took.count() << " ms\nstdout:\n" << tail(r.out) << "\nstderr:\n" << tail(r.err);
}

/// Runs `args` to the end, its stdout and stderr captured through pipes.
/// A child still running after `timeout` is SIGKILLed (timed_out = true).
inline run_result run(const std::vector<std::string>& args, milliseconds timeout = ctl_run_max) {
  const auto start = steady::now();
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0)
    throw_errno("pipe2");
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    int e = errno;
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    throw_errno("pipe2", e);
  }
  pid_t pid = 0;
  try {
    file_actions fa;
    fa.open(0, "/dev/null", O_RDONLY);
    fa.dup2(out_pipe[1], 1);
    fa.dup2(err_pipe[1], 2);
    pid = spawn(args, fa);
  } catch (...) {
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]})
      ::close(fd);
    throw;
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);

  run_result r;
  const auto deadline = start + timeout;
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&r.out, &r.err};
  int open_fds = 2;
  while (open_fds > 0) {
    const auto left = std::chrono::ceil<milliseconds>(deadline - steady::now());
    if (left <= milliseconds::zero()) {
      r.timed_out = true;
      ::kill(pid, SIGKILL);
      break;
    }
    int n = ::poll(fds, 2, static_cast<int>(left.count()));
    if (n < 0 && errno != EINTR)
      throw_errno("poll");
    for (int i = 0; i < 2 && n > 0; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0)
        continue;
      char buf[4096];
      ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
      if (got > 0) {
        sinks[i]->append(buf, static_cast<std::size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (auto& f : fds)
    if (f.fd >= 0)
      ::close(f.fd);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  r.exit_code = exit_code_of(status);
  r.took = std::chrono::duration_cast<milliseconds>(steady::now() - start);
  return r;
}

/// The view record named "ns.name" in a `status` or `sync` reply; null when
/// it is not there.
inline json view_record(const json& records, const std::string& full_name) {
  if (!records.is_array())
    return nullptr;
  for (const auto& r : records) {
    if (r.contains("view") && r["view"] == full_name)
      return r;
    if (r.contains("namespace") && r.contains("name")
        && r["namespace"].get<std::string>() + "." + r["name"].get<std::string>() == full_name)
      return r;
  }
  return nullptr;
}

/// Settings of the standard test config; each test changes what it needs.
struct config_options {
  std::string node_id = "node-a";
  std::string durability = "buffered";
  std::uint64_t control_request_bytes_max = 0;  // 0 = the node's default
  std::string extra_top;  // more top-level lines
};

/// A node with one memory remote "inventory" (table items: id integer key,
/// title text; rows 1 apple and 2 pear) and three views over that table:
/// shop.items materialized, shop.live realtime, shop.cart sync. Ports are
/// chosen by the OS; retries are quick so outage tests finish fast.
inline std::string standard_config(const config_options& o = {}) {
  std::string s;
  s += "node_id = \"" + o.node_id + "\"\n";
  s += "data_dir = \"data\"\n";
  s += "control_endpoint = \"tcp://127.0.0.1:0\"\n";
  s += "durability = \"" + o.durability + "\"\n";
  s += "log_level = \"info\"\n";
  if (o.control_request_bytes_max)
    s += "control_request_bytes_max = " + std::to_string(o.control_request_bytes_max) + "\n";
  s += o.extra_top;
  s += R"(
[retry]
initial_ms = 50
max_ms = 200

[[remotes]]
name = "inventory"
kind = "memory"
[[remotes.tables]]
name = "items"
columns = [ { name = "id", type = "integer", key = true },
            { name = "title", type = "text" } ]
rows = [ [1, "apple"], [2, "pear"] ]

[[views]]
namespace = "shop"
name = "items"
persistence = "materialized"
remote = "inventory"
source = "items"

[[views]]
namespace = "shop"
name = "live"
persistence = "realtime"
remote = "inventory"
source = "items"

[[views]]
namespace = "shop"
name = "cart"
persistence = "sync"
remote = "inventory"
source = "items"
)";
  return s;
}

/// One `syncmesh node --config CONFIG` process. Its stdout and stderr go to
/// files next to the config (suffixed with the start number, so a restart
/// keeps the earlier logs). The guard SIGKILLs a node still running.
class node_process {
public:
  /// Starts the node; `data_dir` is where its config puts node.json.
  node_process(fs::path config, fs::path data_dir, int start_number = 1)
      : config_(std::move(config)), data_dir_(std::move(data_dir)) {
    const auto dir = config_.parent_path();
    const auto n = std::to_string(start_number);
    child_.emplace(std::vector<std::string>{syncmesh_binary(), "node", "--config",
                                            config_.string()},
                   dir / ("node-" + n + ".out"), dir / ("node-" + n + ".err"));
  }

  const fs::path& data_dir() const { return data_dir_; }
  fs::path node_json() const { return data_dir_ / "node.json"; }
  pid_t pid() const { return child_->pid(); }
  bool running() { return child_->running(); }
  std::string log() const { return child_->err(); }
  const std::string& control_endpoint() const { return control_; }
  const std::string& events_endpoint() const { return events_; }

  /// Waits until node.json names this process (a node.json left by an
  /// earlier, killed process does not count). False if the node exits
  /// first or the time runs out.
  bool await_serving(milliseconds timeout = wait_max) {
    return await(
      [&] {
        if (!child_->running())
          return true;  // checked below
        json info = json::parse(read_file(node_json()), nullptr, false);
        if (!info.is_object() || !info.contains("pid") || info["pid"] != pid())
          return false;
        control_ = info.value("control", "");
        events_ = info.value("events", "");
        return !control_.empty();
      },
      timeout)
      && child_->running();
  }

  /// SIGTERM (or `sig`), then the exit code once it exits within `timeout`.
  std::optional<int> terminate(milliseconds timeout = wait_max, int sig = SIGTERM) {
    child_->signal(sig);
    return child_->wait_for(timeout);
  }

  /// SIGKILL, and reap it.
  void kill() { child_->kill_now(); }

  std::optional<int> wait_for_exit(milliseconds timeout) { return child_->wait_for(timeout); }

  /// Runs `syncmesh ctl --node DATA_DIR ARGS...`.
  run_result ctl(const std::vector<std::string>& args, milliseconds timeout = ctl_run_max) const {
    std::vector<std::string> argv{syncmesh_binary(), "ctl", "--node", data_dir_.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, timeout);
  }

  /// `ctl --json ARGS...` parsed; null when it failed or printed no JSON.
  json ctl_json(const std::vector<std::string>& args) const {
    std::vector<std::string> a{"--json"};
    a.insert(a.end(), args.begin(), args.end());
    auto r = ctl(a);
    if (r.exit_code != 0)
      return nullptr;
    auto j = r.out_json();
    return j.is_discarded() ? json(nullptr) : j;
  }

  /// `ctl --json status` (every view).
  json status() const { return ctl_json({"status"}); }

  /// The rows of a view through `ctl --json query`.
  json rows(const std::string& view) const {
    auto q = ctl_json({"query", view});
    return q.is_object() ? q.value("rows", json::array()) : json(nullptr);
  }

  /// Polls `ctl --json status` until `pred(status)` holds; the last status
  /// seen is left in `last` for the failure message.
  template <class Pred>
  bool await_status(Pred&& pred, json& last, milliseconds timeout = wait_max) const {
    return await(
      [&] {
        last = status();
        return last.is_array() && pred(last);
      },
      timeout);
  }

  /// Polls `ctl --json query VIEW` until `pred(rows)` holds; the last rows
  /// seen are left in `last`.
  template <class Pred>
  bool await_rows(const std::string& view, Pred&& pred, json& last,
                  milliseconds timeout = wait_max) const {
    return await(
      [&] {
        last = rows(view);
        return last.is_array() && pred(last);
      },
      timeout);
  }

  /// Waits until every view is settled (materialized: synced; realtime and
  /// sync: running, following the stream) and without an error.
  bool await_all_synced(json& last, milliseconds timeout = wait_max) const {
    return await_status(
      [](const json& s) {
        for (const auto& v : s)
          if (v.value("state", "") != settled_state(v) || !v.value("last_error", "").empty())
            return false;
        return !s.empty();
      },
      last, timeout);
  }

private:
  fs::path config_;
  fs::path data_dir_;
  std::optional<child_process> child_;
  std::string control_;
  std::string events_;
};

/// One row [id, title] as the query reply carries it.
inline json item(int id, const std::string& title) { return json::array({id, title}); }

/// True when `rows` (a query reply's rows) holds a row with this id.
inline bool has_id(const json& rows, int id) {
  if (!rows.is_array())
    return false;
  for (const auto& r : rows)
    if (r.is_array() && !r.empty() && r[0] == id)
      return true;
  return false;
}

/// True when `text` holds `part`.
inline bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

/// A user-facing sentence: several words, no trailing newline, and not an
/// error code on its own.
inline bool is_sentence(const std::string& s) {
  if (s.empty() || s.back() == '\n')
    return false;
  std::size_t words = 0;
  std::istringstream in(s);
  for (std::string w; in >> w;)
    ++words;
  return words >= 4;
}

} // namespace syncmesh::node_test
