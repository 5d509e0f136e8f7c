#include "actors/postgres_connector.hpp"

#include <atomic>
#include <chrono>
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <csignal>
#include <map>
#include <random>
#include <set>
#include <thread>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>
#include <libpq-fe.h>
#include <poll.h>

#include "actors/conflict_resolver.hpp"
#include "actors/errors.hpp"
#include "actors/messages.hpp"
#include "actors/row_json.hpp"
#include "connectors/postgres/copy_encoder.hpp"
#include "connectors/postgres/id_lease.hpp"
#include "connectors/postgres/pgoutput.hpp"
#include "connectors/postgres/push.hpp"
#include "connectors/postgres/quote.hpp"
#include "connectors/postgres/replication_stream.hpp"
#include "connectors/postgres/row_filter.hpp"
#include "store/key_codec.hpp"
#include "store/record_codec.hpp"

namespace syncmesh::actors {

namespace pg = syncmesh::connectors::postgres;
using pg::quote_ident;
using pg::quote_literal;

namespace {

/// How long the stream thread waits on its socket before looking at its
/// stop flag and its confirmations again.
constexpr int stream_poll_ms = 200;

std::string with_password(const remote_config& cfg) {
  if (cfg.password.empty())
    return cfg.conninfo;
  std::string escaped;
  for (char c : cfg.password) {
    if (c == '\'' || c == '\\')
      escaped.push_back('\\');
    escaped.push_back(c);
  }
  return cfg.conninfo + " password='" + escaped + "'";
}

// Runs administrative SQL on a short-lived normal connection.
store::status exec_sql(const std::string& conninfo, const std::string& sql) {
  PGconn* conn = PQconnectdb(conninfo.c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string msg = PQerrorMessage(conn);
    PQfinish(conn);
    return store::status::io_error("cannot connect to PostgreSQL: " + msg);
  }
  PGresult* res = PQexec(conn, sql.c_str());
  auto st = PQresultStatus(res);
  std::string msg = PQresultErrorMessage(res);
  PQclear(res);
  PQfinish(conn);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
    return store::status::invalid_argument("PostgreSQL refused `" + sql + "`: " + msg);
  return store::status::ok();
}

std::pair<std::string, std::string> split_source(const std::string& source) {
  auto dot = source.find('.');
  if (dot == std::string::npos)
    return {"public", source};
  return {source.substr(0, dot), source.substr(dot + 1)};
}

store::column column_for(const pg::column_info& c) {
  store::column out;
  out.name = c.name;
  out.nullable = !c.not_null;
  switch (c.type_oid) {
    case 16: out.kind = store::value_kind::boolean; break;
    case 20: case 21: case 23: out.kind = store::value_kind::integer; break;
    case 700: case 701: out.kind = store::value_kind::real; break;
    case 25: case 1043: case 1042: case 19: case 2950: out.kind = store::value_kind::text; break;
    case 17: out.kind = store::value_kind::bytes; break;
    default:
      out.kind = store::value_kind::exact;
      switch (c.type_oid) {
        case 1700: out.type_name = "numeric"; break;
        case 1114: out.type_name = "timestamp"; break;
        case 1184: out.type_name = "timestamptz"; break;
        case 1082: out.type_name = "date"; break;
        case 1083: out.type_name = "time"; break;
        case 114: out.type_name = "json"; break;
        case 3802: out.type_name = "jsonb"; break;
        default: out.type_name = c.type_name.empty() ? "oid:" + std::to_string(c.type_oid)
                                                     : c.type_name;
      }
  }
  return out;
}

// A column's text as the value its local column holds.
store::result<store::value> value_for(const store::column& col, std::uint32_t oid,
                                      const std::string& text, const pg::type_names& names) {
  auto v = pg::to_value(oid, text, names);
  if (!v)
    return v.error();
  if (v->kind() == store::value_kind::exact && col.kind == store::value_kind::exact
      && v->as_exact().type_name != col.type_name)
    return store::value::exact(col.type_name, v->as_exact().text);
  return v;
}

/// What a followed view reads: the local shape and, per local column, the
/// source column's type.
struct stream_shape {
  store::schema local;  // table = the view's local table
  std::vector<std::uint32_t> oids;
  /// The followed relation; 0 until a Relation message names
  /// schema_name.table_name (when resuming without a snapshot).
  std::uint32_t relation_oid = 0;
  std::string schema_name;
  std::string table_name;
  /// The view's filters, evaluated on every inserted and updated row.
  pg::row_filter filter;
};

struct held_slot {
  std::unique_ptr<pg::replication_stream> stream;
  std::string slot;
  std::string publication;
  stream_shape shape;
};

/// One followed view's stream, read by its own thread.
struct stream_worker {
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> acked{0};
  std::thread thread;
  /// Whom slot health goes to. Weak: a strong handle here could make the
  /// view, and through it this connector, outlive the connector's cleanup.
  caf::actor_addr view;
  std::string slot;

  ~stream_worker() {
    stop = true;
    if (thread.joinable())
      thread.join();
  }
};

struct pg_conn_deleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
struct pg_result_deleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using pg_conn_ptr = std::unique_ptr<PGconn, pg_conn_deleter>;
using pg_result_ptr = std::unique_ptr<PGresult, pg_result_deleter>;
using text_rows = std::vector<std::vector<std::optional<std::string>>>;
/// A snapshot being read for a view, one piece per snapshot_next request:
/// the COPY stays open between pieces, so only one piece of rows is ever
/// converted and held here.
struct open_snapshot {
  std::unique_ptr<pg::snapshot_reader> reader;
  bool follow = false;
  held_slot held;        // follow: the slot the COPY's snapshot belongs to
  caf::actor_addr view;  // the view that asked; the held slot goes to it
  std::shared_ptr<const snapshot> first;  // shape, position, estimate
  std::vector<std::uint32_t> oids;        // source column types, per local column
  /// Encodes each piece's COPY text straight into stored rows of the view's
  /// local table.
  std::unique_ptr<pg::copy_encoder> encoder;
  /// A query's result, which comes in key order: the last row's encoded key,
  /// so a key that repeats (adjacent) is caught across pieces.
  bool query = false;
  std::string last_key;
};

/// Pieces read at once but delivered later (remote_config::snapshot_delay_ms).
struct delayed_piece {
  caf::response_promise rp;
  snapshot_ref piece;
};

struct pg_state {
  // Streams end with the connector: their threads are joined before any
  // other member goes. (Not in an attach_functor: CAF destroys the state
  // before it runs attachables, so one touching the state frees it twice.)
  ~pg_state() { workers.clear(); }

  node_context_ptr ctx;
  remote_config cfg;
  std::string conninfo;
  /// A normal connection for heartbeats, slot health and drops; opened
  /// when needed, closed after a failure.
  pg_conn_ptr admin;
  std::map<std::string, open_snapshot> snapshots;  // by view name
  std::map<std::uint64_t, delayed_piece> delayed;  // by id
  std::uint64_t next_delayed = 0;
  std::map<caf::actor_addr, held_slot> held;  // by the view that took the snapshot
  /// By view: a table may be followed by several views (a sync view and a
  /// realtime one), each on its own slot.
  std::map<std::string, std::unique_ptr<stream_worker>> workers;
  std::set<caf::actor> watchers;
  /// The normal connection sync views' writes are pushed on, the
  /// replication origin its session is set up with ("" none), and whether
  /// syncmesh.pushes is known to exist on it.
  pg_conn_ptr push_conn;
  std::string push_origin;
  /// Whether each view's last push went through whole (change_set::after_previous).
  push_chain push_ends;
  bool pushes_ready = false;
  /// Pushes that went by the set-based fast path (remote stats).
  std::uint64_t bulk_pushes = 0;
  /// conflict = "custom": each sync view's resolver actor, by view.
  std::map<std::string, caf::actor> resolvers;
  /// How each sync view's columns map onto its source table, by view.
  std::map<std::string, pg::push_table> push_tables;

  static inline const char* name = "postgres_connector";
};

using pg_actor = caf::stateful_actor<pg_state>;

// Runs `sql` with text parameters on the admin connection.
store::result<text_rows> admin_query(pg_state& st, const std::string& sql,
                                     const std::vector<std::string>& params = {}) {
  if (!st.admin || PQstatus(st.admin.get()) != CONNECTION_OK) {
    // A default connect_timeout, which the remote's own conninfo may
    // override: an unreachable host must not hold this actor for minutes.
    const char* keywords[] = {"connect_timeout", "dbname", nullptr};
    const char* values[] = {"5", st.conninfo.c_str(), nullptr};
    st.admin.reset(PQconnectdbParams(keywords, values, 1));
    if (PQstatus(st.admin.get()) != CONNECTION_OK) {
      std::string msg = PQerrorMessage(st.admin.get());
      st.admin.reset();
      return store::status::io_error("cannot connect to PostgreSQL: " + msg);
    }
  }
  std::vector<const char*> values;
  for (const auto& p : params)
    values.push_back(p.c_str());
  pg_result_ptr res(PQexecParams(st.admin.get(), sql.c_str(), static_cast<int>(values.size()),
                                 nullptr, values.data(), nullptr, nullptr, 0));
  auto code = PQresultStatus(res.get());
  if (code != PGRES_COMMAND_OK && code != PGRES_TUPLES_OK) {
    std::string msg = res ? PQresultErrorMessage(res.get()) : PQerrorMessage(st.admin.get());
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' '))
      msg.pop_back();
    if (PQstatus(st.admin.get()) != CONNECTION_OK) {
      st.admin.reset();
      return store::status::io_error("lost the connection to PostgreSQL: " + msg);
    }
    return store::status::invalid_argument(msg);
  }
  text_rows rows;
  for (int r = 0; r < PQntuples(res.get()); ++r) {
    rows.emplace_back();
    for (int c = 0; c < PQnfields(res.get()); ++c)
      rows.back().push_back(PQgetisnull(res.get(), r, c)
                              ? std::nullopt
                              : std::optional<std::string>(PQgetvalue(res.get(), r, c)));
  }
  return rows;
}

/// What pg_replication_slots says of `slots`, one JSON object per slot
/// found: slot, wal_status, retained_bytes (WAL kept for it), confirmed_flush_lsn.
store::result<std::map<std::string, nlohmann::json>>
slot_health(pg_state& st, const std::vector<std::string>& slots) {
  std::string names = "{";
  for (std::size_t i = 0; i < slots.size(); ++i)
    names += (i == 0 ? "\"" : ",\"") + slots[i] + "\"";
  names += "}";
  auto rows = admin_query(
    st,
    "SELECT slot_name::text, wal_status, (pg_catalog.pg_current_wal_lsn() - restart_lsn)::bigint,"
    " confirmed_flush_lsn::text FROM pg_catalog.pg_replication_slots"
    " WHERE slot_name = ANY($1::text[])",
    {names});
  if (!rows)
    return rows.error();
  std::map<std::string, nlohmann::json> out;
  for (const auto& r : *rows) {
    auto text = [](const std::optional<std::string>& v) {
      return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
    };
    out[*r[0]] = {{"slot", *r[0]},
                  {"wal_status", text(r[1])},
                  {"retained_bytes", r[2] ? nlohmann::json(std::stoll(*r[2])) : nlohmann::json(nullptr)},
                  {"confirmed_flush_lsn", text(r[3])}};
  }
  return out;
}

