// A materialized view of a real PostgreSQL table being re-synced: readers
// keep the old rows until the new copy is swapped in whole, status shows the
// snapshot's progress, and a node killed mid-snapshot comes back with the
// old copy.

#include <future>
#include <string>

#include <boost/test/unit_test.hpp>

#include "scenarios/postgres_server.hpp"
#include "tests/node/node_process.hpp"

using namespace syncmesh::node_test;
using syncmesh::scenarios::postgres_server;

namespace {

/// Rows in the source table; with pieces of 100 rows each delivered 60 ms
/// late, a snapshot takes about 2 s: long enough to look at it mid-way.
constexpr int table_rows = 3000;

postgres_server& server() {
  static std::unique_ptr<postgres_server> shared = [] {
    auto started = postgres_server::start();
    BOOST_REQUIRE_MESSAGE(started.is_ok(), started.error().to_string());
    return std::move(started).value();
  }();
  return *shared;
}

void sql(const std::string& statement) {
  auto r = server().sql(statement);
  BOOST_REQUIRE_MESSAGE(r.is_ok(), statement << " -> " << r.error().to_string());
}

std::string config_for(const std::string& table) {
  return "node_id = \"snap\"\n"
         "data_dir = \"data\"\n"
         "control_endpoint = \"tcp://127.0.0.1:0\"\n"
         "durability = \"buffered\"\n"
         "query_rows_max = 100000\n"
         "\n[[remotes]]\nname = \"pg\"\nkind = \"postgres\"\n"
         "conninfo = \"" + server().conninfo() + "\"\n"
         "snapshot_batch_rows = 100\n"
         "snapshot_delay_ms = 60\n"
         "\n[[views]]\nnamespace = \"pg\"\nname = \"items\"\npersistence = \"materialized\"\n"
         "remote = \"pg\"\nsource = \"public." + table + "\"\n";
}

/// How many of `rows` (id, title) have a title starting with `prefix`.
std::size_t titled(const json& rows, const std::string& prefix) {
  std::size_t n = 0;
  for (const auto& r : rows)
    if (r.is_array() && r.size() == 2 && r[1].is_string()
        && r[1].get<std::string>().rfind(prefix, 0) == 0)
      ++n;
  return n;
}

json progress_of(const json& status) {
  auto v = view_record(status, "pg.items");
  return v.is_object() && v.contains("progress") ? v["progress"] : json(nullptr);
}

struct snapshot_node {
  temp_dir dir;
  std::optional<node_process> node;

  explicit snapshot_node(const std::string& table) {
    sql("DROP TABLE IF EXISTS " + table + "; CREATE TABLE " + table
        + " (id bigint PRIMARY KEY, title text); INSERT INTO " + table
        + " SELECT g, 'old ' || g FROM generate_series(1, " + std::to_string(table_rows)
        + ") g; ANALYZE " + table);
    dir.write("node.toml", config_for(table));
    start(1);
    json last;
    const bool copied = node->await_rows(
      "pg.items", [](const json& rows) { return titled(rows, "old ") == table_rows; }, last,
      std::chrono::seconds(60));
    BOOST_REQUIRE_MESSAGE(copied, "the first sync did not copy the table; node log:\n"
                                    << tail(node->log()));
  }

  void start(int n) {
    node.emplace(dir.path() / "node.toml", dir.path() / "data", n);
    const bool serving = node->await_serving();
    BOOST_REQUIRE_MESSAGE(serving, "the node did not serve; its log:\n" << tail(node->log()));
  }

  // Starts `ctl sync pg.items` without waiting for it.
  std::future<run_result> sync_in_background() {
    return std::async(std::launch::async, [this] {
      return node->ctl({"--json", "sync", "pg.items"}, std::chrono::seconds(60));
    });
  }

  // Waits until status shows the re-sync's snapshot mid-way; its progress.
  json await_mid_snapshot() {
    json last;
    const bool mid = node->await_status(
      [](const json& s) {
        auto p = progress_of(s);
        return p.is_object() && p.value("rows_done", 0) > 0;
      },
      last, std::chrono::seconds(30));
    BOOST_REQUIRE_MESSAGE(mid, "status never showed the snapshot's progress; last status:\n"
                                 << last.dump(2));
    return progress_of(last);
  }
};

} // namespace

