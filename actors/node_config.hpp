#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "store/status.hpp"
#include "store/store.hpp"
#include "store/value.hpp"

namespace syncmesh::actors {

/// One column of a table a remote serves (memory remotes declare theirs).
struct column_config {
  std::string name;
  std::string type;   // boolean | integer | real | text | bytes | numeric | timestamp | json
  bool key = false;   // part of the primary key (in declaration order)
  bool nullable = true;
};

/// A table held by an in-process `memory` remote, with its seed rows.
struct memory_table_config {
  std::string name;
  std::vector<column_config> columns;
  std::vector<store::row> rows;  // each row in column order, typed per column
};

/// A remote a node connects to. `kind` selects the connector: "memory" (an
/// in-process source) or "postgres"; "peer" comes with peer sync.
struct remote_config {
  std::string name;
  std::string kind;
  std::vector<memory_table_config> tables;  // kind = "memory"
  /// When true the memory remote starts down (for tests of retry paths).
  bool start_down = false;
  /// A memory remote records the mutation id of every pushed write and
  /// applies each once (idempotent upload); false makes it apply
  /// retransmissions again, as a remote without that bookkeeping would.
  bool dedupe_mutations = true;
  /// Fault: the first N pushes are applied but answered with an error, as
  /// if the acknowledgement were lost, so the writer retransmits them.
  std::uint32_t drop_push_acks = 0;
  /// A memory remote answers each snapshot this much later (taken at once,
  /// delivered late), as a remote with a large table would; a postgres
  /// remote answers each piece of a snapshot this much later (read at once,
  /// delivered late), as a slow network would; 0 = at once.
  std::uint32_t snapshot_delay_ms = 0;
  /// A snapshot moves in pieces of at most this many rows: one piece is read
  /// from the remote (PostgreSQL COPY) and staged into the store as one
  /// batch, and a view holds at most a few pieces at a time.
  std::uint32_t snapshot_batch_rows = 4096;
  /// ... and of at most this many bytes of COPY text (postgres).
  std::uint32_t snapshot_batch_bytes = 4u << 20;

  // kind = "postgres"
  /// libpq conninfo without the password: `conninfo` from the config, or
  /// built from host, port, database and user.
  std::string conninfo;
  /// From `password`, `password_file` or `password_env`; never logged.
  std::string password;
  /// Replication slots are TEMPORARY (dropped with the connection) instead of
  /// persistent.
  bool temporary_slots = false;
  /// Every this many milliseconds, while a view follows the remote's stream,
  /// the connector writes a heartbeat into the WAL
  /// (pg_logical_emit_message) so the slots' confirmed position moves on an
  /// idle database, and reports each slot's wal_status and retained bytes to
  /// its view. 0 = neither.
  std::uint32_t heartbeat_ms = 10'000;
  /// Test only: after a push's COMMIT returned and before the view hears
  /// of it, the node kills itself (SIGKILL) with this probability (drawn
  /// from the node's seed), for tests of the crash window between an
  /// upstream commit and its local acknowledgement. 0 = never.
  double failpoint_push_committed = 0;

