#include "messaging/zmq_transport.hpp"

#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <limits>
#include <mutex>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include <zmq.hpp>

#include "messaging/endpoint.hpp"
#include "messaging/frames.hpp"

namespace syncmesh::messaging {
namespace {

using store::status;

// The transport's own messages travel as [empty, verb]; data frames as one part.
constexpr std::string_view verb_attach = "attach";      // dealer → router: link me
constexpr std::string_view verb_attached = "attached";  // router → dealer: linked
constexpr std::string_view verb_detach = "detach";      // either way: unlinked

// At most [routing id, empty, verb] is meaningful; more parts are dropped.
constexpr std::size_t message_frames_max = 3;

// Messages read from one socket per turn, so one busy peer cannot starve the rest.
constexpr std::size_t reads_per_turn_max = 256;

constexpr const char* zap_endpoint = "inproc://zeromq.zap.01";
constexpr const char* zap_domain = "syncmesh";

constexpr int monitored_events = ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                                 ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                 ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                 ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;

std::string as_string(const zmq::message_t& m) { return {m.data<char>(), m.size()}; }

std::string_view as_view(const zmq::message_t& m) { return {m.data<char>(), m.size()}; }

struct monitor_event {
  std::uint16_t event = 0;
  std::int32_t value = 0;  // fd, errno, protocol error or ZAP status, by event
  std::string address;
};

// Reads one monitor event (two parts: [u16 event, u32 value], address)
// without waiting; false when none is ready.
bool read_monitor_event(zmq::socket_t& monitor, monitor_event& out) {
  std::vector<zmq::message_t> parts;
  bool too_many = false;
  if (!receive_message(monitor, 2, parts, too_many))
    return false;
  out = monitor_event{};
  if (parts[0].size() >= 6) {
    std::memcpy(&out.event, parts[0].data(), 2);
    std::memcpy(&out.value, parts[0].data<char>() + 2, 4);
  }
  if (parts.size() > 1)
    out.address = as_string(parts[1]);
  return true;
}

int clamp_ms(std::chrono::milliseconds ms) {
  if (ms.count() > std::numeric_limits<int>::max())
    return std::numeric_limits<int>::max();
  return static_cast<int>(ms.count() < 0 ? 0 : ms.count());
}

std::string z85_of(std::string_view binary_key) {
  if (binary_key.size() != 32)
    return "(a " + std::to_string(binary_key.size()) + "-byte key)";
  std::array<char, curve_key_z85_chars + 1> text{};
  if (zmq_z85_encode(text.data(), reinterpret_cast<const std::uint8_t*>(binary_key.data()),
                     binary_key.size()) == nullptr)
    return "(not encodable)";
  return text.data();
}

struct counters_state {
  std::atomic<std::uint64_t> frames_sent{0};
  std::atomic<std::uint64_t> frames_received{0};
  std::atomic<std::uint64_t> frames_too_large{0};
  std::atomic<std::uint64_t> frames_dropped{0};
  std::atomic<std::uint64_t> links_up{0};
  std::atomic<std::uint64_t> links_down{0};
  std::atomic<std::uint64_t> handshakes_failed{0};
  std::atomic<std::uint64_t> clients_refused{0};
  std::atomic<std::uint64_t> impostors_refused{0};
};

void bump(std::atomic<std::uint64_t>& c) { c.fetch_add(1, std::memory_order_relaxed); }

} // namespace

bool is_loopback_endpoint(const std::string& endpoint) {
  if (endpoint.rfind("ipc://", 0) == 0 || endpoint.rfind("inproc://", 0) == 0)
    return true;
  constexpr std::string_view tcp = "tcp://";
  if (endpoint.rfind(tcp, 0) != 0)
    return false;
  const std::string rest = endpoint.substr(tcp.size());
  const auto colon = rest.rfind(':');
  if (colon == std::string::npos)
    return false;
  const std::string host = rest.substr(0, colon);
  if (host == "localhost" || host == "lo" || host == "[::1]")
    return true;
  // 127.0.0.0/8, written as four decimal parts.
  if (host.rfind("127.", 0) != 0)
    return false;
  int dots = 0;
  for (char c : host) {
    if (c == '.')
      ++dots;
    else if (c < '0' || c > '9')
      return false;
  }
  return dots == 3;
}

struct zmq_transport::impl {
  explicit impl(zmq_transport_options o)
      : opts(std::move(o)),
        ctx(1),
        wake_rx(ctx, zmq::socket_type::pull),
        wake_tx(ctx, zmq::socket_type::push) {}

