#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "messaging/peer_protocol.hpp"
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

/// A change as peers exchange it (messaging/peer_protocol.hpp): insert is
/// an upsert — it sets its columns and asserts that the row exists; update
/// sets its columns only; remove deletes the row. `columns` lists the
/// columns a write set, empty meaning all of them.
using peer_change = messaging::peer::change;

/// The stamp of a change.
inline stamp stamp_of(const peer_change& c) { return {c.hlc, c.origin}; }

/// Checks that `c` fits a table `width` columns wide: insert, update or
/// remove (a truncate does not travel between peers: it arrives as one
/// remove per row), a key, a row of full width unless it is a remove, set
/// columns ascending and in range.
store::status validate(const peer_change& c, std::size_t width);

/// Merges `c` into `state` (nothing: the key was never seen here) for a
/// table `width` columns wide whose key columns are `key_columns`.
/// REQUIRES: validate(c, width) is ok. Returns whether the state changed.
bool merge(std::optional<row_state>& state, const peer_change& c, std::size_t width,
           const std::vector<std::uint32_t>& key_columns);

/// The change a local write makes, as peers will see it: an upsert of the
/// columns that differ from the row it replaced (all, for a new row), or a
/// remove. `local` is an insert, update or remove from this node's change
/// log.
peer_change from_local(const store::change_record& local);

} // namespace syncmesh::peer
