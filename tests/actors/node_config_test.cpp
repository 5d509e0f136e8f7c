#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <random>
#include <string>
#include <vector>

#include <boost/test/unit_test.hpp>

#include "actors/node_config.hpp"

using namespace syncmesh::actors;
using syncmesh::store::errc;
using syncmesh::store::value;
using syncmesh::store::value_kind;

namespace {

/// The lines joined by newlines, so line N of the config is element N - 1.
std::string lines(std::initializer_list<std::string> ls) {
  std::string s;
  for (const auto& l : ls)
    s += l + "\n";
  return s;
}

/// A small valid config; the bad-input cases below each change one thing.
/// Line numbers matter: the cases assert them.
std::vector<std::string> base_lines() {
  return {
    "node_id = \"node-a\"",                                      // 1
    "data_dir = \"data\"",                                       // 2
    "[[remotes]]",                                               // 3
    "name = \"inventory\"",                                      // 4
    "kind = \"memory\"",                                         // 5
    "[[remotes.tables]]",                                        // 6
    "name = \"items\"",                                          // 7
    "columns = [ { name = \"id\", type = \"integer\", key = true },",  // 8
    "            { name = \"title\", type = \"text\" } ]",       // 9
    "rows = [ [1, \"apple\"], [2, \"pear\"] ]",                 // 10
    "[[views]]",                                                 // 11
    "namespace = \"shop\"",                                      // 12
    "name = \"items\"",                                          // 13
    "persistence = \"materialized\"",                            // 14
    "remote = \"inventory\"",                                    // 15
    "source = \"items\"",                                        // 16
  };
}

/// base_lines() with line `line` (1-based) replaced by `text`; an empty
/// `text` leaves a blank line so later line numbers stay put.
std::string base_with(int line, const std::string& text) {
  auto ls = base_lines();
  ls.at(static_cast<std::size_t>(line - 1)) = text;
  std::string s;
  for (const auto& l : ls)
    s += l + "\n";
  return s;
}

/// base_lines() followed by `extra`, which starts at line 17.
std::string base_plus(std::initializer_list<std::string> extra) {
  std::string s;
  for (const auto& l : base_lines())
    s += l + "\n";
  return s + lines(extra);
}

struct bad_config {
  std::string text;
  int line;                          // the line the message must start with
  std::vector<std::string> needles;  // text the message must contain
};

/// Each config is refused as invalid_argument, with a message that starts
/// with "node.toml:LINE:" and names what is wrong.
void expect_refused(const std::vector<bad_config>& cases) {
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT("config:\n" << c.text) {
      auto got = parse_node_config(c.text, "node.toml");
      BOOST_REQUIRE_MESSAGE(!got.is_ok(), "the config was accepted");
      const auto st = got.error();
      const std::string& msg = st.message();
      BOOST_TEST_MESSAGE(msg);
      BOOST_TEST_CONTEXT("message: " << msg) {
        BOOST_TEST((st.code() == errc::invalid_argument));
        const std::string prefix = "node.toml:" + std::to_string(c.line) + ":";
        BOOST_TEST(msg.compare(0, prefix.size(), prefix) == 0, "message starts with " << prefix);
        for (const auto& needle : c.needles)
          BOOST_TEST(msg.find(needle) != std::string::npos, "message names " << needle);
      }
    }
  }
}

/// A fresh empty directory under the system temp directory; removed on exit.
struct temp_dir {
  std::filesystem::path path;
  temp_dir() {
    std::random_device rd;
    path = std::filesystem::temp_directory_path()
           / ("syncmesh-node-config-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name, std::ios::binary) << text;
    return (path / name).string();
  }
};

const std::string full_config = lines({
  "node_id = \"node-a\"",
  "data_dir = \"./data/node-a\"",
  "control_endpoint = \"tcp://127.0.0.1:0\"",
  "events_endpoint = \"tcp://127.0.0.1:7501\"",
  "durability = \"buffered\"",
  "log_level = \"debug\"",
  "control_request_bytes_max = 65536",
  "query_rows_max = 250",
  "seed = 42",
  "[retry]",
  "initial_ms = 100",
  "max_ms = 5000",
  "jitter = 0.1",
  "[restart]",
  "initial_ms = 50",
  "max_ms = 800",
  "jitter = 0",
  "intensity_max = 3",
  "window_ms = 1000",
  "[[remotes]]",                                                        // 20
  "name = \"inventory\"",
  "kind = \"memory\"",
  "start_down = true",
  "  [[remotes.tables]]",
  "  name = \"items\"",
  "  columns = [ { name = \"id\", type = \"integer\", key = true },",
  "              { name = \"title\", type = \"text\" },",
  "              { name = \"price\", type = \"numeric\", nullable = false },",
  "              { name = \"weight\", type = \"real\" },",
  "              { name = \"in_stock\", type = \"boolean\" },",
  "              { name = \"blob\", type = \"bytes\" },",
  "              { name = \"added\", type = \"timestamp\" },",
  "              { name = \"meta\", type = \"json\" } ]",
  "  rows = [ [1, \"apple\", \"1.20\", 0.5, true, \"a\\u0000b\", \"2024-01-01T00:00:00Z\", "
  "'{\"c\":1}'],",
  "           [2, \"pear\", 0.80, 1, false, \"\", \"2024-01-02T00:00:00Z\", \"{}\"],",
  "           [3, \"fig\", 1_000.50, 2.5e-1, true, \"x\", \"2024-01-03T00:00:00Z\", \"[]\"],",
  "           [4, \"kiwi\", 7, 2.0, false, \"y\", \"2024-01-04T00:00:00Z\", \"null\"] ]",
  "  [[remotes.tables]]",
  "  name = \"tags\"",
  "  columns = [ { name = \"item\", type = \"integer\", key = true },",   // 40
  "              { name = \"tag\", type = \"text\", key = true } ]",
  "[[views]]",
  "namespace = \"shop\"",
  "name = \"items\"",
  "persistence = \"sync\"",
  "remote = \"inventory\"",
  "source = \"items\"",
  "write_policy = \"origin_first\"",
  "enabled = false",
  "[[views]]",                                                          // 50
  "namespace = \"shop\"",
  "name = \"tags\"",
  "persistence = \"realtime\"",
  "remote = \"inventory\"",
  "source = \"tags\"",
});

} // namespace

