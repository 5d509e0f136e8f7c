// The replication stream and the snapshot reader against a real, throwaway
// PostgreSQL: the exported-snapshot handover, confirmation, a server restart
// mid-stream, and the sentences a user sees when the setup is wrong.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <boost/test/unit_test.hpp>

#include "connectors/postgres/replication_stream.hpp"
#include "connectors/postgres/row_filter.hpp"
#include "scenarios/postgres_server.hpp"

namespace syncmesh::connectors::postgres {
// How Boost.Test prints an LSN in a failed assertion.
inline std::ostream& boost_test_print_type(std::ostream& out, lsn position) {
  return out << position.to_string();
}
} // namespace syncmesh::connectors::postgres

using namespace syncmesh::connectors::postgres;
using syncmesh::scenarios::postgres_options;
using syncmesh::scenarios::postgres_server;
using syncmesh::scenarios::sql_result;
using syncmesh::store::errc;
using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

/// One server for the suite, started on first use by the main thread (which
/// outlives every test, as postgres_server requires). Tests use their own
/// tables, publications and slots.
postgres_server& server() {
  static std::unique_ptr<postgres_server> shared = [] {
    // Keepalives every second or so (half the sender timeout), so tests that
    // wait for one do not depend on how busy the machine is.
    postgres_options options;
    options.settings = {{"wal_sender_timeout", "2s"}};
    auto started = postgres_server::start(options);
    BOOST_REQUIRE_MESSAGE(started.is_ok(), started.error().to_string());
    return std::move(started).value();
  }();
  return *shared;
}

sql_result ran(const std::string& statement, postgres_server& on = server()) {
  auto r = on.sql(statement);
  BOOST_REQUIRE_MESSAGE(r.is_ok(), statement << " -> " << r.error().to_string());
  return std::move(r).value();
}

std::unique_ptr<replication_stream> connected(const std::string& conninfo = server().conninfo()) {
  auto stream = replication_stream::connect(conninfo);
  BOOST_REQUIRE_MESSAGE(stream.is_ok(), stream.error().to_string());
  return std::move(stream).value();
}

std::unique_ptr<snapshot_reader> reader_for(const std::string& conninfo = server().conninfo()) {
  auto reader = snapshot_reader::connect(conninfo);
  BOOST_REQUIRE_MESSAGE(reader.is_ok(), reader.error().to_string());
  return std::move(reader).value();
}

slot_info created(replication_stream& stream, const std::string& name, bool temporary) {
  auto slot = stream.create_slot(name, temporary);
  BOOST_REQUIRE_MESSAGE(slot.is_ok(), slot.error().to_string());
  return std::move(slot).value();
}

/// Waits until `fd` is readable or `max` passed; a negative fd just waits.
void await_readable(int fd, std::chrono::milliseconds max) {
  pollfd p{fd, POLLIN, 0};
  (void)::poll(&p, 1, static_cast<int>(max.count()));
}

/// What the stream delivered until a condition held, the deadline passed or
/// it failed.
struct received {
  std::vector<xlog_data> messages;
  std::vector<keepalive> keepalives;
  std::optional<syncmesh::store::status> error;

  /// The error as text, "" when there was none (assertion messages are
  /// evaluated whether or not the assertion fails).
  std::string failure() const { return error ? error->to_string() : ""; }
  /// The first column of every Insert, in arrival order.
  std::vector<std::string> inserted_ids() const;
  bool has_commit_after_insert_of(const std::string& id) const;
  /// The start LSN of the last Commit message.
  lsn last_commit() const;
};

/// The text of the first column of a pgoutput Insert: 'I', relation oid,
/// 'N', column count, then the column ('t', length, text). Parsed by hand so
/// this suite does not depend on the decoder it feeds.
std::optional<std::string> first_column_of_insert(const std::string& p) {
  auto u16 = [&](std::size_t at) {
    return static_cast<unsigned>(static_cast<unsigned char>(p[at]) << 8
                                 | static_cast<unsigned char>(p[at + 1]));
  };
  if (p.size() < 13 || p[0] != 'I' || p[5] != 'N' || u16(6) < 1 || p[8] != 't')
    return std::nullopt;
  const std::size_t len = u16(9) << 16 | u16(11);
  if (p.size() < 13 + len)
    return std::nullopt;
  return p.substr(13, len);
}

std::vector<std::string> received::inserted_ids() const {
  std::vector<std::string> ids;
  for (const auto& m : messages)
    if (auto id = first_column_of_insert(m.payload))
      ids.push_back(*id);
  return ids;
}

bool received::has_commit_after_insert_of(const std::string& id) const {
  bool seen = false;
  for (const auto& m : messages) {
    seen = seen || first_column_of_insert(m.payload) == id;
    if (seen && !m.payload.empty() && m.payload[0] == 'C')
      return true;
  }
  return false;
}

lsn received::last_commit() const {
  lsn last;
  for (const auto& m : messages)
    if (!m.payload.empty() && m.payload[0] == 'C')
      last = m.start;
  return last;
}

