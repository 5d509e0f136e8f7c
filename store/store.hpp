#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "store/hlc.hpp"
#include "store/records.hpp"
#include "store/schema.hpp"
#include "store/status.hpp"
#include "store/value.hpp"

namespace leveldb {
class Env;
}

namespace syncmesh::store {

/// When an acknowledged apply is on disk.
enum class durability_mode {
  /// Every commit group is fsync'ed before any of its writers is answered:
  /// an acknowledged batch survives a process crash and a power loss.
  fsync,
  /// Commit groups go to the OS page cache: an acknowledged batch survives a
  /// process crash (SIGKILL) but the last moments may be lost on power loss.
  buffered,
};

/// "fsync" or "buffered"; parse_durability accepts the same names.
const char* to_string(durability_mode d) noexcept;
result<durability_mode> parse_durability(const std::string& name);

struct options {
  /// Directory of the LevelDB database; created when missing.
  std::string path;
  /// This node's id, stamped on local changes. Empty: use the id the store
  /// was created with (or "local" for a new store). A different non-empty id
  /// than the store was created with is refused.
  std::string node_id;
  durability_mode durability = durability_mode::fsync;
  /// File-system seam; null means leveldb::Env::Default(). Not owned; must
  /// outlive the store.
  leveldb::Env* env = nullptr;
  /// Time seam; null means the system clock. Not owned.
  physical_clock* clock = nullptr;
  /// Remote stamps further ahead of local time than this are refused.
  std::uint64_t max_clock_skew_ms = 60'000;
  /// A commit group stops growing past this many changes (bounds the latency
  /// and memory of one group). Must be >= 1.
  std::size_t group_commit_changes_max = 4096;
  /// LevelDB memtable size.
  std::size_t write_buffer_bytes = 16u << 20;
};

struct scan_options {
  /// Inclusive lower bound on the primary key (a prefix of the key columns
  /// is allowed); empty means from the first row.
  row from;
  /// Exclusive upper bound; empty means to the last row.
  row to;
  /// At most this many rows; 0 means no limit.
  std::size_t limit = 0;
};

/// The durable local store of one node: tables, change log, outbox, job
/// state, cursors and schema catalog in one LevelDB database.
///
/// Thread safety: every method may be called from any thread. apply() calls
/// from concurrent threads are group-committed: one leader writes the
/// batches of all waiting writers as one LevelDB write (one fsync), and each
/// writer is answered with its own result. The store is the only writer to
/// its database.
class store {
public:
  /// Opens or creates the store at `opts.path`. Refuses data written by a
  /// newer format version (format_too_new) and a node id that differs from
  /// the one the store was created with (invalid_argument).
  static result<std::unique_ptr<store>> open(const options& opts);

  virtual ~store();
  store(const store&) = delete;
  store& operator=(const store&) = delete;

  /// Applies `b` atomically: its tables, changes (stamped and appended to the
  /// change log with their old rows), cursors, outbox entries and job states
  /// land in one LevelDB WriteBatch, or none of it does. On success the batch
  /// is durable per options::durability (staged rows too, so under fsync a
  /// swap never makes live rows a power loss could take back). Errors:
  /// invalid_argument (unknown table, row that does not fit the schema,
  /// staged rows or a swap naming a generation that is not being staged;
  /// nothing written), clock_skew
  /// (a change stamped too far in the future; nothing written), io_error
  /// (the disk failed: the batch is not visible, reads still work, and the
  /// store takes no further writes — later applies return `closed` — until
  /// it is reopened; as with any failed fsync, the batch may be found whole
  /// after the reopen, never in part).
  virtual result<apply_result> apply(const batch& b) = 0;

  /// Convenience: apply a batch that only creates `s`.
  status create_table(const schema& s);

  // --- staged copies -------------------------------------------------------
  //
  // A table is replaced without holding the new copy in memory: begin a
  // staging, apply its rows in as many batches as suit (batch::stage), and
  // when the last of them returned, apply a batch with a table_swap. Until
  // that swap returns, get() and scan() see the old copy; afterwards the new
  // one, with the schema it was staged with. The swap writes one `replace`
  // change-log entry instead of one entry per row. A crash before the swap
  // leaves the old copy intact; the staged rows are garbage then.

  /// Starts a staged copy of `shape.table` (which need not exist yet) and
  /// returns its generation, for batch::stage and batch::swaps. Writes
  /// nothing to disk. An earlier staging of the table that was not swapped
  /// in is abandoned: its rows become garbage and batches still naming it
  /// are refused. Errors: invalid_argument for an invalid schema.
  virtual result<std::uint64_t> begin_staging(const schema& shape) = 0;

  /// Abandons the staging `generation` of `table` (a failed run): its rows
  /// become garbage. Nothing happens if it is not the table's staging.
  virtual void abort_staging(const std::string& table, std::uint64_t generation) = 0;

