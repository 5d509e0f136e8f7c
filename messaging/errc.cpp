#include "messaging/errc.hpp"

#include <string>

namespace syncmesh::messaging {

namespace {

class category final : public std::error_category {
public:
  const char* name() const noexcept override { return "syncmesh.messaging"; }

  std::string message(int code) const override {
    switch (static_cast<errc>(code)) {
      case errc::ok: return "ok";
      case errc::frame_too_large: return "frame too large";
      case errc::malformed_frame: return "malformed frame";
      case errc::version_mismatch: return "protocol version mismatch";
      case errc::unknown_message: return "unknown message type";
      case errc::invalid_field: return "invalid field";
      case errc::non_canonical: return "non-canonical encoding";
    }
    return "unknown messaging error";
  }
};

} // namespace

const std::error_category& messaging_category() noexcept {
  static const category instance;
  return instance;
}

std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), messaging_category()};
}

} // namespace syncmesh::messaging
