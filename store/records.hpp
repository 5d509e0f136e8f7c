#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "store/hlc.hpp"
#include "store/schema.hpp"
#include "store/value.hpp"

namespace syncmesh::store {

class encoded_rows;  // store/row_encoder.hpp

enum class change_op : std::uint8_t {
  insert = 1,    // upsert of a full row
  update = 2,    // full new row for an existing key (upsert if absent)
  remove = 3,    // delete by key; a tombstone in the change log
  truncate = 4,  // delete every row of the table
  /// The table's rows were replaced wholesale by a staged copy (a snapshot
  /// swapped in, see batch::swaps). The entry carries neither key nor rows:
  /// a reader that mirrors the table re-reads it (store::scan) instead of
  /// replaying one entry per row. Only the store writes it.
  replace = 5,
};

const char* to_string(change_op op) noexcept;

/// A change a writer asks the store to apply.
struct change {
  std::string table;
  change_op op = change_op::insert;
  row key;                      // primary-key values; empty for truncate
  std::optional<row> new_row;   // insert/update: the full new row
  /// Set when the change comes from elsewhere (a peer, PostgreSQL) and
  /// carries its own stamp; the store then observes it on its clock. Unset:
  /// the store stamps the change with its own clock and node id.
  std::optional<hlc_timestamp> hlc;
  std::string origin;           // origin node id; empty means this node
  /// Set by a writer that already holds the row as stored (the peer
  /// replicator keeps it in its merge state): the row before the change,
  /// absent when the key does not exist. The store logs it as the old row
  /// instead of reading the row again. It must be exact, and reflect the
  /// batch's own earlier changes of the key; another writer's change
  /// earlier in the same commit group still takes precedence.
  std::optional<std::optional<row>> known_old_row;
  /// Insert and update only: opaque bytes kept in the row's own record,
  /// that the writer reads back with store::get_stored / scan_stored — its
  /// bookkeeping about the row (a peer table's merge stamps), which so
  /// costs no record of its own. get, scan, views and the change log leave
  /// it out. Unset: the row is stored without meta (one it had is gone).
  std::optional<std::string> meta;
  /// With `meta`: the writer means to change only the meta, `new_row`
  /// being the row as it is stored. The store reads the row to check (the
  /// one read such a change costs; `known_old_row` is not taken for it):
  /// if it is that row, it is written again with the new meta and no
  /// change-log entry is made, as no reader of the rows sees a change;
  /// otherwise the change is an ordinary upsert, logged with the row it
  /// replaced.
  bool meta_only = false;
};

/// A row as stored, with the meta its writer keeps in its record (empty:
/// none).
struct stored_row {
  row values;
  std::string meta;
};

/// A change as the change log holds it: stamped, numbered, with the row as
/// it was before (so a reader can replay, undo or merge it).
struct change_record {
  std::uint64_t seq = 0;        // position in this store's change log, from 1
  hlc_timestamp hlc;
  std::string origin;
  std::string table;
  change_op op = change_op::insert;
  row key;
  std::optional<row> old_row;   // absent when the key did not exist
  std::optional<row> new_row;   // absent for remove and truncate

  bool operator==(const change_record& o) const {
    return seq == o.seq && hlc == o.hlc && origin == o.origin && table == o.table
           && op == o.op && key == o.key && old_row == o.old_row && new_row == o.new_row;
  }
};

enum class outbox_state : std::uint8_t {
  pending = 0,
  applied = 1,
  failed = 2,
  conflicted = 3,  // final: a conflict record explains it; never retried
};

const char* to_string(outbox_state s) noexcept;

/// A local write waiting to be pushed to a remote. `seq` orders the outbox;
/// `mutation_id` is recorded upstream so a push is never applied twice.
struct outbox_entry {
  std::uint64_t seq = 0;        // assigned by the store when 0
  std::string mutation_id;      // assigned by the store ("node:seq") when empty
  std::string view;
  std::string table;
  change_op op = change_op::insert;
  row key;
  std::string base_version;     // the remote row version the write is based on
  std::optional<row> new_row;
  outbox_state state = outbox_state::pending;
  std::uint32_t attempts = 0;
  std::string last_error;
  hlc_timestamp created;        // assigned by the store when zero

