#include "messaging/frames.hpp"

namespace syncmesh::messaging {

bool receive_message(zmq::socket_t& socket, std::size_t frames_max,
                     std::vector<zmq::message_t>& parts, bool& too_many,
                     zmq::recv_flags first) {
  parts.clear();
  too_many = false;
  zmq::message_t part;
  if (!socket.recv(part, first))
    return false;
  for (;;) {
    const bool more = part.more();
    if (parts.size() < frames_max)
      parts.push_back(std::move(part));
    else
      too_many = true;
    if (!more)
      return true;
    part = zmq::message_t();
    (void)socket.recv(part, zmq::recv_flags::none);  // parts arrive together
  }
}

} // namespace syncmesh::messaging
