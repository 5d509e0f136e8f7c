#include "connectors/postgres/replication_stream.hpp"

#include "connectors/postgres/hex.hpp"
#include "connectors/postgres/quote.hpp"

#include <libpq-fe.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace syncmesh::connectors::postgres {

using store::result;
using store::status;

namespace {

// --- libpq ownership ---------------------------------------------------------

struct result_deleter {
  void operator()(PGresult* r) const noexcept { PQclear(r); }
};
using pg_result_ptr = std::unique_ptr<PGresult, result_deleter>;

struct conn_deleter {
  void operator()(PGconn* c) const noexcept { PQfinish(c); }
};
using pg_conn_ptr = std::unique_ptr<PGconn, conn_deleter>;

struct freemem_deleter {
  void operator()(char* p) const noexcept { PQfreemem(p); }
};
using pg_buffer_ptr = std::unique_ptr<char, freemem_deleter>;

// --- text helpers ------------------------------------------------------------

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

bool contains(const std::string& haystack, const char* needle) {
  return haystack.find(needle) != std::string::npos;
}

/// libpq's message without its "FATAL:  " / "ERROR:  " prefixes, trailing
/// newlines and tab-indented hints, on one line.
std::string tidy(const char* message) {
  std::string in = message == nullptr ? "" : message;
  std::string out;
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '\n' || c == '\t') {
      if (!out.empty() && out.back() != ' ')
        out += ' ';
      continue;
    }
    out += c;
  }
  for (const char* prefix : {"FATAL:  ", "ERROR:  "}) {
    for (std::size_t at = out.find(prefix); at != std::string::npos; at = out.find(prefix))
      out.erase(at, std::strlen(prefix));
  }
  while (!out.empty() && (out.back() == ' ' || out.back() == '.'))
    out.pop_back();
  return out;
}

/// "127.0.0.1:5432" (or the socket directory and port) of a connection
/// object, whether or not it connected.
std::string endpoint(const PGconn* conn) {
  const char* host = PQhost(conn);
  const char* port = PQport(conn);
  std::string h = host != nullptr && *host != '\0' ? host : "localhost";
  std::string p = port != nullptr && *port != '\0' ? port : "5432";
  return h + ":" + p;
}

std::string user_of(const PGconn* conn) {
  const char* user = PQuser(conn);
  return user != nullptr ? user : "";
}

std::string field(const PGresult* r, int code) {
  const char* v = r == nullptr ? nullptr : PQresultErrorField(r, code);
  return v != nullptr ? v : "";
}

/// PostgreSQL's rule for slot names (ReplicationSlotValidateName).
status check_slot_name(const std::string& name) {
  const bool ok = !name.empty() && name.size() <= 63
                  && std::all_of(name.begin(), name.end(), [](char c) {
                       return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
                     });
  if (ok)
    return status::ok();
  return status::invalid_argument("'" + name
                                  + "' cannot name a replication slot; use 1 to 63 lower-case "
                                    "letters, digits and underscores");
}

// --- connecting --------------------------------------------------------------

/// A connection from `conninfo` with libpq's defaults plus ours: replication
/// as asked (and overriding the string's), connect_timeout 10 s unless set,
/// application name "syncmesh" unless set.
result<pg_conn_ptr> open_connection(const std::string& conninfo, bool replication) {
  char* parse_error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &parse_error);
  if (options == nullptr) {
    std::string why = parse_error != nullptr ? tidy(parse_error) : "out of memory";
    PQfreemem(parse_error);
    return status::invalid_argument("the PostgreSQL connection string is not valid (" + why
                                    + "); write it as \"host=... port=... user=... dbname=...\" "
                                      "or as a postgresql:// URI");
  }
  std::vector<std::string> keys;
  std::vector<std::string> values;
  bool has_timeout = false;
  // Dates and times print as ISO text on every connection (snapshot and
  // stream alike), whatever the server's default: the local copy holds one
  // form, and stream filters on them can read it. Appended to the user's
  // options, so it wins over a DateStyle given there.
  std::string server_options = "-c DateStyle=ISO";
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr || std::strcmp(o->keyword, "replication") == 0)
      continue;
    if (std::strcmp(o->keyword, "options") == 0) {
      server_options = std::string(o->val) + " " + server_options;
      continue;
    }
    has_timeout = has_timeout || std::strcmp(o->keyword, "connect_timeout") == 0;
    keys.emplace_back(o->keyword);
    values.emplace_back(o->val);
  }
  PQconninfoFree(options);
  keys.emplace_back("options");
  values.emplace_back(server_options);
  if (replication) {
    keys.emplace_back("replication");
    values.emplace_back("database");
  }
  if (!has_timeout) {
    keys.emplace_back("connect_timeout");
    values.emplace_back("10");
  }
  keys.emplace_back("fallback_application_name");
  values.emplace_back("syncmesh");

  std::vector<const char*> key_ptrs;
  std::vector<const char*> value_ptrs;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    key_ptrs.push_back(keys[i].c_str());
    value_ptrs.push_back(values[i].c_str());
  }
  key_ptrs.push_back(nullptr);
  value_ptrs.push_back(nullptr);

  pg_conn_ptr conn(PQconnectdbParams(key_ptrs.data(), value_ptrs.data(), 0));
  if (!conn)
    return status::io_error("libpq could not allocate a connection (out of memory)");
  if (PQstatus(conn.get()) == CONNECTION_OK)
    return result<pg_conn_ptr>(std::move(conn));

  // libpq reports a refused connection only as text; PostgreSQL's server
  // messages below are those of PostgreSQL 12 to 16 in English.
  const std::string where = endpoint(conn.get());
  const std::string user = user_of(conn.get());
  const std::string said = tidy(PQerrorMessage(conn.get()));
  const std::string text = lower(said);
  if (contains(text, "must be superuser or replication role")
      || contains(text, "permission denied to start wal sender")
      || contains(text, "replication attribute")) {
    return status::invalid_argument(
      "role " + user + " may not start logical replication on PostgreSQL at " + where
      + "; grant it with `ALTER ROLE " + quote_ident(user)
      + " REPLICATION` as a superuser, or connect as a role that has it (" + said + ")");
  }
  if (contains(text, "password authentication failed") || contains(text, "no password supplied")
      || contains(text, "authentication failed") || contains(text, "no pg_hba.conf entry")
      || (contains(text, "role \"") && contains(text, "does not exist"))) {
    return status::invalid_argument(
      "PostgreSQL at " + where + " refused the login of user " + user + " (" + said
      + "); check the user and password in the connection settings, and that pg_hba.conf "
        "lets this user in from this host"
      + (replication ? " for a replication connection" : ""));
  }
  if (contains(text, "wal_level")) {
    return status::invalid_argument(
      "PostgreSQL at " + where + " does not allow logical replication (" + said
      + "); set `wal_level = logical` in postgresql.conf and restart the server");
  }
  if (contains(text, "database \"") && contains(text, "does not exist")) {
    return status::not_found("PostgreSQL at " + where + " has no such database (" + said
                             + "); check dbname in the connection settings or create it");
  }
  if (contains(text, "max_wal_senders") || contains(text, "too many connections")
      || contains(text, "connection slots are reserved")) {
    return status::io_error("PostgreSQL at " + where + " has no connection to spare (" + said
                            + "); retry later, or raise max_connections / max_wal_senders");
  }
  if (contains(text, "starting up") || contains(text, "shutting down")
      || contains(text, "in recovery mode")) {
    return status::io_error("PostgreSQL at " + where + " is not accepting connections yet ("
                            + said + "); retry shortly");
  }
  return status::io_error("cannot reach PostgreSQL at " + where + " (" + said
                          + "); check that the server is running and that host and port in the "
                            "connection settings are right");
}