std::string invalidated_sentence(const std::string& slot, const std::string& view) {
  return "replication slot " + slot + " of view " + view
         + " was invalidated (wal_status lost: PostgreSQL removed WAL the slot still needed, "
           "see max_slot_wal_keep_size); the view copies its source again from a new slot";
}

caf::error remote_error(const pg_state& st, const store::status& s) {
  return make_error(s.code() == store::errc::io_error ? errc::remote_down : errc::invalid_request,
                    "remote '" + st.cfg.name + "': " + s.message());
}

// A local value as PostgreSQL's text output, for filters that read a column
// the stream left out (unchanged TOAST) but the local row holds.
std::optional<std::string> text_of(const store::value& v) {
  switch (v.kind()) {
    case store::value_kind::boolean: return std::string(v.as_bool() ? "t" : "f");
    case store::value_kind::integer: return std::to_string(v.as_int());
    case store::value_kind::text: return v.as_text();
    case store::value_kind::exact: return v.as_exact().text;
    default: return std::nullopt;
  }
}

// Converts one transaction's changes on the followed relation, keeping only
// the rows the view's filters select: an insert outside them is dropped, an
// update that moves a row out of them removes it, one that moves a row into
// them inserts the whole new row.
class txn_converter {
public:
  txn_converter(stream_shape shape, const node_context& ctx)
    : shape_(std::move(shape)), ctx_(ctx) {}

  store::status on_message(const pg::pg_message& m, change_set& out) {
    switch (pg::kind_of(m)) {
      case pg::message_kind::relation: {
        const auto& r = std::get<pg::relation>(m);
        relations_.update(r);
        if (shape_.relation_oid == 0 && r.name == shape_.table_name
            && (r.namespace_name == shape_.schema_name
                || (r.namespace_name.empty() && shape_.schema_name == "pg_catalog")))
          shape_.relation_oid = r.oid;
        return store::status::ok();
      }
      case pg::message_kind::type:
        types_.update(std::get<pg::type_message>(m));
        return store::status::ok();
      case pg::message_kind::insert: {
        const auto& ins = std::get<pg::insert_message>(m);
        return row_change(ins.relation_oid, nullptr, ins.new_tuple, out);
      }
      case pg::message_kind::update: {
        const auto& up = std::get<pg::update_message>(m);
        return row_change(up.relation_oid, &up, up.new_tuple, out);
      }
      case pg::message_kind::delete_: {
        const auto& del = std::get<pg::delete_message>(m);
        return key_change(del.relation_oid, del.old_tuple, out);
      }
      case pg::message_kind::truncate: {
        const auto& t = std::get<pg::truncate_message>(m);
        for (auto oid : t.relation_oids)
          if (oid == shape_.relation_oid) {
            store::change c;
            c.table = shape_.local.table;
            c.op = store::change_op::truncate;
            out.changes.push_back(std::move(c));
            for (auto& [key, entry] : pending_)
              entry = {std::nullopt, 0};
            truncated_ = pending_truncate{0};
          }
        return store::status::ok();
      }
      default: return store::status::ok();
    }
  }

  /// The transaction just converted committed at `end`.
  void committed(std::uint64_t end) {
    for (auto& [key, entry] : pending_)
      if (entry.position == 0)
        entry.position = end;
    if (truncated_ && truncated_->position == 0)
      truncated_->position = end;
  }

  /// Everything up to `acked` is in the store: read it from there.
  void forget_durable(std::uint64_t acked) {
    for (auto it = pending_.begin(); it != pending_.end();)
      it = it->second.position != 0 && it->second.position <= acked ? pending_.erase(it)
                                                                   : std::next(it);
    if (truncated_ && truncated_->position != 0 && truncated_->position <= acked)
      truncated_.reset();
  }

private:
  using values = std::vector<std::optional<store::value>>;

  /// A row this stream sent to the view that may not be in the store yet
  /// (nullopt: removed), and the commit it belongs to (0: still open).
  struct pending_row {
    std::optional<store::row> row;
    std::uint64_t position = 0;
  };
  struct pending_truncate {
    std::uint64_t position = 0;
  };

  // Local column values from a tuple; unchanged TOASTed columns (absent from
  // the tuple) are left empty for the caller to merge.
  store::result<values> local_values(const pg::relation& rel, const pg::tuple_data& tuple) {
    values out(shape_.local.columns.size());
    for (std::size_t i = 0; i < rel.columns.size() && i < tuple.size(); ++i) {
      auto idx = shape_.local.column_index(rel.columns[i].name);
      if (!idx)
        continue;  // not selected for this view
      const auto& datum = tuple[i];
      if (datum.kind == pg::column_kind::unchanged_toast)
        continue;
      if (datum.kind == pg::column_kind::null) {
        out[*idx] = store::value::null();
        continue;
      }
      auto v = value_for(shape_.local.columns[*idx], rel.columns[i].type_oid, datum.text, types_);
      if (!v)
        return v.error();
      out[*idx] = std::move(v).value();
    }
    return out;
  }

  std::optional<store::row> key_of(const values& vals) const {
    store::row key;
    for (auto k : shape_.local.primary_key) {
      if (!vals[k])
        return std::nullopt;
      key.push_back(*vals[k]);
    }
    return key;
  }

  // The row the view holds under `key`, counting what this stream sent and
  // the store has not made durable yet.
  store::result<std::optional<store::row>> held(const store::row& key) const {
    if (auto it = pending_.find(store::encode_key(key)); it != pending_.end())
      return it->second.row;
    if (truncated_)
      return std::optional<store::row>{};
    auto got = ctx_.db->get(shape_.local.table, key);
    if (!got)
      return got.error();
    return *got;
  }

  void emit_row(store::row r, change_set& out) {
    pending_[store::encode_key(shape_.local.key_of(r))] = {r, 0};
    store::change c;
    c.table = shape_.local.table;
    c.op = store::change_op::insert;  // the store's insert and update both upsert
    c.new_row = std::move(r);
    out.changes.push_back(std::move(c));
  }

  void emit_remove(store::row key, change_set& out) {
    pending_[store::encode_key(key)] = {std::nullopt, 0};
    store::change c;
    c.table = shape_.local.table;
    c.op = store::change_op::remove;
    c.key = std::move(key);
    out.changes.push_back(std::move(c));
  }

  std::string source_name() const { return shape_.schema_name + "." + shape_.table_name; }

  store::status whole_row_missing(const std::string& column, const store::row& key) const {
    return store::status::invalid_argument(
      "an UPDATE of " + source_name() + " row " + store::to_display(key)
      + " left TOASTed column '" + column
      + "' unchanged, so the stream did not send its value, and view " + shape_.local.table
      + " does not hold the row to take it from (the update moved the row into the view's "
        "filters); the view copies the table again — ALTER TABLE "
      + source_name() + " REPLICA IDENTITY FULL makes updates carry whole rows");
  }

  // An Insert (update == nullptr) or an Update with its new tuple.
  store::status row_change(std::uint32_t oid, const pg::update_message* update,
                           const pg::tuple_data& tuple, change_set& out) {
    if (oid != shape_.relation_oid)
      return store::status::ok();
    const auto* rel = relations_.find(oid);
    if (!rel)
      return store::status::corruption("a change arrived before its relation's description");
    // Unchanged TOASTed values are in the old row when the table is
    // REPLICA IDENTITY FULL (PostgreSQL writes that one inline).
    pg::tuple_data merged = tuple;
    const pg::tuple_data* old_full =
      update && update->old_kind == pg::old_tuple_kind::full ? &update->old_tuple : nullptr;
    if (old_full)
      for (std::size_t i = 0; i < merged.size() && i < old_full->size(); ++i)
        if (merged[i].kind == pg::column_kind::unchanged_toast
            && (*old_full)[i].kind != pg::column_kind::unchanged_toast)
          merged[i] = (*old_full)[i];
    auto vals = local_values(*rel, merged);
    if (!vals)
      return vals.error();
    std::optional<store::row> old_key;
    if (update && update->old_kind != pg::old_tuple_kind::none) {
      auto old_vals = local_values(*rel, update->old_tuple);
      if (!old_vals)
        return old_vals.error();
      old_key = key_of(*old_vals);
    }
    auto key = key_of(*vals);
    if (!key)
      key = old_key;  // a key column left unchanged and TOASTed
    if (!key)
      return store::status::corruption("a change to " + source_name()
                                       + " lacks its key columns");
    // The key changed: the row under the old key is gone.
    if (old_key && *old_key != *key)
      emit_remove(*old_key, out);

    std::optional<std::optional<store::row>> local;  // looked up once, when needed
    auto local_row = [&]() -> store::result<std::optional<store::row>> {
      if (!local) {
        auto got = held(*key);
        if (!got)
          return got.error();
        local = *got;
      }
      return *local;
    };

    auto verdict = pg::filter_verdict::match;
    if (!shape_.filter.empty()) {
      auto v = shape_.filter.evaluate(*rel, merged);
      if (!v)
        return v.error();
      verdict = *v;
      if (verdict == pg::filter_verdict::unknown) {
        // A filter column was left unchanged: take it from the local row.
        auto got = local_row();
        if (!got)
          return got.error();
        if (*got)
          for (std::size_t i = 0; i < merged.size() && i < rel->columns.size(); ++i) {
            auto idx = shape_.local.column_index(rel->columns[i].name);
            if (merged[i].kind != pg::column_kind::unchanged_toast || !idx)
              continue;
            const auto& held_value = (**got)[*idx];
            if (held_value.is_null())
              merged[i] = {pg::column_kind::null, {}};
            else if (auto text = text_of(held_value))
              merged[i] = {pg::column_kind::text, *text};
          }
        auto again = shape_.filter.evaluate(*rel, merged);
        if (!again)
          return again.error();
        verdict = *again;
      }
    }
    switch (verdict) {
      case pg::filter_verdict::no_match:
        // Outside the filters: an insert is not for this view; an update
        // takes the row out of it (harmless if it was not held).
        if (update)
          emit_remove(*key, out);
        return store::status::ok();
      case pg::filter_verdict::unknown:
        for (std::size_t i = 0; i < merged.size() && i < rel->columns.size(); ++i)
          if (merged[i].kind == pg::column_kind::unchanged_toast)
            return whole_row_missing(rel->columns[i].name, *key);
        return store::status::invalid_argument("a filter of view " + shape_.local.table
                                               + " names a column " + source_name()
                                               + " no longer has; fix the view's filters");
      case pg::filter_verdict::match: break;
    }
    store::row r(vals->size());
    for (std::size_t i = 0; i < r.size(); ++i) {
      if ((*vals)[i]) {
        r[i] = *(*vals)[i];
        continue;
      }
      // Unchanged TOAST: the value is whatever the local row holds.
      auto got = local_row();
      if (!got)
        return got.error();
      if (!*got || i >= (*got)->size())
        return whole_row_missing(shape_.local.columns[i].name, *key);
      r[i] = (**got)[i];
    }
    emit_row(std::move(r), out);
    return store::status::ok();
  }

