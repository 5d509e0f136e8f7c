#include "store/store.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <shared_mutex>
#include <unordered_map>

#include <leveldb/db.h>
#include <leveldb/env.h>
#include <leveldb/filter_policy.h>
#include <leveldb/iterator.h>
#include <leveldb/write_batch.h>

#include "store/key_codec.hpp"
#include "store/layout.hpp"
#include "store/record_codec.hpp"
#include "store/row_encoder.hpp"

namespace syncmesh::store {

const char* to_string(durability_mode d) noexcept {
  return d == durability_mode::fsync ? "fsync" : "buffered";
}

result<durability_mode> parse_durability(const std::string& name) {
  if (name == "fsync")
    return durability_mode::fsync;
  if (name == "buffered")
    return durability_mode::buffered;
  return status::invalid_argument("durability '" + name
                                  + "' is unknown; use \"fsync\" (the default: every commit "
                                    "group is synced to disk) or \"buffered\"");
}

store::~store() = default;

status store::create_table(const schema& s) {
  batch b;
  b.create_tables.push_back(s);
  return apply(b).error();
}

namespace {

// Decodes a record read under `key`, naming the key only when the record is
// damaged: describing a key costs about as much as decoding a small record,
// and a scan reads thousands.
template <class Decode>
auto decode_at(Decode decode, std::string_view bytes, std::string_view key) {
  auto r = decode(bytes, std::string());
  if (!r)
    r = decode(bytes, layout::describe_key(std::string(key)));
  return r;
}


status from_leveldb(const leveldb::Status& s, const std::string& context) {
  if (s.ok())
    return status::ok();
  if (s.IsCorruption())
    return status::corruption(context + ": " + s.ToString()
                              + "; the data directory is damaged, restore it or re-sync");
  if (s.IsNotFound())
    return status::not_found(context + ": " + s.ToString());
  return status::io_error(context + ": " + s.ToString()
                          + "; check free space and permissions of the data directory");
}

// Reads the single key before `end` in [begin, end); nullopt if none.
std::optional<std::string> last_key_in(leveldb::DB& db, const std::string& begin,
                                       const std::string& end) {
  std::unique_ptr<leveldb::Iterator> it{db.NewIterator({})};
  it->Seek(end);
  if (it->Valid())
    it->Prev();
  else
    it->SeekToLast();
  if (it->Valid() && it->key().compare(begin) >= 0 && it->key().compare(end) < 0)
    return it->key().ToString();
  return std::nullopt;
}

class store_impl final : public store {
public:
  store_impl(options opts, std::unique_ptr<leveldb::DB> db,
             std::unique_ptr<const leveldb::FilterPolicy> filter)
    : opts_(std::move(opts)), filter_(std::move(filter)), db_(std::move(db)) {}

  ~store_impl() override { db_.reset(); }

  status init() {
    if (auto st = check_format(); !st)
      return st;
    // Restore the counters and the clock from what is on disk.
    if (auto k = last_key_in(*db_, std::string(1, layout::log_prefix),
                             std::string(1, layout::log_prefix + 1));
        k && k->size() == 9)
      next_seq_ = decode_u64_be(std::string_view(*k).substr(1)) + 1;
    last_seq_.store(next_seq_ - 1);
    if (auto k = last_key_in(*db_, std::string(1, layout::outbox_prefix),
                             std::string(1, layout::outbox_prefix + 1));
        k && k->size() == 9)
      next_outbox_seq_ = decode_u64_be(std::string_view(*k).substr(1)) + 1;
    if (auto st = load_incarnation(); !st)
      return st;
    hlc_timestamp floor;
    std::string raw;
    auto s = db_->Get({}, layout::meta_key("hlc"), &raw);
    if (s.ok() && raw.size() == 8)
      floor = hlc_timestamp::from_packed(decode_u64_be(raw));
    else if (!s.IsNotFound())
      return s.ok() ? status::corruption("the clock reading stored at "
                                         + layout::describe_key(layout::meta_key("hlc"))
                                         + " is not 8 bytes; the data directory is damaged")
                    : from_leveldb(s, "reading the stored clock");
    clock_ = std::make_unique<hybrid_clock>(opts_.clock ? *opts_.clock : system_physical_clock(),
                                            opts_.max_clock_skew_ms, floor);
    hlc_written_ = floor.packed();
    if (auto st = load_catalog(); !st)
      return st;
    if (auto st = load_generations(); !st)
      return st;
    return find_garbage();
  }

  // --- writes --------------------------------------------------------------

  result<apply_result> apply(const batch& b) override {
    writer w{&b};
    std::unique_lock<std::mutex> lock{mu_};
    writers_.push_back(&w);
    while (!w.done && &w != writers_.front())
      w.cv.wait(lock);
    if (w.done)
      return w.st ? result<apply_result>{std::move(w.res)} : result<apply_result>{w.st};

    // This writer leads: take the waiting writers, up to the group bound.
    std::vector<writer*> group;
    std::size_t changes = 0;
    for (auto* x : writers_) {
      auto n = x->b->changes.size() + 1;
      for (const auto& sr : x->b->stage)
        n += (sr.rows ? sr.rows->size() : 0) + (sr.encoded ? sr.encoded->size() : 0);
      if (!group.empty() && changes + n > opts_.group_commit_changes_max)
        break;
      group.push_back(x);
      changes += n;
    }
    lock.unlock();
    if (!failed_.is_ok()) {
      for (auto* x : group)
        x->st = status::closed("the store at '" + opts_.path
                               + "' stopped taking writes after an earlier failure ("
                               + failed_.message() + "); restart the node once that is fixed");
    } else {
      commit_group(group);  // only the leader runs this; new writers queue up
    }
    lock.lock();

    for (auto* x : group) {
      writers_.pop_front();
      if (x != &w) {
        x->done = true;
        x->cv.notify_one();
      }
    }
    if (!writers_.empty())
      writers_.front()->cv.notify_one();
    lock.unlock();

    if (w.st && w.res.last_seq > 0)
      notify_listeners();
    return w.st ? result<apply_result>{std::move(w.res)} : result<apply_result>{w.st};
  }

  // --- reads ---------------------------------------------------------------

  result<std::optional<schema>> table(const std::string& name) const override {
    std::shared_lock<std::shared_mutex> guard{catalog_mu_};
    auto i = catalog_.find(name);
    if (i == catalog_.end())
      return std::optional<schema>{};
    return std::optional<schema>{i->second};
  }