/// True when a failure means the connection itself is gone, not that the
/// server refused one command: no result, an error libpq made up itself (no
/// SQLSTATE), a connection exception (08) or an operator intervention (57P,
/// e.g. the server shutting down).
bool connection_failed(const PGresult* r) {
  if (r == nullptr)
    return true;
  const std::string state = field(r, PG_DIAG_SQLSTATE);
  return state.empty() || state.rfind("08", 0) == 0 || state.rfind("57P", 0) == 0;
}

/// The error of a command that did not succeed, as a sentence: `doing` says
/// what was attempted ("creating replication slot s").
status command_error(const PGconn* conn, const PGresult* r, const std::string& doing) {
  const std::string where = endpoint(conn);
  if (r != nullptr && PQresultStatus(r) != PGRES_FATAL_ERROR
      && PQresultStatus(r) != PGRES_NONFATAL_ERROR)
    return status::corruption("PostgreSQL at " + where + " answered " + doing + " with "
                              + PQresStatus(PQresultStatus(r))
                              + ", which this client did not expect");
  if (connection_failed(r)) {
    const std::string said = r != nullptr ? tidy(PQresultErrorMessage(r))
                                          : tidy(PQerrorMessage(conn));
    return status::io_error("lost the connection to PostgreSQL at " + where + " while " + doing
                            + " (" + said + "); connect again and retry");
  }
  const std::string state = field(r, PG_DIAG_SQLSTATE);
  const std::string said = field(r, PG_DIAG_MESSAGE_PRIMARY);
  const std::string text = lower(said);
  const std::string quoted = " (" + said + ", SQLSTATE " + state + ")";
  if (contains(text, "wal_level")) {
    return status::invalid_argument("PostgreSQL at " + where + " refused " + doing + quoted
                                    + "; set `wal_level = logical` in postgresql.conf and restart "
                                      "the server");
  }
  if (state == "42501") {
    return status::invalid_argument("role " + user_of(conn) + " may not do this on PostgreSQL at "
                                    + where + ": " + doing + quoted
                                    + "; grant the role the privilege it needs (REPLICATION for "
                                      "slots, SELECT for tables)");
  }
  if (state == "53400" || contains(text, "replication slots are in use")) {
    return status::invalid_argument("PostgreSQL at " + where + " has no free replication slot for "
                                    + doing + quoted
                                    + "; drop unused slots or raise max_replication_slots");
  }
  return status::invalid_argument("PostgreSQL at " + where + " refused " + doing + quoted);
}

/// Runs `sql` and expects `expected`; otherwise the error sentence.
result<pg_result_ptr> exec(PGconn* conn, const std::string& sql, ExecStatusType expected,
                           const std::string& doing) {
  pg_result_ptr r(PQexec(conn, sql.c_str()));
  if (r == nullptr || PQresultStatus(r.get()) != expected)
    return command_error(conn, r.get(), doing);
  return result<pg_result_ptr>(std::move(r));
}

// --- wire format -------------------------------------------------------------

std::uint64_t read_u64(const char* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i)
    v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

void write_u64(std::string& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8)
    out += static_cast<char>((v >> shift) & 0xff);
}

/// Microseconds since 2000-01-01 UTC, the protocol's clock.
std::int64_t pg_now_us() {
  constexpr std::int64_t pg_epoch_unix_us = 946'684'800'000'000;
  const auto unix_us = std::chrono::duration_cast<std::chrono::microseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  return static_cast<std::int64_t>(unix_us) - pg_epoch_unix_us;
}

} // namespace

// --- lsn ---------------------------------------------------------------------

result<lsn> lsn::parse(std::string_view text) {
  auto bad = [&] {
    return status::invalid_argument("'" + std::string(text)
                                    + "' is not an LSN; write two hexadecimal numbers of up to 8 "
                                      "digits separated by '/', e.g. 16/B374D848");
  };
  const auto slash = text.find('/');
  if (slash == std::string_view::npos)
    return bad();
  std::uint64_t halves[2] = {0, 0};
  const std::string_view parts[2] = {text.substr(0, slash), text.substr(slash + 1)};
  for (int i = 0; i < 2; ++i) {
    if (parts[i].empty() || parts[i].size() > 8)
      return bad();
    for (char c : parts[i]) {
      int digit;
      if (c >= '0' && c <= '9')
        digit = c - '0';
      else if (c >= 'a' && c <= 'f')
        digit = c - 'a' + 10;
      else if (c >= 'A' && c <= 'F')
        digit = c - 'A' + 10;
      else
        return bad();
      halves[i] = (halves[i] << 4) | static_cast<std::uint64_t>(digit);
    }
  }
  return lsn{(halves[0] << 32) | halves[1]};
}

