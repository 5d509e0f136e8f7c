// A sync view of a real PostgreSQL table driven through `syncmesh ctl`: a
// write reaches the table by itself, and a conflicting one is listed by
// `ctl conflicts` and counted in `ctl status`.

#include <string>

#include <boost/test/unit_test.hpp>

#include "scenarios/postgres_server.hpp"
#include "tests/shared_postgres.hpp"
#include "tests/node/node_process.hpp"

using namespace syncmesh::node_test;
using syncmesh::scenarios::postgres_server;

namespace {

postgres_server& server() { return syncmesh::test::shared_postgres(); }

std::string remote_title(int id) {
  auto r = server().sql("SELECT title FROM pw_items WHERE id = " + std::to_string(id));
  BOOST_REQUIRE_MESSAGE(r.is_ok(), r.error().to_string());
  return r->rows.empty() || !r->rows[0][0] ? "<none>" : *r->rows[0][0];
}

json outbox_of(const json& status) { return view_record(status, "pg.items")["outbox"]; }

} // namespace

BOOST_AUTO_TEST_SUITE(postgres_writes)

BOOST_AUTO_TEST_CASE(ctl_conflicts_lists_a_write_that_lost_to_an_upstream_change) {
  auto made = server().sql("CREATE TABLE pw_items (id bigint PRIMARY KEY, title text); "
                           "INSERT INTO pw_items VALUES (1, 'one'), (2, 'two')");
  BOOST_REQUIRE_MESSAGE(made.is_ok(), made.error().to_string());
  temp_dir dir;
  dir.write("node.toml", "node_id = \"pw\"\ndata_dir = \"data\"\n"
                         "control_endpoint = \"tcp://127.0.0.1:0\"\n"
                         "\n[[remotes]]\nname = \"pg\"\nkind = \"postgres\"\n"
                         "conninfo = \"" + server().conninfo() + "\"\n"
                         "\n[[views]]\nnamespace = \"pg\"\nname = \"items\"\npersistence = \"sync\"\n"
                         "remote = \"pg\"\nsource = \"public.pw_items\"\n");
  node_process node(dir.path() / "node.toml", dir.path() / "data", 1);
  json last;
  auto streaming = [](const json& s) {
    return view_record(s, "pg.items").value("streaming", false);
  };
  BOOST_REQUIRE_MESSAGE(node.await_status(streaming, last), last.dump(2));

  auto exec = node.ctl({"exec", "pg.items", "--upsert", R"({"id": 1, "title": "local one"})"});
  BOOST_REQUIRE_MESSAGE(exec.exit_code == 0, exec);
  BOOST_TEST(await([] { return remote_title(1) == "local one"; }, wait_max),
             "the write did not reach PostgreSQL: " << remote_title(1));

  // Stopped, the view neither streams nor pushes: the upstream change and
  // the local write both happen against row 2 as it was.
  BOOST_REQUIRE(node.ctl({"stop", "pg.items"}).exit_code == 0);
  BOOST_REQUIRE(server().sql("UPDATE pw_items SET title = 'upstream two' WHERE id = 2").is_ok());
  BOOST_REQUIRE(node.ctl({"exec", "pg.items", "--upsert", R"({"id": 2, "title": "local two"})"})
                  .exit_code == 0);
  auto resumed = node.ctl({"resume", "pg.items"});
  BOOST_REQUIRE_MESSAGE(resumed.exit_code == 0, resumed);
  BOOST_REQUIRE_MESSAGE(node.await_status(
                          [](const json& s) {
                            auto ob = outbox_of(s);
                            return ob.value("pending", -1) == 0 && ob.value("conflicted", 0) == 1;
                          },
                          last),
                        last.dump(2));
  BOOST_TEST(outbox_of(last).value("applied", 0) == 1);
  BOOST_TEST(remote_title(2) == "upstream two");

  auto text = node.ctl({"conflicts"});
  BOOST_REQUIRE_MESSAGE(text.exit_code == 0, text);
  BOOST_TEST(text.out.find("conflicted") != std::string::npos, text.out);
  BOOST_TEST(text.out.find("local two") != std::string::npos, text.out);
  BOOST_TEST(text.out.find("upstream two") != std::string::npos, text.out);
  auto records = node.ctl_json({"conflicts", "pg.items"});
  BOOST_REQUIRE_MESSAGE(records.is_array() && records.size() == 1, records.dump(2));
  BOOST_TEST(records[0]["winner"] == "remote");
  BOOST_TEST(records[0]["base"]["title"] == "two");
  BOOST_TEST(records[0]["local"]["title"] == "local two");
  BOOST_TEST(records[0]["remote"]["title"] == "upstream two");
  BOOST_TEST(node.ctl_json({"conflicts", "pg.other"}).size() == 0u);
  auto status = node.ctl({"status", "pg.items"});
  BOOST_TEST(status.out.find("0 pending, 1 conflicted") != std::string::npos, status.out);
}

BOOST_AUTO_TEST_SUITE_END()
