#include "messaging/control_server.hpp"
#include "messaging/frames.hpp"

#include <atomic>
#include <cerrno>
#include <deque>
#include <limits>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "messaging/endpoint.hpp"

namespace syncmesh::messaging {
namespace {

using clock = std::chrono::steady_clock;
using store::status;

/// A request is an envelope (routing identity, then any delimiter) and one
/// payload frame; a message with more frames than this is refused.
constexpr std::size_t control_message_frames_max = 16;

/// Requests read per wake-up before queued replies get their turn.
constexpr std::size_t control_reads_per_wake_max = 256;

using envelope = std::vector<std::string>;

struct pending_request {
  envelope route;
  std::uint64_t request_id = 0;
};

struct outgoing_reply {
  envelope route;
  control_reply rep;
};

std::string frame_bytes(const zmq::message_t& m) { return {m.data<char>(), m.size()}; }

std::string bind_advice(int err) {
  if (err == EADDRINUSE)
    return "another process holds it; stop that process or set control_endpoint to a free "
           "address (port 0 lets the OS choose)";
  return "write it as tcp://HOST:PORT, ipc://PATH or inproc://NAME (port 0 lets the OS "
         "choose)";
}

} // namespace

struct control_server::impl {
  impl(zmq::context_t& ctx, std::size_t max_request_bytes, control_handler handler,
       control_server_bounds bounds)
      : max_request_bytes_(max_request_bytes),
        handler_(std::move(handler)),
        bounds_(bounds),
        router_(ctx, zmq::socket_type::router),
        wake_rx_(ctx, zmq::socket_type::pull),
        wake_tx_(ctx, zmq::socket_type::push) {}

  void run();
  void serve_one(std::vector<zmq::message_t>& parts);
  void refuse(envelope route, std::uint64_t request_id, std::string sentence);
  void send(const envelope& route, const control_reply& rep);
  void send_queued_replies(std::vector<outgoing_reply>& batch);
  void expire_overdue();
  void wake();
  long poll_timeout_ms() const;

  const std::size_t max_request_bytes_;
  const control_handler handler_;
  const control_server_bounds bounds_;

  // Touched only by the server thread once it runs.
  zmq::socket_t router_;
  zmq::socket_t wake_rx_;
  std::uint64_t next_token_ = 1;
  // Tokens in the order they were handed out, which is also deadline order.
  std::deque<std::pair<std::uint64_t, clock::time_point>> deadlines_;

  std::mutex wake_mutex_;
  zmq::socket_t wake_tx_;  // guarded by wake_mutex_

  std::string last_endpoint_;
  std::thread thread_;
  std::atomic<std::thread::id> thread_id_{};

  std::mutex mutex_;  // guards everything below
  std::unordered_map<std::uint64_t, pending_request> pending_;
  std::vector<outgoing_reply> outbox_;
  // Accepted requests not yet answered on the wire: pending_ + outbox_ + the
  // batch the server thread is sending. Bounded by bounds_.in_flight_max.
  std::size_t in_flight_ = 0;
  bool wake_sent_ = false;
  bool stopping_ = false;
};

void control_server::impl::wake() {
  std::lock_guard<std::mutex> lock(wake_mutex_);
  try {
    // A full pipe means a wake-up is already queued: dropping this one is fine.
    (void)wake_tx_.send(zmq::const_buffer(), zmq::send_flags::dontwait);
  } catch (const zmq::error_t&) {
    // The context is being terminated; the server thread is leaving anyway.
  }
}

long control_server::impl::poll_timeout_ms() const {
  if (deadlines_.empty())
    return -1;
  auto left = deadlines_.front().second - clock::now();
  if (left <= clock::duration::zero())
    return 0;
  // Round up so the wake-up does not come a fraction of a millisecond early.
  return static_cast<long>(
      std::chrono::ceil<std::chrono::milliseconds>(left).count());
}

void control_server::impl::run() {
  thread_id_ = std::this_thread::get_id();
  std::vector<outgoing_reply> batch;
  for (;;) {
    zmq_pollitem_t items[] = {{router_.handle(), 0, ZMQ_POLLIN, 0},
                              {wake_rx_.handle(), 0, ZMQ_POLLIN, 0}};
    try {
      zmq::poll(items, 2, std::chrono::milliseconds(poll_timeout_ms()));
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR)
        continue;
      return;  // ETERM: the context is going away
    }

    try {
      if (items[1].revents & ZMQ_POLLIN) {
        zmq::message_t signal;
        while (wake_rx_.recv(signal, zmq::recv_flags::dontwait)) {
        }
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stopping_)
          return;
        wake_sent_ = false;
        batch.swap(outbox_);
      }
      send_queued_replies(batch);

      if (items[0].revents & ZMQ_POLLIN) {
        for (std::size_t n = 0; n < control_reads_per_wake_max; ++n) {
          std::vector<zmq::message_t> parts;
          bool too_many = false;
          if (!receive_message(router_, control_message_frames_max, parts, too_many))
            break;
          if (too_many) {
            refuse({frame_bytes(parts.front()), std::string()}, 0,
                   "control message has more than " +
                       std::to_string(control_message_frames_max) +
                       " frames; send an optional empty delimiter and one payload frame");
            continue;
          }
          serve_one(parts);
        }
        // Replies the handler gave on this thread go out now, not after
        // another trip through the poller.
        {
          std::lock_guard<std::mutex> lock(mutex_);
          wake_sent_ = false;
          batch.swap(outbox_);
        }
        send_queued_replies(batch);
      }
      expire_overdue();
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM)
        return;
      // Any other failure concerns one message; the socket is still usable.
    }
  }
}

