#include "connectors/peer/merge.hpp"

#include <algorithm>

namespace syncmesh::peer {

using store::change_op;
using store::status;

stamp row_state::newest(const stamp_order& order) const {
  stamp out = std::max(inserted, deleted, order);
  for (const auto& c : columns)
    out = std::max(out, c, order);
  return out;
}

status validate(const peer_change& c, std::size_t width) {
  if (c.op != change_op::insert && c.op != change_op::update && c.op != change_op::remove)
    return status::invalid_argument(std::string("a ") + store::to_string(c.op) + " on table '"
                                    + c.table + "' does not travel between peers; a peer "
                                    "sends one remove per row");
  if (c.key.empty())
    return status::invalid_argument("a change for table '" + c.table + "' has an empty key");
  if (c.op == change_op::remove) {
    if (c.new_row || !c.columns.empty())
      return status::invalid_argument("a remove for table '" + c.table
                                      + "' carries column values; it carries the key only");
    return status::ok();
  }
  if (!c.new_row || c.new_row->size() != width)
    return status::invalid_argument(
      "a change for table '" + c.table + "' has "
      + std::to_string(c.new_row ? c.new_row->size() : 0) + " values; the table has "
      + std::to_string(width) + " columns");
  for (std::size_t i = 0; i < c.columns.size(); ++i) {
    if (c.columns[i] >= width)
      return status::invalid_argument("a change for table '" + c.table + "' sets column "
                                      + std::to_string(c.columns[i]) + " of "
                                      + std::to_string(width));
    if (i > 0 && c.columns[i] <= c.columns[i - 1])
      return status::invalid_argument("a change for table '" + c.table
                                      + "' lists its set columns out of order or twice");
  }
  return status::ok();
}

bool merge(std::optional<row_state>& state, const peer_change& c, std::size_t width,
           const std::vector<std::uint32_t>& key_columns, const stamp_order& order) {
  if (!state) {
    row_state fresh;
    fresh.values.assign(width, store::value::null());
    fresh.columns.assign(width, stamp{});
    // The key identifies the row whatever happens to it: its columns hold
    // the key from the first change seen, with a zero stamp, so any write
    // (which sets the same key values) replaces them without changing them.
    for (std::size_t i = 0; i < key_columns.size() && i < c.key.size(); ++i)
      fresh.values[key_columns[i]] = c.key[i];
    state = std::move(fresh);
  }
  auto& s = *state;
  const auto at = stamp_of(c);
  bool changed = false;
  if (c.op == change_op::remove) {
    if (order(s.deleted, at)) {
      s.deleted = at;
      changed = true;
    }
    return changed;
  }
  auto take = [&](std::uint32_t col) {
    if (order(s.columns[col], at)) {
      s.columns[col] = at;
      s.values[col] = (*c.new_row)[col];
      changed = true;
    }
  };
  if (c.columns.empty())
    for (std::uint32_t col = 0; col < width; ++col)
      take(col);
  else
    for (auto col : c.columns)
      take(col);
  if (c.op == change_op::insert && order(s.inserted, at)) {
    s.inserted = at;
    changed = true;
  }
  return changed;
}

peer_change from_local(const store::change_record& local) {
  peer_change c;
  c.hlc = local.hlc;
  c.origin = local.origin;
  c.table = local.table;
  c.key = local.key;
  if (local.op != change_op::insert && local.op != change_op::update) {
    c.op = change_op::remove;
    return c;
  }
  // An upsert: a new row sets every column; over an existing row it sets
  // what it changed and re-asserts the row's existence, and the other
  // columns keep their own writers' values.
  c.op = change_op::insert;
  c.new_row = local.new_row;
  const auto& after = *local.new_row;
  if (local.old_row && local.old_row->size() == after.size()) {
    for (std::uint32_t i = 0; i < after.size(); ++i)
      if (!((*local.old_row)[i] == after[i]))
        c.columns.push_back(i);
    if (c.columns.size() == after.size())
      c.columns.clear();  // every column: listed as none
  }
  return c;
}

} // namespace syncmesh::peer
