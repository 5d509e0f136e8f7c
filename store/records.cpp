#include "store/records.hpp"

namespace syncmesh::store {

const char* to_string(change_op op) noexcept {
  switch (op) {
    case change_op::insert: return "insert";
    case change_op::update: return "update";
    case change_op::remove: return "delete";
    case change_op::truncate: return "truncate";
    case change_op::replace: return "replace";
  }
  return "unknown";
}

const char* to_string(outbox_state s) noexcept {
  switch (s) {
    case outbox_state::pending: return "pending";
    case outbox_state::applied: return "applied";
    case outbox_state::failed: return "failed";
    case outbox_state::conflicted: return "conflicted";
  }
  return "unknown";
}

} // namespace syncmesh::store
