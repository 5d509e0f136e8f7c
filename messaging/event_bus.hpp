#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "store/status.hpp"

namespace syncmesh::messaging {

/// A node's event stream (sync:start, sync:end, error, conflict, state
/// changes) over ZeroMQ PUB/SUB. Each event is a JSON map with a string
/// "type"; on the wire it is two frames: the type (the topic subscribers
/// filter on by prefix) and the event as MessagePack.
///
/// Delivery is best effort, as PUB/SUB is: a subscriber sees only events
/// published after its subscription reached the publisher, and a subscriber
/// more than event_queue_max events behind loses the newest ones.

/// The largest event, in MessagePack bytes (event_bytes_max).
inline constexpr std::size_t event_bytes_max_default = std::size_t{1} << 20;
/// Events queued per subscriber on each side before ZeroMQ drops (event_queue_max).
inline constexpr int event_queue_max_default = 10'000;

class event_publisher {
public:
  /// Binds a PUB socket to `endpoint` ("tcp://127.0.0.1:0" and
  /// "tcp://127.0.0.1:*" let the OS choose the port).
  /// Errors: io_error naming the endpoint when it cannot be bound.
  /// REQUIRES: `ctx` outlives the publisher.
  static store::result<std::unique_ptr<event_publisher>> bind(
      zmq::context_t& ctx, const std::string& endpoint,
      std::size_t event_bytes_max = event_bytes_max_default,
      int queue_max = event_queue_max_default);

  event_publisher(const event_publisher&) = delete;
  event_publisher& operator=(const event_publisher&) = delete;

  /// The endpoint actually bound, with the port the OS chose.
  const std::string& last_endpoint() const noexcept { return last_endpoint_; }

  /// Sends `event` to every subscriber whose prefix matches its type. Any
  /// thread; never blocks. Having no subscribers is not an error.
  /// Errors: invalid_argument when `event` is not a map with a non-empty
  /// string "type" or encodes to more than event_bytes_max; io_error when
  /// the socket fails.
  [[nodiscard]] store::status publish(const nlohmann::json& event);

private:
  event_publisher(zmq::socket_t socket, std::string last_endpoint, std::size_t event_bytes_max);

  std::mutex mutex_;
  zmq::socket_t socket_;  // guarded by mutex_
  const std::string last_endpoint_;
  const std::size_t event_bytes_max_;
};

class event_subscriber {
public:
  /// Connects a SUB socket to a publisher at `endpoint` and subscribes to
  /// events whose type starts with `topic_prefix` ("" = every event).
  /// Connecting succeeds before the publisher is up; events flow once it is.
  /// Errors: io_error when the endpoint is malformed.
  /// REQUIRES: `ctx` outlives the subscriber.
  static store::result<std::unique_ptr<event_subscriber>> connect(
      zmq::context_t& ctx, const std::string& endpoint, const std::string& topic_prefix = "",
      std::size_t event_bytes_max = event_bytes_max_default,
      int queue_max = event_queue_max_default);

  event_subscriber(const event_subscriber&) = delete;
  event_subscriber& operator=(const event_subscriber&) = delete;

  /// The next event, waiting at most `timeout`; nullopt when none came.
  /// Errors: invalid_argument for a frame that is not an event (the frame is
  /// consumed; the next call reads on); io_error when the socket fails.
  /// Not thread-safe.
  store::result<std::optional<nlohmann::json>> next(std::chrono::milliseconds timeout);

private:
  event_subscriber(zmq::socket_t socket, std::string endpoint, std::size_t event_bytes_max);

  zmq::socket_t socket_;
  const std::string endpoint_;
  const std::size_t event_bytes_max_;
};

} // namespace syncmesh::messaging