std::string lsn::to_string() const {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%" PRIX32 "/%" PRIX32, static_cast<std::uint32_t>(value >> 32),
                static_cast<std::uint32_t>(value));
  return buf;
}

// --- replication_stream ------------------------------------------------------

replication_stream::replication_stream(pg_conn* conn, std::string conninfo)
  : conn_(conn), conninfo_(std::move(conninfo)) {}

replication_stream::~replication_stream() { PQfinish(conn_); }

result<std::unique_ptr<replication_stream>> replication_stream::connect(
  const std::string& conninfo) {
  auto opened = open_connection(conninfo, true);
  if (!opened)
    return opened.error();
  PGconn* conn = opened->get();
  const std::string where = endpoint(conn);

  // A replication=database connection takes SHOW. Asking up front turns
  // "logical decoding requires wal_level >= logical" at slot creation into
  // a sentence at connect time.
  auto shown = exec(conn, "SHOW wal_level", PGRES_TUPLES_OK, "reading wal_level");
  if (!shown)
    return shown.error();
  if (PQntuples(shown->get()) != 1 || PQnfields(shown->get()) != 1)
    return status::corruption("PostgreSQL at " + where
                              + " answered SHOW wal_level with an unexpected shape");
  const std::string wal_level = PQgetvalue(shown->get(), 0, 0);
  if (wal_level != "logical") {
    return status::invalid_argument("PostgreSQL at " + where + " runs with wal_level = " + wal_level
                                    + ", but logical replication needs wal_level = logical; set "
                                      "`wal_level = logical` in postgresql.conf (or ALTER SYSTEM "
                                      "SET wal_level = logical) and restart the server");
  }
  return std::unique_ptr<replication_stream>(
    new replication_stream(std::move(opened).value().release(), conninfo));
}

status replication_stream::refuse_after_start(const char* what) const {
  return status::invalid_argument(std::string(what)
                                  + " cannot run on a replication connection that is streaming; "
                                    "use a second replication_stream for slot commands");
}

result<slot_info> replication_stream::create_slot(const std::string& name, bool temporary) {
  if (streaming_ || ended_)
    return refuse_after_start("create_slot()");
  if (auto st = check_slot_name(name); !st)
    return st;
  const std::string doing = "creating replication slot " + name;
  const std::string sql = "CREATE_REPLICATION_SLOT " + name + (temporary ? " TEMPORARY" : "")
                          + " LOGICAL pgoutput (SNAPSHOT 'export')";
  pg_result_ptr r(PQexec(conn_, sql.c_str()));
  if (r == nullptr || PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
    if (field(r.get(), PG_DIAG_SQLSTATE) == "42710")
      return status::invalid_argument("replication slot " + name + " already exists on "
                                      + endpoint(conn_)
                                      + "; start() it to continue where it is, or drop_slot() it "
                                        "first to take a new snapshot");
    return command_error(conn_, r.get(), doing);
  }
  // slot_name, consistent_point, snapshot_name, output_plugin.
  if (PQntuples(r.get()) != 1 || PQnfields(r.get()) < 3 || PQgetisnull(r.get(), 0, 2))
    return status::corruption("PostgreSQL at " + endpoint(conn_) + " answered " + doing
                              + " without a consistent point and snapshot");
  auto point = lsn::parse(PQgetvalue(r.get(), 0, 1));
  if (!point)
    return status::corruption("PostgreSQL at " + endpoint(conn_) + " answered " + doing
                              + " with a bad consistent point: " + point.error().message());
  return slot_info{PQgetvalue(r.get(), 0, 0), *point, PQgetvalue(r.get(), 0, 2)};
}

result<bool> replication_stream::slot_exists(const std::string& name) {
  auto opened = open_connection(conninfo_, false);
  if (!opened)
    return opened.error();
  PGconn* conn = opened->get();
  const char* params[] = {name.c_str()};
  pg_result_ptr r(PQexecParams(conn,
                               "SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
                               1, nullptr, params, nullptr, nullptr, 0));
  if (r == nullptr || PQresultStatus(r.get()) != PGRES_TUPLES_OK)
    return command_error(conn, r.get(), "looking up replication slot " + name);
  return PQntuples(r.get()) > 0;
}

status replication_stream::drop_slot(const std::string& name, bool wait) {
  if (streaming_ || ended_)
    return refuse_after_start("drop_slot()");
  if (auto st = check_slot_name(name); !st)
    return st;
  const std::string sql = "DROP_REPLICATION_SLOT " + name + (wait ? " WAIT" : "");
  pg_result_ptr r(PQexec(conn_, sql.c_str()));
  if (r != nullptr && PQresultStatus(r.get()) == PGRES_COMMAND_OK)
    return status::ok();
  const std::string state = field(r.get(), PG_DIAG_SQLSTATE);
  if (state == "42704")
    return status::not_found("replication slot " + name + " does not exist on " + endpoint(conn_)
                             + "; nothing to drop");
  if (state == "55006")
    return status::invalid_argument("replication slot " + name + " is in use on " + endpoint(conn_)
                                    + " (" + field(r.get(), PG_DIAG_MESSAGE_PRIMARY)
                                    + "); stop the connection streaming it, then drop it");
  return command_error(conn_, r.get(), "dropping replication slot " + name);
}

