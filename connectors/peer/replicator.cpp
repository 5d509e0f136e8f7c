#include "connectors/peer/replicator.hpp"

#include <algorithm>
#include <cassert>
#include <cstring>
#include <limits>
#include <random>

#include <msgpack.hpp>

#include "store/key_codec.hpp"
#include "store/value_codec.hpp"

namespace syncmesh::peer {

using store::change_op;
using store::status;

namespace {

constexpr const char* log_prefix = "peer/log/";
constexpr const char* vv_name = "peer/vv";
constexpr const char* floor_name = "peer/floor";
/// Set once a table's rows all have merge states (see adopt_rows).
constexpr const char* adopted_prefix = "peer/adopted/";
/// Rows looked at per local write when adopting a table's rows.
constexpr std::size_t adopt_batch = 1000;

std::string log_name(std::uint64_t seq) {
  std::string out = log_prefix;
  store::encode_u64_be(out, seq);
  return out;
}

/// The seq a log entry's name holds (log_name's inverse); 0 if it holds none.
std::uint64_t seq_of(const std::string& name) {
  const auto prefix = std::string_view(log_prefix).size();
  if (name.size() != prefix + 8)
    return 0;
  std::uint64_t seq = 0;
  for (std::size_t i = prefix; i < name.size(); ++i)
    seq = (seq << 8) | static_cast<unsigned char>(name[i]);
  return seq;
}

constexpr const char* state_prefix = "peer/v/";

std::string state_name(const std::string& table, const store::row& key) {
  return state_prefix + table + '\0' + store::encode_key(key);
}

/// Records read per step of read_states().
constexpr std::size_t state_page_max = 16;
/// Fewer names than this are looked up one by one: a point lookup costs
/// less than setting up an iterator (a local write, a live one-row delta).
constexpr std::size_t state_lookups_max = 4;

/// The merge states named `names` (REQUIRES: ascending, no repeats), each
/// or nullopt. Read in name order a page of records at a time, not one
/// lookup each: names close together share a page, and names past the last
/// record (a catch-up's new rows) cost one read together. Names far apart
/// (a page that served at most one of them) are looked up one by one from
/// there on.
store::result<std::vector<std::optional<std::string>>> read_states(
  const store::store& db, const std::vector<const std::string*>& names) {
  std::vector<std::optional<std::string>> out(names.size());
  std::vector<std::pair<std::string, std::string>> page;
  std::size_t at = 0;         // the page's next record
  std::size_t served = 0;     // names the page held
  bool have_page = false;
  bool page_to_end = false;   // nothing follows the page's records
  bool lookups = names.size() < state_lookups_max;
  for (std::size_t i = 0; i < names.size(); ++i) {
    const auto& name = *names[i];
    while (at < page.size() && page[at].first < name)
      ++at;
    if (!lookups && (!have_page || (at == page.size() && !page_to_end))) {
      if (have_page && served <= 1) {
        lookups = true;
      } else {
        auto next = db.ext_scan(state_prefix, name, state_page_max);
        if (!next)
          return next.error();
        page = std::move(next).value();
        at = 0;
        served = 0;
        have_page = true;
        page_to_end = page.size() < state_page_max;
      }
    }
    if (lookups) {
      auto one = db.ext(name);
      if (!one)
        return one.error();
      out[i] = std::move(one).value();
    } else if (at < page.size() && page[at].first == name) {
      out[i] = std::move(page[at++].second);
      ++served;
    }
  }
  return out;
}

// --- encodings of what the replicator keeps ----------------------------------

void put_stamp(msgpack::packer<msgpack::sbuffer>& pk, const stamp& s) {
  pk.pack_array(2);
  pk.pack_uint64(s.hlc.packed());
  pk.pack_str(static_cast<std::uint32_t>(s.origin.size()));
  pk.pack_str_body(s.origin.data(), static_cast<std::uint32_t>(s.origin.size()));
}

std::optional<stamp> get_stamp(const msgpack::object& o) {
  if (o.type != msgpack::type::ARRAY || o.via.array.size != 2
      || o.via.array.ptr[0].type != msgpack::type::POSITIVE_INTEGER
      || o.via.array.ptr[1].type != msgpack::type::STR)
    return std::nullopt;
  const auto& f = o.via.array.ptr;
  return stamp{store::hlc_timestamp::from_packed(f[0].via.u64),
               std::string(f[1].via.str.ptr, f[1].via.str.size)};
}

std::string encode_state(const row_state& s) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_array(4);
  store::append_row(buf, s.values);
  pk.pack_array(static_cast<std::uint32_t>(s.columns.size()));
  for (const auto& c : s.columns)
    put_stamp(pk, c);
  put_stamp(pk, s.inserted);
  put_stamp(pk, s.deleted);
  return {buf.data(), buf.size()};
}

/// `what` (a merge state, in some form) of the row `name` names cannot be
/// read: what to do.
status unreadable(const char* what, const std::string& name) {
  return status::corruption(std::string(what) + " '" + store::to_hex(name)
                            + "' cannot be read; restore the node's data directory from a "
                              "backup or resync it from a peer");
}

store::result<row_state> decode_state(const std::string& raw, const std::string& name) {
  auto bad = [&] { return unreadable("the peer merge state", name); };
  try {
    auto handle = msgpack::unpack(raw.data(), raw.size());
    const auto& o = handle.get();
    if (o.type != msgpack::type::ARRAY || o.via.array.size != 4
        || o.via.array.ptr[1].type != msgpack::type::ARRAY)
      return bad();
    row_state s;
    auto values = store::read_row(o.via.array.ptr[0], name);
    if (!values)
      return bad();
    s.values = std::move(values).value();
    const auto& cols = o.via.array.ptr[1].via.array;
    for (std::uint32_t i = 0; i < cols.size; ++i) {
      auto st = get_stamp(cols.ptr[i]);
      if (!st)
        return bad();
      s.columns.push_back(std::move(*st));
    }
    auto ins = get_stamp(o.via.array.ptr[2]);
    auto del = get_stamp(o.via.array.ptr[3]);
    if (!ins || !del || s.columns.size() != s.values.size())
      return bad();
    s.inserted = std::move(*ins);
    s.deleted = std::move(*del);
    return s;
  } catch (const std::exception&) {
    return bad();
  }
}

// A visible row's merge state is kept in the row's own record (its meta,
// store::change::meta): the row holds the values, the meta the stamps —
// [columns, inserted, deleted], columns nil when every column carries the
// inserted stamp (a row written whole). A state whose row is not visible
// (a tombstone) has no row to live in: it is a peer/v/ record, as every
// state was before format 3 (such records of visible rows are still read,
// and moved into the row when next written).
std::string encode_meta(const row_state& s) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_array(3);
  if (std::all_of(s.columns.begin(), s.columns.end(),
                  [&](const stamp& c) { return c == s.inserted; })) {
    pk.pack_nil();
  } else {
    pk.pack_array(static_cast<std::uint32_t>(s.columns.size()));
    for (const auto& c : s.columns)
      put_stamp(pk, c);
  }
  put_stamp(pk, s.inserted);
  put_stamp(pk, s.deleted);
  return {buf.data(), buf.size()};
}

store::result<row_state> decode_meta(store::row values, const std::string& meta,
                                     const std::string& name) {
  auto bad = [&] { return unreadable("the peer merge stamps kept with the row", name); };
  try {
    auto handle = msgpack::unpack(meta.data(), meta.size());
    const auto& o = handle.get();
    if (o.type != msgpack::type::ARRAY || o.via.array.size != 3)
      return bad();
    row_state s;
    s.values = std::move(values);
    auto ins = get_stamp(o.via.array.ptr[1]);
    auto del = get_stamp(o.via.array.ptr[2]);
    if (!ins || !del)
      return bad();
    s.inserted = std::move(*ins);
    s.deleted = std::move(*del);
    const auto& cols = o.via.array.ptr[0];
    if (cols.type == msgpack::type::NIL) {
      s.columns.assign(s.values.size(), s.inserted);
    } else {
      if (cols.type != msgpack::type::ARRAY || cols.via.array.size != s.values.size())
        return bad();
      s.columns.reserve(cols.via.array.size);
      for (std::uint32_t i = 0; i < cols.via.array.size; ++i) {
        auto st = get_stamp(cols.via.array.ptr[i]);
        if (!st)
          return bad();
        s.columns.push_back(std::move(*st));
      }
    }
    return s;
  } catch (const std::exception&) {
    return bad();
  }
}

// The log is kept in pages: one record per run of up to log_page_max
// changes that were applied together, named by the seq of its last change
// (so that a seek to any seq lands on the page that holds it) and holding
// them as one delta frame whose id is the seq of its first: one LevelDB
// record and one encoding for a run instead of one per change. A page of
// one change (a store written before pages, whose entries had id 1) holds
// the seq its name says.
constexpr std::size_t log_page_max = 128;

struct log_page {
  std::uint64_t first = 0;  // seq of changes.front()
  std::uint64_t last = 0;   // seq of changes.back(), the page's name
  std::vector<wire::change> changes;
};

// `changes` are moved into the frame and back, not copied.
std::string encode_page(std::uint64_t first, wire::change* changes, std::size_t n) {
  wire::message m = wire::delta{first, {}};
  auto& held = std::get<wire::delta>(m).changes;
  held.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    held.push_back(std::move(changes[i]));
  auto out = wire::encode(m);
  for (std::size_t i = 0; i < n; ++i)
    changes[i] = std::move(held[i]);
  return out;
}

store::result<log_page> decode_page(const std::string& name, const std::string& raw,
                                    const wire::limits& lim) {
  auto bad = [&](const std::string& why) {
    return status::corruption("the peer log page '" + store::to_hex(name) + "' cannot be read ("
                              + why + "); restore the node's data directory from a backup");
  };
  log_page p;
  p.last = seq_of(name);
  if (p.last == 0)
    return bad("a malformed name");
  // The log is this node's own: a page written under a larger frame limit
  // than today's still reads.
  auto own = lim;
  own.frame_bytes_max = std::numeric_limits<std::size_t>::max();
  auto m = wire::decode(raw, own);
  if (!m)
    return bad(m.error().message);
  auto* d = std::get_if<wire::delta>(&m.value());
  if (!d || d->changes.empty())
    return bad("not a delta of changes");
  const auto n = d->changes.size();
  p.first = n == 1 ? p.last : d->id;
  if (p.first == 0 || p.first > p.last || p.last - p.first + 1 != n)
    return bad("its first seq does not fit its name and size");
  p.changes = std::move(d->changes);
  return p;
}

std::string encode_vv(const wire::watermark& vv) {
  return wire::encode(wire::sync_complete{vv});
}

store::result<wire::watermark> decode_vv(const std::string& raw, const wire::limits& lim) {
  auto m = wire::decode(raw, lim);
  if (!m || !std::holds_alternative<wire::sync_complete>(m.value()))
    return status::corruption("the peer version vector cannot be read; restore the node's "
                              "data directory from a backup");
  return std::get<wire::sync_complete>(std::move(m).value()).through;
}

bool holds(const wire::watermark& vv, const std::string& origin, store::hlc_timestamp hlc) {
  auto it = vv.find(origin);
  return it != vv.end() && hlc <= it->second;
}

/// Whether a node holding `vv` holds every change up to `floor`.
bool covers(const wire::watermark& vv, const wire::watermark& floor) {
  for (const auto& [origin, at] : floor)
    if (!holds(vv, origin, at))
      return false;
  return true;
}

void raise(wire::watermark& vv, const std::string& origin, store::hlc_timestamp hlc) {
  auto& at = vv[origin];
  at = std::max(at, hlc);
}

