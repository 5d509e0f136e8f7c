#pragma once

// PostgreSQL the way PostgreSQL replicates itself: a logical replication slot
// created with an exported snapshot, the snapshot read with COPY on a second
// connection, and the slot's pgoutput stream read from the consistent point
// on, so snapshot and stream hand over without gap or duplicate.
//
//   auto stream = replication_stream::connect(conninfo);        // replication=database
//   auto slot = stream->create_slot("node_1", false);           // LSN + snapshot name
//   auto reader = snapshot_reader::connect(conninfo);           // a normal connection
//   reader->begin(slot->snapshot_name);                         // import it first...
//   stream->start("node_1", slot->consistent_point, {"pub"});   // ...then stream
//   reader->copy(*reader->describe("public", "items"));
//   while (auto rows = reader->next_rows(1000); rows && *rows) ...
//   while (auto event = stream->poll(); event && *event) ...    // when socket() is readable
//   stream->confirm(end_of_what_is_durable_locally);
//
// Both classes turn every libpq failure into a store::status whose message
// says what is wrong and what to do. Neither is thread-safe: one thread at a
// time (an actor owns each).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "store/filter_op.hpp"
#include "store/status.hpp"

struct pg_conn;  // libpq's PGconn; only the source file includes libpq-fe.h

namespace syncmesh::connectors::postgres {

/// A position in PostgreSQL's write-ahead log. PostgreSQL prints it as two
/// hexadecimal 32-bit halves, "16/B374D848"; 0/0 means "no position".
struct lsn {
  std::uint64_t value = 0;

  /// Reads "16/B374D848" (either case, one to eight digits per half).
  /// invalid_argument for anything else.
  static store::result<lsn> parse(std::string_view text);

  /// "16/B374D848": upper case, no leading zeros, as PostgreSQL prints it.
  std::string to_string() const;

  friend bool operator==(lsn a, lsn b) noexcept { return a.value == b.value; }
  friend bool operator!=(lsn a, lsn b) noexcept { return a.value != b.value; }
  friend bool operator<(lsn a, lsn b) noexcept { return a.value < b.value; }
  friend bool operator<=(lsn a, lsn b) noexcept { return a.value <= b.value; }
  friend bool operator>(lsn a, lsn b) noexcept { return a.value > b.value; }
  friend bool operator>=(lsn a, lsn b) noexcept { return a.value >= b.value; }
};

/// What CREATE_REPLICATION_SLOT returned.
struct slot_info {
  std::string slot_name;
  /// The stream starts exactly after the snapshot: start() from here.
  lsn consistent_point;
  /// The exported snapshot, for snapshot_reader::begin(). Valid only while
  /// the replication_stream that created the slot stays open and runs no
  /// other command.
  std::string snapshot_name;
};

/// One XLogData message: one pgoutput message and where it sits in the WAL.
struct xlog_data {
  /// For pgoutput, start and end are the same LSN: a Begin carries its
  /// transaction's first LSN, a change its record's LSN, a Commit the end of
  /// its commit record (the LSN to confirm once the transaction is durable).
  lsn start;
  lsn end;
  /// The pgoutput message bytes after the 25-byte 'w' header; the first byte
  /// is the message type ('B', 'R', 'I', 'C', ...). Decode with
  /// connectors/postgres/pgoutput.hpp.
  std::string payload;
};

/// A primary keepalive: the server has sent everything up to `end`.
struct keepalive {
  lsn end;
  /// The server asked for a status update; poll() has already sent it.
  bool reply_requested = false;
};

using stream_event = std::variant<xlog_data, keepalive>;

/// A logical replication connection (libpq, replication=database) that
/// manages pgoutput slots and streams one of them.
///
/// Slot commands (create_slot, drop_slot) and start() block until the server
/// answers. Once start() succeeded the connection only streams: poll() and
/// confirm() never block, so an actor can wait on socket() and call poll()
/// when it is readable. A lost connection is final; connect again and
/// start() from the last LSN the caller confirmed.
class replication_stream {
public:
  /// Opens a replication connection. `conninfo` is a libpq connection string
  /// or URI; replication=database is added (and wins), connect_timeout
  /// defaults to 10 s. Blocks until connected or refused. Errors, each a
  /// sentence saying what to change:
  ///   io_error          the server cannot be reached (host, port, not running)
  ///   invalid_argument  the server refused the login (user, password,
  ///                     pg_hba.conf); the role lacks the REPLICATION
  ///                     attribute; wal_level is not logical; a malformed
  ///                     connection string
  ///   not_found         the database does not exist
  static store::result<std::unique_ptr<replication_stream>> connect(const std::string& conninfo);