  // One outgoing link: its DEALER and the PAIR reading the DEALER's monitor.
  struct outgoing {
    zmq::socket_t dealer;
    zmq::socket_t monitor;
    std::string endpoint;
    bool attached = false;
  };

  // One incoming link, known from its attach message.
  struct incoming {
    int fd = -1;  // the ROUTER's connection it came on (ZMQ_SRCFD)
    bool attached = false;
  };

  enum class command_kind { connect, disconnect, send };
  struct command {
    command_kind kind;
    std::string peer;
    std::string frame;
  };

  void run();
  void run_zap();
  void turn();
  void read_router(const transport_handler& h);
  void read_router_monitor(const transport_handler& h);
  void read_outgoing(const std::string& peer, outgoing& link, const transport_handler& h);
  void read_outgoing_monitor(const std::string& peer, outgoing& link, const transport_handler& h);
  void on_attach(const std::string& peer, std::vector<zmq::message_t>& parts,
                 const transport_handler& h);
  void run_commands(const transport_handler& h);
  void open_outgoing(const std::string& peer, const transport_handler& h);
  void close_outgoing(const std::string& peer, const transport_handler& h);
  void send_frame(const std::string& peer, const std::string& frame);
  bool send_control_to_dealer(outgoing& link, std::string_view verb);
  bool send_control_from_router(const std::string& peer, std::string_view verb);
  void link_up(const std::string& peer, const transport_handler& h);
  void link_down(const std::string& peer, const std::string& reason, const transport_handler& h);
  void say(const std::string& sentence) const;
  void wake();
  void apply_link_options(zmq::socket_t& s) const;

  const zmq_transport_options opts;
  zmq::context_t ctx;
  counters_state counts;
  std::string bound_endpoint;
  std::uint64_t instance = 0;
  std::uint64_t next_monitor = 0;

  // Owned by the I/O thread once it runs.
  std::optional<zmq::socket_t> router;
  std::optional<zmq::socket_t> router_monitor;
  zmq::socket_t wake_rx;
  std::map<std::string, std::unique_ptr<outgoing>> out;
  std::map<std::string, incoming> in;
  std::map<int, std::string> fd_peer;  // ROUTER connections carrying an attached peer

  // Owned by the ZAP thread once it runs.
  std::optional<zmq::socket_t> zap;

  std::mutex wake_mutex;
  zmq::socket_t wake_tx;  // guarded by wake_mutex

  std::thread io_thread;
  std::thread zap_thread;
  std::atomic<std::thread::id> io_thread_id{};

  mutable std::mutex mutex;  // guards everything below
  std::shared_ptr<const transport_handler> handler = std::make_shared<transport_handler>();
  std::deque<command> commands;
  std::size_t queued_frames = 0;  // send commands in `commands`
  std::map<std::string, zmq_peer_address> addresses;
  std::set<std::string> linked;  // peers reported `connected` and not since `disconnected`
  bool wake_sent = false;
  bool stopping = false;
};

void zmq_transport::impl::say(const std::string& sentence) const {
  if (!opts.log)
    return;
  try {
    opts.log(sentence);
  } catch (...) {
    // A broken logger must not take the link threads down with it.
  }
}

void zmq_transport::impl::wake() {
  std::lock_guard<std::mutex> lock(wake_mutex);
  try {
    // A full pipe means a wake-up is already queued: dropping this one is fine.
    (void)wake_tx.send(zmq::const_buffer(), zmq::send_flags::dontwait);
  } catch (const zmq::error_t&) {
    // The context is being terminated; the I/O thread is leaving anyway.
  }
}

void zmq_transport::impl::apply_link_options(zmq::socket_t& s) const {
  s.set(zmq::sockopt::linger, 0);
  s.set(zmq::sockopt::maxmsgsize,
        opts.limits.frame_bytes_max >= static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max())
            ? std::int64_t{-1}
            : static_cast<std::int64_t>(opts.limits.frame_bytes_max));
  s.set(zmq::sockopt::sndhwm, opts.queue_frames_max);
  s.set(zmq::sockopt::rcvhwm, opts.queue_frames_max);
  s.set(zmq::sockopt::heartbeat_ivl, clamp_ms(opts.heartbeat_interval));
  s.set(zmq::sockopt::heartbeat_timeout, clamp_ms(opts.heartbeat_timeout));
  s.set(zmq::sockopt::heartbeat_ttl, clamp_ms(opts.heartbeat_timeout));
}

void zmq_transport::impl::link_up(const std::string& peer, const transport_handler& h) {
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (!linked.insert(peer).second)
      return;
  }
  bump(counts.links_up);
  if (h.connected) {
    try {
      h.connected(peer);
    } catch (const std::exception& e) {
      say(std::string("the connected callback for ") + peer + " threw: " + e.what());
    }
  }
}