  int line = 0;  // where it is declared in the config file
};

/// A row filter of a PostgreSQL view: `column op value`, or `column IN
/// (values)`. Values are kept as text and passed as literals, never pasted.
struct filter_config {
  std::string column;
  std::string op;                   // = < <= > >= in
  std::vector<std::string> values;  // one, or several for "in"
};

/// A view: a local relation kept in step with a source on a remote.
struct view_config {
  std::string ns;            // namespace
  std::string name;
  std::string persistence;   // materialized | realtime | sync
  std::string remote;        // name of a [[remotes]] entry
  std::string source;        // table on the remote
  std::string write_policy = "local_first";  // sync views: local_first | origin_first
  // origin_first views while the remote is down (or the view stopped):
  // "refuse" the write with a sentence, or "local_first" (queue it).
  std::string origin_first_offline = "refuse";
  // Sync views of PostgreSQL tables: how a write that meets a changed row
  // (a conflict) ends — "remote-wins" (the remote's row replaces the local
  // one), "local-wins" (the write is forced) or "lww" (the newer
  // `lww_column` wins); the column a compare-and-set reads (empty: the
  // whole row); and whether a write the remote refuses is skipped ("skip":
  // it ends failed and the queue goes on) or holds the queue ("block").
  std::string conflict = "remote-wins";
  // conflict = "custom": the registered resolver actor that decides
  // (actors/conflict_resolver.hpp).
  std::string conflict_resolver;
  std::string lww_column;
  std::string version_column;
  std::string on_error = "skip";
  // Sync views of PostgreSQL tables keyed by a serial or identity column:
  // how many ids to lease from the key's sequence at a time, so that inserts
  // that leave the key out get one even offline (0: lease none; such an
  // insert must then give its key). See connectors/postgres/id_lease.hpp.
  std::uint64_t id_block = 1000;
  // Sync views: "uuid" gives an insert that leaves a one-column text or
  // uuid key out a fresh UUID version 7 made here (actors/client_key.hpp),
  // online or offline, instead of a leased id; "" for none.
  std::string client_key;
  bool enabled = true;
  // Views of PostgreSQL remotes: `source` is "schema.table" (or "table" in
  // public), optionally narrowed to `columns` and `filters`; or a `query`
  // with the `key` columns that identify its rows.
  std::vector<std::string> columns;
  std::vector<filter_config> filters;
  std::string query;
  std::vector<std::string> key;
  int line = 0;