/// Polls `stream`, waiting on its socket in between, until `done(so_far)`,
/// an error, or `within` passed.
template <class Done>
received receive_until(replication_stream& stream, Done done, std::chrono::milliseconds within) {
  received got;
  const auto deadline = steady::now() + within;
  while (!done(got) && steady::now() < deadline) {
    for (;;) {
      auto event = stream.poll();
      if (!event) {
        got.error = event.error();
        return got;
      }
      if (!*event)
        break;
      if (auto* x = std::get_if<xlog_data>(&**event))
        got.messages.push_back(*x);
      else
        got.keepalives.push_back(std::get<keepalive>(**event));
    }
    if (done(got))
      break;
    await_readable(stream.socket(), 50ms);
  }
  return got;
}

lsn confirmed_flush_of(const std::string& slot) {
  auto row = ran("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '" + slot
                 + "'");
  BOOST_REQUIRE(row.rows.size() == 1u);
  auto parsed = lsn::parse(row.rows[0][0].value_or("0/0"));
  BOOST_REQUIRE(parsed.is_ok());
  return *parsed;
}

std::set<std::string> ids_of(const std::vector<copy_row>& rows) {
  std::set<std::string> ids;
  for (const auto& r : rows)
    ids.insert(r.at(0).value_or("NULL"));
  return ids;
}

/// All rows of the running COPY, in chunks of at most `chunk` rows.
std::vector<copy_row> read_all(snapshot_reader& reader, std::size_t chunk) {
  std::vector<copy_row> all;
  for (;;) {
    auto rows = reader.next_rows(chunk);
    BOOST_REQUIRE_MESSAGE(rows.is_ok(), rows.error().to_string());
    if (!*rows)
      return all;
    BOOST_REQUIRE(!(*rows)->empty());
    BOOST_REQUIRE((*rows)->size() <= chunk);
    for (auto& r : **rows)
      all.push_back(std::move(r));
  }
}

/// Whether the sentence `st` carries holds `text`.
bool mentions(const syncmesh::store::status& st, const std::string& text) {
  return st.message().find(text) != std::string::npos;
}

/// A TCP port on 127.0.0.1 that nothing listens on.
int unused_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  BOOST_REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  BOOST_REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

} // namespace

BOOST_AUTO_TEST_SUITE(replication_stream_suite)

BOOST_AUTO_TEST_CASE(an_lsn_reads_and_prints_the_way_postgresql_writes_it) {
  auto parsed = lsn::parse("16/B374D848");
  BOOST_REQUIRE(parsed.is_ok());
  BOOST_TEST(parsed->value == 0x16B374D848ull);
  BOOST_TEST(parsed->to_string() == "16/B374D848");
  BOOST_TEST(lsn::parse("16/b374d848")->value == 0x16B374D848ull);
  BOOST_TEST(lsn::parse("0/0")->to_string() == "0/0");
  BOOST_TEST(lsn::parse("FFFFFFFF/FFFFFFFF")->value == ~0ull);
  BOOST_TEST((lsn{0x100000001ull}.to_string() == "1/1"));

  for (const char* bad : {"", "16", "16/", "/1", "G/1", "1/2/3", "123456789/0", " 1/2"}) {
    auto refused = lsn::parse(bad);
    BOOST_REQUIRE_MESSAGE(!refused.is_ok(), "'" << bad << "' was taken");
    BOOST_TEST((refused.error().code() == errc::invalid_argument));
    BOOST_TEST(mentions(refused.error(), "e.g. 16/B374D848"), refused.error().message());
  }
}

BOOST_AUTO_TEST_CASE(copy_text_rows_unescape_tabs_newlines_backslashes_and_nulls) {
  auto row = parse_copy_text_row("1\tab\\tc\\nd\\\\e\t\\N\t\t\\101\\x41\\r\\b\\f\\v\tx\\N\\q\n");
  BOOST_REQUIRE_MESSAGE(row.is_ok(), row.error().to_string());
  BOOST_REQUIRE(row->size() == 6u);
  BOOST_TEST((*row)[0].value_or("NULL") == "1");
  BOOST_TEST((*row)[1].value_or("NULL") == "ab\tc\nd\\e");
  BOOST_TEST(!(*row)[2].has_value(), "\\N alone is NULL");
  BOOST_TEST((*row)[3].value_or("NULL") == "", "an empty field is the empty string");
  BOOST_TEST((*row)[4].value_or("NULL") == "AA\r\b\f\v");
  BOOST_TEST((*row)[5].value_or("NULL") == "xNq", "\\N inside a field is just N");

  auto single = parse_copy_text_row("\\N");
  BOOST_REQUIRE(single.is_ok());
  BOOST_TEST(single->size() == 1u);
  BOOST_TEST(!(*single)[0].has_value());

  auto cut = parse_copy_text_row("a\tb\\");
  BOOST_REQUIRE(!cut.is_ok());
  BOOST_TEST((cut.error().code() == errc::corruption));
  BOOST_TEST(mentions(cut.error(), "field 2 ends with a lone backslash"), cut.error().message());
}