void zmq_transport::impl::link_down(const std::string& peer, const std::string& reason,
                                    const transport_handler& h) {
  auto o = out.find(peer);
  auto i = in.find(peer);
  if ((o != out.end() && o->second->attached) || (i != in.end() && i->second.attached))
    return;  // the other direction still carries the link
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (linked.erase(peer) == 0)
      return;
  }
  bump(counts.links_down);
  if (h.disconnected) {
    try {
      h.disconnected(peer, reason);
    } catch (const std::exception& e) {
      say(std::string("the disconnected callback for ") + peer + " threw: " + e.what());
    }
  }
}

bool zmq_transport::impl::send_control_to_dealer(outgoing& link, std::string_view verb) {
  try {
    if (!link.dealer.send(zmq::const_buffer(), zmq::send_flags::sndmore | zmq::send_flags::dontwait))
      return false;
    return link.dealer.send(zmq::buffer(verb), zmq::send_flags::dontwait).has_value();
  } catch (const zmq::error_t& e) {
    if (e.num() == ETERM)
      throw;
    return false;
  }
}

bool zmq_transport::impl::send_control_from_router(const std::string& peer,
                                                   std::string_view verb) {
  try {
    if (!router->send(zmq::buffer(peer), zmq::send_flags::sndmore | zmq::send_flags::dontwait))
      return false;
    (void)router->send(zmq::const_buffer(), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
    return router->send(zmq::buffer(verb), zmq::send_flags::dontwait).has_value();
  } catch (const zmq::error_t& e) {
    if (e.num() == ETERM)
      throw;
    return false;  // EHOSTUNREACH: the peer's connection is gone
  }
}

void zmq_transport::impl::send_frame(const std::string& peer, const std::string& frame) {
  try {
    auto o = out.find(peer);
    if (o != out.end() && o->second->attached) {
      if (o->second->dealer.send(zmq::buffer(frame), zmq::send_flags::dontwait))
        bump(counts.frames_sent);
      else
        bump(counts.frames_dropped);
      return;
    }
    auto i = in.find(peer);
    if (router && i != in.end() && i->second.attached) {
      if (router->send(zmq::buffer(peer), zmq::send_flags::sndmore | zmq::send_flags::dontwait) &&
          router->send(zmq::buffer(frame), zmq::send_flags::dontwait))
        bump(counts.frames_sent);
      else
        bump(counts.frames_dropped);
      return;
    }
    bump(counts.frames_dropped);  // the link went down after send() queued it
  } catch (const zmq::error_t& e) {
    if (e.num() == ETERM)
      throw;
    bump(counts.frames_dropped);
  }
}

void zmq_transport::impl::open_outgoing(const std::string& peer, const transport_handler& h) {
  auto existing = out.find(peer);
  if (existing != out.end()) {
    // A link a peer detached stays open at the ZeroMQ level; ask again.
    if (!existing->second->attached)
      (void)send_control_to_dealer(*existing->second, verb_attach);
    return;
  }
  zmq_peer_address address;
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto a = addresses.find(peer);
    if (a != addresses.end())
      address = a->second;
  }
  if (address.endpoint.empty()) {
    const std::string reason = "no address is known for peer " + peer +
                               "; give it one (add_peer) before connecting";
    say(reason);
    if (h.disconnected) {
      try {
        h.disconnected(peer, reason);
      } catch (const std::exception& e) {
        say(std::string("the disconnected callback for ") + peer + " threw: " + e.what());
      }
    }
    return;
  }
  auto link = std::make_unique<outgoing>();
  link->endpoint = address.endpoint;
  try {
    link->dealer = zmq::socket_t(ctx, zmq::socket_type::dealer);
    apply_link_options(link->dealer);
    link->dealer.set(zmq::sockopt::routing_id, opts.node_id);
    link->dealer.set(zmq::sockopt::reconnect_ivl, clamp_ms(opts.reconnect_interval));
    link->dealer.set(zmq::sockopt::reconnect_ivl_max, clamp_ms(opts.reconnect_interval_max));
    if (opts.keys) {
      link->dealer.set(zmq::sockopt::curve_serverkey, address.server_public_key);
      link->dealer.set(zmq::sockopt::curve_publickey, opts.keys->public_key);
      link->dealer.set(zmq::sockopt::curve_secretkey, opts.keys->secret_key);
    }
    const std::string monitor_endpoint = "inproc://syncmesh-transport-monitor-" +
                                         std::to_string(instance) + "-" +
                                         std::to_string(next_monitor++);
    if (zmq_socket_monitor(link->dealer.handle(), monitor_endpoint.c_str(), monitored_events) != 0)
      throw zmq::error_t();
    link->monitor = zmq::socket_t(ctx, zmq::socket_type::pair);
    link->monitor.set(zmq::sockopt::linger, 0);
    link->monitor.connect(monitor_endpoint);
    link->dealer.connect(address.endpoint);
  } catch (const zmq::error_t& e) {
    const std::string reason = "cannot open a link to " + peer + " at " + address.endpoint +
                               " (" + e.what() + "); check the peer's endpoint";
    say(reason);
    if (h.disconnected) {
      try {
        h.disconnected(peer, reason);
      } catch (const std::exception& x) {
        say(std::string("the disconnected callback for ") + peer + " threw: " + x.what());
      }
    }
    return;
  }
  out.emplace(peer, std::move(link));
}

