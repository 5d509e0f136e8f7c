#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libpq-fe.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <boost/test/unit_test.hpp>

#include "scenarios/postgres_server.hpp"

using namespace syncmesh::scenarios;
using syncmesh::store::errc;
namespace fs = std::filesystem;

namespace {

std::unique_ptr<postgres_server> started(postgres_options options = {}) {
  auto server = postgres_server::start(std::move(options));
  BOOST_REQUIRE_MESSAGE(server.is_ok(), server.error().to_string());
  return std::move(server).value();
}

sql_result ran(postgres_server& server, const std::string& statement,
               const std::string& db = "postgres") {
  auto r = server.sql(statement, db);
  BOOST_REQUIRE_MESSAGE(r.is_ok(), statement << " -> " << r.error().to_string());
  return std::move(r).value();
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

/// Pids of the processes whose command line names `dir` or whose working
/// directory lies in it (every PostgreSQL process works in its data
/// directory; only the postmaster names it on its command line).
std::vector<int> processes_of(const std::string& dir) {
  std::vector<int> pids;
  std::error_code ec;
  for (fs::directory_iterator it("/proc", ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos)
      continue;
    const int pid = std::stoi(name);
    if (pid == ::getpid())
      continue;
    std::string cmdline = read_file(it->path() / "cmdline");
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    std::error_code link_ec;
    const std::string cwd = fs::read_symlink(it->path() / "cwd", link_ec).string();
    // A removed working directory reads back as "<dir> (deleted)".
    const bool inside = !link_ec && cwd.compare(0, dir.size(), dir) == 0
                        && (cwd.size() == dir.size() || cwd[dir.size()] == '/'
                            || cwd[dir.size()] == ' ');
    if (inside || cmdline.find(dir) != std::string::npos)
      pids.push_back(pid);
  }
  return pids;
}

/// Removes a directory the test asked the server to keep, pass or fail.
struct remove_at_end {
  fs::path dir;
  ~remove_at_end() {
    std::error_code ec;
    if (!dir.empty())
      fs::remove_all(dir, ec);
  }
};

/// A listening socket on 127.0.0.1:`port`, closed at the end of the scope.
struct port_holder {
  int fd = -1;
  explicit port_holder(int port) {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int on = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, 1) != 0)
      release();
  }
  ~port_holder() { release(); }
  bool holds() const { return fd >= 0; }
  void release() {
    if (fd >= 0)
      ::close(fd);
    fd = -1;
  }
};

} // namespace

BOOST_AUTO_TEST_SUITE(postgres_server)

