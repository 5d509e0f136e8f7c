#include "messaging/control_client.hpp"
#include "messaging/frames.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <limits>
#include <vector>

namespace syncmesh::messaging {
namespace {

using clock = std::chrono::steady_clock;
using store::status;

/// A reply is an optional empty delimiter and one payload frame; anything
/// longer is not from a control server and is dropped.
constexpr std::size_t control_reply_frames_max = 4;

} // namespace

control_client::control_client(zmq::context_t& ctx, std::string endpoint,
                               std::chrono::milliseconds timeout, std::size_t max_reply_bytes)
    : ctx_(ctx),
      endpoint_(std::move(endpoint)),
      timeout_(timeout),
      max_reply_bytes_(max_reply_bytes) {}

control_client::~control_client() = default;

status control_client::connect() {
  try {
    auto sock = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::dealer);
    sock->set(zmq::sockopt::linger, 0);
    sock->connect(endpoint_);
    socket_ = std::move(sock);
    return status::ok();
  } catch (const zmq::error_t& e) {
    return status::io_error("cannot connect to the node at " + endpoint_ + " (" + e.what() +
                            "); write the endpoint as tcp://HOST:PORT or ipc://PATH");
  }
}

void control_client::reset() { socket_.reset(); }

store::result<control_reply> control_client::call(const std::string& verb, nlohmann::json args) {
  const auto deadline = clock::now() + timeout_;
  auto no_reply = [&] {
    reset();
    return status::io_error("no reply from the node at " + endpoint_ + " within " +
                            std::to_string(timeout_.count()) +
                            " ms; is `syncmesh node` running there?");
  };

  if (!socket_)
    if (auto st = connect(); !st)
      return st;

  const control_request req{next_id_++, verb, std::move(args)};
  const std::string payload = encode_request(req);
  try {
    // A DEALER queues on the connecting pipe, so this does not wait for the
    // node; a full queue is a node that is not reading.
    if (!socket_->send(zmq::const_buffer(), zmq::send_flags::sndmore | zmq::send_flags::dontwait) ||
        !socket_->send(zmq::buffer(payload), zmq::send_flags::dontwait))
      return no_reply();

    for (;;) {
      const auto left =
          std::chrono::ceil<std::chrono::milliseconds>(deadline - clock::now());
      if (left <= std::chrono::milliseconds::zero())
        return no_reply();
      // A blocking receive bounded by what is left (one system call less
      // per round trip than polling first).
      socket_->set(zmq::sockopt::rcvtimeo, static_cast<int>(std::min<std::int64_t>(
                                               left.count(), std::numeric_limits<int>::max())));
      std::vector<zmq::message_t> parts;
      bool too_many = false;
      if (!receive_message(*socket_, control_reply_frames_max, parts, too_many,
                           zmq::recv_flags::none) ||
          too_many)
        continue;  // the loop head notices the deadline

      const auto& last = parts.back();
      auto rep = decode_reply(std::string_view(last.data<char>(), last.size()), max_reply_bytes_);
      if (!rep)
        return status::invalid_argument("the node at " + endpoint_ +
                                        " sent a reply this client cannot read: " +
                                        rep.error().message());
      // A refusal of a request whose id the node could not read comes back
      // with id 0; with one call at a time it answers this call.
      if (rep->id == req.id || (rep->id == 0 && !rep->ok))
        return rep;
      // Anything else answers an earlier request on this socket: skip it.
    }
  } catch (const zmq::error_t& e) {
    reset();
    if (e.num() == EINTR)
      return status::io_error("the call to the node at " + endpoint_ +
                              " was interrupted by a signal; retry it");
    return status::io_error("the connection to the node at " + endpoint_ + " failed (" +
                            e.what() + "); retry, and check that `syncmesh node` runs there");
  }
}

} // namespace syncmesh::messaging
