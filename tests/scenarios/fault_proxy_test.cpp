#include "tests/await.hpp"
#include <boost/test/unit_test.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <memory>
#include <ostream>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "scenarios/fault_proxy.hpp"
#include "tests/store/seed.hpp"

using namespace std::chrono_literals;

namespace {

namespace sc = syncmesh::scenarios;
using steady = std::chrono::steady_clock;
using direction = sc::fault_proxy::direction;

/// How long a test waits for something that should happen.
constexpr steady::duration wait_max = 10s;
/// How long a test watches for something that must not happen.
constexpr steady::duration quiet_window = 200ms;
/// The pause between two looks at a polled condition.
constexpr steady::duration poll_interval = 1ms;

/// Polls `condition` until it holds or `timeout` passes; true when it held.
template <class Condition>
bool await(Condition&& condition, steady::duration timeout = wait_max) {
  return syncmesh::test::await(std::forward<Condition>(condition), timeout, poll_interval);
}

int millis_until(steady::time_point deadline) {
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - steady::now()).count();
  return static_cast<int>(std::max<long long>(left, 0));
}

class owned_fd {
public:
  explicit owned_fd(int fd = -1) : fd_(fd) {}
  ~owned_fd() { reset(); }
  owned_fd(owned_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  owned_fd& operator=(owned_fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  owned_fd(const owned_fd&) = delete;
  owned_fd& operator=(const owned_fd&) = delete;

  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = -1;
  }

private:
  int fd_;
};

bool make_nonblocking(int fd) {
  const int flags = ::fcntl(fd, F_GETFL);
  const int on = 1;
  return flags >= 0 && ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0 &&
         ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on) == 0;
}

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

/// A loopback socket bound to a port the OS chose, listening or not.
std::pair<owned_fd, std::uint16_t> bound_socket(bool listening) {
  owned_fd fd(::socket(AF_INET, SOCK_STREAM, 0));
  auto a = loopback(0);
  socklen_t size = sizeof a;
  const bool ok = fd.get() >= 0 &&
                  ::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                  (!listening || ::listen(fd.get(), SOMAXCONN) == 0) &&
                  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &size) == 0;
  BOOST_REQUIRE_MESSAGE(ok, "cannot bind a loopback socket: " << std::strerror(errno));
  return {std::move(fd), ntohs(a.sin_port)};
}

/// A non-blocking client socket connected to 127.0.0.1:`port`.
owned_fd connect_to(std::uint16_t port) {
  owned_fd fd(::socket(AF_INET, SOCK_STREAM, 0));
  const auto a = loopback(port);
  const bool ok = fd.get() >= 0 &&
                  ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0 &&
                  make_nonblocking(fd.get());
  BOOST_REQUIRE_MESSAGE(ok, "cannot connect to 127.0.0.1:" << port << ": " << std::strerror(errno));
  return fd;
}

bool send_all(int fd, const std::string& data, steady::time_point deadline) {
  std::size_t sent = 0;
  while (sent < data.size()) {
    const ssize_t n = ::send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd, POLLOUT, 0};
      if (steady::now() >= deadline)
        return false;
      ::poll(&p, 1, millis_until(deadline));
    } else if (n < 0 && errno != EINTR) {
      return false;
    }
  }
  return true;
}

/// Reads until `size` bytes came, the peer closed, or the deadline passed.
std::string read_bytes(int fd, std::size_t size, steady::time_point deadline) {
  std::string got;
  char buffer[64 * 1024];
  while (got.size() < size) {
    const ssize_t n = ::recv(fd, buffer, std::min(sizeof buffer, size - got.size()), 0);
    if (n > 0) {
      got.append(buffer, static_cast<std::size_t>(n));
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      pollfd p{fd, POLLIN, 0};
      if (steady::now() >= deadline)
        break;
      ::poll(&p, 1, millis_until(deadline));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  return got;
}

/// True when no byte and no FIN arrives on `fd` within `window`.
bool nothing_arrives_within(int fd, steady::duration window) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, millis_until(steady::now() + window)) == 0;
}

enum class ending { closed, reset, still_open };