  store::status key_change(std::uint32_t oid, const pg::tuple_data& tuple, change_set& out) {
    if (oid != shape_.relation_oid)
      return store::status::ok();
    const auto* rel = relations_.find(oid);
    if (!rel)
      return store::status::corruption("a delete arrived before its relation's description");
    auto vals = local_values(*rel, tuple);
    if (!vals)
      return vals.error();
    for (auto k : shape_.local.primary_key)
      if (!(*vals)[k])
        return store::status::corruption("a delete lacks key column '"
                                         + shape_.local.columns[k].name + "'");
    // A row the view does not hold (outside its filters) is removed harmlessly.
    emit_remove(*key_of(*vals), out);
    return store::status::ok();
  }

  stream_shape shape_;
  const node_context& ctx_;
  pg::relation_cache relations_;
  pg::type_names types_;
  std::map<std::string, pending_row> pending_;  // by encoded key
  std::optional<pending_truncate> truncated_;
};

/// What became of a change set offered to a view's gate.
enum class gate_outcome { applied, closed, failed };

// Applies one upstream transaction's change set to the store through the
// view's gate, on the stream thread. `closed`: the view no longer follows
// (stopped, its remote reported down, the view ended); nothing was written,
// so nothing may be confirmed either. `failed`: the store refused, `why` says.
gate_outcome apply_through(const node_context& ctx, stream_gate& gate, change_set& cs,
                           std::string& why) {
  std::lock_guard<std::mutex> guard(gate.lock);
  if (!gate.open)
    return gate_outcome::closed;
  if (cs.position <= gate.position)
    return gate_outcome::applied;  // stale: the local copy has it already
  store::batch b;
  b.changes = std::move(cs.changes);
  for (auto& c : b.changes)
    c.table = gate.table;
  b.cursors.emplace_back(gate.cursor, std::to_string(cs.position));
  if (auto r = ctx.db->apply(b); !r) {
    gate.open = false;
    why = "the local store refused a write: " + r.error().to_string();
    return gate_outcome::failed;
  }
  gate.position = cs.position;
  return gate_outcome::applied;
}

// The stream thread of one followed view: reads until stopped or lost.
void run_stream(std::unique_ptr<pg::replication_stream> stream, stream_shape shape,
                node_context_ptr ctx, caf::actor view, caf::actor connector,
                stream_worker* worker, std::string own_origin,
                std::shared_ptr<stream_gate> gate) {
  txn_converter conv(shape, *ctx);  // keeps its own copy: it learns the relation oid
  auto cs = std::make_shared<change_set>();
  cs->table = shape.local.table;
  // Inside a transaction the view's own push committed (its Origin message
  // names the view's replication origin): its changes are echoes.
  bool echo = false;
  std::uint64_t last_sent = 0;   // end LSN of the last change set sent to the view
  std::uint64_t idle_end = 0;    // end LSN of later transactions with nothing for us
  // `resumable`: the connection went away, and a new one may go on from
  // the slot; otherwise the stream cannot get past where it stands (a
  // change it cannot turn into rows, a store refusal) and the view copies
  // the source again.
  auto lost = [&](const std::string& why, bool resumable = false) {
    caf::anon_send(connector, stream_lost_atom::value, view, why, resumable);
  };
  while (!worker->stop) {
    pollfd pfd{stream->socket(), static_cast<short>(POLLIN | (stream->wants_write() ? POLLOUT : 0)),
               0};
    ::poll(&pfd, 1, stream_poll_ms);
    while (!worker->stop) {
      auto ev = stream->poll();
      if (!ev)
        return lost(ev.error().message(), ev.error().code() == store::errc::io_error);
      if (!*ev)
        break;
      auto* x = std::get_if<pg::xlog_data>(&**ev);
      if (!x)
        continue;  // keepalives are answered by the stream itself
      auto msg = pg::decode(x->payload);
      if (!msg)
        return lost(msg.error().message());
      if (pg::kind_of(*msg) == pg::message_kind::message
          && !std::get<pg::logical_message>(*msg).transactional) {
        // A heartbeat (or another non-transactional message): nothing for
        // the view, but the slot may move past it.
        idle_end = std::max(idle_end, x->end.value);
        continue;
      }
      if (pg::kind_of(*msg) == pg::message_kind::begin) {
        echo = false;
      } else if (pg::kind_of(*msg) == pg::message_kind::origin) {
        echo = std::get<pg::origin_message>(*msg).name == own_origin;
        continue;
      }
      if (echo && pg::kind_of(*msg) != pg::message_kind::commit) {
        // The view holds these rows already; it learns only their keys.
        change_set scratch;
        if (auto st = conv.on_message(*msg, scratch); !st)
          return lost(st.message());
        for (auto& c : scratch.changes)
          if (c.op != store::change_op::truncate)
            cs->echoes.push_back(c.new_row ? shape.local.key_of(*c.new_row) : std::move(c.key));
        continue;
      }
      if (pg::kind_of(*msg) == pg::message_kind::commit) {
        auto end = std::get<pg::commit_message>(*msg).end_lsn;
        conv.committed(end);
        if (cs->changes.empty() && cs->echoes.empty()) {
          idle_end = end;
        } else {
          cs->position = end;
          last_sent = end;
          if (gate) {
            // The view opened a gate: apply here, then tell the view where
            // it stands. Durable as far as `buffered` promises, so the slot
            // may move past it without waiting for the view.
            std::string why;
            switch (apply_through(*ctx, *gate, *cs, why)) {
              case gate_outcome::applied: break;
              // The view let go of the stream: end it here, unconfirmed, so
              // its next subscription gets this transaction again.
              case gate_outcome::closed: return;
              case gate_outcome::failed: return lost(why);
            }
            worker->acked = std::max(worker->acked.load(), end);
            cs->changes.clear();
            cs->applied = true;
          }
          caf::anon_send(view, changes_atom::value, changes_ref{cs});
          cs = std::make_shared<change_set>();
          cs->table = shape.local.table;
        }
        continue;
      }
      if (auto st = conv.on_message(*msg, *cs); !st)
        return lost(st.message());
    }
    // Confirm only what the view made durable; transactions with nothing
    // for this view count once everything sent before them is durable.
    auto acked = worker->acked.load();
    conv.forget_durable(acked);
    auto target = acked >= last_sent ? std::max(acked, idle_end) : acked;
    if (target > stream->confirmed().value)
      if (auto st = stream->confirm(pg::lsn{target}); !st)
        return lost(st.message(), st.code() == store::errc::io_error);
  }
}

// CREATE PUBLICATION's privilege errors as sentences that say what to grant.
store::status publication_refused(pg_state& st, const store::status& s, const std::string& pub,
                                  const std::string& schema, const std::string& table) {
  const auto& msg = s.message();
  bool no_create = msg.find("permission denied for database") != std::string::npos;
  bool not_owner = msg.find("must be owner of") != std::string::npos;
  if (!no_create && !not_owner)
    return s;
  std::string user = "the role", database = "the database";
  if (auto who = admin_query(st, "SELECT current_user::text, current_database()::text");
      who && !who->empty()) {
    user = *(*who)[0][0];
    database = *(*who)[0][1];
  }
  const std::string qualified = quote_ident(schema) + "." + quote_ident(table);
  if (no_create)
    return store::status::invalid_argument(
      "role " + user + " may not create publication " + pub + " on database " + database
      + " (it lacks CREATE on the database); GRANT CREATE ON DATABASE " + quote_ident(database)
      + " TO " + quote_ident(user) + ", or have a superuser run CREATE PUBLICATION "
      + quote_ident(pub) + " FOR TABLE " + qualified + " beforehand");
  return store::status::invalid_argument(
    "role " + user + " may not publish " + schema + "." + table + " in publication " + pub
    + " (only the table's owner may); ALTER TABLE " + qualified + " OWNER TO "
    + quote_ident(user) + ", or have the owner run CREATE PUBLICATION " + quote_ident(pub)
    + " FOR TABLE " + qualified + " beforehand");
}

const view_config* view_named(const pg_state& st, const std::string& view) {
  for (const auto& v : st.ctx->config.views)
    if (v.full_name() == view)
      return &v;
  return nullptr;
}

std::vector<pg::column_filter> filters_of(const view_config& vc) {
  std::vector<pg::column_filter> where;
  for (const auto& f : vc.filters) {
    pg::column_filter cf;
    cf.column = f.column;
    cf.values = f.values;
    cf.op = f.op == "<"    ? pg::filter_op::lt
            : f.op == "<=" ? pg::filter_op::le
            : f.op == ">"  ? pg::filter_op::gt
            : f.op == ">=" ? pg::filter_op::ge
            : f.op == "in" ? pg::filter_op::in
                           : pg::filter_op::eq;
    where.push_back(std::move(cf));
  }
  return where;
}

// An estimate of the rows a view's query returns, for progress: the
// planner's, from EXPLAIN (which runs nothing); 0 when it cannot be had. On
// its own short connection, as estimate_rows().
std::uint64_t estimate_query_rows(const std::string& conninfo, std::string query) {
  while (!query.empty() && (std::isspace(static_cast<unsigned char>(query.back())) || query.back() == ';'))
    query.pop_back();
  PGconn* conn = PQconnectdb(conninfo.c_str());
  double estimate = 0;
  if (PQstatus(conn) == CONNECTION_OK) {
    // One statement only (the extended protocol refuses more), whatever the
    // query text holds; EXPLAIN without ANALYZE runs nothing.
    PGresult* res = PQexecParams(conn, ("EXPLAIN (FORMAT JSON) " + query).c_str(), 0, nullptr,
                                 nullptr, nullptr, nullptr, 0);
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 && !PQgetisnull(res, 0, 0)) {
      auto plan = nlohmann::json::parse(PQgetvalue(res, 0, 0), nullptr, false);
      if (plan.is_array() && !plan.empty() && plan[0].contains("Plan")
          && plan[0]["Plan"].contains("Plan Rows") && plan[0]["Plan"]["Plan Rows"].is_number())
        estimate = plan[0]["Plan"]["Plan Rows"].get<double>();
    }
    PQclear(res);
  }
  PQfinish(conn);
  return static_cast<std::uint64_t>(estimate + 0.5);
}