  std::vector<schema> tables() const override {
    std::shared_lock<std::shared_mutex> guard{catalog_mu_};
    std::vector<schema> out;
    for (const auto& [name, s] : catalog_)
      out.push_back(s);
    return out;
  }

  result<std::optional<row>> get(const std::string& tbl, const row& key) const override {
    std::string prefix;
    snapshot_handle snap{db_.get()};
    {
      // The generation and the snapshot are read together, so the rows read
      // are the ones of the generation that was live at that moment, even if
      // a swap retires it and its rows are deleted meanwhile.
      std::shared_lock<std::shared_mutex> guard{catalog_mu_};
      auto i = catalog_.find(tbl);
      if (i == catalog_.end())
        return unknown_table(tbl);
      if (auto st = i->second.check_key(key); !st)
        return st;
      prefix = layout::generation_prefix_of(tbl, live_generation(tbl));
      snap.take();
    }
    leveldb::ReadOptions ro;
    ro.snapshot = snap.get();
    return read_row(prefix + encode_key(key), ro);
  }

  /// An iterator over the rows of `tbl`'s live generation and that
  /// generation's row prefix. As in get(), the iterator's implicit snapshot
  /// is taken together with the live generation. `check`, if given, is
  /// called with the table's schema under the same lock.
  struct live_rows {
    std::string prefix;
    std::unique_ptr<leveldb::Iterator> it;
  };
  result<live_rows> open_live_rows(const std::string& tbl,
                                   const std::function<status(const schema&)>& check = {}) const {
    live_rows out;
    std::shared_lock<std::shared_mutex> guard{catalog_mu_};
    auto i = catalog_.find(tbl);
    if (i == catalog_.end())
      return unknown_table(tbl);
    if (check)
      if (auto st = check(i->second); !st)
        return st;
    out.prefix = layout::generation_prefix_of(tbl, live_generation(tbl));
    out.it.reset(db_->NewIterator({}));
    return out;
  }

  result<std::vector<row>> scan(const std::string& tbl, const scan_options& so) const override {
    auto live = open_live_rows(tbl);
    if (!live)
      return live.error();
    const auto& prefix = live->prefix;
    auto& it = live->it;
    auto begin = prefix + encode_key(so.from);
    auto end = so.to.empty() ? layout::prefix_end(prefix) : prefix + encode_key(so.to);
    std::vector<row> out;
    for (it->Seek(begin); it->Valid() && it->key().compare(end) < 0; it->Next()) {
      auto r = decode_at(decode_row, std::string_view(it->value().data(), it->value().size()),
                         std::string_view(it->key().data(), it->key().size()));
      if (!r)
        return r.error();
      out.push_back(std::move(r).value());
      if (so.limit > 0 && out.size() >= so.limit)
        break;
    }
    if (auto st = from_leveldb(it->status(), "scanning table '" + tbl + "'"); !st)
      return st;
    return out;
  }

  result<std::vector<std::optional<stored_row>>> get_stored(
    const std::string& tbl, const std::vector<const row*>& keys) const override {
    auto live = open_live_rows(tbl, [&](const schema& sch) {
      for (const auto* k : keys)
        if (auto st = sch.check_key(*k); !st)
          return st;
      return status::ok();
    });
    if (!live)
      return live.error();
    const auto& prefix = live->prefix;
    auto& it = live->it;
    const auto end = layout::prefix_end(prefix);
    std::vector<std::optional<stored_row>> out(keys.size());
    std::string key, sought;  // sought: the key `it` was last sought for
    bool positioned = false;
    for (std::size_t n = 0; n < keys.size(); ++n) {
      key = prefix;
      for (const auto& v : *keys[n])
        encode_key_part(key, v);
      const leveldb::Slice target(key);
      // `it` stands at the first key not before `sought` (or nowhere: none
      // is). For a key not before `sought` and not after where `it` stands,
      // that is its row or past it (the row is missing): no seek. Keys in
      // order are mostly found so.
      if (!positioned || key < sought || (it->Valid() && it->key().compare(target) < 0)) {
        if (!it->status().ok())
          break;
        it->Seek(target);
        sought = key;
        positioned = true;
      }
      if (!it->Valid() || it->key().compare(end) >= 0 || it->key().compare(target) != 0)
        continue;
      auto r = decode_at(decode_stored_row, std::string_view(it->value().data(), it->value().size()),
                         std::string_view(it->key().data(), it->key().size()));
      if (!r)
        return r.error();
      out[n] = std::move(r).value();
    }
    if (auto st = from_leveldb(it->status(), "reading rows of table '" + tbl + "'"); !st)
      return st;
    return out;
  }

  result<std::vector<std::pair<std::string, stored_row>>> scan_stored(
    const std::string& tbl, const std::string& from, std::size_t max) const override {
    auto live = open_live_rows(tbl);
    if (!live)
      return live.error();
    const auto& prefix = live->prefix;
    auto& it = live->it;
    const auto end = layout::prefix_end(prefix);
    std::vector<std::pair<std::string, stored_row>> out;
    for (it->Seek(prefix + from); it->Valid() && it->key().compare(end) < 0; it->Next()) {
      auto r = decode_at(decode_stored_row, std::string_view(it->value().data(), it->value().size()),
                         std::string_view(it->key().data(), it->key().size()));
      if (!r)
        return r.error();
      out.emplace_back(std::string(it->key().data() + prefix.size(), it->key().size() - prefix.size()),
                       std::move(r).value());
      if (max > 0 && out.size() >= max)
        break;
    }
    if (auto st = from_leveldb(it->status(), "scanning table '" + tbl + "'"); !st)
      return st;
    return out;
  }

  result<std::vector<change_record>> read_changes(std::uint64_t from_seq,
                                                  std::size_t max) const override {
    std::vector<change_record> out;
    std::unique_ptr<leveldb::Iterator> it{db_->NewIterator({})};
    auto end = std::string(1, layout::log_prefix + 1);
    for (it->Seek(layout::log_key(from_seq)); it->Valid() && it->key().compare(end) < 0;
         it->Next()) {
      auto c = decode_at(decode_change, std::string_view(it->value().data(), it->value().size()),
                         std::string_view(it->key().data(), it->key().size()));
      if (!c)
        return c.error();
      if (it->key().size() != 9
          || c->seq != decode_u64_be(std::string_view(it->key().data() + 1, 8)))
        return status::corruption("the change-log entry stored at "
                                  + layout::describe_key(it->key().ToString())
                                  + " carries seq " + std::to_string(c->seq)
                                  + "; the data directory is damaged");
      out.push_back(std::move(c).value());
      if (max > 0 && out.size() >= max)
        break;
    }
    if (auto st = from_leveldb(it->status(), "reading the change log"); !st)
      return st;
    return out;
  }