  ~replication_stream();
  replication_stream(const replication_stream&) = delete;
  replication_stream& operator=(const replication_stream&) = delete;

  /// CREATE_REPLICATION_SLOT name [TEMPORARY] LOGICAL pgoutput (SNAPSHOT
  /// 'export'). A temporary slot is dropped when this connection closes.
  /// The returned snapshot stays valid until the next command on this
  /// connection (start, create_slot, drop_slot) or until it closes: import it
  /// with snapshot_reader::begin() before then. Slot names are 1 to 63 of
  /// a-z, 0-9 and _. Errors: invalid_argument for a bad name, an existing
  /// slot, no free slot (max_replication_slots), or after start().
  store::result<slot_info> create_slot(const std::string& name, bool temporary);

  /// Whether a slot named `name` exists, asked on a separate normal
  /// connection (pg_replication_slots) so that an exported snapshot on this
  /// one stays valid.
  store::result<bool> slot_exists(const std::string& name);

  /// DROP_REPLICATION_SLOT name [WAIT]. not_found when there is no such
  /// slot, invalid_argument when another connection is streaming it (unless
  /// `wait`: then it blocks until that connection lets go) or after start()
  /// on this one.
  store::status drop_slot(const std::string& name, bool wait = false);

  /// START_REPLICATION SLOT slot LOGICAL from (proto_version '1',
  /// publication_names '...', messages 'true'|'false') and enters COPY BOTH.
  /// `from` 0/0 continues at the slot's confirmed position; PostgreSQL also
  /// never goes back before that position. Transactions that committed
  /// before `from` are not sent again. Errors: not_found for a missing slot,
  /// invalid_argument for a slot in use elsewhere, no publications, or a
  /// second start(). A publication that does not exist is reported by the
  /// server when the first change is decoded, i.e. by poll().
  store::status start(const std::string& slot, lsn from,
                      const std::vector<std::string>& publications, bool messages = true);

  /// The connection's socket, for poll(2)/epoll: wait for readable, and for
  /// writable too while wants_write(). -1 once the connection is gone.
  int socket() const;

  /// True when a status update could not be sent in full without blocking;
  /// the next poll() or confirm() sends the rest.
  bool wants_write() const noexcept { return flush_pending_ || update_pending_; }

  /// The next message from the stream, or nullopt when none has arrived yet;
  /// never blocks. Call until nullopt each time socket() is readable.
  /// A keepalive that asks for a reply is answered before it is returned.
  ///
  /// The reply carries the last confirmed LSN. When the caller has confirmed
  /// everything poll() handed out (no transaction open, the last Commit
  /// confirmed), a keepalive's end is confirmed too, with a status update
  /// whether or not one was asked for: nothing before it is pending, and
  /// without this the slot would hold WAL back for as long as the published
  /// tables stay quiet while others change (PostgreSQL's own subscriber
  /// does the same).
  ///
  /// Errors: io_error when the connection is lost or the server ends the
  /// stream (e.g. it shuts down) — connect again and start() from the last
  /// confirmed LSN; not_found when the server reports a missing publication;
  /// corruption for a message this client cannot read; invalid_argument
  /// before start().
  store::result<std::optional<stream_event>> poll();

  /// Reports `flushed` as written, flushed and applied (a Standby Status
  /// Update): the slot may release WAL up to it and a restart of the stream
  /// from the slot begins after it. The caller passes only what is durable
  /// locally, e.g. the end LSN of the last Commit whose batch is committed.
  /// The confirmed LSN never moves back; an older `flushed` is ignored.
  /// io_error when the connection is lost; invalid_argument before start().
  store::status confirm(lsn flushed);