/// The changes that rebuild `s` exactly when merged, in any order, into a
/// row not seen before, and change nothing that a newer write set: one per
/// distinct stamp of its columns (an insert when it is the row's insert
/// stamp, else an update of those columns), an insert of one column that
/// a newer write set when every column of the latest insert was written
/// again since, and a remove with the delete stamp. Every register of the
/// state then merges to the same stamp and value.
std::vector<wire::change> changes_of(const std::string& table, const row_state& s,
                                     const std::vector<std::uint32_t>& key_columns,
                                     const stamp_order& order) {
  std::vector<wire::change> out;
  store::row key;
  for (auto k : key_columns)
    key.push_back(s.values[k]);
  const auto width = s.columns.size();
  auto change_at = [&](const stamp& at, change_op op) {
    wire::change c;
    c.hlc = at.hlc;
    c.origin = at.origin;
    c.table = table;
    c.op = op;
    c.key = key;
    if (op != change_op::remove)
      c.new_row = s.values;
    return c;
  };
  std::vector<bool> done(width, false);
  bool insert_made = false;
  for (std::uint32_t i = 0; i < width; ++i) {
    if (done[i] || s.columns[i].is_zero())
      continue;
    const bool insert = s.columns[i] == s.inserted;
    auto c = change_at(s.columns[i], insert ? change_op::insert : change_op::update);
    for (std::uint32_t j = i; j < width; ++j)
      if (!done[j] && s.columns[j] == s.columns[i]) {
        c.columns.push_back(j);
        done[j] = true;
      }
    if (c.columns.size() == width)
      c.columns.clear();  // every column: listed as none
    insert_made = insert_made || insert;
    out.push_back(std::move(c));
  }
  if (!s.inserted.is_zero() && !insert_made) {
    auto c = change_at(s.inserted, change_op::insert);
    std::uint32_t newer = key_columns.empty() ? 0 : key_columns.front();
    for (std::uint32_t j = 0; j < width; ++j)
      if (order(s.inserted, s.columns[j])) {
        newer = j;
        break;
      }
    c.columns = {newer};
    if (width == 1)
      c.columns.clear();
    out.push_back(std::move(c));
  }
  if (!s.deleted.is_zero())
    out.push_back(change_at(s.deleted, change_op::remove));
  return out;
}

/// Merge states one call of pump_full_sync reads at most.
constexpr std::size_t full_states_per_call = 4096;

/// About the bytes `c` takes in a frame: enough to keep a batch well below
/// the frame limit.
std::size_t approx_bytes(const wire::change& c) {
  auto of = [](const store::value& v) -> std::size_t {
    switch (v.kind()) {
      case store::value_kind::text: return 9 + v.as_text().size();
      case store::value_kind::bytes: return 9 + v.as_bytes().size();
      case store::value_kind::null:
      case store::value_kind::boolean:
      case store::value_kind::integer:
      case store::value_kind::real: return 9;
      default: return 9 + v.as_exact().type_name.size() + v.as_exact().text.size();
    }
  };
  std::size_t n = 32 + c.table.size() + c.origin.size() + 4 * c.columns.size();
  for (const auto& v : c.key)
    n += of(v);
  if (c.new_row)
    for (const auto& v : *c.new_row)
      n += of(v);
  return n;
}

/// What a delta frame holds besides its changes, at most.
constexpr std::size_t frame_envelope_bytes = 64;

/// The delta id that encodes widest: a frame is measured with it, so a
/// change that fits one fits every delta.
constexpr std::uint64_t delta_id_widest = std::numeric_limits<std::uint64_t>::max();

/// Times an unconfirmed sync_complete is sent again.
constexpr std::uint32_t full_complete_resends_max = 5;

/// How long a link stays open after this side sent a fatal error.
constexpr std::uint64_t close_linger_ms = 100;

bool sends(wire::link_mode m) { return m != wire::link_mode::pull; }
bool takes(wire::link_mode m) { return m != wire::link_mode::push; }

// Values of one kind, ordered as the filter docs say; nullopt: no order.
std::optional<int> compare(const store::value& a, const store::value& b) {
  if (a.kind() != b.kind())
    return std::nullopt;
  auto sign = [](auto x, auto y) { return x < y ? -1 : (y < x ? 1 : 0); };
  switch (a.kind()) {
    case store::value_kind::boolean: return sign(a.as_bool(), b.as_bool());
    case store::value_kind::integer: return sign(a.as_int(), b.as_int());
    case store::value_kind::real: return sign(a.as_real(), b.as_real());
    case store::value_kind::text: return sign(a.as_text(), b.as_text());
    default: return std::nullopt;
  }
}


} // namespace

bool row_filter::admits(const store::value& v) const {
  if (v.is_null())
    return false;
  if (op == filter_op::eq || op == filter_op::in)
    return std::any_of(values.begin(), values.end(), [&](const store::value& x) { return x == v; });
  if (values.empty())
    return false;
  auto c = compare(v, values.front());
  if (!c)
    return false;
  switch (op) {
    case filter_op::lt: return *c < 0;
    case filter_op::le: return *c <= 0;
    case filter_op::gt: return *c > 0;
    case filter_op::ge: return *c >= 0;
    default: return false;
  }
}

const char* to_string(link_state s) noexcept {
  switch (s) {
    case link_state::down: return "down";
    case link_state::connecting: return "connecting";
    case link_state::syncing: return "syncing";
    case link_state::live: return "live";
    case link_state::paused: return "paused";
  }
  return "unknown";
}

struct replicator::pending_batch {
  std::string peer;
  std::uint64_t session = 0;
  std::uint64_t id = 0;  // the delta's
  bool full_sync = false;  // a sync_batch: its changes are not logged (see apply)
  std::vector<wire::change> changes;  // accepted ones
  std::size_t accepted = 0;           // changes.size() before commit() takes them
  std::size_t bytes = 0;              // its frame's size, counted against credit_bytes
  std::size_t refused = 0;
  wire::nack_reason reason{};
  std::string why;  // the first refusal's sentence
};

struct replicator::link {
  link_config cfg;
  /// The link's excluded columns and filters, resolved by start().
  struct table_policy {
    std::vector<bool> excluded;  // by column
    std::vector<std::pair<std::uint32_t, const row_filter*>> filters;  // column, filter
  };
  std::map<std::string, table_policy> policy;  // by table
  link_state state = link_state::down;
  std::uint64_t session = 0;  // bumped at every connect and end; stale timers compare it
  bool reconnect_pending = false;
  std::uint32_t reconnect_attempt = 0;
  // Per session:
  bool hello_seen = false;        // the peer's hello arrived
  bool closing = false;           // a fatal error was sent; the link ends shortly
  bool sync_started = false;      // the peer answered our sync_request
  bool peer_wants = false;        // the peer asked for this node's changes
  /// The mode the peer announced (hello / hello_ack). Not trusted for
  /// anything the peer may do; it only tells this side that the peer will
  /// not ask for changes (push), see offer().
  wire::link_mode peer_mode = wire::link_mode::bidirectional;
  // Flow control as the sender: the peer's pause, the highest delta id it
  // acknowledged, its window (its last resume) and the highest delta id that
  // window allows.
  bool peer_paused = false;
  std::uint64_t acked_id = 0;
  std::uint64_t peer_credits = 0;
  std::uint64_t credit_through = 0;
  std::uint64_t peer_credit_bytes = 0;  // the bytes its window allows unacknowledged
  std::uint64_t unacked_bytes = 0;      // the frames of `unacked`, in bytes
  // As the receiver: the highest delta id committed and acknowledged, the
  // batches of this session waiting in the commit queue, whether the peer
  // is paused by this side, and when the peer's last new delta arrived.
  std::uint64_t durable_id = 0;
  std::size_t queued = 0;
  std::uint64_t queued_bytes = 0;  // the queued batches' frames
  bool pausing = false;
  std::uint64_t last_delta_ms = 0;
  wire::watermark peer_vv;        // what the peer holds, as it told us
  std::uint64_t scan_pos = 1;     // next own log entry to consider sending
  /// The log page pump() read last, whose changes from page_next on are
  /// still in it (the earlier ones were taken into deltas): used again
  /// while scan_pos is page_next.
  std::optional<log_page> page;
  std::uint64_t page_next = 0;
  std::uint64_t next_delta_id = 1;
  /// A batch sent and not yet acknowledged: a delta, or a sync_batch of a
  /// full sync.
  struct sent_batch {
    bool full_sync = false;
    std::vector<wire::change> changes;
    std::size_t bytes = 0;  // its frame's
  };
  std::map<std::uint64_t, sent_batch> unacked;
  // A full sync this side sends (see the class comment): whether one is
  // under way, the merge state it reads next, whether every state was
  // read, the version vector it began with (its sync_complete), the id of
  // its last batch, and whether sync_complete went out and is not yet
  // confirmed by an acknowledgement covering it.
  struct full_sync_out {
    bool active = false;
    std::string cursor;
    bool read = false;
    wire::watermark through;
    std::uint64_t last_id = 0;
    bool complete_sent = false;
    std::uint64_t complete_at_ms = 0;
    std::uint32_t complete_resends = 0;
    bool again = false;       // another full sync follows this one
    bool unreadable = false;  // a merge state could not be read: no sync_complete
  } full;
  bool full_batch_received = false;  // this session queued a sync_batch (as receiver)
  bool full_timer_pending = false;   // pump_full_sync goes on from a timer
  bool full_draining = false;        // pump_full_sync waits for the commits in flight
  std::uint64_t oldest_unacked_sent_ms = 0;
  std::map<std::uint64_t, std::uint64_t> sent_at;  // unacked delta id -> last sent
  std::uint64_t expected_id = 1;  // next delta id to take from the peer
  /// The largest frame the peer takes, as its greeting says (this side's
  /// own until then). Per session, like `held`.
  std::uint64_t peer_frame_max = 0;
  std::string held;  // see holds_for()
  std::uint64_t last_heard_ms = 0;
  std::uint64_t last_sent_ms = 0;
  link_stats stats;
};

/// A commit given to the committer and not yet taken back.
struct replicator::in_flight {
  // What it leaves when durable: the version vector, floor and log end.
  wire::watermark vv;
  wire::watermark floor;
  std::uint64_t end = 0;
  std::uint64_t first_seq = 0;  // of its first log entry
  std::uint64_t id = 0;         // see head_states_
  /// The names of the merge states it writes (keys of head_states_; a
  /// state is never removed by merging: it leaves one for every row it
  /// touches), each once.
  std::vector<const std::string*> written;
  // Of received batches (none for a local write): the batches, their
  // changes moved out; its full-sync changes, the peer each came from, and
  // whether each changed a row state.
  std::vector<pending_batch> batches;
  std::vector<wire::change> unlogged;
  std::vector<std::string> source;
  std::vector<bool> changed;
  bool any = false;  // it had changes
};

replicator::replicator(store::store& db, messaging::transport& net,
                       messaging::scheduler& clock, replicator_config cfg,
                       std::unique_ptr<committer> writes)
    : db_(db), net_(net), clock_(clock), cfg_(std::move(cfg)),
      committer_(writes ? std::move(writes) : inline_committer(db)),
      alive_(std::make_shared<bool>(true)) {
  for (const auto& t : cfg_.tables)
    tables_.emplace(t.table, t);
  for (const auto& l : cfg_.links) {
    auto lk = std::make_unique<link>();
    lk->cfg = l;
    links_.emplace(l.peer, std::move(lk));
  }
}

replicator::~replicator() {
  *alive_ = false;
  net_.set_handler({});
  // What is given is written (a thread committer's own destructor waits
  // too); unacknowledged, the peers send it again and it counts as held.
  committer_->wait();
}

const std::string& replicator::node_id() const { return db_.node_id(); }