// A view of a query: COPY (query) TO STDOUT in key order, keyed by the
// view's `key`, read in pieces like a table (next_piece()), so a large
// result is never held whole.
caf::result<snapshot_ref> take_query_snapshot(pg_actor* self, const view_config& vc, bool follow) {
  auto& st = self->state;
  const auto view = vc.full_name();
  if (follow)
    return make_error(errc::invalid_request,
                      "view " + view + " reads a query, and a query's result cannot be followed "
                                       "on the change stream; make it materialized");
  auto refused = [&](const store::status& s) -> caf::error {
    if (s.code() == store::errc::invalid_argument)
      return make_error(errc::invalid_request, "view " + view + ": " + s.message());
    return remote_error(st, s);
  };
  st.snapshots.erase(view);  // an unfinished earlier snapshot of the view
  auto reader = pg::snapshot_reader::connect(st.conninfo);
  if (!reader)
    return remote_error(st, reader.error());
  auto info = (*reader)->describe_query(vc.query, vc.key);
  if (!info)
    return refused(info.error());
  if (auto s = (*reader)->copy_query(vc.query, *info); !s)
    return refused(s);
  auto snap = std::make_shared<snapshot>();
  snap->shape.table = view;
  for (const auto& c : info->columns)
    snap->shape.columns.push_back(column_for(c));
  for (const auto& k : info->primary_key) {
    auto idx = *snap->shape.column_index(k);
    snap->shape.columns[idx].nullable = false;
    snap->shape.primary_key.push_back(idx);
  }
  snap->rows_estimated = estimate_query_rows(st.conninfo, vc.query);
  snap->more = true;
  open_snapshot open;
  open.reader = std::move(reader).value();
  open.view = self->current_sender() ? caf::actor_cast<caf::actor_addr>(self->current_sender())
                                     : caf::actor_addr{};
  for (const auto& c : info->columns)
    open.oids.push_back(c.type_oid);
  open.encoder = std::make_unique<pg::copy_encoder>(snap->shape, open.oids);
  open.query = true;
  open.first = snap;
  st.snapshots[view] = std::move(open);
  return snapshot_ref{std::move(snap)};
}

// An estimate of the rows the snapshot's SELECT returns, for progress; 0
// when it cannot be had. Cheap: nothing is scanned. The table's live-tuple
// count from the statistics system (which, unlike the planner's page-based
// guess, does not count the dead rows of updates not yet vacuumed), scaled
// by the planner's selectivity of the view's filters; the planner's figure
// alone when there is no count. On its own short connection: an error here
// must not abort the snapshot's transaction.
std::uint64_t estimate_rows(const std::string& conninfo, const std::string& schema_name,
                            const std::string& table_name,
                            const std::vector<pg::column_filter>& where) {
  const auto table = quote_ident(schema_name) + "." + quote_ident(table_name);
  std::string filtered;
  for (std::size_t i = 0; i < where.size(); ++i) {
    const auto& f = where[i];
    if (f.values.empty())
      return 0;
    filtered += (i == 0 ? " WHERE " : " AND ") + quote_ident(f.column);
    switch (f.op) {
      case pg::filter_op::eq: filtered += " = "; break;
      case pg::filter_op::lt: filtered += " < "; break;
      case pg::filter_op::le: filtered += " <= "; break;
      case pg::filter_op::gt: filtered += " > "; break;
      case pg::filter_op::ge: filtered += " >= "; break;
      case pg::filter_op::in: filtered += " IN ("; break;
    }
    for (std::size_t k = 0; k < f.values.size(); ++k)
      filtered += (k == 0 ? "" : ", ") + quote_literal(f.values[k]);
    if (f.op == pg::filter_op::in)
      filtered += ")";
  }
  PGconn* conn = PQconnectdb(conninfo.c_str());
  auto number = [&](const std::string& sql, bool explain) -> double {
    PGresult* res = PQexec(conn, sql.c_str());
    double out = -1;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1
        && !PQgetisnull(res, 0, 0)) {
      if (!explain) {
        out = std::strtod(PQgetvalue(res, 0, 0), nullptr);
      } else {
        auto plan = nlohmann::json::parse(PQgetvalue(res, 0, 0), nullptr, false);
        if (plan.is_array() && !plan.empty() && plan[0].contains("Plan")
            && plan[0]["Plan"].contains("Plan Rows") && plan[0]["Plan"]["Plan Rows"].is_number())
          out = plan[0]["Plan"]["Plan Rows"].get<double>();
      }
    }
    PQclear(res);
    return out;
  };
  double estimate = 0;
  if (PQstatus(conn) == CONNECTION_OK) {
    auto live = number("SELECT n_live_tup FROM pg_stat_all_tables WHERE relid = "
                         + quote_literal(table) + "::regclass",
                       false);
    auto all = number("EXPLAIN (FORMAT JSON) SELECT 1 FROM " + table, true);
    auto some = filtered.empty() ? all
                                 : number("EXPLAIN (FORMAT JSON) SELECT 1 FROM " + table + filtered,
                                          true);
    if (live > 0 && all > 0 && some >= 0)
      estimate = live * std::min(1.0, some / all);
    else if (some > 0)
      estimate = some;
  }
  PQfinish(conn);
  return static_cast<std::uint64_t>(estimate + 0.5);
}

// Opens a snapshot of `source` for `view`: the slot (when the view will
// follow), the COPY, the shape and an estimate. Answers with the first
// piece's header; the rows follow through next_piece().
caf::result<snapshot_ref> take_snapshot(pg_actor* self, const std::string& source,
                                        const std::string& view, bool follow) {
  auto& st = self->state;
  const view_config* vc = nullptr;
  for (const auto& v : st.ctx->config.views)
    if (v.full_name() == view)
      vc = &v;
  if (!vc)
    return make_error(errc::invalid_request, "no view '" + view + "' reads remote '"
                                               + st.cfg.name + "'");
  if (!vc->query.empty())
    return take_query_snapshot(self, *vc, follow);
  auto [schema_name, table_name] = split_source(source);
  st.snapshots.erase(view);  // an unfinished earlier snapshot of the view
  auto reader = pg::snapshot_reader::connect(st.conninfo);
  if (!reader)
    return remote_error(st, reader.error());
  held_slot held;
  if (follow) {
    held.slot = replication_name(st.ctx->config.node_id, view);
    held.publication = held.slot;
    auto stream = pg::replication_stream::connect(st.conninfo);
    if (!stream)
      return remote_error(st, stream.error());
    held.stream = std::move(stream).value();
    // A new snapshot needs a new slot: the old one's position belongs to
    // the copy this one replaces. The view ended its stream before asking;
    // WAIT lets that stream's walsender finish letting go of the slot.
    auto exists = held.stream->slot_exists(held.slot);
    if (!exists)
      return remote_error(st, exists.error());
    if (*exists) {
      // PostgreSQL ends a slot's walsender before it marks the slot lost, so
      // a stream can end without its slot looking invalidated yet: the
      // next snapshot is where the view learns it.
      if (auto health = slot_health(st, {held.slot});
          health && health->count(held.slot) && (*health)[held.slot]["wal_status"] == "lost")
        if (auto v = caf::actor_cast<caf::actor>(self->current_sender()))
          self->send(v, slot_atom::value, (*health)[held.slot].dump());
      if (auto s = held.stream->drop_slot(held.slot, true); !s)
        return remote_error(st, s);
    }
    auto pub = exec_sql(st.conninfo,
                        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = "
                          + quote_literal(held.publication) + ") THEN CREATE PUBLICATION "
                          + quote_ident(held.publication) + " FOR TABLE "
                          + quote_ident(schema_name) + "." + quote_ident(table_name)
                          + "; END IF; END $$");
    if (!pub)
      return remote_error(st, publication_refused(st, pub, held.publication, schema_name,
                                                  table_name));
  }
  auto slot = follow ? held.stream->create_slot(held.slot, st.cfg.temporary_slots)
                     : store::result<pg::slot_info>(pg::slot_info{});
  if (!slot)
    return remote_error(st, slot.error());
  // A followed view reads inside the slot's exported snapshot; a single COPY
  // of a materialized view is consistent on its own.
  if (follow)
    if (auto s = (*reader)->begin(slot->snapshot_name); !s)
      return remote_error(st, s);
  auto info = (*reader)->describe(schema_name, table_name);
  if (!info)
    return remote_error(st, info.error());
  auto where = filters_of(*vc);
  // A followed view keeps applying its filters to the stream; what the
  // stream cannot evaluate is refused before anything is copied.
  pg::row_filter stream_filter;
  if (follow) {
    auto compiled = pg::row_filter::compile(where, *info);
    if (!compiled)
      return make_error(errc::invalid_request, "view " + view + ": " + compiled.error().message());
    stream_filter = std::move(compiled).value();
  }
  if (auto s = (*reader)->copy(*info, vc->columns, where); !s)
    return remote_error(st, s);

  auto snap = std::make_shared<snapshot>();
  stream_shape shape;
  shape.relation_oid = info->oid;
  shape.filter = std::move(stream_filter);
  shape.schema_name = schema_name;
  shape.table_name = table_name;
  snap->shape.table = source;
  std::vector<const pg::column_info*> selected;
  for (const auto& c : info->columns)
    if (vc->columns.empty()
        || std::find(vc->columns.begin(), vc->columns.end(), c.name) != vc->columns.end())
      selected.push_back(&c);
  for (const auto* c : selected) {
    snap->shape.columns.push_back(column_for(*c));
    shape.oids.push_back(c->type_oid);
  }
  for (const auto& k : info->primary_key) {
    auto idx = snap->shape.column_index(k);
    if (!idx)
      return make_error(errc::invalid_request,
                        "view " + view + " leaves out key column '" + k + "' of " + source
                          + "; add it to 'columns'");
    snap->shape.columns[*idx].nullable = false;
    snap->shape.primary_key.push_back(*idx);
  }
  snap->position = follow ? slot->consistent_point.value : 0;
  snap->rows_estimated = estimate_rows(st.conninfo, schema_name, table_name, where);
  snap->more = true;
  open_snapshot open;
  open.reader = std::move(reader).value();
  open.follow = follow;
  open.view = self->current_sender() ? caf::actor_cast<caf::actor_addr>(self->current_sender())
                                     : caf::actor_addr{};
  open.oids = shape.oids;
  {
    auto local = snap->shape;
    local.table = view;
    open.encoder = std::make_unique<pg::copy_encoder>(std::move(local), open.oids);
  }
  if (follow) {
    shape.local = snap->shape;
    shape.local.table = view;
    held.shape = std::move(shape);
    open.held = std::move(held);
  }
  open.first = snap;
  st.snapshots[view] = std::move(open);
  return snapshot_ref{std::move(snap)};
}

