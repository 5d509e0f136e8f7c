#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "store/status.hpp"

namespace syncmesh::messaging {

/// The control protocol "syncmesh-control/1", spoken between `syncmesh ctl`
/// (and other tools) and a node's control socket. Every frame is one JSON
/// document encoded as MessagePack:
///
///   request  {"v":1, "id":N, "verb":"status", "args":{...}}
///   reply    {"v":1, "id":N, "ok":true,  "result":...}
///            {"v":1, "id":N, "ok":false, "error":"a sentence"}
///
/// A reply carries the id of the request it answers; a node that cannot read
/// a request's id answers with id 0.
inline constexpr std::uint32_t control_protocol_version = 1;

/// A verb is 1 to this many characters, each of [a-z_-].
inline constexpr std::size_t control_verb_chars_max = 32;

/// The default bound on one reply frame a client accepts. Replies are larger
/// than requests (a `query` reply carries up to query_rows_max rows).
inline constexpr std::size_t control_reply_bytes_max_default = std::size_t{64} << 20;

struct control_request {
  std::uint64_t id = 0;
  std::string verb;
  nlohmann::json args = nlohmann::json::object();
};

struct control_reply {
  std::uint64_t id = 0;
  bool ok = true;
  nlohmann::json result;  // meaningful when ok
  std::string error;      // a sentence for a user; meaningful when !ok

  static control_reply success(std::uint64_t id, nlohmann::json result) {
    return {id, true, std::move(result), {}};
  }
  static control_reply failure(std::uint64_t id, std::string error) {
    return {id, false, nullptr, std::move(error)};
  }
};

/// The wire form of `req`. Encodes whatever it is given; validity is checked
/// by the decoder on the receiving side.
std::string encode_request(const control_request& req);

/// Reads one request frame. Strict: the frame must be at most `max_bytes`
/// (the node's control_request_bytes_max), one MessagePack map with exactly
/// the keys v, id, verb and args, v == control_protocol_version, id a
/// non-negative integer, verb 1..control_verb_chars_max characters of [a-z_-],
/// args a map. Every refusal is invalid_argument with a sentence that says
/// what was wrong.
store::result<control_request> decode_request(std::string_view frame, std::size_t max_bytes);

/// The id of a request frame that decode_request refused, when the frame is
/// within `max_bytes` and a map with a non-negative integer id; otherwise 0.
/// Lets a refusal be matched to the request it answers.
std::uint64_t peek_request_id(std::string_view frame, std::size_t max_bytes) noexcept;

/// The wire form of `rep`: "result" when ok (null if unset), "error" when not.
std::string encode_reply(const control_reply& rep);

/// Reads one reply frame. Strict like decode_request: at most `max_bytes`
/// (the client's control_reply_bytes_max), one map with v, id, ok and exactly
/// one of result (when ok) or error (a string, when not ok).
store::result<control_reply> decode_reply(std::string_view frame, std::size_t max_bytes);

} // namespace syncmesh::messaging