std::ostream& operator<<(std::ostream& out, ending e) {
  switch (e) {
    case ending::closed: return out << "closed";
    case ending::reset: return out << "reset";
    case ending::still_open: return out << "still open";
  }
  return out;
}

/// Reads (and discards) until the peer closes or resets the connection.
ending await_end(int fd, steady::duration timeout = wait_max) {
  const auto deadline = steady::now() + timeout;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n == 0)
      return ending::closed;
    if (n > 0 || errno == EINTR)
      continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK)
      return ending::reset;
    if (steady::now() >= deadline)
      return ending::still_open;
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, millis_until(deadline));
  }
}

/// Sends each payload through its socket while reading the echo back, all
/// sockets at once; returns what each read back before the deadline.
std::vector<std::string> echo_all(const std::vector<owned_fd>& fds,
                                  const std::vector<std::string>& payloads,
                                  steady::time_point deadline) {
  std::vector<std::size_t> sent(fds.size(), 0);
  std::vector<std::string> got(fds.size());
  char buffer[64 * 1024];
  for (;;) {
    std::vector<pollfd> set;
    std::vector<std::size_t> owner;
    for (std::size_t i = 0; i < fds.size(); ++i) {
      short events = 0;
      if (sent[i] < payloads[i].size())
        events |= POLLOUT;
      if (got[i].size() < payloads[i].size())
        events |= POLLIN;
      if (events != 0) {
        set.push_back({fds[i].get(), events, 0});
        owner.push_back(i);
      }
    }
    if (set.empty() || steady::now() >= deadline)
      return got;
    if (::poll(set.data(), set.size(), millis_until(deadline)) <= 0)
      continue;
    for (std::size_t k = 0; k < set.size(); ++k) {
      const std::size_t i = owner[k];
      if (set[k].revents & POLLOUT) {
        const std::string& p = payloads[i];
        const ssize_t n = ::send(set[k].fd, p.data() + sent[i], p.size() - sent[i], MSG_NOSIGNAL);
        if (n > 0)
          sent[i] += static_cast<std::size_t>(n);
      }
      if (set[k].revents & (POLLIN | POLLHUP | POLLERR)) {
        const ssize_t n = ::recv(set[k].fd, buffer, sizeof buffer, 0);
        if (n > 0)
          got[i].append(buffer, static_cast<std::size_t>(n));
        else if (n == 0 || (errno != EAGAIN && errno != EINTR))
          return got;  // the connection ended early; the caller sees short data
      }
    }
  }
}

std::uint64_t fnv1a(const std::string& s) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (const char c : s)
    h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
  return h;
}

std::string random_bytes(std::size_t size, std::mt19937_64& rng) {
  std::string s(size, '\0');
  for (auto& c : s)
    c = static_cast<char>(rng());
  return s;
}

/// The byte at `offset` of an endless stream whose every window differs.
char stream_byte(std::uint64_t offset) {
  return static_cast<char>((offset ^ (offset >> 8) ^ (offset >> 16) ^ (offset >> 24)) * 0x9d);
}

std::size_t threads_in_process() {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& task : std::filesystem::directory_iterator("/proc/self/task"))
    ++n;
  return n;
}

/// A TCP echo server on 127.0.0.1 with an OS-chosen port: one thread with
/// poll(2) that writes back every byte on the connection it came in on and
/// closes once the peer's FIN came and everything is echoed.
class echo_server {
public:
  /// The most bytes a connection holds before the server stops reading it.
  static constexpr std::size_t pending_bytes_max = std::size_t{1} << 20;

  echo_server() {
    auto [fd, port] = bound_socket(true);
    listener_ = std::move(fd);
    port_ = port;
    int wake[2];
    BOOST_REQUIRE(::pipe(wake) == 0);
    wake_read_ = owned_fd(wake[0]);
    wake_write_ = owned_fd(wake[1]);
    BOOST_REQUIRE(::fcntl(listener_.get(), F_SETFL, O_NONBLOCK) == 0);
    BOOST_REQUIRE(::fcntl(wake_read_.get(), F_SETFL, O_NONBLOCK) == 0);
    thread_ = std::thread([this] { run(); });
  }