// The next piece of the open snapshot of `view`: up to snapshot_batch_rows
// rows (and snapshot_batch_bytes of COPY text), converted; `more` unset once
// the COPY is done, when a following view's slot is handed to it.
store::result<std::shared_ptr<snapshot>> read_piece(pg_actor* self, const std::string& view) {
  auto& st = self->state;
  auto it = st.snapshots.find(view);
  if (it == st.snapshots.end())
    return store::status::not_found("no snapshot of view " + view + " is being read from remote '"
                                    + st.cfg.name + "' (it failed or was replaced); take a "
                                    "new snapshot");
  auto& open = it->second;
  auto piece = std::make_shared<snapshot>(*open.first);  // the header; rows are empty
  auto& encoder = *open.encoder;
  auto chunk = open.reader->next_lines(st.cfg.snapshot_batch_rows, st.cfg.snapshot_batch_bytes,
                                       [&encoder](std::string_view line) {
                                         return encoder.add_line(line);
                                       });
  if (!chunk) {
    auto error = chunk.error();
    if (open.query && error.code() == store::errc::invalid_argument)
      error = store::status::invalid_argument("view " + view + ": " + error.message());
    st.snapshots.erase(it);
    return error;
  }
  if (!*chunk) {
    (void) open.reader->commit();
    piece->more = false;
    if (open.follow)
      st.held[open.view] = std::move(open.held);
    st.snapshots.erase(it);
    return piece;
  }
  piece->encoded = encoder.rows().take();
  if (open.query) {
    std::optional<std::string> repeated;
    piece->encoded->for_each([&](std::string_view key, std::string_view) {
      if (!repeated && key == open.last_key)
        repeated = std::string(key);
      open.last_key.assign(key);
    });
    if (repeated) {
      auto key = store::decode_key(*repeated);
      st.snapshots.erase(it);
      return store::status::invalid_argument(
        "view " + view + ": the query returned two rows with key "
        + (key ? store::to_display(*key) : store::to_hex(*repeated))
        + "; name key columns that identify its rows, or make them unique in the query");
    }
  }
  piece->more = true;
  return piece;
}

caf::result<snapshot_ref> next_piece(pg_actor* self, const std::string& view) {
  auto& st = self->state;
  auto piece = read_piece(self, view);
  if (!piece)
    return piece.error().code() == store::errc::not_found
             ? make_error(errc::invalid_request, piece.error().message())
             : remote_error(st, piece.error());
  if (st.cfg.snapshot_delay_ms == 0)
    return snapshot_ref{std::move(piece).value()};
  auto rp = self->make_response_promise<snapshot_ref>();
  auto id = ++st.next_delayed;
  st.delayed.emplace(id, delayed_piece{rp, snapshot_ref{std::move(piece).value()}});
  self->delayed_send(self, std::chrono::milliseconds(st.cfg.snapshot_delay_ms),
                     deliver_atom::value, id);
  return rp;
}

// A replication connection on the existing slot of `view`, for a view whose
// local copy is durable at a position on that slot.
store::result<held_slot> resume_slot(pg_actor* self, const std::string& source,
                                     const std::string& view, bool& invalidated) {
  auto& st = self->state;
  held_slot held;
  held.slot = replication_name(st.ctx->config.node_id, view);
  held.publication = held.slot;
  auto local = st.ctx->db->table(view);
  if (!local || !*local)
    return store::status::not_found("view " + view + " has no local copy to resume");
  auto stream = pg::replication_stream::connect(st.conninfo);
  if (!stream)
    return stream.error();
  auto exists = (*stream)->slot_exists(held.slot);
  if (!exists)
    return exists.error();
  if (!*exists)
    return store::status::not_found("slot " + held.slot + " is gone; a new snapshot is needed");
  if (auto health = slot_health(st, {held.slot});
      health && health->count(held.slot) && (*health)[held.slot]["wal_status"] == "lost") {
    invalidated = true;
    return store::status::not_found(invalidated_sentence(held.slot, view));
  }
  held.stream = std::move(stream).value();
  auto [schema_name, table_name] = split_source(source);
  held.shape.local = **local;
  held.shape.schema_name = schema_name;
  held.shape.table_name = table_name;
  if (const auto* vc = view_named(st, view); vc && !vc->filters.empty()) {
    // The filters' column types (and collations) come from the catalog.
    auto reader = pg::snapshot_reader::connect(st.conninfo);
    if (!reader)
      return reader.error();
    auto info = (*reader)->describe(schema_name, table_name);
    if (!info)
      return info.error();
    auto compiled = pg::row_filter::compile(filters_of(*vc), *info);
    if (!compiled)
      return compiled.error();
    held.shape.filter = std::move(compiled).value();
  }
  return held;
}

// --- push: a sync view's local writes, applied upstream -------------------

/// One statement's result on the push connection.
struct sql_result {
  bool ok = false;
  bool lost = false;  // the connection is gone: nothing more is known
  std::string error;  // PostgreSQL's message when !ok
  int affected = 0;   // rows an INSERT/UPDATE/DELETE touched
  text_rows rows;
};

sql_result push_result(PGconn* conn, const pg_result_ptr& res);

sql_result run_push_sql(PGconn* conn, const std::string& sql,
                        const std::vector<std::optional<std::string>>& params = {}) {
  std::vector<const char*> values;
  for (const auto& p : params)
    values.push_back(p ? p->c_str() : nullptr);
  pg_result_ptr res(PQexecParams(conn, sql.c_str(), static_cast<int>(values.size()), nullptr,
                                 values.data(), nullptr, nullptr, 0));
  return push_result(conn, res);
}

// Statements without parameters, several in one round trip (`;`-separated,
// in the simple query protocol): the result is the last one's, or the first
// error's (PostgreSQL runs none after it).
sql_result run_push_script(PGconn* conn, const std::string& sql) {
  return push_result(conn, pg_result_ptr(PQexec(conn, sql.c_str())));
}

sql_result push_result(PGconn* conn, const pg_result_ptr& res) {
  sql_result out;
  auto code = PQresultStatus(res.get());
  if (code != PGRES_COMMAND_OK && code != PGRES_TUPLES_OK) {
    out.error = res ? PQresultErrorMessage(res.get()) : PQerrorMessage(conn);
    while (!out.error.empty() && (out.error.back() == '\n' || out.error.back() == ' '))
      out.error.pop_back();
    out.lost = PQstatus(conn) != CONNECTION_OK;
    return out;
  }
  out.ok = true;
  const char* n = PQcmdTuples(res.get());
  out.affected = n && *n ? std::atoi(n) : 0;
  for (int r = 0; r < PQntuples(res.get()); ++r) {
    out.rows.emplace_back();
    for (int c = 0; c < PQnfields(res.get()); ++c)
      out.rows.back().push_back(PQgetisnull(res.get(), r, c)
                                  ? std::nullopt
                                  : std::optional<std::string>(PQgetvalue(res.get(), r, c)));
  }
  return out;
}

// COPY ... FROM STDIN on the push connection, with the data `next_piece`
// makes, a piece at a time (it returns false when there is no more):
// PostgreSQL copies each piece while the next is made. `affected` is the
// rows it wrote.
template <class NextPiece>
sql_result run_push_copy(PGconn* conn, const std::string& sql, NextPiece next_piece) {
  sql_result out;
  auto finish = [&](pg_result_ptr res) {
    auto code = PQresultStatus(res.get());
    if (code != PGRES_COMMAND_OK) {
      out.error = res ? PQresultErrorMessage(res.get()) : PQerrorMessage(conn);
      while (!out.error.empty() && (out.error.back() == '\n' || out.error.back() == ' '))
        out.error.pop_back();
      out.lost = PQstatus(conn) != CONNECTION_OK;
    } else {
      out.ok = true;
      const char* n = PQcmdTuples(res.get());
      out.affected = n && *n ? std::atoi(n) : 0;
    }
    while (pg_result_ptr more{PQgetResult(conn)})
      ;  // drain: the connection is ready for the next command
    return out;
  };
  pg_result_ptr res(PQexec(conn, sql.c_str()));
  if (PQresultStatus(res.get()) != PGRES_COPY_IN)
    return finish(std::move(res));
  res.reset();
  const char* error = nullptr;
  std::string piece;
  while (next_piece(piece)) {
    if (piece.empty())
      continue;
    if (PQputCopyData(conn, piece.data(), static_cast<int>(piece.size())) != 1) {
      error = "the COPY's data could not be sent";
      break;
    }
  }
  if (PQputCopyEnd(conn, error) != 1) {
    // The COPY may still be open on the server, with results to come: the
    // connection is in no state for the next command, so it counts as lost
    // (the caller replaces it; the transaction dies with it).
    out.error = PQerrorMessage(conn);
    out.lost = true;
    return out;
  }
  return finish(pg_result_ptr(PQgetResult(conn)));
}

sql_result run_push_sql(PGconn* conn, const pg::statement& s) {
  return run_push_sql(conn, s.sql, s.params);
}

// The origin functions are superuser-only unless granted: say what to grant.
store::status origin_refused(pg_state& st, const std::string& origin, const std::string& msg) {
  if (msg.find("permission denied") == std::string::npos)
    return store::status::invalid_argument("could not set up replication origin " + origin
                                           + ": " + msg);
  std::string user = "the role";
  if (auto who = admin_query(st, "SELECT current_user::text"); who && !who->empty())
    user = *(*who)[0][0];
  return store::status::invalid_argument(
    "role " + user + " may not use replication origins, which a sync view's pushes run under "
    "so that its change stream can drop their echoes (" + msg + "); have a superuser run GRANT "
    "EXECUTE ON FUNCTION pg_catalog.pg_replication_origin_oid(text), "
    "pg_catalog.pg_replication_origin_create(text), "
    "pg_catalog.pg_replication_origin_session_setup(text), "
    "pg_catalog.pg_replication_origin_session_reset() TO " + quote_ident(user));
}