BOOST_AUTO_TEST_SUITE(node_config)

BOOST_AUTO_TEST_CASE(a_full_valid_config_parses_into_the_expected_struct) {
  auto got = parse_node_config(full_config, "node.toml");
  BOOST_REQUIRE_MESSAGE(got.is_ok(), got.error().to_string());
  const auto& cfg = *got;
  BOOST_TEST(cfg.node_id == "node-a");
  BOOST_TEST(cfg.data_dir == "./data/node-a");  // parse_node_config leaves it as written
  BOOST_TEST(cfg.source_path == "node.toml");
  BOOST_TEST(cfg.control_endpoint == "tcp://127.0.0.1:0");
  BOOST_TEST(cfg.events_endpoint == "tcp://127.0.0.1:7501");
  BOOST_TEST((cfg.durability == syncmesh::store::durability_mode::buffered));
  BOOST_TEST(cfg.log_level == "debug");
  BOOST_TEST(cfg.control_request_bytes_max == 65536u);
  BOOST_TEST(cfg.query_rows_max == 250u);
  BOOST_TEST(cfg.seed == 42u);
  BOOST_TEST(cfg.retry.initial_ms == 100u);
  BOOST_TEST(cfg.retry.max_ms == 5000u);
  BOOST_TEST(cfg.retry.jitter == 0.1);
  BOOST_TEST(cfg.restart.initial_ms == 50u);
  BOOST_TEST(cfg.restart.max_ms == 800u);
  BOOST_TEST(cfg.restart.jitter == 0.0);
  BOOST_TEST(cfg.restart_intensity_max == 3u);
  BOOST_TEST(cfg.restart_window_ms == 1000u);

  BOOST_REQUIRE(cfg.remotes.size() == 1u);
  const auto& remote = cfg.remotes[0];
  BOOST_TEST(remote.name == "inventory");
  BOOST_TEST(remote.kind == "memory");
  BOOST_TEST(remote.start_down);
  BOOST_TEST(remote.line == 20);
  BOOST_REQUIRE(remote.tables.size() == 2u);

  const auto& items = remote.tables[0];
  BOOST_TEST(items.name == "items");
  BOOST_REQUIRE(items.columns.size() == 8u);
  BOOST_TEST(items.columns[0].key);
  BOOST_TEST(!items.columns[0].nullable);  // a key is never nullable
  BOOST_TEST(items.columns[1].nullable);   // the default
  BOOST_TEST(!items.columns[2].nullable);
  BOOST_TEST(items.columns[2].type == "numeric");

  BOOST_REQUIRE(items.rows.size() == 4u);
  const auto& apple = items.rows[0];
  BOOST_REQUIRE(apple.size() == 8u);
  BOOST_TEST((apple[0] == value::integer(1)));
  BOOST_TEST((apple[1] == value::text("apple")));
  BOOST_TEST((apple[2] == value::exact("numeric", "1.20")));
  BOOST_TEST((apple[3] == value::real(0.5)));
  BOOST_TEST((apple[4] == value::boolean(true)));
  BOOST_TEST((apple[5] == value::bytes(std::string("a\0b", 3))));
  BOOST_TEST((apple[6] == value::exact("timestamp", "2024-01-01T00:00:00Z")));
  BOOST_TEST((apple[7] == value::exact("json", "{\"c\":1}")));
  // numeric given as a TOML number keeps the digits as written.
  BOOST_TEST((items.rows[1][2] == value::exact("numeric", "0.80")));
  BOOST_TEST((items.rows[2][2] == value::exact("numeric", "1000.50")));
  BOOST_TEST((items.rows[3][2] == value::exact("numeric", "7")));
  // real columns take TOML integers as reals.
  BOOST_TEST((items.rows[1][3] == value::real(1.0)));
  BOOST_TEST((items.rows[2][3] == value::real(0.25)));

  const auto& tags = remote.tables[1];
  BOOST_TEST(tags.name == "tags");
  BOOST_TEST(tags.columns[0].key);
  BOOST_TEST(tags.columns[1].key);
  BOOST_TEST(tags.rows.empty());

  BOOST_REQUIRE(cfg.views.size() == 2u);
  const auto& v = cfg.views[0];
  BOOST_TEST(v.full_name() == "shop.items");
  BOOST_TEST(v.persistence == "sync");
  BOOST_TEST(v.remote == "inventory");
  BOOST_TEST(v.source == "items");
  BOOST_TEST(v.write_policy == "origin_first");
  BOOST_TEST(!v.enabled);
  BOOST_TEST(v.line == 42);
  BOOST_TEST(cfg.views[1].full_name() == "shop.tags");
  BOOST_TEST(cfg.views[1].write_policy == "local_first");
  BOOST_TEST(cfg.views[1].enabled);
  BOOST_TEST(cfg.views[1].line == 50);
}