store::status replicator::start() {
  order_.tie_winner = cfg_.tie_winner;
  if (cfg_.credits < 1 || cfg_.credits > cfg_.limits.credits_max)
    return status::invalid_argument("credits is " + std::to_string(cfg_.credits)
                                    + "; grant a peer 1 to "
                                    + std::to_string(cfg_.limits.credits_max) + " batches");
  if (cfg_.credit_bytes < 1)
    return status::invalid_argument("credit_bytes is 0; grant a peer at least 1 byte (a batch "
                                    "goes whatever its size when none is unacknowledged)");
  if (cfg_.pause_at < 1 || cfg_.pause_at > cfg_.credits)
    return status::invalid_argument("pause_at is " + std::to_string(cfg_.pause_at)
                                    + "; pause a peer at 1 to credits ("
                                    + std::to_string(cfg_.credits) + ") batches waiting");
  // Version vectors are per origin: a change counts as held once a later
  // change of its origin is. That is sound while every link this node takes
  // changes over carries them all; a link that leaves some out (tables,
  // rows, columns) would make the others' copies of those look held.
  std::vector<std::string> taking, partial;
  for (const auto& [peer, l] : links_) {
    if (!takes(l->cfg.mode))
      continue;
    taking.push_back(peer);
    std::set<std::string> carried(l->cfg.tables.begin(), l->cfg.tables.end());
    bool all_tables = l->cfg.tables.empty();
    if (!all_tables) {
      all_tables = true;
      for (const auto& [name, s] : tables_)
        all_tables = all_tables && carried.count(name) > 0;
    }
    if (!all_tables || !l->cfg.filters.empty() || !l->cfg.excluded.empty())
      partial.push_back(peer);
  }
  if (taking.size() > 1 && !partial.empty())
    return status::invalid_argument(
      "node '" + node_id() + "' takes changes over " + std::to_string(taking.size())
      + " links and the link to '" + partial.front()
      + "' carries only some tables, rows or columns; a node that takes changes over more than "
        "one link must take them whole on each (one origin's changes are tracked as a "
        "sequence), so restrict that link to mode = \"push\" or drop its tables, filters or "
        "exclude");
  for (auto& [peer, l] : links_) {
    auto column_of = [&](const std::string& table, const std::string& column,
                         std::uint32_t& at) -> status {
      const auto* s = schema_of(table);
      if (!s)
        return status::invalid_argument("link '" + peer + "' names table '" + table
                                        + "', which is not a peer table");
      for (std::uint32_t i = 0; i < s->columns.size(); ++i)
        if (s->columns[i].name == column) {
          at = i;
          if (l->policy[table].excluded.empty())
            l->policy[table].excluded.assign(s->columns.size(), false);
          return status::ok();
        }
      return status::invalid_argument("link '" + peer + "': table '" + table
                                      + "' has no column '" + column + "'");
    };
    for (const auto& name : l->cfg.excluded) {
      const auto dot = name.rfind('.');
      if (dot == std::string::npos)
        return status::invalid_argument("link '" + peer + "' excludes '" + name
                                        + "'; write a column as \"ns.table.column\"");
      const auto table = name.substr(0, dot);
      std::uint32_t col = 0;
      if (auto st = column_of(table, name.substr(dot + 1), col); !st)
        return st;
      const auto& s = *schema_of(table);
      if (std::find(s.primary_key.begin(), s.primary_key.end(), col) != s.primary_key.end())
        return status::invalid_argument("link '" + peer + "' excludes '" + name
                                        + "', a key column; a row cannot cross a link "
                                          "without its key");
      if (!s.columns[col].nullable)
        return status::invalid_argument("link '" + peer + "' excludes '" + name
                                        + "', which is not nullable; the peer holds NULL "
                                          "where it never gets a value");
      l->policy[table].excluded[col] = true;
    }
    for (const auto& f : l->cfg.filters) {
      std::uint32_t col = 0;
      if (auto st = column_of(f.table, f.column, col); !st)
        return st;
      if (f.values.empty() || (f.op != filter_op::in && f.values.size() != 1))
        return status::invalid_argument("link '" + peer + "': the filter on '" + f.table + "."
                                        + f.column + "' needs one value, or values for 'in'");
      l->policy[f.table].filters.emplace_back(col, &f);
    }
  }
  std::set<std::string> created;
  for (const auto& [name, s] : tables_) {
    auto have = db_.table(name);
    if (!have)
      return have.error();
    if (!*have) {
      if (auto st = db_.create_table(s); !st)
        return st;
      created.insert(name);
    } else if (!(**have == s)) {
      return status::invalid_argument("table '" + name + "' exists with other columns than the "
                                      "peer configuration gives; give the table another name or "
                                      "make the columns agree");
    }
  }
  // The version vector and the floor, as stored (none yet: empty).
  auto load = [&](const char* name, wire::watermark& out) -> status {
    auto raw = db_.ext(name);
    if (!raw)
      return raw.error();
    if (!*raw)
      return status::ok();
    auto vv = decode_vv(**raw, cfg_.limits);
    if (!vv)
      return vv.error();
    out = std::move(vv).value();
    return status::ok();
  };
  if (auto st = load(vv_name, vv_); !st)
    return st;
  if (auto st = load(floor_name, floor_); !st)
    return st;
  pending_vv_ = vv_;
  // The oldest and newest log entries (compaction drops from the front):
  // the first page's first seq and the last page's name.
  log_begin_ = 0;
  auto first_page = db_.ext_scan(log_prefix, log_prefix, 1);
  if (!first_page)
    return first_page.error();
  if (!first_page->empty()) {
    const auto& [name, raw] = first_page->front();
    auto first = decode_page(name, raw, cfg_.limits);
    if (first)
      log_begin_ = first->first;
    else if (seq_of(name) > 0)
      log_begin_ = seq_of(name);  // unreadable: links get a full sync there, compaction drops it
    else
      return first.error();
    auto last_page = db_.ext_last(log_prefix);
    if (!last_page)
      return last_page.error();
    log_end_ = *last_page ? seq_of((*last_page)->first) : 0;
    if (log_end_ < log_begin_)
      return status::corruption("a peer log page has a malformed name; restore the node's "
                                "data directory from a backup");
  }
  if (log_begin_ == 0)
    log_begin_ = log_end_ + 1;
  head_to_durable();
  for (const auto& [name, s] : tables_)
    if (auto st = adopt_rows(s, created.count(name) > 0); !st)
      return st;
  messaging::transport_handler h;
  std::weak_ptr<bool> alive = alive_;
  h.connected = [this, alive](const std::string& peer) {
    if (!alive.expired())
      on_connected(peer);
  };
  h.disconnected = [this, alive](const std::string& peer, const std::string& reason) {
    if (!alive.expired())
      on_disconnected(peer, reason);
  };
  h.received = [this, alive](const std::string& peer, std::string frame) {
    if (!alive.expired())
      on_received(peer, std::move(frame));
  };
  net_.set_handler(std::move(h));
  schedule_gc();
  for (auto& [peer, l] : links_)
    if (l->cfg.connects) {
      l->state = link_state::connecting;
      l->last_heard_ms = clock_.now_ms();
      net_.connect(peer);
      schedule_heartbeat(*l, l->session);
    }
  return status::ok();
}

replicator::link* replicator::find_link(const std::string& peer) {
  auto it = links_.find(peer);
  return it == links_.end() ? nullptr : it->second.get();
}

const store::schema* replicator::schema_of(const std::string& table) const {
  auto it = tables_.find(table);
  return it == tables_.end() ? nullptr : &it->second;
}

std::vector<std::string> replicator::offered(const link& l) const {
  std::vector<std::string> out;
  for (const auto& [name, s] : tables_)
    if (carries(l, name))
      out.push_back(name);
  return out;
}

bool replicator::admits(const link& l, const wire::change& c) const {
  auto it = l.policy.find(c.table);
  if (c.op == change_op::remove || it == l.policy.end() || !c.new_row)
    return true;
  for (const auto& [col, f] : it->second.filters)
    if (col >= c.new_row->size() || !f->admits((*c.new_row)[col]))
      return false;
  return true;
}

namespace {

// The link's excluded columns of `c`'s table, if `c` writes a row and the
// link excludes any of them; else null (the change crosses as it is).
template <class PolicyByTable>
const std::vector<bool>* excluded_of(const PolicyByTable& policy, const wire::change& c) {
  auto it = policy.find(c.table);
  if (c.op == change_op::remove || it == policy.end() || !c.new_row)
    return nullptr;
  const auto& excluded = it->second.excluded;
  if (std::none_of(excluded.begin(), excluded.end(), [](bool b) { return b; }))
    return nullptr;
  return &excluded;
}

} // namespace

std::optional<wire::change> replicator::without_excluded(const link& l,
                                                         const wire::change& c) const {
  const auto* excluded_columns = excluded_of(l.policy, c);
  if (!excluded_columns)
    return c;
  const auto& excluded = *excluded_columns;
  const auto width = static_cast<std::uint32_t>(c.new_row->size());
  wire::change out = c;
  out.columns.clear();
  auto keep = [&](std::uint32_t col) {
    if (col < excluded.size() && excluded[col])
      (*out.new_row)[col] = store::value::null();
    else
      out.columns.push_back(col);
  };
  if (c.columns.empty())
    for (std::uint32_t col = 0; col < width; ++col)
      keep(col);
  else
    for (auto col : c.columns)
      keep(col);
  if (!out.columns.empty())
    return out;
  if (c.op != change_op::insert)
    return std::nullopt;  // an update of excluded columns only: nothing left
  // An insert still says that the row exists: it sets the key columns (to
  // the values they hold anyway), as an empty list would mean every column.
  const auto& s = *schema_of(c.table);
  for (auto k : s.primary_key)
    out.columns.push_back(static_cast<std::uint32_t>(k));
  std::sort(out.columns.begin(), out.columns.end());
  return out;
}

std::optional<wire::change> replicator::outgoing(const link& l, wire::change c) const {
  if (!carries(l, c.table) || !admits(l, c))
    return std::nullopt;
  if (!excluded_of(l.policy, c))
    return c;  // nothing excluded: goes as it is, not copied
  return without_excluded(l, c);
}

bool replicator::carries(const link& l, const std::string& table) const {
  if (!schema_of(table))
    return false;
  return l.cfg.tables.empty()
         || std::find(l.cfg.tables.begin(), l.cfg.tables.end(), table) != l.cfg.tables.end();
}

std::map<std::string, link_stats> replicator::stats() const {
  std::map<std::string, link_stats> out;
  for (const auto& [peer, l] : links_) {
    auto s = l->stats;
    s.state = l->state;
    const bool no_credit = l->peer_wants && l->scan_pos <= log_end_
                           && (l->next_delta_id > l->credit_through || bytes_full(*l));
    if (s.state == link_state::live && (l->peer_paused || no_credit))
      s.state = link_state::paused;
    s.held = l->held;
    s.unacked = l->unacked.size();
    for (const auto& [id, sent] : l->unacked)
      s.lag_changes += sent.changes.size();
    // Entries not yet looked at; some may be ones the peer holds already.
    if (l->peer_wants && l->scan_pos <= log_end_)
      s.lag_changes += log_end_ - l->scan_pos + 1;
    if (!l->unacked.empty())
      s.lag_ms = clock_.now_ms() - l->oldest_unacked_sent_ms;
    out.emplace(peer, s);
  }
  return out;
}

// A table that held rows before it was a peer table (a view of the same
// name and columns, say, since dropped from the config) has rows without
// merge states: the merge would take such a row for one never seen, and a
// change of some of its columns would leave the others NULL. So each is
// taken in as a local write of the row as it is, stamped now — logged and
// sent to the peers like any other — once, before the links start.
store::status replicator::adopt_rows(const store::schema& s, bool created) {
  const std::string marker = adopted_prefix + s.table;
  auto done = db_.ext(marker);
  if (!done)
    return done.error();
  if (*done)
    return status::ok();
  if (!created) {
    std::string from;  // the encoded key the next page starts at
    for (;;) {
      auto rows = db_.scan_stored(s.table, from, adopt_batch);
      if (!rows)
        return rows.error();
      const auto page = rows->size();
      // A row with meta has its state; one without may have it in a
      // peer/v/ record (written before format 3).
      std::vector<std::string> names;  // in key order, so in name order
      std::vector<std::size_t> without_meta;
      for (std::size_t i = 0; i < rows->size(); ++i)
        if ((*rows)[i].second.meta.empty()) {
          names.push_back(state_prefix + s.table + '\0' + (*rows)[i].first);
          without_meta.push_back(i);
        }
      std::vector<const std::string*> ordered;
      ordered.reserve(names.size());
      for (const auto& n : names)
        ordered.push_back(&n);
      auto states = read_states(db_, ordered);
      if (!states)
        return states.error();
      std::vector<store::row> orphans;
      for (std::size_t i = 0; i < without_meta.size(); ++i)
        if (!(*states)[i])
          orphans.push_back((*rows)[without_meta[i]].second.values);
      if (page > 0)
        from = rows->back().first + '\0';
      if (!orphans.empty()) {
        adopting_ = true;
        auto w = write(s.table, orphans, {});
        adopting_ = false;
        if (!w) {
          const auto why = "taking in the rows table '" + s.table
                           + "' held before it was a peer table: " + w.error().message();
          switch (w.error().code()) {
            case store::errc::invalid_argument: return status::invalid_argument(why);
            case store::errc::corruption: return status::corruption(why);
            case store::errc::clock_skew: return status::clock_skew(why);
            default: return status::io_error(why);
          }
        }
        rows_adopted_ += orphans.size();
      }
      if (page < adopt_batch)
        break;
    }
  }
  store::batch b;
  b.ext.emplace_back(marker, "1");
  auto applied = db_.apply(b);
  return applied ? status::ok() : applied.error();
}

