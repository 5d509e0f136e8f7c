#pragma once

// The SQL of a sync view's push: each local write becomes one statement
// against the source table, checked against the row it was based on, and
// its outbox seq is recorded in syncmesh.pushes in the same transaction.
//
// Why not xmin: pgoutput does not send a row's xmin, so the version a view
// holds cannot be learned from the stream; a row's full image (or a version
// column the application maintains) is what the view does hold. A write is
// therefore pushed as compare-and-set: UPDATE ... WHERE key = $k AND every
// compared column IS NOT DISTINCT FROM the base row's value. No row matched
// means someone else changed (or deleted) the row since: a conflict.
//
// Plain functions: they build text and parameters, run nothing, and are
// unit-tested without a server. Values travel as text parameters, cast to
// the column's type; identifiers are quoted.

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "connectors/postgres/replication_stream.hpp"
#include "store/value.hpp"

namespace syncmesh::connectors::postgres {

/// The bookkeeping table the push creates upstream: which of a node's
/// writes (outbox seqs, per view) PostgreSQL has taken, as runs of
/// consecutive seqs — one row for a batch of 4,096 writes of one view,
/// where one row per write cost PostgreSQL more than the writes did.
inline constexpr const char* pushes_table = "syncmesh.pushes";

/// CREATE SCHEMA / TABLE IF NOT EXISTS for syncmesh.pushes, one statement
/// each.
std::vector<std::string> create_pushes_sql();

/// A run of consecutive outbox seqs, both ends included.
struct seq_run {
  std::uint64_t first = 0;
  std::uint64_t last = 0;
  bool operator==(const seq_run& o) const { return first == o.first && last == o.last; }
};

/// `seqs` (ascending) as maximal runs of consecutive seqs.
std::vector<seq_run> runs_of(const std::vector<std::uint64_t>& seqs);

/// Whether `seq` lies in one of `runs`.
bool covered(const std::vector<seq_run>& runs, std::uint64_t seq);

/// How a view's local columns map onto its source table.
struct push_table {
  std::string schema;
  std::string name;
  /// The source column behind each local column, in local column order.
  std::vector<column_info> columns;
  /// Indices into `columns` of the primary key, in key order.
  std::vector<std::size_t> key;
  /// Set: compare-and-set on this column only (an application-maintained
  /// version); unset: on every column of the base row.
  std::optional<std::size_t> version_column;
  /// The table has rewrite rules (pg_class.relhasrules): COPY would bypass
  /// them, so inserts go as INSERT.
  bool has_rules = true;
};

/// A statement and its text parameters (nullopt = SQL NULL).
struct statement {
  std::string sql;
  std::vector<std::optional<std::string>> params;
};

/// PostgreSQL's text input for a local value; nullopt for NULL.
std::optional<std::string> text_for(const store::value& v);

/// INSERT of `row` that does nothing when the key exists (0 rows: conflict).
statement insert_new(const push_table& t, const store::row& row);

/// UPDATE of the row under `row`'s key to `row`, only if it still equals
/// `base` on the compared columns (0 rows: conflict). Without `base` the
/// write is forced: an upsert.
statement update_from(const push_table& t, const store::row& row, const store::row* base);

/// DELETE of the row under `key`, only if it still equals `base` on the
/// compared columns (0 rows: conflict). Without `base` it is forced.
statement delete_from(const push_table& t, const store::row& key, const store::row* base);

/// SELECT of the row under `key`, every column as text.
statement select_row(const push_table& t, const store::row& key);

/// One write of a batch for bulk_statements().
struct bulk_write {
  bool remove = false;
  const store::row* key = nullptr;   // the row's key
  const store::row* row = nullptr;   // an upsert's new row
  const store::row* base = nullptr;  // the row the write was based on; null: none
};

/// A set-based statement and the number of rows it touches when no write
/// of the batch conflicts.
struct bulk_statement {
  statement stmt;
  std::size_t expect = 0;
};

/// The batch as at most three set-based statements (DELETE, UPDATE and
/// INSERT over unnest() of text arrays, each write checked against its base
/// as one at a time would be), or nothing when the batch does not fit: a
/// key written twice (each write must reach the remote, triggers and all,
/// so a chain of writes is not folded into one), or a delete without a base.
/// Writes of distinct keys do not see each other, so the statements leave
/// the rows the writes one by one would — unless a constraint across rows
/// or a conflict says otherwise, which shows as an error or a count other
/// than `expect`: the caller then rolls back and pushes one at a time.
std::vector<bulk_statement> bulk_statements(const push_table& t,
                                            const std::vector<bulk_write>& writes);

/// A COPY ... FROM STDIN statement and its data (text format, one line a row).
struct copy_statement {
  std::string sql;
  std::string data;
  std::size_t rows = 0;
};

/// Appends one field of COPY's text format to `out`: backslash, tab,
/// newline and carriage return escaped; nullopt as \N.
void append_copy_field(std::string& out, const std::optional<std::string>& text);

/// A batch of only inserts (no base, distinct keys) as one COPY into the
/// source table; nothing when the batch holds anything else. Unlike INSERT
/// ... ON CONFLICT DO NOTHING, a key that exists upstream makes the COPY
/// fail (unique_violation): the caller rolls back and pushes one at a time,
/// which finds the conflict. COPY fires the table's triggers and checks its
/// constraints but applies no rules: REQUIRES the table has none.
std::optional<copy_statement> copy_inserts(const push_table& t, const std::vector<bulk_write>& writes);

/// copy_inserts in parts, for a caller that sends the rows as it makes them
/// (PostgreSQL copies the first while the next are made): whether the
/// batch fits one COPY (`keys_distinct`: the caller knows no key repeats,
/// and it is not checked again), the statement, and the text of writes
/// [from, to).
bool copyable_inserts(const std::vector<bulk_write>& writes, bool keys_distinct = false);
std::string copy_inserts_sql(const push_table& t);
void append_copy_rows(const push_table& t, const std::vector<bulk_write>& writes,
                      std::size_t from, std::size_t to, std::string& out);

/// Whose outbox seqs a run counts: the node, its data directory's
/// incarnation (seqs start again at 1 in a new directory), and the view.
struct pusher {
  std::string node;
  std::string incarnation;
  std::string view;
};

/// Runs of a pusher's seqs as one INSERT into syncmesh.pushes. Plain SQL
/// text, values quoted (no parameters): the caller sends it with the
/// COMMIT after it, in one round trip.
std::string record_pushes(const std::vector<seq_run>& runs, const pusher& who);

/// The recorded runs that may hold a seq of [first, last] for a pusher:
/// those starting inside it, and the last one starting before it
/// (runs of one view never overlap, so no earlier one reaches in). Rows of
/// (first_seq, last_seq). Two index probes, however long the history.
/// Plain SQL text, values quoted: the caller sends it with the BEGIN before
/// it, in one round trip.
std::string recorded_pushes(const pusher& who, std::uint64_t first, std::uint64_t last);

/// A PostgreSQL text[] literal of `items` (nullopt = NULL), for one
/// parameter.
std::string text_array(const std::vector<std::optional<std::string>>& items);

/// Whether `local` is newer than `remote` on timestamp column `column`,
/// asked of PostgreSQL (it parses the column's type): SELECT $1::type > $2::type.
statement newer_than(const push_table& t, std::size_t column, const store::value& local,
                     const std::optional<std::string>& remote_text);

} // namespace syncmesh::connectors::postgres