BOOST_AUTO_TEST_CASE(absent_optional_keys_take_the_documented_defaults) {
  auto got = parse_node_config(lines({"node_id = \"n\"", "data_dir = \"d\""}), "node.toml");
  BOOST_REQUIRE_MESSAGE(got.is_ok(), got.error().to_string());
  BOOST_TEST(got->control_endpoint == "tcp://127.0.0.1:7400");
  BOOST_TEST(got->events_endpoint.empty());
  BOOST_TEST((got->durability == syncmesh::store::durability_mode::fsync));
  BOOST_TEST(got->log_level == "info");
  BOOST_TEST(got->control_request_bytes_max == 1048576u);
  BOOST_TEST(got->query_rows_max == 10000u);
  BOOST_TEST(got->retry.initial_ms == 500u);
  BOOST_TEST(got->restart.initial_ms == 200u);
  BOOST_TEST(got->restart_intensity_max == 5u);
  BOOST_TEST(got->restart_window_ms == 60000u);
  BOOST_TEST(got->seed == 0u);
  BOOST_TEST(got->remotes.empty());
  BOOST_TEST(got->views.empty());
}

BOOST_AUTO_TEST_CASE(load_node_config_resolves_a_relative_data_dir_against_the_config_files_directory) {
  temp_dir dir;
  const auto path = dir.write("node.toml", full_config);
  auto got = load_node_config(path);
  BOOST_REQUIRE_MESSAGE(got.is_ok(), got.error().to_string());
  BOOST_TEST(got->data_dir == (dir.path / "data" / "node-a").string());
  BOOST_TEST(got->source_path == path);
  BOOST_TEST(got->views.size() == 2u);

  const auto absolute = (dir.path / "elsewhere").string();
  auto abs = load_node_config(dir.write("abs.toml", lines({"node_id = \"n\"",
                                                           "data_dir = \"" + absolute + "\""})));
  BOOST_REQUIRE_MESSAGE(abs.is_ok(), abs.error().to_string());
  BOOST_TEST(abs->data_dir == absolute);
}

BOOST_AUTO_TEST_CASE(load_node_config_messages_start_with_the_files_path) {
  temp_dir dir;
  const auto path = dir.write("bad.toml", lines({"node_id = \"n\"", "data_dir = \"d\"", "seed = -1"}));
  auto got = load_node_config(path);
  BOOST_REQUIRE(!got.is_ok());
  BOOST_TEST((got.error().code() == errc::invalid_argument));
  BOOST_TEST(got.error().message().rfind(path + ":3:", 0) == 0u, got.error().message());
}

BOOST_AUTO_TEST_CASE(a_missing_config_file_is_an_io_error_naming_the_path) {
  temp_dir dir;
  const auto path = (dir.path / "absent.toml").string();
  auto got = load_node_config(path);
  BOOST_REQUIRE(!got.is_ok());
  BOOST_TEST((got.error().code() == errc::io_error));
  BOOST_TEST(got.error().message().rfind(path + ": ", 0) == 0u, got.error().message());
}

BOOST_AUTO_TEST_CASE(toml_syntax_errors_name_file_line_and_column) {
  expect_refused({
    {lines({"node_id = \"n\"", "data_dir = ", "seed = 1"}), 2, {"node.toml:2:12: ", "expected value"}},
    {lines({"node_id = \"n\"", "node_id = \"m\""}), 2, {"node_id"}},
    {lines({"node_id = \"n\"", "[retry", "x = 1"}), 2, {}},
  });
}