  bool operator==(const outbox_entry& o) const {
    return seq == o.seq && mutation_id == o.mutation_id && view == o.view && table == o.table
           && op == o.op && key == o.key && base_version == o.base_version
           && new_row == o.new_row && state == o.state && attempts == o.attempts
           && last_error == o.last_error && created == o.created;
  }
};

/// The persisted state of one view's sync job.
struct job_state {
  std::string view;             // "namespace.name"
  std::string persistence;      // origin | materialized | realtime | sync
  std::string mode;
  bool enabled = true;
  std::string state = "idle";   // idle | running | synced | failed
  std::string slot_id;
  std::string last_seen_commit;
  std::uint32_t retry_count = 0;
  std::string last_error;
  std::uint64_t next_retry_at_ms = 0;
  std::uint64_t updated_at_ms = 0;

  bool operator==(const job_state& o) const {
    return view == o.view && persistence == o.persistence && mode == o.mode
           && enabled == o.enabled && state == o.state && slot_id == o.slot_id
           && last_seen_commit == o.last_seen_commit && retry_count == o.retry_count
           && last_error == o.last_error && next_retry_at_ms == o.next_retry_at_ms
           && updated_at_ms == o.updated_at_ms;
  }
};

/// Rows for a staged copy of a table (store::begin_staging): invisible to
/// readers and absent from the change log until a swap makes the copy live.
/// A row with the key of an earlier staged row replaces it.
struct staged_rows {
  std::string table;
  std::uint64_t generation = 0;  // from store::begin_staging
  /// Full rows of the staging's schema; shared with whoever produced them
  /// (a snapshot piece), so staging never copies them. Null means none.
  std::shared_ptr<const std::vector<row>> rows;
  /// Rows already in their stored form (a row_encoder checked them against
  /// the staging's schema, which they must have been encoded with); written
  /// after `rows`. Null means none.
  std::shared_ptr<const encoded_rows> encoded;
};

/// Makes the staged copy `generation` of `table` its live copy, with the
/// schema it was staged with, in place of whatever the table held.
struct table_swap {
  std::string table;
  std::uint64_t generation = 0;
};

/// Everything one writer applies atomically: all of it lands, or none.
/// Within a batch, staged rows come first, then swaps, then changes (which
/// therefore apply to a copy swapped in by the same batch).
struct batch {
  std::vector<schema> create_tables;   // new tables (or identical re-creates)
  std::vector<staged_rows> stage;
  std::vector<table_swap> swaps;
  std::vector<change> changes;
  /// Source positions (PostgreSQL LSN, peer watermark, ...) by source name.
  std::vector<std::pair<std::string, std::string>> cursors;
  std::vector<outbox_entry> outbox_put;     // new (seq 0) or updated entries
  std::vector<std::uint64_t> outbox_remove; // by seq
  std::vector<job_state> jobs;
  /// Extension records by name: written (a value) or erased (nothing) with
  /// the rest of the batch. A connector keeps its own bookkeeping here — a
  /// peer link its row versions and watermarks — so that it lands in the
  /// same atomic write as the rows it describes.
  std::vector<std::pair<std::string, std::optional<std::string>>> ext;

  bool empty() const {
    return create_tables.empty() && stage.empty() && swaps.empty() && changes.empty()
           && cursors.empty() && outbox_put.empty() && outbox_remove.empty() && jobs.empty()
           && ext.empty();
  }
};

/// What an apply did.
struct apply_result {
  std::uint64_t first_seq = 0;  // first change-log position written; 0 if none
  std::uint64_t last_seq = 0;   // last change-log position written; 0 if none
  hlc_timestamp hlc;            // stamp of the last change
  std::vector<std::uint64_t> outbox_seqs;  // seqs of outbox_put, in order
};

} // namespace syncmesh::store
