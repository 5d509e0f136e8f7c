#include "messaging/control_codec.hpp"

#include <initializer_list>
#include <optional>

#include "messaging/msgpack_json.hpp"

namespace syncmesh::messaging {
namespace {

using json = nlohmann::json;
using store::status;

constexpr std::string_view request_what = "control request";
constexpr std::string_view reply_what = "control reply";

std::optional<std::uint64_t> as_unsigned(const json& v) {
  if (v.is_number_unsigned())
    return v.get<std::uint64_t>();
  // Other MessagePack writers may encode a small positive number as a signed
  // integer type; it is still a valid id or version.
  if (v.is_number_integer() && v.get<std::int64_t>() >= 0)
    return static_cast<std::uint64_t>(v.get<std::int64_t>());
  return std::nullopt;
}

status too_large(std::string_view what, std::size_t size, std::size_t max_bytes,
                 std::string_view bound_key) {
  return status::invalid_argument(std::string(what) + " of " + std::to_string(size) +
                                  " bytes exceeds the bound of " + std::to_string(max_bytes) +
                                  " bytes (" + std::string(bound_key) +
                                  "); send less, or raise the bound");
}

// Checks what requests and replies share: a map, only the allowed keys,
// a supported version and an id. Returns the id.
store::result<std::uint64_t> check_envelope(const json& doc, std::string_view what,
                                            std::initializer_list<std::string_view> keys) {
  if (!doc.is_object())
    return status::invalid_argument(std::string(what) + " must be a MessagePack map; got " +
                                    doc.type_name());
  for (const auto& item : doc.items()) {
    bool known = false;
    for (auto k : keys)
      known = known || item.key() == k;
    if (!known)
      return status::invalid_argument(std::string(what) + " has an unknown field \"" +
                                      item.key() + "\" (syncmesh-control/" +
                                      std::to_string(control_protocol_version) + ")");
  }
  auto v = doc.find("v");
  if (v == doc.end())
    return status::invalid_argument(std::string(what) +
                                    " has no protocol version field \"v\"");
  auto version = as_unsigned(*v);
  if (!version)
    return status::invalid_argument(std::string(what) +
                                    " field \"v\" must be a non-negative integer; got " +
                                    v->type_name());
  if (*version != control_protocol_version)
    return status::invalid_argument(std::string(what) + " speaks syncmesh-control/" +
                                    std::to_string(*version) + ", but this side speaks syncmesh-control/" +
                                    std::to_string(control_protocol_version) +
                                    "; use a syncmesh ctl and node of matching versions");
  auto id = doc.find("id");
  if (id == doc.end())
    return status::invalid_argument(std::string(what) + " has no field \"id\"");
  auto id_value = as_unsigned(*id);
  if (!id_value)
    return status::invalid_argument(std::string(what) +
                                    " field \"id\" must be a non-negative integer; got " +
                                    id->type_name());
  return *id_value;
}

std::optional<std::string> verb_problem(const std::string& verb) {
  if (verb.empty())
    return std::string("is empty");
  if (verb.size() > control_verb_chars_max)
    return "has " + std::to_string(verb.size()) + " characters; at most " +
           std::to_string(control_verb_chars_max) + " are allowed";
  for (char c : verb)
    if (!((c >= 'a' && c <= 'z') || c == '_' || c == '-'))
      return std::string("may hold only the characters a-z, '_' and '-'");
  return std::nullopt;
}

} // namespace

std::string encode_request(const control_request& req) {
  json doc = {{"v", control_protocol_version},
              {"id", req.id},
              {"verb", req.verb},
              {"args", req.args}};
  return to_msgpack_bytes(doc);
}

store::result<control_request> decode_request(std::string_view frame, std::size_t max_bytes) {
  if (frame.size() > max_bytes)
    return too_large(request_what, frame.size(), max_bytes, "control_request_bytes_max");
  auto doc = parse_msgpack_json(frame, request_what);
  if (!doc)
    return doc.error();
  auto id = check_envelope(*doc, request_what, {"v", "id", "verb", "args"});
  if (!id)
    return id.error();

  control_request req;
  req.id = *id;
  auto verb = doc->find("verb");
  if (verb == doc->end())
    return status::invalid_argument("control request has no field \"verb\"");
  if (!verb->is_string())
    return status::invalid_argument("control request field \"verb\" must be a string; got " +
                                    std::string(verb->type_name()));
  req.verb = verb->get<std::string>();
  if (auto problem = verb_problem(req.verb))
    return status::invalid_argument("control request verb \"" +
                                    req.verb.substr(0, control_verb_chars_max) + "\" " + *problem);
  auto args = doc->find("args");
  if (args == doc->end())
    return status::invalid_argument(
        "control request has no field \"args\"; send an empty map when a verb takes none");
  if (!args->is_object())
    return status::invalid_argument("control request field \"args\" must be a map; got " +
                                    std::string(args->type_name()));
  req.args = std::move(*args);
  return req;
}

std::uint64_t peek_request_id(std::string_view frame, std::size_t max_bytes) noexcept {
  try {
    if (frame.size() > max_bytes)
      return 0;
    auto doc = parse_msgpack_json(frame, request_what);
    if (!doc || !doc->is_object())
      return 0;
    auto id = doc->find("id");
    if (id == doc->end())
      return 0;
    return as_unsigned(*id).value_or(0);
  } catch (...) {
    return 0;  // out of memory while peeking: the refusal goes out with id 0
  }
}

std::string encode_reply(const control_reply& rep) {
  json doc = {{"v", control_protocol_version}, {"id", rep.id}, {"ok", rep.ok}};
  if (rep.ok)
    doc["result"] = rep.result;
  else
    doc["error"] = rep.error;
  return to_msgpack_bytes(doc);
}

store::result<control_reply> decode_reply(std::string_view frame, std::size_t max_bytes) {
  if (frame.size() > max_bytes)
    return too_large(reply_what, frame.size(), max_bytes, "control_reply_bytes_max");
  auto doc = parse_msgpack_json(frame, reply_what);
  if (!doc)
    return doc.error();
  auto id = check_envelope(*doc, reply_what, {"v", "id", "ok", "result", "error"});
  if (!id)
    return id.error();

  control_reply rep;
  rep.id = *id;
  auto ok = doc->find("ok");
  if (ok == doc->end() || !ok->is_boolean())
    return status::invalid_argument("control reply field \"ok\" must be true or false");
  rep.ok = ok->get<bool>();
  auto result = doc->find("result");
  auto error = doc->find("error");
  if (rep.ok) {
    if (result == doc->end())
      return status::invalid_argument("control reply with ok=true has no field \"result\"");
    if (error != doc->end())
      return status::invalid_argument("control reply with ok=true must not carry \"error\"");
    rep.result = std::move(*result);
  } else {
    if (result != doc->end())
      return status::invalid_argument("control reply with ok=false must not carry \"result\"");
    if (error == doc->end() || !error->is_string())
      return status::invalid_argument(
          "control reply with ok=false must carry a sentence in \"error\"");
    rep.error = error->get<std::string>();
  }
  return rep;
}

} // namespace syncmesh::messaging