BOOST_AUTO_TEST_CASE(unknown_keys_name_the_key_its_table_and_the_known_keys) {
  expect_refused({
    {base_with(2, "[retyr]"), 2,
     {"unknown key 'retyr'", "top-level table", "did you mean 'retry'?", "node_id", "views"}},
    {base_plus({"[retry]", "initial_ms = 1", "inital_ms = 2"}), 19,
     {"unknown key 'inital_ms' in [retry]", "did you mean 'initial_ms'?", "initial_ms, max_ms, jitter"}},
    {base_plus({"[restart]", "intensity = 2"}), 18,
     {"'intensity' in [restart]", "intensity_max", "window_ms"}},
    {base_with(4, "name = \"inventory\"\nfoo = 1"), 5, {"'foo' in remote 'inventory'", "start_down"}},
    {base_with(9, "            { name = \"title\", type = \"text\", nulable = true } ]"), 9,
     {"'nulable'", "column 'title' of table 'items'", "nullable"}},
    {base_plus({"enable = false"}), 17,
     {"'enable' in view 'shop.items'", "did you mean 'enabled'?", "write_policy"}},
  });
}

BOOST_AUTO_TEST_CASE(values_of_the_wrong_type_name_the_key_and_both_types) {
  expect_refused({
    {base_plus({"[retry]", "initial_ms = \"500\""}), 18,
     {"'initial_ms' in [retry] must be an integer, got a string (\"500\")"}},
    {base_with(1, "node_id = 7"), 1, {"'node_id'", "must be a string, got an integer (7)"}},
    {base_plus({"enabled = \"yes\""}), 17, {"'enabled'", "true or false", "a string"}},
    {base_plus({"[restart]", "jitter = \"0.1\""}), 18, {"'jitter' in [restart] must be a number"}},
    {lines({"node_id = \"n\"", "data_dir = \"d\"", "[remotes]", "name = \"x\""}), 3,
     {"'remotes'", "array of tables ([[remotes]] sections)", "got a table"}},
    {base_with(9, "            7 ]"), 9, {"entry 2 of 'columns'", "must be a table", "an integer"}},
    {lines({"node_id = \"n\"", "data_dir = \"d\"", "retry = 5"}), 3, {"'retry'", "must be a table"}},
  });
}

BOOST_AUTO_TEST_CASE(numbers_outside_their_bounds_are_refused) {
  expect_refused({
    {base_plus({"[retry]", "initial_ms = 0"}), 18, {"'initial_ms' in [retry] must be at least 1, got 0"}},
    {base_plus({"[retry]", "initial_ms = -5"}), 18, {"'initial_ms'", "at least 1, got -5"}},
    {base_plus({"[retry]", "initial_ms = 1000", "max_ms = 999"}), 19,
     {"'max_ms' in [retry] is 999", "at least initial_ms (1000)"}},
    {base_plus({"[restart]", "initial_ms = 20000"}), 17,  // max_ms keeps its 10000 default
     {"'max_ms' in [restart] is 10000 (the default)", "initial_ms (20000)"}},
    {base_plus({"[retry]", "jitter = 1.0"}), 18, {"'jitter'", "at least 0 and below 1", "1.0"}},
    {base_plus({"[retry]", "jitter = -0.1"}), 18, {"'jitter'", "below 1"}},
    {base_plus({"[restart]", "intensity_max = 0"}), 18, {"'intensity_max' in [restart]", "at least 1"}},
    {base_plus({"[restart]", "intensity_max = 5000000000"}), 18, {"'intensity_max'", "at most 4294967295"}},
    {base_plus({"[restart]", "window_ms = 0"}), 18, {"'window_ms'", "at least 1"}},
    {base_with(2, "control_request_bytes_max = 1000\ndata_dir = \"d\""), 2,
     {"'control_request_bytes_max'", "at least 1024, got 1000"}},
    {base_with(2, "query_rows_max = 0\ndata_dir = \"d\""), 2, {"'query_rows_max'", "at least 1"}},
    {base_with(2, "seed = -1\ndata_dir = \"d\""), 2, {"'seed'", "at least 0, got -1"}},
  });
}

BOOST_AUTO_TEST_CASE(missing_required_fields_say_what_to_add) {
  expect_refused({
    {base_with(1, ""), 1, {"the top-level table has no 'node_id'; add node_id = "}},
    {base_with(2, ""), 1, {"has no 'data_dir'"}},
    {base_with(14, ""), 11,
     {"view 'shop.items' has no 'persistence'; add persistence = \"materialized\", "
      "\"realtime\" or \"sync\""}},
    {base_with(12, ""), 11, {"this [[views]] entry has no 'namespace'"}},
    {base_with(15, ""), 11, {"has no 'remote'"}},
    {base_with(5, ""), 3, {"remote 'inventory' has no 'kind'; add kind = \"memory\""}},
    {base_with(7, ""), 6, {"has no 'name'"}},
    {base_with(9, "            { name = \"title\" } ]"), 9,
     {"column 'title' of table 'items' has no 'type'"}},
    {base_with(1, "node_id = \"\""), 1, {"'node_id'", "must not be empty"}},
  });
}

