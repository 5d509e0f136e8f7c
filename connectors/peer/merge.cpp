#include "connectors/peer/merge.hpp"

#include <algorithm>

namespace syncmesh::peer {

using store::change_op;
using store::status;

stamp row_state::newest() const {
  stamp out = std::max(inserted, deleted);
  for (const auto& c : columns)
    out = std::max(out, c);
  return out;
}

status validate(const peer_change& c, std::size_t width) {
  if (c.op == change_op::truncate)
    return status::invalid_argument("a truncate does not travel between peers; a peer sends "
                                    "one remove per row");
  if (c.op != change_op::insert && c.op != change_op::update && c.op != change_op::remove)
    return status::invalid_argument("unknown change op " + std::to_string(static_cast<int>(c.op)));
  if (c.key.empty())
    return status::invalid_argument("a change for table '" + c.table + "' has an empty key");
  if (c.op == change_op::remove) {
    if (!c.set_columns.empty() || !c.values.empty())
      return status::invalid_argument("a remove for table '" + c.table
                                      + "' carries column values; it carries the key only");
    return status::ok();
  }
  if (c.values.size() != width)
    return status::invalid_argument("a change for table '" + c.table + "' has "
                                    + std::to_string(c.values.size()) + " values; the table has "
                                    + std::to_string(width) + " columns");
  for (std::size_t i = 0; i < c.set_columns.size(); ++i) {
    if (c.set_columns[i] >= width)
      return status::invalid_argument("a change for table '" + c.table + "' sets column "
                                      + std::to_string(c.set_columns[i]) + " of "
                                      + std::to_string(width));
    if (i > 0 && c.set_columns[i] <= c.set_columns[i - 1])
      return status::invalid_argument("a change for table '" + c.table
                                      + "' lists its set columns out of order or twice");
  }
  return status::ok();
}

bool merge(std::optional<row_state>& state, const peer_change& c, std::size_t width,
           const std::vector<std::uint32_t>& key_columns) {
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
  bool changed = false;
  if (c.op == change_op::remove) {
    if (s.deleted < c.at) {
      s.deleted = c.at;
      changed = true;
    }
    return changed;
  }
  for (auto col : c.set_columns) {
    if (s.columns[col] < c.at) {
      s.columns[col] = c.at;
      s.values[col] = c.values[col];
      changed = true;
    }
  }
  if (c.op == change_op::insert && s.inserted < c.at) {
    s.inserted = c.at;
    changed = true;
  }
  return changed;
}

peer_change from_local(const store::change_record& local) {
  peer_change c;
  c.at = stamp{local.hlc, local.origin};
  c.table = local.table;
  c.key = local.key;
  switch (local.op) {
    case change_op::remove:
    case change_op::truncate:
      c.op = change_op::remove;
      return c;
    case change_op::insert:
    case change_op::update:
      break;
  }
  const auto& after = *local.new_row;
  c.values = after;
  if (!local.old_row || local.old_row->size() != after.size()) {
    // A new row: an insert of every column.
    c.op = change_op::insert;
    for (std::uint32_t i = 0; i < after.size(); ++i)
      c.set_columns.push_back(i);
    return c;
  }
  // An upsert over an existing row sets what it changed and re-asserts the
  // row's existence; the other columns keep their own writers' values.
  c.op = change_op::insert;
  for (std::uint32_t i = 0; i < after.size(); ++i)
    if (!((*local.old_row)[i] == after[i]))
      c.set_columns.push_back(i);
  return c;
}

} // namespace syncmesh::peer