BOOST_AUTO_TEST_CASE(copy_reads_back_awkward_text_exactly_in_bounded_chunks) {
  ran("CREATE TABLE awkward (id integer PRIMARY KEY, body text, note varchar(20));"
      "INSERT INTO awkward VALUES"
      " (1, E'tab\\there', 'new\nline'),"
      " (2, E'back\\\\slash', NULL),"
      " (3, '', E'cr\\rlf'),"
      " (4, 'ünïcödé \\N', 'plain'),"
      " (5, E'\\\\N', 'x')");
  auto reader = reader_for();
  auto info = reader->describe("public", "awkward");
  BOOST_REQUIRE_MESSAGE(info.is_ok(), info.error().to_string());
  BOOST_REQUIRE(reader->copy(*info).is_ok());
  auto rows = read_all(*reader, 2);
  BOOST_REQUIRE(rows.size() == 5u);
  std::sort(rows.begin(), rows.end());
  BOOST_TEST(rows[0][1].value_or("NULL") == "tab\there");
  BOOST_TEST(rows[0][2].value_or("NULL") == "new\nline");
  BOOST_TEST(rows[1][1].value_or("NULL") == "back\\slash");
  BOOST_TEST(!rows[1][2].has_value());
  BOOST_TEST(rows[2][1].value_or("NULL") == "");
  BOOST_TEST(rows[2][2].value_or("NULL") == "cr\rlf");
  BOOST_TEST(rows[3][1].value_or("NULL") == "ünïcödé \\N");
  BOOST_TEST(rows[4][1].value_or("NULL") == "\\N", "the text \\N is not NULL");

  // A byte bound smaller than one row still returns one row per call.
  BOOST_REQUIRE(reader->copy(*info, {"id"}).is_ok());
  auto one = reader->next_rows(100, 1);
  BOOST_REQUIRE(one.is_ok());
  BOOST_REQUIRE(one->has_value());
  BOOST_TEST((*one)->size() == 1u);
  BOOST_TEST(read_all(*reader, 100).size() == 4u);
}

BOOST_AUTO_TEST_CASE(the_snapshot_holds_the_rows_before_the_slot_and_the_stream_the_rows_after) {
  ran("CREATE TABLE items (id integer PRIMARY KEY, title text);"
      "INSERT INTO items VALUES (1, 'one'), (2, 'two'), (3, 'three');"
      "CREATE PUBLICATION items_pub FOR TABLE items");
  auto stream = connected();
  const slot_info slot = created(*stream, "handover", false);
  BOOST_TEST(slot.slot_name == "handover");
  BOOST_TEST(slot.consistent_point.value > 0u);
  BOOST_TEST(!slot.snapshot_name.empty());

  auto reader = reader_for();
  auto begun = reader->begin(slot.snapshot_name);
  BOOST_REQUIRE_MESSAGE(begun.is_ok(), begun.to_string());

  // Committed after the slot: for the stream, not the snapshot.
  ran("INSERT INTO items VALUES (4, 'four')");
  ran("INSERT INTO items VALUES (5, 'five')");

  auto info = reader->describe("public", "items");
  BOOST_REQUIRE_MESSAGE(info.is_ok(), info.error().to_string());
  BOOST_REQUIRE(reader->copy(*info).is_ok());
  const auto snapshot = read_all(*reader, 2);
  BOOST_TEST((ids_of(snapshot) == std::set<std::string>{"1", "2", "3"}));
  BOOST_TEST(reader->commit().is_ok());

  auto exists = stream->slot_exists("handover");
  BOOST_REQUIRE(exists.is_ok());
  BOOST_TEST(*exists);
  BOOST_TEST(!*stream->slot_exists("no_such_slot"));

  auto started = stream->start("handover", slot.consistent_point, {"items_pub"});
  BOOST_REQUIRE_MESSAGE(started.is_ok(), started.to_string());
  auto got = receive_until(
    *stream, [](const received& r) { return r.has_commit_after_insert_of("5"); }, 10s);
  BOOST_REQUIRE_MESSAGE(!got.error, got.failure());
  BOOST_TEST((got.inserted_ids() == std::vector<std::string>{"4", "5"}),
             "nothing of the snapshot again, nothing after it missing");

  std::string types;
  for (const auto& m : got.messages) {
    BOOST_REQUIRE(!m.payload.empty());
    types += m.payload[0];
  }
  BOOST_TEST(types == "BRICBIC", "one Begin, Relation, Insert, Commit per transaction");
  BOOST_TEST(got.messages.front().start >= slot.consistent_point);

  // Confirming what is durable moves the slot.
  const lsn done = got.last_commit();
  BOOST_REQUIRE(done > slot.consistent_point);
  BOOST_REQUIRE(stream->confirm(done).is_ok());
  BOOST_TEST(stream->confirmed() >= done);
  const auto deadline = steady::now() + 5s;
  while (confirmed_flush_of("handover") < done && steady::now() < deadline)
    (void)receive_until(*stream, [](const received&) { return false; }, 20ms);
  BOOST_TEST(confirmed_flush_of("handover") >= done);

  stream.reset();
  auto dropper = connected();
  const auto drop_deadline = steady::now() + 5s;
  auto dropped = dropper->drop_slot("handover");
  while (dropped.code() == errc::invalid_argument && steady::now() < drop_deadline)
    dropped = dropper->drop_slot("handover");  // until the walsender has gone
  BOOST_TEST(dropped.is_ok(), dropped.to_string());
  BOOST_TEST(!*dropper->slot_exists("handover"));
  auto again = dropper->drop_slot("handover");
  BOOST_TEST((again.code() == errc::not_found), again.to_string());
}

