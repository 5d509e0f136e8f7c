#include "store/status.hpp"

namespace syncmesh::store {

namespace {

class category final : public std::error_category {
public:
  const char* name() const noexcept override { return "syncmesh.store"; }

  std::string message(int code) const override {
    switch (static_cast<errc>(code)) {
      case errc::ok: return "ok";
      case errc::io_error: return "io error";
      case errc::corruption: return "corruption";
      case errc::not_found: return "not found";
      case errc::invalid_argument: return "invalid argument";
      case errc::format_too_new: return "format too new";
      case errc::clock_skew: return "clock skew";
      case errc::closed: return "closed";
    }
    return "unknown store error";
  }
};

} // namespace

const std::error_category& store_category() noexcept {
  static const category instance;
  return instance;
}

std::error_code make_error_code(errc e) noexcept {
  return {static_cast<int>(e), store_category()};
}

std::string status::to_string() const {
  if (is_ok())
    return "ok";
  return store_category().message(static_cast<int>(code_)) + ": " + message_;
}

} // namespace syncmesh::store