void zmq_transport::impl::close_outgoing(const std::string& peer, const transport_handler& h) {
  auto o = out.find(peer);
  if (o != out.end()) {
    // Closing the DEALER closes the TCP connection; the peer's monitor
    // reports it there. Nothing queued on it is sent (linger 0).
    o->second->dealer.close();
    o->second->monitor.close();
    out.erase(o);
  }
  auto i = in.find(peer);
  if (i != in.end() && i->second.attached) {
    (void)send_control_from_router(peer, verb_detach);
    i->second.attached = false;
  }
  link_down(peer, "this node closed the link to " + peer, h);
}

void zmq_transport::impl::on_attach(const std::string& peer,
                                    std::vector<zmq::message_t>& parts,
                                    const transport_handler& h) {
  zmq::message_t& last = parts.back();
  if (opts.keys) {
    // ZAP answered with the node id the client's key belongs to.
    const char* user = nullptr;
    try {
      user = last.gets("User-Id");
    } catch (const zmq::error_t&) {
      user = nullptr;
    }
    if (user == nullptr || peer != user) {
      bump(counts.impostors_refused);
      say("refused a link from a client calling itself " + peer + ": its key belongs to " +
          (user ? std::string(user) : std::string("no node")) +
          " (allowed_clients); the link stays closed");
      return;
    }
  }
  // The connection's HANDSHAKE_SUCCEEDED event was queued before its first
  // message; reading the monitor now settles which connection owns the fd.
  read_router_monitor(h);
  const int fd = last.get(ZMQ_SRCFD);
  auto& link = in[peer];
  if (link.attached && link.fd != fd)
    fd_peer.erase(link.fd);
  link.fd = fd;
  link.attached = true;
  fd_peer[fd] = peer;
  (void)send_control_from_router(peer, verb_attached);
  link_up(peer, h);
}

void zmq_transport::impl::read_router(const transport_handler& h) {
  for (std::size_t n = 0; n < reads_per_turn_max; ++n) {
    std::vector<zmq::message_t> parts;
    bool too_many = false;
    if (!receive_message(*router, message_frames_max, parts, too_many))
      return;
    const std::string peer = as_string(parts[0]);
    if (too_many || parts.size() < 2) {
      bump(counts.frames_dropped);
      continue;
    }
    if (parts.size() == 2) {
      auto i = in.find(peer);
      if (i == in.end() || !i->second.attached) {
        bump(counts.frames_dropped);  // not attached: the link was closed here
        continue;
      }
      bump(counts.frames_received);
      if (h.received) {
        try {
          h.received(peer, as_string(parts[1]));
        } catch (const std::exception& e) {
          say(std::string("the received callback for ") + peer + " threw: " + e.what());
        }
      }
      continue;
    }
    const std::string_view verb = as_view(parts[2]);
    if (parts[1].size() != 0) {
      bump(counts.frames_dropped);
    } else if (verb == verb_attach) {
      on_attach(peer, parts, h);
    } else if (verb == verb_detach) {
      auto i = in.find(peer);
      if (i != in.end() && i->second.attached) {
        i->second.attached = false;
        link_down(peer, peer + " closed the link", h);
      }
    } else {
      bump(counts.frames_dropped);
    }
  }
}

