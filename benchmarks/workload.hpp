#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "store/hlc.hpp"
#include "store/records.hpp"
#include "store/schema.hpp"
#include "store/status.hpp"
#include "store/store.hpp"

namespace leveldb {
class DB;
class FilterPolicy;
} // namespace leveldb

namespace syncmesh::benchmarks {

/// The node id the store and the baseline stamp on their change records.
inline constexpr const char* bench_node_id = "bench-node";

/// The table every apply benchmark writes, shaped like cli/store_demo.cpp's:
/// (id integer primary key, name text, balance numeric).
store::schema users_schema();

/// The row with primary key `id`: a name of about 30 bytes and an exact
/// numeric balance.
store::row user_row(std::int64_t id);

/// Writer `writer`'s `batch_index`-th batch: `rows` inserts of keys no other
/// (writer, batch_index) pair uses, plus the writer's cursor ("writer-<w>"
/// at the batch index). REQUIRES: rows <= rows_per_batch_max.
store::batch make_batch(int writer, std::uint64_t batch_index, std::size_t rows);
inline constexpr std::size_t rows_per_batch_max = 1u << 16;

/// The baseline: a LevelDB database opened with the options store::open uses
/// (bloom filter, memtable size), written with one leveldb::WriteBatch per
/// batch holding the keys and values the store's apply() writes for that
/// batch, encoded with the store's own codecs:
///   per change   layout::row_key -> encode_row(new_row)
///                layout::log_key -> encode_change(record, old_row none)
///   per cursor   layout::cursor_key -> position
///   per batch    layout::meta_key("hlc") -> the clock's last reading
/// It skips what the store adds around those bytes: validation, the read of
/// the old row, and serialising writers behind one leader. Only inserts of
/// fresh keys are modelled (old_row is always none), so it is only a fair
/// baseline for make_batch's batches.
///
/// Thread safety: write() may be called from any number of threads; LevelDB
/// group-commits concurrent writes itself.
class raw_writer {
public:
  /// Opens or creates the database at `path` and writes the meta keys and
  /// the users_schema() catalog entry the store would have written.
  static store::result<std::unique_ptr<raw_writer>> open(const std::string& path,
                                                         store::durability_mode durability);

  ~raw_writer();
  raw_writer(const raw_writer&) = delete;
  raw_writer& operator=(const raw_writer&) = delete;

  /// Writes `b` (a make_batch() batch) as one WriteBatch, synced when the
  /// durability is fsync.
  store::status write(const store::batch& b);

private:
  raw_writer(std::unique_ptr<const leveldb::FilterPolicy> filter, std::unique_ptr<leveldb::DB> db,
             store::durability_mode durability);

  std::unique_ptr<const leveldb::FilterPolicy> filter_;  // outlives db_
  std::unique_ptr<leveldb::DB> db_;
  const bool sync_;
  const store::schema schema_;
  const std::string node_id_;
  store::hybrid_clock clock_;
  std::atomic<std::uint64_t> next_seq_{1};
};

} // namespace syncmesh::benchmarks
