// A materialized view of a real PostgreSQL table being re-synced: readers
// keep the old rows until the new copy is swapped in whole, status shows the
// snapshot's progress, and a node killed mid-snapshot comes back with the
// old copy.

#include <future>
#include <string>

#include <boost/test/unit_test.hpp>

#include "scenarios/postgres_server.hpp"
#include "tests/shared_postgres.hpp"
#include "tests/node/node_process.hpp"

using namespace syncmesh::node_test;
using syncmesh::scenarios::postgres_server;

namespace {

/// Rows in the source table; with pieces of 100 rows each delivered 60 ms
/// late, a snapshot takes about 2 s: long enough to look at it mid-way.
constexpr int table_rows = 3000;

postgres_server& server() { return syncmesh::test::shared_postgres(); }

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

// A query view streams like a table: in pieces of snapshot_batch_rows into a
// staged copy, with progress in status, never the whole result at once.
BOOST_AUTO_TEST_CASE(a_query_view_over_many_rows_is_staged_in_pieces_and_holds_the_result) {
  sql("DROP TABLE IF EXISTS snap_orders; CREATE TABLE snap_orders (id bigint PRIMARY KEY, "
      "customer text, amount numeric(10,2)); INSERT INTO snap_orders SELECT g, 'c' || (g % 1500), "
      "g * 0.25 FROM generate_series(1, 6000) g; ANALYZE snap_orders");
  temp_dir dir;
  // Keys padded so the query's key order is numeric: the repeated key of
  // q.dupes falls on the border of two pieces (rows 100 and 101).
  dir.write("node.toml",
            "node_id = \"snapq\"\ndata_dir = \"data\"\ncontrol_endpoint = \"tcp://127.0.0.1:0\"\n"
            "durability = \"buffered\"\nquery_rows_max = 100000\n"
            "\n[[remotes]]\nname = \"pg\"\nkind = \"postgres\"\nconninfo = \""
              + server().conninfo() + "\"\nsnapshot_batch_rows = 100\nsnapshot_delay_ms = 60\n"
            "\n[[views]]\nnamespace = \"q\"\nname = \"totals\"\npersistence = \"materialized\"\n"
            "remote = \"pg\"\nkey = [\"customer\"]\nquery = \"SELECT customer, count(*) AS n, "
            "sum(amount) AS total FROM snap_orders GROUP BY customer\"\n"
            "\n[[views]]\nnamespace = \"q\"\nname = \"dupes\"\npersistence = \"materialized\"\n"
            "remote = \"pg\"\nkey = [\"k\"]\nenabled = false\nquery = \"SELECT lpad(g::text, 5, '0') "
            "AS k FROM generate_series(1, 300) g UNION ALL SELECT '00100'\"\n");
  node_process node(dir.path() / "node.toml", dir.path() / "data", 1);
  BOOST_REQUIRE_MESSAGE(node.await_serving(), "the node did not serve; its log:\n" << tail(node.log()));

  json last;
  const bool mid = node.await_status(
    [](const json& s) {
      auto v = view_record(s, "q.totals");
      if (!v.is_object() || !v.contains("progress") || !v["progress"].is_object())
        return false;
      auto done = v["progress"].value("rows_done", 0);
      return done > 0 && done < 1500;
    },
    last, std::chrono::seconds(30));
  BOOST_REQUIRE_MESSAGE(mid, "status never showed the query's snapshot part-way; last status:\n"
                               << last.dump(2));
  auto progress = view_record(last, "q.totals")["progress"];
  BOOST_TEST(progress.value("rows_estimated", 0) > 0);  // the planner's guess of the groups

  const bool synced = node.await_status(
    [](const json& s) { return view_record(s, "q.totals").value("state", "") == "synced"; }, last,
    std::chrono::seconds(60));
  BOOST_REQUIRE_MESSAGE(synced, "the query view did not sync; last status:\n" << last.dump(2));
  auto rows = node.rows("q.totals");
  BOOST_REQUIRE(rows.is_array());
  BOOST_TEST(rows.size() == 1500u);
  // Customer c7 has ids 7, 1507, 3007 and 4507: (7 + 1507 + 3007 + 4507) * 0.25 = 2257.00.
  bool found = false;
  for (const auto& r : rows)
    if (r.is_array() && r.size() == 3 && r[0] == "c7") {
      found = true;
      BOOST_TEST(r[1] == 4);
      BOOST_TEST(r[2] == "2257.00");
    }
  BOOST_TEST(found, "customer c7 is held");

  auto dupes = node.ctl({"--json", "resume", "q.dupes"}, std::chrono::seconds(60));
  const bool failed = node.await_status(
    [](const json& s) { return view_record(s, "q.dupes").value("state", "") == "failed"; }, last,
    std::chrono::seconds(30));
  BOOST_REQUIRE_MESSAGE(failed, "a query whose key repeats across pieces did not fail; last status:\n"
                                  << last.dump(2));
  auto error = view_record(last, "q.dupes").value("last_error", "");
  BOOST_TEST(error.find("two rows with key ('00100')") != std::string::npos, error);
  BOOST_TEST(node.rows("q.dupes").empty(), "nothing of the failed copy is visible");
  BOOST_TEST(view_record(node.status(), "q.totals").value("state", "") == "synced");
}

BOOST_AUTO_TEST_SUITE_END()
