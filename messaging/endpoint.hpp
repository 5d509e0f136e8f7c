#pragma once

#include <string>

namespace syncmesh::messaging {

/// The form of `endpoint` that zmq_bind accepts: a TCP endpoint whose port is
/// 0 ("tcp://127.0.0.1:0") becomes the wildcard port ("tcp://127.0.0.1:*"),
/// so that the OS chooses a free port. Every other endpoint is returned as is.
std::string bindable_endpoint(const std::string& endpoint);

} // namespace syncmesh::messaging