  ~echo_server() {
    stopping_ = true;
    const char byte = 1;
    if (::write(wake_write_.get(), &byte, 1) < 0) {
      // The thread is awake already when the pipe is full.
    }
    thread_.join();
  }

  std::uint16_t port() const { return port_; }
  std::uint64_t bytes_received() const { return bytes_received_; }
  std::uint64_t connections_accepted() const { return connections_accepted_; }
  std::uint64_t connections_open() const { return connections_open_; }

private:
  struct peer {
    owned_fd fd;
    std::string pending;
    bool eof = false;
    bool gone = false;
  };

  void run() {
    std::vector<peer> peers;
    char buffer[64 * 1024];
    while (!stopping_) {
      std::vector<pollfd> set{{wake_read_.get(), POLLIN, 0}, {listener_.get(), POLLIN, 0}};
      for (const auto& p : peers) {
        short events = 0;
        if (!p.eof && p.pending.size() < pending_bytes_max)
          events |= POLLIN;
        if (!p.pending.empty())
          events |= POLLOUT;
        set.push_back({events != 0 ? p.fd.get() : -1, events, 0});
      }
      if (::poll(set.data(), set.size(), -1) < 0)
        continue;
      for (std::size_t i = 0; i < peers.size(); ++i) {
        peer& p = peers[i];
        const std::size_t room = pending_bytes_max - p.pending.size();
        if (!p.eof && room > 0 && (set[i + 2].revents & (POLLIN | POLLHUP | POLLERR))) {
          const ssize_t n = ::recv(p.fd.get(), buffer, std::min(sizeof buffer, room), 0);
          if (n > 0) {
            p.pending.append(buffer, static_cast<std::size_t>(n));
            bytes_received_ += static_cast<std::uint64_t>(n);
          } else if (n == 0) {
            p.eof = true;
          } else if (errno != EAGAIN && errno != EINTR) {
            p.gone = true;
          }
        }
        if (!p.gone && !p.pending.empty()) {
          const ssize_t n = ::send(p.fd.get(), p.pending.data(), p.pending.size(), MSG_NOSIGNAL);
          if (n > 0)
            p.pending.erase(0, static_cast<std::size_t>(n));
          else if (n < 0 && errno != EAGAIN && errno != EINTR)
            p.gone = true;
        }
        if (p.eof && p.pending.empty())
          p.gone = true;
      }
      peers.erase(std::remove_if(peers.begin(), peers.end(), [](const peer& p) { return p.gone; }),
                  peers.end());
      for (;;) {
        owned_fd fd(::accept(listener_.get(), nullptr, nullptr));
        if (fd.get() < 0 || !make_nonblocking(fd.get()))
          break;
        ++connections_accepted_;
        peers.push_back(peer{std::move(fd), {}, false, false});
      }
      connections_open_ = peers.size();
    }
  }

  owned_fd listener_;
  std::uint16_t port_ = 0;
  owned_fd wake_read_;
  owned_fd wake_write_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> bytes_received_{0};
  std::atomic<std::uint64_t> connections_accepted_{0};
  std::atomic<std::uint64_t> connections_open_{0};
  std::thread thread_;
};

struct proxy_fixture {
  proxy_fixture() { start_proxy(1); }

  void start_proxy(std::uint64_t seed) {
    proxy.reset();
    auto r = sc::fault_proxy::start("127.0.0.1", echo.port(), seed);
    BOOST_REQUIRE_MESSAGE(r.is_ok(), r.error().to_string());
    proxy = std::move(r).value();
  }

  owned_fd client() { return connect_to(proxy->port()); }

  /// Round-trips a greeting through `fd`, so its target connection is open.
  void greet(const owned_fd& fd) {
    const std::string hello = "hello";
    BOOST_REQUIRE(send_all(fd.get(), hello, steady::now() + wait_max));
    BOOST_REQUIRE(read_bytes(fd.get(), hello.size(), steady::now() + wait_max) == hello);
  }

  sc::fault_proxy_stats stats() const { return proxy->stats(); }