  std::uint64_t last_seq() const override { return last_seq_.load(); }

  std::uint64_t wait_for_seq(std::uint64_t seq,
                             std::chrono::steady_clock::time_point deadline) const override {
    std::unique_lock<std::mutex> lock{seq_mu_};
    seq_cv_.wait_until(lock, deadline, [&] { return last_seq_.load() >= seq; });
    return last_seq_.load();
  }

  std::uint64_t add_commit_listener(std::function<void(std::uint64_t)> fn) override {
    std::lock_guard<std::mutex> guard{listeners_mu_};
    auto id = ++last_listener_id_;
    listeners_.emplace(id, std::move(fn));
    return id;
  }

  void remove_commit_listener(std::uint64_t id) override {
    std::lock_guard<std::mutex> guard{listeners_mu_};
    listeners_.erase(id);
  }

  result<std::optional<std::string>> cursor(const std::string& source) const override {
    std::string raw;
    auto s = db_->Get({}, layout::cursor_key(source), &raw);
    if (s.IsNotFound())
      return std::optional<std::string>{};
    if (!s.ok())
      return from_leveldb(s, "reading the cursor of source '" + source + "'");
    return std::optional<std::string>{std::move(raw)};
  }

  result<std::optional<std::string>> ext(const std::string& name) const override {
    std::string raw;
    auto s = db_->Get({}, layout::ext_key(name), &raw);
    if (s.IsNotFound())
      return std::optional<std::string>{};
    if (!s.ok())
      return from_leveldb(s, "reading the extension record '" + name + "'");
    return std::optional<std::string>{std::move(raw)};
  }

  result<std::vector<std::pair<std::string, std::string>>> ext_scan(
    const std::string& prefix, const std::string& from, std::size_t max) const override {
    std::vector<std::pair<std::string, std::string>> out;
    std::unique_ptr<leveldb::Iterator> it{db_->NewIterator({})};
    const auto start = layout::ext_key(from > prefix ? from : prefix);
    const auto end = layout::prefix_end(layout::ext_key(prefix));
    for (it->Seek(start); it->Valid() && it->key().compare(end) < 0; it->Next()) {
      if (max != 0 && out.size() >= max)
        break;
      out.emplace_back(std::string(it->key().data() + 1, it->key().size() - 1),
                       it->value().ToString());
    }
    if (auto st = from_leveldb(it->status(), "reading extension records '" + prefix + "...'"); !st)
      return st;
    return out;
  }

  result<std::optional<std::pair<std::string, std::string>>> ext_last(
    const std::string& prefix) const override {
    std::unique_ptr<leveldb::Iterator> it{db_->NewIterator({})};
    const auto first = layout::ext_key(prefix);
    const auto end = layout::prefix_end(first);
    it->Seek(end);
    if (it->Valid())
      it->Prev();
    else
      it->SeekToLast();
    std::optional<std::pair<std::string, std::string>> out;
    if (it->Valid() && it->key().starts_with(first))
      out.emplace(std::string(it->key().data() + 1, it->key().size() - 1), it->value().ToString());
    if (auto st = from_leveldb(it->status(), "reading the last extension record '" + prefix
                                                 + "...'");
        !st)
      return st;
    return out;
  }

  result<std::optional<job_state>> job(const std::string& view) const override {
    auto key = layout::job_key(view);
    std::string raw;
    auto s = db_->Get({}, key, &raw);
    if (s.IsNotFound())
      return std::optional<job_state>{};
    if (!s.ok())
      return from_leveldb(s, "reading the job state of view '" + view + "'");
    auto j = decode_job(raw, layout::describe_key(key));
    if (!j)
      return j.error();
    return std::optional<job_state>{std::move(j).value()};
  }

  result<std::vector<job_state>> jobs() const override {
    std::vector<job_state> out;
    auto st = for_each_in(std::string(1, layout::job_prefix), [&](auto key, auto val) {
      auto j = decode_job(val, layout::describe_key(key));
      if (!j)
        return j.error();
      out.push_back(std::move(j).value());
      return status::ok();
    });
    if (!st)
      return st;
    return out;
  }

  result<std::vector<outbox_entry>> outbox(std::uint64_t from, std::size_t max) const override {
    std::vector<outbox_entry> out;
    out.reserve(std::min<std::size_t>(max > 0 ? max : 1024, 4096));
    std::unique_ptr<leveldb::Iterator> it{db_->NewIterator({})};
    auto end = std::string(1, layout::outbox_prefix + 1);
    for (it->Seek(layout::outbox_key(from)); it->Valid() && it->key().compare(end) < 0;
         it->Next()) {
      auto e = decode_at(decode_outbox, std::string_view(it->value().data(), it->value().size()),
                         std::string_view(it->key().data(), it->key().size()));
      if (!e)
        return e.error();
      out.push_back(std::move(e).value());
      if (max > 0 && out.size() >= max)
        break;
    }
    if (auto st = from_leveldb(it->status(), "reading the outbox"); !st)
      return st;
    return out;
  }

  const std::string& node_id() const override { return node_id_; }
  const std::string& incarnation() const override { return incarnation_; }
  hybrid_clock& clock() override { return *clock_; }
  const options& opts() const override { return opts_; }

  // --- staged copies -------------------------------------------------------

  result<std::uint64_t> begin_staging(const schema& shape) override {
    if (auto st = shape.validate(); !st)
      return st;
    std::lock_guard<std::mutex> guard{staging_mu_};
    auto generation = next_generation_++;
    if (auto i = staging_.find(shape.table); i != staging_.end())
      add_garbage(layout::generation_prefix_of(shape.table, i->second.generation));
    staging_[shape.table] = staged_copy{generation, shape};
    return generation;
  }

  void abort_staging(const std::string& tbl, std::uint64_t generation) override {
    std::lock_guard<std::mutex> guard{staging_mu_};
    auto i = staging_.find(tbl);
    if (i == staging_.end() || i->second.generation != generation)
      return;
    staging_.erase(i);
    add_garbage(layout::generation_prefix_of(tbl, generation));
  }

