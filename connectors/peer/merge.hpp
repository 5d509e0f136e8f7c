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

/// The order in which writes win, which every node of a cluster must share
/// (or nodes that saw the same changes would keep different values): by
/// HLC; between equal HLCs the write made on `tie_winner`, if one is named,
/// then the larger origin node id. The default (no tie winner) is stamp's
/// own operator<. A strict total order on stamps, so merging stays
/// commutative, associative and idempotent under it.
struct stamp_order {
  std::string tie_winner;  // a node id; empty: none

  /// Whether `a` loses to `b`.
  bool operator()(const stamp& a, const stamp& b) const {
    if (a.hlc != b.hlc)
      return a.hlc < b.hlc;
    if (!tie_winner.empty()) {
      const bool a_wins = a.origin == tie_winner, b_wins = b.origin == tie_winner;
      if (a_wins != b_wins)
        return b_wins;
    }
    return a.origin < b.origin;
  }
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

  /// The row exists when its latest insert is newer than its latest delete
  /// in `order`. An update does not resurrect a deleted row (as an SQL
  /// UPDATE of a missing row changes nothing); a newer insert does.
  bool visible(const stamp_order& order = {}) const { return order(deleted, inserted); }

  /// The newest stamp of anything in this state.
  stamp newest(const stamp_order& order = {}) const;

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
/// table `width` columns wide whose key columns are `key_columns`, keeping
/// of two writes the one that wins in `order`.
/// REQUIRES: validate(c, width) is ok. Returns whether the state changed.
bool merge(std::optional<row_state>& state, const peer_change& c, std::size_t width,
           const std::vector<std::uint32_t>& key_columns, const stamp_order& order = {});

/// The change a local write makes, as peers will see it: an upsert of the
/// columns that differ from the row it replaced (all, for a new row), or a
/// remove. `local` is an insert, update or remove from this node's change
/// log.
peer_change from_local(const store::change_record& local);

} // namespace syncmesh::peer