store::result<std::optional<row_state>> replicator::state_of(const std::string& table,
                                                             const store::row& key) const {
  auto name = state_name(table, key);
  if (auto it = head_states_.find(name); it != head_states_.end())
    return it->second.state;
  if (schema_of(table)) {
    auto rows = db_.get_stored(table, {&key});
    if (!rows)
      return rows.error();
    if (auto& r = rows->front(); r && !r->meta.empty()) {
      auto s = decode_meta(std::move(r->values), r->meta, name);
      if (!s)
        return s.error();
      return std::optional<row_state>{std::move(s).value()};
    }
  }
  auto raw = db_.ext(name);
  if (!raw)
    return raw.error();
  if (!*raw)
    return std::optional<row_state>{};
  auto s = decode_state(**raw, name);
  if (!s)
    return s.error();
  return std::optional<row_state>{std::move(s).value()};
}

// --- tombstones ----------------------------------------------------------------

void replicator::schedule_gc() {
  std::weak_ptr<bool> alive = alive_;
  clock_.at(clock_.now_ms() + cfg_.gc_interval_ms, [this, alive] {
    if (alive.expired())
      return;
    collect_tombstones();
    compact_log();
    schedule_gc();
  });
}

// One bounded round over the row states: a deleted row whose delete is older
// than the retention bound loses its state. A failure leaves everything for
// the next round.
void replicator::collect_tombstones() {
  drain();  // a commit in flight may bring a tombstone back to life
  auto page = db_.ext_scan("peer/v/", gc_cursor_, cfg_.gc_batch);
  if (!page)
    return;
  const auto wall = db_.clock().now().wall_ms();
  const auto horizon = wall > cfg_.tombstone_retention_ms ? wall - cfg_.tombstone_retention_ms : 0;
  store::batch b;
  for (const auto& [name, raw] : *page) {
    auto s = decode_state(raw, name);
    if (s && !s->visible(order_) && !s->deleted.is_zero()
        && s->deleted.hlc.wall_ms() < horizon && s->newest(order_) == s->deleted)
      b.ext.emplace_back(name, std::nullopt);
  }
  gc_cursor_ = page->size() < cfg_.gc_batch ? std::string{} : page->back().first + '\0';
  if (b.ext.empty())
    return;
  if (db_.apply(b))
    tombstones_collected_ += b.ext.size();
}

// Rounds of at most this many reads of gc_batch / log_page_max log pages
// each; a longer backlog is dropped over the next rounds.
constexpr std::size_t compact_pages_max = 16;

void replicator::compact_log() {
  if (cfg_.log_retention_ms == 0)
    return;
  drain();  // the floor it raises is written by every commit
  // Only pages every live link that asked for this node's changes was sent
  // already (the rest it still reads), and never the newest page, which
  // holds the log's end across a restart.
  std::uint64_t limit = log_end_;
  // A held link (holds_for) is left out: it reads nothing more this
  // session, and the next one starts from the peer's version vector (a
  // full sync if the log no longer covers it).
  for (const auto& [peer, l] : links_)
    if (l->state != link_state::down && l->peer_wants && l->held.empty())
      limit = std::min(limit, l->scan_pos);
  const auto wall = db_.clock().now().wall_ms();
  const auto horizon = wall > cfg_.log_retention_ms ? wall - cfg_.log_retention_ms : 0;
  const auto pages_max = std::max<std::size_t>(1, cfg_.gc_batch / log_page_max);
  for (std::size_t round = 0; round < compact_pages_max && log_begin_ < limit; ++round) {
    auto pages = db_.ext_scan(log_prefix, log_name(log_begin_), pages_max);
    if (!pages || pages->empty())
      return;
    store::batch b;
    auto floor = floor_;
    auto next = log_begin_;
    std::uint64_t dropped = 0;
    bool stop = false;
    const auto limit_name = log_name(limit);
    for (const auto& [name, raw] : *pages) {
      if (name >= limit_name) {
        stop = true;
        break;
      }
      auto page = decode_page(name, raw, cfg_.limits);
      if (!page) {
        // Unreadable (a damaged store): every live link is past it (each
        // got a full sync there), and what it held is held here, so at or
        // below the version vector. It goes, and the floor rises to the
        // version vector: a peer that may lack its changes gets a full sync.
        for (const auto& [origin, at] : vv_)
          raise(floor, origin, at);
        b.ext.emplace_back(name, std::nullopt);
        if (const auto last = seq_of(name); last >= next) {
          dropped += last - next + 1;
          next = last + 1;
        }
        continue;
      }
      // The log is in the order applied, not quite in HLC order: the
      // first page with a change too young ends the round.
      auto young = std::find_if(page->changes.begin(), page->changes.end(),
                                [&](const wire::change& c) { return c.hlc.wall_ms() >= horizon; });
      if (young != page->changes.end()) {
        stop = true;
        break;
      }
      for (const auto& c : page->changes)
        raise(floor, c.origin, c.hlc);
      b.ext.emplace_back(name, std::nullopt);
      dropped += page->changes.size();
      next = page->last + 1;
    }
    if (b.ext.empty())
      return;
    b.ext.emplace_back(floor_name, encode_vv(floor));
    if (!db_.apply(b))
      return;  // the next round tries again
    floor_ = std::move(floor);
    head_floor_ = floor_;
    log_dropped_ += dropped;
    log_begin_ = next;
    if (stop || pages->size() < pages_max)
      return;
  }
}

// --- applying ----------------------------------------------------------------

store::status replicator::prepare(std::vector<wire::change>& changes, std::size_t unlogged,
                                  in_flight& out, store::batch& b) {
  out.changed.assign(unlogged, false);
  out.any = !changes.empty();
  out.id = ++commits_made_;
  out.first_seq = head_end_ + 1;
  out.vv = head_vv_;
  out.floor = head_floor_;
  out.end = head_end_;
  if (changes.empty())
    return status::ok();  // nothing to write: `b` stays empty, and committers skip it
  // The merge states of every row the changes touch: as the newest commit
  // in flight that writes it leaves it, else as stored — kept with the row
  // if it is visible, else in a peer/v/ record — read in one pass in name
  // order (rows a catch-up brings in are mostly new, and their names
  // adjacent: one seek finds them all missing).
  std::vector<std::pair<const std::string*, head_state*>> state_of_change;
  state_of_change.reserve(changes.size());
  struct to_read_entry {
    const std::string* name;
    head_state* head;
    const wire::change* change;  // one that names the row
  };
  std::vector<to_read_entry> to_read;
  for (const auto& c : changes) {
    auto [it, fresh] = head_states_.try_emplace(state_name(c.table, c.key));
    if (fresh)
      to_read.push_back({&it->first, &it->second, &c});
    state_of_change.emplace_back(&it->first, &it->second);
  }
  std::sort(to_read.begin(), to_read.end(),
            [](const auto& x, const auto& y) { return *x.name < *y.name; });
  auto forget_read = [&] {
    for (const auto& r : to_read)
      if (auto it = head_states_.find(*r.name); it != head_states_.end() && it->second.commit == 0)
        head_states_.erase(it);
  };
  {
    // The rows first, a table at a time (the names of a table are adjacent).
    std::vector<std::size_t> not_in_rows;  // of to_read
    std::vector<const store::row*> keys;
    for (std::size_t i = 0; i < to_read.size();) {
      const auto& table = to_read[i].change->table;
      std::size_t j = i;
      keys.clear();
      while (j < to_read.size() && to_read[j].change->table == table)
        keys.push_back(&to_read[j++].change->key);
      auto rows = db_.get_stored(table, keys);
      if (!rows) {
        forget_read();
        return rows.error();
      }
      for (std::size_t k = i; k < j; ++k) {
        auto& r = (*rows)[k - i];
        if (!r || r->meta.empty()) {
          not_in_rows.push_back(k);
          continue;
        }
        auto st = decode_meta(std::move(r->values), r->meta, *to_read[k].name);
        if (!st) {
          forget_read();
          return st.error();
        }
        to_read[k].head->state = std::move(st).value();
      }
      i = j;
    }
    std::vector<const std::string*> names;
    names.reserve(not_in_rows.size());
    for (auto k : not_in_rows)
      names.push_back(to_read[k].name);
    auto raw = read_states(db_, names);
    if (!raw) {
      forget_read();
      return raw.error();
    }
    for (std::size_t i = 0; i < names.size(); ++i) {
      if (!(*raw)[i])
        continue;
      auto st = decode_state(*(*raw)[i], *names[i]);
      if (!st) {
        forget_read();
        return st.error();
      }
      auto* head = to_read[not_in_rows[i]].head;
      head->state = std::move(st).value();
      head->in_ext = true;
    }
  }
  // The states this commit changes (parallel to out.written), and the last
  // row change it makes of each (an index into b.changes), if any.
  std::vector<head_state*> written;
  std::vector<const std::string*> written_table;
  std::vector<std::optional<std::size_t>> last_row_change;
  written.reserve(to_read.size());
  written_table.reserve(to_read.size());
  last_row_change.reserve(to_read.size());
  std::map<const store::schema*, std::vector<std::uint32_t>> key_columns_of;
  auto vv = head_vv_;
  auto floor = head_floor_;
  auto end = head_end_;
  for (std::size_t i = 0; i < changes.size(); ++i) {
    auto& c = changes[i];
    const auto* s = schema_of(c.table);
    auto& key_columns = key_columns_of[s];
    if (key_columns.empty())
      key_columns.assign(s->primary_key.begin(), s->primary_key.end());
    auto& head = *state_of_change[i].second;
    auto& state = head.state;
    const bool was_visible = state && state->visible(order_);
    std::optional<store::row> before;
    if (was_visible)
      before = state->values;
    const bool changed = merge(state, c, s->columns.size(), key_columns, order_);
    if (changed && head.commit != out.id) {
      head.commit = out.id;
      head.slot = written.size();
      out.written.push_back(state_of_change[i].first);
      written.push_back(&head);
      written_table.push_back(&c.table);
      last_row_change.emplace_back();
    }
    const bool visible = state->visible(order_);
    store::change row_change;
    row_change.table = c.table;
    row_change.hlc = c.hlc;
    row_change.origin = c.origin;
    // The peer tables' rows are written here only, so the merge state holds
    // the row as stored: the store need not read it again for its log (but
    // for rows taken in without a state, see adopt_rows).
    if (visible && (!was_visible || !(*before == state->values))) {
      row_change.op = change_op::insert;
      row_change.new_row = state->values;
      if (!adopting_)
        row_change.known_old_row = std::move(before);
      last_row_change[head.slot] = b.changes.size();
      b.changes.push_back(std::move(row_change));
    } else if (!visible && was_visible) {
      row_change.op = change_op::remove;
      row_change.key = c.key;
      row_change.known_old_row = std::move(before);
      last_row_change[head.slot] = b.changes.size();
      b.changes.push_back(std::move(row_change));
    }
    if (i < unlogged) {
      raise(floor, c.origin, c.hlc);
      out.changed[i] = changed;
      continue;
    }
    raise(vv, c.origin, c.hlc);
  }
  // Pages of up to log_page_max changes and, past the first change, half
  // the frame limit (as a delta), so that big rows make small pages.
  const std::size_t page_bytes_max = cfg_.limits.frame_bytes_max / 2;
  for (std::size_t i = unlogged; i < changes.size();) {
    std::size_t n = 0, bytes = 0;
    while (i + n < changes.size() && n < log_page_max) {
      bytes += approx_bytes(changes[i + n]);
      if (n > 0 && bytes > page_bytes_max)
        break;
      ++n;
    }
    b.ext.emplace_back(log_name(end + n), encode_page(end + 1, &changes[i], n));
    end += n;
    i += n;
  }
  // A state the changes left as it was is not written again; one read
  // from the store for them and left so is forgotten (the store holds it).
  forget_read();
  // The changed states: a visible row's with the row — its last row change
  // carries it, or, if its values did not change, a change of the meta
  // alone — any other in its peer/v/ record.
  for (std::size_t i = 0; i < written.size(); ++i) {
    auto& head = *written[i];
    const auto& state = *head.state;
    if (!state.visible(order_)) {
      b.ext.emplace_back(*out.written[i], encode_state(state));
      head.in_ext = true;
      continue;
    }
    if (last_row_change[i]) {
      b.changes[*last_row_change[i]].meta = encode_meta(state);
    } else {
      store::change meta_change;
      meta_change.table = *written_table[i];
      meta_change.op = change_op::insert;
      meta_change.new_row = state.values;
      meta_change.known_old_row = state.values;
      meta_change.meta = encode_meta(state);
      meta_change.meta_only = true;
      b.changes.push_back(std::move(meta_change));
    }
    if (head.in_ext) {
      b.ext.emplace_back(*out.written[i], std::nullopt);
      head.in_ext = false;
    }
  }
  b.ext.emplace_back(vv_name, encode_vv(vv));
  if (unlogged > 0)
    b.ext.emplace_back(floor_name, encode_vv(floor));
  head_vv_ = vv;
  head_floor_ = floor;
  head_end_ = end;
  out.vv = std::move(vv);
  out.floor = std::move(floor);
  out.end = end;
  return status::ok();
}

