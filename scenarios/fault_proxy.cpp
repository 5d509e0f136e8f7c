#include "scenarios/fault_proxy.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace syncmesh::scenarios {

namespace {

using steady = std::chrono::steady_clock;

constexpr std::size_t to_target = static_cast<std::size_t>(fault_proxy::direction::to_target);
constexpr std::size_t to_client = static_cast<std::size_t>(fault_proxy::direction::to_client);
static_assert(to_target == 0 && to_client == 1, "directions index the per-connection flows");

// Salts that keep the random streams of different choices apart.
constexpr std::uint64_t drop_stream = 1;
constexpr std::uint64_t jitter_stream = 2;

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

bool make_nonblocking_cloexec(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  const int fd_flags = ::fcntl(fd, F_GETFD);
  return flags >= 0 && fd_flags >= 0 && ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0 &&
         ::fcntl(fd, F_SETFD, fd_flags | FD_CLOEXEC) == 0;
}

// Small chunks go out at once: the proxy adds faults, not Nagle's delay.
void disable_nagle(int fd) {
  const int on = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
}

void close_gracefully(int& fd) {
  if (fd >= 0)
    ::close(fd);
  fd = -1;
}

// SO_LINGER 0 makes close() send RST and discard unsent data.
void close_abortively(int& fd) {
  if (fd < 0)
    return;
  const linger hard{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
  ::close(fd);
  fd = -1;
}

// splitmix64's finalizer: a bijection that scatters every input bit.
std::uint64_t mix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// A number uniform in [0, 1) that depends on its arguments only, so a seed
// replays the same choices whatever order the chunks are read in.
double seeded_unit(std::uint64_t seed, std::uint64_t stream, std::uint64_t connection,
                   std::size_t dir, std::uint64_t chunk) {
  std::uint64_t h = mix(seed ^ mix(stream));
  h = mix(h ^ connection);
  h = mix(h ^ dir);
  h = mix(h ^ chunk);
  return static_cast<double>(h >> 11) / 9007199254740992.0;  // 2^53
}

// What the fault methods ask for; the proxy thread takes a copy each pass.
struct settings {
  std::array<bool, 2> blocked{};
  steady::duration delay{0};
  steady::duration jitter{0};
  double drop_probability = 0;
  std::uint64_t cuts_requested = 0;
  bool stopping = false;

  bool partitioned() const { return blocked[to_target] && blocked[to_client]; }
};

struct chunk {
  std::vector<char> bytes;
  std::size_t written = 0;
  steady::time_point release_at;
};

// One direction of one connection. Only the queue's head is ever written,
// so a chunk whose jitter is shorter waits for the one before it.
// Invariant: held_bytes == sum of unwritten bytes in queue
//            <= fault_proxy::direction_buffer_bytes_max.
struct flow {
  std::deque<chunk> queue;
  std::size_t held_bytes = 0;
  std::uint64_t chunks_received = 0;
  bool source_eof = false;  // the source sent FIN
  bool dest_shut = false;   // and it was passed on
};

enum class target_state { waiting, connecting, connected };

struct connection {
  std::uint64_t number = 0;
  int client_fd = -1;
  int target_fd = -1;
  target_state target = target_state::waiting;
  std::array<flow, 2> flows;
  std::ptrdiff_t client_slot = -1;  // index into the poll set, -1 when not polled
  std::ptrdiff_t target_slot = -1;
  short client_revents = 0;
  short target_revents = 0;
  bool done = false;  // both sockets are closed; remove at the end of the pass
};

} // namespace

struct fault_proxy::impl {
  // Fixed before the thread starts.
  std::uint64_t seed_ = 0;
  sockaddr_storage target_address_{};
  socklen_t target_address_size_ = 0;
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  int wake_read_fd_ = -1;
  int wake_write_fd_ = -1;

  // Shared with the callers, guarded by mutex_.
  mutable std::mutex mutex_;
  std::condition_variable applied_;
  settings wanted_;
  std::uint64_t requested_generation_ = 0;
  std::uint64_t applied_generation_ = 0;
  bool exited_ = false;
  fault_proxy_stats published_;

  // Serializes stop().
  std::mutex stop_mutex_;
  std::thread thread_;