  std::string full_name() const { return ns + "." + name; }
};

/// Capped exponential backoff: delay(n) = min(initial * 2^(n-1), max),
/// then multiplied by a factor drawn uniformly from [1 - jitter, 1 + jitter]
/// (and capped again at max).
struct backoff_config {
  std::uint64_t initial_ms = 500;
  std::uint64_t max_ms = 30'000;
  double jitter = 0.2;  // 0 <= jitter < 1
};

/// A table this node keeps in sync with its peers, stored under its name
/// ("ns.table") next to the views.
struct peer_table_config {
  std::string name;
  std::vector<column_config> columns;
  int line = 0;
};

/// A client key admitted on the peer socket, and the node id it may use.
struct peer_allow_config {
  std::string node;
  std::string key;  // Z85 public key
};

/// [peer]: how this node listens for peer links, secures them and times
/// the protocol. Only used when the config has [[links]].
struct peer_config {
  /// Where incoming links arrive; port 0 lets the OS choose on first start,
  /// and the node binds the same port again on restart (kept in
  /// <data_dir>/peer_port) so peers configured with it find it. Empty: no
  /// incoming links.
  std::string listen = "tcp://127.0.0.1:0";
  std::string secret_key_file;  // with public_key_file: CURVE on every link
  std::string public_key_file;
  std::vector<peer_allow_config> allow;
  bool insecure = false;  // allow a non-loopback listen without keys
  std::size_t batch_max = 128;         // changes per delta
  std::size_t in_flight_max = 32;      // unacknowledged deltas per link
  /// Flow control as a receiver: deltas a peer may send past the last one
  /// acknowledged; the peer is paused at pause_at deltas not yet durable.
  std::size_t credits = 64;
  /// The same window in bytes of frames, so that what a receiver queues
  /// per link stays bounded however big the rows.
  std::uint64_t credit_bytes = 32ULL << 20;
  std::size_t pause_at = 48;
  std::uint64_t commit_delay_ms = 0;   // received deltas wait this long to be committed together
  std::size_t commits_in_flight_max = 8;  // commits being written while the next merge; 1: none
  std::uint64_t retransmit_ms = 1000;  // resend unacknowledged deltas after
  std::uint64_t heartbeat_ms = 1000;   // ping an idle link this often
  std::uint64_t dead_after_ms = 5000;  // silence that ends a link
  std::uint64_t reconnect_initial_ms = 100;
  std::uint64_t reconnect_max_ms = 5000;
  /// How long a deleted row's merge state (its tombstone) is kept.
  std::uint64_t tombstone_retention_ms = 7ULL * 24 * 3600 * 1000;
  /// How long a change stays in the peer log (0: for ever); a peer that
  /// comes back lacking a dropped change gets a full sync.
  std::uint64_t log_retention_ms = 7ULL * 24 * 3600 * 1000;
  /// How often tombstones and old peer-log entries are looked for.
  std::uint64_t gc_interval_ms = 60'000;
  std::uint64_t frame_bytes_max = std::uint64_t{4} << 20;
  /// Between writes with equal HLCs the one made on this node wins; empty:
  /// the larger node id. Must be the same on every node of the cluster.
  std::string tie_winner;
  /// The custom trust policy (actors/trust_policy.hpp) of every link that
  /// names none itself; empty: none.
  std::string trust_policy;
  /// Test only: the peer actor fails (exits with an error, which its
  /// supervisor restarts it from) on the frame it receives after this many,
  /// once per process; 0: never.
  std::uint64_t failpoint_fail_after_frames = 0;
};

/// A row filter of a link (`filters` of [[links]]): rows of `table` whose
/// `column` compares to `values` by `op` (= < <= > >= in). Values are typed
/// by the column when the config is read.
struct peer_filter_config {
  std::string table;   // ns.table, a peer table
  std::string column;
  std::string op = "=";
  std::vector<store::value> values;  // one, or several for "in"
};

/// A [[links]] entry: one peer as this node sees it.
struct peer_link_config {
  std::string peer;            // the other node's id
  std::string endpoint;        // set: this side dials (client role)
  std::string server_key;      // the peer's public key (Z85), with CURVE
  std::string mode = "bidirectional";  // push | pull | bidirectional
  std::vector<std::string> tables;     // empty: every peer table
  std::vector<std::string> trusted_origins;  // empty: any origin
  std::string trust_policy;  // a registered custom policy; empty: [peer]'s
  std::vector<std::string> exclude;          // "ns.table.column": never crosses the link
  std::vector<peer_filter_config> filters;   // rows that cross the link
  int line = 0;
};

/// Everything a node process needs; read from TOML by load_node_config().
struct node_config {
  std::string node_id;                // required
  std::string data_dir;               // required; relative paths are relative to the config file
  /// ZeroMQ endpoint of the control socket; port 0 or '*' lets the OS choose
  /// (the bound endpoint is written to <data_dir>/node.json).
  std::string control_endpoint = "tcp://127.0.0.1:7400";
  /// PUB endpoint of the event bus; empty = control port + 1; port 0 or '*'
  /// lets the OS choose.
  std::string events_endpoint;
  store::durability_mode durability = store::durability_mode::fsync;
  std::string log_level = "info";     // trace | debug | info | warn | error | off
  std::uint64_t control_request_bytes_max = 1u << 20;
  std::uint64_t query_rows_max = 10'000;  // rows one `query` reply may carry
  backoff_config retry;                   // view sync retries
  backoff_config restart{200, 10'000, 0.2};  // supervisor restarts of a crashed child
  std::uint32_t restart_intensity_max = 5;   // restarts allowed within the window...
  std::uint64_t restart_window_ms = 60'000;  // ...before the child is marked failed
  std::uint64_t seed = 0;  // jitter seed; 0 = random at start
  std::vector<remote_config> remotes;
  std::vector<view_config> views;
  std::vector<peer_table_config> tables;  // peer-synced local tables
  peer_config peer;
  std::vector<peer_link_config> links;

  std::string source_path;  // the file it was read from, for messages
};

/// Reads and validates a node config. Errors are invalid_argument statuses
/// (io_error when the file cannot be read) whose message starts with
/// "FILE:LINE:COL: " and says what is wrong and what to do: unknown keys (naming the known ones), wrong types, missing required
/// fields, duplicate remote or view names, views naming unknown remotes or
/// sources, rows that do not fit their table's columns, bad enum values.
store::result<node_config> load_node_config(const std::string& path);

/// The same, from text; `source_name` is used in messages in place of FILE.
store::result<node_config> parse_node_config(const std::string& text,
                                             const std::string& source_name);

/// The store column kind and type name for a config column type. A key
/// column is never nullable, whatever `nullable` says.
store::result<store::column> to_store_column(const column_config& c);

/// The schema of a memory table (its name, columns and key columns).
/// REQUIRES: the table came from load_node_config (its columns are valid).
store::schema memory_table_schema(const memory_table_config& t);

/// The schema of a peer table. REQUIRES: from load_node_config.
store::schema peer_table_schema(const peer_table_config& t);

} // namespace syncmesh::actors