void control_server::impl::serve_one(std::vector<zmq::message_t>& parts) {
  envelope route;
  for (std::size_t i = 0; i + 1 < parts.size(); ++i)
    route.push_back(frame_bytes(parts[i]));
  // A ROUTER prefixes every message with the sender's identity, so there is
  // always an envelope; a lone identity frame has an empty payload.
  std::string_view payload;
  if (parts.size() >= 2)
    payload = std::string_view(parts.back().data<char>(), parts.back().size());
  else
    route.push_back(frame_bytes(parts.front()));

  auto req = decode_request(payload, max_request_bytes_);
  if (!req) {
    refuse(std::move(route), peek_request_id(payload, max_request_bytes_),
           req.error().message());
    return;
  }

  std::uint64_t token = 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (in_flight_ >= bounds_.in_flight_max) {
      token = 0;
    } else {
      token = next_token_++;
      pending_.emplace(token, pending_request{route, req->id});
      ++in_flight_;
    }
  }
  if (token == 0) {
    refuse(std::move(route), req->id,
           "the node already has " + std::to_string(bounds_.in_flight_max) +
               " control requests in flight (control_in_flight_max); retry when some "
               "have been answered");
    return;
  }
  deadlines_.emplace_back(token, clock::now() + bounds_.reply_ttl);

  const std::uint64_t request_id = req->id;
  try {
    handler_(token, std::move(*req));
  } catch (const std::exception& e) {
    // The handler broke its contract; answer for it so the client hears why.
    bool still_pending = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      still_pending = pending_.erase(token) > 0;
      if (still_pending)
        --in_flight_;
    }
    if (still_pending)
      refuse(std::move(route), request_id,
             std::string("the node could not take the request: ") + e.what());
  }
}

void control_server::impl::refuse(envelope route, std::uint64_t request_id,
                                  std::string sentence) {
  send(route, control_reply::failure(request_id, std::move(sentence)));
}

void control_server::impl::send(const envelope& route, const control_reply& rep) {
  const std::string payload = encode_reply(rep);
  try {
    for (const auto& frame : route)
      (void)router_.send(zmq::buffer(frame), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
    (void)router_.send(zmq::buffer(payload), zmq::send_flags::dontwait);
  } catch (const zmq::error_t& e) {
    if (e.num() == ETERM)
      throw;
    // The client went away or its queue is full; a ROUTER drops the reply
    // and the client's own timeout tells its user.
  }
}

void control_server::impl::send_queued_replies(std::vector<outgoing_reply>& batch) {
  if (batch.empty())
    return;
  for (const auto& out : batch)
    send(out.route, out.rep);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    in_flight_ -= batch.size();
  }
  batch.clear();
}

