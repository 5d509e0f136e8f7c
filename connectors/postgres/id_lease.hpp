#pragma once

// Ids for offline inserts into tables keyed by a serial or identity column.
//
// While the remote is reachable a sync view leases a block of values from
// the key's sequence (nextval, as many times as the block is long). Each
// value handed out by nextval is PostgreSQL's promise that no other session
// gets it, so ids a node takes from its own block never collide with rows
// inserted upstream or with another node's block — online or offline. The
// block is kept in the store (an extension record written in the same batch
// as the insert that consumes an id), so a restart neither loses nor reuses
// one. Without a lease, offline, an insert that leaves its key to the
// sequence is refused with a sentence saying why.
//
// Plain values and SQL text; the connector runs the statements.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "store/status.hpp"

namespace syncmesh::connectors::postgres {

/// Leased ids not yet used, in the order nextval returned them, kept as
/// inclusive ranges (a sequence with increment 1 and no concurrent callers
/// gives one range per block).
class id_pool {
public:
  id_pool() = default;

  /// Appends `ids` (in nextval order) to the pool.
  void add(const std::vector<std::int64_t>& ids);

  /// The next id, removed from the pool; nullopt when empty.
  std::optional<std::int64_t> take();

  std::uint64_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }

  /// "first-last,first-last,...", the form kept in the store.
  std::string encode() const;
  /// The pool encode() wrote; invalid_argument naming `what` for anything
  /// else (a damaged record must not hand out ids twice).
  static store::result<id_pool> decode(const std::string& text, const std::string& what);

  friend bool operator==(const id_pool& a, const id_pool& b) { return a.ranges_ == b.ranges_; }

private:
  std::vector<std::pair<std::int64_t, std::int64_t>> ranges_; // inclusive
  std::uint64_t size_ = 0;
};

/// The store extension record holding view `view`'s pool.
std::string id_pool_record(const std::string& view);

/// SELECT returning the sequence behind `column` of `schema.table` (serial
/// or identity), or one NULL row when the column has none. Parameters:
/// $1 = quoted "schema"."table", $2 = column name.
inline constexpr const char* serial_sequence_sql = "SELECT pg_get_serial_sequence($1, $2)";

/// SELECT of (column, sequence or NULL) for each primary key column of a
/// table. $1 and $2 = the quoted "schema"."table" (once as text, once as
/// regclass).
inline constexpr const char* key_sequence_sql =
  "SELECT a.attname::text, pg_catalog.pg_get_serial_sequence($1, a.attname)::text "
  "FROM pg_catalog.pg_index i JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid "
  "AND a.attnum = ANY (i.indkey) WHERE i.indrelid = $2::regclass AND i.indisprimary";

/// SELECT of `n` fresh values of the sequence $1 (a regclass text), one per
/// row in nextval order. $2 = n.
inline constexpr const char* lease_sql =
  "SELECT nextval($1::regclass) FROM generate_series(1, $2::int)";

/// Why an insert without a key cannot be given one; says what to do.
std::string no_id_sentence(const std::string& view, const std::string& column,
                           const std::string& sequence, std::uint64_t block);

} // namespace syncmesh::connectors::postgres