status replication_stream::start(const std::string& slot, lsn from,
                                 const std::vector<std::string>& publications, bool messages) {
  if (streaming_ || ended_)
    return refuse_after_start("start()");
  if (auto st = check_slot_name(slot); !st)
    return st;
  if (publications.empty())
    return status::invalid_argument("start() needs at least one publication to stream; create one "
                                    "with CREATE PUBLICATION name FOR TABLE ... and pass its name");
  std::string names;
  for (const auto& p : publications) {
    if (p.empty() || p.find('\0') != std::string::npos)
      return status::invalid_argument("a publication name must be non-empty text without NUL");
    if (!names.empty())
      names += ',';
    names += quote_ident(p);  // pgoutput splits the list as identifiers
  }
  const std::string sql = "START_REPLICATION SLOT " + slot + " LOGICAL " + from.to_string()
                          + " (proto_version '1', publication_names "
                          + quote_literal(names) + ", messages '"
                          + (messages ? "true" : "false") + "')";
  pg_result_ptr r(PQexec(conn_, sql.c_str()));
  if (r == nullptr || PQresultStatus(r.get()) != PGRES_COPY_BOTH) {
    const std::string state = field(r.get(), PG_DIAG_SQLSTATE);
    if (state == "42704")
      return status::not_found("replication slot " + slot + " does not exist on "
                               + endpoint(conn_)
                               + "; create it with create_slot() (a temporary slot goes away with "
                                 "the connection that made it)");
    const std::string said = lower(field(r.get(), PG_DIAG_MESSAGE_PRIMARY) + " "
                                   + field(r.get(), PG_DIAG_MESSAGE_DETAIL));
    if (contains(said, "invalidated") || contains(said, "can no longer get changes"))
      return status::not_found("replication slot " + slot + " on " + endpoint(conn_)
                               + " was invalidated ("
                               + field(r.get(), PG_DIAG_MESSAGE_DETAIL)
                               + "): PostgreSQL removed WAL it still needed; drop it and "
                                 "create it again with a new snapshot");
    if (state == "55006")
      // Retryable: most often the connection that streamed it a moment ago
      // is still closing (its walsender has not exited yet).
      return status::io_error("replication slot " + slot + " is in use on " + endpoint(conn_)
                              + " (" + field(r.get(), PG_DIAG_MESSAGE_PRIMARY)
                              + "); only one connection can stream a slot at a time: the one "
                                "that had it may still be closing, or another one holds it "
                                "and must be stopped first");
    return command_error(conn_, r.get(), "starting replication from slot " + slot);
  }
  if (PQsetnonblocking(conn_, 1) != 0)
    return lost("switching the stream to non-blocking mode");
  streaming_ = true;
  slot_ = slot;
  confirmed_ = from;
  handed_out_ = lsn{};
  in_transaction_ = false;
  return status::ok();
}

int replication_stream::socket() const { return PQsocket(conn_); }

status replication_stream::lost(const std::string& what) {
  streaming_ = false;
  ended_ = true;
  return status::io_error("lost the replication connection to PostgreSQL at " + endpoint(conn_)
                          + " while " + what + " (" + tidy(PQerrorMessage(conn_))
                          + "); connect again and start() slot " + slot_ + " from "
                          + confirmed_.to_string() + ", the last confirmed LSN");
}

status replication_stream::stream_ended() {
  // The server left COPY BOTH: it is shutting down (CommandComplete), or it
  // hit an error (ErrorResponse) and will close the connection.
  // Only what has arrived is read, so that poll() never blocks: the last
  // message (ReadyForQuery, or the close) may still be on its way.
  std::string said;
  pg_result_ptr failed;
  for (;;) {
    if (PQisBusy(conn_) != 0 && (PQconsumeInput(conn_) == 0 || PQisBusy(conn_) != 0))
      break;
    pg_result_ptr r{PQgetResult(conn_)};
    if (!r)
      break;
    if (PQresultStatus(r.get()) == PGRES_FATAL_ERROR && !failed)
      failed = std::move(r);
  }
  streaming_ = false;
  ended_ = true;
  const std::string where = endpoint(conn_);
  const std::string again = "; connect again and start() slot " + slot_ + " from "
                            + confirmed_.to_string() + ", the last confirmed LSN";
  if (failed && !connection_failed(failed.get())) {
    const std::string state = field(failed.get(), PG_DIAG_SQLSTATE);
    const std::string primary = field(failed.get(), PG_DIAG_MESSAGE_PRIMARY);
    if (state == "42704")
      return status::not_found("PostgreSQL at " + where + " stopped the replication stream: "
                               + primary
                               + "; create it with CREATE PUBLICATION, or start() with the names "
                                 "of existing publications");
    if (stream_error_resumable(state))
      return status::io_error("PostgreSQL at " + where + " stopped the replication stream ("
                              + primary + ", SQLSTATE " + state + ")" + again);
    return status::invalid_argument("PostgreSQL at " + where + " stopped the replication stream ("
                                    + primary + ", SQLSTATE " + state + "); a new stream from slot "
                                    + slot_ + " would stop the same way");
  }
  if (failed)
    said = tidy(PQresultErrorMessage(failed.get()));
  else if (PQstatus(conn_) != CONNECTION_OK)
    said = tidy(PQerrorMessage(conn_));
  else
    said = "the server ended the stream, e.g. because it is shutting down";
  return status::io_error("lost the replication stream from PostgreSQL at " + where + " (" + said
                          + ")" + again);
}

bool stream_error_resumable(const std::string& sqlstate) {
  if (sqlstate.size() != 5)
    return false;
  const std::string cls = sqlstate.substr(0, 2);
  return cls == "08" || cls == "53" || cls == "57";
}

status replication_stream::flush_output() {
  const int flushed = PQflush(conn_);
  if (flushed < 0)
    return lost("sending a status update");
  flush_pending_ = flushed == 1;
  return status::ok();
}

status replication_stream::send_status_update() {
  // Standby Status Update: 'r', write, flush, apply, client time, reply flag.
  std::string msg;
  msg.reserve(34);
  msg += 'r';
  write_u64(msg, confirmed_.value);
  write_u64(msg, confirmed_.value);
  write_u64(msg, confirmed_.value);
  write_u64(msg, static_cast<std::uint64_t>(pg_now_us()));
  msg += '\0';
  const int queued = PQputCopyData(conn_, msg.data(), static_cast<int>(msg.size()));
  if (queued < 0)
    return lost("sending a status update");
  // Not queued: libpq's buffer is full; the next poll() or confirm() retries
  // with the then-current LSN.
  update_pending_ = queued == 0;
  return flush_output();
}