  result<bool> collect_garbage(std::size_t max_keys) override {
    std::string prefix;
    {
      std::lock_guard<std::mutex> guard{staging_mu_};
      if (garbage_.empty())
        return false;
      prefix = garbage_.front();
    }
    // Garbage is never read and its generation never reused, so deleting it
    // needs neither the writer queue nor a sync.
    leveldb::WriteBatch wb;
    std::size_t n = 0;
    bool range_done = true;
    std::unique_ptr<leveldb::Iterator> it{db_->NewIterator({})};
    auto end = layout::prefix_end(prefix);
    for (it->Seek(prefix); it->Valid() && it->key().compare(end) < 0; it->Next()) {
      if (n == std::max<std::size_t>(max_keys, 1)) {
        range_done = false;
        break;
      }
      wb.Delete(it->key());
      ++n;
    }
    if (auto st = from_leveldb(it->status(), "finding garbage to delete"); !st)
      return st;
    it.reset();
    if (n > 0)
      if (auto st = from_leveldb(db_->Write({}, &wb), "deleting garbage"); !st)
        return st;
    std::lock_guard<std::mutex> guard{staging_mu_};
    if (range_done && !garbage_.empty() && garbage_.front() == prefix)
      garbage_.pop_front();
    return !garbage_.empty();
  }

  bool has_garbage() const override {
    std::lock_guard<std::mutex> guard{staging_mu_};
    return !garbage_.empty();
  }

private:
  // A LevelDB snapshot released on scope exit.
  class snapshot_handle {
  public:
    explicit snapshot_handle(leveldb::DB* db) : db_(db) {}
    ~snapshot_handle() {
      if (snap_)
        db_->ReleaseSnapshot(snap_);
    }
    snapshot_handle(const snapshot_handle&) = delete;
    snapshot_handle& operator=(const snapshot_handle&) = delete;
    void take() { snap_ = db_->GetSnapshot(); }
    const leveldb::Snapshot* get() const { return snap_; }

  private:
    leveldb::DB* db_;
    const leveldb::Snapshot* snap_ = nullptr;
  };

  // A staging begun by begin_staging() and not yet swapped in or abandoned.
  struct staged_copy {
    std::uint64_t generation = 0;
    schema shape;
  };

  // A swap the leader has staged: `table` moves from `from` to `to`.
  struct staged_swap {
    std::string table;
    std::uint64_t from = 0;
    std::uint64_t to = 0;
  };

  struct writer {
    explicit writer(const batch* b) : b(b) {}
    const batch* b;
    bool done = false;
    status st;
    apply_result res;
    std::condition_variable cv;
  };

  // What one commit group has staged but not yet written; consulted before
  // the database so later changes in the group see earlier ones.
  struct group_state {
    // By row key: the staged row (pointing into its writer's batch, which
    // outlives the group), or null for a staged delete.
    std::unordered_map<std::string, const row*> rows;
    // New tables, and tables whose schema a swap replaces.
    std::map<std::string, schema> new_tables;
    // Live generations that swaps change, by table.
    std::map<std::string, std::uint64_t> generations;
    std::vector<staged_swap> swaps;
    // Staged generations written to, by table.
    std::vector<std::pair<std::string, std::uint64_t>> staged;
    // The format the group writes, if it raises the store's (0: none).
    std::uint32_t format_written = 0;
    std::uint64_t next_seq;
    std::uint64_t next_outbox_seq;
  };

  static status unknown_table(const std::string& tbl) {
    return status::not_found("table '" + tbl
                             + "' does not exist in this store; create it first or check "
                               "the name");
  }

  template <class Fn>
  status for_each_in(const std::string& prefix, Fn fn) const {
    std::unique_ptr<leveldb::Iterator> it{db_->NewIterator({})};
    auto end = layout::prefix_end(prefix);
    for (it->Seek(prefix); it->Valid() && it->key().compare(end) < 0; it->Next()) {
      auto st = fn(it->key().ToString(), std::string_view(it->value().data(), it->value().size()));
      if (!st)
        return st;
    }
    return from_leveldb(it->status(), "reading the store");
  }

  result<std::optional<row>> read_row(const std::string& key,
                                      const leveldb::ReadOptions& ro = {}) const {
    std::string raw;
    auto s = db_->Get(ro, key, &raw);
    if (s.IsNotFound())
      return std::optional<row>{};
    if (!s.ok())
      return from_leveldb(s, "reading " + layout::describe_key(key));
    auto r = decode_at(decode_row, raw, key);
    if (!r)
      return r.error();
    return std::optional<row>{std::move(r).value()};
  }

  status check_format() {
    std::string raw;
    auto key = layout::meta_key("format");
    auto s = db_->Get({}, key, &raw);
    leveldb::WriteBatch init;
    if (s.IsNotFound()) {
      init.Put(key, std::to_string(layout::format_version));
      stored_format_ = layout::format_version;
    } else if (!s.ok()) {
      return from_leveldb(s, "reading the store's format version");
    } else {
      std::uint64_t version = 0;
      try {
        std::size_t used = 0;
        version = std::stoull(raw, &used);
        if (used != raw.size())
          throw std::invalid_argument(raw);
      } catch (const std::exception&) {
        return status::corruption("the format version stored at " + layout::describe_key(key)
                                  + " is not a number; the data directory is damaged");
      }
      stored_format_ = static_cast<std::uint32_t>(version);
      if (version > layout::format_version)
        return status::format_too_new(
          "the store at '" + opts_.path + "' was written by a newer syncmesh (store format "
          + std::to_string(version) + "; this build reads format "
          + std::to_string(layout::format_version)
          + " and older); run a newer syncmesh, or point the node at a new data directory");
    }
    std::string stored_node;
    s = db_->Get({}, layout::meta_key("node"), &stored_node);
    if (s.IsNotFound()) {
      node_id_ = opts_.node_id.empty() ? "local" : opts_.node_id;
      init.Put(layout::meta_key("node"), node_id_);
    } else if (!s.ok()) {
      return from_leveldb(s, "reading the store's node id");
    } else {
      if (!opts_.node_id.empty() && opts_.node_id != stored_node)
        return status::invalid_argument("the store at '" + opts_.path + "' belongs to node '"
                                        + stored_node + "', not '" + opts_.node_id
                                        + "'; use that node id or a new data directory");
      node_id_ = stored_node;
    }
    if (init.ApproximateSize() > leveldb::WriteBatch().ApproximateSize()) {
      leveldb::WriteOptions wo;
      wo.sync = true;
      if (auto st = from_leveldb(db_->Write(wo, &init), "initialising the store"); !st)
        return st;
    }
    return status::ok();
  }

  status load_catalog() {
    return for_each_in(std::string(1, layout::schema_prefix), [&](auto key, auto val) {
      auto s = decode_schema(val, layout::describe_key(key));
      if (!s)
        return s.error();
      catalog_.emplace(s->table, std::move(s).value());
      return status::ok();
    });
  }

