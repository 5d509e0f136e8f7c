#pragma once

namespace syncmesh::store {

/// The comparison of a row filter (`column op value`, or `column in
/// (values)`), shared by PostgreSQL view filters and peer link filters.
enum class filter_op { eq, lt, le, gt, ge, in };

/// The operator as written in configs and sentences: "=", "<", ..., "in".
constexpr const char* to_string(filter_op op) noexcept {
  switch (op) {
    case filter_op::eq: return "=";
    case filter_op::lt: return "<";
    case filter_op::le: return "<=";
    case filter_op::gt: return ">";
    case filter_op::ge: return ">=";
    case filter_op::in: return "in";
  }
  return "?";
}

} // namespace syncmesh::store