  // The proxy thread's own.
  settings current_;
  std::vector<std::unique_ptr<connection>> connections_;
  std::uint64_t next_connection_number_ = 0;
  std::uint64_t cuts_done_ = 0;
  bool accept_paused_ = false;  // out of descriptors; resumes when one closes
  fault_proxy_stats counters_;
  std::vector<pollfd> poll_set_;
  std::vector<char> scratch_;

  ~impl() {
    close_gracefully(listen_fd_);
    close_gracefully(wake_read_fd_);
    close_gracefully(wake_write_fd_);
  }

  void wake() {
    const char byte = 1;
    if (::write(wake_write_fd_, &byte, 1) < 0) {
      // A full pipe already wakes the thread.
    }
  }

  // Applies `change` and returns once the proxy thread has run a whole pass
  // with it, or has exited.
  template <class Change>
  void apply(Change&& change) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (exited_ || wanted_.stopping)
      return;
    change(wanted_);
    const std::uint64_t mine = ++requested_generation_;
    wake();
    applied_.wait(lock, [&] { return applied_generation_ >= mine || exited_; });
  }

  void run();
  int build_poll_set(steady::time_point now);
  bool wants_write(const flow& f, std::size_t dir, steady::time_point now, int& timeout_ms) const;
  void accept_clients();
  void serve(connection& c, steady::time_point now);
  void start_connect(connection& c);
  void finish_connect(connection& c);
  void read_from(connection& c, std::size_t dir, int fd, short revents);
  void take_chunk(connection& c, std::size_t dir, std::size_t size);
  void write_to(connection& c, std::size_t dir, int fd, steady::time_point now);
  void refuse(connection& c);
  void abort(connection& c);
  void abort_all();
  void publish(std::uint64_t generation, bool exiting);
};

void fault_proxy::impl::run() {
  scratch_.resize(read_chunk_bytes_max);
  for (;;) {
    const int timeout_ms = build_poll_set(steady::now());
    const int ready = ::poll(poll_set_.data(), poll_set_.size(), timeout_ms);
    const bool poll_failed = ready < 0 && errno != EINTR;

    std::uint64_t generation = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      current_ = wanted_;
      generation = requested_generation_;
    }
    if (current_.stopping || poll_failed) {
      abort_all();
      publish(generation, true);
      return;
    }
    if (ready < 0)
      continue;  // EINTR: take another look

    if (poll_set_[0].revents & POLLIN) {
      char sink[64];
      while (::read(wake_read_fd_, sink, sizeof sink) > 0) {
      }
    }
    const auto revents_of = [this](std::ptrdiff_t slot) -> short {
      return slot >= 0 ? poll_set_[static_cast<std::size_t>(slot)].revents : 0;
    };
    for (auto& c : connections_) {
      c->client_revents = revents_of(c->client_slot);
      c->target_revents = revents_of(c->target_slot);
    }

    if (current_.cuts_requested > cuts_done_) {
      counters_.cuts += current_.cuts_requested - cuts_done_;
      counters_.connections_cut += connections_.size();
      cuts_done_ = current_.cuts_requested;
      abort_all();
    }
    if (poll_set_[1].revents & POLLIN)
      accept_clients();

    const auto now = steady::now();
    for (auto& c : connections_)
      serve(*c, now);
    const auto before = connections_.size();
    connections_.erase(std::remove_if(connections_.begin(), connections_.end(),
                                     [](const auto& c) { return c->done; }),
                      connections_.end());
    if (connections_.size() < before)
      accept_paused_ = false;

    publish(generation, false);
  }
}

// Fills poll_set_: the wake pipe, the listener, then each connection's
// sockets with what the proxy wants of them now. Returns the poll timeout:
// until the earliest delayed chunk is due, or -1 for none.
int fault_proxy::impl::build_poll_set(steady::time_point now) {
  poll_set_.clear();
  poll_set_.push_back({wake_read_fd_, POLLIN, 0});
  poll_set_.push_back({accept_paused_ ? -1 : listen_fd_, POLLIN, 0});
  int timeout_ms = -1;
  for (auto& c : connections_) {
    const flow& up = c->flows[to_target];
    const flow& down = c->flows[to_client];
    short client_events = 0;
    short target_events = 0;
    if (!up.source_eof && up.held_bytes < direction_buffer_bytes_max)
      client_events |= POLLIN;
    if (wants_write(down, to_client, now, timeout_ms))
      client_events |= POLLOUT;
    if (c->target == target_state::connecting)
      target_events |= POLLOUT;
    if (c->target == target_state::connected) {
      if (!down.source_eof && down.held_bytes < direction_buffer_bytes_max)
        target_events |= POLLIN;
      if (wants_write(up, to_target, now, timeout_ms))
        target_events |= POLLOUT;
    }
    c->client_slot = -1;
    c->target_slot = -1;
    if (client_events != 0) {
      c->client_slot = static_cast<std::ptrdiff_t>(poll_set_.size());
      poll_set_.push_back({c->client_fd, client_events, 0});
    }
    if (target_events != 0) {
      c->target_slot = static_cast<std::ptrdiff_t>(poll_set_.size());
      poll_set_.push_back({c->target_fd, target_events, 0});
    }
  }
  return timeout_ms;
}

