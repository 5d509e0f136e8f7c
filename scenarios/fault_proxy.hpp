#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "store/status.hpp"

namespace syncmesh::scenarios {

/// Traffic through one direction of a fault_proxy, summed over all of its
/// connections since start().
struct fault_proxy_direction_stats {
  std::uint64_t bytes_forwarded = 0;  // written to the destination socket
  std::uint64_t chunks_received = 0;  // reads from the source, dropped or not
  std::uint64_t chunks_dropped = 0;   // of those, discarded by drop()
  std::uint64_t bytes_dropped = 0;    // the bytes in those chunks
  std::uint64_t bytes_held = 0;       // read and not yet written, right now
};

/// A snapshot of what a fault_proxy has done since start().
struct fault_proxy_stats {
  std::uint64_t connections_accepted = 0;
  std::uint64_t connections_open = 0;     // right now, held ones included
  std::uint64_t connections_refused = 0;  // the target refused; the client was reset
  std::uint64_t cuts = 0;                 // cut() calls carried out
  std::uint64_t connections_cut = 0;      // connections those cuts reset
  fault_proxy_direction_stats to_target;
  fault_proxy_direction_stats to_client;
};

/// A loopback TCP forwarder that puts faults on the links of a scenario.
///
/// It listens on 127.0.0.1 at port(); for every client it accepts it opens
/// one connection to the target and forwards bytes both ways, half-closes
/// (FIN) included. A reset on either side resets the other. One background
/// thread serves every connection with poll(2) on non-blocking sockets.
///
/// Each direction of each connection buffers at most
/// direction_buffer_bytes_max; while that buffer is full the proxy stops
/// reading the source, so TCP's own flow control pushes back on the writer.
/// Nothing is lost unless drop() says so or the connection is reset.
///
/// A *chunk* is what one read from a source socket returned (at most
/// read_chunk_bytes_max bytes); delay() and drop() act on whole chunks.
/// Random choices (jitter, drops) are a pure function of the seed, the
/// connection's number (accept order, from 0), the direction and the chunk's
/// number within that direction of that connection, so a seed replays the
/// same choices whatever the thread timing. Where chunk boundaries fall does
/// depend on timing; a writer that keeps one message in flight at a time
/// gets one chunk per message.
///
/// Every fault method is thread-safe and synchronous: when it returns, the
/// proxy thread has taken it up, and no byte moves against it afterwards.
/// After stop() they do nothing.
class fault_proxy {
public:
  /// The two ways bytes flow through a connection.
  enum class direction { to_target, to_client };

  /// The most bytes one direction of one connection holds (queued for
  /// delay, held by a block, or waiting for a slow reader).
  static constexpr std::size_t direction_buffer_bytes_max = std::size_t{1} << 20;
  /// The most bytes one read takes from a socket: the largest chunk.
  static constexpr std::size_t read_chunk_bytes_max = std::size_t{64} << 10;

  /// Listens on 127.0.0.1 with a port the OS chooses and starts the proxy
  /// thread. The target is resolved here and connected to once per accepted
  /// client. Fails with invalid_argument when the host does not resolve, and
  /// with io_error when the listening socket or the thread cannot be made.
  static store::result<std::unique_ptr<fault_proxy>> start(std::string target_host,
                                                           std::uint16_t target_port,
                                                           std::uint64_t seed);

  /// Stops the proxy as stop() does.
  ~fault_proxy();
  fault_proxy(const fault_proxy&) = delete;
  fault_proxy& operator=(const fault_proxy&) = delete;

  /// The port clients connect to, on 127.0.0.1. Valid until destruction.
  std::uint16_t port() const noexcept;

  /// Stops forwarding in both directions, the way a network partition with
  /// TCP retransmission would: bytes read are held, not dropped (up to the
  /// buffer bound, then the writers are pushed back), FINs are held too.
  /// While both directions are blocked new clients are still accepted, but
  /// their target connection is opened only once a direction is unblocked.
  void partition();
  /// Unblocks both directions: held connections connect and held bytes
  /// flow, in order. Leaves delay() and drop() as they are.
  void heal();
  /// Stops forwarding one direction, as partition() does for both.
  void block(direction d);
  /// Resumes one direction.
  void unblock(direction d);

  /// Releases each chunk read from now on no earlier than its arrival plus
  /// `d` plus a seeded jitter uniform in [0, jitter]; chunks keep their
  /// order within a direction, so a chunk waits for the one before it.
  /// delay(0ms) turns it off for new chunks. Chunks already queued keep
  /// their release time. Fails with invalid_argument when either is negative.
  store::status delay(std::chrono::milliseconds d,
                      std::chrono::milliseconds jitter = std::chrono::milliseconds{0});

  /// Discards each chunk read from now on with `probability` (seeded; see
  /// the class comment), in both directions; the connection stays open and
  /// its FIN still goes through. This tears holes in the byte stream and so
  /// breaks the framing of whatever protocol runs over it, on purpose: it
  /// shows that the protocol notices a corrupt stream. 0 turns it off, 1
  /// drops everything. Fails with invalid_argument outside [0, 1].
  store::status drop(double probability);

  /// Resets (RST, through SO_LINGER 0) both sides of every current
  /// connection, held ones included; their held bytes are lost. The
  /// listener stays open and later clients are served as usual.
  void cut();

  /// A consistent snapshot of the counters, as of the proxy thread's last
  /// pass. Callable from any thread, also after stop().
  fault_proxy_stats stats() const;

  /// Resets every connection, closes the listener and joins the thread.
  /// Idempotent; must not race with the destructor.
  void stop();

private:
  struct impl;
  explicit fault_proxy(std::unique_ptr<impl> state);

  std::unique_ptr<impl> impl_;
};

} // namespace syncmesh::scenarios
