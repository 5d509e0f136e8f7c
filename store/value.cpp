#include "store/value.hpp"

#include <cstdio>

namespace syncmesh::store {

const char* to_string(value_kind kind) noexcept {
  switch (kind) {
    case value_kind::null: return "null";
    case value_kind::boolean: return "boolean";
    case value_kind::integer: return "integer";
    case value_kind::real: return "real";
    case value_kind::text: return "text";
    case value_kind::bytes: return "bytes";
    case value_kind::exact: return "exact";
  }
  return "unknown";
}

std::string value::to_display() const {
  switch (kind()) {
    case value_kind::null: return "null";
    case value_kind::boolean: return as_bool() ? "true" : "false";
    case value_kind::integer: return std::to_string(as_int());
    case value_kind::real: {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%.17g", as_real());
      return buf;
    }
    case value_kind::text: return "'" + as_text() + "'";
    case value_kind::bytes: {
      static const char* hex = "0123456789abcdef";
      std::string out = "x'";
      for (unsigned char c : as_bytes()) {
        out += hex[c >> 4];
        out += hex[c & 0xf];
      }
      return out + "'";
    }
    case value_kind::exact: return as_exact().text + "::" + as_exact().type_name;
  }
  return "?";
}

std::string to_display(const row& r) {
  std::string out = "(";
  for (size_t i = 0; i < r.size(); ++i) {
    if (i > 0)
      out += ", ";
    out += r[i].to_display();
  }
  return out + ")";
}

} // namespace syncmesh::store
