#pragma once

// Quoting for SQL text built around values that cannot be parameters
// (identifiers, and the replication protocol's commands, which take none).

#include <string>
#include <string_view>

namespace syncmesh::connectors::postgres {

/// "name" in double quotes, embedded quotes doubled: an SQL identifier.
inline std::string quote_ident(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"')
      out += '"';
    out += c;
  }
  return out + "\"";
}

/// 'text' with embedded quotes doubled: a string literal under
/// standard_conforming_strings, and of the replication command grammar
/// (which takes no backslash escapes).
inline std::string quote_literal(std::string_view text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'')
      out += '\'';
    out += c;
  }
  return out + "'";
}

/// E'text' with backslashes and quotes escaped: a string literal whatever
/// standard_conforming_strings says (for SQL sent as plain text).
inline std::string escape_literal(std::string_view text) {
  std::string out = "E'";
  for (char c : text) {
    if (c == '\\' || c == '\'')
      out += '\\';
    out += c;
  }
  return out + "'";
}

} // namespace syncmesh::connectors::postgres