BOOST_AUTO_TEST_CASE(a_restart_ends_the_stream_and_a_new_one_resumes_after_the_confirmed_lsn) {
  ran("CREATE TABLE notes (id integer PRIMARY KEY, body text);"
      "CREATE PUBLICATION notes_pub FOR TABLE notes");
  auto stream = connected();
  const slot_info slot = created(*stream, "resume", false);
  BOOST_REQUIRE(stream->start("resume", slot.consistent_point, {"notes_pub"}).is_ok());
  ran("INSERT INTO notes VALUES (1, 'kept')");
  ran("INSERT INTO notes VALUES (2, 'kept')");
  auto got = receive_until(
    *stream, [](const received& r) { return r.has_commit_after_insert_of("2"); }, 10s);
  BOOST_REQUIRE_MESSAGE(!got.error, got.failure());
  BOOST_REQUIRE((got.inserted_ids() == std::vector<std::string>{"1", "2"}));
  const lsn confirmed = got.last_commit();
  BOOST_REQUIRE(stream->confirm(confirmed).is_ok());

  // The stream is polled while the server restarts, as an actor would, so
  // keepalives sent during the shutdown are answered.
  std::optional<syncmesh::store::status> ended;
  std::thread poller([&] {
    auto during = receive_until(*stream, [](const received&) { return false; }, 15s);
    ended = during.error;
  });
  auto restarted = server().restart();
  poller.join();
  BOOST_REQUIRE_MESSAGE(restarted.is_ok(), restarted.to_string());
  BOOST_REQUIRE_MESSAGE(ended.has_value(), "the stream did not notice the restart");
  BOOST_TEST((ended->code() == errc::io_error), ended->to_string());
  BOOST_TEST(mentions(*ended, "start() slot resume from"), ended->message());
  BOOST_TEST((stream->poll().error().code() == errc::io_error), "a lost stream stays lost");

  auto resumed = connected();
  auto started = resumed->start("resume", confirmed, {"notes_pub"});
  BOOST_REQUIRE_MESSAGE(started.is_ok(), started.to_string());
  ran("INSERT INTO notes VALUES (3, 'new')");
  auto after = receive_until(
    *resumed, [](const received& r) { return r.has_commit_after_insert_of("3"); }, 10s);
  BOOST_REQUIRE_MESSAGE(!after.error, after.failure());
  BOOST_TEST((after.inserted_ids() == std::vector<std::string>{"3"}),
             "what was confirmed before the restart does not come again");
}

BOOST_AUTO_TEST_CASE(a_caught_up_stream_moves_its_slot_and_an_unconfirmed_commit_holds_it) {
  ran("CREATE TABLE watched (id integer PRIMARY KEY);"
      "CREATE TABLE ignored (id integer PRIMARY KEY);"
      "CREATE PUBLICATION watched_pub FOR TABLE watched");
  auto stream = connected();
  const slot_info slot = created(*stream, "quiet", true);
  BOOST_REQUIRE(stream->start("quiet", slot.consistent_point, {"watched_pub"}).is_ok());

  // Nothing handed out, so nothing is pending: keepalives move the slot
  // past changes the publication does not carry.
  ran("INSERT INTO ignored VALUES (1)");
  auto quiet = receive_until(
    *stream, [&](const received&) { return stream->confirmed() > slot.consistent_point; }, 10s);
  BOOST_REQUIRE_MESSAGE(!quiet.error, quiet.failure());
  BOOST_TEST(quiet.messages.empty());
  BOOST_REQUIRE(stream->confirmed() > slot.consistent_point);
  const auto deadline = steady::now() + 5s;
  while (confirmed_flush_of("quiet") <= slot.consistent_point && steady::now() < deadline)
    (void)receive_until(*stream, [](const received&) { return false; }, 20ms);
  BOOST_TEST(confirmed_flush_of("quiet") > slot.consistent_point);

  // A Commit handed out and not confirmed holds the confirmed LSN back
  // however far the keepalives go.
  ran("INSERT INTO watched VALUES (1)");
  auto change = receive_until(
    *stream, [](const received& r) { return r.has_commit_after_insert_of("1"); }, 10s);
  BOOST_REQUIRE_MESSAGE(!change.error, change.failure());
  const lsn commit = change.last_commit();
  const lsn held = stream->confirmed();
  BOOST_REQUIRE(held < commit);
  ran("INSERT INTO ignored VALUES (2)");
  auto past = receive_until(
    *stream,
    [&](const received& r) {
      return std::any_of(r.keepalives.begin(), r.keepalives.end(),
                         [&](const keepalive& k) { return k.end > commit; });
    },
    10s);
  BOOST_REQUIRE_MESSAGE(!past.error, past.failure());
  BOOST_REQUIRE_MESSAGE(!past.keepalives.empty(), "no keepalive came past the commit");
  BOOST_TEST(stream->confirmed() == held);

  // Once it is confirmed, the next keepalive moves the slot on again.
  BOOST_REQUIRE(stream->confirm(commit).is_ok());
  BOOST_TEST(stream->confirmed() == commit);
  ran("INSERT INTO ignored VALUES (3)");
  auto moving = receive_until(
    *stream, [&](const received&) { return stream->confirmed() > commit; }, 10s);
  BOOST_REQUIRE_MESSAGE(!moving.error, moving.failure());
  BOOST_TEST(stream->confirmed() > commit);
}

