#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "store/hlc.hpp"
#include "store/records.hpp"
#include "store/status.hpp"
#include "store/value.hpp"

namespace syncmesh::peer {

/// Who wrote and when. Ordered by HLC, then by origin node id, so every node
/// breaks a tie between two writers the same way.
struct stamp {
  store::hlc_timestamp hlc;
  std::string origin;

  bool is_zero() const { return hlc.packed() == 0 && origin.empty(); }

  friend bool operator<(const stamp& a, const stamp& b) {
    return a.hlc != b.hlc ? a.hlc < b.hlc : a.origin < b.origin;
  }
  friend bool operator==(const stamp& a, const stamp& b) {
    return a.hlc == b.hlc && a.origin == b.origin;
  }
  friend bool operator!=(const stamp& a, const stamp& b) { return !(a == b); }
};

/// What a node knows about one row of a peer-synced table: a last-writer-
/// wins register per column, and two registers for the row's existence —
/// the latest insert (upsert) and the latest delete. Every register merges
/// by keeping the larger stamp, so merging changes is commutative,
/// associative and idempotent: nodes that have seen the same changes hold
/// the same state whatever the order and however many repeats. A deleted
/// row keeps its registers (its tombstone) so that a late, older write
/// cannot bring it back.
struct row_state {
  store::row values;           // one per column, kept while deleted too
  std::vector<stamp> columns;  // parallel to values
  stamp inserted;              // latest insert; zero if none seen
  stamp deleted;               // latest delete; zero if none seen

  /// The row exists when its latest insert is newer than its latest delete.
  /// An update does not resurrect a deleted row (as an SQL UPDATE of a
  /// missing row changes nothing); a newer insert does.
  bool visible() const { return deleted < inserted; }

  /// The newest stamp of anything in this state.
  stamp newest() const;

  bool operator==(const row_state& o) const {
    return values == o.values && columns == o.columns && inserted == o.inserted
           && deleted == o.deleted;
  }
};

/// A change as peers exchange it: one write by `at.origin` at `at.hlc`.
struct peer_change {
  stamp at;
  std::string table;
  /// insert: an upsert — sets set_columns and asserts that the row exists;
  /// update: sets set_columns only; remove: deletes the row.
  store::change_op op = store::change_op::insert;
  store::row key;
  /// Columns the write set, ascending (a new row's insert sets them all).
  std::vector<std::uint32_t> set_columns;
  /// The row as the writer saw it after the write (full width); only
  /// set_columns are taken from it. Empty for remove.
  store::row values;

  bool operator==(const peer_change& o) const {
    return at == o.at && table == o.table && op == o.op && key == o.key
           && set_columns == o.set_columns && values == o.values;
  }
};

/// Checks that `c` fits a table `width` columns wide: a known op (truncate
/// does not travel between peers), a key, set columns ascending and in
/// range, values of full width unless it is a remove (which has none).
store::status validate(const peer_change& c, std::size_t width);

/// Merges `c` into `state` (nothing: the key was never seen here) for a
/// table `width` columns wide whose key columns are `key_columns`.
/// REQUIRES: validate(c, width) is ok. Returns whether the state changed.
bool merge(std::optional<row_state>& state, const peer_change& c, std::size_t width,
           const std::vector<std::uint32_t>& key_columns);

/// The change a local write makes, as peers will see it: the columns it set
/// are the ones that differ from the row it replaced (all, for a new row).
/// `local` is a change_record from this node's change log.
peer_change from_local(const store::change_record& local);

} // namespace syncmesh::peer