result<std::optional<stream_event>> replication_stream::read_message(const char* data,
                                                                     std::size_t size) {
  const std::string where = endpoint(conn_);
  if (data[0] == 'w') {
    // XLogData: 'w', data start, WAL end, send time, then the message.
    if (size < 25)
      return status::corruption("PostgreSQL at " + where + " sent an XLogData message of "
                                + std::to_string(size)
                                + " bytes, shorter than its 25-byte header");
    xlog_data x{lsn{read_u64(data + 1)}, lsn{read_u64(data + 9)}, std::string(data + 25, size - 25)};
    if (!x.payload.empty()) {
      // Track transaction boundaries to know when the caller is caught up.
      if (x.payload[0] == 'B')
        in_transaction_ = true;
      else if (x.payload[0] == 'C')
        in_transaction_ = false;
    }
    handed_out_ = std::max(handed_out_, x.start);
    return std::optional<stream_event>(std::move(x));
  }
  if (data[0] == 'k') {
    // Primary keepalive: 'k', WAL end, send time, reply requested.
    if (size < 18)
      return status::corruption("PostgreSQL at " + where + " sent a keepalive of "
                                + std::to_string(size) + " bytes instead of 18");
    keepalive k{lsn{read_u64(data + 1)}, data[17] != 0};
    bool advanced = false;
    if (!in_transaction_ && confirmed_ >= handed_out_ && k.end > confirmed_) {
      confirmed_ = k.end;  // nothing handed out is unconfirmed: see poll()
      advanced = true;
    }
    if (k.reply_requested || advanced || update_pending_) {
      if (auto st = send_status_update(); !st)
        return st;
    }
    return std::optional<stream_event>(k);
  }
  char type[8];
  std::snprintf(type, sizeof(type), "0x%02x", static_cast<unsigned char>(data[0]));
  return status::corruption("PostgreSQL at " + where
                            + " sent a replication message of unknown type " + type
                            + " (expected 'w' or 'k'); this client speaks the protocol of "
                              "PostgreSQL 10 to 16");
}

result<std::optional<stream_event>> replication_stream::poll() {
  if (ended_)
    return status::io_error("the replication stream from PostgreSQL at " + endpoint(conn_)
                            + " has ended; connect again and start() slot " + slot_ + " from "
                            + confirmed_.to_string() + ", the last confirmed LSN");
  if (!streaming_)
    return status::invalid_argument("poll() needs a running stream; call start() first");
  if (update_pending_) {
    if (auto st = send_status_update(); !st)
      return st;
  } else if (flush_pending_) {
    if (auto st = flush_output(); !st)
      return st;
  }
  // Read from the socket only when libpq has no complete message buffered:
  // one recv per batch of messages, not one per message.
  for (bool consumed = false;;) {
    char* raw = nullptr;
    const int n = PQgetCopyData(conn_, &raw, 1);
    if (n > 0) {
      pg_buffer_ptr owned(raw);
      return read_message(raw, static_cast<std::size_t>(n));
    }
    if (n == 0) {
      if (consumed)
        return std::optional<stream_event>{};
      if (PQconsumeInput(conn_) == 0)
        return lost("reading the stream");
      consumed = true;
      continue;
    }
    return stream_ended();  // -1: the server left COPY; -2: an error
  }
}

status replication_stream::confirm(lsn flushed) {
  if (ended_)
    return status::io_error("the replication stream from PostgreSQL at " + endpoint(conn_)
                            + " has ended; connect again and start() slot " + slot_ + " from "
                            + confirmed_.to_string() + ", the last confirmed LSN");
  if (!streaming_)
    return status::invalid_argument("confirm() needs a running stream; call start() first");
  confirmed_ = std::max(confirmed_, flushed);
  return send_status_update();
}

// --- snapshot_reader ---------------------------------------------------------

const column_info* table_info::find(std::string_view column) const {
  for (const auto& c : columns)
    if (c.name == column)
      return &c;
  return nullptr;
}

snapshot_reader::snapshot_reader(pg_conn* conn) : conn_(conn) {}

snapshot_reader::~snapshot_reader() { PQfinish(conn_); }

result<std::unique_ptr<snapshot_reader>> snapshot_reader::connect(const std::string& conninfo) {
  auto opened = open_connection(conninfo, false);
  if (!opened)
    return opened.error();
  return std::unique_ptr<snapshot_reader>(
    new snapshot_reader(std::move(opened).value().release()));
}

status snapshot_reader::begin(const std::string& snapshot_name) {
  if (state_ == copy_state::copying)
    return status::invalid_argument("begin() while a COPY is being read; read it to the end first");
  if (in_transaction_)
    return status::invalid_argument("begin() inside a transaction; commit() the one begun first");
  if (snapshot_name.empty() || snapshot_name.find('\0') != std::string::npos)
    return status::invalid_argument("begin() needs the snapshot name create_slot() returned");
  auto begun = exec(conn_, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", PGRES_COMMAND_OK,
                    "beginning a snapshot transaction");
  if (!begun)
    return begun.error();
  in_transaction_ = true;
  pg_buffer_ptr literal(PQescapeLiteral(conn_, snapshot_name.data(), snapshot_name.size()));
  if (!literal) {
    (void)commit();
    return status::invalid_argument("the snapshot name cannot be quoted ("
                                    + tidy(PQerrorMessage(conn_)) + ")");
  }
  const std::string sql = std::string("SET TRANSACTION SNAPSHOT ") + literal.get();
  pg_result_ptr r(PQexec(conn_, sql.c_str()));
  if (r != nullptr && PQresultStatus(r.get()) == PGRES_COMMAND_OK)
    return status::ok();
  const bool gone = field(r.get(), PG_DIAG_SQLSTATE) == "22023";
  status failure = gone ? status::not_found(
                            "snapshot " + snapshot_name + " cannot be imported on PostgreSQL at "
                            + endpoint(conn_) + " (" + field(r.get(), PG_DIAG_MESSAGE_PRIMARY)
                            + "); an exported snapshot lives only while the replication "
                              "connection that created the slot stays open and runs no other "
                              "command: import it before start(), or create the slot again")
                        : command_error(conn_, r.get(), "importing snapshot " + snapshot_name);
  (void)commit();
  return failure;
}

status snapshot_reader::commit() {
  if (state_ == copy_state::copying)
    return status::invalid_argument("commit() while a COPY is being read; read it to the end "
                                    "first");
  state_ = copy_state::idle;
  if (!in_transaction_)
    return status::ok();
  in_transaction_ = false;
  // COMMIT of an aborted transaction rolls back and says ROLLBACK: not an
  // error here, the caller learnt of the abort from the failing call.
  auto done = exec(conn_, "COMMIT", PGRES_COMMAND_OK, "ending the snapshot transaction");
  return done ? status::ok() : done.error();
}