BOOST_AUTO_TEST_CASE(a_missing_slot_and_a_missing_publication_are_named) {
  auto stream = connected();
  auto no_slot = stream->start("never_made", lsn{}, {"items_pub"});
  BOOST_TEST((no_slot.code() == errc::not_found), no_slot.to_string());
  BOOST_TEST(mentions(no_slot, "replication slot never_made does not exist"), no_slot.message());
  BOOST_TEST(mentions(no_slot, "create_slot()"), no_slot.message());

  auto bad_name = stream->create_slot("Bad-Name", true);
  BOOST_REQUIRE(!bad_name.is_ok());
  BOOST_TEST(mentions(bad_name.error(), "lower-case letters, digits and underscores"));

  ran("CREATE TABLE lonely (id integer PRIMARY KEY)");
  const slot_info slot = created(*stream, "no_pub", true);
  BOOST_REQUIRE(stream->start("no_pub", slot.consistent_point, {"nope_pub"}).is_ok());
  ran("INSERT INTO lonely VALUES (1)");
  auto got = receive_until(*stream, [](const received&) { return false; }, 10s);
  BOOST_REQUIRE_MESSAGE(got.error.has_value(), "the missing publication went unreported");
  BOOST_TEST((got.error->code() == errc::not_found), got.error->to_string());
  BOOST_TEST(mentions(*got.error, "publication \"nope_pub\" does not exist"),
             got.error->message());
}

BOOST_AUTO_TEST_CASE(a_snapshot_is_gone_once_its_replication_connection_moves_on) {
  ran("CREATE TABLE fleeting (id integer PRIMARY KEY);"
      "CREATE PUBLICATION fleeting_pub FOR TABLE fleeting");
  auto stream = connected();
  const slot_info slot = created(*stream, "fleeting", true);
  BOOST_REQUIRE(stream->start("fleeting", slot.consistent_point, {"fleeting_pub"}).is_ok());

  auto reader = reader_for();
  auto late = reader->begin(slot.snapshot_name);
  BOOST_TEST((late.code() == errc::not_found), late.to_string());
  BOOST_TEST(mentions(late, "import it before start()"), late.message());
  auto other = stream->create_slot("fleeting_2", true);
  BOOST_REQUIRE(!other.is_ok());
  BOOST_TEST(mentions(other.error(), "streaming"), other.error().message());
}

BOOST_AUTO_TEST_CASE(describe_reads_columns_and_key_and_names_what_is_missing) {
  ran("CREATE TABLE orders (region text, seq bigint, amount numeric(10,2) NOT NULL,"
      " label varchar(20), doubled bigint GENERATED ALWAYS AS (seq * 2) STORED,"
      " PRIMARY KEY (seq, region));"
      "ALTER TABLE orders DROP COLUMN label;"
      "CREATE TABLE keyless (id integer)");
  auto reader = reader_for();
  auto info = reader->describe("public", "orders");
  BOOST_REQUIRE_MESSAGE(info.is_ok(), info.error().to_string());
  BOOST_TEST(info->schema == "public");
  BOOST_TEST(info->name == "orders");
  BOOST_TEST(info->oid > 0u);
  BOOST_REQUIRE(info->columns.size() == 4u);  // the dropped column is gone
  BOOST_TEST(info->columns[0].name == "region");
  BOOST_TEST(info->columns[0].type_oid == 25u);
  BOOST_TEST(info->columns[1].type_name == "bigint");
  BOOST_TEST(info->columns[1].not_null, "a key column is NOT NULL");
  BOOST_TEST(info->columns[2].type_name == "numeric(10,2)");
  BOOST_TEST(info->columns[2].not_null);
  BOOST_TEST(!info->columns[0].generated);
  BOOST_TEST(info->columns[3].generated);
  BOOST_TEST((info->primary_key == std::vector<std::string>{"seq", "region"}),
             "key columns come in key order, not table order");

  auto found_by_path = reader->describe("", "orders");
  BOOST_REQUIRE(found_by_path.is_ok());
  BOOST_TEST(found_by_path->oid == info->oid);

  auto missing = reader->describe("public", "nope");
  BOOST_TEST((missing.error().code() == errc::not_found));
  BOOST_TEST(mentions(missing.error(), "table public.nope does not exist"),
             missing.error().message());
  BOOST_TEST(mentions(missing.error(), "check the name or the search path"));

  auto keyless = reader->describe("public", "keyless");
  BOOST_TEST((keyless.error().code() == errc::invalid_argument));
  BOOST_TEST(mentions(keyless.error(), "table public.keyless has no primary key"),
             keyless.error().message());
  BOOST_TEST(mentions(keyless.error(), "ADD PRIMARY KEY"));
}

