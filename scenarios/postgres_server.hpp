#pragma once

// A throwaway PostgreSQL server for tests and scenarios: a fresh cluster in
// a temporary directory, set up for logical replication, on a free port of
// 127.0.0.1, and gone — process and directory — when the object is.

#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "store/status.hpp"

namespace syncmesh::scenarios {

/// How postgres_server::start() sets up its cluster.
struct postgres_options {
  /// Where initdb and postgres are. Empty: the highest version in
  /// /usr/lib/postgresql/<version>/bin.
  std::string bin_dir = "";
  /// postgresql.conf lines `name = 'value'`, written after syncmesh's own so
  /// they win. `port`, `listen_addresses` and `unix_socket_directories` are
  /// the server's to choose and are refused.
  std::vector<std::pair<std::string, std::string>> settings;
  /// The longest start() may take (initdb and the server's start together),
  /// and the longest start_again() may wait for the server to accept
  /// connections.
  std::chrono::seconds start_timeout{60};
  /// Leave the directory in place when the server goes away, for a reader
  /// of its log. The process is stopped either way.
  bool keep_dir = false;
};

/// What the last statement of a sql() call returned.
struct sql_result {
  /// Column names; empty for statements that return no rows.
  std::vector<std::string> columns;
  /// Rows in PostgreSQL's text format; SQL NULL is nullopt.
  std::vector<std::vector<std::optional<std::string>>> rows;
  /// The command tag, e.g. "SELECT 2", "INSERT 0 1", "CREATE TABLE".
  std::string command_tag;
  /// NOTICE and WARNING messages the server sent while the statements ran.
  std::vector<std::string> notices;
};

/// One PostgreSQL postmaster, a child of this process, on its own cluster:
/// superuser `postgres` with trust authentication over TCP on 127.0.0.1 and
/// a Unix socket in the temporary directory, replication connections
/// allowed, wal_level = logical, fsync off.
///
/// When this process runs as root the server runs as the `postgres` user
/// (PostgreSQL refuses root) and the directory is handed to that user.
///
/// Not thread-safe: one thread at a time. The server is SIGKILLed when the
/// thread that started it (start(), start_again(), restart()) exits, so that
/// a test process that dies leaves no server behind; that thread must
/// therefore outlive the run it started.
class postgres_server {
public:
  /// Makes a cluster in a new directory under /tmp and starts it. An error
  /// says what failed and what to do (not_found: PostgreSQL is not
  /// installed; invalid_argument: a refused setting; io_error: initdb or the
  /// server failed, with the last lines of its log). Nothing is left behind
  /// on error but, with keep_dir, the directory.
  static store::result<std::unique_ptr<postgres_server>> start(postgres_options options = {});

  /// Stops the server (fast, then immediate, then SIGKILL) and removes the
  /// directory unless keep_dir. Returns only after the postmaster is gone.
  ~postgres_server();

  postgres_server(const postgres_server&) = delete;
  postgres_server& operator=(const postgres_server&) = delete;

  /// The TCP port on 127.0.0.1; it stays the same across stop and start_again.
  int port() const noexcept { return port_; }

  /// "host=127.0.0.1 port=N user=postgres dbname=<db>", for libpq.
  std::string conninfo(const std::string& db = "postgres") const;

  /// The cluster's data directory (inside the temporary directory).
  const std::string& data_dir() const noexcept { return data_dir_; }

  /// The server's stderr log, appended to by every start.
  const std::string& log_path() const noexcept { return log_path_; }

  /// Runs `statement` — one or more statements separated by semicolons, in
  /// one implicit transaction unless they say otherwise — on a new
  /// connection to `db`, and returns what the last one returned. Errors:
  /// closed when the server is stopped, io_error when it cannot be reached,
  /// invalid_argument with PostgreSQL's message when it refuses the SQL.
  /// COPY to or from the client is not supported.
  store::result<sql_result> sql(const std::string& statement, const std::string& db = "postgres");

  /// Stops the server with a fast shutdown (what `pg_ctl stop -m fast`
  /// does: SIGINT, active transactions roll back, a checkpoint is written)
  /// and waits for it to exit. Ok when it is already stopped. If it does not
  /// exit in time it is shut down immediately, then killed, and the result
  /// is io_error; it is stopped afterwards either way.
  store::status stop();

  /// Starts the server again on the same data directory and port; ok and
  /// nothing done when it is running. io_error when it does not come up,
  /// e.g. because another process took the port meanwhile.
  store::status start_again();

  /// stop() then start_again().
  store::status restart();

  /// True while the postmaster process is alive.
  bool running();

private:
  struct run_as;

  postgres_server(postgres_options options, std::string bin_dir);

  store::status make_directory();
  store::status init_cluster(std::chrono::steady_clock::time_point deadline);
  store::status write_config();
  /// One try at starting the postmaster; `port_taken` is set when it failed
  /// because another process holds the port.
  store::status launch(std::chrono::steady_clock::time_point deadline, bool& port_taken);
  /// Signals, waits and escalates until the postmaster is gone.
  store::status shut_down(std::chrono::milliseconds fast_max);
  /// How a reader of an error gets to the log at `path`.
  std::string log_advice(const std::string& path) const;

  postgres_options options_;
  std::string bin_dir_;
  std::unique_ptr<run_as> run_as_;  // null: run the server as ourselves
  std::string root_dir_;            // the mkdtemp directory; empty until made
  std::string data_dir_;
  std::string log_path_;
  std::string base_config_;  // postgresql.conf as initdb wrote it
  int port_ = 0;
  pid_t postmaster_pid_ = 0;  // 0: not running
  bool started_ = false;      // start() succeeded; the directory outlives errors
};

} // namespace syncmesh::scenarios
