#include "messaging/msgpack_json.hpp"

#include <string>

namespace syncmesh::messaging {
namespace {

using json = nlohmann::json;

// First pass over the bytes: builds nothing, stops at the first level past
// msgpack_depth_max, and keeps the reader's own error sentence.
class depth_check final : public nlohmann::json_sax<json> {
public:
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return enter(); }
  bool key(string_t&) override { return true; }
  bool end_object() override { return leave(); }
  bool start_array(std::size_t) override { return enter(); }
  bool end_array() override { return leave(); }
  bool parse_error(std::size_t, const std::string&,
                   const nlohmann::detail::exception& e) override {
    error_ = strip_exception_prefix(e.what());
    return false;
  }

  bool too_deep() const noexcept { return too_deep_; }
  const std::string& error() const noexcept { return error_; }

private:
  bool enter() {
    if (++depth_ > msgpack_depth_max) {
      too_deep_ = true;
      return false;
    }
    return true;
  }
  bool leave() {
    --depth_;
    return true;
  }

  // "[json.exception.parse_error.110] parse error at byte 3: ..." reads as
  // "parse error at byte 3: ..." in a sentence meant for a user.
  static std::string strip_exception_prefix(const std::string& what) {
    if (what.rfind("[json.exception.", 0) == 0) {
      auto end = what.find("] ");
      if (end != std::string::npos)
        return what.substr(end + 2);
    }
    return what;
  }

  std::size_t depth_ = 0;
  bool too_deep_ = false;
  std::string error_;
};

} // namespace

store::result<nlohmann::json> parse_msgpack_json(std::string_view bytes, std::string_view what) {
  if (bytes.empty())
    return store::status::invalid_argument(std::string(what) +
                                           " is empty; expected one MessagePack value");
  depth_check check;
  bool well_formed = false;
  try {
    well_formed = json::sax_parse(bytes.begin(), bytes.end(), &check,
                                  json::input_format_t::msgpack, /*strict=*/true);
  } catch (const std::exception& e) {
    // The SAX pass reports errors through parse_error; this only guards
    // against a reader that throws anyway (allocation failure).
    return store::status::invalid_argument(std::string(what) +
                                           " could not be read: " + e.what());
  }
  if (check.too_deep())
    return store::status::invalid_argument(
        std::string(what) + " nests maps and arrays deeper than " +
        std::to_string(msgpack_depth_max) + " levels; flatten it");
  if (!well_formed)
    return store::status::invalid_argument(
        std::string(what) + " is not one valid MessagePack value (" +
        (check.error().empty() ? std::string("unreadable") : check.error()) + ")");
  try {
    return json::from_msgpack(bytes.begin(), bytes.end(), /*strict=*/true);
  } catch (const std::exception& e) {
    return store::status::invalid_argument(std::string(what) +
                                           " is not one valid MessagePack value (" +
                                           e.what() + ")");
  }
}

std::string to_msgpack_bytes(const nlohmann::json& doc) {
  std::string out;
  json::to_msgpack(doc, out);
  return out;
}

} // namespace syncmesh::messaging