BOOST_AUTO_TEST_CASE(filters_are_quoted_and_an_unknown_column_is_refused_before_any_sql_runs) {
  ran("CREATE TABLE fruit (id integer PRIMARY KEY, name text);"
      "INSERT INTO fruit SELECT g, 'fruit ' || g FROM generate_series(1, 10) g;"
      "INSERT INTO fruit VALUES (11, 'it''s'), (12, 'x'' OR ''a''=''a');"
      "CREATE PUBLICATION fruit_pub FOR TABLE fruit");
  auto stream = connected();
  const slot_info slot = created(*stream, "fruit", true);
  auto reader = reader_for();
  BOOST_REQUIRE(reader->begin(slot.snapshot_name).is_ok());
  auto info = reader->describe("public", "fruit");
  BOOST_REQUIRE(info.is_ok());

  auto unknown = reader->copy(*info, {"id"}, {{"colour", filter_op::eq, {"red"}}});
  BOOST_TEST((unknown.code() == errc::invalid_argument));
  BOOST_TEST(mentions(unknown, "table public.fruit has no column \"colour\" to filter on"),
             unknown.message());
  BOOST_TEST(mentions(unknown, "its columns are id, name"));
  auto unknown_selected = reader->copy(*info, {"id", "weight"});
  BOOST_TEST(mentions(unknown_selected, "no column \"weight\" to copy"), unknown_selected.message());
  auto empty_in = reader->copy(*info, {"id"}, {{"id", filter_op::in, {}}});
  BOOST_TEST(mentions(empty_in, "IN takes one or more"), empty_in.message());

  // Nothing reached the server: the snapshot transaction is still usable.
  BOOST_REQUIRE(reader->copy(*info, {"id"},
                             {{"id", filter_op::ge, {"3"}}, {"id", filter_op::lt, {"6"}}})
                  .is_ok());
  BOOST_TEST((ids_of(read_all(*reader, 10)) == std::set<std::string>{"3", "4", "5"}));

  BOOST_REQUIRE(reader->copy(*info, {"id"}, {{"name", filter_op::in, {"it's", "fruit 7"}}}).is_ok());
  BOOST_TEST((ids_of(read_all(*reader, 10)) == std::set<std::string>{"7", "11"}));

  BOOST_REQUIRE(reader->copy(*info, {"id"}, {{"name", filter_op::eq, {"x' OR 'a'='a"}}}).is_ok());
  BOOST_TEST((ids_of(read_all(*reader, 10)) == std::set<std::string>{"12"}),
             "a value is a literal, never SQL");

  auto wrong_type = reader->copy(*info, {"id"}, {{"id", filter_op::eq, {"abc"}}});
  BOOST_TEST((wrong_type.code() == errc::invalid_argument));
  BOOST_TEST(mentions(wrong_type, "invalid input syntax for type integer"), wrong_type.message());
  BOOST_TEST(reader->commit().is_ok(), "commit() ends even an aborted transaction");
}