BOOST_AUTO_TEST_CASE(unknown_enum_values_list_the_accepted_ones) {
  expect_refused({
    {base_with(2, "durability = \"fsnyc\"\ndata_dir = \"d\""), 2,
     {"durability 'fsnyc' is unknown", "\"fsync\"", "\"buffered\""}},
    {base_with(2, "log_level = \"verbose\"\ndata_dir = \"d\""), 2,
     {"'log_level'", "'verbose'", "trace, debug, info, warn, error, off"}},
    {base_with(14, "persistence = \"origin\""), 14,
     {"persistence 'origin' is not supported yet", "federation"}},
    {base_with(14, "persistence = \"cached\""), 14,
     {"persistence 'cached' is unknown", "\"materialized\", \"realtime\" or \"sync\""}},
    {base_plus({"write_policy = \"remote_first\""}), 17,
     {"'write_policy'", "'remote_first'", "local_first, origin_first"}},
    {base_with(5, "kind = \"peer\""), 5, {"'peer' is not supported yet", "peer sync", "postgres"}},
    {base_with(5, "kind = \"ftp\""), 5, {"remote kind 'ftp' is unknown", "memory"}},
    {base_with(9, "            { name = \"title\", type = \"varchar\" } ]"), 9,
     {"column 'title'", "type 'varchar'", "boolean, integer, real, text, bytes, numeric, "
                                          "timestamp or json"}},
  });
}

BOOST_AUTO_TEST_CASE(duplicate_names_are_refused_naming_both_lines) {
  expect_refused({
    {base_plus({"[[remotes]]", "name = \"inventory\"", "kind = \"memory\""}), 17,
     {"remote 'inventory' is declared twice, at lines 3 and 17"}},
    {base_plus({"[[views]]", "namespace = \"shop\"", "name = \"items\"",
                "persistence = \"sync\"", "remote = \"inventory\"", "source = \"items\""}),
     17, {"view 'shop.items' is declared twice, at lines 11 and 17"}},
    {base_with(10, "[[remotes.tables]]\nname = \"items\"\n"
                   "columns = [ { name = \"k\", type = \"text\", key = true } ]"),
     10, {"remote 'inventory' declares table 'items' twice, at lines 6 and 10"}},
    {base_with(9, "            { name = \"id\", type = \"text\" } ]"), 9,
     {"table 'items' declares column 'id' twice, at lines 8 and 9"}},
  });
}

BOOST_AUTO_TEST_CASE(views_naming_an_unknown_remote_or_source_are_refused) {
  expect_refused({
    {base_with(15, "remote = \"invent\""), 15,
     {"view 'shop.items' names remote 'invent'", "not declared", "declared remotes: inventory"}},
    {base_with(16, "source = \"itemz\""), 16,
     {"view 'shop.items' reads table 'itemz'", "remote 'inventory' does not have",
      "its tables: items"}},
  });
}

BOOST_AUTO_TEST_CASE(key_columns_must_exist_and_must_not_be_nullable) {
  expect_refused({
    {base_with(8, "columns = [ { name = \"id\", type = \"integer\", key = true, nullable = true },"),
     8, {"column 'id' of table 'items' is a key column and cannot be nullable"}},
    {base_with(8, "columns = [ { name = \"id\", type = \"integer\" },"), 8,
     {"table 'items' of remote 'inventory' has no key column", "key = true"}},
  });
}

BOOST_AUTO_TEST_CASE(rows_must_have_one_value_per_column) {
  expect_refused({
    {base_with(10, "rows = [ [1, \"apple\"],\n  [2] ]"), 11,
     {"has 1 value but the table has 2 columns (id, title)"}},
    {base_with(10, "rows = [ [1, \"apple\", 3] ]"), 10, {"has 3 values"}},
    {base_with(10, "rows = [ 1 ]"), 10, {"each row of table 'items' must be an array"}},
  });
}

