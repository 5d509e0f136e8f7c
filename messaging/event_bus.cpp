#include "messaging/event_bus.hpp"

#include <cerrno>
#include <vector>

#include "messaging/endpoint.hpp"
#include "messaging/msgpack_json.hpp"

namespace syncmesh::messaging {
namespace {

using clock = std::chrono::steady_clock;
using store::status;

/// An event is a topic frame and a payload frame.
constexpr std::size_t event_frames = 2;

std::string bind_advice(int err) {
  if (err == EADDRINUSE)
    return "another process holds it; stop that process or set events_endpoint to a free "
           "address (port 0 lets the OS choose)";
  return "write it as tcp://HOST:PORT, ipc://PATH or inproc://NAME (port 0 lets the OS "
         "choose)";
}

// Why `event` cannot be published, or empty.
std::string event_problem(const nlohmann::json& event) {
  if (!event.is_object())
    return std::string("an event must be a map; got ") + event.type_name();
  auto type = event.find("type");
  if (type == event.end() || !type->is_string() ||
      type->get_ref<const std::string&>().empty())
    return "an event must carry its kind as a non-empty string \"type\"";
  return {};
}

} // namespace

event_publisher::event_publisher(zmq::socket_t socket, std::string last_endpoint,
                                 std::size_t event_bytes_max)
    : socket_(std::move(socket)),
      last_endpoint_(std::move(last_endpoint)),
      event_bytes_max_(event_bytes_max) {}

store::result<std::unique_ptr<event_publisher>> event_publisher::bind(
    zmq::context_t& ctx, const std::string& endpoint, std::size_t event_bytes_max,
    int queue_max) {
  if (event_bytes_max == 0 || queue_max <= 0)
    return status::invalid_argument("event_bytes_max and event_queue_max must be at least 1");
  try {
    zmq::socket_t sock(ctx, zmq::socket_type::pub);
    sock.set(zmq::sockopt::linger, 0);
    sock.set(zmq::sockopt::sndhwm, queue_max);
    try {
      sock.bind(bindable_endpoint(endpoint));
    } catch (const zmq::error_t& e) {
      return status::io_error("cannot bind the event socket to " + endpoint + " (" + e.what() +
                              "); " + bind_advice(e.num()));
    }
    std::string bound = sock.get(zmq::sockopt::last_endpoint);
    return std::unique_ptr<event_publisher>(
        new event_publisher(std::move(sock), std::move(bound), event_bytes_max));
  } catch (const zmq::error_t& e) {
    return status::io_error("cannot set up the event socket for " + endpoint + ": " + e.what());
  }
}

store::status event_publisher::publish(const nlohmann::json& event) {
  if (auto problem = event_problem(event); !problem.empty())
    return status::invalid_argument(problem);
  const auto& type = event["type"].get_ref<const std::string&>();
  const std::string payload = to_msgpack_bytes(event);
  if (payload.size() > event_bytes_max_)
    return status::invalid_argument("event \"" + type + "\" of " + std::to_string(payload.size()) +
                                    " bytes exceeds the bound of " +
                                    std::to_string(event_bytes_max_) +
                                    " bytes (event_bytes_max); publish less in one event");
  std::lock_guard<std::mutex> lock(mutex_);
  try {
    // A PUB socket never blocks: it drops for subscribers that are too far behind.
    (void)socket_.send(zmq::buffer(type), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
    (void)socket_.send(zmq::buffer(payload), zmq::send_flags::dontwait);
    return status::ok();
  } catch (const zmq::error_t& e) {
    return status::io_error("cannot publish event \"" + type + "\" on " + last_endpoint_ + ": " +
                            e.what());
  }
}

event_subscriber::event_subscriber(zmq::socket_t socket, std::string endpoint,
                                   std::size_t event_bytes_max)
    : socket_(std::move(socket)),
      endpoint_(std::move(endpoint)),
      event_bytes_max_(event_bytes_max) {}

store::result<std::unique_ptr<event_subscriber>> event_subscriber::connect(
    zmq::context_t& ctx, const std::string& endpoint, const std::string& topic_prefix,
    std::size_t event_bytes_max, int queue_max) {
  if (event_bytes_max == 0 || queue_max <= 0)
    return status::invalid_argument("event_bytes_max and event_queue_max must be at least 1");
  try {
    zmq::socket_t sock(ctx, zmq::socket_type::sub);
    sock.set(zmq::sockopt::linger, 0);
    sock.set(zmq::sockopt::rcvhwm, queue_max);
    sock.set(zmq::sockopt::subscribe, topic_prefix);
    sock.connect(endpoint);
    return std::unique_ptr<event_subscriber>(
        new event_subscriber(std::move(sock), endpoint, event_bytes_max));
  } catch (const zmq::error_t& e) {
    return status::io_error("cannot subscribe to events at " + endpoint + " (" + e.what() +
                            "); write the endpoint as tcp://HOST:PORT or ipc://PATH");
  }
}

store::result<std::optional<nlohmann::json>> event_subscriber::next(
    std::chrono::milliseconds timeout) {
  const auto deadline = clock::now() + timeout;
  try {
    std::vector<zmq::message_t> parts;
    for (;;) {
      zmq::message_t part;
      if (socket_.recv(part, zmq::recv_flags::dontwait)) {
        for (;;) {
          const bool more = part.more();
          if (parts.size() <= event_frames)
            parts.push_back(std::move(part));
          if (!more)
            break;
          part = zmq::message_t();
          (void)socket_.recv(part, zmq::recv_flags::none);  // parts arrive together
        }
        break;
      }
      const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - clock::now());
      if (left <= std::chrono::milliseconds::zero())
        return std::optional<nlohmann::json>();
      zmq_pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
      try {
        (void)zmq::poll(&item, 1, left);
      } catch (const zmq::error_t& e) {
        if (e.num() != EINTR)
          throw;  // a signal only shortens this wait
      }
    }

    if (parts.size() != event_frames)
      return status::invalid_argument("a message from " + endpoint_ +
                                      " is not an event: it has " +
                                      (parts.size() > event_frames ? std::string("more than 2")
                                                                   : std::to_string(parts.size())) +
                                      " frames instead of a topic and a payload");
    const std::string topic(parts[0].data<char>(), parts[0].size());
    const std::string_view payload(parts[1].data<char>(), parts[1].size());
    if (payload.size() > event_bytes_max_)
      return status::invalid_argument("event \"" + topic + "\" from " + endpoint_ + " of " +
                                      std::to_string(payload.size()) +
                                      " bytes exceeds the bound of " +
                                      std::to_string(event_bytes_max_) +
                                      " bytes (event_bytes_max)");
    auto event = parse_msgpack_json(payload, "event \"" + topic + "\" from " + endpoint_);
    if (!event)
      return event.error();
    if (auto problem = event_problem(*event); !problem.empty())
      return status::invalid_argument("event \"" + topic + "\" from " + endpoint_ +
                                      " is malformed: " + problem);
    if ((*event)["type"].get_ref<const std::string&>() != topic)
      return status::invalid_argument("event from " + endpoint_ + " has topic \"" + topic +
                                      "\" but type \"" +
                                      (*event)["type"].get<std::string>() + "\"");
    return std::optional<nlohmann::json>(std::move(*event));
  } catch (const zmq::error_t& e) {
    return status::io_error("cannot read events from " + endpoint_ + ": " + e.what());
  }
}

} // namespace syncmesh::messaging