BOOST_AUTO_TEST_CASE(a_started_server_stores_rows_and_selects_them_back) {
  auto server = started();
  BOOST_TEST(server->running());
  BOOST_TEST(server->port() > 0);
  BOOST_TEST(server->conninfo("shop")
             == "host=127.0.0.1 port=" + std::to_string(server->port())
                    + " user=postgres dbname=shop");

  auto inserted = ran(*server,
                      "CREATE TABLE items (id integer PRIMARY KEY, title text);"
                      "INSERT INTO items VALUES (1, 'apple'), (2, NULL)");
  BOOST_TEST(inserted.command_tag == "INSERT 0 2");
  BOOST_TEST(inserted.rows.empty());

  auto selected = ran(*server, "SELECT id, title FROM items ORDER BY id");
  BOOST_TEST(selected.command_tag == "SELECT 2");
  BOOST_TEST(selected.columns == (std::vector<std::string>{"id", "title"}),
             boost::test_tools::per_element());
  BOOST_REQUIRE(selected.rows.size() == 2u);
  BOOST_TEST(selected.rows[0][0].value_or("?") == "1");
  BOOST_TEST(selected.rows[0][1].value_or("?") == "apple");
  BOOST_TEST(selected.rows[1][0].value_or("?") == "2");
  BOOST_TEST(!selected.rows[1][1].has_value());

  ran(*server, "CREATE DATABASE shop");
  auto in_shop = ran(*server, "SELECT current_database()", "shop");
  BOOST_REQUIRE(in_shop.rows.size() == 1u);
  BOOST_TEST(in_shop.rows[0][0].value_or("?") == "shop");

  auto notices = ran(*server, "DROP TABLE IF EXISTS not_there");
  BOOST_REQUIRE(notices.notices.size() == 1u);
  BOOST_TEST(notices.notices[0].find("does not exist, skipping") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(the_server_is_set_up_for_logical_replication) {
  auto server = started();
  auto wal_level = ran(*server, "SHOW wal_level");
  BOOST_REQUIRE(wal_level.rows.size() == 1u);
  BOOST_TEST(wal_level.rows[0][0].value_or("?") == "logical");

  auto slot = ran(*server, "SELECT slot_name FROM pg_create_logical_replication_slot('t', 'pgoutput')");
  BOOST_REQUIRE(slot.rows.size() == 1u);
  BOOST_TEST(slot.rows[0][0].value_or("?") == "t");
  auto slots = ran(*server, "SELECT plugin FROM pg_replication_slots WHERE slot_name = 't'");
  BOOST_REQUIRE(slots.rows.size() == 1u);
  BOOST_TEST(slots.rows[0][0].value_or("?") == "pgoutput");

  // pg_hba lets a replication connection in over TCP from 127.0.0.1.
  std::unique_ptr<PGconn, decltype(&PQfinish)> replication(
      PQconnectdb((server->conninfo() + " replication=database").c_str()), &PQfinish);
  BOOST_REQUIRE(replication);
  BOOST_REQUIRE_MESSAGE(PQstatus(replication.get()) == CONNECTION_OK,
                        PQerrorMessage(replication.get()));
  std::unique_ptr<PGresult, decltype(&PQclear)> identified(
      PQexec(replication.get(), "IDENTIFY_SYSTEM"), &PQclear);
  BOOST_TEST(PQresultStatus(identified.get()) == PGRES_TUPLES_OK);
}

BOOST_AUTO_TEST_CASE(wrong_sql_gives_an_error_value_with_postgresql_s_message) {
  auto server = started();

  auto typo = server->sql("SELEC 1");
  BOOST_REQUIRE(!typo.is_ok());
  BOOST_TEST((typo.error().code() == errc::invalid_argument));
  BOOST_TEST(typo.error().message().find("syntax error at or near \"SELEC\"") != std::string::npos,
             typo.error().message());
  BOOST_TEST(typo.error().message().find("42601") != std::string::npos);

  auto missing = server->sql("SELECT * FROM missing_table");
  BOOST_REQUIRE(!missing.is_ok());
  BOOST_TEST(missing.error().message().find("relation \"missing_table\" does not exist")
                 != std::string::npos,
             missing.error().message());

  // The failing statement of several is the one reported.
  auto second = server->sql("SELECT 1; SELECT 1 / 0");
  BOOST_REQUIRE(!second.is_ok());
  BOOST_TEST(second.error().message().find("division by zero") != std::string::npos,
             second.error().message());

  auto still = ran(*server, "SELECT 1 AS one");
  BOOST_TEST(still.columns == (std::vector<std::string>{"one"}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(a_stopped_server_refuses_sql_and_start_again_brings_the_data_back) {
  auto server = started();
  const int port = server->port();
  ran(*server, "CREATE TABLE kept (id integer); INSERT INTO kept VALUES (7)");

  BOOST_REQUIRE_MESSAGE(server->stop().is_ok(), "stop");
  BOOST_TEST(!server->running());
  BOOST_TEST(server->stop().is_ok(), "a second stop is a no-op");

  auto refused = server->sql("SELECT 1");
  BOOST_REQUIRE(!refused.is_ok());
  BOOST_TEST((refused.error().code() == errc::closed));
  BOOST_TEST(refused.error().message().find("cannot connect to PostgreSQL at 127.0.0.1:"
                                            + std::to_string(port))
                 != std::string::npos,
             refused.error().message());
  BOOST_TEST(refused.error().message().find("start_again()") != std::string::npos);

  auto again = server->start_again();
  BOOST_REQUIRE_MESSAGE(again.is_ok(), again.to_string());
  BOOST_TEST(server->running());
  BOOST_TEST(server->port() == port);
  auto kept = ran(*server, "SELECT id FROM kept");
  BOOST_REQUIRE(kept.rows.size() == 1u);
  BOOST_TEST(kept.rows[0][0].value_or("?") == "7");

  auto restarted = server->restart();
  BOOST_REQUIRE_MESSAGE(restarted.is_ok(), restarted.to_string());
  BOOST_TEST(ran(*server, "SELECT count(*) FROM kept").rows.at(0).at(0).value_or("?") == "1");
}

BOOST_AUTO_TEST_CASE(start_again_on_a_port_another_process_took_says_so) {
  auto server = started();
  BOOST_REQUIRE(server->stop().is_ok());
  port_holder squatter(server->port());
  BOOST_REQUIRE(squatter.holds());

  auto refused = server->start_again();
  BOOST_REQUIRE(!refused.is_ok());
  BOOST_TEST(refused.message().find("another process holds that port") != std::string::npos,
             refused.message());
  BOOST_TEST(refused.message().find(server->log_path()) != std::string::npos);
  BOOST_TEST(!server->running());

  squatter.release();
  auto again = server->start_again();
  BOOST_REQUIRE_MESSAGE(again.is_ok(), again.to_string());
  BOOST_TEST(ran(*server, "SELECT 1").rows.size() == 1u);
}

BOOST_AUTO_TEST_CASE(destroying_the_server_leaves_no_process_and_no_directory) {
  auto server = started();
  const std::string data_dir = server->data_dir();
  const fs::path root = fs::path(data_dir).parent_path();
  BOOST_REQUIRE(fs::is_directory(data_dir));
  // The check below must be able to see the server to prove it gone.
  BOOST_REQUIRE(!processes_of(data_dir).empty());

  server.reset();

  BOOST_TEST(!fs::exists(root), root.string() << " is still there");
  const auto left = processes_of(data_dir);
  BOOST_TEST(left.empty(), left.size() << " processes of " << data_dir << " remain");
}

BOOST_AUTO_TEST_CASE(keep_dir_leaves_the_log_for_a_reader_and_settings_reach_the_server) {
  postgres_options options;
  options.keep_dir = true;
  options.settings = {{"max_connections", "42"}, {"application_name", "it's kept"}};
  auto server = started(options);
  const std::string data_dir = server->data_dir();
  const std::string log_path = server->log_path();
  remove_at_end cleanup{fs::path(data_dir).parent_path()};

  BOOST_TEST(ran(*server, "SHOW max_connections").rows.at(0).at(0).value_or("?") == "42");
  BOOST_TEST(ran(*server, "SHOW application_name").rows.at(0).at(0).value_or("?") == "it's kept");

  server.reset();
  BOOST_TEST(fs::is_directory(data_dir));
  BOOST_TEST(read_file(log_path).find("database system is shut down") != std::string::npos);
  BOOST_TEST(processes_of(data_dir).empty());
}

BOOST_AUTO_TEST_CASE(a_server_that_cannot_start_reports_its_log_and_leaves_nothing_behind) {
  const std::string bogus = "bogus-" + std::to_string(::getpid());
  postgres_options options;
  options.settings = {{"shared_buffers", bogus}};
  auto server = syncmesh::scenarios::postgres_server::start(options);
  BOOST_REQUIRE(!server.is_ok());
  BOOST_TEST((server.error().code() == errc::io_error));
  BOOST_TEST(server.error().message().find("invalid value for parameter \"shared_buffers\"")
                 != std::string::npos,
             server.error().message());

  // Its directory would be the one whose postgresql.conf holds `bogus`.
  std::error_code ec;
  for (fs::directory_iterator it("/tmp", ec), end; !ec && it != end; it.increment(ec)) {
    if (it->path().filename().string().rfind("syncmesh-pg-", 0) != 0)
      continue;
    const auto conf = read_file(it->path() / "data" / "postgresql.conf");
    BOOST_TEST(conf.find(bogus) == std::string::npos, it->path() << " was left behind");
  }
}

BOOST_AUTO_TEST_CASE(a_missing_installation_says_which_package_to_install) {
  postgres_options options;
  options.bin_dir = "/nonexistent/postgresql/bin";
  auto server = syncmesh::scenarios::postgres_server::start(options);
  BOOST_REQUIRE(!server.is_ok());
  BOOST_TEST((server.error().code() == errc::not_found));
  BOOST_TEST(server.error().message().find("install the `postgresql` package")
                 != std::string::npos,
             server.error().message());
}

BOOST_AUTO_TEST_CASE(settings_the_server_chooses_itself_are_refused) {
  postgres_options options;
  options.settings = {{"port", "5432"}};
  auto server = syncmesh::scenarios::postgres_server::start(options);
  BOOST_REQUIRE(!server.is_ok());
  BOOST_TEST((server.error().code() == errc::invalid_argument));
  BOOST_TEST(server.error().message().find("port()") != std::string::npos,
             server.error().message());
}

BOOST_AUTO_TEST_SUITE_END()
