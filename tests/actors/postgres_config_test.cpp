#include <cstdlib>
#include <string>

#include <boost/test/unit_test.hpp>

#include "actors/node_config.hpp"

using namespace syncmesh::actors;

namespace {

std::string config(const std::string& remote, const std::string& view) {
  return std::string("node_id = \"n\"\ndata_dir = \"d\"\n\n[[remotes]]\nname = \"pg\"\nkind = "
                     "\"postgres\"\n")
         + remote + "\n\n[[views]]\nnamespace = \"app\"\nname = \"items\"\npersistence = "
                    "\"realtime\"\nremote = \"pg\"\n"
         + view + "\n";
}

std::string error_of(const std::string& text) {
  auto r = parse_node_config(text, "node.toml");
  return r ? std::string("(accepted)") : r.error().message();
}

} // namespace

BOOST_AUTO_TEST_SUITE(postgres_config)

BOOST_AUTO_TEST_CASE(a_postgres_remote_builds_its_conninfo_and_keeps_the_password_apart) {
  auto r = parse_node_config(config("host = \"db.local\"\nport = 6543\ndatabase = \"shop\"\n"
                                    "user = \"reader\"\npassword = \"s3cret\"",
                                    "source = \"public.items\"\ncolumns = [\"id\", \"title\"]\n"
                                    "filters = [ { column = \"id\", op = \">\", value = 10 },\n"
                                    "            { column = \"kind\", op = \"in\", values = [\"a\", \"b\"] } ]"),
                             "node.toml");
  BOOST_REQUIRE_MESSAGE(r.is_ok(), r.error().message());
  const auto& rc = r->remotes.at(0);
  BOOST_TEST(rc.conninfo == "host=db.local port=6543 dbname=shop user=reader");
  BOOST_TEST(rc.conninfo.find("s3cret") == std::string::npos);
  BOOST_TEST(rc.password == "s3cret");
  const auto& v = r->views.at(0);
  BOOST_TEST(v.source == "public.items");
  BOOST_TEST(v.columns == (std::vector<std::string>{"id", "title"}), boost::test_tools::per_element());
  BOOST_REQUIRE_EQUAL(v.filters.size(), 2u);
  BOOST_TEST(v.filters[0].op == ">");
  BOOST_TEST(v.filters[0].values == (std::vector<std::string>{"10"}), boost::test_tools::per_element());
  BOOST_TEST(v.filters[1].values == (std::vector<std::string>{"a", "b"}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(the_password_can_come_from_the_environment) {
  ::setenv("SYNCMESH_TEST_PG_PASSWORD", "from-env", 1);
  auto r = parse_node_config(config("conninfo = \"host=127.0.0.1 port=5432\"\n"
                                    "password_env = \"SYNCMESH_TEST_PG_PASSWORD\"",
                                    "source = \"items\""),
                             "node.toml");
  BOOST_REQUIRE_MESSAGE(r.is_ok(), r.error().message());
  BOOST_TEST(r->remotes[0].password == "from-env");
  BOOST_TEST(r->remotes[0].conninfo == "host=127.0.0.1 port=5432");
  auto missing = error_of(config("password_env = \"SYNCMESH_NO_SUCH_VARIABLE\"", "source = \"items\""));
  BOOST_TEST(missing.find("is not set") != std::string::npos, missing);
  auto file = error_of(config("password_file = \"/no/such/file\"", "source = \"items\""));
  BOOST_TEST(file.find("cannot read the password file") != std::string::npos, file);
}

BOOST_AUTO_TEST_CASE(a_query_view_is_materialized_and_its_key_is_checked_when_it_runs) {
  auto materialized = [](const std::string& view) {
    auto text = config("", view);
    auto at = text.find("\"realtime\"");
    return text.replace(at, 10, "\"materialized\"");
  };
  auto ok = parse_node_config(materialized("query = \"SELECT id, title FROM items\"\nkey = [\"id\"]"),
                              "node.toml");
  BOOST_REQUIRE_MESSAGE(ok.is_ok(), ok.error().message());
  BOOST_TEST(ok->views[0].key == (std::vector<std::string>{"id"}), boost::test_tools::per_element());
  // Without a key the node starts; the view's run says what to add.
  auto keyless = parse_node_config(materialized("query = \"SELECT id, title FROM items\""),
                                   "node.toml");
  BOOST_TEST(keyless.is_ok());
  auto e = error_of(config("", "query = \"SELECT id, title FROM items\"\nkey = [\"id\"]"));
  BOOST_TEST(e.find("query views are materialized") != std::string::npos, e);
  BOOST_TEST(e.rfind("node.toml:", 0) == 0u, e);
}

BOOST_AUTO_TEST_CASE(a_postgres_remote_takes_a_heartbeat_interval) {
  auto r = parse_node_config(config("heartbeat_ms = 250", "source = \"items\""), "node.toml");
  BOOST_REQUIRE_MESSAGE(r.is_ok(), r.error().message());
  BOOST_TEST(r->remotes[0].heartbeat_ms == 250u);
  auto d = parse_node_config(config("", "source = \"items\""), "node.toml");
  BOOST_TEST(d->remotes[0].heartbeat_ms == 10000u);
  auto neg = error_of(config("heartbeat_ms = -1", "source = \"items\""));
  BOOST_TEST(neg.find("at least 0") != std::string::npos, neg);
}

BOOST_AUTO_TEST_CASE(postgres_only_settings_are_refused_elsewhere) {
  auto e = error_of("node_id = \"n\"\ndata_dir = \"d\"\n[[remotes]]\nname = \"m\"\nkind = \"memory\"\n"
                    "host = \"x\"\n");
  BOOST_TEST(e.find("only apply to kind = \"postgres\"") != std::string::npos, e);
  auto both = error_of(config("conninfo = \"host=x\"\nhost = \"y\"", "source = \"items\""));
  BOOST_TEST(both.find("not both") != std::string::npos, both);
  auto op = error_of(config("", "source = \"items\"\nfilters = [ { column = \"id\", op = \"~\", value = 1 } ]"));
  BOOST_TEST(op.find("'op'") != std::string::npos, op);
}

BOOST_AUTO_TEST_CASE(client_key_makes_uuids_for_sync_views_only) {
  auto text = config("", "source = \"items\"\nclient_key = \"uuid\"");
  auto realtime = error_of(text);
  BOOST_TEST(realtime.find("client_key applies to sync views only") != std::string::npos, realtime);
  text.replace(text.find("\"realtime\""), 10, "\"sync\"");
  auto ok = parse_node_config(text, "node.toml");
  BOOST_REQUIRE_MESSAGE(ok.is_ok(), ok.error().message());
  BOOST_TEST(ok->views[0].client_key == "uuid");
  text.replace(text.find("\"uuid\""), 6, "\"serial\"");
  auto unknown = error_of(text);
  BOOST_TEST(unknown.find("'client_key'") != std::string::npos, unknown);
  BOOST_TEST(unknown.find("uuid") != std::string::npos, unknown);
}

BOOST_AUTO_TEST_CASE(a_sync_view_of_a_table_takes_its_conflict_settings_and_a_query_is_refused) {
  auto sync = [](const std::string& view) {
    auto text = config("", view);
    auto at = text.find("\"realtime\"");
    return text.replace(at, 10, "\"sync\"");
  };
  auto ok = parse_node_config(sync("source = \"items\"\nconflict = \"lww\"\nlww_column = "
                                   "\"updated_at\"\non_error = \"block\"\nversion_column = \"v\""),
                              "node.toml");
  BOOST_REQUIRE_MESSAGE(ok.is_ok(), ok.error().message());
  BOOST_TEST(ok->views[0].conflict == "lww");
  BOOST_TEST(ok->views[0].lww_column == "updated_at");
  BOOST_TEST(ok->views[0].version_column == "v");
  BOOST_TEST(ok->views[0].on_error == "block");
  auto defaults = parse_node_config(sync("source = \"items\""), "node.toml");
  BOOST_REQUIRE(defaults.is_ok());
  BOOST_TEST(defaults->views[0].conflict == "remote-wins");
  BOOST_TEST(defaults->views[0].on_error == "skip");

  auto query = error_of(sync("query = \"SELECT id FROM items\"\nkey = [\"id\"]"));
  BOOST_TEST(query.find("sync views are of tables") != std::string::npos, query);
  auto lww = error_of(sync("source = \"items\"\nconflict = \"lww\""));
  BOOST_TEST(lww.find("names no lww_column") != std::string::npos, lww);
  auto policy = error_of(sync("source = \"items\"\nconflict = \"mine\""));
  BOOST_TEST(policy.find("'conflict'") != std::string::npos, policy);
  auto origin_first = parse_node_config(
    sync("source = \"items\"\nwrite_policy = \"origin_first\"\norigin_first_offline = "
         "\"local_first\""),
    "node.toml");
  BOOST_REQUIRE_MESSAGE(origin_first.is_ok(), origin_first.error().message());
  BOOST_TEST(origin_first->views[0].write_policy == "origin_first");
  BOOST_TEST(origin_first->views[0].origin_first_offline == "local_first");
  BOOST_TEST(defaults->views[0].origin_first_offline == "refuse");
  auto offline = error_of(sync("source = \"items\"\norigin_first_offline = \"wait\""));
  BOOST_TEST(offline.find("'origin_first_offline'") != std::string::npos, offline);
  auto custom = parse_node_config(
    sync("source = \"items\"\nconflict = \"custom\"\nconflict_resolver = \"merge_nonnull\""),
    "node.toml");
  BOOST_REQUIRE_MESSAGE(custom.is_ok(), custom.error().message());
  BOOST_TEST(custom->views[0].conflict_resolver == "merge_nonnull");
  auto unnamed = error_of(sync("source = \"items\"\nconflict = \"custom\""));
  BOOST_TEST(unnamed.find("names none") != std::string::npos, unnamed);
  auto unknown = error_of(sync("source = \"items\"\nconflict = \"custom\"\nconflict_resolver = "
                               "\"mine\""));
  BOOST_TEST(unknown.find("registered: merge_nonnull") != std::string::npos, unknown);
  auto stray = error_of(sync("source = \"items\"\nconflict_resolver = \"merge_nonnull\""));
  BOOST_TEST(stray.find("with conflict = \"custom\" only") != std::string::npos, stray);
  auto realtime = error_of(config("", "source = \"items\"\nconflict = \"local-wins\""));
  BOOST_TEST(realtime.find("apply to sync views only") != std::string::npos, realtime);
}

BOOST_AUTO_TEST_SUITE_END()