// The push connection, with syncmesh.pushes and the view's origin set up.
store::status push_session(pg_state& st, const std::string& origin) {
  if (!st.push_conn || PQstatus(st.push_conn.get()) != CONNECTION_OK) {
    // UTF8 whatever the conninfo says: the rows and the quoted names sent
    // are UTF-8 (escape_literal escapes bytes, which is safe in UTF-8).
    const char* keywords[] = {"connect_timeout", "dbname", "client_encoding", nullptr};
    const char* values[] = {"5", st.conninfo.c_str(), "UTF8", nullptr};
    st.push_conn.reset(PQconnectdbParams(keywords, values, 1));
    st.push_origin.clear();
    if (PQstatus(st.push_conn.get()) != CONNECTION_OK) {
      std::string msg = PQerrorMessage(st.push_conn.get());
      st.push_conn.reset();
      return store::status::io_error("cannot connect to PostgreSQL: " + msg);
    }
    // IF NOT EXISTS notices are expected; libpq would print them to stderr.
    PQsetNoticeProcessor(st.push_conn.get(), [](void*, const char*) {}, nullptr);
  }
  auto* conn = st.push_conn.get();
  auto failed = [&](const sql_result& r, const std::string& what) {
    if (r.lost) {
      st.push_conn.reset();
      return store::status::io_error("lost the connection to PostgreSQL: " + r.error);
    }
    return store::status::invalid_argument(what + ": " + r.error);
  };
  if (!st.pushes_ready) {
    // Made by another role, it needs only USAGE, SELECT and INSERT here.
    auto exists = run_push_sql(conn, "SELECT pg_catalog.to_regclass('syncmesh.pushes') IS NOT NULL");
    if (!exists.ok)
      return failed(exists, "could not look for syncmesh.pushes");
    if (exists.rows.empty() || !exists.rows[0][0] || *exists.rows[0][0] != "t")
      for (const auto& sql : pg::create_pushes_sql())
        if (auto r = run_push_sql(conn, sql); !r.ok)
          return failed(r, "could not create the bookkeeping table syncmesh.pushes, which "
                           "records every pushed write; grant the role CREATE on the database, "
                           "or create it as the README shows and grant the role USAGE on schema "
                           "syncmesh and SELECT, INSERT on syncmesh.pushes");
    st.pushes_ready = true;
  }
  if (st.push_origin == origin)
    return store::status::ok();
  if (!st.push_origin.empty()) {
    auto r = run_push_sql(conn, "SELECT pg_catalog.pg_replication_origin_session_reset()");
    if (!r.ok)
      return r.lost ? failed(r, "") : origin_refused(st, origin, r.error);
    st.push_origin.clear();
  }
  auto r = run_push_sql(conn,
                        "SELECT pg_catalog.pg_replication_origin_create($1) WHERE "
                        "pg_catalog.pg_replication_origin_oid($1) IS NULL",
                        {origin});
  if (r.ok)
    r = run_push_sql(conn, "SELECT pg_catalog.pg_replication_origin_session_setup($1)", {origin});
  if (!r.ok)
    return r.lost ? failed(r, "") : origin_refused(st, origin, r.error);
  st.push_origin = origin;
  return store::status::ok();
}

// How `view`'s local columns map onto its source table (read once).
store::result<const pg::push_table*> push_table_of(pg_state& st, const view_config& vc) {
  const auto view = vc.full_name();
  auto local = st.ctx->db->table(view);
  if (!local)
    return local.error();
  if (!*local)
    return store::status::not_found("view " + view + " has no local table yet; sync it first");
  // A new snapshot may have changed the local columns (a column added
  // upstream, then the view synced afresh): a map made for the old ones
  // would leave the new columns out of every push.
  if (auto it = st.push_tables.find(view); it != st.push_tables.end()) {
    const auto& cached = it->second.columns;
    const auto& now = (*local)->columns;
    bool same = cached.size() == now.size();
    for (std::size_t i = 0; same && i < now.size(); ++i)
      same = cached[i].name == now[i].name;
    if (same)
      return &it->second;
    st.push_tables.erase(it);
  }
  auto [schema_name, table_name] = split_source(vc.source);
  auto reader = pg::snapshot_reader::connect(st.conninfo);
  if (!reader)
    return reader.error();
  auto info = (*reader)->describe(schema_name, table_name);
  if (!info)
    return info.error();
  pg::push_table t;
  t.schema = info->schema;
  t.name = info->name;
  for (const auto& col : (*local)->columns) {
    const auto* c = info->find(col.name);
    if (!c)
      return store::status::invalid_argument("view " + view + " has column '" + col.name + "', which "
                                             + vc.source + " no longer has; sync the view again");
    t.columns.push_back(*c);
  }
  for (auto k : (*local)->primary_key)
    t.key.push_back(k);
  if (!vc.version_column.empty()) {
    auto idx = (*local)->column_index(vc.version_column);
    if (!idx)
      return store::status::invalid_argument(
        "view " + view + " names version_column '" + vc.version_column
        + "', which it does not hold; name one of its columns, or leave it out to compare "
          "whole rows");
    t.version_column = *idx;
  }
  if (!vc.lww_column.empty() && !(*local)->column_index(vc.lww_column))
    return store::status::invalid_argument("view " + view + " names lww_column '" + vc.lww_column
                                           + "', which it does not hold; name one of its "
                                             "timestamp columns");
  // Not known (no answer): taken as having rules, so inserts go as INSERT.
  if (st.push_conn) {
    auto rules = run_push_sql(st.push_conn.get(),
                              "SELECT c.relhasrules FROM pg_catalog.pg_class c JOIN "
                              "pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                              "WHERE n.nspname = $1 AND c.relname = $2",
                              {t.schema, t.name});
    t.has_rules = !rules.ok || rules.rows.empty() || !rules.rows[0][0] || *rules.rows[0][0] != "f";
  }
  return &st.push_tables.emplace(view, std::move(t)).first->second;
}

// A row read with select_row() as local values.
store::result<store::row> local_row_of(const pg::push_table& t, const store::schema& shape,
                                       const std::vector<std::optional<std::string>>& text) {
  store::row out;
  pg::type_names names;
  for (std::size_t i = 0; i < t.columns.size() && i < text.size(); ++i) {
    if (!text[i]) {
      out.push_back(store::value::null());
      continue;
    }
    auto v = value_for(shape.columns[i], t.columns[i].type_oid, *text[i], names);
    if (!v)
      return v.error();
    out.push_back(std::move(v).value());
  }
  return out;
}

// What a view's custom resolver decides about a conflict: "local",
// "remote" or "merged" (with the row; nullopt: delete), or `error` when it
// could not be asked or answered nonsense. The connector is detached (its
// own thread) and inside the push's transaction: it waits for the answer.
struct resolution {
  std::string winner;
  std::optional<store::row> row;
  std::string error;
};

resolution ask_resolver(pg_actor* self, const view_config& vc, const store::schema& shape,
                        const store::row& key, const std::optional<store::row>& base,
                        const store::change& c, const push_outcome& o) {
  auto& st = self->state;
  auto& resolver = st.resolvers[vc.full_name()];
  if (!resolver)
    resolver = spawn_conflict_resolver(self->system(), vc.conflict_resolver);
  resolution out;
  if (!resolver) {
    out.error = "the conflict resolver '" + vc.conflict_resolver + "' is not registered";
    return out;
  }
  auto row_text = [&](const std::optional<store::row>& r) {
    return r ? row_to_json(shape, *r).dump() : std::string("null");
  };
  conflict_request req;
  req.view = vc.full_name();
  nlohmann::json k = nlohmann::json::object();
  for (std::size_t i = 0; i < shape.primary_key.size() && i < key.size(); ++i)
    k[shape.columns[shape.primary_key[i]].name] = to_json(key[i]);
  req.key = k.dump();
  req.base = row_text(base);
  req.local = c.op == store::change_op::remove ? "null" : row_text(c.new_row);
  req.remote = row_text(o.remote_row);
  caf::scoped_actor asker{self->system()};
  asker->request(resolver, std::chrono::seconds(5), resolve_atom::value, std::move(req))
    .receive(
      [&](const conflict_decision& d) {
        out.winner = d.winner;
        if (d.winner == "merged") {
          auto j = nlohmann::json::parse(d.row, nullptr, false);
          if (j.is_null())
            return;  // merged into a delete
          auto row = j.is_object() ? row_from_json(shape, j)
                                   : store::result<store::row>(store::status::invalid_argument(
                                     "a merged row must be a JSON object or null, not " + d.row));
          if (!row) {
            out.error = "the conflict resolver '" + vc.conflict_resolver
                        + "' merged into a row this view cannot hold: " + row.error().message();
            return;
          }
          // The key is the conflict's: a resolver does not move rows.
          for (auto i : shape.primary_key)
            (*row)[i] = c.new_row ? (*c.new_row)[i] : (*o.remote_row)[i];
          out.row = std::move(row).value();
        } else if (d.winner != "local" && d.winner != "remote") {
          out.error = "the conflict resolver '" + vc.conflict_resolver + "' answered winner '"
                      + d.winner + "'; it must be local, remote or merged";
        }
      },
      [&](const caf::error& e) {
        out.error = "the conflict resolver '" + vc.conflict_resolver + "' did not decide ("
                    + self->system().render(e) + ")";
      });
  return out;
}

// Test only: die in the window between the upstream commit and the local
// acknowledgement (remote_config::failpoint_push_committed). The draw
// depends on the seed and the batch, so a seed replays the kills.
void failpoint_push_committed(const pg_state& st, const change_set& cs) {
  if (st.cfg.failpoint_push_committed <= 0 || cs.mutation_ids.empty())
    return;
  std::mt19937_64 rng(st.ctx->config.seed ^ std::hash<std::string>{}(cs.mutation_ids.front()));
  if (std::uniform_real_distribution<double>(0, 1)(rng) < st.cfg.failpoint_push_committed)
    std::raise(SIGKILL);
}