store::status replicator::apply_now(std::vector<wire::change>& changes) {
  assert(in_flight_.empty() && "write() drains before it applies");
  in_flight c;
  store::batch b;
  if (auto st = prepare(changes, 0, c, b); !st)
    return st;  // prepare moves the head values only when it succeeds
  committer_->submit(std::move(b));
  in_flight_.push_back(std::move(c));
  committer_->wait();
  auto done = committer_->take_done();  // this commit's result alone: nothing else was in flight
  if (done.empty() || !done.front()) {
    auto why = done.empty() ? status::io_error("the committer gave no result") : done.front();
    in_flight_.clear();
    head_to_durable();
    committer_->resume();
    return why;
  }
  finish(in_flight_.front());
  in_flight_.clear();
  return status::ok();
}

store::result<store::hlc_timestamp> replicator::write(const std::string& table,
                                                      const std::vector<store::row>& upserts,
                                                      const std::vector<store::row>& removes) {
  const auto* s = schema_of(table);
  if (!s)
    return status::invalid_argument("no peer table is named '" + table
                                    + "'; the node's config lists the peer tables");
  // Received batches go first, all of them durable: the log and the
  // version vectors then grow in one order, the clock has seen every
  // change merged, and the columns this write sets are judged against the
  // rows as stored (a commit in flight that then failed would leave out a
  // column this write sets to the value that commit brought).
  drain();
  commit();
  drain();
  std::vector<wire::change> changes;
  std::map<std::string, store::row> pending;  // upserted earlier in this write, by key
  for (const auto& r : upserts) {
    if (auto st = s->check_row(r); !st)
      return st;
    wire::change c;
    c.hlc = db_.clock().now();
    c.origin = node_id();
    c.table = table;
    c.op = change_op::insert;
    c.key = s->key_of(r);
    c.new_row = r;
    // The columns it sets: what differs from the row as this node shows it,
    // or as an earlier upsert of the same key in this write left it.
    std::optional<store::row> before;
    const auto key_bytes = store::encode_key(c.key);
    if (auto p = pending.find(key_bytes); p != pending.end()) {
      before = p->second;
    } else {
      auto current = state_of(table, c.key);
      if (!current)
        return current.error();
      if (*current && (*current)->visible(order_))
        before = (**current).values;
    }
    if (before) {
      for (std::uint32_t i = 0; i < r.size(); ++i)
        if (!((*before)[i] == r[i]))
          c.columns.push_back(i);
      if (c.columns.size() == r.size())
        c.columns.clear();  // every column: listed as none
    }
    // A change travels whole in one frame: one that no frame can hold
    // would stall every link it is sent on.
    if (approx_bytes(c) + frame_envelope_bytes > cfg_.limits.frame_bytes_max) {
      const auto bytes = wire::encode(wire::delta{delta_id_widest, {c}}).size();
      if (bytes > cfg_.limits.frame_bytes_max)
        return status::invalid_argument(
          "the row with key " + store::to_display(c.key) + " of '" + table + "' takes "
          + std::to_string(bytes) + " bytes in a peer frame, more than [peer] frame_bytes_max ("
          + std::to_string(cfg_.limits.frame_bytes_max) + ") allows, so no peer could take it; "
          + "nothing was written: store less in the row, or raise frame_bytes_max on every node");
    }
    pending[key_bytes] = r;
    changes.push_back(std::move(c));
  }
  for (const auto& k : removes) {
    if (auto st = s->check_key(k); !st)
      return st;
    wire::change c;
    c.hlc = db_.clock().now();
    c.origin = node_id();
    c.table = table;
    c.op = change_op::remove;
    c.key = k;
    changes.push_back(std::move(c));
  }
  if (changes.empty())
    return status::invalid_argument("a write needs at least one upsert or remove");
  if (auto st = apply_now(changes); !st)
    return st;
  pending_vv_ = vv_;
  pump_all();
  offer(changes);
  return changes.back().hlc;
}

void replicator::offer(const std::vector<wire::change>& changes) {
  for (auto& [peer, lp] : links_) {
    auto& l = *lp;
    if (l.state != link_state::live || !l.hello_seen || l.peer_wants || !sends(l.cfg.mode)
        || takes(l.peer_mode) || l.peer_paused || !window_open(l))
      continue;
    // One delta at most, in a frame the peer takes: an offer only draws
    // the peer's answer.
    std::vector<wire::change> out;
    std::size_t out_bytes = frame_envelope_bytes;
    for (const auto& c : changes)
      if (auto o = outgoing(l, c)) {
        const auto bytes = approx_bytes(*o);
        if (out.size() >= cfg_.batch_max || out_bytes + bytes > frame_max(l))
          break;
        out_bytes += bytes;
        out.push_back(std::move(*o));
      }
    if (out.empty())
      continue;
    send_delta(l, std::move(out));
  }
}

// --- links -------------------------------------------------------------------

// Sends `changes` as the link's next delta (or, `full_sync`, sync_batch:
// both take the next id, credit and acknowledgement) and keeps it until
// acknowledged.
void replicator::send_delta(link& l, std::vector<wire::change> changes, bool full_sync) {
  const auto id = l.next_delta_id++;
  if (l.unacked.empty())
    l.oldest_unacked_sent_ms = clock_.now_ms();
  l.sent_at[id] = clock_.now_ms();
  l.stats.sent_changes += changes.size();
  wire::message m = full_sync ? wire::message{wire::sync_batch{id, std::move(changes)}}
                              : wire::message{wire::delta{id, std::move(changes)}};
  const auto bytes = send(l, m);
  l.unacked_bytes += bytes;
  if (full_sync) {
    l.unacked.emplace(
      id, link::sent_batch{true, std::move(std::get<wire::sync_batch>(m).changes), bytes});
    l.full.last_id = id;
    return;
  }
  l.unacked.emplace(id,
                    link::sent_batch{false, std::move(std::get<wire::delta>(m).changes), bytes});
}

bool replicator::bytes_full(const link& l) const {
  // The next batch's frame is at most frame_max (nothing larger is sent),
  // so it must fit the peer's byte window whatever it holds; the first one
  // goes whatever the window.
  return !l.unacked.empty() && l.unacked_bytes + frame_max(l) > l.peer_credit_bytes;
}

bool replicator::window_open(const link& l) const {
  return l.held.empty() && l.unacked.size() < cfg_.in_flight_max
         && l.next_delta_id <= l.credit_through && !bytes_full(l);
}

std::size_t replicator::frame_max(const link& l) const {
  return static_cast<std::size_t>(
    std::min<std::uint64_t>(cfg_.limits.frame_bytes_max, l.peer_frame_max));
}

bool replicator::holds_for(link& l, const std::vector<wire::change>& row) {
  if (row.empty())
    return false;
  const auto bytes = wire::encode(wire::delta{delta_id_widest, row}).size();
  if (bytes <= frame_max(l))
    return false;
  // Whose bound is too small: the peer's, this node's, or both.
  std::string where;
  if (l.peer_frame_max < bytes)
    where = "node '" + l.cfg.peer + "' (" + std::to_string(l.peer_frame_max) + ")";
  if (cfg_.limits.frame_bytes_max < bytes)
    where += (where.empty() ? "" : " and ") + std::string("this node, '") + node_id() + "' ("
             + std::to_string(cfg_.limits.frame_bytes_max) + ")";
  const auto& c = row.front();
  l.held = "the row with key " + store::to_display(c.key) + " of '" + c.table + "' takes "
           + std::to_string(bytes) + " bytes in a frame (its changes go in one), more than "
           + "[peer] frame_bytes_max allows on " + where + ": nothing more goes to node '"
           + l.cfg.peer + "' until that is raised to at least " + std::to_string(bytes)
           + " and the link reconnects; nothing is dropped";
  l.stats.last_refusal = l.held;
  return true;
}

wire::resume replicator::grant() const {
  return wire::resume{cfg_.credits, cfg_.credit_bytes};
}

std::size_t replicator::send(link& l, const wire::message& m) {
  l.last_sent_ms = clock_.now_ms();
  auto frame = wire::encode(m);
  const auto bytes = frame.size();
  (void) net_.send(l.cfg.peer, std::move(frame));
  return bytes;
}

void replicator::on_connected(const std::string& peer) {
  auto* l = find_link(peer);
  if (!l) {
    // Not a configured link: this node does not talk to it.
    net_.disconnect(peer);
    return;
  }
  ++l->session;
  l->state = link_state::syncing;
  l->reconnect_pending = false;
  l->reconnect_attempt = 0;
  l->hello_seen = false;
  l->closing = false;
  l->sync_started = false;
  l->peer_wants = false;
  l->peer_mode = wire::link_mode::bidirectional;
  l->peer_paused = false;
  l->acked_id = 0;
  l->peer_credits = 0;
  l->credit_through = 0;
  l->peer_credit_bytes = 0;
  l->unacked_bytes = 0;
  l->durable_id = 0;
  l->queued = 0;
  l->queued_bytes = 0;
  l->pausing = false;
  l->last_delta_ms = clock_.now_ms();
  l->peer_vv.clear();
  l->scan_pos = 1;
  l->page.reset();
  l->full = {};
  l->full_batch_received = false;
  l->full_timer_pending = false;
  l->next_delta_id = 1;
  l->unacked.clear();
  l->sent_at.clear();
  l->expected_id = 1;
  l->peer_frame_max = cfg_.limits.frame_bytes_max;
  l->held.clear();
  l->last_heard_ms = clock_.now_ms();
  send(*l, wire::hello{node_id(), l->cfg.mode, offered(*l), cfg_.limits.frame_bytes_max});
  schedule_heartbeat(*l, l->session);
}

void replicator::on_disconnected(const std::string& peer, const std::string& reason) {
  if (auto* l = find_link(peer))
    end_link(*l, reason);
}

void replicator::close_after(link& l, const std::string& reason) {
  // The fatal error just sent must reach the peer before the link closes
  // (frames in flight on a closing link are lost): close a moment later,
  // reading nothing more from the peer meanwhile.
  l.closing = true;
  l.stats.last_refusal = reason;
  std::weak_ptr<bool> alive = alive_;
  clock_.at(clock_.now_ms() + close_linger_ms,
            [this, alive, peer = l.cfg.peer, session = l.session, reason] {
              if (alive.expired())
                return;
              auto* l = find_link(peer);
              if (l && l->session == session)
                end_link(*l, reason);
            });
}

void replicator::end_link(link& l, const std::string& reason) {
  if (l.state != link_state::down) {
    ++l.session;
    l.state = link_state::down;
    l.stats.last_refusal = reason.empty() ? l.stats.last_refusal : reason;
    l.unacked.clear();
    l.unacked_bytes = 0;
    l.sent_at.clear();
    net_.disconnect(l.cfg.peer);
  }
  schedule_reconnect(l);
}