void zmq_transport::impl::read_router_monitor(const transport_handler& h) {
  monitor_event ev;
  while (read_monitor_event(*router_monitor, ev)) {
    switch (ev.event) {
      case ZMQ_EVENT_DISCONNECTED: {
        auto f = fd_peer.find(ev.value);
        if (f == fd_peer.end())
          break;
        const std::string peer = f->second;
        fd_peer.erase(f);
        auto i = in.find(peer);
        if (i != in.end() && i->second.fd == ev.value) {
          in.erase(i);
          link_down(peer,
                    "the connection from " + peer +
                        " closed: its node stopped, a heartbeat timed out, or it sent a frame "
                        "over frame_bytes_max (" +
                        std::to_string(opts.limits.frame_bytes_max) + " bytes)",
                    h);
        }
        break;
      }
      case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        say("a client failed the " + std::string(opts.keys ? "CURVE" : "ZeroMQ") +
            " handshake on " + bound_endpoint + " (ZeroMQ protocol error " +
            std::to_string(ev.value) + "); it may be using a wrong server key");
        break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        say("a client's handshake on " + bound_endpoint + " broke off: " +
            zmq_strerror(ev.value));
        break;
      default:
        // HANDSHAKE_FAILED_AUTH: the ZAP thread has counted and said it.
        break;
    }
  }
}

void zmq_transport::impl::read_outgoing(const std::string& peer, outgoing& link,
                                        const transport_handler& h) {
  for (std::size_t n = 0; n < reads_per_turn_max; ++n) {
    std::vector<zmq::message_t> parts;
    bool too_many = false;
    if (!receive_message(link.dealer, message_frames_max, parts, too_many))
      return;
    if (parts.size() == 1) {
      if (!link.attached) {
        bump(counts.frames_dropped);
        continue;
      }
      bump(counts.frames_received);
      if (h.received) {
        try {
          h.received(peer, as_string(parts[0]));
        } catch (const std::exception& e) {
          say(std::string("the received callback for ") + peer + " threw: " + e.what());
        }
      }
      continue;
    }
    if (too_many || parts.size() != 2 || parts[0].size() != 0) {
      bump(counts.frames_dropped);
      continue;
    }
    const std::string_view verb = as_view(parts[1]);
    if (verb == verb_attached) {
      if (!link.attached) {
        link.attached = true;
        link_up(peer, h);
      }
    } else if (verb == verb_detach) {
      if (link.attached) {
        link.attached = false;
        link_down(peer, peer + " closed the link", h);
      }
    } else {
      bump(counts.frames_dropped);
    }
  }
}

void zmq_transport::impl::read_outgoing_monitor(const std::string& peer, outgoing& link,
                                                const transport_handler& h) {
  monitor_event ev;
  while (read_monitor_event(link.monitor, ev)) {
    switch (ev.event) {
      case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
        // Every (re)connection attaches anew; the peer answers `attached`.
        (void)send_control_to_dealer(link, verb_attach);
        break;
      case ZMQ_EVENT_DISCONNECTED:
        if (link.attached) {
          link.attached = false;
          link_down(peer,
                    "the connection to " + peer + " at " + link.endpoint +
                        " closed: its node stopped, a heartbeat timed out, or a frame was over "
                        "its size bound; reconnecting",
                    h);
        }
        break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        bump(counts.handshakes_failed);
        say(peer + " at " + link.endpoint + " refused this node's key (ZAP status " +
            std::to_string(ev.value) + "); add public key " +
            (opts.keys ? opts.keys->public_key : std::string("(none)")) + " to " + peer +
            "'s allow-list");
        break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        bump(counts.handshakes_failed);
        say("the handshake with " + peer + " at " + link.endpoint +
            " failed (ZeroMQ protocol error " + std::to_string(ev.value) +
            "); check that both sides use CURVE and that the server key is " + peer + "'s");
        break;
      case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        bump(counts.handshakes_failed);
        say("the handshake with " + peer + " at " + link.endpoint + " broke off (" +
            zmq_strerror(ev.value) + "); with CURVE, check that the server key is " + peer +
            "'s and that " + peer + " has keys too");
        break;
      default:
        break;
    }
  }
}

void zmq_transport::impl::run_commands(const transport_handler& h) {
  std::deque<command> batch;
  {
    std::lock_guard<std::mutex> lock(mutex);
    batch.swap(commands);
    queued_frames = 0;
    wake_sent = false;
  }
  for (auto& c : batch) {
    switch (c.kind) {
      case command_kind::connect: open_outgoing(c.peer, h); break;
      case command_kind::disconnect: close_outgoing(c.peer, h); break;
      case command_kind::send: send_frame(c.peer, c.frame); break;
    }
  }
}