  // The live generation of `tbl`. REQUIRES: catalog_mu_ held.
  std::uint64_t live_generation(const std::string& tbl) const {
    auto i = generations_.find(tbl);
    return i == generations_.end() ? 0 : i->second;
  }

  status load_generations() {
    return for_each_in(std::string(1, layout::live_generation_prefix), [&](auto key, auto val) {
      if (val.size() != 8)
        return status::corruption("the generation stored at " + layout::describe_key(key)
                                  + " is not 8 bytes; the data directory is damaged");
      auto generation = decode_u64_be(val);
      generations_[key.substr(1)] = generation;
      next_generation_ = std::max(next_generation_, generation + 1);
      return status::ok();
    });
  }

  // The data directory's incarnation: read, or made and written (synced)
  // by the first open.
  status load_incarnation() {
    const auto key = layout::meta_key("incarnation");
    auto s = db_->Get({}, key, &incarnation_);
    if (s.ok()) {
      if (incarnation_.size() != 16
          || incarnation_.find_first_not_of("0123456789abcdef") != std::string::npos)
        return status::corruption("the incarnation stored at " + layout::describe_key(key)
                                  + " is not 16 hex digits; the data directory is damaged");
      return status::ok();
    }
    if (!s.IsNotFound())
      return from_leveldb(s, "reading the data directory's incarnation");
    std::random_device rd;
    std::uint64_t r = (static_cast<std::uint64_t>(rd()) << 32) ^ rd()
                      ^ static_cast<std::uint64_t>(
                        std::chrono::system_clock::now().time_since_epoch().count());
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(r));
    incarnation_ = buf;
    leveldb::WriteOptions wo;
    wo.sync = true;
    return from_leveldb(db_->Put(wo, key, incarnation_), "recording the data directory's incarnation");
  }

  // Every generation of a table but its live one is garbage at open: a
  // staging the crash interrupted, or a retired copy not yet deleted.
  status find_garbage() {
    std::unique_ptr<leveldb::Iterator> it{db_->NewIterator({})};
    auto end = std::string(1, layout::generation_row_prefix + 1);
    for (it->Seek(std::string(1, layout::generation_row_prefix));
         it->Valid() && it->key().compare(end) < 0;) {
      auto raw = it->key().ToString();
      std::string_view rest = std::string_view(raw).substr(1);
      auto tbl = decode_key_part(rest);
      if (!tbl || tbl->kind() != value_kind::text || rest.size() < 8)
        return status::corruption("the key " + layout::describe_key(raw)
                                  + " names no table generation; the data directory is damaged");
      auto generation = decode_u64_be(rest);
      next_generation_ = std::max(next_generation_, generation + 1);
      auto prefix = layout::generation_prefix_of(tbl->as_text(), generation);
      if (live_generation(tbl->as_text()) != generation)
        garbage_.push_back(prefix);
      it->Seek(layout::prefix_end(prefix));
    }
    if (auto st = from_leveldb(it->status(), "looking for staged garbage"); !st)
      return st;
    for (const auto& [tbl, generation] : generations_) {
      if (generation == 0)
        continue;
      auto prefix = layout::row_prefix_of(tbl);
      it->Seek(prefix);
      if (it->Valid() && it->key().starts_with(prefix))
        garbage_.push_back(prefix);
    }
    return from_leveldb(it->status(), "looking for retired rows");
  }

  // REQUIRES: staging_mu_ held.
  void add_garbage(std::string prefix) {
    if (std::find(garbage_.begin(), garbage_.end(), prefix) == garbage_.end())
      garbage_.push_back(std::move(prefix));
  }

  // The live generation of `tbl` as the group sees it.
  std::uint64_t group_generation(const group_state& g, const group_state& local,
                                 const std::string& tbl) const {
    if (auto i = local.generations.find(tbl); i != local.generations.end())
      return i->second;
    if (auto i = g.generations.find(tbl); i != g.generations.end())
      return i->second;
    std::shared_lock<std::shared_mutex> guard{catalog_mu_};
    return live_generation(tbl);
  }

  // A copy of the current staging of `tbl` if it is `generation`.
  result<staged_copy> current_staging(const std::string& tbl, std::uint64_t generation) const {
    std::lock_guard<std::mutex> guard{staging_mu_};
    auto i = staging_.find(tbl);
    if (i == staging_.end() || i->second.generation != generation)
      return status::invalid_argument(
        "staged copy " + std::to_string(generation) + " of table '" + tbl
        + "' is not being staged (it was swapped in, abandoned, or never begun); begin a new "
          "staging");
    return i->second;
  }

  // The schema `name` has for this writer, or null. The pointer stays valid
  // while the group is staged: only the leader changes the catalog, and only
  // by adding entries once the group is written.
  const schema* lookup_table(const group_state& g, const batch& b, const std::string& name,
                             const group_state* local = nullptr) const {
    if (local)
      if (auto i = local->new_tables.find(name); i != local->new_tables.end())
        return &i->second;
    for (const auto& s : b.create_tables)
      if (s.table == name)
        return &s;
    if (auto i = g.new_tables.find(name); i != g.new_tables.end())
      return &i->second;
    std::shared_lock<std::shared_mutex> guard{catalog_mu_};
    if (auto i = catalog_.find(name); i != catalog_.end())
      return &i->second;
    return nullptr;
  }

