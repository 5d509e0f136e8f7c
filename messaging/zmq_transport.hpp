#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "messaging/curve_keys.hpp"
#include "messaging/peer_protocol.hpp"
#include "messaging/transport.hpp"
#include "store/status.hpp"

namespace syncmesh::messaging {

/// How a zmq_transport listens, secures and times its links.
struct zmq_transport_options {
  std::string node_id;  // this node's id; its routing id on every outgoing link

  /// Where the ROUTER for incoming links binds ("tcp://127.0.0.1:0" lets the
  /// OS choose the port; bound_endpoint() tells which). Empty: no incoming
  /// links.
  std::string bind_endpoint;

  /// frame_bytes_max bounds every frame both ways: send() refuses larger
  /// ones, and ZeroMQ (ZMQ_MAXMSGSIZE) drops a larger incoming frame before
  /// it is read, together with the connection that sent it.
  peer::limits limits;

  /// This node's key pair. When set, every link uses CURVE: incoming links
  /// are admitted only from keys in `allowed_clients`, outgoing links need
  /// the peer's public key (zmq_peer_address::server_public_key).
  std::optional<curve_key_pair> keys;

  /// Client public key (Z85) → the node id that key may use. A client
  /// presenting another node id than its key's is refused.
  std::map<std::string, std::string> allowed_clients;

  /// Without keys, binding to anything but loopback (127.0.0.0/8, [::1],
  /// localhost, ipc://, inproc://) is refused unless this says true.
  bool insecure = false;

  /// ZeroMQ heartbeats (ZMQ_HEARTBEAT_IVL / _TIMEOUT / _TTL) on every
  /// connection: a peer silent for heartbeat_timeout is dropped, and the
  /// drop is reported as `disconnected`.
  std::chrono::milliseconds heartbeat_interval{1000};
  std::chrono::milliseconds heartbeat_timeout{5000};

  /// ZeroMQ's reconnect backoff for outgoing links (ZMQ_RECONNECT_IVL, _MAX).
  std::chrono::milliseconds reconnect_interval{100};
  std::chrono::milliseconds reconnect_interval_max{5000};

  /// Frames queued per link (ZMQ_SNDHWM / ZMQ_RCVHWM); more are dropped and
  /// counted, as send() never blocks.
  int queue_frames_max = 10000;

  /// Sentences about refusals and failures (a refused client key with its
  /// Z85 text, a failed handshake, a dropped link). Called on the I/O thread
  /// or the ZAP thread, so it must be thread-safe and must not call back
  /// into the transport. Unset: nothing is said, the counters still count.
  std::function<void(const std::string& sentence)> log;
};

/// Where an outgoing link goes.
struct zmq_peer_address {
  std::string endpoint;           // tcp://HOST:PORT, ipc://PATH
  std::string server_public_key;  // Z85; required when the transport has keys
};

/// What a zmq_transport has done since it started. Every field only grows.
struct zmq_transport_counters {
  std::uint64_t frames_sent = 0;         // handed to ZeroMQ
  std::uint64_t frames_received = 0;     // delivered to `received`
  std::uint64_t frames_too_large = 0;    // refused by send(): over frame_bytes_max
  std::uint64_t frames_dropped = 0;      // queue full, or the link went down on the way
  std::uint64_t links_up = 0;            // `connected` reports
  std::uint64_t links_down = 0;          // `disconnected` reports
  std::uint64_t handshakes_failed = 0;   // this node's outgoing handshakes refused or broken
  std::uint64_t clients_refused = 0;     // incoming keys the ZAP handler refused
  std::uint64_t impostors_refused = 0;   // admitted keys that claimed another node id
};

/// The transport seam over ZeroMQ (the real network).
///
/// A node binds one ROUTER for incoming links and opens one DEALER per
/// outgoing link, with its node id as routing id. One I/O thread owns every
/// socket and runs every callback of the handler, one at a time; other
/// threads hand work to it through a queue and an inproc wake-up. A second
/// thread answers ZAP (inproc://zeromq.zap.01) from the allow-list when the
/// transport has keys. The transport owns its ZeroMQ context, because ZAP
/// is per context and the allow-list is per transport; so inproc:// links
/// between two transports are not possible.
///
/// A link is up when the two ends have shaken hands at the ZeroMQ level
/// (NULL or CURVE, ZAP included) and then exchanged the transport's own
/// attach/attached messages, so both sides report `connected` only when
/// frames can flow both ways. Data frames are one-part messages; the
/// transport's own messages are two-part ([empty, verb]), so any frame,
/// even an empty one, travels as is.
///
/// Disconnects: ZeroMQ heartbeats close a connection whose peer is silent,
/// and a socket monitor (zmq_socket_monitor) on every socket reports each
/// closed connection; for the ROUTER the connection is matched to its peer by
/// file descriptor (ZMQ_SRCFD of the attach message). Heartbeats alone
/// would drop dead connections without telling anyone, and monitors alone
/// would not notice a silent partition; together they report both.
///
/// Each peer has one link state, up while either an outgoing or an incoming
/// connection to it is attached; send() prefers the outgoing one.
class zmq_transport final : public transport {
public:
  /// Checks the options, binds (when bind_endpoint is set) and starts the
  /// threads. Errors: invalid_argument with a sentence (no node id, keys
  /// that are not Z85, CURVE missing from libzmq, a non-loopback bind
  /// without keys and without insecure); io_error naming the endpoint when it
  /// cannot be bound.
  static store::result<std::unique_ptr<zmq_transport>> start(zmq_transport_options options);

  /// Closes every socket (peers see their links drop) and joins the
  /// threads. No callback runs once it returns. Must not be called from a
  /// callback.
  ~zmq_transport() override;

  zmq_transport(const zmq_transport&) = delete;
  zmq_transport& operator=(const zmq_transport&) = delete;

  /// The endpoint actually bound, with the port the OS chose
  /// ("tcp://127.0.0.1:41234"); empty without bind_endpoint.
  const std::string& bound_endpoint() const noexcept;

  /// Where connect(peer) goes. Replaces an earlier address; a link already
  /// open keeps its old one until it is disconnected. Any thread.
  /// Errors: invalid_argument (empty endpoint, a missing or non-Z85 server
  /// key when the transport has keys).
  store::status add_peer(const std::string& peer, zmq_peer_address address);

  zmq_transport_counters counters() const noexcept;

  // transport. Any thread, callbacks included; none blocks on the network.
  const std::string& local_id() const override;
  void set_handler(transport_handler handler) override;
  /// A peer without an address (add_peer) is reported `disconnected` with a
  /// sentence saying so.
  void connect(const std::string& peer) override;
  void disconnect(const std::string& peer) override;
  /// False, and the frame dropped, when there is no link to `peer` or the
  /// frame is larger than limits.frame_bytes_max (counted in
  /// frames_too_large).
  [[nodiscard]] bool send(const std::string& peer, std::string frame) override;

private:
  struct impl;
  explicit zmq_transport(std::unique_ptr<impl> state);

  std::unique_ptr<impl> impl_;
};

/// Whether binding to `endpoint` keeps the socket reachable from this
/// machine only: tcp:// on 127.0.0.0/8, [::1] or localhost, ipc:// and
/// inproc://.
bool is_loopback_endpoint(const std::string& endpoint);

} // namespace syncmesh::messaging