void control_server::impl::expire_overdue() {
  const auto now = clock::now();
  std::vector<pending_request> expired;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    while (!deadlines_.empty()) {
      const auto [token, deadline] = deadlines_.front();
      auto it = pending_.find(token);
      if (it != pending_.end()) {
        if (deadline > now)
          break;
        expired.push_back(std::move(it->second));
        pending_.erase(it);
        --in_flight_;
      }
      deadlines_.pop_front();
    }
  }
  for (auto& req : expired)
    refuse(std::move(req.route), req.request_id,
           "the node did not answer within " + std::to_string(bounds_.reply_ttl.count()) +
               " ms (control_reply_ttl_ms); the request may still take effect, check with "
               "`status`");
}

control_server::control_server(std::unique_ptr<impl> state) : impl_(std::move(state)) {}

control_server::~control_server() { stop(); }

store::result<std::unique_ptr<control_server>> control_server::start(
    zmq::context_t& ctx, const std::string& endpoint, std::size_t max_request_bytes,
    control_handler handler, control_server_bounds bounds) {
  if (max_request_bytes == 0)
    return status::invalid_argument("control_request_bytes_max must be at least 1");
  if (bounds.in_flight_max == 0)
    return status::invalid_argument("control_in_flight_max must be at least 1");
  if (bounds.reply_ttl <= std::chrono::milliseconds::zero())
    return status::invalid_argument("control_reply_ttl_ms must be at least 1");
  if (!handler)
    return status::invalid_argument("a control server needs a request handler");

  static std::atomic<std::uint64_t> instance{0};
  std::unique_ptr<impl> st;
  try {
    st = std::make_unique<impl>(ctx, max_request_bytes, std::move(handler), bounds);
    st->router_.set(zmq::sockopt::linger, 0);
    const std::size_t ceiling_max =
        static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max()) /
        control_frame_read_factor;
    st->router_.set(zmq::sockopt::maxmsgsize,
                    max_request_bytes > ceiling_max
                        ? std::int64_t{-1}
                        : static_cast<std::int64_t>(max_request_bytes * control_frame_read_factor));
    const std::string wake_endpoint =
        "inproc://syncmesh-control-wake-" + std::to_string(instance.fetch_add(1));
    st->wake_rx_.set(zmq::sockopt::linger, 0);
    st->wake_tx_.set(zmq::sockopt::linger, 0);
    st->wake_rx_.bind(wake_endpoint);
    st->wake_tx_.connect(wake_endpoint);
  } catch (const zmq::error_t& e) {
    return status::io_error("cannot set up the control socket for " + endpoint + ": " +
                            e.what());
  }
  try {
    st->router_.bind(bindable_endpoint(endpoint));
    st->last_endpoint_ = st->router_.get(zmq::sockopt::last_endpoint);
  } catch (const zmq::error_t& e) {
    return status::io_error("cannot bind the control socket to " + endpoint + " (" + e.what() +
                            "); " + bind_advice(e.num()));
  }
  try {
    st->thread_ = std::thread([raw = st.get()] { raw->run(); });
  } catch (const std::system_error& e) {
    return status::io_error("cannot start the control server thread for " + endpoint + ": " +
                            e.what());
  }
  return std::unique_ptr<control_server>(new control_server(std::move(st)));
}

const std::string& control_server::last_endpoint() const noexcept { return impl_->last_endpoint_; }

void control_server::reply(std::uint64_t token, const control_reply& rep) {
  control_reply copy = rep;
  bool signal = false;
  {
    std::lock_guard<std::mutex> lock(impl_->mutex_);
    auto it = impl_->pending_.find(token);
    if (it == impl_->pending_.end())
      return;
    copy.id = it->second.request_id;
    impl_->outbox_.push_back(outgoing_reply{std::move(it->second.route), std::move(copy)});
    impl_->pending_.erase(it);
    // The server thread itself (a handler answering at once) sends its
    // replies after the read loop; only other threads need to wake it.
    signal = !impl_->wake_sent_ && std::this_thread::get_id() != impl_->thread_id_;
    impl_->wake_sent_ = impl_->wake_sent_ || signal;
  }
  if (signal)
    impl_->wake();
}

void control_server::stop() {
  {
    std::lock_guard<std::mutex> lock(impl_->mutex_);
    impl_->stopping_ = true;
    impl_->pending_.clear();
    impl_->outbox_.clear();
  }
  impl_->wake();
  if (impl_->thread_.joinable())
    impl_->thread_.join();
}

} // namespace syncmesh::messaging
