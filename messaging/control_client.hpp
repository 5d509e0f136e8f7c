#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "messaging/control_codec.hpp"
#include "store/status.hpp"

namespace syncmesh::messaging {

/// The tool end of the control protocol: one DEALER socket, one call at a
/// time. Not thread-safe; give each thread its own client.
/// REQUIRES: `ctx` outlives the client.
class control_client {
public:
  /// Connects lazily, on the first call. `timeout` bounds each call;
  /// `max_reply_bytes` is the largest reply frame accepted
  /// (control_reply_bytes_max).
  control_client(zmq::context_t& ctx, std::string endpoint, std::chrono::milliseconds timeout,
                 std::size_t max_reply_bytes = control_reply_bytes_max_default);
  ~control_client();

  control_client(const control_client&) = delete;
  control_client& operator=(const control_client&) = delete;

  /// Sends one request and waits for its reply. A node that refuses the
  /// request is still a reply: ok=false with the node's sentence.
  /// Errors: io_error when no reply came within the timeout or the endpoint
  /// cannot be reached (after which the next call starts on a fresh socket,
  /// so a late reply is never taken for a later request); invalid_argument
  /// when the reply cannot be read.
  store::result<control_reply> call(const std::string& verb,
                                    nlohmann::json args = nlohmann::json::object());

  const std::string& endpoint() const noexcept { return endpoint_; }

private:
  store::status connect();
  void reset();

  zmq::context_t& ctx_;
  const std::string endpoint_;
  const std::chrono::milliseconds timeout_;
  const std::size_t max_reply_bytes_;
  std::unique_ptr<zmq::socket_t> socket_;  // null until connected and after a timeout
  std::uint64_t next_id_ = 1;
};

} // namespace syncmesh::messaging