  /// The last LSN reported to the server as flushed (0/0 before any).
  lsn confirmed() const noexcept { return confirmed_; }

private:
  replication_stream(pg_conn* conn, std::string conninfo);

  store::status send_status_update();
  store::status flush_output();
  store::result<std::optional<stream_event>> read_message(const char* data, std::size_t size);
  store::status stream_ended();
  store::status lost(const std::string& what);
  store::status refuse_after_start(const char* what) const;

  pg_conn* conn_;
  std::string conninfo_;  // as the caller gave it, for slot_exists()
  bool streaming_ = false;
  bool ended_ = false;           // the stream failed or the server ended it
  bool in_transaction_ = false;  // a Begin was handed out, its Commit not yet
  bool update_pending_ = false;  // a status update waits to be queued
  bool flush_pending_ = false;   // queued output waits for the socket
  lsn confirmed_;
  lsn handed_out_;  // the highest LSN of an XLogData that poll() returned
  std::string slot_;
};

/// Whether a server error (by SQLSTATE) that ended a replication stream
/// ends only that connection, so that a new one may go on from the slot:
/// classes 08 (connection), 53 (resources) and 57 (operator intervention:
/// a shutdown, a restart). Any other error (58P01 WAL removed, 55000 a slot
/// that cannot serve changes, XX000 a decoding failure) would end the next
/// stream from the slot the same way.
bool stream_error_resumable(const std::string& sqlstate);

/// One column of a table, in table order.
struct column_info {
  std::string name;
  std::uint32_t type_oid = 0;
  /// format_type(): "integer", "character varying(20)", "public.mood".
  std::string type_name;
  std::int32_t type_modifier = -1;
  bool not_null = false;
  /// GENERATED ALWAYS AS (...) STORED; pgoutput (PostgreSQL 15) does not send
  /// these columns, the snapshot does.
  bool generated = false;
  /// GENERATED ALWAYS AS IDENTITY: an INSERT that gives it a value must say
  /// OVERRIDING SYSTEM VALUE, and an UPDATE may not set it.
  bool identity_always = false;
  /// The collation its comparisons use ("C", "POSIX", "en_US.UTF-8", the
  /// database's for the default one); empty for types without one.
  std::string collation;
};

/// A table as the catalog describes it.
struct table_info {
  std::uint32_t oid = 0;  // the relation oid pgoutput's Relation message names
  std::string schema;
  std::string name;
  std::vector<column_info> columns;
  std::vector<std::string> primary_key;  // column names in key order; never empty

  /// The column called `column`, or nullptr.
  const column_info* find(std::string_view column) const;
};

/// A comparison in a snapshot filter.
using store::filter_op;

/// `column op value` (one value) or `column IN (values...)` (at least one).
/// Values are PostgreSQL text input for the column's type and always travel
/// as quoted literals; the column must be one of the table's.
struct column_filter {
  std::string column;
  filter_op op = filter_op::eq;
  std::vector<std::string> values;
};

/// One row of COPY text output: one entry per column, nullopt for SQL NULL.
using copy_row = std::vector<std::optional<std::string>>;

/// The default bound on the bytes of COPY text one next_rows() call returns.
inline constexpr std::size_t snapshot_chunk_bytes_max_default = 8u << 20;

/// Reads tables on a normal connection, inside an exported snapshot when
/// begin() imported one: COPY (SELECT ...) TO STDOUT in text format, a
/// bounded chunk of rows per call. Every call blocks until the server
/// answers.
class snapshot_reader {
public:
  /// Opens a normal connection (replication is never set). Errors as
  /// replication_stream::connect, without the replication ones.
  static store::result<std::unique_ptr<snapshot_reader>> connect(const std::string& conninfo);

  ~snapshot_reader();
  snapshot_reader(const snapshot_reader&) = delete;
  snapshot_reader& operator=(const snapshot_reader&) = delete;

  /// BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION
  /// SNAPSHOT 'snapshot_name'. Every later describe() and copy() sees the
  /// database as of the slot's consistent point, until commit(). not_found
  /// when the snapshot no longer exists (its replication connection moved on
  /// or closed): create the slot again.
  store::status begin(const std::string& snapshot_name);