  echo_server echo;
  std::unique_ptr<sc::fault_proxy> proxy;  // declared last: stops before the echo server
};

/// Sends `count` messages of 8 bytes one at a time through a proxy with drop
/// probability one half and `seed`, each only after the last was echoed or
/// dropped, so each is one chunk; returns which came back.
std::vector<bool> delivered_messages(proxy_fixture& f, std::uint64_t seed, int count) {
  f.start_proxy(seed);
  BOOST_REQUIRE(f.proxy->drop(0.5).is_ok());
  const owned_fd c = f.client();
  std::vector<bool> delivered;
  for (int i = 0; i < count; ++i) {
    std::string message = "msg " + std::to_string(1000 + i);
    message.resize(8, '.');
    const auto before = f.stats();
    BOOST_REQUIRE(send_all(c.get(), message, steady::now() + wait_max));
    const bool taken =
      await([&] { return f.stats().to_target.chunks_received > before.to_target.chunks_received; });
    BOOST_REQUIRE(taken);
    const auto after_up = f.stats();
    BOOST_REQUIRE_EQUAL(after_up.to_target.chunks_received, before.to_target.chunks_received + 1);
    if (after_up.to_target.chunks_dropped > before.to_target.chunks_dropped) {
      delivered.push_back(false);
      continue;
    }
    const bool echoed =
      await([&] { return f.stats().to_client.chunks_received > before.to_client.chunks_received; });
    BOOST_REQUIRE(echoed);
    const auto after_down = f.stats();
    BOOST_REQUIRE_EQUAL(after_down.to_client.chunks_received, before.to_client.chunks_received + 1);
    if (after_down.to_client.chunks_dropped > before.to_client.chunks_dropped) {
      delivered.push_back(false);
      continue;
    }
    BOOST_REQUIRE_EQUAL(read_bytes(c.get(), message.size(), steady::now() + wait_max), message);
    delivered.push_back(true);
  }
  return delivered;
}

} // namespace

BOOST_FIXTURE_TEST_SUITE(fault_proxy, proxy_fixture)

BOOST_AUTO_TEST_CASE(bytes_round_trip_unchanged_over_several_connections) {
  std::mt19937_64 rng(syncmesh::test::test_seed());
  constexpr std::size_t connections = 4;
  constexpr std::size_t payload_bytes = 1'000'000;
  std::vector<owned_fd> fds;
  std::vector<std::string> payloads;
  for (std::size_t i = 0; i < connections; ++i) {
    fds.push_back(client());
    payloads.push_back(random_bytes(payload_bytes, rng));
  }

  const auto got = echo_all(fds, payloads, steady::now() + wait_max);

  for (std::size_t i = 0; i < connections; ++i) {
    BOOST_TEST_CONTEXT("connection " << i) {
      BOOST_TEST(got[i].size() == payload_bytes);
      BOOST_TEST(fnv1a(got[i]) == fnv1a(payloads[i]));
    }
  }
  const bool counted = await([&] {
    const auto s = stats();
    return s.to_target.bytes_forwarded == connections * payload_bytes &&
           s.to_client.bytes_forwarded == connections * payload_bytes;
  });
  BOOST_TEST(counted);
  const auto s = stats();
  BOOST_TEST(s.connections_accepted == connections);
  BOOST_TEST(s.connections_open == connections);
  BOOST_TEST(s.to_target.bytes_held == 0u);
  BOOST_TEST(s.to_target.chunks_dropped + s.to_client.chunks_dropped == 0u);
}