  // Checks a writer's batch without changing anything.
  status validate(const group_state& g, const batch& b) const {
    for (const auto& s : b.create_tables) {
      if (auto st = s.validate(); !st)
        return st;
      std::optional<schema> existing;
      if (auto i = g.new_tables.find(s.table); i != g.new_tables.end())
        existing = i->second;
      else if (auto t = table(s.table); t && *t)
        existing = **t;
      if (existing && !(*existing == s))
        return status::invalid_argument("table '" + s.table
                                        + "' already exists with a different schema; "
                                          "use a new table name");
    }
    for (const auto& sr : b.stage)
      if (auto cur = current_staging(sr.table, sr.generation); !cur)
        return cur.error();
    for (const auto& sw : b.swaps)
      if (auto cur = current_staging(sw.table, sw.generation); !cur)
        return cur.error();
    // The schema of the last run of changes to one table, looked up once
    // (batches without swaps: nothing below changes a schema).
    const std::string* run_table = nullptr;
    const schema* run_schema = nullptr;
    for (const auto& c : b.changes) {
      // A change to a table this batch swaps in is checked against the
      // schema the table is staged with.
      std::optional<staged_copy> swapped;
      for (const auto& sw : b.swaps)
        if (sw.table == c.table)
          if (auto cur = current_staging(sw.table, sw.generation); cur)
            swapped = std::move(cur).value();
      const schema* sch = nullptr;
      if (swapped) {
        sch = &swapped->shape;
      } else if (run_table && *run_table == c.table) {
        sch = run_schema;
      } else {
        sch = lookup_table(g, b, c.table);
        run_table = &c.table;
        run_schema = sch;
      }
      if (!sch)
        return unknown_table(c.table);
      switch (c.op) {
        case change_op::insert:
        case change_op::update:
          if (!c.new_row)
            return status::invalid_argument(std::string("an ") + to_string(c.op) + " on table '"
                                            + c.table + "' carries no new row");
          if (c.meta_only && !c.meta)
            return status::invalid_argument("a change of table '" + c.table
                                            + "' that rewrites only a row's meta must carry it");
          if (auto st = sch->check_row(*c.new_row); !st)
            return st;
          if (!c.key.empty() && !sch->is_key_of(c.key, *c.new_row))
            return status::invalid_argument("an " + std::string(to_string(c.op)) + " on table '"
                                            + c.table + "' names key " + to_display(c.key)
                                            + " but its row has key "
                                            + to_display(sch->key_of(*c.new_row)));
          break;
        case change_op::remove:
          if (auto st = sch->check_key(c.key); !st)
            return st;
          if (c.meta || c.meta_only)
            return status::invalid_argument("a remove of a row of table '" + c.table
                                            + "' cannot carry meta; only inserts and updates do");
          break;
        case change_op::truncate:
          if (!c.key.empty() || c.new_row || c.meta || c.meta_only)
            return status::invalid_argument("a truncate of table '" + c.table
                                            + "' must carry neither key, row nor meta");
          break;
        default:
          return status::invalid_argument("a change on table '" + c.table
                                          + "' has an operation writers cannot ask for ("
                                          + to_string(c.op) + ")");
      }
    }
    for (const auto& [source, pos] : b.cursors)
      if (source.empty())
        return status::invalid_argument("a cursor needs a source name");
    for (const auto& [name, value] : b.ext)
      if (name.empty())
        return status::invalid_argument("an extension record needs a name");
    for (const auto& j : b.jobs)
      if (j.view.empty())
        return status::invalid_argument("a job state needs a view name");
    for (const auto& e : b.outbox_put)
      if (e.table.empty())
        return status::invalid_argument("an outbox entry needs a table name");
    return status::ok();
  }

  // The row under `key` as the group sees it: staged, else on disk.
  result<std::optional<row>> current_row(const group_state& g, const group_state& local,
                                         const std::string& key) const {
    auto staged = [](const row* r) { return r ? std::optional<row>{*r} : std::optional<row>{}; };
    if (auto i = local.rows.find(key); i != local.rows.end())
      return staged(i->second);
    if (auto i = g.rows.find(key); i != g.rows.end())
      return staged(i->second);
    return read_row(key);
  }

  // Stages one writer's batch into `wb`; on error nothing of it is staged.
  // `alone`: the writer is its group's only one, so on error the group
  // writes nothing and its batch may go into `wb` directly (saving a copy
  // of every byte; a node's store actor is the only writer, so this is the
  // usual case).
  // A record the store writes needs format `needed`: an older store is
  // raised to it (only as far: builds that read it can still open it) in
  // the same batch.
  void raise_format(const group_state& g, group_state& local, leveldb::WriteBatch& wb,
                    std::uint32_t needed) const {
    if (stored_format_ >= needed || g.format_written >= needed || local.format_written >= needed)
      return;
    wb.Put(layout::meta_key("format"), std::to_string(needed));
    local.format_written = needed;
  }