void zmq_transport::impl::turn() {
  std::vector<zmq_pollitem_t> items;
  std::vector<std::pair<const std::string*, outgoing*>> links;
  items.push_back({wake_rx.handle(), 0, ZMQ_POLLIN, 0});
  if (router) {
    items.push_back({router_monitor->handle(), 0, ZMQ_POLLIN, 0});
    items.push_back({router->handle(), 0, ZMQ_POLLIN, 0});
  }
  const std::size_t first_link = items.size();
  for (auto& [peer, link] : out) {
    items.push_back({link->monitor.handle(), 0, ZMQ_POLLIN, 0});
    items.push_back({link->dealer.handle(), 0, ZMQ_POLLIN, 0});
    links.emplace_back(&peer, link.get());
  }
  bool work_waiting = false;
  {
    std::lock_guard<std::mutex> lock(mutex);
    work_waiting = !commands.empty();
  }
  zmq::poll(items.data(), items.size(),
            std::chrono::milliseconds(work_waiting ? 0 : -1));

  if (items[0].revents & ZMQ_POLLIN) {
    zmq::message_t signal;
    while (wake_rx.recv(signal, zmq::recv_flags::dontwait)) {
    }
  }
  // Taken after the poll, so a handler set while the thread waited is used.
  std::shared_ptr<const transport_handler> handler_now;
  {
    std::lock_guard<std::mutex> lock(mutex);
    if (stopping)
      return;
    handler_now = handler;
  }
  const transport_handler& h = *handler_now;
  if (router) {
    // Monitor first: a connection's close is settled before its peer's
    // next attach is read.
    if (items[1].revents & ZMQ_POLLIN)
      read_router_monitor(h);
    if (items[2].revents & ZMQ_POLLIN)
      read_router(h);
  }
  for (std::size_t k = 0; k < links.size(); ++k) {
    const std::string& peer = *links[k].first;
    outgoing& link = *links[k].second;
    if (items[first_link + 2 * k].revents & ZMQ_POLLIN)
      read_outgoing_monitor(peer, link, h);
    if (items[first_link + 2 * k + 1].revents & ZMQ_POLLIN)
      read_outgoing(peer, link, h);
  }
  run_commands(h);
}

void zmq_transport::impl::run() {
  io_thread_id = std::this_thread::get_id();
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (stopping)
        return;
    }
    try {
      turn();
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM)
        return;
      if (e.num() != EINTR)
        say(std::string("the transport's I/O thread hit a ZeroMQ error and goes on: ") + e.what());
    }
  }
}

void zmq_transport::impl::run_zap() {
  for (;;) {
    std::vector<zmq::message_t> parts;
    bool too_many = false;
    try {
      if (!receive_message(*zap, 16, parts, too_many, zmq::recv_flags::none))
        continue;
    } catch (const zmq::error_t&) {
      return;  // ETERM: the transport is stopping
    }
    // ZAP request: version, request id, domain, address, routing id,
    // mechanism, credentials (the client's 32-byte public key for CURVE).
    // Whatever arrives is answered (a REP socket must), malformed requests with 400.
    const std::string request_id = parts.size() > 1 ? as_string(parts[1]) : std::string();
    const std::string address = parts.size() > 3 ? as_string(parts[3]) : std::string("?");
    const std::string mechanism = parts.size() > 5 ? as_string(parts[5]) : std::string("?");
    std::string status_code = "400";
    std::string status_text = "key not on the allow-list";
    std::string user_id;
    if (mechanism == "CURVE" && parts.size() >= 7) {
      const std::string key = z85_of(as_view(parts[6]));
      auto it = opts.allowed_clients.find(key);
      if (it != opts.allowed_clients.end()) {
        status_code = "200";
        status_text = "OK";
        user_id = it->second;
      } else {
        bump(counts.clients_refused);
        say("refused a client at " + address + ": its key " + key +
            " is not on this node's allow-list (allowed_clients)");
      }
    } else {
      bump(counts.clients_refused);
      status_text = "CURVE required";
      say("refused a client at " + address + " that did not use CURVE (mechanism " +
          mechanism + "); this node takes CURVE links only");
    }
    try {
      const std::array<std::string, 6> reply = {"1.0", request_id, status_code, status_text,
                                                user_id, ""};
      for (std::size_t k = 0; k < reply.size(); ++k)
        (void)zap->send(zmq::buffer(reply[k]),
                        k + 1 < reply.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    } catch (const zmq::error_t&) {
      return;
    }
  }
}

zmq_transport::zmq_transport(std::unique_ptr<impl> state) : impl_(std::move(state)) {}

zmq_transport::~zmq_transport() {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->stopping = true;
  }
  impl_->wake();
  if (impl_->io_thread.joinable())
    impl_->io_thread.join();
  impl_->ctx.shutdown();  // the ZAP thread's blocking recv ends with ETERM
  if (impl_->zap_thread.joinable())
    impl_->zap_thread.join();
  for (auto& [peer, link] : impl_->out) {
    link->dealer.close();
    link->monitor.close();
  }
  impl_->out.clear();
  if (impl_->router) {
    impl_->router->close();
    impl_->router_monitor->close();
  }
  if (impl_->zap)
    impl_->zap->close();
  impl_->wake_rx.close();
  impl_->wake_tx.close();
  impl_->ctx.close();
}