BOOST_AUTO_TEST_CASE(a_partition_holds_bytes_and_heal_delivers_them_all_in_order) {
  const owned_fd open_before = client();
  greet(open_before);

  proxy->partition();
  const owned_fd opened_during = client();
  std::mt19937_64 rng(7);
  const std::string first = random_bytes(64 * 1024, rng);
  const std::string second = random_bytes(64 * 1024, rng);
  BOOST_REQUIRE(send_all(open_before.get(), first, steady::now() + wait_max));
  BOOST_REQUIRE(send_all(opened_during.get(), second, steady::now() + wait_max));

  // The proxy has every byte, and passes none on.
  const bool held =
    await([&] { return stats().to_target.bytes_held == first.size() + second.size(); });
  BOOST_REQUIRE(held);
  BOOST_TEST(nothing_arrives_within(open_before.get(), quiet_window));
  BOOST_TEST(nothing_arrives_within(opened_during.get(), 0ms));
  BOOST_TEST(echo.bytes_received() == 5u);
  BOOST_TEST(echo.connections_accepted() == 1u);  // the new one is held
  BOOST_TEST(stats().connections_accepted == 2u);

  proxy->heal();
  BOOST_TEST(read_bytes(open_before.get(), first.size(), steady::now() + wait_max) == first);
  BOOST_TEST(read_bytes(opened_during.get(), second.size(), steady::now() + wait_max) == second);
  BOOST_TEST(echo.connections_accepted() == 2u);
}