  status stage(group_state& g, writer& w, leveldb::WriteBatch& wb, bool alone) {
    const auto& b = *w.b;
    if (auto st = validate(g, b); !st)
      return st;
    group_state local;
    local.next_seq = g.next_seq;
    local.next_outbox_seq = g.next_outbox_seq;
    leveldb::WriteBatch own;
    leveldb::WriteBatch& mine = alone ? wb : own;
    apply_result res;

    for (const auto& s : b.create_tables) {
      mine.Put(layout::schema_key(s.table), encode_schema(s));
      local.new_tables.emplace(s.table, s);
    }
    // Staged rows: no old row, no change log, into a generation nobody reads.
    std::string key;
    for (const auto& sr : b.stage) {
      auto cur = current_staging(sr.table, sr.generation);
      if (!cur)
        return cur.error();
      auto prefix = layout::generation_prefix_of(sr.table, sr.generation);
      if (sr.rows)
        for (const auto& r : *sr.rows) {
          if (auto st = cur->shape.check_row(r); !st)
            return st;
          key = prefix;
          for (auto k : cur->shape.primary_key)
            encode_key_part(key, r[k]);
          mine.Put(key, encode_row(r));
        }
      if (sr.encoded) {
        if (!(sr.encoded->shape() == cur->shape))
          return status::invalid_argument(
            "rows staged into table '" + sr.table + "' were encoded for another shape than "
            "its staging has; encode them with the schema given to begin_staging");
        sr.encoded->for_each([&](std::string_view k, std::string_view v) {
          key.assign(prefix);
          key.append(k);
          mine.Put(key, leveldb::Slice(v.data(), v.size()));
        });
      }
      local.staged.emplace_back(sr.table, sr.generation);
    }
    for (const auto& sw : b.swaps) {
      auto cur = current_staging(sw.table, sw.generation);
      if (!cur)
        return cur.error();
      std::string generation;
      encode_u64_be(generation, sw.generation);
      mine.Put(layout::live_generation_key(sw.table), generation);
      mine.Put(layout::schema_key(sw.table), encode_schema(cur->shape));
      raise_format(g, local, mine, layout::generations_format_version);
      local.swaps.push_back({sw.table, group_generation(g, local, sw.table), sw.generation});
      local.generations[sw.table] = sw.generation;
      local.new_tables.insert_or_assign(sw.table, std::move(cur->shape));
      change_record rec;
      rec.seq = local.next_seq++;
      rec.hlc = clock_->now();
      rec.origin = node_id_;
      rec.table = sw.table;
      rec.op = change_op::replace;
      mine.Put(layout::log_key(rec.seq), encode_change(rec));
      if (res.first_seq == 0)
        res.first_seq = rec.seq;
      res.last_seq = rec.seq;
      res.hlc = rec.hlc;
    }
    // The clock observes the newest stamp the changes carry, once: a
    // change stamped too far ahead refuses the batch all the same, and
    // the changes stamped here come after every one of them.
    {
      std::optional<hlc_timestamp> newest;
      for (const auto& c : b.changes)
        if (c.hlc && (!newest || *newest < *c.hlc))
          newest = *c.hlc;
      if (newest)
        if (auto observed = clock_->observe(*newest); !observed)
          return observed.error();
    }
    // The rows this writer stages, by key, serve the group's later writers,
    // this writer's own later changes that read their row, and a truncate
    // after them. A writer alone in its group whose changes all carry their
    // old rows (a peer's merged commit) and which truncates nothing and
    // changes no meta alone (which reads its row) needs none of that: it
    // skips a map entry per change.
    const bool track_rows =
      !alone || std::any_of(b.changes.begin(), b.changes.end(), [](const change& c) {
        return !c.known_old_row || c.meta_only || c.op == change_op::truncate;
      });
    // Tables and their row prefixes, looked up once per run of changes of
    // one table (nothing below changes them: swaps and creates came above).
    const std::string* last_table = nullptr;
    const schema* sch = nullptr;
    std::string row_prefix;
    for (const auto& c : b.changes) {
      if (!last_table || *last_table != c.table) {
        sch = lookup_table(g, b, c.table, &local);
        row_prefix = layout::generation_prefix_of(c.table, group_generation(g, local, c.table));
        last_table = &c.table;
      }
      if (c.meta)
        raise_format(g, local, mine, layout::meta_rows_format_version);
      change_record rec;
      if (c.hlc) {
        rec.hlc = *c.hlc;  // keep the origin's stamp: merges compare it
      } else {
        rec.hlc = clock_->now();
      }
      const std::string& origin = c.hlc && !c.origin.empty() ? c.origin : node_id_;
      rec.op = c.op;
      // The rows the log entry names, without copying them into it.
      const row* old_row = nullptr;
      const row* new_row = nullptr;
      std::optional<row> read_old;
      if (c.op == change_op::truncate) {
        const auto& prefix = row_prefix;
        auto st = for_each_in(prefix, [&](auto key, auto) {
          mine.Delete(key);
          local.rows[key] = nullptr;
          return status::ok();
        });
        if (!st)
          return st;
        for (auto* rows : {&g.rows, &local.rows})
          for (auto& [key, r] : *rows)
            if (key.compare(0, prefix.size(), prefix) == 0 && r) {
              mine.Delete(key);
              local.rows[key] = nullptr;
            }
      } else {
        rec.key = c.new_row ? sch->key_of(*c.new_row) : c.key;
        auto key = row_prefix + encode_key(rec.key);
        // A change of the meta alone is checked against the row as stored
        // (the one read it costs): see change::meta_only.
        if (c.known_old_row && !c.meta_only
            && (!track_rows || (!local.rows.count(key) && !g.rows.count(key)))) {
          if (*c.known_old_row)
            old_row = &**c.known_old_row;
        } else {
          auto old = current_row(g, local, key);
          if (!old)
            return old.error();
          read_old = std::move(old).value();
          if (read_old)
            old_row = &*read_old;
        }
        if (c.op == change_op::remove) {
          mine.Delete(key);
          if (track_rows)
            local.rows[std::move(key)] = nullptr;
        } else {
          new_row = &*c.new_row;
          mine.Put(key, c.meta ? encode_row(*c.new_row, *c.meta) : encode_row(*c.new_row));
          if (track_rows)
            local.rows[std::move(key)] = &*c.new_row;
        }
      }
      if (c.meta_only && old_row && *old_row == *c.new_row)
        continue;  // the row as readers see it did not change: nothing to log
      rec.seq = local.next_seq++;
      mine.Put(layout::log_key(rec.seq),
               encode_change(rec.seq, rec.hlc, origin, c.table, rec.op, rec.key, old_row, new_row));
      if (res.first_seq == 0)
        res.first_seq = rec.seq;
      res.last_seq = rec.seq;
      res.hlc = rec.hlc;
    }
    for (const auto& [source, pos] : b.cursors)
      mine.Put(layout::cursor_key(source), pos);
    for (const auto& [name, value] : b.ext) {
      if (value)
        mine.Put(layout::ext_key(name), *value);
      else
        mine.Delete(layout::ext_key(name));
    }
    for (const auto& given : b.outbox_put) {
      // A settled entry comes whole (a push settles thousands): encoded
      // as given; a new one is copied to fill in what the store assigns.
      const outbox_entry* e = &given;
      std::optional<outbox_entry> filled;
      if (given.seq == 0 || given.mutation_id.empty() || given.created == hlc_timestamp{}) {
        e = &filled.emplace(given);
        if (filled->seq == 0)
          filled->seq = local.next_outbox_seq++;
        if (filled->mutation_id.empty())
          filled->mutation_id = node_id_ + ":" + std::to_string(filled->seq);
        if (filled->created == hlc_timestamp{})
          filled->created = clock_->now();
      }
      if (e->seq >= local.next_outbox_seq)
        local.next_outbox_seq = e->seq + 1;
      mine.Put(layout::outbox_key(e->seq), encode_outbox(*e));
      res.outbox_seqs.push_back(e->seq);
    }
    for (auto seq : b.outbox_remove)
      mine.Delete(layout::outbox_key(seq));
    for (const auto& j : b.jobs)
      mine.Put(layout::job_key(j.view), encode_job(j));

    // The writer's batch is whole: fold it into the group.
    // The group's later writers see this one's rows; a writer alone has none.
    if (!alone) {
      wb.Append(own);
      for (auto& [key, r] : local.rows)
        g.rows[key] = r;
    }
    for (auto& [name, s] : local.new_tables)
      g.new_tables[name] = std::move(s);
    for (auto& [name, generation] : local.generations)
      g.generations[name] = generation;
    g.swaps.insert(g.swaps.end(), local.swaps.begin(), local.swaps.end());
    g.staged.insert(g.staged.end(), local.staged.begin(), local.staged.end());
    g.format_written = std::max(g.format_written, local.format_written);
    g.next_seq = local.next_seq;
    g.next_outbox_seq = local.next_outbox_seq;
    w.res = std::move(res);
    return status::ok();
  }