  /// Deletes up to `max_keys` keys of garbage — abandoned stagings, copies
  /// retired by a swap, and what a crash left behind (found at open) — in
  /// one unsynced write (lost deletes are found again at the next open).
  /// Returns whether garbage remains. Meant to be called in small steps
  /// between applies, by the same writer. REQUIRES: max_keys >= 1.
  virtual result<bool> collect_garbage(std::size_t max_keys) = 0;

  /// Whether collect_garbage() has work to do.
  virtual bool has_garbage() const = 0;

  // --- reads: each sees every apply that returned before it started --------

  virtual result<std::optional<schema>> table(const std::string& name) const = 0;
  virtual std::vector<schema> tables() const = 0;

  /// The row with primary key `key`, or nullopt.
  virtual result<std::optional<row>> get(const std::string& table, const row& key) const = 0;
  /// Rows in primary-key order.
  virtual result<std::vector<row>> scan(const std::string& table,
                                        const scan_options& opts = {}) const = 0;

  /// The rows with primary keys `*keys[i]`, each with its meta
  /// (change::meta), or nullopt: many lookups through one iterator, cheapest
  /// in key order (keys past the table's last row then cost one seek
  /// together).
  virtual result<std::vector<std::optional<stored_row>>> get_stored(
    const std::string& table, const std::vector<const row*>& keys) const = 0;
  /// Rows with their meta in primary-key order, each with its encoded key
  /// (store::encode_key), from the first whose encoded key is not less than
  /// `from` (any bytes; empty: the first row), at most `max` (0: no limit).
  virtual result<std::vector<std::pair<std::string, stored_row>>> scan_stored(
    const std::string& table, const std::string& from, std::size_t max) const = 0;

  /// Change-log entries with seq >= from_seq, oldest first, at most `max`
  /// (0 means no limit).
  virtual result<std::vector<change_record>> read_changes(std::uint64_t from_seq,
                                                          std::size_t max) const = 0;
  /// The seq of the newest change-log entry; 0 when the log is empty.
  virtual std::uint64_t last_seq() const = 0;

  /// Blocks until last_seq() >= seq or the deadline passes; returns
  /// last_seq(). This is how followers of the change log wait without
  /// polling.
  virtual std::uint64_t wait_for_seq(std::uint64_t seq,
                                     std::chrono::steady_clock::time_point deadline) const = 0;

  /// Calls `fn(last_seq)` after every commit group that wrote change-log
  /// entries, on the committing thread, after the writers were answered.
  /// `fn` must not call apply(). Returns an id for remove_commit_listener.
  virtual std::uint64_t add_commit_listener(std::function<void(std::uint64_t)> fn) = 0;
  virtual void remove_commit_listener(std::uint64_t id) = 0;

  virtual result<std::optional<std::string>> cursor(const std::string& source) const = 0;
  /// The extension record `name` (see batch::ext), or nullopt.
  virtual result<std::optional<std::string>> ext(const std::string& name) const = 0;
  /// Extension records whose names start with `prefix`, in name order,
  /// starting at the name `from` (inclusive; empty: the first), at most
  /// `max` (0: no limit); names are returned whole.
  virtual result<std::vector<std::pair<std::string, std::string>>> ext_scan(
    const std::string& prefix, const std::string& from = {}, std::size_t max = 0) const = 0;
  /// The extension record with the greatest name that starts with `prefix`
  /// (name and value), or nullopt: one seek, where ext_scan would read
  /// every record before it.
  virtual result<std::optional<std::pair<std::string, std::string>>> ext_last(
    const std::string& prefix) const = 0;
  virtual result<std::optional<job_state>> job(const std::string& view) const = 0;
  virtual result<std::vector<job_state>> jobs() const = 0;
  /// Outbox entries from seq `from` on, in write order, at most `max`.
  virtual result<std::vector<outbox_entry>> outbox(std::uint64_t from = 0,
                                                   std::size_t max = 0) const = 0;

  virtual const std::string& node_id() const = 0;
  /// Names this data directory, made at random when the store is first
  /// opened (16 hex digits): a directory deleted and made again under the
  /// same node id gets another, so what a remote recorded of the old one's
  /// outbox seqs (which start again at 1) is not taken for the new one's.
  virtual const std::string& incarnation() const = 0;
  virtual hybrid_clock& clock() = 0;
  virtual const options& opts() const = 0;

protected:
  store() = default;
};

/// Reads the change log from a position onwards, in order, waiting for new
/// entries when caught up. One reader per follower; not thread-safe itself.
class change_follower {
public:
  /// Follows `s` (which must outlive it) from change-log position `from_seq`.
  change_follower(const store& s, std::uint64_t from_seq);

  /// The next entries, at most `max`, waiting until `deadline` if there are
  /// none yet; an empty vector means the deadline passed.
  result<std::vector<change_record>> next(std::size_t max,
                                          std::chrono::steady_clock::time_point deadline);

  /// The position the next call reads from.
  std::uint64_t position() const { return next_seq_; }

private:
  const store& store_;
  std::uint64_t next_seq_;
};

} // namespace syncmesh::store