// Applies `cs` (one sync view's queued writes) in one transaction under the
// view's replication origin, each once and against its base row.
caf::result<push_report_ref> push_writes(pg_actor* self, const std::string& source,
                                         const change_set& cs) {
  auto& st = self->state;
  const auto* vc = view_named(st, cs.view);
  if (!vc || vc->source != source)
    return make_error(errc::invalid_request, "remote '" + st.cfg.name + "' has no sync view '"
                                               + cs.view + "' of " + source);
  const auto origin = replication_name(st.ctx->config.node_id, cs.view);
  if (auto s = push_session(st, origin); !s)
    return remote_error(st, s);
  auto table = push_table_of(st, *vc);
  if (!table)
    return remote_error(st, table.error());
  const auto& t = **table;
  auto shape = st.ctx->db->table(cs.view);
  if (!shape || !*shape)
    return make_error(errc::invalid_request, "view " + cs.view + " has no local table");
  auto* conn = st.push_conn.get();
  auto report = std::make_shared<push_report>();
  report->echoes = true;
  report->outcomes.resize(cs.changes.size());  // pending: not tried
  // Nothing is known when the connection goes or the commit fails: the
  // view pushes the same writes again, and the mutation ids keep them once.
  auto lost = [&](const sql_result& r) -> caf::error {
    if (r.lost)
      st.push_conn.reset();
    else
      (void) run_push_sql(conn, "ROLLBACK");
    return remote_error(st, r.lost ? store::status::io_error("lost the connection to PostgreSQL "
                                                             "while pushing: " + r.error)
                                   : store::status::invalid_argument("the push failed: " + r.error));
  };
  // A batch the view should never have sent: nothing of its transaction
  // may stay open on the shared connection (a later COMMIT would keep
  // writes whose seqs were not recorded).
  auto refuse = [&](const std::string& why) -> caf::error {
    (void) run_push_sql(conn, "ROLLBACK");
    return make_error(errc::invalid_request, why);
  };
  auto read_remote = [&](const store::row& key, push_outcome& o) -> std::optional<sql_result> {
    auto r = run_push_sql(conn, pg::select_row(t, key));
    if (!r.ok)
      return r;
    o.remote_known = true;
    if (!r.rows.empty()) {
      auto row = local_row_of(t, **shape, r.rows[0]);
      if (row)
        o.remote_row = std::move(row).value();
      else
        o.remote_known = false;
    }
    return std::nullopt;
  };
  // What PostgreSQL took of this batch before: the node died, or the
  // answer was lost, between its COMMIT and the view's settling. Those
  // writes are reported applied and not written again.
  const pg::pusher who{st.ctx->config.node_id, st.ctx->db->incarnation(), cs.view};
  std::vector<pg::seq_run> before;
  bool seen_before = false;
  if (cs.outbox_seqs.empty()) {
    if (auto r = run_push_sql(conn, "BEGIN"); !r.ok)
      return lost(r);
  } else {
    auto [lo, hi] = std::minmax_element(cs.outbox_seqs.begin(), cs.outbox_seqs.end());
    auto r = run_push_script(conn, "BEGIN; " + pg::recorded_pushes(who, *lo, *hi));
    if (!r.ok)
      return lost(r);
    for (const auto& row : r.rows)
      if (row.size() == 2 && row[0] && row[1])
        before.push_back({std::stoull(*row[0]), std::stoull(*row[1])});
    for (auto seq : cs.outbox_seqs)
      seen_before = seen_before || pg::covered(before, seq);
  }
  // The fast path: every write new and none in conflict, the batch goes as
  // one statement per kind of write. Anything else — a write taken before,
  // a conflict, an error — rolls it back, and the batch goes one write at a
  // time below, which sorts out each case.
  std::vector<std::optional<store::row>> bases(cs.changes.size());
  std::vector<pg::bulk_write> bulk;
  for (std::size_t i = 0; i < cs.changes.size(); ++i) {
    const auto& c = cs.changes[i];
    if (!cs.base_versions[i].empty())
      if (auto b = store::decode_row(cs.base_versions[i], "base of " + cs.mutation_ids[i]); b)
        bases[i] = std::move(b).value();
    pg::bulk_write w;
    w.remove = c.op == store::change_op::remove;
    w.row = c.new_row ? &*c.new_row : nullptr;
    w.base = bases[i] ? &*bases[i] : nullptr;
    bulk.push_back(w);
  }
  std::vector<store::row> bulk_keys(cs.changes.size());
  for (std::size_t i = 0; i < cs.changes.size(); ++i) {
    const auto& c = cs.changes[i];
    bulk_keys[i] = c.new_row ? (**shape).key_of(*c.new_row) : c.key;
    bulk[i].key = &bulk_keys[i];
  }
  // A batch of only inserts is one COPY; the unnest() statements (whose
  // text arrays cost as much to build) are made only for other batches.
  const bool may_bulk = !seen_before && cs.changes.size() > 1;
  const bool copied = !t.has_rules && may_bulk && pg::copyable_inserts(bulk, cs.distinct_keys);
  if (auto plan = may_bulk && !copied ? pg::bulk_statements(t, bulk)
                                      : std::vector<pg::bulk_statement>{};
      copied || !plan.empty()) {
    // COPY, not INSERT: for a batch of only inserts, a key that exists
    // upstream fails it — and the batch goes one at a time, as a short
    // count would send it.
    bool fits = true;
    if (copied) {
      // Sent as made, in pieces of copy_piece_rows.
      constexpr std::size_t copy_piece_rows = 256;
      std::size_t at = 0;
      auto r = run_push_copy(conn, pg::copy_inserts_sql(t), [&](std::string& piece) {
        if (at >= bulk.size())
          return false;
        piece.clear();
        auto to = std::min(bulk.size(), at + copy_piece_rows);
        pg::append_copy_rows(t, bulk, at, to, piece);
        at = to;
        return true;
      });
      if (r.lost)
        return lost(r);
      fits = r.ok && r.affected == static_cast<int>(bulk.size());
    }
    for (std::size_t k = 0; fits && !copied && k < plan.size(); ++k) {
      auto r = run_push_sql(conn, plan[k].stmt);
      if (r.lost)
        return lost(r);
      fits = r.ok && r.affected == static_cast<int>(plan[k].expect);
    }
    if (fits) {
      // The bookkeeping and the COMMIT in one round trip.
      auto runs = pg::runs_of(cs.outbox_seqs);
      if (auto r = run_push_script(conn, pg::record_pushes(runs, who) + "; COMMIT"); !r.ok)
        return lost(r);
      for (auto& o : report->outcomes) {
        o.state = store::outbox_state::applied;
        o.written = true;
      }
      st.bulk_pushes += 1;
      failpoint_push_committed(st, cs);
      return push_report_ref{std::move(report)};
    }
    if (auto r = run_push_sql(conn, "ROLLBACK"); !r.ok)
      return lost(r);
    if (auto r = run_push_sql(conn, "BEGIN"); !r.ok)
      return lost(r);
  }
  bool wrote_new = false;
  std::vector<std::uint64_t> kept;  // seqs of the writes this transaction keeps
  for (std::size_t i = 0; i < cs.changes.size(); ++i) {
    const auto& c = cs.changes[i];
    auto& o = report->outcomes[i];
    const auto seq = i < cs.outbox_seqs.size() ? cs.outbox_seqs[i] : 0;
    if (pg::covered(before, seq)) {
      // Applied before: the acknowledgement was lost (a crash, a timeout).
      o.state = store::outbox_state::applied;
      o.duplicate = true;
      continue;
    }
    std::optional<store::row> base;
    if (!cs.base_versions[i].empty()) {
      auto b = store::decode_row(cs.base_versions[i], "base of " + cs.mutation_ids[i]);
      if (!b)
        return refuse(b.error().message());
      base = std::move(b).value();
    }
    if (auto r = run_push_sql(conn, "SAVEPOINT syncmesh_write"); !r.ok)
      return lost(r);
    const bool remove = c.op == store::change_op::remove;
    if (!remove && !c.new_row)
      return refuse("a pushed upsert carries no row");
    auto stmt = remove ? pg::delete_from(t, c.key, base ? &*base : nullptr)
                : base ? pg::update_from(t, *c.new_row, &*base)
                       : pg::insert_new(t, *c.new_row);
    auto w = run_push_sql(conn, stmt);
    auto undo = [&]() { return run_push_sql(conn, "ROLLBACK TO SAVEPOINT syncmesh_write"); };
    if (!w.ok && w.lost)
      return lost(w);
    if (!w.ok) {
      // The remote refused the write (a constraint, a type): it ends failed
      // with PostgreSQL's words, and the remote's row is what the view keeps.
      if (auto r = undo(); !r.ok)
        return lost(r);
      o.error = "PostgreSQL refused the write: " + w.error;
      if (auto r = read_remote(c.key.empty() && c.new_row ? (**shape).key_of(*c.new_row) : c.key, o))
        return lost(*r);
      if (vc->on_error == "block") {
        o.state = store::outbox_state::pending;
        o.remote_known = false;
        break;  // the writes behind it wait too
      }
      o.state = store::outbox_state::failed;
      continue;
    }
    if (w.affected > 0) {
      o.state = store::outbox_state::applied;
      o.written = true;
      wrote_new = true;
      kept.push_back(seq);
      continue;
    }
    // No row matched: someone else changed the row since the write's base.
    o.state = store::outbox_state::conflicted;
    const auto key = remove ? c.key : (**shape).key_of(*c.new_row);
    if (auto r = read_remote(key, o))
      return lost(*r);
    bool local_wins = vc->conflict == "local-wins";
    if (vc->conflict == "lww" && !remove && o.remote_row) {
      auto idx = *(**shape).column_index(vc->lww_column);
      auto remote_text = pg::text_for((*o.remote_row)[idx]);
      auto newer = run_push_sql(conn, pg::newer_than(t, idx, (*c.new_row)[idx], remote_text));
      if (!newer.ok)
        return lost(newer);
      local_wins = !newer.rows.empty() && newer.rows[0][0] && *newer.rows[0][0] == "t";
    }
    // conflict = "custom": the view's resolver decides; if it cannot, the
    // upstream row stands and the record says why.
    bool merged = false;
    if (vc->conflict == "custom") {
      auto d = ask_resolver(self, *vc, **shape, key, base, c, o);
      if (!d.error.empty()) {
        o.error = d.error + "; the upstream row stands";
        local_wins = false;
      } else {
        local_wins = d.winner != "remote";
        merged = d.winner == "merged";
        o.merged_row = std::move(d.row);
      }
    }
    if (!local_wins) {
      o.winner = "remote";
      if (auto r = undo(); !r.ok)  // nothing was written
        return lost(r);
      continue;
    }
    auto forced = merged ? (o.merged_row ? pg::update_from(t, *o.merged_row, nullptr)
                                         : pg::delete_from(t, key, nullptr))
                  : remove ? pg::delete_from(t, key, nullptr)
                           : pg::update_from(t, *c.new_row, nullptr);
    auto f = run_push_sql(conn, forced);
    if (!f.ok && f.lost)
      return lost(f);
    if (!f.ok) {
      if (auto r = undo(); !r.ok)
        return lost(r);
      o.state = store::outbox_state::failed;
      o.error = "PostgreSQL refused the write that won a conflict: " + f.error;
      continue;
    }
    o.winner = merged ? "merged" : "local";
    o.written = f.affected > 0;
    wrote_new = wrote_new || o.written;
    kept.push_back(seq);
  }
  const auto record = kept.empty() ? std::string{}
                                   : pg::record_pushes(pg::runs_of(kept), who) + "; ";
  if (auto r = run_push_script(conn, record + "COMMIT"); !r.ok)
    return lost(r);
  if (wrote_new)
    failpoint_push_committed(st, cs);
  return push_report_ref{std::move(report)};
}