  void commit_group(const std::vector<writer*>& group) {
    group_state g;
    g.next_seq = next_seq_;
    g.next_outbox_seq = next_outbox_seq_;
    leveldb::WriteBatch wb;
    std::vector<writer*> staged;
    for (auto* w : group) {
      w->st = stage(g, *w, wb, group.size() == 1);
      if (w->st)
        staged.push_back(w);
    }
    if (staged.empty())
      return;
    // The clock's last reading, when it moved since the last group wrote it.
    // A group of staged rows only stamps nothing: writing the same reading
    // again would put an M key into every memtable of a bulk load, making
    // LevelDB's level-0 files overlap (M sorts after G), and then merge them
    // instead of moving them down whole.
    const auto reading = clock_->last().packed();
    if (reading != hlc_written_) {
      std::string hlc;
      encode_u64_be(hlc, reading);
      wb.Put(layout::meta_key("hlc"), hlc);
    }

    leveldb::WriteOptions wo;
    wo.sync = opts_.durability == durability_mode::fsync;
    auto st = from_leveldb(db_->Write(wo, &wb), "writing a commit group to the store");
    if (!st) {
      // Nothing of the group is visible: counters and catalog stay as they
      // were, and every staged writer learns why.
      for (auto* w : staged) {
        w->st = st;
        w->res = {};
      }
      // LevelDB refuses further writes after a failed log write; say so
      // plainly from now on instead of repeating its error.
      failed_ = st;
      return;
    }
    next_seq_ = g.next_seq;
    next_outbox_seq_ = g.next_outbox_seq;
    hlc_written_ = reading;
    if (g.format_written > stored_format_)
      stored_format_ = g.format_written;
    if (!g.new_tables.empty() || !g.generations.empty()) {
      // A schema is replaced only by a swap, together with its generation;
      // readers take both under this lock.
      std::unique_lock<std::shared_mutex> guard{catalog_mu_};
      for (auto& [name, s] : g.new_tables)
        catalog_.insert_or_assign(name, std::move(s));
      for (auto& [name, generation] : g.generations)
        generations_[name] = generation;
    }
    if (!g.swaps.empty() || !g.staged.empty()) {
      std::lock_guard<std::mutex> guard{staging_mu_};
      for (const auto& sw : g.swaps) {
        if (auto i = staging_.find(sw.table); i != staging_.end() && i->second.generation == sw.to)
          staging_.erase(i);
        add_garbage(layout::generation_prefix_of(sw.table, sw.from));
      }
      // Rows written to a staging abandoned while they were being written
      // would escape a collection that already ran: collect it again.
      for (const auto& [name, generation] : g.staged) {
        auto i = staging_.find(name);
        bool staging = i != staging_.end() && i->second.generation == generation;
        bool live = std::any_of(g.swaps.begin(), g.swaps.end(), [&](const staged_swap& sw) {
          return sw.table == name && sw.to == generation;
        });
        if (!staging && !live)
          add_garbage(layout::generation_prefix_of(name, generation));
      }
    }
    {
      std::lock_guard<std::mutex> guard{seq_mu_};
      last_seq_.store(next_seq_ - 1);
    }
    seq_cv_.notify_all();
  }

  void notify_listeners() {
    std::vector<std::function<void(std::uint64_t)>> fns;
    {
      std::lock_guard<std::mutex> guard{listeners_mu_};
      for (const auto& [id, fn] : listeners_)
        fns.push_back(fn);
    }
    auto seq = last_seq_.load();
    for (auto& fn : fns)
      fn(seq);
  }

  options opts_;
  std::unique_ptr<const leveldb::FilterPolicy> filter_;
  std::unique_ptr<leveldb::DB> db_;
  std::unique_ptr<hybrid_clock> clock_;
  std::string node_id_;

  std::mutex mu_;                // guards writers_
  std::deque<writer*> writers_;  // front is the leader

  // Touched only by the current leader (and by init before any writer).
  status failed_;  // set by the first failed commit; the store then takes no writes
  std::uint64_t next_seq_ = 1;
  std::uint64_t next_outbox_seq_ = 1;
  std::string incarnation_;
  std::uint64_t hlc_written_ = 0;  // the clock reading the store holds (packed)

  std::uint32_t stored_format_ = layout::format_version;  // leader only, after init

  mutable std::shared_mutex catalog_mu_;
  std::map<std::string, schema> catalog_;
  std::map<std::string, std::uint64_t> generations_;  // live generation by table; absent = 0

  mutable std::mutex staging_mu_;  // guards the three below
  std::map<std::string, staged_copy> staging_;  // by table
  std::uint64_t next_generation_ = 1;  // generations are never reused
  std::deque<std::string> garbage_;    // key prefixes to delete, oldest first

  std::atomic<std::uint64_t> last_seq_{0};
  mutable std::mutex seq_mu_;
  mutable std::condition_variable seq_cv_;

  std::mutex listeners_mu_;
  std::uint64_t last_listener_id_ = 0;
  std::map<std::uint64_t, std::function<void(std::uint64_t)>> listeners_;
};

} // namespace

result<std::unique_ptr<store>> store::open(const options& opts) {
  if (opts.path.empty())
    return status::invalid_argument("the store needs a data directory path");
  if (opts.group_commit_changes_max == 0)
    return status::invalid_argument("group_commit_changes_max must be at least 1");
  std::unique_ptr<const leveldb::FilterPolicy> filter{leveldb::NewBloomFilterPolicy(10)};
  leveldb::Options lo;
  lo.create_if_missing = true;
  lo.env = opts.env ? opts.env : leveldb::Env::Default();
  lo.filter_policy = filter.get();
  lo.write_buffer_size = opts.write_buffer_bytes;
  leveldb::DB* raw = nullptr;
  auto s = leveldb::DB::Open(lo, opts.path, &raw);
  if (!s.ok()) {
    if (s.IsIOError())
      return status::io_error("could not open the store at '" + opts.path + "': " + s.ToString()
                              + "; check that the directory is writable and that no other "
                                "node process is using it");
    return from_leveldb(s, "opening the store at '" + opts.path + "'");
  }
  auto impl = std::make_unique<store_impl>(opts, std::unique_ptr<leveldb::DB>(raw),
                                           std::move(filter));
  if (auto st = impl->init(); !st)
    return st;
  return std::unique_ptr<store>(std::move(impl));
}

change_follower::change_follower(const store& s, std::uint64_t from_seq)
  : store_(s), next_seq_(from_seq == 0 ? 1 : from_seq) {}

result<std::vector<change_record>> change_follower::next(
  std::size_t max, std::chrono::steady_clock::time_point deadline) {
  if (store_.last_seq() < next_seq_)
    store_.wait_for_seq(next_seq_, deadline);
  auto out = store_.read_changes(next_seq_, max);
  if (out && !out->empty())
    next_seq_ = out->back().seq + 1;
  return out;
}

} // namespace syncmesh::store
