#pragma once

#include <cstddef>
#include <vector>

#include <zmq.hpp>

namespace syncmesh::messaging {

/// Reads one whole multipart message from `socket` without waiting for its
/// first part: false when none is ready. At most `frames_max` parts are kept
/// in `parts`; `too_many` tells whether more arrived (they are read and
/// dropped, so the socket stays in step with message boundaries).
bool receive_message(zmq::socket_t& socket, std::size_t frames_max,
                     std::vector<zmq::message_t>& parts, bool& too_many,
                     zmq::recv_flags first = zmq::recv_flags::dontwait);

} // namespace syncmesh::messaging