BOOST_AUTO_TEST_CASE(row_values_that_do_not_fit_their_column_are_refused) {
  const std::string columns =
    "columns = [ { name = \"id\", type = \"integer\", key = true }, "
    "{ name = \"ok\", type = \"boolean\" }, { name = \"w\", type = \"real\" }, "
    "{ name = \"n\", type = \"numeric\" }, { name = \"t\", type = \"timestamp\" } ]";
  // base_lines() with these columns (line 8) and one row (line 10).
  auto config = [&](const std::string& row) {
    auto ls = base_lines();
    ls[7] = columns;
    ls[8] = "";
    ls[9] = "rows = [ " + row + " ]";
    std::string s;
    for (const auto& l : ls)
      s += l + "\n";
    return s;
  };
  expect_refused({
    {config("[\"1\", true, 1.5, 1, \"2024-01-01\"]"), 10,
     {"value for column 'id' of table 'items' must be an integer, got a string (\"1\")"}},
    {config("[1, 1, 1.5, 1, \"2024-01-01\"]"), 10, {"column 'ok'", "true or false", "an integer (1)"}},
    {config("[1, true, \"1.5\", 1, \"2024-01-01\"]"), 10, {"column 'w'", "a number"}},
    {config("[1, true, 1.5, false, \"2024-01-01\"]"), 10,
     {"column 'n'", "a finite number or a string", "a boolean (false)"}},
    {config("[1, true, 1.5, inf, \"2024-01-01\"]"), 10, {"column 'n'", "finite"}},
    {config("[1, true, 1.5, 1, 2024-01-01]"), 10, {"column 't'", "must be a string", "a date"}},
    {base_with(10, "rows = [ [1, 2] ]"), 10, {"column 'title'", "a string", "an integer (2)"}},
  });
}

BOOST_AUTO_TEST_CASE(rows_repeating_a_key_are_refused) {
  expect_refused({
    {base_with(10, "rows = [ [1, \"apple\"],\n [1, \"pear\"] ]"), 11,
     {"repeats the key (1) of the row at line 10"}},
  });
}