result<table_info> snapshot_reader::describe(const std::string& schema, const std::string& table) {
  if (state_ == copy_state::copying)
    return status::invalid_argument("describe() while a COPY is being read; read it to the end "
                                    "first");
  const std::string shown = schema.empty() ? table : schema + "." + table;
  const std::string doing = "describing table " + shown;

  const char* lookup_params[] = {schema.c_str(), table.c_str()};
  pg_result_ptr found(PQexecParams(
    conn_,
    "SELECT c.oid, n.nspname, c.relname FROM pg_catalog.pg_class c"
    " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
    " WHERE c.relname = $2::text::name AND c.relkind IN ('r', 'p', 'v', 'm', 'f')"
    " AND (CASE WHEN $1::text = '' THEN pg_catalog.pg_table_is_visible(c.oid)"
    "      ELSE n.nspname = $1::text::name END)",
    2, nullptr, lookup_params, nullptr, nullptr, 0));
  if (found == nullptr || PQresultStatus(found.get()) != PGRES_TUPLES_OK)
    return command_error(conn_, found.get(), doing);
  if (PQntuples(found.get()) != 1)
    return status::not_found("table " + shown + " does not exist on PostgreSQL at "
                             + endpoint(conn_) + "; check the name or the search path");

  table_info info;
  info.oid = static_cast<std::uint32_t>(std::strtoul(PQgetvalue(found.get(), 0, 0), nullptr, 10));
  info.schema = PQgetvalue(found.get(), 0, 1);
  info.name = PQgetvalue(found.get(), 0, 2);
  const std::string oid_text = PQgetvalue(found.get(), 0, 0);
  const char* oid_param[] = {oid_text.c_str()};

  pg_result_ptr columns(PQexecParams(
    conn_,
    "SELECT a.attname, a.atttypid, pg_catalog.format_type(a.atttypid, a.atttypmod),"
    " a.atttypmod, a.attnotnull, a.attgenerated <> '', a.attidentity = 'a',"
    " CASE WHEN a.attcollation = 0 THEN ''"
    "      WHEN co.collname = 'default' THEN (SELECT d.datcollate FROM pg_catalog.pg_database d"
    "                                          WHERE d.datname = pg_catalog.current_database())"
    "      ELSE COALESCE(co.collcollate, co.collname) END"
    " FROM pg_catalog.pg_attribute a"
    " LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation"
    " WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped"
    " ORDER BY a.attnum",
    1, nullptr, oid_param, nullptr, nullptr, 0));
  if (columns == nullptr || PQresultStatus(columns.get()) != PGRES_TUPLES_OK)
    return command_error(conn_, columns.get(), doing);
  for (int i = 0; i < PQntuples(columns.get()); ++i) {
    column_info c;
    c.name = PQgetvalue(columns.get(), i, 0);
    c.type_oid =
      static_cast<std::uint32_t>(std::strtoul(PQgetvalue(columns.get(), i, 1), nullptr, 10));
    c.type_name = PQgetvalue(columns.get(), i, 2);
    c.type_modifier = static_cast<std::int32_t>(std::strtol(PQgetvalue(columns.get(), i, 3),
                                                            nullptr, 10));
    c.not_null = PQgetvalue(columns.get(), i, 4)[0] == 't';
    c.generated = PQgetvalue(columns.get(), i, 5)[0] == 't';
    c.identity_always = PQgetvalue(columns.get(), i, 6)[0] == 't';
    c.collation = PQgetvalue(columns.get(), i, 7);
    info.columns.push_back(std::move(c));
  }

  pg_result_ptr key(PQexecParams(
    conn_,
    "SELECT a.attname FROM pg_catalog.pg_index i"
    " CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)"
    " JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
    " WHERE i.indrelid = $1::oid AND i.indisprimary"
    " ORDER BY k.ord",
    1, nullptr, oid_param, nullptr, nullptr, 0));
  if (key == nullptr || PQresultStatus(key.get()) != PGRES_TUPLES_OK)
    return command_error(conn_, key.get(), doing);
  for (int i = 0; i < PQntuples(key.get()); ++i)
    info.primary_key.emplace_back(PQgetvalue(key.get(), i, 0));
  if (info.primary_key.empty())
    return status::invalid_argument("table " + info.schema + "." + info.name
                                    + " has no primary key, so its rows cannot be matched to "
                                      "the changes the stream sends; add one with ALTER TABLE "
                                    + quote_ident(info.schema) + "."
                                    + quote_ident(info.name) + " ADD PRIMARY KEY (...)");
  return info;
}

