#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <zmq.hpp>

#include "messaging/control_codec.hpp"
#include "store/status.hpp"

namespace syncmesh::messaging {

/// Bounds on one control socket besides the request size.
struct control_server_bounds {
  /// Requests accepted and not yet answered on the wire. A request past the
  /// bound is refused at once with a sentence naming control_in_flight_max.
  std::size_t in_flight_max = 1024;
  /// A request whose handler has not replied within this long is answered
  /// with an error naming control_reply_ttl_ms, and its token expires.
  std::chrono::milliseconds reply_ttl{60'000};
};

/// Frames up to this many times control_request_bytes_max are read and refused
/// with a sentence; ZeroMQ drops a connection that sends a larger frame
/// without reading it, so one peer cannot make the node buffer unbounded bytes.
inline constexpr std::size_t control_frame_read_factor = 4;

/// Called on the server thread for each request that decoded. It must not
/// block (forward the request to an actor and return); the answer goes back
/// through control_server::reply(token, ...), exactly once per token.
using control_handler = std::function<void(std::uint64_t token, control_request request)>;

/// The node end of the control protocol: a ZeroMQ ROUTER socket and the one
/// thread that owns it. Serves REQ clients and DEALER clients, with or
/// without an empty delimiter frame; a reply goes back with the envelope its
/// request came with. A frame that does not decode is answered with an error
/// right away and the server keeps serving.
class control_server {
public:
  /// Binds a ROUTER socket to `endpoint` ("tcp://127.0.0.1:0" and
  /// "tcp://127.0.0.1:*" let the OS choose the port) and starts the server
  /// thread. `max_request_bytes` is the node's control_request_bytes_max.
  /// Errors: io_error naming the endpoint when it cannot be bound;
  /// invalid_argument when a bound is 0 or the handler is empty.
  /// REQUIRES: `ctx` outlives the server.
  static store::result<std::unique_ptr<control_server>> start(
      zmq::context_t& ctx, const std::string& endpoint, std::size_t max_request_bytes,
      control_handler handler, control_server_bounds bounds = {});

  /// Stops the server thread (see stop()).
  ~control_server();

  control_server(const control_server&) = delete;
  control_server& operator=(const control_server&) = delete;

  /// The endpoint actually bound, with the port the OS chose
  /// ("tcp://127.0.0.1:41234").
  const std::string& last_endpoint() const noexcept;

  /// Answers the request that was handed to the handler with `token`. The
  /// reply goes out with that request's id whatever rep.id holds. Any thread,
  /// any time; a token that is unknown, already answered or expired is
  /// ignored. Never blocks on the network.
  void reply(std::uint64_t token, const control_reply& rep);

  /// Stops serving and joins the server thread; requests not yet answered are
  /// dropped. Idempotent. Must not be called from the handler.
  void stop();

private:
  struct impl;
  explicit control_server(std::unique_ptr<impl> state);

  std::unique_ptr<impl> impl_;
};

} // namespace syncmesh::messaging