  /// Ends the transaction begin() opened. An error from PostgreSQL inside it
  /// (e.g. a filter value its column's type cannot take) aborts it; commit()
  /// then rolls back and a new begin() needs a new snapshot.
  store::status commit();

  /// The columns and primary key of `schema.table` (`schema` empty: the first
  /// match in the search path). not_found: "table public.nope does not
  /// exist; check the name or the search path"; invalid_argument: the table
  /// has no primary key.
  store::result<table_info> describe(const std::string& schema, const std::string& table);

  /// Starts COPY (SELECT columns FROM table WHERE filters AND ...) TO STDOUT.
  /// `columns` empty: all of the table's, in table order. Column names are
  /// checked against `table` and quoted as identifiers, values are quoted
  /// as literals, and a refused filter or column is reported before any SQL
  /// runs (invalid_argument, naming it). Read the rows with next_rows()
  /// until it returns nullopt before the next copy().
  store::status copy(const table_info& table, const std::vector<std::string>& columns = {},
                     const std::vector<column_filter>& where = {});

  /// The result columns of `query`, a single SELECT, VALUES or TABLE
  /// statement, without running it (PostgreSQL parses and plans it). From
  /// then on this connection is read only: a query that would write fails.
  /// The returned table_info names no table (oid 0, schema "", name "query");
  /// its primary_key is `key`. invalid_argument, as a sentence, when `key`
  /// is empty (name the columns that identify the rows), a key column is
  /// not among the result's columns (naming both), two result columns share
  /// a name, or PostgreSQL refuses the query (its own sentence).
  store::result<table_info> describe_query(const std::string& query,
                                           const std::vector<std::string>& key);

  /// Starts COPY (query) TO STDOUT, its rows ordered by the text of their
  /// key columns (info.primary_key) in byte order, so rows with the same key
  /// are adjacent; read them with next_rows(). `info` is what
  /// describe_query() returned for the same query.
  store::status copy_query(const std::string& query, const table_info& info);

  /// Up to `max_rows` rows (at least one unless the COPY is done), and fewer
  /// once the chunk holds `max_bytes` bytes of COPY text; nullopt when the
  /// COPY has no more rows. Memory stays bounded by one chunk. Errors:
  /// invalid_argument without a copy() or for max_rows 0; io_error when the
  /// connection is lost; PostgreSQL's error otherwise. After an error the
  /// COPY is over and its rows are incomplete: the next call is refused, not
  /// answered with nullopt.
  store::result<std::optional<std::vector<copy_row>>> next_rows(
    std::size_t max_rows, std::size_t max_bytes = snapshot_chunk_bytes_max_default);

  /// As next_rows(), but hands each row's COPY text line to `fn` (valid
  /// during the call) instead of parsing it, and returns how many it handed
  /// over. An error `fn` returns ends the chunk and the COPY with that error.
  store::result<std::optional<std::size_t>> next_lines(
    std::size_t max_rows, std::size_t max_bytes,
    const std::function<store::status(std::string_view line)>& fn);

  /// Fields per row of the running COPY (its columns).
  std::size_t copy_columns() const;

private:
  enum class copy_state { idle, copying, done };

  explicit snapshot_reader(pg_conn* conn);

  pg_conn* conn_;
  copy_state state_ = copy_state::idle;
  std::size_t copy_columns_ = 0;  // fields per row of the running COPY
  bool in_transaction_ = false;
};

/// Parses one row of COPY text format: fields separated by tabs, \N alone for
/// NULL, and the backslash escapes \b \f \n \r \t \v \\, \ooo (octal) and
/// \xhh (hex); a backslash before any other character stands for that
/// character. One trailing newline is ignored. corruption for a row that
/// ends inside an escape.
store::result<copy_row> parse_copy_text_row(std::string_view line);

/// Parses one row of COPY text format as parse_copy_text_row() does, calling
/// fn(field) for each field in order without copying it: nullptr for NULL,
/// else the unescaped text, a view of `line` when it holds no escape and of
/// `scratch` otherwise (valid until fn returns). The first error fn returns
/// ends the row with that error.
store::status for_each_copy_field(std::string_view line, std::string& scratch,
                                  const std::function<store::status(const std::string_view*)>& fn);

} // namespace syncmesh::connectors::postgres
