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

} // namespace syncmesh::messaging
