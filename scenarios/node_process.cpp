#include "scenarios/node_process.hpp"

#include <algorithm>
#include <csignal>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <zmq.hpp>

#include "messaging/control_client.hpp"
#include "messaging/event_bus.hpp"

namespace syncmesh::scenarios {

namespace {

// Waits until the process `pid` exits, `fd` (if >= 0) becomes readable, or
// `timeout` passes; never longer.
void wait_for(pid_t pid, int fd, std::chrono::milliseconds timeout) {
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  pollfd fds[2];
  nfds_t n = 0;
  if (pidfd >= 0)
    fds[n++] = {pidfd, POLLIN, 0};
  if (fd >= 0)
    fds[n++] = {fd, POLLIN, 0};
  ::poll(fds, n, static_cast<int>(std::max<std::int64_t>(0, timeout.count())));
  if (pidfd >= 0)
    ::close(pidfd);
}

} // namespace

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::steady_clock;

node_process::node_process(zmq::context_t& ctx, std::string name, std::string binary,
                           std::string dir)
  : ctx_(ctx), name_(std::move(name)), binary_(std::move(binary)), dir_(std::move(dir)) {}

node_process::~node_process() { kill(); }

store::result<std::unique_ptr<node_process>>
node_process::launch(zmq::context_t& ctx, std::string name, std::string binary, std::string dir,
                     const std::string& config_toml, milliseconds start_timeout) {
  std::unique_ptr<node_process> p{new node_process(ctx, std::move(name), std::move(binary),
                                                   std::move(dir))};
  {
    std::ofstream out(p->dir_ + "/node.toml");
    out << config_toml;
    if (!out)
      return store::status::io_error("cannot write " + p->dir_ + "/node.toml");
  }
  if (auto st = p->start(start_timeout); !st)
    return st;
  return p;
}

void node_process::reap(bool block) {
  if (pid_ <= 0)
    return;
  int wstatus = 0;
  if (::waitpid(pid_, &wstatus, block ? 0 : WNOHANG) == pid_) {
    pid_ = -1;
    last_wait_status_ = wstatus;
  }
}

bool node_process::running() {
  reap(false);
  return pid_ > 0;
}

store::status node_process::start(milliseconds timeout) {
  if (running())
    return store::status::invalid_argument("node '" + name_ + "' is already running");
  ::mkdir((dir_ + "/data").c_str(), 0755);
  std::remove((dir_ + "/data/node.json").c_str());
  // node.json appears by rename once the node serves; inotify says when.
  int watch = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (watch >= 0)
    ::inotify_add_watch(watch, (dir_ + "/data").c_str(), IN_MOVED_TO | IN_CLOSE_WRITE);
  struct watch_guard {
    int fd;
    ~watch_guard() {
      if (fd >= 0)
        ::close(fd);
    }
  } guard{watch};
  auto config = dir_ + "/node.toml";
  auto log = dir_ + "/node.log";
  pid_t pid = ::fork();
  if (pid < 0)
    return store::status::io_error("cannot start node '" + name_ + "': fork failed");
  if (pid == 0) {
    // Only async-signal-safe calls until exec.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    const char* argv[] = {binary_.c_str(), "node", "--config", config.c_str(), nullptr};
    ::execv(binary_.c_str(), const_cast<char* const*>(argv));
    ::_exit(127);
  }
  pid_ = pid;
  auto deadline = steady_clock::now() + timeout;
  json info;
  while (true) {
    std::ifstream in(dir_ + "/data/node.json");
    if (in) {
      info = json::parse(in, nullptr, false);
      if (info.is_object() && info.value("pid", -1L) == static_cast<long>(pid_))
        break;
    }
    if (!running())
      return store::status::invalid_argument("node '" + name_ + "' exited while starting:\n"
                                             + log_tail(10));
    if (steady_clock::now() > deadline) {
      kill();
      return store::status::io_error("node '" + name_ + "' did not serve within "
                                     + std::to_string(timeout.count()) + " ms; its log:\n"
                                     + log_tail(10));
    }
    // Until the node writes node.json or exits, or a bounded interval in
    // case inotify is unavailable.
    wait_for(pid_, watch, milliseconds(watch >= 0 ? 1000 : 50));
    char buf[4096];
    while (watch >= 0 && ::read(watch, buf, sizeof buf) > 0) {
    }
  }
  client_ = std::make_unique<messaging::control_client>(ctx_, info["control"].get<std::string>(),
                                                        std::chrono::seconds(30));
  auto sub = messaging::event_subscriber::connect(ctx_, info["events"].get<std::string>());
  if (!sub)
    return sub.error();
  subscriber_ = std::move(sub).value();
  return store::status::ok();
}

store::result<json> node_process::call(const std::string& verb, json args, milliseconds timeout) {
  if (!client_ || !running())
    return store::status::io_error("node '" + name_ + "' is not running");
  if (timeout != std::chrono::seconds(30))
    client_ = std::make_unique<messaging::control_client>(ctx_, client_->endpoint(), timeout);
  auto r = client_->call(verb, std::move(args));
  if (!r)
    return r.error();
  if (!r->ok)
    return store::status::invalid_argument(r->error);
  return r->result;
}

std::vector<store::result<json>>
node_process::call_concurrently(const std::string& verb, const json& args, std::size_t count,
                                milliseconds timeout) {
  std::vector<store::result<json>> out(count, store::status::io_error("not sent"));
  if (!client_ || !running())
    return out;
  std::vector<std::thread> threads;
  auto endpoint = client_->endpoint();
  for (std::size_t i = 0; i < count; ++i)
    threads.emplace_back([&, i] {
      messaging::control_client c(ctx_, endpoint, timeout);
      auto r = c.call(verb, args);
      if (!r)
        out[i] = r.error();
      else if (!r->ok)
        out[i] = store::status::invalid_argument(r->error);
      else
        out[i] = r->result;
    });
  for (auto& t : threads)
    t.join();
  return out;
}

store::status node_process::shutdown(milliseconds timeout) {
  if (!running())
    return store::status::ok();
  ::kill(pid_, SIGTERM);
  auto deadline = steady_clock::now() + timeout;
  while (running()) {
    if (steady_clock::now() > deadline) {
      kill();
      return store::status::io_error("node '" + name_ + "' did not stop within "
                                     + std::to_string(timeout.count())
                                     + " ms of SIGTERM and was killed");
    }
    wait_for(pid_, -1, std::chrono::duration_cast<milliseconds>(deadline - steady_clock::now()));
  }
  drain_events();
  subscriber_.reset();
  client_.reset();
  // An orderly shutdown ends with exit status 0; anything else is a bug the
  // scenario must see (a crash while closing loses nothing durable, but it
  // is still a crash).
  if (WIFSIGNALED(last_wait_status_))
    return store::status::io_error("node '" + name_ + "' died of signal "
                                   + std::to_string(WTERMSIG(last_wait_status_))
                                   + " during an orderly shutdown; see " + log_path());
  if (WIFEXITED(last_wait_status_) && WEXITSTATUS(last_wait_status_) != 0)
    return store::status::io_error("node '" + name_ + "' exited with status "
                                   + std::to_string(WEXITSTATUS(last_wait_status_))
                                   + " after SIGTERM; see " + log_path());
  return store::status::ok();
}

void node_process::kill() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    reap(true);
  }
  subscriber_.reset();
  client_.reset();
}

void node_process::drain_events(milliseconds timeout) {
  if (!subscriber_)
    return;
  auto wait = timeout;
  while (true) {
    auto e = subscriber_->next(wait);
    wait = milliseconds(0);
    if (!e || !*e)
      return;
    events_.push_back(std::move(**e));
    if (events_.size() > node_events_kept_max)
      events_.pop_front();
  }
}

std::string node_process::endpoint(const std::string& key) const {
  std::ifstream in(dir_ + "/data/node.json");
  auto info = json::parse(in, nullptr, false);
  if (!info.is_object() || !info.contains(key) || !info[key].is_string())
    return {};
  return info[key].get<std::string>();
}

std::string node_process::log_tail(std::size_t lines) const {
  std::ifstream in(dir_ + "/node.log");
  std::deque<std::string> tail;
  std::string line;
  while (std::getline(in, line)) {
    tail.push_back(line);
    if (tail.size() > lines)
      tail.pop_front();
  }
  std::string out;
  for (const auto& l : tail)
    out += "    " + l + "\n";
  return out;
}

} // namespace syncmesh::scenarios