BOOST_AUTO_TEST_CASE(the_stream_filter_keeps_exactly_the_rows_the_snapshot_where_keeps) {
  // Awkward values of every filterable type, NULLs included; the C
  // collation comes from the throwaway server's initdb --locale=C.
  ran("CREATE TABLE mixed (id integer PRIMARY KEY, n bigint, x numeric, f float8, b boolean,"
      " t text, c char(4), u uuid);"
      "INSERT INTO mixed VALUES"
      " (1, -5, -1.50, -0.5, true, 'apple', 'ab', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'),"
      " (2, 0, 0, 0, false, 'Apple', 'ab  ', '00000000-0000-0000-0000-000000000000'),"
      " (3, 5, 10.000, 'NaN', NULL, 'banana', NULL, NULL),"
      " (4, NULL, 'NaN', 'Infinity', true, '', 'zz', 'ffffffff-ffff-ffff-ffff-ffffffffffff'),"
      " (5, 9223372036854775807, 9.99, '-Infinity', false, 'b', 'b', NULL),"
      " (6, 10, 1e-20, 1e300, true, NULL, 'ab c', NULL),"
      " (7, -9223372036854775808, 100, 2.5, NULL, 'apples', '', NULL)");
  auto reader = reader_for();
  auto info = reader->describe("public", "mixed");
  BOOST_REQUIRE_MESSAGE(info.is_ok(), info.error().to_string());
  BOOST_TEST(info->find("t")->collation == "C");
  BOOST_TEST(info->find("n")->collation == "");
  relation rel;
  rel.oid = info->oid;
  rel.namespace_name = "public";
  rel.name = "mixed";
  for (const auto& c : info->columns) {
    relation_column rc;
    rc.name = c.name;
    rc.type_oid = c.type_oid;
    rel.columns.push_back(rc);
  }
  const std::vector<std::vector<column_filter>> cases = {
    {{"n", filter_op::lt, {"6"}}},
    {{"n", filter_op::ge, {"-9223372036854775808"}}},
    {{"x", filter_op::lt, {"10"}}},
    {{"x", filter_op::ge, {"10"}}},
    {{"x", filter_op::eq, {"1e1"}}},
    {{"x", filter_op::gt, {"0"}}},
    {{"f", filter_op::gt, {"1e299"}}},
    {{"f", filter_op::le, {"0"}}},
    {{"b", filter_op::eq, {"true"}}},
    {{"b", filter_op::lt, {"yes"}}},
    {{"t", filter_op::lt, {"apple"}}},
    {{"t", filter_op::ge, {"apple"}}},
    {{"t", filter_op::in, {"apple", "", "b"}}},
    {{"c", filter_op::eq, {"ab"}}},
    {{"c", filter_op::gt, {"ab"}}},
    {{"u", filter_op::eq, {"{A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11}"}}},
    {{"u", filter_op::gt, {"00000000-0000-0000-0000-000000000001"}}},
    {{"n", filter_op::gt, {"-6"}}, {"t", filter_op::in, {"apple", "Apple", "banana"}}},
  };
  for (const auto& where : cases) {
    BOOST_REQUIRE(reader->copy(*info, {"id"}, where).is_ok());
    const auto in_postgres = ids_of(read_all(*reader, 100));
    auto f = row_filter::compile(where, *info);
    BOOST_REQUIRE_MESSAGE(f.is_ok(), f.error().to_string());
    BOOST_REQUIRE(reader->copy(*info).is_ok());
    std::set<std::string> here;
    for (const auto& row : read_all(*reader, 100)) {
      tuple_data tuple;
      for (const auto& v : row)
        tuple.push_back(v ? tuple_column{column_kind::text, *v} : tuple_column{column_kind::null, {}});
      auto verdict = f->evaluate(rel, tuple);
      BOOST_REQUIRE_MESSAGE(verdict.is_ok(), verdict.error().to_string());
      if (*verdict == filter_verdict::match)
        here.insert(*row[0]);
    }
    std::string shown;
    for (const auto& c : where)
      shown += c.column + " op " + std::to_string(static_cast<int>(c.op)) + " " + c.values[0] + "; ";
    BOOST_TEST(here == in_postgres, shown);
  }
}

BOOST_AUTO_TEST_CASE(a_query_is_described_before_it_runs_and_its_key_checked) {
  ran("CREATE TABLE sales (id bigint PRIMARY KEY, region text, amount numeric(8,2));"
      "INSERT INTO sales SELECT g, 'r' || (g % 3), g FROM generate_series(1, 30) g");
  auto reader = reader_for();
  const std::string query =
    "SELECT region, count(*) AS n, sum(amount) AS total FROM sales GROUP BY region;  ";
  auto info = reader->describe_query(query, {"region"});
  BOOST_REQUIRE_MESSAGE(info.is_ok(), info.error().to_string());
  BOOST_REQUIRE(info->columns.size() == 3u);
  BOOST_TEST(info->columns[0].name == "region");
  BOOST_TEST(info->columns[1].type_oid == 20u);
  BOOST_TEST(info->columns[2].type_name == "numeric");
  BOOST_TEST((info->primary_key == std::vector<std::string>{"region"}));
  BOOST_REQUIRE(reader->copy_query(query, *info).is_ok());
  BOOST_TEST((ids_of(read_all(*reader, 2)) == std::set<std::string>{"r0", "r1", "r2"}));

  auto keyless = reader->describe_query(query, {});
  BOOST_TEST(mentions(keyless.error(), "name the columns of its result"), keyless.error().message());
  auto wrong_key = reader->describe_query(query, {"id"});
  BOOST_TEST(mentions(wrong_key.error(),
                      "key column 'id' is not among the query's result columns (region, n, total)"),
             wrong_key.error().message());
  auto twice = reader->describe_query("SELECT id, id FROM sales", {"id"});
  BOOST_TEST(mentions(twice.error(), "two columns named 'id'"), twice.error().message());
  auto broken = reader->describe_query("SELECT nope FROM sales", {"nope"});
  BOOST_TEST(mentions(broken.error(), "column \"nope\" does not exist"), broken.error().message());
  // The connection only reads: a query that writes fails and writes nothing.
  const std::string writes = "INSERT INTO sales VALUES (99, 'x', 1) RETURNING id";
  auto described = reader->describe_query(writes, {"id"});
  BOOST_REQUIRE(described.is_ok());
  auto refused = reader->copy_query(writes, *described);
  BOOST_TEST(mentions(refused, "read-only transaction"), refused.message());
  BOOST_TEST(ran("SELECT count(*) FROM sales WHERE id = 99").rows.at(0).at(0).value_or("") == "0");
}

