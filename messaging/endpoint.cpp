#include "messaging/endpoint.hpp"

namespace syncmesh::messaging {

std::string bindable_endpoint(const std::string& endpoint) {
  constexpr std::string_view tcp_scheme = "tcp://";
  constexpr std::string_view port_zero = ":0";
  const bool is_tcp = endpoint.compare(0, tcp_scheme.size(), tcp_scheme) == 0;
  const bool ends_in_port_zero =
      endpoint.size() > tcp_scheme.size() + port_zero.size() &&
      endpoint.compare(endpoint.size() - port_zero.size(), port_zero.size(), port_zero) == 0;
  if (!is_tcp || !ends_in_port_zero)
    return endpoint;
  std::string out = endpoint.substr(0, endpoint.size() - 1);
  out += '*';
  return out;
}

} // namespace syncmesh::messaging