status snapshot_reader::copy(const table_info& table, const std::vector<std::string>& columns,
                             const std::vector<column_filter>& where) {
  if (state_ == copy_state::copying)
    return status::invalid_argument("copy() while another COPY is being read; read it to the end "
                                    "with next_rows() first");
  const std::string shown = table.schema + "." + table.name;
  if (table.columns.empty())
    return status::invalid_argument("copy() needs a table described by describe(); " + shown
                                    + " has no columns");

  // Every name and value is checked before any SQL is built or sent.
  auto unknown = [&](const std::string& column, const char* as) {
    std::string known;
    for (const auto& c : table.columns)
      known += (known.empty() ? "" : ", ") + c.name;
    return status::invalid_argument("table " + shown + " has no column " + quote_ident(column)
                                    + " to " + as + "; its columns are " + known);
  };
  std::vector<std::string> selected = columns;
  if (selected.empty())
    for (const auto& c : table.columns)
      selected.push_back(c.name);
  for (const auto& c : selected)
    if (table.find(c) == nullptr)
      return unknown(c, "copy");
  for (const auto& f : where) {
    if (table.find(f.column) == nullptr)
      return unknown(f.column, "filter on");
    if (f.op == filter_op::in ? f.values.empty() : f.values.size() != 1)
      return status::invalid_argument(
        "the filter on " + quote_ident(f.column) + " has " + std::to_string(f.values.size())
        + " values; IN takes one or more, the other comparisons exactly one");
    for (const auto& v : f.values)
      if (v.find('\0') != std::string::npos)
        return status::invalid_argument("the filter on " + quote_ident(f.column)
                                        + " has a value with a NUL byte, which PostgreSQL text "
                                          "cannot hold");
  }

  auto ident = [&](const std::string& name) -> result<std::string> {
    pg_buffer_ptr quoted(PQescapeIdentifier(conn_, name.data(), name.size()));
    if (!quoted)
      return status::invalid_argument("cannot quote " + name + " (" + tidy(PQerrorMessage(conn_))
                                      + ")");
    return std::string(quoted.get());
  };
  auto literal = [&](const std::string& value) -> result<std::string> {
    pg_buffer_ptr quoted(PQescapeLiteral(conn_, value.data(), value.size()));
    if (!quoted)
      return status::invalid_argument("cannot quote the filter value '" + value + "' ("
                                      + tidy(PQerrorMessage(conn_)) + ")");
    return std::string(quoted.get());
  };

  std::string sql = "COPY (SELECT ";
  for (std::size_t i = 0; i < selected.size(); ++i) {
    auto q = ident(selected[i]);
    if (!q)
      return q.error();
    sql += (i == 0 ? "" : ", ") + *q;
  }
  auto s = ident(table.schema);
  auto t = ident(table.name);
  if (!s)
    return s.error();
  if (!t)
    return t.error();
  sql += " FROM " + *s + "." + *t;
  for (std::size_t i = 0; i < where.size(); ++i) {
    const auto& f = where[i];
    auto column = ident(f.column);
    if (!column)
      return column.error();
    sql += (i == 0 ? " WHERE " : " AND ") + *column;
    static const char* const ops[] = {" = ", " < ", " <= ", " > ", " >= ", " IN ("};
    sql += ops[static_cast<int>(f.op)];
    for (std::size_t j = 0; j < f.values.size(); ++j) {
      auto value = literal(f.values[j]);
      if (!value)
        return value.error();
      sql += (j == 0 ? "" : ", ") + *value;
    }
    if (f.op == filter_op::in)
      sql += ")";
  }
  sql += ") TO STDOUT";

  auto started = exec(conn_, sql, PGRES_COPY_OUT, "copying table " + shown);
  if (!started)
    return started.error();
  state_ = copy_state::copying;
  copy_columns_ = selected.size();
  return status::ok();
}

namespace {

// A query as the body of COPY ( ... ): without trailing blanks and semicolons.
std::string query_body(const std::string& query) {
  std::string q = query;
  while (!q.empty() && (std::isspace(static_cast<unsigned char>(q.back())) || q.back() == ';'))
    q.pop_back();
  return q;
}

} // namespace

result<table_info> snapshot_reader::describe_query(const std::string& query,
                                                   const std::vector<std::string>& key) {
  if (state_ == copy_state::copying)
    return status::invalid_argument("describe_query() while a COPY is being read; read it to the "
                                    "end first");
  if (key.empty())
    return status::invalid_argument(
      "a query has no primary key of its own; name the columns of its result that identify "
      "its rows with key = [\"id\"]");
  const std::string body = query_body(query);
  if (body.empty())
    return status::invalid_argument("the query is empty; write the SELECT whose rows the view holds");
  // Whatever the query does, it reads: a writing query fails instead.
  if (auto ro = exec(conn_, "SET default_transaction_read_only = on", PGRES_COMMAND_OK,
                     "making the connection read only");
      !ro)
    return ro.error();
  pg_result_ptr prepared(PQprepare(conn_, "", body.c_str(), 0, nullptr));
  if (prepared == nullptr || PQresultStatus(prepared.get()) != PGRES_COMMAND_OK)
    return command_error(conn_, prepared.get(), "preparing the view's query");
  pg_result_ptr described(PQdescribePrepared(conn_, ""));
  if (described == nullptr || PQresultStatus(described.get()) != PGRES_COMMAND_OK)
    return command_error(conn_, described.get(), "describing the view's query");
  table_info info;
  info.name = "query";
  const int n = PQnfields(described.get());
  if (n == 0)
    return status::invalid_argument("the query returns no columns; a view's query must be a "
                                    "SELECT (or VALUES, TABLE) that returns rows");
  std::string oids = "{";
  for (int i = 0; i < n; ++i) {
    column_info c;
    c.name = PQfname(described.get(), i);
    c.type_oid = static_cast<std::uint32_t>(PQftype(described.get(), i));
    c.type_modifier = PQfmod(described.get(), i);
    if (info.find(c.name) != nullptr)
      return status::invalid_argument("the query returns two columns named '" + c.name
                                      + "'; give each result column its own name with AS");
    oids += (i == 0 ? "" : ",") + std::to_string(c.type_oid);
    info.columns.push_back(std::move(c));
  }
  oids += "}";
  // Type names for types without a built-in mapping, as format_type prints them.
  const char* params[] = {oids.c_str()};
  pg_result_ptr names(PQexecParams(
    conn_, "SELECT t.oid, pg_catalog.format_type(t.oid, NULL) FROM pg_catalog.pg_type t"
           " WHERE t.oid = ANY($1::oid[])",
    1, nullptr, params, nullptr, nullptr, 0));
  if (names == nullptr || PQresultStatus(names.get()) != PGRES_TUPLES_OK)
    return command_error(conn_, names.get(), "naming the types of the query's columns");
  for (int r = 0; r < PQntuples(names.get()); ++r) {
    auto oid = static_cast<std::uint32_t>(std::strtoul(PQgetvalue(names.get(), r, 0), nullptr, 10));
    for (auto& c : info.columns)
      if (c.type_oid == oid)
        c.type_name = PQgetvalue(names.get(), r, 1);
  }
  for (const auto& k : key) {
    if (info.find(k) == nullptr) {
      std::string known;
      for (const auto& c : info.columns)
        known += (known.empty() ? "" : ", ") + c.name;
      return status::invalid_argument("key column '" + k
                                      + "' is not among the query's result columns (" + known
                                      + "); name result columns in key, or select '" + k
                                      + "' in the query");
    }
    info.primary_key.push_back(k);
  }
  return info;
}