void replicator::schedule_reconnect(link& l) {
  if (!l.cfg.connects || l.reconnect_pending)
    return;
  l.reconnect_pending = true;
  auto cap = cfg_.reconnect_max_ms;
  auto delay = cfg_.reconnect_initial_ms << std::min<std::uint32_t>(l.reconnect_attempt, 20);
  delay = std::min(delay, cap);
  // Jitter from the seed, the link and the attempt: replays exactly.
  std::mt19937_64 rng(cfg_.seed ^ std::hash<std::string>{}(l.cfg.peer) ^ l.reconnect_attempt);
  delay = delay / 2 + rng() % (delay / 2 + 1);
  ++l.reconnect_attempt;
  std::weak_ptr<bool> alive = alive_;
  clock_.at(clock_.now_ms() + delay, [this, alive, peer = l.cfg.peer] {
    if (alive.expired())
      return;
    auto* l = find_link(peer);
    if (!l || !l->reconnect_pending)
      return;
    l->reconnect_pending = false;
    if (l->state != link_state::down)
      return;
    l->state = link_state::connecting;
    l->last_heard_ms = clock_.now_ms();
    net_.connect(peer);
    // A connect that never completes (the peer gone, a partition) is tried
    // again after the next delay.
    schedule_heartbeat(*l, l->session);
  });
}

void replicator::schedule_heartbeat(link& l, std::uint64_t session) {
  std::weak_ptr<bool> alive = alive_;
  clock_.at(clock_.now_ms() + cfg_.heartbeat_ms, [this, alive, peer = l.cfg.peer, session] {
    if (alive.expired())
      return;
    auto* l = find_link(peer);
    if (!l || l->session != session)
      return;
    const auto now = clock_.now_ms();
    if (l->state == link_state::connecting) {
      if (now - l->last_heard_ms >= cfg_.dead_after_ms) {
        l->state = link_state::down;
        ++l->session;
        schedule_reconnect(*l);
      } else {
        schedule_heartbeat(*l, session);
      }
      return;
    }
    if (l->state == link_state::down)
      return;
    if (now - l->last_heard_ms >= cfg_.dead_after_ms) {
      end_link(*l, "no frame from " + peer + " for " + std::to_string(now - l->last_heard_ms)
                     + " ms; reconnecting");
      return;
    }
    // The handshake is repeated until it is answered: any frame may be lost.
    if (!l->hello_seen)
      send(*l, wire::hello{node_id(), l->cfg.mode, offered(*l), cfg_.limits.frame_bytes_max});
    else if (takes(l->cfg.mode) && !l->sync_started)
      send(*l, wire::sync_request{wire::sync_kind::from_watermark, vv_});
    else if (!l->pausing && now - l->last_delta_ms >= cfg_.heartbeat_ms)
      // A grant may be lost like any frame: while the peer sends nothing
      // and this side does not hold it paused, the grant is repeated (a
      // repeat grants nothing new, see resume). It doubles as the ping.
      send(*l, grant());
    else if (now - l->last_sent_ms >= cfg_.heartbeat_ms)
      send(*l, wire::ping{now});
    // Unacknowledged deltas are sent again, in order, when overdue.
    if (!l->unacked.empty() && now - l->oldest_unacked_sent_ms >= cfg_.retransmit_ms) {
      for (const auto& [id, sent] : l->unacked) {
        if (sent.full_sync)
          send(*l, wire::sync_batch{id, sent.changes});
        else
          send(*l, wire::delta{id, sent.changes});
        l->sent_at[id] = now;
      }
      l->oldest_unacked_sent_ms = now;
    }
    // So is a sync_complete not yet confirmed (any frame may be lost), a
    // few times: a peer that takes only some origins never confirms all of
    // it, and one that never got it only holds rows its version vector
    // does not count yet (the next full sync or change settles that).
    if (l->full.complete_sent && now - l->full.complete_at_ms >= cfg_.retransmit_ms) {
      if (l->full.complete_resends++ < full_complete_resends_max)
        send(*l, wire::sync_complete{l->full.through});
      else
        l->full.complete_sent = false;
      l->full.complete_at_ms = now;
    }
    schedule_heartbeat(*l, session);
  });
}

void replicator::pump_all() {
  for (auto& [peer, l] : links_)
    pump(*l);
}

store::result<replicator::state_page> replicator::states_from(const std::string& from,
                                                              std::size_t max) const {
  assert(in_flight_.empty() && "pump_full_sync drains before it reads states");
  using entry = std::pair<std::string, store::result<row_state>>;
  std::vector<entry> records;
  {
    auto page = db_.ext_scan(state_prefix, from, max);
    if (!page)
      return page.error();
    records.reserve(page->size());
    for (auto& [name, raw] : *page) {
      auto st = decode_state(raw, name);
      records.emplace_back(std::move(name), std::move(st));
    }
  }
  // The rows with meta of the peer tables, in name order: tables in name
  // order ("peer/v/<table>\0" sorts as the table names do), from the
  // table and key `from` names on — up to the last record's name if the
  // records filled their page (no row past it can be among the first
  // `max`; rows without meta, a store's from before format 3, are read
  // and skipped, so this bounds the rows one call reads).
  const std::string* bound = records.size() >= max && !records.empty() ? &records.back().first
                                                                        : nullptr;
  std::vector<entry> rows;
  const std::string_view after_prefix =
    from.size() > std::strlen(state_prefix) ? std::string_view(from).substr(std::strlen(state_prefix))
                                            : std::string_view{};
  const auto nul = after_prefix.find('\0');
  const std::string from_table(after_prefix.substr(0, nul));
  bool past = false;       // a row past `bound` was reached
  bool rows_end = true;    // every row from `from` on was read
  for (auto t = tables_.lower_bound(from_table); t != tables_.end() && rows.size() < max && !past;
       ++t) {
    std::string key_from;
    if (t->first == from_table && nul != std::string_view::npos)
      key_from = std::string(after_prefix.substr(nul + 1));
    for (;;) {
      auto page = db_.scan_stored(t->first, key_from, max);
      if (!page)
        return page.error();
      for (auto& [key, r] : *page) {
        auto name = state_prefix + t->first + '\0' + key;
        if (bound && name > *bound) {
          past = true;
          break;
        }
        if (r.meta.empty())
          continue;  // its state, if any, is a peer/v/ record
        auto st = decode_meta(std::move(r.values), r.meta, name);
        rows.emplace_back(std::move(name), std::move(st));
        if (rows.size() >= max)
          break;
      }
      if (past || rows.size() >= max) {
        rows_end = false;
        break;
      }
      if (page->size() < max)
        break;
      key_from = page->back().first + '\0';
    }
  }
  // Both, merged by name, the first `max`. A name in both (which only a
  // commit landing between the reads could make; see pump_full_sync) is
  // taken as the row has it.
  state_page out;
  out.states.reserve(std::min(max, records.size() + rows.size()));
  std::size_t i = 0, j = 0;
  while (out.states.size() < max && (i < records.size() || j < rows.size())) {
    if (j == rows.size() || (i < records.size() && records[i].first < rows[j].first)) {
      out.states.push_back(std::move(records[i++]));
    } else {
      if (i < records.size() && records[i].first == rows[j].first)
        ++i;
      out.states.push_back(std::move(rows[j++]));
    }
  }
  out.end = records.size() < max && rows_end && i == records.size() && j == rows.size();
  return out;
}

void replicator::begin_full_sync(link& l) {
  l.full = {};
  l.full.active = true;
  l.full.cursor = state_prefix;
  l.full.through = vv_;
  // sync_complete waits for the deltas before it too: the receiver counts
  // everything below `through` as held once it arrives.
  l.full.last_id = l.next_delta_id - 1;
  // Deltas follow from here: everything before it is in the merge states.
  l.scan_pos = log_end_ + 1;
}

bool replicator::pump_full_sync(link& l) {
  const auto prefix = std::string_view(state_prefix).size();
  // A batch ends at batch_max changes or half the frame limit, whichever
  // comes first (a wide row with many writers makes many changes); one
  // call reads a bounded number of states and goes on from a timer, so
  // rows a link leaves out never hold up its heartbeats.
  const std::size_t bytes_max = frame_max(l) / 2;
  std::size_t states_read = 0;
  // Goes on from a timer, on the actor's own turn.
  auto go_on_later = [&] {
    if (l.full_timer_pending)
      return false;  // one continuation at a time
    l.full_timer_pending = true;
    std::weak_ptr<bool> alive = alive_;
    clock_.at(clock_.now_ms() + 1, [this, alive, peer = l.cfg.peer, session = l.session] {
      if (alive.expired())
        return;
      if (auto* l = find_link(peer); l && l->session == session) {
        l->full_timer_pending = false;
        pump(*l);
      }
    });
    return false;
  };
  if (l.full_draining)
    return false;  // the call that drains (below) goes on once it is done
  if (!l.full.read && window_open(l) && !in_flight_.empty()) {
    // A state moves between a row and its peer/v/ record in one commit,
    // and states_from() reads the two apart: no commit may land between
    // its reads. This thread starts every commit, so none does once those
    // in flight are written. Not while their results are being taken
    // (finish() pumps every link): collect() must not be entered again.
    if (collecting_ > 0)
      return go_on_later();
    l.full_draining = true;
    drain();
    l.full_draining = false;
  }
  while (!l.full.read && window_open(l)) {
    if (states_read >= full_states_per_call)
      return go_on_later();
    std::vector<wire::change> out;
    std::size_t out_bytes = 0;
    bool full = false;  // the next row's changes would take the batch past bytes_max
    while (out.size() < cfg_.batch_max && out_bytes < bytes_max && !full && !l.full.read
           && states_read < full_states_per_call) {
      auto page = states_from(l.full.cursor, cfg_.batch_max);
      if (!page)
        return false;  // the store failed; the next ack or heartbeat tries again
      std::size_t taken = 0;
      for (auto& [name, state] : page->states) {
        ++taken;
        ++states_read;
        l.full.cursor = name + '\0';
        const auto end = name.find('\0', prefix);
        const auto table = name.substr(prefix, end == std::string::npos ? 0 : end - prefix);
        const auto* s = schema_of(table);
        if (!s || !carries(l, table))
          continue;
        if (!state) {
          // Not sent, so the full sync ends without sync_complete: the
          // peer's version vector must not count that row as held.
          l.stats.last_refusal = state.error().message();
          l.full.unreadable = true;
          continue;
        }
        const std::vector<std::uint32_t> key_columns(s->primary_key.begin(), s->primary_key.end());
        std::vector<wire::change> its;  // the row's changes, which go in one batch
        std::size_t its_bytes = 0;
        for (auto& c : changes_of(table, *state, key_columns, order_))
          if (auto o = outgoing(l, std::move(c))) {
            its_bytes += approx_bytes(*o);
            its.push_back(std::move(*o));
          }
        if (!out.empty() && out_bytes + its_bytes > bytes_max) {
          // The row starts the next batch: read again from it.
          l.full.cursor = name;
          --taken;
          --states_read;
          full = true;
          break;
        }
        if (out.empty() && its_bytes + frame_envelope_bytes > frame_max(l) && holds_for(l, its)) {
          // Sent only once the peer takes it; nor is anything after it.
          l.full.cursor = name;
          return false;
        }
        out_bytes += its_bytes;
        out.insert(out.end(), std::make_move_iterator(its.begin()),
                   std::make_move_iterator(its.end()));
        if (out.size() >= cfg_.batch_max || out_bytes >= bytes_max)
          break;
      }
      if (taken == page->states.size() && page->end)
        l.full.read = true;
    }
    if (!out.empty())
      send_delta(l, std::move(out), true);
  }
  if (!l.full.read)
    return false;
  // sync_complete once the peer has every batch: it then raises its
  // version vector over rows it has stored.
  if (!l.unacked.empty() && l.unacked.begin()->first <= l.full.last_id)
    return false;
  l.full.active = false;
  if (l.full.unreadable) {
    l.full.unreadable = false;
    if (l.full.again) {
      begin_full_sync(l);
      return false;
    }
    return true;  // deltas go on; a later full sync may find the row readable
  }
  l.full.complete_sent = true;
  l.full.complete_at_ms = clock_.now_ms();
  l.full.complete_resends = 0;
  ++l.stats.full_syncs_sent;
  send(l, wire::sync_complete{l.full.through});
  if (l.full.again) {
    l.full.again = false;
    begin_full_sync(l);
    return false;
  }
  return true;
}