store::result<std::unique_ptr<zmq_transport>> zmq_transport::start(
    zmq_transport_options options) {
  if (options.node_id.empty() || options.node_id.size() > peer::node_id_bytes_max)
    return status::invalid_argument("a transport needs a node id of 1 to " +
                                    std::to_string(peer::node_id_bytes_max) + " bytes");
  if (options.limits.frame_bytes_max == 0)
    return status::invalid_argument("frame_bytes_max must be at least 1");
  if (options.queue_frames_max <= 0)
    return status::invalid_argument("queue_frames_max must be at least 1");
  if (options.keys) {
    if (!curve_available())
      return status::invalid_argument(
          "keys are configured but this libzmq has no CURVE (libsodium); install a libzmq "
          "with CURVE support, such as Debian's libzmq5");
    if (!is_z85_key(options.keys->public_key) || !is_z85_key(options.keys->secret_key))
      return status::invalid_argument("the node's key pair is not Z85 text; write one with "
                                      "`syncmesh keygen`");
    for (const auto& [key, node] : options.allowed_clients) {
      if (!is_z85_key(key))
        return status::invalid_argument("allowed client key \"" + key + "\" (for " + node +
                                        ") is not 40 characters of Z85 text");
      if (node.empty())
        return status::invalid_argument("allowed client key " + key + " names no node id");
    }
  } else if (!options.bind_endpoint.empty() && !is_loopback_endpoint(options.bind_endpoint) &&
             !options.insecure) {
    return status::invalid_argument(
        "refusing to listen for peers on " + options.bind_endpoint +
        " without CURVE keys: anyone who can reach it could read and change this node's "
        "data; configure a key pair (syncmesh keygen) and an allow-list, bind to 127.0.0.1, "
        "or set insecure = true to accept the risk");
  }

  static std::atomic<std::uint64_t> instances{0};
  std::unique_ptr<impl> st;
  try {
    st = std::make_unique<impl>(std::move(options));
  } catch (const zmq::error_t& e) {
    return status::io_error(std::string("cannot create the transport's ZeroMQ context: ") +
                            e.what());
  }
  st->instance = instances.fetch_add(1);
  const std::string& endpoint = st->opts.bind_endpoint;
  try {
    const std::string wake_endpoint =
        "inproc://syncmesh-transport-wake-" + std::to_string(st->instance);
    st->wake_rx.set(zmq::sockopt::linger, 0);
    st->wake_tx.set(zmq::sockopt::linger, 0);
    st->wake_rx.bind(wake_endpoint);
    st->wake_tx.connect(wake_endpoint);
    if (st->opts.keys) {
      // Bound before the ROUTER so no handshake finds ZAP missing (which
      // would admit every key).
      st->zap.emplace(st->ctx, zmq::socket_type::rep);
      st->zap->set(zmq::sockopt::linger, 0);
      st->zap->bind(zap_endpoint);
    }
  } catch (const zmq::error_t& e) {
    return status::io_error(std::string("cannot set up the transport's inproc sockets: ") +
                            e.what());
  }
  if (!endpoint.empty()) {
    try {
      st->router.emplace(st->ctx, zmq::socket_type::router);
      st->apply_link_options(*st->router);
      st->router->set(zmq::sockopt::router_mandatory, true);
      // A second connection claiming a linked node id is ignored rather than
      // handed the first one's link; heartbeats clear a dead first one.
      st->router->set(zmq::sockopt::router_handover, false);
      if (st->opts.keys) {
        st->router->set(zmq::sockopt::curve_server, true);
        st->router->set(zmq::sockopt::curve_secretkey, st->opts.keys->secret_key);
        st->router->set(zmq::sockopt::zap_domain, std::string(zap_domain));
      }
      const std::string monitor_endpoint =
          "inproc://syncmesh-transport-monitor-" + std::to_string(st->instance) + "-router";
      if (zmq_socket_monitor(st->router->handle(), monitor_endpoint.c_str(),
                             monitored_events) != 0)
        throw zmq::error_t();
      st->router_monitor.emplace(st->ctx, zmq::socket_type::pair);
      st->router_monitor->set(zmq::sockopt::linger, 0);
      st->router_monitor->connect(monitor_endpoint);
    } catch (const zmq::error_t& e) {
      return status::io_error("cannot set up the peer socket for " + endpoint + ": " + e.what());
    }
    try {
      st->router->bind(bindable_endpoint(endpoint));
      st->bound_endpoint = st->router->get(zmq::sockopt::last_endpoint);
    } catch (const zmq::error_t& e) {
      return status::io_error(
          "cannot listen for peers on " + endpoint + " (" + e.what() + "); " +
          (e.num() == EADDRINUSE
               ? "another process holds it; stop it or choose a free port (port 0 lets the OS "
                 "choose)"
               : "write it as tcp://HOST:PORT or ipc://PATH (port 0 lets the OS choose)"));
    }
  }
  try {
    if (st->zap)
      st->zap_thread = std::thread([raw = st.get()] { raw->run_zap(); });
    st->io_thread = std::thread([raw = st.get()] { raw->run(); });
  } catch (const std::system_error& e) {
    // ~zmq_transport would join what did start; build it to clean up.
    std::unique_ptr<zmq_transport> cleanup(new zmq_transport(std::move(st)));
    return status::io_error(std::string("cannot start the transport's threads: ") + e.what());
  }
  return std::unique_ptr<zmq_transport>(new zmq_transport(std::move(st)));
}

