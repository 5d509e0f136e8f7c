#pragma once

// Forward declarations for headers that only name messaging types.

namespace syncmesh::messaging {

struct control_request;
struct control_reply;
struct control_server_bounds;
class control_server;
class control_client;
class event_publisher;
class event_subscriber;
class scheduler;
class manual_scheduler;
class transport;
struct transport_handler;
class memory_network;
struct link_faults;
struct network_counters;
struct curve_key_pair;
struct zmq_transport_options;
struct zmq_peer_address;
struct zmq_transport_counters;
class zmq_transport;

namespace peer {
struct limits;
struct change;
struct decode_error;
class decode_result;
} // namespace peer

} // namespace syncmesh::messaging
