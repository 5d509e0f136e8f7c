#include "actors/postgres_connector.hpp"

#include <atomic>
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <map>
#include <thread>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>
#include <libpq-fe.h>
#include <poll.h>

#include "actors/errors.hpp"
#include "actors/messages.hpp"
#include "connectors/postgres/pgoutput.hpp"
#include "connectors/postgres/replication_stream.hpp"

namespace syncmesh::actors {

namespace pg = syncmesh::connectors::postgres;

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

std::string quote_ident(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"')
      out.push_back('"');
    out.push_back(c);
  }
  return out + "\"";
}

std::string quote_literal(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'')
      out.push_back('\'');
    out.push_back(c);
  }
  return out + "'";
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

// The kind of value a column's COPY text becomes without any conversion
// (pg::to_value keeps the text of these types verbatim), or nullopt.
std::optional<store::value_kind> text_kept_as_is(const store::column& col, std::uint32_t oid) {
  switch (oid) {
    case 25: case 1043: case 1042: case 19: case 2950:  // text, varchar, bpchar, name, uuid
      if (col.kind == store::value_kind::text)
        return store::value_kind::text;
      break;
    case 1700: case 1114: case 1184: case 1082: case 1083:  // numeric, timestamp(tz), date, time
      if (col.kind == store::value_kind::exact)
        return store::value_kind::exact;
      break;
    default: break;
  }
  return std::nullopt;
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

  ~stream_worker() {
    stop = true;
    if (thread.joinable())
      thread.join();
  }
};

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
  pg::type_names names;
};

/// Pieces read at once but delivered later (remote_config::snapshot_delay_ms).
struct delayed_piece {
  caf::response_promise rp;
  snapshot_ref piece;
};

struct pg_state {
  node_context_ptr ctx;
  remote_config cfg;
  std::string conninfo;
  std::map<std::string, open_snapshot> snapshots;  // by view name
  std::map<std::uint64_t, delayed_piece> delayed;  // by id
  std::uint64_t next_delayed = 0;
  std::map<caf::actor_addr, held_slot> held;  // by the view that took the snapshot
  std::map<std::string, std::unique_ptr<stream_worker>> workers;  // by source table
  std::set<caf::actor> watchers;

  static inline const char* name = "postgres_connector";
};

using pg_actor = caf::stateful_actor<pg_state>;

caf::error remote_error(const pg_state& st, const store::status& s) {
  return make_error(s.code() == store::errc::io_error ? errc::remote_down : errc::invalid_request,
                    "remote '" + st.cfg.name + "': " + s.message());
}

// Converts one transaction's changes on the followed relation.
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
        return row_change(ins.relation_oid, ins.new_tuple, store::change_op::insert, out);
      }
      case pg::message_kind::update: {
        const auto& up = std::get<pg::update_message>(m);
        return row_change(up.relation_oid, up.new_tuple, store::change_op::update, out);
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
          }
        return store::status::ok();
      }
      default: return store::status::ok();
    }
  }

private:
  // Local column values from a tuple; unchanged TOASTed columns (absent from
  // the tuple) are left empty for the caller to merge.
  store::result<std::vector<std::optional<store::value>>>
  local_values(const pg::relation& rel, const pg::tuple_data& tuple) {
    std::vector<std::optional<store::value>> out(shape_.local.columns.size());
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

  store::status row_change(std::uint32_t oid, const pg::tuple_data& tuple, store::change_op op,
                           change_set& out) {
    if (oid != shape_.relation_oid)
      return store::status::ok();
    const auto* rel = relations_.find(oid);
    if (!rel)
      return store::status::corruption("a change arrived before its relation's description");
    auto vals = local_values(*rel, tuple);
    if (!vals)
      return vals.error();
    store::row r(vals->size());
    std::optional<store::row> old;
    for (std::size_t i = 0; i < r.size(); ++i) {
      if ((*vals)[i]) {
        r[i] = *(*vals)[i];
        continue;
      }
      // Unchanged TOAST: the value is whatever the local row holds.
      if (!old) {
        store::row key;
        for (auto k : shape_.local.primary_key)
          key.push_back((*vals)[k] ? *(*vals)[k] : store::value::null());
        auto got = ctx_.db->get(shape_.local.table, key);
        if (got && *got)
          old = **got;
      }
      if (old && i < old->size())
        r[i] = (*old)[i];
    }
    store::change c;
    c.table = shape_.local.table;
    c.op = op;
    c.new_row = std::move(r);
    out.changes.push_back(std::move(c));
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
    store::change c;
    c.table = shape_.local.table;
    c.op = store::change_op::remove;
    for (auto k : shape_.local.primary_key) {
      if (!(*vals)[k])
        return store::status::corruption("a delete lacks key column '"
                                         + shape_.local.columns[k].name + "'");
      c.key.push_back(*(*vals)[k]);
    }
    out.changes.push_back(std::move(c));
    return store::status::ok();
  }

  stream_shape shape_;
  const node_context& ctx_;
  pg::relation_cache relations_;
  pg::type_names types_;
};