// True when `f` has a chunk due and may write it; a chunk that is not due
// yet shortens `timeout_ms` to its release time instead.
bool fault_proxy::impl::wants_write(const flow& f, std::size_t dir, steady::time_point now,
                                    int& timeout_ms) const {
  if (current_.blocked[dir] || f.dest_shut || f.queue.empty())
    return false;
  const auto release_at = f.queue.front().release_at;
  if (release_at <= now)
    return true;
  const auto wait = std::chrono::ceil<std::chrono::milliseconds>(release_at - now).count();
  const int wait_ms = static_cast<int>(std::min<long long>(wait, INT_MAX));
  timeout_ms = timeout_ms < 0 ? wait_ms : std::min(timeout_ms, wait_ms);
  return false;
}

void fault_proxy::impl::accept_clients() {
  for (;;) {
    int fd = ::accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) {
      switch (errno) {
        case EINTR:
        case ECONNABORTED:
        case EPROTO:
          continue;  // that client gave up; look for the next
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
          accept_paused_ = true;  // clients wait in the backlog meanwhile
          return;
        default:
          return;  // EAGAIN, or nothing to do about it here
      }
    }
    if (!make_nonblocking_cloexec(fd)) {
      close_abortively(fd);
      continue;
    }
    disable_nagle(fd);
    ++counters_.connections_accepted;
    auto c = std::make_unique<connection>();
    c->number = next_connection_number_++;
    c->client_fd = fd;
    connections_.push_back(std::move(c));
  }
}

void fault_proxy::impl::serve(connection& c, steady::time_point now) {
  if (c.done)
    return;
  if (c.target == target_state::waiting && !current_.partitioned())
    start_connect(c);
  if (c.target == target_state::connecting && (c.target_revents & (POLLOUT | POLLERR | POLLHUP)))
    finish_connect(c);

  read_from(c, to_target, c.client_fd, c.client_revents);
  if (c.target == target_state::connected) {
    read_from(c, to_client, c.target_fd, c.target_revents);
    write_to(c, to_target, c.target_fd, now);
  }
  write_to(c, to_client, c.client_fd, now);

  if (!c.done && c.flows[to_target].dest_shut && c.flows[to_client].dest_shut) {
    close_gracefully(c.client_fd);
    close_gracefully(c.target_fd);
    c.done = true;
  }
}

void fault_proxy::impl::start_connect(connection& c) {
  int fd = ::socket(target_address_.ss_family, SOCK_STREAM, 0);
  if (fd < 0 || !make_nonblocking_cloexec(fd)) {
    close_gracefully(fd);
    refuse(c);
    return;
  }
  disable_nagle(fd);
  c.target_fd = fd;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&target_address_), target_address_size_) == 0)
    c.target = target_state::connected;
  else if (errno == EINPROGRESS || errno == EINTR)
    c.target = target_state::connecting;
  else
    refuse(c);
}

void fault_proxy::impl::finish_connect(connection& c) {
  int err = 0;
  socklen_t size = sizeof err;
  if (::getsockopt(c.target_fd, SOL_SOCKET, SO_ERROR, &err, &size) != 0)
    err = errno;
  if (err == 0)
    c.target = target_state::connected;
  else if (err != EINPROGRESS)
    refuse(c);
}