void replicator::pump(link& l) {
  if (l.state != link_state::live || !l.peer_wants || l.peer_paused)
    return;
  if (l.full.active && !pump_full_sync(l))
    return;
  // Deltas end at batch_max changes or half the frame limit, as a full
  // sync's batches do.
  const std::size_t bytes_max = frame_max(l) / 2;
  while (window_open(l) && l.scan_pos <= log_end_) {
    std::vector<wire::change> out;
    std::size_t out_bytes = 0;
    bool full = false;  // the next change would take the delta past bytes_max
    while (out.size() < cfg_.batch_max && !full && l.scan_pos <= log_end_) {
      // The page that holds scan_pos (pages are named by their last seq):
      // the one the last delta ended in, when it goes on from there.
      if (!l.page || l.page_next != l.scan_pos || l.scan_pos > l.page->last) {
        l.page.reset();
        auto pages = db_.ext_scan(log_prefix, log_name(l.scan_pos), 1);
        if (!pages || pages->empty())
          return;  // the store failed; the next write or ack tries again
        const auto& [name, raw] = pages->front();
        auto page = decode_page(name, raw, cfg_.limits);
        if (!page) {
          // Unreadable: said in the link's status, and the peer gets a full
          // sync instead (the merge states hold what the page held); the
          // deltas go on after the log's end.
          l.stats.last_refusal = page.error().message();
          begin_full_sync(l);
          pump(l);
          return;
        }
        l.page = std::move(page).value();
      }
      auto& page = *l.page;
      for (std::uint64_t seq = std::max(l.scan_pos, page.first);
           seq <= page.last && out.size() < cfg_.batch_max; ++seq) {
        auto& c = page.changes[seq - page.first];  // taken: the page is read once
        if (c.origin == l.cfg.peer || holds(l.peer_vv, c.origin, c.hlc)) {
          l.scan_pos = seq + 1;
          continue;
        }
        // Its size before exclusion: what goes out is no larger. The first
        // change of a delta goes whatever its size, if the peer takes it.
        const auto bytes = approx_bytes(c);
        if (!out.empty() && out_bytes + bytes > bytes_max) {
          full = true;  // it starts the next delta: scan_pos stays on it
          break;
        }
        if (out.empty() && bytes + frame_envelope_bytes > frame_max(l)) {
          if (auto o = outgoing(l, c); o && holds_for(l, {std::move(*o)})) {
            l.page_next = l.scan_pos;  // c stays in the page, unsent
            return;
          }
        }
        l.scan_pos = seq + 1;
        auto o = outgoing(l, std::move(c));
        if (!o)
          continue;
        out_bytes += bytes;
        out.push_back(std::move(*o));
      }
      l.page_next = l.scan_pos;
      if (l.scan_pos > page.last)
        l.page.reset();  // all taken: not kept while the link idles
    }
    if (out.empty())
      return;
    send_delta(l, std::move(out));
  }
}

void replicator::on_received(const std::string& peer, std::string frame) {
  auto* l = find_link(peer);
  if (!l || l->state == link_state::down || l->closing)
    return;
  l->last_heard_ms = clock_.now_ms();
  auto m = wire::decode(frame, cfg_.limits);
  if (!m) {
    ++l->stats.frames_refused;
    l->stats.last_refusal = m.error().message;
    auto reply = wire::error_for(m.error());
    send(*l, reply);
    if (reply.fatal)
      close_after(*l, m.error().message);
    return;
  }
  handle(*l, std::move(m).value(), frame.size());
}

void replicator::handle(link& l, wire::message m, std::size_t frame_bytes) {
  std::visit(
    [&](auto& msg) {
      using T = std::decay_t<decltype(msg)>;
      if constexpr (std::is_same_v<T, wire::hello> || std::is_same_v<T, wire::hello_ack>) {
        if (msg.node_id != l.cfg.peer) {
          send(l, wire::error{wire::error_code::not_allowed,
                              "this link is configured for node '" + l.cfg.peer + "', not '"
                                + msg.node_id + "'",
                              true});
          close_after(l, "the peer said it is '" + msg.node_id + "', not '" + l.cfg.peer + "'");
          return;
        }
        if constexpr (std::is_same_v<T, wire::hello>) {
          // Answered every time: a repeat means our answer may have been lost.
          std::vector<std::string> granted;
          for (const auto& t : msg.tables)
            if (carries(l, t))
              granted.push_back(t);
          send(l, wire::hello_ack{node_id(), l.cfg.mode, granted, cfg_.limits.frame_bytes_max});
        }
        l.peer_mode = msg.mode;
        l.peer_frame_max = msg.frame_bytes_max;
        // Either greeting tells this side who is there: the link is up.
        if (l.hello_seen)
          return;
        l.hello_seen = true;
        l.state = link_state::live;
        // The first grant goes before the sync_request, so a peer that
        // starts sending on it has credit already.
        send(l, grant());
        if (takes(l.cfg.mode))
          send(l, wire::sync_request{wire::sync_kind::from_watermark, vv_});
        pump(l);  // a sync_request may have come before the greeting
      } else if constexpr (std::is_same_v<T, wire::sync_request>) {
        if (!sends(l.cfg.mode)) {
          send(l, wire::error{wire::error_code::not_allowed,
                              "node '" + node_id() + "' only takes changes on this link", false});
          return;
        }
        send(l, wire::sync_start{log_end_ + 1 - log_begin_});
        for (const auto& [origin, at] : msg.from)
          raise(l.peer_vv, origin, at);
        if (l.peer_wants)
          return;  // a repeat: already sending from where the first one said
        l.peer_wants = true;
        if (msg.kind == wire::sync_kind::none)
          l.scan_pos = log_end_ + 1;  // live changes only, from the end of the log on
        else if (msg.kind == wire::sync_kind::full || !covers(l.peer_vv, floor_))
          begin_full_sync(l);  // the log lacks changes the peer lacks
        else
          l.scan_pos = log_begin_;
        pump(l);
      } else if constexpr (std::is_same_v<T, wire::sync_start>) {
        l.sync_started = true;
      } else if constexpr (std::is_same_v<T, wire::delta>) {
        on_batch(l, msg.id, msg.changes, false, frame_bytes);
      } else if constexpr (std::is_same_v<T, wire::sync_batch>) {
        on_batch(l, msg.seq, msg.changes, true, frame_bytes);
      } else if constexpr (std::is_same_v<T, wire::sync_complete>) {
        on_sync_complete(l, msg.through);
      } else if constexpr (std::is_same_v<T, wire::delta_ack>) {
        bool erased = false;
        for (auto it = l.unacked.begin(); it != l.unacked.end() && it->first <= msg.id;) {
          l.sent_at.erase(it->first);
          l.unacked_bytes -= it->second.bytes;
          it = l.unacked.erase(it);
          erased = true;
        }
        // The oldest delta still waiting decides when to send again.
        if (erased && !l.sent_at.empty())
          l.oldest_unacked_sent_ms = l.sent_at.begin()->second;
        // The peer's window slides with its acknowledgements (see resume).
        l.acked_id = std::max(l.acked_id, msg.id);
        l.credit_through = std::max(l.credit_through, l.acked_id + l.peer_credits);
        for (const auto& [origin, at] : msg.through)
          raise(l.peer_vv, origin, at);
        // The peer holds what the full sync's sync_complete said: it came.
        if (l.full.complete_sent && covers(msg.through, l.full.through))
          l.full.complete_sent = false;
        pump(l);
      } else if constexpr (std::is_same_v<T, wire::delta_nack>) {
        ++l.stats.nacks_received;
        l.stats.last_refusal = msg.message;
      } else if constexpr (std::is_same_v<T, wire::pause>) {
        if (!l.peer_paused)
          ++l.stats.pauses_received;
        l.peer_paused = true;
      } else if constexpr (std::is_same_v<T, wire::resume>) {
        // A grant is a window: `credits` batches past the last one the peer
        // acknowledged. Lost, repeated or reordered grants and acks then
        // never let this side send more than the peer allows: the peer's
        // own view of what it acknowledged is never behind this side's,
        // and its window does not change within a session.
        l.peer_paused = false;
        l.peer_credits = msg.credits;
        l.credit_through = std::max(l.credit_through, l.acked_id + msg.credits);
        l.peer_credit_bytes = msg.bytes;
        pump(l);
      } else if constexpr (std::is_same_v<T, wire::ping>) {
        send(l, wire::pong{msg.nonce});
      } else if constexpr (std::is_same_v<T, wire::error>) {
        l.stats.last_refusal = msg.message;
        if (msg.fatal)
          end_link(l, msg.message);
      }
      // hello_ack, pong: nothing to do (any frame counts as a heartbeat).
    },
    m);
}

void replicator::on_sync_complete(link& l, const wire::watermark& through) {
  if (!takes(l.cfg.mode))
    return;  // this side never asked
  // The peer sends it once every batch of its full sync is acknowledged,
  // so stored here: what it held when it began is held here now, but for
  // the origins this link does not take changes of, and this node's own
  // (no peer speaks for them). Taken only after a full sync's batches
  // came in this session: a peer cannot raise this node's vector with a
  // bare claim. (A full sync with nothing to send leaves the vector where
  // it is; the next change of each origin settles it.)
  drain();  // the version vector it raises is written by every commit
  auto vv = vv_;
  if (l.full_batch_received)
    for (const auto& [origin, at] : through)
      if (origin != node_id()
          && (l.cfg.trusted_origins.empty() || l.cfg.trusted_origins.count(origin)))
        raise(vv, origin, at);
  if (vv != vv_) {
    store::batch b;
    b.ext.emplace_back(vv_name, encode_vv(vv));
    if (!db_.apply(b))
      return;  // not acknowledged: the peer sends it again
    vv_ = std::move(vv);
    head_vv_ = vv_;
    for (const auto& [origin, at] : vv_)
      raise(pending_vv_, origin, at);
    ++l.stats.full_syncs_received;
  }
  // The acknowledgement confirms it (a delta id is never 0: with no batch
  // taken this session there is nothing to confirm, and the peer stops
  // sending it after a few tries).
  if (l.durable_id > 0)
    send(l, wire::delta_ack{l.durable_id, vv_});
}