BOOST_AUTO_TEST_CASE(an_unreachable_port_is_an_io_error_naming_host_and_port) {
  const int port = unused_port();
  const std::string conninfo = "host=127.0.0.1 port=" + std::to_string(port) + " user=postgres";
  auto refused = replication_stream::connect(conninfo);
  BOOST_REQUIRE(!refused.is_ok());
  BOOST_TEST((refused.error().code() == errc::io_error));
  BOOST_TEST(mentions(refused.error(),
                      "cannot reach PostgreSQL at 127.0.0.1:" + std::to_string(port)),
             refused.error().message());
  BOOST_TEST(mentions(refused.error(), "check that the server is running"));

  auto reader = snapshot_reader::connect(conninfo);
  BOOST_TEST((reader.error().code() == errc::io_error));

  auto malformed = replication_stream::connect("host=127.0.0.1 port");
  BOOST_TEST((malformed.error().code() == errc::invalid_argument));
  BOOST_TEST(mentions(malformed.error(), "connection string is not valid"),
             malformed.error().message());
}

BOOST_AUTO_TEST_CASE(wrong_credentials_are_refused_with_a_sentence_about_user_and_password) {
  ran("CREATE ROLE alice LOGIN REPLICATION PASSWORD 'right'");
  // The throwaway server trusts everyone; make alice use her password.
  const std::string hba = server().data_dir() + "/pg_hba.conf";
  std::string rules;
  {
    std::ifstream in(hba);
    rules.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  {
    std::ofstream out(hba, std::ios::trunc);
    out << "host all alice 127.0.0.1/32 scram-sha-256\n" << rules;
  }
  ran("SELECT pg_reload_conf()");

  const std::string base = server().conninfo() + " user=alice";
  // The postmaster reloads asynchronously: await the refusal.
  auto wrong = replication_stream::connect(base + " password=wrong");
  const auto deadline = steady::now() + 5s;
  while (wrong.is_ok() && steady::now() < deadline)
    wrong = replication_stream::connect(base + " password=wrong");
  BOOST_REQUIRE_MESSAGE(!wrong.is_ok(), "alice got in with a wrong password");
  BOOST_TEST((wrong.error().code() == errc::invalid_argument));
  BOOST_TEST(mentions(wrong.error(), "refused the login of user alice"), wrong.error().message());
  BOOST_TEST(mentions(wrong.error(), "password authentication failed"));
  BOOST_TEST(mentions(wrong.error(), "check the user and password"));

  auto right = replication_stream::connect(base + " password=right");
  BOOST_TEST(right.is_ok(), right.error().to_string());

  auto nobody = replication_stream::connect(server().conninfo() + " user=nobody");
  BOOST_TEST((nobody.error().code() == errc::invalid_argument));
  BOOST_TEST(mentions(nobody.error(), "refused the login of user nobody"),
             nobody.error().message());
}

BOOST_AUTO_TEST_CASE(a_role_without_replication_is_told_to_get_the_replication_attribute) {
  ran("CREATE ROLE bob LOGIN");
  auto refused = replication_stream::connect(server().conninfo() + " user=bob");
  BOOST_REQUIRE(!refused.is_ok());
  BOOST_TEST((refused.error().code() == errc::invalid_argument));
  BOOST_TEST(mentions(refused.error(), "role bob may not start logical replication"),
             refused.error().message());
  BOOST_TEST(mentions(refused.error(), "ALTER ROLE \"bob\" REPLICATION"));

  auto reader = snapshot_reader::connect(server().conninfo() + " user=bob");
  BOOST_TEST(reader.is_ok(), "a normal connection needs no REPLICATION");
}

BOOST_AUTO_TEST_CASE(a_server_without_logical_wal_is_told_to_set_wal_level_logical) {
  postgres_options options;
  options.settings = {{"wal_level", "replica"}};
  auto replica = postgres_server::start(options);
  BOOST_REQUIRE_MESSAGE(replica.is_ok(), replica.error().to_string());
  auto refused = replication_stream::connect((*replica)->conninfo());
  BOOST_REQUIRE(!refused.is_ok());
  BOOST_TEST((refused.error().code() == errc::invalid_argument));
  BOOST_TEST(mentions(refused.error(), "runs with wal_level = replica"), refused.error().message());
  BOOST_TEST(mentions(refused.error(), "set `wal_level = logical` in postgresql.conf"));
  BOOST_TEST(mentions(refused.error(), "restart the server"));
}

BOOST_AUTO_TEST_CASE(which_server_errors_leave_the_slot_to_a_new_connection) {
  // A new connection may go on from the slot: the connection, resources or
  // an operator ended this one.
  for (const char* state : {"08006", "08P01", "53100", "53200", "57P01", "57P02", "57P03", "57014"})
    BOOST_TEST(stream_error_resumable(state), state);
  // The next stream from the slot would end the same way: copy again.
  for (const char* state : {"58P01", "55000", "XX000", "42704", "22P02", "", "08", "5"})
    BOOST_TEST(!stream_error_resumable(state), state);
}

BOOST_AUTO_TEST_SUITE_END()