BOOST_AUTO_TEST_CASE(a_one_way_block_holds_only_its_direction) {
  const owned_fd c = client();
  greet(c);
  const std::string request(10'000, 'q');

  proxy->block(direction::to_client);
  BOOST_REQUIRE(send_all(c.get(), request, steady::now() + wait_max));
  const bool reached_target = await([&] { return echo.bytes_received() == 5 + request.size(); });
  BOOST_TEST(reached_target);
  const bool echo_held = await([&] { return stats().to_client.bytes_held == request.size(); });
  BOOST_TEST(echo_held);
  BOOST_TEST(nothing_arrives_within(c.get(), quiet_window));
  proxy->unblock(direction::to_client);
  BOOST_TEST(read_bytes(c.get(), request.size(), steady::now() + wait_max) == request);

  const std::string second(20'000, 'r');
  proxy->block(direction::to_target);
  BOOST_REQUIRE(send_all(c.get(), second, steady::now() + wait_max));
  const bool request_held = await([&] { return stats().to_target.bytes_held == second.size(); });
  BOOST_REQUIRE(request_held);
  BOOST_TEST(nothing_arrives_within(c.get(), quiet_window));
  BOOST_TEST(echo.bytes_received() == 5 + request.size());
  proxy->heal();
  BOOST_TEST(read_bytes(c.get(), second.size(), steady::now() + wait_max) == second);
}

BOOST_AUTO_TEST_CASE(a_full_direction_buffer_pushes_back_on_the_writer_and_loses_nothing) {
  constexpr auto bound = sc::fault_proxy::direction_buffer_bytes_max;
  // Loopback socket buffers grow to a few MiB; far less than this.
  constexpr std::uint64_t writable_bytes_max = bound + (std::uint64_t{64} << 20);
  const owned_fd c = client();
  greet(c);
  proxy->block(direction::to_target);

  // Writes until the proxy holds its bound and the socket takes no more.
  std::uint64_t written = 0;
  std::uint64_t held_max = 0;
  bool pushed_back = false;
  const auto deadline = steady::now() + wait_max;
  std::string piece(64 * 1024, '\0');
  while (steady::now() < deadline && written < writable_bytes_max) {
    for (std::size_t i = 0; i < piece.size(); ++i)
      piece[i] = stream_byte(written + i);
    const ssize_t n = ::send(c.get(), piece.data(), piece.size(), MSG_NOSIGNAL);
    const int send_errno = errno;
    const auto held = stats().to_target.bytes_held;
    held_max = std::max<std::uint64_t>(held_max, held);
    if (n > 0) {
      written += static_cast<std::uint64_t>(n);
      continue;
    }
    BOOST_REQUIRE_MESSAGE(send_errno == EAGAIN || send_errno == EWOULDBLOCK,
                          std::strerror(send_errno));
    // Pushed back for good only once the proxy stopped reading at its bound.
    if (held == bound) {
      pushed_back = true;
      break;
    }
    pollfd p{c.get(), POLLOUT, 0};
    ::poll(&p, 1, 1);
  }
  BOOST_TEST_MESSAGE("the writer was pushed back after " << written << " bytes");
  BOOST_TEST(pushed_back);
  BOOST_TEST(held_max == bound);
  BOOST_TEST(written < writable_bytes_max);
  BOOST_TEST(echo.bytes_received() == 5u);

  proxy->heal();
  const std::string back = read_bytes(c.get(), written, steady::now() + wait_max);
  BOOST_REQUIRE_EQUAL(back.size(), written);
  std::uint64_t first_wrong = written;
  for (std::uint64_t i = 0; i < written && first_wrong == written; ++i)
    if (back[i] != stream_byte(i))
      first_wrong = i;
  BOOST_TEST(first_wrong == written, "the first wrong byte is at offset " << first_wrong);
  BOOST_TEST(stats().to_target.chunks_dropped == 0u);
}

BOOST_AUTO_TEST_CASE(a_delay_makes_a_round_trip_take_at_least_twice_the_delay_and_keeps_order) {
  constexpr auto d = 50ms;
  BOOST_REQUIRE(proxy->delay(d, 30ms).is_ok());
  const owned_fd c = client();

  const std::string ping(1024, 'p');
  const auto sent_at = steady::now();
  BOOST_REQUIRE(send_all(c.get(), ping, steady::now() + wait_max));
  BOOST_REQUIRE(read_bytes(c.get(), ping.size(), steady::now() + wait_max) == ping);
  using std::chrono::duration_cast;
  using std::chrono::microseconds;
  const auto round_trip_us = duration_cast<microseconds>(steady::now() - sent_at).count();
  // Each direction delays by at least d.
  BOOST_TEST(round_trip_us >= duration_cast<microseconds>(2 * d).count());

  // Many small writes become many chunks with different jitter; none may
  // overtake another.
  std::string all;
  for (int i = 0; i < 200; ++i) {
    std::string message(256, static_cast<char>('a' + i % 26));
    message.replace(0, 4, std::to_string(1000 + i));
    BOOST_REQUIRE(send_all(c.get(), message, steady::now() + wait_max));
    all += message;
  }
  const std::string back = read_bytes(c.get(), all.size(), steady::now() + wait_max);
  BOOST_TEST(back.size() == all.size());
  BOOST_TEST((back == all));
  BOOST_TEST(stats().to_target.chunks_received > 2u);
}

BOOST_AUTO_TEST_CASE(a_delay_or_jitter_below_zero_is_an_invalid_argument) {
  const auto r = proxy->delay(-1ms);
  BOOST_TEST((r.code() == syncmesh::store::errc::invalid_argument));
  BOOST_TEST(r.message().find("must be zero or more") != std::string::npos);
  BOOST_TEST((proxy->delay(1ms, -1ms).code() == syncmesh::store::errc::invalid_argument));
}

BOOST_AUTO_TEST_CASE(drop_one_discards_every_chunk_and_drop_zero_none) {
  const owned_fd c = client();
  greet(c);

  BOOST_REQUIRE(proxy->drop(1.0).is_ok());
  const std::string lost(30'000, 'x');
  BOOST_REQUIRE(send_all(c.get(), lost, steady::now() + wait_max));
  const bool all_dropped = await([&] { return stats().to_target.bytes_dropped == lost.size(); });
  BOOST_REQUIRE(all_dropped);
  BOOST_TEST(nothing_arrives_within(c.get(), quiet_window));
  BOOST_TEST(echo.bytes_received() == 5u);
  const auto s = stats();
  BOOST_TEST(s.to_target.chunks_dropped > 0u);
  // Every chunk but the greeting's.
  BOOST_TEST(s.to_target.chunks_dropped == s.to_target.chunks_received - 1);

  BOOST_REQUIRE(proxy->drop(0).is_ok());
  const std::string kept(30'000, 'k');
  BOOST_REQUIRE(send_all(c.get(), kept, steady::now() + wait_max));
  BOOST_TEST(read_bytes(c.get(), kept.size(), steady::now() + wait_max) == kept);
  BOOST_TEST(stats().to_target.chunks_dropped == s.to_target.chunks_dropped);
  BOOST_TEST(stats().to_client.chunks_dropped == 0u);
}

BOOST_AUTO_TEST_CASE(a_drop_probability_outside_zero_to_one_is_an_invalid_argument) {
  for (const double p : {-0.1, 1.5, std::nan("")}) {
    const auto r = proxy->drop(p);
    BOOST_TEST((r.code() == syncmesh::store::errc::invalid_argument), "drop(" << p << ")");
  }
}

BOOST_AUTO_TEST_CASE(the_same_seed_drops_the_same_chunks) {
  constexpr int messages = 48;
  const auto first = delivered_messages(*this, 7, messages);
  const auto replay = delivered_messages(*this, 7, messages);
  const auto other = delivered_messages(*this, 8, messages);

  BOOST_TEST(first == replay, boost::test_tools::per_element());
  BOOST_TEST((first != other));
  const auto kept = std::count(first.begin(), first.end(), true);
  BOOST_TEST(kept > 0);
  BOOST_TEST(kept < messages);
}

BOOST_AUTO_TEST_CASE(a_cut_resets_every_connection_and_later_ones_still_work) {
  const owned_fd one = client();
  const owned_fd two = client();
  greet(one);
  greet(two);
  BOOST_REQUIRE_EQUAL(echo.connections_open(), 2u);

  proxy->cut();
  BOOST_TEST(await_end(one.get(), 1s) != ending::still_open);
  BOOST_TEST(await_end(two.get(), 1s) != ending::still_open);
  const bool targets_closed = await([&] { return echo.connections_open() == 0; });
  BOOST_TEST(targets_closed);
  BOOST_TEST(stats().cuts == 1u);
  BOOST_TEST(stats().connections_cut == 2u);
  BOOST_TEST(stats().connections_open == 0u);

  const owned_fd three = client();
  greet(three);
  BOOST_TEST(stats().connections_accepted == 3u);
}

BOOST_AUTO_TEST_CASE(a_target_that_is_down_closes_the_client_connection) {
  // Bound but not listening: a connection to it is refused.
  const auto [down, down_port] = bound_socket(false);
  auto r = sc::fault_proxy::start("127.0.0.1", down_port, 1);
  BOOST_REQUIRE_MESSAGE(r.is_ok(), r.error().to_string());
  const auto to_nowhere = std::move(r).value();

  const owned_fd c = connect_to(to_nowhere->port());
  BOOST_TEST(await_end(c.get(), 2s) != ending::still_open);
  const bool counted = await([&] { return to_nowhere->stats().connections_refused == 1; });
  BOOST_TEST(counted);
  BOOST_TEST(to_nowhere->stats().connections_open == 0u);
}

BOOST_AUTO_TEST_CASE(stop_with_live_connections_returns_promptly_and_leaves_no_thread) {
  proxy.reset();
  const auto threads_before = threads_in_process();
  start_proxy(1);
  BOOST_TEST(threads_in_process() == threads_before + 1);

  std::vector<owned_fd> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(client());
    greet(clients.back());
  }
  BOOST_REQUIRE(proxy->delay(10s).is_ok());
  BOOST_REQUIRE(send_all(clients[0].get(), std::string(100'000, 'z'), steady::now() + wait_max));
  const bool in_flight = await([&] { return stats().to_target.bytes_held == 100'000; });
  BOOST_REQUIRE(in_flight);

  const auto stop_started = steady::now();
  proxy->stop();
  const auto stop_took = steady::now() - stop_started;
  BOOST_TEST(std::chrono::duration_cast<std::chrono::milliseconds>(stop_took).count() < 1000);
  // A joined thread may linger in /proc for a moment while the kernel reaps it.
  const bool thread_gone = await([&] { return threads_in_process() == threads_before; });
  BOOST_TEST(thread_gone);
  for (const auto& c : clients)
    BOOST_TEST(await_end(c.get(), 1s) != ending::still_open);
  const bool targets_closed = await([&] { return echo.connections_open() == 0; });
  BOOST_TEST(targets_closed);

  // Faults after stop do nothing, and the counters stay readable.
  proxy->partition();
  proxy->cut();
  proxy->stop();
  BOOST_TEST(stats().connections_accepted == 3u);
  BOOST_TEST(stats().connections_open == 0u);
}

BOOST_AUTO_TEST_SUITE_END()