// The stream thread of one followed view: reads until stopped or lost.
void run_stream(std::unique_ptr<pg::replication_stream> stream, stream_shape shape,
                node_context_ptr ctx, caf::actor view, caf::actor connector,
                stream_worker* worker) {
  txn_converter conv(shape, *ctx);  // keeps its own copy: it learns the relation oid
  auto cs = std::make_shared<change_set>();
  cs->table = shape.local.table;
  std::uint64_t last_sent = 0;   // end LSN of the last change set sent to the view
  std::uint64_t idle_end = 0;    // end LSN of later transactions with nothing for us
  auto lost = [&](const std::string& why) {
    caf::anon_send(connector, stream_lost_atom::value, view, why);
  };
  while (!worker->stop) {
    pollfd pfd{stream->socket(), static_cast<short>(POLLIN | (stream->wants_write() ? POLLOUT : 0)),
               0};
    ::poll(&pfd, 1, stream_poll_ms);
    while (!worker->stop) {
      auto ev = stream->poll();
      if (!ev)
        return lost(ev.error().message());
      if (!*ev)
        break;
      auto* x = std::get_if<pg::xlog_data>(&**ev);
      if (!x)
        continue;  // keepalives are answered by the stream itself
      auto msg = pg::decode(x->payload);
      if (!msg)
        return lost(msg.error().message());
      if (pg::kind_of(*msg) == pg::message_kind::commit) {
        auto end = std::get<pg::commit_message>(*msg).end_lsn;
        if (cs->changes.empty()) {
          idle_end = end;
        } else {
          cs->position = end;
          last_sent = end;
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
    auto target = acked >= last_sent ? std::max(acked, idle_end) : acked;
    if (target > stream->confirmed().value)
      if (auto st = stream->confirm(pg::lsn{target}); !st)
        return lost(st.message());
  }
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
    return make_error(errc::invalid_request,
                      "view " + view + " reads a query; query views of PostgreSQL are not "
                                       "supported yet — read a table with columns and filters");
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
    // the copy this one replaces.
    auto exists = held.stream->slot_exists(held.slot);
    if (!exists)
      return remote_error(st, exists.error());
    if (*exists)
      if (auto s = held.stream->drop_slot(held.slot); !s)
        return remote_error(st, s);
    auto pub = exec_sql(st.conninfo,
                        "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = "
                          + quote_literal(held.publication) + ") THEN CREATE PUBLICATION "
                          + quote_ident(held.publication) + " FOR TABLE "
                          + quote_ident(schema_name) + "." + quote_ident(table_name)
                          + "; END IF; END $$");
    if (!pub)
      return remote_error(st, pub);
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
  std::vector<pg::column_filter> where;
  for (const auto& f : vc->filters) {
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
  if (auto s = (*reader)->copy(*info, vc->columns, where); !s)
    return remote_error(st, s);

  auto snap = std::make_shared<snapshot>();
  stream_shape shape;
  shape.relation_oid = info->oid;
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
  auto chunk = open.reader->next_rows(st.cfg.snapshot_batch_rows, st.cfg.snapshot_batch_bytes);
  if (!chunk) {
    st.snapshots.erase(it);
    return chunk.error();
  }
  if (!*chunk) {
    (void) open.reader->commit();
    piece->more = false;
    if (open.follow)
      st.held[open.view] = std::move(open.held);
    st.snapshots.erase(it);
    return piece;
  }
  const auto& columns = piece->shape.columns;
  piece->rows.reserve((*chunk)->size());
  for (auto& text_row : **chunk) {
    store::row r;
    r.reserve(columns.size());
    for (std::size_t i = 0; i < columns.size() && i < text_row.size(); ++i) {
      if (!text_row[i]) {
        r.emplace_back();
        continue;
      }
      // Text and exact values keep PostgreSQL's text as it is: take it
      // instead of copying it (value_for would make the same value).
      if (auto kind = text_kept_as_is(columns[i], open.oids[i])) {
        r.push_back(*kind == store::value_kind::text
                      ? store::value::text(std::move(*text_row[i]))
                      : store::value::exact(columns[i].type_name, std::move(*text_row[i])));
        continue;
      }
      auto v = value_for(columns[i], open.oids[i], *text_row[i], open.names);
      if (!v) {
        st.snapshots.erase(it);
        return store::status::invalid_argument(v.error().message());
      }
      r.push_back(std::move(v).value());
    }
    piece->rows.push_back(std::move(r));
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
                                     const std::string& view) {
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
  held.stream = std::move(stream).value();
  auto [schema_name, table_name] = split_source(source);
  held.shape.local = **local;
  held.shape.schema_name = schema_name;
  held.shape.table_name = table_name;
  return held;
}

caf::behavior postgres_connector_impl(pg_actor* self, node_context_ptr ctx, remote_config cfg) {
  auto& st = self->state;
  st.ctx = ctx;
  st.cfg = cfg;
  st.conninfo = with_password(cfg);
  self->attach_functor([self] {
    // Streams end with the connector; their threads are joined here.
    self->state.workers.clear();
  });
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
           const caf::actor& view, std::uint64_t from) -> caf::result<std::uint64_t> {
      auto& st = self->state;
      held_slot held;
      if (auto it = st.held.find(view.address()); it != st.held.end() && it->second.stream) {
        held = std::move(it->second);
        st.held.erase(it);
      } else {
        // Resuming after a restart: the slot and the local copy survived.
        auto resumed = resume_slot(self, source, view_name);
        if (!resumed)
          return remote_error(st, resumed.error());
        held = std::move(resumed).value();
      }
      if (auto s = held.stream->start(held.slot, pg::lsn{from}, {held.publication}); !s)
        return remote_error(st, s);
      auto worker = std::make_unique<stream_worker>();
      worker->acked = from;
      auto* w = worker.get();
      st.workers[source] = nullptr;  // ends an older stream of this table first
      worker->thread = std::thread(run_stream, std::move(held.stream), std::move(held.shape),
                                   st.ctx, view, caf::actor{self}, w);
      st.workers[source] = std::move(worker);
      return from;
    },
    [self](unsubscribe_atom, const std::string& source, const caf::actor&) {
      self->state.workers.erase(source);
    },
    [self](ack_atom, const std::string& source, std::uint64_t position) {
      auto it = self->state.workers.find(source);
      if (it != self->state.workers.end() && it->second
          && position > it->second->acked.load())
        it->second->acked = position;
    },
    [self](stream_lost_atom, const caf::actor& view, const std::string& why) {
      self->send(view, down_atom::value, self->state.cfg.name,
                 "the change stream of remote '" + self->state.cfg.name + "' was lost: " + why);
    },
    [self](push_atom, const std::string&, const changes_ref&,
           const caf::actor&) -> caf::result<std::uint64_t> {
      return make_error(errc::read_only, "remote '" + self->state.cfg.name
                                           + "' takes no writes yet: pushing to PostgreSQL "
                                             "arrives with the write path");
    },
    [self](health_atom) { return caf::make_message(true, std::string{}); },
    [self](stats_atom) {
      return nlohmann::json{{"remote", self->state.cfg.name},
                            {"streams", self->state.workers.size()}}
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