void replicator::on_batch(link& l, std::uint64_t id, std::vector<wire::change>& changes,
                          bool full_sync, std::size_t frame_bytes) {
  l.last_delta_ms = clock_.now_ms();
  if (id < l.expected_id) {
    // A retransmission of what was received: acknowledge it again once it
    // is durable (a queued one is acknowledged by its commit).
    if (id <= l.durable_id)
      send(l, wire::delta_ack{l.durable_id, vv_});
    return;
  }
  if (id > l.durable_id + cfg_.credits) {
    ++l.stats.over_credit;
    l.stats.last_refusal = "'" + l.cfg.peer + "' sent delta " + std::to_string(id)
                           + " beyond its credit (through delta "
                           + std::to_string(l.durable_id + cfg_.credits) + ")";
    send(l, wire::error{wire::error_code::over_credit,
                        "node '" + node_id() + "' granted credit through delta "
                          + std::to_string(l.durable_id + cfg_.credits) + " and got delta "
                          + std::to_string(id)
                          + "; it is dropped: send no more batches than resume grants",
                        false});
    return;
  }
  if (l.queued > 0 && l.queued_bytes + frame_bytes > cfg_.credit_bytes) {
    ++l.stats.over_credit;
    l.stats.last_refusal = "'" + l.cfg.peer + "' sent delta " + std::to_string(id) + " of "
                           + std::to_string(frame_bytes) + " bytes beyond its byte window ("
                           + std::to_string(cfg_.credit_bytes) + " bytes, "
                           + std::to_string(l.queued_bytes) + " of them not yet acknowledged)";
    send(l, wire::error{wire::error_code::over_credit,
                        "node '" + node_id() + "' granted " + std::to_string(cfg_.credit_bytes)
                          + " bytes of batches unacknowledged at once and holds "
                          + std::to_string(l.queued_bytes) + "; delta " + std::to_string(id)
                          + " (" + std::to_string(frame_bytes)
                          + " bytes) is dropped: send no more than resume grants",
                        false});
    return;
  }
  if (id > l.expected_id)
    return;  // one went missing; the sender goes back to it
  std::vector<wire::change> accepted;
  std::size_t refused = 0;
  wire::nack_reason reason{};
  std::string why;
  auto refuse = [&](wire::nack_reason r, std::string sentence) {
    if (refused++ == 0) {
      reason = r;
      why = std::move(sentence);
    }
  };
  auto seen = pending_vv_;
  for (auto& c : changes) {
    if (!takes(l.cfg.mode)) {
      refuse(wire::nack_reason::write_not_allowed,
             "node '" + node_id() + "' takes no changes from '" + l.cfg.peer
               + "' on this link (mode push)");
      continue;
    }
    const auto* s = schema_of(c.table);
    if (!s) {
      refuse(wire::nack_reason::unknown_table,
             "node '" + node_id() + "' has no peer table '" + c.table + "'");
      continue;
    }
    if (!carries(l, c.table)) {
      refuse(wire::nack_reason::table_not_allowed,
             "the link from '" + l.cfg.peer + "' does not carry table '" + c.table + "'");
      continue;
    }
    if (!l.cfg.trusted_origins.empty() && !l.cfg.trusted_origins.count(c.origin)) {
      refuse(wire::nack_reason::untrusted_origin,
             "node '" + node_id() + "' does not take changes made on '" + c.origin
               + "' over the link from '" + l.cfg.peer + "'");
      continue;
    }
    if (auto st = validate(c, s->columns.size()); !st) {
      refuse(wire::nack_reason::invalid_change, st.message());
      continue;
    }
    if (c.new_row)
      if (auto st = s->check_row(*c.new_row); !st) {
        refuse(wire::nack_reason::invalid_change, st.message());
        continue;
      }
    // The key names the row's merge state and, through the row's key
    // columns, its stored row: the two must be the same row.
    if (auto st = s->check_key(c.key); !st) {
      refuse(wire::nack_reason::invalid_change, st.message());
      continue;
    }
    if (c.new_row && !s->is_key_of(c.key, *c.new_row)) {
      refuse(wire::nack_reason::invalid_change,
             "a change for table '" + c.table
               + "' names a key other than its row's key columns hold; send the row's own key");
      continue;
    }
    if (!admits(l, c)) {
      std::string outside;
      for (const auto& [col, f] : l.policy.at(c.table).filters)
        if (!f->admits((*c.new_row)[col])) {
          outside = "its '" + f->column + "' fails the filter '" + f->column + " "
                    + store::to_string(f->op) + "'";
          break;
        }
      refuse(wire::nack_reason::table_not_allowed,
             "the link from '" + l.cfg.peer + "' carries only rows of '" + c.table
               + "' inside its filters, and a change made on '" + c.origin
               + "' writes a row outside them (" + outside + ")");
      continue;
    }
    if (holds(seen, c.origin, c.hlc)) {
      ++l.stats.duplicate_changes;
      continue;
    }
    if (l.cfg.trust)
      if (auto no = l.cfg.trust(c)) {
        refuse(wire::nack_reason::policy_refused,
               "node '" + node_id() + "' refuses a change of '" + c.table + "' made on '"
                 + c.origin + "': " + *no);
        continue;
      }
    // A full sync's changes are in no origin's order: none of them says
    // that the ones before it are held.
    if (l.policy.count(c.table) == 0) {
      if (!full_sync)
        raise(seen, c.origin, c.hlc);
      accepted.push_back(std::move(c));  // nothing of it is excluded: taken as it came
      continue;
    }
    auto kept = without_excluded(l, c);
    if (!kept) {
      ++l.stats.dropped_changes;  // it set only columns this link excludes
      continue;
    }
    if (!full_sync)
      raise(seen, c.origin, c.hlc);
    accepted.push_back(std::move(*kept));
  }
  // Queued, not applied: batches that arrive together are committed
  // together, and acknowledged once durable.
  pending_batch p;
  p.peer = l.cfg.peer;
  p.session = l.session;
  p.id = id;
  p.full_sync = full_sync;
  p.refused = refused;
  p.reason = reason;
  p.why = std::move(why);
  if (!full_sync)
    for (const auto& c : accepted)
      raise(pending_vv_, c.origin, c.hlc);
  p.accepted = accepted.size();
  p.bytes = frame_bytes;
  p.changes = std::move(accepted);
  queue_.push_back(std::move(p));
  if (full_sync)
    l.full_batch_received = true;
  ++l.expected_id;
  ++l.queued;
  l.queued_bytes += frame_bytes;
  if (l.queued >= cfg_.pause_at && !l.pausing) {
    l.pausing = true;
    ++l.stats.pauses_sent;
    send(l, wire::pause{});
  }
  schedule_commit();
}

void replicator::schedule_commit() {
  if (commit_scheduled_)
    return;
  commit_scheduled_ = true;
  std::weak_ptr<bool> alive = alive_;
  clock_.at(clock_.now_ms() + cfg_.commit_delay_ms, [this, alive] {
    if (!alive.expired())
      commit();
  });
}

void replicator::commit() {
  commit_scheduled_ = false;
  if (queue_.empty() || in_flight_.size() >= cfg_.commits_in_flight_max)
    return;  // commits_done() comes back to it
  in_flight c;
  c.batches = std::move(queue_);
  queue_.clear();
  // A full sync's changes first, unlogged (see prepare); merging commutes,
  // and the logged ones keep their order.
  std::vector<wire::change> all;
  std::size_t unlogged = 0;
  for (auto& b : c.batches)
    if (b.full_sync) {
      unlogged += b.changes.size();
      c.source.insert(c.source.end(), b.changes.size(), b.peer);
      all.insert(all.end(), std::make_move_iterator(b.changes.begin()),
                 std::make_move_iterator(b.changes.end()));
      b.changes.clear();
    }
  for (auto& b : c.batches)
    if (!b.full_sync) {
      all.insert(all.end(), std::make_move_iterator(b.changes.begin()),
                 std::make_move_iterator(b.changes.end()));
      b.changes.clear();
    }
  store::batch batch;
  if (auto st = prepare(all, unlogged, c, batch); !st) {
    // Nothing of it is given to the committer: the commits before it are
    // taken back first, then it fails as if it were written.
    drain();
    in_flight_.push_back(std::move(c));
    fail_commits(st);
    return;
  }
  c.unlogged.assign(std::make_move_iterator(all.begin()),
                    std::make_move_iterator(all.begin() + static_cast<std::ptrdiff_t>(unlogged)));
  committer_->submit(std::move(batch));
  in_flight_.push_back(std::move(c));
  collect();
}

void replicator::commits_done() {
  collect();
}

void replicator::collect() {
  // Entered again from a finish() below, it would pair the results it
  // takes with the wrong commits.
  assert(collecting_ == 0 && "collect() is not re-entered");
  ++collecting_;
  struct leave {
    int& depth;
    ~leave() { --depth; }
  } guard{collecting_};
  auto done = committer_->take_done();
  for (const auto& st : done) {
    assert(!in_flight_.empty() && "a result without its commit");
    if (in_flight_.empty())
      break;
    if (!st) {
      fail_commits(st);
      return;
    }
    auto c = std::move(in_flight_.front());
    in_flight_.erase(in_flight_.begin());
    finish(c);
  }
  if (!queue_.empty() && in_flight_.size() < cfg_.commits_in_flight_max)
    schedule_commit();
}

void replicator::drain() {
  if (in_flight_.empty())
    return;
  committer_->wait();
  collect();
}

void replicator::add_sender(std::vector<link*>& links,
                            const std::vector<pending_batch>& batches) {
  for (const auto& b : batches)
    if (auto* l = find_link(b.peer); l && l->session == b.session
                                     && std::find(links.begin(), links.end(), l) == links.end())
      links.push_back(l);
}

void replicator::head_to_durable() {
  head_vv_ = vv_;
  head_floor_ = floor_;
  head_end_ = log_end_;
  head_states_.clear();
}

void replicator::fail_commits(const store::status& why) {
  // The committer writes none of the commits after the failed one: wait
  // for it to be done with them.
  committer_->wait();
  (void) committer_->take_done();
  // The links whose current session had batches in them or queued.
  std::vector<link*> touched;
  for (const auto& c : in_flight_)
    add_sender(touched, c.batches);
  add_sender(touched, queue_);
  in_flight_.clear();
  queue_.clear();
  head_to_durable();
  pending_vv_ = vv_;
  committer_->resume();
  for (auto* l : touched) {
    send(*l, wire::delta_nack{l->durable_id + 1, wire::nack_reason::apply_failed,
                              "node '" + node_id() + "' could not store the changes: "
                                + why.message() + "; they are sent again"});
    l->expected_id = l->durable_id + 1;
    l->queued = 0;
    l->queued_bytes = 0;
    if (l->pausing) {
      l->pausing = false;
      send(*l, grant());
    }
  }
}

void replicator::finish(in_flight& c) {
  // The states it wrote are read from the store from now on, unless a
  // later commit in flight wrote them too.
  for (const auto* name : c.written)
    if (auto it = head_states_.find(*name); it != head_states_.end() && it->second.commit == c.id)
      head_states_.erase(it);
  c.written.clear();
  vv_ = std::move(c.vv);
  floor_ = std::move(c.floor);
  log_end_ = c.end;
  if (c.batches.empty())
    return;  // a local write: write() goes on from here
  const std::size_t unlogged = c.unlogged.size();
  // The links whose current session had batches in this commit.
  std::vector<link*> touched;
  add_sender(touched, c.batches);
  auto seq = c.first_seq;  // prepare() logs the changes in the order given
  for (auto& b : c.batches) {
    auto* l = find_link(b.peer);
    const auto batch_first = seq;
    if (!b.full_sync)
      seq += b.accepted;
    if (!l)
      continue;
    l->stats.applied_changes += b.accepted;
    // The peer holds what it sent: when these log entries are the next the
    // link would look at, it skips them instead of reading each back.
    if (l->scan_pos == batch_first)
      l->scan_pos = seq;
    if (l->session != b.session)
      continue;  // stored; the peer sends it again on its new session and it counts as held
    if (b.refused > 0) {
      l->stats.nacked += b.refused;
      l->stats.last_refusal = b.why;
      send(*l, wire::delta_nack{b.id, b.reason,
                                b.why + (b.refused > 1 ? " (and " + std::to_string(b.refused - 1)
                                                           + " more refused in this delta)"
                                                       : std::string())});
    }
    l->durable_id = b.id;
    --l->queued;
    l->queued_bytes -= b.bytes;
  }
  for (auto* l : touched) {
    send(*l, wire::delta_ack{l->durable_id, vv_});
    // The new credit, which also ends a pause once fewer than pause_at
    // batches wait (commits still in flight count).
    if (l->pausing && l->queued >= cfg_.pause_at)
      continue;
    l->pausing = false;
    send(*l, grant());
  }
  if (std::find(c.changed.begin(), c.changed.end(), true) != c.changed.end())
    for (auto& [peer, l] : links_) {
      // What this commit took in a full sync is in no log entry here: a
      // peer being sent deltas that may lack it gets a full sync now
      // instead, and one with a full sync under way (whose reading may be
      // past those rows) another once it is complete. Not started over:
      // full syncs arriving on other links would keep it from ever
      // completing. The peer holds what it sent itself, and its own
      // changes (no echo); a change that changed nothing here is none of
      // this either. Of the rest, only each change itself counts: one
      // change says nothing of the others of its origin.
      if (l->state == link_state::down || !l->peer_wants)
        continue;
      // Changes this peer sent in this commit too (another peer's copy may
      // have been the one that changed the row): it holds them.
      std::set<std::pair<std::string, std::uint64_t>> its_own;
      for (std::size_t i = 0; i < unlogged; ++i)
        if (c.source[i] == peer)
          its_own.emplace(c.unlogged[i].origin, c.unlogged[i].hlc.packed());
      wire::watermark lacks;
      for (std::size_t i = 0; i < unlogged; ++i)
        if (c.changed[i] && c.unlogged[i].origin != peer
            && !its_own.count({c.unlogged[i].origin, c.unlogged[i].hlc.packed()}))
          raise(lacks, c.unlogged[i].origin, c.unlogged[i].hlc);
      if (covers(l->peer_vv, lacks))
        continue;
      if (l->full.active)
        l->full.again = true;
      else
        begin_full_sync(*l);
    }
  if (c.any)
    pump_all();
}

store::result<std::string> table_digest(const store::store& db, const std::string& table) {
  auto rows = db.scan(table);
  if (!rows)
    return rows.error();
  msgpack::sbuffer buf;
  for (const auto& r : *rows)
    store::append_row(buf, r);
  return std::string(buf.data(), buf.size());
}

} // namespace syncmesh::peer