caf::behavior postgres_connector_impl(pg_actor* self, node_context_ptr ctx, remote_config cfg) {
  auto& st = self->state;
  st.ctx = ctx;
  st.cfg = cfg;
  st.conninfo = with_password(cfg);
  if (cfg.heartbeat_ms > 0)
    self->delayed_send(self, std::chrono::milliseconds(cfg.heartbeat_ms), heartbeat_atom::value);
  return {
    [self](snapshot_atom, const std::string& source, const std::string& view,
           bool follow) -> caf::result<snapshot_ref> {
      return take_snapshot(self, source, view, follow);
    },
    [self](snapshot_next_atom, const std::string& view) -> caf::result<snapshot_ref> {
      return next_piece(self, view);
    },
    [self](snapshot_cancel_atom, const std::string& view) {
      self->state.snapshots.erase(view);
    },
    [self](deliver_atom, std::uint64_t id) {
      auto it = self->state.delayed.find(id);
      if (it == self->state.delayed.end())
        return;
      it->second.rp.deliver(it->second.piece);
      self->state.delayed.erase(it);
    },
    [self](subscribe_atom, const std::string& source, const std::string& view_name,
           const caf::actor& view, std::uint64_t from,
           const stream_gate_ref& gate) -> caf::result<std::uint64_t> {
      auto& st = self->state;
      held_slot held;
      if (auto it = st.held.find(view.address()); it != st.held.end() && it->second.stream) {
        held = std::move(it->second);
        st.held.erase(it);
      } else {
        // Resuming after a restart: the slot and the local copy survived.
        bool invalidated = false;
        auto resumed = resume_slot(self, source, view_name, invalidated);
        if (!resumed)
          return invalidated ? make_error(errc::slot_invalidated, resumed.error().message())
                             : remote_error(st, resumed.error());
        held = std::move(resumed).value();
      }
      if (auto s = held.stream->start(held.slot, pg::lsn{from}, {held.publication}); !s) {
        if (s.message().find("was invalidated") != std::string::npos)
          return make_error(errc::slot_invalidated, invalidated_sentence(held.slot, view_name));
        return remote_error(st, s);
      }
      auto worker = std::make_unique<stream_worker>();
      worker->acked = from;
      worker->view = view.address();
      worker->slot = held.slot;
      auto* w = worker.get();
      st.workers[view_name] = nullptr;  // ends an older stream of this view first
      worker->thread = std::thread(run_stream, std::move(held.stream), std::move(held.shape),
                                   st.ctx, view, caf::actor{self}, w,
                                   replication_name(st.ctx->config.node_id, view_name),
                                   gate.ptr);
      st.workers[view_name] = std::move(worker);
      return from;
    },
    [self](unsubscribe_atom, const std::string&, const caf::actor& view) {
      auto& workers = self->state.workers;
      for (auto it = workers.begin(); it != workers.end();)
        it = it->second && it->second->view == view.address() ? workers.erase(it) : std::next(it);
    },
    [self](ack_atom, const std::string&, std::uint64_t position) {
      // From the view whose stream it was.
      auto from = caf::actor_cast<caf::actor_addr>(self->current_sender());
      for (auto& [view, w] : self->state.workers)
        if (w && w->view == from && position > w->acked.load())
          w->acked = position;
    },
    [self](stream_lost_atom, const caf::actor& view, const std::string& why, bool resumable) {
      auto& st = self->state;
      // A slot PostgreSQL invalidated ends its stream too: say that instead.
      for (const auto& [source, w] : st.workers)
        if (w && w->view == view.address())
          if (auto health = slot_health(st, {w->slot});
              health && health->count(w->slot) && (*health)[w->slot]["wal_status"] == "lost") {
            self->send(view, slot_atom::value, (*health)[w->slot].dump());  // the view's own
            return;
          }
      auto said = "the change stream of remote '" + st.cfg.name + "' was lost: " + why;
      if (resumable)
        self->send(view, down_atom::value, st.cfg.name, said);
      else
        self->send(view, stream_lost_atom::value, said);
    },
    [self](heartbeat_atom) {
      auto& st = self->state;
      self->delayed_send(self, std::chrono::milliseconds(st.cfg.heartbeat_ms),
                         heartbeat_atom::value);
      // Every view of this remote that follows a stream has a slot, whether
      // it streams now or not: a stopped view's slot holds WAL back too.
      std::map<std::string, std::string> slot_of;  // view -> slot
      for (const auto& v : st.ctx->config.views)
        if (v.remote == st.cfg.name && v.query.empty()
            && (v.persistence == "realtime" || v.persistence == "sync"))
          slot_of[v.full_name()] = replication_name(st.ctx->config.node_id, v.full_name());
      if (slot_of.empty())
        return;
      std::string heartbeat_error;
      bool streaming = false;
      for (const auto& [source, w] : st.workers)
        streaming = streaming || w != nullptr;
      // A non-transactional message is WAL of its own: the walsenders of
      // this database decode it, so every slot's confirmed LSN can move
      // past it even when the published tables are quiet. Without a stream
      // nothing would confirm it, so it is written only while one runs.
      if (streaming)
        if (auto hb = admin_query(st, "SELECT pg_catalog.pg_logical_emit_message(false, "
                                      "'syncmesh', '')");
            !hb)
          heartbeat_error = "the heartbeat failed: " + hb.error().message();
      std::vector<std::string> slots;
      for (const auto& [view, slot] : slot_of)
        slots.push_back(slot);
      auto health = slot_health(st, slots);
      for (const auto& [view, slot] : slot_of) {
        nlohmann::json report = {{"slot", slot}};
        if (!health)
          report["error"] = "cannot read pg_replication_slots: " + health.error().message();
        else if (auto it = health->find(slot); it != health->end())
          report = it->second;
        else
          report["wal_status"] = "missing";
        report["view"] = view;
        if (!heartbeat_error.empty())
          report["heartbeat_error"] = heartbeat_error;
        // The view that streams is known; the others are among the
        // watchers, and each view takes only the report naming it.
        caf::actor to;
        for (const auto& [source, w] : st.workers)
          if (w && w->slot == slot)
            to = caf::actor_cast<caf::actor>(w->view);
        if (to)
          self->send(to, slot_atom::value, report.dump());
        else
          for (const auto& watcher : st.watchers)
            self->send(watcher, slot_atom::value, report.dump());
      }
    },
    [self](forget_atom, const std::string&,
           const std::string& view_name) -> caf::result<std::string> {
      auto& st = self->state;
      const auto name = replication_name(st.ctx->config.node_id, view_name);
      // The stream and any held replication connection let go of the slot first.
      if (auto it = st.workers.find(view_name); it != st.workers.end() && it->second
                                                && it->second->slot == name)
        st.workers.erase(it);
      for (auto it = st.held.begin(); it != st.held.end();)
        it = it->second.slot == name ? st.held.erase(it) : std::next(it);
      nlohmann::json dropped = nlohmann::json::array();
      auto stream = pg::replication_stream::connect(st.conninfo);
      if (!stream)
        return remote_error(st, stream.error());
      auto exists = (*stream)->slot_exists(name);
      if (!exists)
        return remote_error(st, exists.error());
      if (*exists) {
        if (auto s = (*stream)->drop_slot(name, true); !s && s.code() != store::errc::not_found)
          return remote_error(st, s);
        dropped.push_back("replication slot " + name);
      }
      auto pub = admin_query(st, "SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = $1",
                             {name});
      if (!pub)
        return remote_error(st, pub.error());
      if (!pub->empty()) {
        if (auto d = admin_query(st, "DROP PUBLICATION IF EXISTS " + quote_ident(name)); !d)
          return remote_error(st, d.error());
        dropped.push_back("publication " + name);
      }
      return nlohmann::json{{"remote", st.cfg.name}, {"dropped", dropped}}.dump();
    },
    [self](push_atom, const std::string& source, const changes_ref& cs,
           const caf::actor&) -> caf::result<push_report_ref> {
      if (!cs.ptr || cs.ptr->changes.size() != cs.ptr->mutation_ids.size()
          || cs.ptr->changes.size() != cs.ptr->base_versions.size()
          || cs.ptr->changes.size() != cs.ptr->outbox_seqs.size())
        return make_error(errc::invalid_request, "a push to remote '" + self->state.cfg.name
                                                   + "' must carry a mutation id and a base "
                                                     "version per write");
      auto& chain = self->state.push_ends;
      if (auto why = chain.refusal(*cs.ptr); !why.empty())
        return make_error(errc::invalid_request, std::move(why));
      auto r = push_writes(self, source, *cs.ptr);
      chain.ended(cs.ptr->view, r.flag == caf::rt_value
                                  ? r.value.get_as<push_report_ref>(0).ptr.get()
                                  : nullptr);
      return r;
    },
    [self](lease_atom, const std::string& view,
           std::uint64_t n) -> caf::result<std::string> {
      auto& st = self->state;
      const auto* vc = view_named(st, view);
      if (!vc)
        return make_error(errc::invalid_request,
                          "remote '" + st.cfg.name + "' has no view '" + view + "'");
      auto [schema_name, table_name] = split_source(vc->source);
      auto qualified = quote_ident(schema_name) + "." + quote_ident(table_name);
      auto keys = admin_query(st, pg::key_sequence_sql, {qualified, qualified});
      if (!keys)
        return remote_error(st, keys.error());
      nlohmann::json out = {{"column", nullptr}, {"sequence", nullptr},
                            {"ids", nlohmann::json::array()}};
      if (keys->size() != 1 || !(*keys)[0][0] || !(*keys)[0][1])
        return out.dump();  // a composite key, or one no sequence feeds
      out["column"] = *(*keys)[0][0];
      out["sequence"] = *(*keys)[0][1];
      if (n > 0) {
        auto ids = admin_query(st, pg::lease_sql, {*(*keys)[0][1], std::to_string(n)});
        if (!ids)
          return remote_error(st, ids.error());
        for (const auto& row : *ids)
          if (!row.empty() && row[0])
            out["ids"].push_back(std::stoll(*row[0]));
      }
      return out.dump();
    },
    [self](health_atom) { return caf::make_message(true, std::string{}); },
    [self](stats_atom) {
      return nlohmann::json{{"remote", self->state.cfg.name},
                            {"streams", self->state.workers.size()},
                            {"bulk_pushes", self->state.bulk_pushes}}
        .dump();
    },
    [self](health_atom, const caf::actor& watcher) {
      self->state.watchers.insert(watcher);
      return caf::make_message(true, std::string{});
    },
  };
}

} // namespace

std::string replication_name(const std::string& node_id, const std::string& view) {
  std::string out = "syncmesh_";
  for (char c : node_id + "_" + view)
    out.push_back(std::isalnum(static_cast<unsigned char>(c))
                    ? static_cast<char>(std::tolower(static_cast<unsigned char>(c)))
                    : '_');
  if (out.size() > 63)
    out.resize(63);
  return out;
}

caf::actor spawn_postgres_connector(caf::actor_system& sys, node_context_ptr ctx,
                                    const remote_config& remote) {
  return sys.spawn<caf::detached>(postgres_connector_impl, std::move(ctx), remote);
}

} // namespace syncmesh::actors
