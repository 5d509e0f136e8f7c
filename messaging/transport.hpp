#pragma once

#include <functional>
#include <string>

namespace syncmesh::messaging {

/// What a transport reports to the one who owns it. Each callback runs on
/// the transport's delivery context (the scheduler's caller for the
/// in-memory network, the poller thread for ZeroMQ), one at a time; a
/// callback may call back into the transport. Unset callbacks are skipped.
struct transport_handler {
  /// A link to `peer` is up: frames can flow both ways.
  std::function<void(const std::string& peer)> connected;
  /// The link to `peer` is down; `reason` is a sentence. Frames in flight
  /// on it are lost.
  std::function<void(const std::string& peer, const std::string& reason)> disconnected;
  /// One whole frame from `peer`, exactly as it was sent.
  std::function<void(const std::string& peer, std::string frame)> received;
};

/// The transport seam: moves whole frames between this node and its peers,
/// named by node id. A frame arrives whole or not at all; nothing more is
/// promised — frames may be lost, duplicated, delayed and reordered, and a
/// partition may silence a link without closing it. The peer protocol copes
/// (batch ids, acks, retransmission, heartbeats).
class transport {
public:
  virtual ~transport() = default;

  /// This node's id.
  virtual const std::string& local_id() const = 0;

  /// REQUIRES: called before connect(), and before any peer connects.
  virtual void set_handler(transport_handler handler) = 0;

  /// Starts connecting to `peer` and keeps trying until it answers; both
  /// sides then see `connected`. Connecting to a linked peer does nothing.
  virtual void connect(const std::string& peer) = 0;

  /// Closes the link to `peer` (and stops trying to connect); both sides
  /// see `disconnected`.
  virtual void disconnect(const std::string& peer) = 0;

  /// Queues `frame` for `peer`. False when there is no link to `peer` or
  /// the transport bounds frames and `frame` is over its bound (the frame is
  /// dropped); true means queued, not delivered.
  [[nodiscard]] virtual bool send(const std::string& peer, std::string frame) = 0;
};

} // namespace syncmesh::messaging