const std::string& zmq_transport::bound_endpoint() const noexcept { return impl_->bound_endpoint; }

store::status zmq_transport::add_peer(const std::string& peer, zmq_peer_address address) {
  if (peer.empty())
    return status::invalid_argument("a peer needs a node id");
  if (address.endpoint.empty())
    return status::invalid_argument("peer " + peer + " needs an endpoint (tcp://HOST:PORT)");
  if (impl_->opts.keys && !is_z85_key(address.server_public_key))
    return status::invalid_argument(
        "peer " + peer + " needs its public key (40 characters of Z85, from its key file's "
                         ".pub) because this node uses CURVE");
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->addresses[peer] = std::move(address);
  return status::ok();
}

zmq_transport_counters zmq_transport::counters() const noexcept {
  const auto& c = impl_->counts;
  zmq_transport_counters out;
  out.frames_sent = c.frames_sent.load();
  out.frames_received = c.frames_received.load();
  out.frames_too_large = c.frames_too_large.load();
  out.frames_dropped = c.frames_dropped.load();
  out.links_up = c.links_up.load();
  out.links_down = c.links_down.load();
  out.handshakes_failed = c.handshakes_failed.load();
  out.clients_refused = c.clients_refused.load();
  out.impostors_refused = c.impostors_refused.load();
  return out;
}

const std::string& zmq_transport::local_id() const { return impl_->opts.node_id; }

void zmq_transport::set_handler(transport_handler handler) {
  auto h = std::make_shared<const transport_handler>(std::move(handler));
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->handler = std::move(h);
}

namespace {

// Queues a command; wakes the I/O thread unless it is the caller (it runs
// queued commands at the end of every turn) or a wake-up is already on its way.
template <class Impl, class Command>
void enqueue(Impl& st, Command c) {
  bool signal = false;
  {
    std::lock_guard<std::mutex> lock(st.mutex);
    st.commands.push_back(std::move(c));
    signal = !st.wake_sent && std::this_thread::get_id() != st.io_thread_id.load();
    st.wake_sent = st.wake_sent || signal;
  }
  if (signal)
    st.wake();
}

} // namespace

void zmq_transport::connect(const std::string& peer) {
  enqueue(*impl_, impl::command{impl::command_kind::connect, peer, {}});
}

void zmq_transport::disconnect(const std::string& peer) {
  enqueue(*impl_, impl::command{impl::command_kind::disconnect, peer, {}});
}

bool zmq_transport::send(const std::string& peer, std::string frame) {
  if (frame.size() > impl_->opts.limits.frame_bytes_max) {
    bump(impl_->counts.frames_too_large);
    return false;
  }
  bool signal = false;
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    if (impl_->linked.count(peer) == 0)
      return false;
    if (impl_->queued_frames >= static_cast<std::size_t>(impl_->opts.queue_frames_max)) {
      bump(impl_->counts.frames_dropped);  // as a full ZeroMQ queue drops it
      return true;
    }
    impl_->commands.push_back(impl::command{impl::command_kind::send, peer, std::move(frame)});
    ++impl_->queued_frames;
    signal = !impl_->wake_sent && std::this_thread::get_id() != impl_->io_thread_id.load();
    impl_->wake_sent = impl_->wake_sent || signal;
  }
  if (signal)
    impl_->wake();
  return true;
}

} // namespace syncmesh::messaging
