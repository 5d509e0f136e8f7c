// Commits in flight: a receiver merges the next deltas while its last
// commits are being written, and counts a commit's changes as held only
// once it is durable.

#include <boost/test/unit_test.hpp>

#include "tests/connectors/peer_cluster.hpp"

using namespace syncmesh;
using namespace syncmesh::test;

namespace {

/// Moves virtual time 1 ms at a time until `done` holds (at most `ms`).
template <class Pred>
bool advance_until(cluster& c, Pred done, int ms = 1000) {
  for (int i = 0; i < ms && !done(); ++i)
    c.sched.advance(1);
  return done();
}

} // namespace

BOOST_AUTO_TEST_SUITE(peer_pipeline)

BOOST_AUTO_TEST_CASE(a_received_change_is_acknowledged_and_held_only_once_its_commit_is_written) {
  cluster c({{"a", {link("b")}}, {"b", {link("a", true)}}});
  auto& writes = c.pipeline("b", 50);
  auto& a = c.nodes.at("a");
  auto& b = c.nodes.at("b");
  BOOST_TEST_REQUIRE((b.link("a").state == peer::link_state::live));

  a.write(1, "one");
  // The delta arrives and its commit is given to the committer.
  BOOST_TEST_REQUIRE(advance_until(c, [&] { return writes.pending() > 0; }));
  c.sched.advance(20);  // well inside the 50 ms the write takes
  BOOST_TEST(b.rows() == 0u);
  BOOST_TEST(b.rep->held().count("a") == 0u);    // not held before it is durable
  BOOST_TEST(a.link("b").unacked == 1u);         // nor acknowledged
  BOOST_TEST(b.link("a").applied_changes == 0u);

  c.sched.advance(40);  // written, reported
  BOOST_TEST(writes.pending() == 0u);
  BOOST_TEST(b.rows() == 1u);
  BOOST_TEST(b.rep->held().count("a") == 1u);
  BOOST_TEST(b.link("a").applied_changes == 1u);
  c.sched.advance(20);
  BOOST_TEST(a.link("b").unacked == 0u);
}

BOOST_AUTO_TEST_CASE(deltas_merge_on_top_of_commits_in_flight_and_rows_end_as_written_last) {
  cluster c({{"a", {link("b")}}, {"b", {link("a", true)}}});
  auto& writes = c.pipeline("b", 30, 4);
  auto& a = c.nodes.at("a");
  auto& b = c.nodes.at("b");
  // Many updates of a few rows, each its own delta, while earlier commits
  // are still being written: each merge starts from the one before it.
  std::size_t most_in_flight = 0;
  for (int i = 0; i < 40; ++i) {
    a.write(1 + i % 3, "v" + std::to_string(i));
    c.sched.advance(2);
    most_in_flight = std::max(most_in_flight, writes.pending());
  }
  BOOST_TEST(most_in_flight > 1u);  // commits were in flight together
  c.sched.advance(2000);
  BOOST_TEST(b.rows() == 3u);
  for (std::int64_t id = 1; id <= 3; ++id)
    BOOST_TEST((b.row(id) == a.row(id)));
  BOOST_TEST((b.row(1)[1] == value::text("v39")));
  BOOST_TEST((b.rep->held() == a.rep->held()));
  // Its change log replays into its table, old rows and all.
  auto log = b.db->read_changes(1, 0);
  BOOST_TEST_REQUIRE(log.is_ok());
  std::map<std::int64_t, store::row> replay;
  for (const auto& rec : *log) {
    const auto id = rec.key[0].as_int();
    auto it = replay.find(id);
    const std::optional<store::row> before =
      it == replay.end() ? std::nullopt : std::optional<store::row>{it->second};
    BOOST_TEST((before == rec.old_row), "change " << rec.seq << " logs a wrong old row");
    if (rec.new_row)
      replay[id] = *rec.new_row;
  }
  for (std::int64_t id = 1; id <= 3; ++id)
    BOOST_TEST((replay.at(id) == b.row(id)));
}

// A local write sets the columns that differ from the row as stored; a
// commit in flight that then fails must not make it leave one out.
BOOST_AUTO_TEST_CASE(a_local_write_sets_a_column_a_failed_commit_in_flight_had_brought) {
  cluster c({{"a", {link("b")}}, {"b", {link("a", true)}}});
  auto& writes = c.pipeline("b", 30);
  auto& a = c.nodes.at("a");
  auto& b = c.nodes.at("b");
  a.write(1, "u");
  c.sched.advance(500);
  BOOST_TEST_REQUIRE((b.row(1)[1] == value::text("u")));

  a.write(1, "v");  // in flight at b...
  BOOST_TEST_REQUIRE(advance_until(c, [&] { return writes.pending() > 0; }));
  writes.fail_next();  // ...and its write fails
  // On b after it: the same body, another secret (a write that changes
  // every column lists none, and sets them all).
  const auto local = b.write(1, "v", "t");
  auto st = b.rep->state_of("app.notes", {value::integer(1)});
  BOOST_TEST_REQUIRE((st.is_ok() && st->has_value()));
  // b's write set the body: its stamp is the body's.
  BOOST_TEST(((*st)->columns[1].hlc == local));
  BOOST_TEST((*st)->columns[1].origin == "b");

  c.sched.advance(3000);  // a sends its change again; both converge
  BOOST_TEST((b.row(1) == a.row(1)));
  auto at_a = a.rep->state_of("app.notes", {value::integer(1)});
  BOOST_TEST_REQUIRE((at_a.is_ok() && at_a->has_value()));
  BOOST_TEST(((*at_a)->columns[1].hlc == local));
  BOOST_TEST(a.link("b").nacks_received >= 1u);  // the failed commit was nacked
}

BOOST_AUTO_TEST_SUITE_END()
