#include "benchmarks/workload.hpp"

#include <cinttypes>
#include <cstdio>
#include <utility>

#include <leveldb/db.h>
#include <leveldb/env.h>
#include <leveldb/filter_policy.h>
#include <leveldb/write_batch.h>

#include "store/key_codec.hpp"
#include "store/layout.hpp"
#include "store/record_codec.hpp"

namespace syncmesh::benchmarks {

using namespace syncmesh::store;

namespace {

constexpr const char* users_table = "demo.users";

// Keys of one writer live in their own 2^40-wide id range.
constexpr std::int64_t writer_id_stride = std::int64_t{1} << 40;

status from_leveldb(const leveldb::Status& s, const std::string& context) {
  if (s.ok())
    return status::ok();
  return status::io_error(context + ": " + s.ToString());
}

} // namespace

schema users_schema() {
  schema s;
  s.table = users_table;
  s.columns = {{"id", value_kind::integer, "", false},
               {"name", value_kind::text, "", true},
               {"balance", value_kind::exact, "numeric", true}};
  s.primary_key = {0};
  return s;
}

row user_row(std::int64_t id) {
  char name[48];
  std::snprintf(name, sizeof name, "user-%012" PRId64 "@bench.example", id);
  return row{value::integer(id), value::text(name),
             value::exact("numeric", std::to_string(id % 100'000) + ".50")};
}

batch make_batch(int writer, std::uint64_t batch_index, std::size_t rows) {
  batch b;
  b.changes.reserve(rows);
  auto first = static_cast<std::int64_t>(writer) * writer_id_stride
               + static_cast<std::int64_t>(batch_index * rows);
  for (std::size_t i = 0; i < rows; ++i)
    b.changes.push_back({users_table, change_op::insert, {},
                         user_row(first + static_cast<std::int64_t>(i)), std::nullopt, "", std::nullopt, std::nullopt, false});
  b.cursors.emplace_back("writer-" + std::to_string(writer), std::to_string(batch_index));
  return b;
}

result<std::unique_ptr<raw_writer>> raw_writer::open(const std::string& path,
                                                     durability_mode durability) {
  std::unique_ptr<const leveldb::FilterPolicy> filter{leveldb::NewBloomFilterPolicy(10)};
  leveldb::Options lo;
  lo.create_if_missing = true;
  lo.env = leveldb::Env::Default();
  lo.filter_policy = filter.get();
  lo.write_buffer_size = options{}.write_buffer_bytes;
  leveldb::DB* raw = nullptr;
  if (auto st = from_leveldb(leveldb::DB::Open(lo, path, &raw),
                             "opening the baseline database at '" + path + "'");
      !st)
    return st;
  std::unique_ptr<raw_writer> w{
    new raw_writer(std::move(filter), std::unique_ptr<leveldb::DB>(raw), durability)};

  leveldb::WriteBatch init;
  init.Put(layout::meta_key("format"), std::to_string(layout::format_version));
  init.Put(layout::meta_key("node"), bench_node_id);
  init.Put(layout::schema_key(users_table), encode_schema(w->schema_));
  leveldb::WriteOptions wo;
  wo.sync = true;
  if (auto st = from_leveldb(w->db_->Write(wo, &init), "initialising the baseline database"); !st)
    return st;
  return w;
}

raw_writer::raw_writer(std::unique_ptr<const leveldb::FilterPolicy> filter,
                       std::unique_ptr<leveldb::DB> db, durability_mode durability)
  : filter_(std::move(filter)),
    db_(std::move(db)),
    sync_(durability == durability_mode::fsync),
    schema_(users_schema()),
    node_id_(bench_node_id),
    clock_(system_physical_clock(), options{}.max_clock_skew_ms) {}

raw_writer::~raw_writer() { db_.reset(); }

status raw_writer::write(const batch& b) {
  leveldb::WriteBatch wb;
  auto seq = next_seq_.fetch_add(b.changes.size());
  for (const auto& c : b.changes) {
    change_record rec;
    rec.seq = seq++;
    rec.hlc = clock_.now();
    rec.origin = node_id_;
    rec.table = c.table;
    rec.op = c.op;
    rec.key = schema_.key_of(*c.new_row);
    rec.new_row = c.new_row;
    wb.Put(layout::row_key(c.table, rec.key), encode_row(*c.new_row));
    wb.Put(layout::log_key(rec.seq), encode_change(rec));
  }
  for (const auto& [source, pos] : b.cursors)
    wb.Put(layout::cursor_key(source), pos);
  std::string hlc;
  encode_u64_be(hlc, clock_.last().packed());
  wb.Put(layout::meta_key("hlc"), hlc);

  leveldb::WriteOptions wo;
  wo.sync = sync_;
  return from_leveldb(db_->Write(wo, &wb), "writing a batch to the baseline database");
}

} // namespace syncmesh::benchmarks