status snapshot_reader::copy_query(const std::string& query, const table_info& info) {
  if (state_ == copy_state::copying)
    return status::invalid_argument("copy_query() while another COPY is being read; read it to "
                                    "the end with next_rows() first");
  // In key order (the keys' text, bytewise), so a key that repeats comes in
  // adjacent rows and a reader checks it with one key in memory. A CTE keeps
  // a writing query a query that fails as one (read only), not a syntax error.
  std::string order;
  for (const auto& k : info.primary_key) {
    pg_buffer_ptr quoted(PQescapeIdentifier(conn_, k.data(), k.size()));
    if (!quoted)
      return status::invalid_argument("cannot quote key column " + k + " ("
                                      + tidy(PQerrorMessage(conn_)) + ")");
    order += std::string(order.empty() ? " ORDER BY " : ", ") + "(q." + quoted.get()
             + ")::text COLLATE \"C\"";
  }
  auto started = exec(conn_, "COPY (WITH q AS (" + query_body(query) + ") SELECT * FROM q" + order
                               + ") TO STDOUT",
                      PGRES_COPY_OUT, "copying the view's query");
  if (!started)
    return started.error();
  state_ = copy_state::copying;
  copy_columns_ = info.columns.size();
  return status::ok();
}

result<std::optional<std::size_t>> snapshot_reader::next_lines(
  std::size_t max_rows, std::size_t max_bytes,
  const std::function<status(std::string_view line)>& fn) {
  using count = std::optional<std::size_t>;
  if (max_rows == 0)
    return status::invalid_argument("next_rows() needs max_rows of at least 1");
  if (state_ == copy_state::done)
    return count{};
  if (state_ != copy_state::copying)
    return status::invalid_argument("next_rows() needs a COPY; call copy() first");

  std::size_t rows = 0;
  std::size_t bytes = 0;
  while (rows < max_rows && bytes < max_bytes) {
    char* raw = nullptr;
    const int n = PQgetCopyData(conn_, &raw, 0);
    if (n > 0) {
      pg_buffer_ptr owned(raw);
      bytes += static_cast<std::size_t>(n);
      if (auto st = fn(std::string_view(raw, static_cast<std::size_t>(n))); !st) {
        state_ = copy_state::idle;  // the rest of the COPY is never read
        return st;
      }
      ++rows;
      continue;
    }
    // -1: the COPY is complete, its outcome is the next result; -2: failed.
    pg_result_ptr outcome(PQgetResult(conn_));
    while (pg_result_ptr extra{PQgetResult(conn_)}) {
    }
    if (n == -2 || outcome == nullptr || PQresultStatus(outcome.get()) != PGRES_COMMAND_OK) {
      state_ = copy_state::idle;  // rows already returned may be all there is; say so
      return command_error(conn_, outcome.get(), "reading COPY rows");
    }
    state_ = copy_state::done;
    break;
  }
  if (rows == 0)
    return count{};
  return count(rows);
}

std::size_t snapshot_reader::copy_columns() const {
  return copy_columns_;
}

result<std::optional<std::vector<copy_row>>> snapshot_reader::next_rows(std::size_t max_rows,
                                                                        std::size_t max_bytes) {
  using chunk = std::optional<std::vector<copy_row>>;
  std::vector<copy_row> rows;
  auto n = next_lines(max_rows, max_bytes, [&](std::string_view line) -> status {
    auto row = parse_copy_text_row(line);
    if (!row)
      return row.error();
    if (row->size() != copy_columns_)
      return status::corruption("COPY sent a row of " + std::to_string(row->size())
                                + " fields for " + std::to_string(copy_columns_) + " columns");
    rows.push_back(std::move(row).value());
    return status::ok();
  });
  if (!n)
    return n.error();
  if (!*n)
    return chunk{};
  return chunk(std::move(rows));
}

// --- COPY text format --------------------------------------------------------

status for_each_copy_field(std::string_view line, std::string& scratch,
                           const std::function<status(const std::string_view*)>& fn) {
  if (!line.empty() && line.back() == '\n')
    line.remove_suffix(1);
  std::size_t i = 0;
  for (std::size_t index = 0;; ++index) {
    const std::size_t field_start = i;
    std::size_t end = line.find('\t', i);
    if (end == std::string_view::npos)
      end = line.size();
    const std::string_view raw = line.substr(field_start, end - field_start);
    status st;
    if (raw == "\\N") {
      st = fn(nullptr);
    } else if (raw.find('\\') == std::string_view::npos) {
      st = fn(&raw);  // most fields: nothing to unescape
    } else {
      std::string& value = scratch;
      value.clear();
      for (std::size_t k = 0; k < raw.size(); ++k) {
        const char c = raw[k];
        if (c != '\\') {
          value += c;
          continue;
        }
        if (++k == raw.size())
          return status::corruption("COPY text field " + std::to_string(index + 1)
                                    + " ends with a lone backslash");
        const char e = raw[k];
        switch (e) {
          case 'b': value += '\b'; break;
          case 'f': value += '\f'; break;
          case 'n': value += '\n'; break;
          case 'r': value += '\r'; break;
          case 't': value += '\t'; break;
          case 'v': value += '\v'; break;
          case 'x': {
            int v = 0;
            int digits = 0;
            while (digits < 2 && k + 1 < raw.size() && hex_digit(raw[k + 1]) >= 0) {
              v = v * 16 + hex_digit(raw[++k]);
              ++digits;
            }
            value += digits == 0 ? 'x' : static_cast<char>(v);
            break;
          }
          default:
            if (e >= '0' && e <= '7') {
              int v = e - '0';
              for (int digits = 1; digits < 3 && k + 1 < raw.size() && raw[k + 1] >= '0'
                                   && raw[k + 1] <= '7';
                   ++digits)
                v = v * 8 + (raw[++k] - '0');
              value += static_cast<char>(v & 0xff);
            } else {
              value += e;  // \\ and any other escaped character stand for themselves
            }
        }
      }
      const std::string_view unescaped = value;
      st = fn(&unescaped);
    }
    if (!st)
      return st;
    if (end == line.size())
      break;
    i = end + 1;
  }
  return status::ok();
}

result<copy_row> parse_copy_text_row(std::string_view line) {
  copy_row row;
  row.reserve(1 + static_cast<std::size_t>(std::count(line.begin(), line.end(), '\t')));
  std::string scratch;
  auto st = for_each_copy_field(line, scratch, [&](const std::string_view* field) {
    if (field)
      row.emplace_back(std::string(*field));
    else
      row.emplace_back(std::nullopt);
    return status::ok();
  });
  if (!st)
    return st;
  return result<copy_row>(std::move(row));
}

} // namespace syncmesh::connectors::postgres