void fault_proxy::impl::read_from(connection& c, std::size_t dir, int fd, short revents) {
  flow& f = c.flows[dir];
  if (c.done || f.source_eof || !(revents & (POLLIN | POLLHUP | POLLERR)))
    return;
  while (f.held_bytes < direction_buffer_bytes_max) {
    const std::size_t room = direction_buffer_bytes_max - f.held_bytes;
    const ssize_t n = ::recv(fd, scratch_.data(), std::min(read_chunk_bytes_max, room), 0);
    if (n > 0) {
      take_chunk(c, dir, static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0) {
      f.source_eof = true;
      return;
    }
    if (errno == EINTR)
      continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      abort(c);  // a reset on one side resets the other
    return;
  }
}

// Drops or queues the `size` bytes just read into scratch_.
void fault_proxy::impl::take_chunk(connection& c, std::size_t dir, std::size_t size) {
  const auto arrival = steady::now();
  flow& f = c.flows[dir];
  auto& totals = dir == to_target ? counters_.to_target : counters_.to_client;
  const std::uint64_t chunk_number = f.chunks_received++;
  ++totals.chunks_received;
  if (current_.drop_probability > 0 &&
      seeded_unit(seed_, drop_stream, c.number, dir, chunk_number) < current_.drop_probability) {
    ++totals.chunks_dropped;
    totals.bytes_dropped += size;
    return;
  }
  auto release_at = arrival + current_.delay;
  if (current_.jitter.count() > 0) {
    const double u = seeded_unit(seed_, jitter_stream, c.number, dir, chunk_number);
    release_at += steady::duration(
      static_cast<steady::duration::rep>(u * static_cast<double>(current_.jitter.count())));
  }
  const auto end = scratch_.begin() + static_cast<std::ptrdiff_t>(size);
  f.queue.push_back(chunk{std::vector<char>(scratch_.begin(), end), 0, release_at});
  f.held_bytes += size;
}

// Writes the chunks of `dir` that are due, then passes a FIN on once the
// source has sent one and everything before it is written.
void fault_proxy::impl::write_to(connection& c, std::size_t dir, int fd, steady::time_point now) {
  flow& f = c.flows[dir];
  if (c.done || current_.blocked[dir] || f.dest_shut)
    return;
  auto& totals = dir == to_target ? counters_.to_target : counters_.to_client;
  while (!f.queue.empty()) {
    chunk& head = f.queue.front();
    if (head.release_at > now)
      return;
    const ssize_t n = ::send(fd, head.bytes.data() + head.written, head.bytes.size() - head.written,
                             MSG_NOSIGNAL);
    if (n >= 0) {
      const auto sent = static_cast<std::size_t>(n);
      head.written += sent;
      f.held_bytes -= sent;
      totals.bytes_forwarded += sent;
      if (head.written == head.bytes.size())
        f.queue.pop_front();
      continue;
    }
    if (errno == EINTR)
      continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      abort(c);
    return;
  }
  if (f.source_eof) {
    if (::shutdown(fd, SHUT_WR) != 0) {
      abort(c);
      return;
    }
    f.dest_shut = true;
  }
}

void fault_proxy::impl::refuse(connection& c) {
  ++counters_.connections_refused;
  abort(c);
}

void fault_proxy::impl::abort(connection& c) {
  close_abortively(c.client_fd);
  close_abortively(c.target_fd);
  c.done = true;
}

void fault_proxy::impl::abort_all() {
  for (auto& c : connections_)
    abort(*c);
  connections_.clear();
  accept_paused_ = false;
}

void fault_proxy::impl::publish(std::uint64_t generation, bool exiting) {
  counters_.connections_open = connections_.size();
  counters_.to_target.bytes_held = 0;
  counters_.to_client.bytes_held = 0;
  for (const auto& c : connections_) {
    counters_.to_target.bytes_held += c->flows[to_target].held_bytes;
    counters_.to_client.bytes_held += c->flows[to_client].held_bytes;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    published_ = counters_;
    applied_generation_ = generation;
    exited_ = exiting;
  }
  applied_.notify_all();
}

store::result<std::unique_ptr<fault_proxy>> fault_proxy::start(std::string target_host,
                                                               std::uint16_t target_port,
                                                               std::uint64_t seed) {
  auto state = std::make_unique<impl>();
  state->seed_ = seed;

  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(target_port);
  const int gai = ::getaddrinfo(target_host.c_str(), service.c_str(), &hints, &found);
  if (gai != 0 || found == nullptr)
    return store::status::invalid_argument(
      "fault proxy: cannot resolve target host '" + target_host + "': " + ::gai_strerror(gai) +
      "; give an address such as 127.0.0.1 or a name that resolves");
  std::memcpy(&state->target_address_, found->ai_addr, found->ai_addrlen);
  state->target_address_size_ = found->ai_addrlen;
  ::freeaddrinfo(found);

  const auto io_failure = [](const char* what) {
    return store::status::io_error(std::string("fault proxy: ") + what + ": " + errno_text(errno) +
                                   "; check the process's descriptor limit (ulimit -n)");
  };
  state->listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  if (state->listen_fd_ < 0 || !make_nonblocking_cloexec(state->listen_fd_))
    return io_failure("cannot make the listening socket");
  sockaddr_in local{};
  local.sin_family = AF_INET;
  local.sin_port = 0;
  local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t local_size = sizeof local;
  if (::bind(state->listen_fd_, reinterpret_cast<const sockaddr*>(&local), sizeof local) != 0 ||
      ::listen(state->listen_fd_, SOMAXCONN) != 0 ||
      ::getsockname(state->listen_fd_, reinterpret_cast<sockaddr*>(&local), &local_size) != 0)
    return io_failure("cannot listen on 127.0.0.1");
  state->port_ = ntohs(local.sin_port);

  int wake_pipe[2];
  if (::pipe(wake_pipe) != 0)
    return io_failure("cannot make the wake-up pipe");
  state->wake_read_fd_ = wake_pipe[0];
  state->wake_write_fd_ = wake_pipe[1];
  if (!make_nonblocking_cloexec(state->wake_read_fd_) ||
      !make_nonblocking_cloexec(state->wake_write_fd_))
    return io_failure("cannot configure the wake-up pipe");

  try {
    state->thread_ = std::thread([raw = state.get()] { raw->run(); });
  } catch (const std::system_error& e) {
    return store::status::io_error(std::string("fault proxy: cannot start its thread: ") +
                                   e.what() + "; the process may be out of threads or memory");
  }
  return std::unique_ptr<fault_proxy>(new fault_proxy(std::move(state)));
}

fault_proxy::fault_proxy(std::unique_ptr<impl> state) : impl_(std::move(state)) {}

fault_proxy::~fault_proxy() { stop(); }

std::uint16_t fault_proxy::port() const noexcept { return impl_->port_; }

void fault_proxy::partition() {
  impl_->apply([](settings& s) { s.blocked = {true, true}; });
}

void fault_proxy::heal() {
  impl_->apply([](settings& s) { s.blocked = {false, false}; });
}

void fault_proxy::block(direction d) {
  impl_->apply([d](settings& s) { s.blocked[static_cast<std::size_t>(d)] = true; });
}

void fault_proxy::unblock(direction d) {
  impl_->apply([d](settings& s) { s.blocked[static_cast<std::size_t>(d)] = false; });
}

store::status fault_proxy::delay(std::chrono::milliseconds d, std::chrono::milliseconds jitter) {
  if (d.count() < 0 || jitter.count() < 0)
    return store::status::invalid_argument("fault proxy: delay " + std::to_string(d.count()) +
                                           " ms with jitter " + std::to_string(jitter.count()) +
                                           " ms; both must be zero or more");
  impl_->apply([d, jitter](settings& s) {
    s.delay = d;
    s.jitter = jitter;
  });
  return store::status::ok();
}

store::status fault_proxy::drop(double probability) {
  if (!(probability >= 0.0 && probability <= 1.0))
    return store::status::invalid_argument("fault proxy: drop probability " +
                                           std::to_string(probability) +
                                           " is not a probability; give one in [0, 1]");
  impl_->apply([probability](settings& s) { s.drop_probability = probability; });
  return store::status::ok();
}

void fault_proxy::cut() {
  impl_->apply([](settings& s) { ++s.cuts_requested; });
}

fault_proxy_stats fault_proxy::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mutex_);
  return impl_->published_;
}

void fault_proxy::stop() {
  std::lock_guard<std::mutex> lock(impl_->stop_mutex_);
  if (!impl_->thread_.joinable())
    return;
  impl_->apply([](settings& s) { s.stopping = true; });
  impl_->thread_.join();
  close_gracefully(impl_->listen_fd_);
}

} // namespace syncmesh::scenarios