BOOST_AUTO_TEST_CASE(to_store_column_maps_each_config_type_to_its_store_kind) {
  struct expected {
    const char* type;
    value_kind kind;
    const char* type_name;
  };
  for (const auto& e : {expected{"boolean", value_kind::boolean, ""},
                        expected{"integer", value_kind::integer, ""},
                        expected{"real", value_kind::real, ""},
                        expected{"text", value_kind::text, ""},
                        expected{"bytes", value_kind::bytes, ""},
                        expected{"numeric", value_kind::exact, "numeric"},
                        expected{"timestamp", value_kind::exact, "timestamp"},
                        expected{"json", value_kind::exact, "json"}}) {
    BOOST_TEST_CONTEXT("type " << e.type) {
      auto col = to_store_column(column_config{"c", e.type, false, true});
      BOOST_REQUIRE(col.is_ok());
      BOOST_TEST(col->name == "c");
      BOOST_TEST((col->kind == e.kind));
      BOOST_TEST(col->type_name == e.type_name);
      BOOST_TEST(col->nullable);
    }
  }
  auto key = to_store_column(column_config{"id", "integer", true, true});
  BOOST_REQUIRE(key.is_ok());
  BOOST_TEST(!key->nullable);  // a key column is never nullable

  auto bad = to_store_column(column_config{"c", "int", false, true});
  BOOST_REQUIRE(!bad.is_ok());
  BOOST_TEST((bad.error().code() == errc::invalid_argument));
  BOOST_TEST(bad.error().message().find("'int'") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(peer_tables_links_and_the_peer_section_parse_into_the_expected_struct) {
  auto got = parse_node_config(base_plus({
                                 "[[tables]]",                                          // 17
                                 "name = \"app.notes\"",                                // 18
                                 "columns = [ { name = \"id\", type = \"integer\", key = true },",
                                 "            { name = \"body\", type = \"text\" } ]",  // 20
                                 "[peer]",                                              // 21
                                 "listen = \"tcp://127.0.0.1:0\"",                      // 22
                                 "heartbeat_ms = 200",                                  // 23
                                 "dead_after_ms = 1000",                                // 24
                                 "[[links]]",                                           // 25
                                 "peer = \"hub\"",                                      // 26
                                 "endpoint = \"tcp://127.0.0.1:7700\"",                 // 27
                                 "mode = \"push\"",                                     // 28
                                 "tables = [\"app.notes\"]",                            // 29
                                 "trusted_origins = [\"hub\", \"node-b\"]",             // 30
                                 "[[links]]",                                           // 31
                                 "peer = \"node-c\"",                                   // 32
                               }),
                               "node.toml");
  BOOST_REQUIRE_MESSAGE(got.is_ok(), (got.is_ok() ? "" : got.error().message()));
  const auto& cfg = *got;
  BOOST_REQUIRE(cfg.tables.size() == 1u);
  BOOST_TEST(cfg.tables[0].name == "app.notes");
  auto schema = peer_table_schema(cfg.tables[0]);
  BOOST_TEST(schema.columns.size() == 2u);
  BOOST_TEST(schema.primary_key.size() == 1u);
  BOOST_TEST(cfg.peer.listen == "tcp://127.0.0.1:0");
  BOOST_TEST(cfg.peer.heartbeat_ms == 200u);
  BOOST_TEST(cfg.peer.dead_after_ms == 1000u);
  BOOST_TEST(cfg.peer.batch_max == 128u);  // the default
  BOOST_REQUIRE(cfg.links.size() == 2u);
  BOOST_TEST(cfg.links[0].peer == "hub");
  BOOST_TEST(cfg.links[0].endpoint == "tcp://127.0.0.1:7700");
  BOOST_TEST(cfg.links[0].mode == "push");
  BOOST_TEST(cfg.links[0].tables == std::vector<std::string>{"app.notes"});
  BOOST_TEST(cfg.links[0].trusted_origins.size() == 2u);
  BOOST_TEST(cfg.links[1].peer == "node-c");
  BOOST_TEST(cfg.links[1].endpoint.empty());  // the server role
  BOOST_TEST(cfg.links[1].mode == "bidirectional");
}

BOOST_AUTO_TEST_CASE(bad_peer_config_is_refused_with_the_line_and_a_sentence) {
  const std::string table = "[[tables]]\nname = \"app.notes\"\n"
                            "columns = [ { name = \"id\", type = \"integer\", key = true } ]";
  // The table occupies lines 17-19; what follows starts at line 20.
  expect_refused({
    {base_plus({table, "[[links]]", "peer = \"hub\"", "mode = \"sideways\""}), 22,
     {"'mode'", "sideways", "push", "bidirectional"}},
    {base_plus({table, "[[links]]", "peer = \"hub\"", "tables = [\"app.other\"]"}), 22,
     {"app.other", "[[tables]]", "app.notes"}},
    {base_plus({table, "[[links]]", "peer = \"hub\"", "[[links]]", "peer = \"hub\""}), 22,
     {"two links", "lines 20 and 22"}},
    {base_plus({table, "[[links]]", "peer = \"node-a\""}), 20, {"this node itself"}},
    {base_plus({table, "[[links]]", "peer = \"hub\"", "endpont = \"tcp://x:1\""}), 22,
     {"unknown key 'endpont'", "did you mean 'endpoint'"}},
    {base_plus({table, "[peer]", "heartbeat_ms = 500", "dead_after_ms = 500"}), 22,
     {"dead_after_ms", "heartbeat_ms"}},
    {base_plus({table, "[peer]", "secret_key_file = \"node.key\""}), 21,
     {"public_key_file"}},
    {base_plus({table, "[peer]", "secret_key_file = \"/nonexistent/node.key\"",
                "public_key_file = \"/nonexistent/node.key.pub\""}), 21,
     {"/nonexistent/node.key"}},
    {base_plus({"[[tables]]", "name = \"notes\"",
                "columns = [ { name = \"id\", type = \"integer\", key = true } ]"}), 18,
     {"namespace.table"}},
    {base_plus({"[[tables]]", "name = \"app.notes\"",
                "columns = [ { name = \"id\", type = \"integer\" } ]"}), 19,
     {"no key column"}},
    {base_plus({"[[links]]", "peer = \"hub\""}), 17, {"[[tables]]"}},
  });
}

BOOST_AUTO_TEST_CASE(link_exclusions_filters_and_the_tie_winner_parse_typed_by_their_columns) {
  auto got = parse_node_config(
    base_plus({"[[tables]]", "name = \"app.notes\"",
               "columns = [ { name = \"id\", type = \"integer\", key = true }, "
               "{ name = \"body\", type = \"text\" }, { name = \"secret\", type = \"text\" } ]",
               "[peer]", "tie_winner = \"hub\"", "[[links]]", "peer = \"hub\"",
               "exclude = [\"app.notes.secret\"]",
               "filters = [ { table = \"app.notes\", column = \"id\", op = \"<\", values = [10] },",
               "            { table = \"app.notes\", column = \"body\", op = \"in\", "
               "values = [\"a\", \"b\"] } ]"}),
    "node.toml");
  BOOST_REQUIRE_MESSAGE(got.is_ok(), (got.is_ok() ? "" : got.error().message()));
  const auto& cfg = *got;
  BOOST_TEST(cfg.peer.tie_winner == "hub");
  BOOST_REQUIRE(cfg.links.size() == 1u);
  BOOST_TEST(cfg.links[0].exclude == std::vector<std::string>{"app.notes.secret"});
  BOOST_REQUIRE(cfg.links[0].filters.size() == 2u);
  const auto& f = cfg.links[0].filters;
  BOOST_TEST(f[0].table == "app.notes");
  BOOST_TEST(f[0].column == "id");
  BOOST_TEST(f[0].op == "<");
  BOOST_TEST((f[0].values == std::vector<syncmesh::store::value>{syncmesh::store::value::integer(10)}));
  BOOST_TEST(f[1].op == "in");
  BOOST_TEST((f[1].values == std::vector<syncmesh::store::value>{syncmesh::store::value::text("a"),
                                                                  syncmesh::store::value::text("b")}));
}

BOOST_AUTO_TEST_CASE(bad_link_exclusions_filters_and_tie_winner_are_refused_with_the_line_and_a_sentence) {
  // The table occupies lines 17-19; [[links]] is line 20, peer 21.
  const std::string table = "[[tables]]\nname = \"app.notes\"\n"
                            "columns = [ { name = \"id\", type = \"integer\", key = true }, "
                            "{ name = \"body\", type = \"text\" }, "
                            "{ name = \"n\", type = \"integer\", nullable = false } ]";
  auto link_with = [&](const std::vector<std::string>& more) {
    auto text = base_plus({table, "[[links]]", "peer = \"hub\""});
    for (const auto& l : more)
      text += l + "\n";
    return text;
  };
  expect_refused({
    {link_with({"exclude = [\"app.notes.id\"]"}), 22, {"'app.notes.id'", "a key column"}},
    {link_with({"exclude = [\"app.notes.n\"]"}), 22, {"not nullable"}},
    {link_with({"exclude = [\"app.notes.colour\"]"}), 22, {"no column 'colour'", "id, body, n"}},
    {link_with({"exclude = [\"app.other.body\"]"}), 22, {"not a column of a peer table", "app.notes"}},
    {link_with({"filters = [ { table = \"app.notes\", column = \"body\", op = \"<\", "
                "values = [\"a\", \"b\"] } ]"}),
     22, {"takes one value"}},
    {link_with({"filters = [ { table = \"app.notes\", column = \"n\", values = [\"x\"] } ]"}), 22,
     {"must be an integer"}},
    {link_with({"filters = [ { table = \"app.other\", column = \"n\", values = [1] } ]"}), 22,
     {"not a peer table"}},
    {link_with({"exclude = [\"app.notes.body\"]",
                "filters = [ { table = \"app.notes\", column = \"body\", values = [\"a\"] } ]"}),
     23, {"also excludes"}},
    {base_plus({table, "[peer]", "tie_winner = \"\""}), 21, {"tie_winner", "same on every node"}},
  });
}

BOOST_AUTO_TEST_CASE(flow_control_and_trust_policies_parse_and_bad_ones_are_refused_naming_what_is_allowed) {
  const std::string table = "[[tables]]\nname = \"app.notes\"\n"
                            "columns = [ { name = \"id\", type = \"integer\", key = true } ]";
  auto got = parse_node_config(
    base_plus({table, "[peer]", "credits = 8", "credit_bytes = 1048576", "pause_at = 6", "commit_delay_ms = 5",
               "commits_in_flight_max = 1", "trust_policy = \"refuse_deletes\"", "[[links]]", "peer = \"hub\"",
               "trust_policy = \"refuse_deletes\""}),
    "node.toml");
  BOOST_REQUIRE_MESSAGE(got.is_ok(), (got.is_ok() ? "" : got.error().message()));
  BOOST_TEST(got->peer.credits == 8u);
  BOOST_TEST(got->peer.credit_bytes == 1048576u);
  BOOST_TEST(got->peer.pause_at == 6u);
  BOOST_TEST(got->peer.commit_delay_ms == 5u);
  BOOST_TEST(got->peer.commits_in_flight_max == 1u);
  BOOST_TEST(got->peer.trust_policy == "refuse_deletes");
  BOOST_TEST(got->links.at(0).trust_policy == "refuse_deletes");
  // The defaults: a window of 64 batches and 32 MiB, a sender with at
  // most 32 batches out, a pause at 48 waiting.
  auto plain = parse_node_config(base_plus({table}), "node.toml");
  BOOST_REQUIRE(plain.is_ok());
  BOOST_TEST(plain->peer.credits == 64u);
  BOOST_TEST(plain->peer.credit_bytes == 32u << 20);
  BOOST_TEST(plain->peer.in_flight_max == 32u);
  BOOST_TEST(plain->peer.pause_at == 48u);
  BOOST_TEST(plain->peer.commits_in_flight_max == 8u);

  // The table occupies lines 17-19; [peer] or [[links]] is line 20.
  expect_refused({
    {base_plus({table, "[peer]", "credits = 4", "pause_at = 5"}), 22, {"pause_at", "above credits (4)"}},
    {base_plus({table, "[peer]", "credits = 70000"}), 21, {"credits", "65536"}},
    {base_plus({table, "[peer]", "commits_in_flight_max = 0"}), 21, {"commits_in_flight_max"}},
    {base_plus({table, "[peer]", "credit_bytes = 0"}), 21, {"credit_bytes"}},
    {base_plus({table, "[peer]", "trust_policy = \"nobody\""}), 21,
     {"'nobody'", "not a registered trust policy", "refuse_deletes", "register_trust_policy"}},
    {base_plus({table, "[[links]]", "peer = \"hub\"", "trust_policy = \"nobody\""}), 22,
     {"of link 'hub'", "'nobody'", "refuse_deletes"}},
  });
}

BOOST_AUTO_TEST_SUITE_END()
