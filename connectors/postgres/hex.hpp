#pragma once

namespace syncmesh::connectors::postgres {

/// The value of one hexadecimal digit (either case), or -1 for any other
/// character. PostgreSQL writes hex in bytea ('\x…') and in COPY escapes.
constexpr int hex_digit(char c) noexcept {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

} // namespace syncmesh::connectors::postgres