BOOST_AUTO_TEST_SUITE(postgres_snapshot)

BOOST_AUTO_TEST_CASE(a_materialized_view_being_resynced_serves_its_old_rows_until_the_swap) {
  snapshot_node n("snap_items");
  sql("UPDATE snap_items SET title = 'new ' || id");
  auto sync = n.sync_in_background();

  auto progress = n.await_mid_snapshot();
  // The estimate counts live rows, not the dead ones the UPDATE left (the
  // planner alone would say about twice as many).
  auto estimated = progress.value("rows_estimated", 0);
  BOOST_TEST(estimated >= table_rows * 9 / 10);
  BOOST_TEST(estimated <= table_rows * 11 / 10);
  BOOST_TEST(progress.value("rows_done", 0) < table_rows);

  // A query while the new copy is being staged reads the old copy, whole.
  auto during = n.node->rows("pg.items");
  auto still = progress_of(n.node->status());
  BOOST_REQUIRE_MESSAGE(still.is_object(),
                        "the snapshot ended before the query could be checked against it");
  BOOST_TEST(during.size() == static_cast<std::size_t>(table_rows));
  BOOST_TEST(titled(during, "old ") == static_cast<std::size_t>(table_rows));

  auto done = sync.get();
  BOOST_REQUIRE_MESSAGE(done.exit_code == 0, done);
  auto after = n.node->rows("pg.items");
  BOOST_TEST(titled(after, "new ") == static_cast<std::size_t>(table_rows));
  auto status = n.node->status();
  BOOST_TEST(progress_of(status).is_null());
  BOOST_TEST(view_record(status, "pg.items").value("state", "") == "synced");
  auto run = view_record(done.out_json(), "pg.items");
  BOOST_TEST(run.value("pulled", 0) == table_rows);
}

BOOST_AUTO_TEST_CASE(a_node_killed_mid_snapshot_restarts_with_the_old_copy_and_can_resync) {
  snapshot_node n("snap_killed");
  sql("UPDATE snap_killed SET title = 'new ' || id");
  auto sync = n.sync_in_background();
  n.await_mid_snapshot();
  n.node->kill();
  sync.get();

  n.start(2);
  auto rows = n.node->rows("pg.items");
  BOOST_TEST(rows.size() == static_cast<std::size_t>(table_rows));
  BOOST_TEST(titled(rows, "old ") == static_cast<std::size_t>(table_rows));

  auto again = n.node->ctl({"--json", "sync", "pg.items"}, std::chrono::seconds(60));
  BOOST_REQUIRE_MESSAGE(again.exit_code == 0, again);
  BOOST_TEST(titled(n.node->rows("pg.items"), "new ") == static_cast<std::size_t>(table_rows));
}

BOOST_AUTO_TEST_CASE(ctl_sync_on_a_terminal_draws_a_progress_bar_and_scripts_get_none) {
  snapshot_node n("snap_tty");
  sql("UPDATE snap_tty SET title = 'new ' || id");
  // script(1) gives ctl a terminal (stdout and stderr both go to it).
  auto on_tty = run({"/usr/bin/script", "-qec",
                     syncmesh_binary() + " ctl --node " + n.node->data_dir().string()
                       + " sync pg.items",
                     "/dev/null"},
                    std::chrono::seconds(60));
  BOOST_REQUIRE_MESSAGE(on_tty.exit_code == 0, on_tty);
  BOOST_TEST(on_tty.out.find("pg.items [") != std::string::npos, on_tty.out);
  BOOST_TEST(on_tty.out.find(" rows") != std::string::npos, on_tty.out);

  sql("UPDATE snap_tty SET title = 'newer ' || id");
  auto piped = n.node->ctl({"sync", "pg.items"}, std::chrono::seconds(60));
  BOOST_REQUIRE_MESSAGE(piped.exit_code == 0, piped);
  BOOST_TEST(piped.err.find(" rows") == std::string::npos, piped.err);
  BOOST_TEST(titled(n.node->rows("pg.items"), "newer ") == static_cast<std::size_t>(table_rows));
}

BOOST_AUTO_TEST_SUITE_END()
