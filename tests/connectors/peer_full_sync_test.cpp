// Peer-log compaction and full syncs on the in-memory network: a peer that
// comes back lacking changes the log no longer holds gets every row it is
// allowed (sync_batch), then sync_complete, then deltas; a node that took a
// full sync passes it on to the peers it sends deltas to; a restart after
// compaction goes on numbering the log where it was.

#include <boost/test/unit_test.hpp>

#include "connectors/peer/replicator.hpp"
#include "store/key_codec.hpp"
#include "tests/connectors/peer_cluster.hpp"

using namespace syncmesh;
using namespace syncmesh::test;

namespace {

/// Compaction after one second, looked for every 100 ms.
void short_retention(peer::replicator_config& cfg) {
  cfg.log_retention_ms = 1000;
  cfg.gc_interval_ms = 100;
}

std::string digest(const node& n) { return peer::table_digest(*n.db, "app.notes").value(); }

/// The seqs of the peer log entries `n` holds, in order. The log is kept in
/// pages named by their last seq, each a delta whose id is its first seq
/// (a page of one change: the seq its name says).
std::vector<std::uint64_t> log_seqs(const node& n) {
  auto pages = n.db->ext_scan("peer/log/", "peer/log/", 100000);
  BOOST_REQUIRE(pages.is_ok());
  std::vector<std::uint64_t> out;
  for (const auto& [name, raw] : *pages) {
    std::uint64_t last = 0;
    for (std::size_t i = name.size() - 8; i < name.size(); ++i)
      last = (last << 8) | static_cast<unsigned char>(name[i]);
    auto m = messaging::peer::decode(raw, {});
    BOOST_REQUIRE(m.is_ok());
    const auto& d = std::get<messaging::peer::delta>(m.value());
    const auto first = d.changes.size() == 1 ? last : d.id;
    BOOST_REQUIRE(last - first + 1 == d.changes.size());
    for (auto seq = first; seq <= last; ++seq)
      out.push_back(seq);
  }
  return out;
}

} // namespace

BOOST_AUTO_TEST_SUITE(peer_full_sync)

BOOST_AUTO_TEST_CASE(a_peer_behind_the_compacted_log_gets_a_full_sync_then_deltas) {
  cluster c({{"a", {link("b")}}, {"b", {link("a", true)}}}, short_retention);
  c.sched.advance(200);
  c.net.partition("a", "b");
  auto& a = c.nodes.at("a");
  auto& b = c.nodes.at("b");
  for (std::int64_t id = 1; id <= 40; ++id)
    a.write(id, "first " + std::to_string(id));
  for (std::int64_t id = 1; id <= 40; id += 3)
    a.write(id, "second " + std::to_string(id), "changed");
  for (std::int64_t id = 2; id <= 40; id += 5)
    a.remove(id);
  c.sched.advance(3000);
  // Everything but the newest entry is older than the retention: dropped.
  BOOST_TEST(a.rep->log_entries_dropped() > 50u);
  BOOST_TEST(log_seqs(a).size() == 1u);
  BOOST_TEST(!a.rep->log_floor().empty());

  c.net.heal_all();
  c.sched.advance(3000);
  BOOST_TEST(b.rows() == a.rows());
  BOOST_TEST(digest(b) == digest(a));
  BOOST_TEST(a.link("b").full_syncs_sent == 1u);
  BOOST_TEST(b.link("a").full_syncs_received == 1u);
  BOOST_TEST((b.row(1)[1] == value::text("second 1")));
  BOOST_TEST(b.row(2).empty());  // removed on a before b saw it
  // Its version vector took what the full sync brought.
  BOOST_TEST((b.rep->held().at("a") == a.rep->held().at("a")));
  // The same merge state on both, deletes included: later writes merge alike.
  for (std::int64_t id = 1; id <= 40; ++id) {
    auto on_b = b.rep->state_of("app.notes", {value::integer(id)});
    auto on_a = a.rep->state_of("app.notes", {value::integer(id)});
    BOOST_TEST_REQUIRE((on_b.is_ok() && on_a.is_ok() && *on_b && *on_a));
    BOOST_TEST((**on_b == **on_a));
  }
  // b took it all from a: nothing to send back.
  BOOST_TEST(b.link("a").full_syncs_sent == 0u);

  // Afterwards the link carries deltas again, both ways.
  a.write(41, "after");
  b.write(42, "from b");
  c.sched.advance(500);
  BOOST_TEST((b.row(41)[1] == value::text("after")));
  BOOST_TEST((a.row(42)[1] == value::text("from b")));
  BOOST_TEST(a.link("b").full_syncs_sent == 1u);
}

BOOST_AUTO_TEST_CASE(without_retention_the_log_is_kept_and_a_peer_catches_up_by_deltas) {
  cluster c({{"a", {link("b")}}, {"b", {link("a", true)}}}, [](peer::replicator_config& cfg) {
    cfg.log_retention_ms = 0;
    cfg.gc_interval_ms = 100;
  });
  c.sched.advance(200);
  c.net.partition("a", "b");
  auto& a = c.nodes.at("a");
  auto& b = c.nodes.at("b");
  for (std::int64_t id = 1; id <= 20; ++id)
    a.write(id);
  c.sched.advance(3000);
  BOOST_TEST(a.rep->log_entries_dropped() == 0u);
  BOOST_TEST(log_seqs(a).size() == 20u);
  c.net.heal_all();
  c.sched.advance(3000);
  BOOST_TEST(b.rows() == 20u);
  BOOST_TEST(a.link("b").full_syncs_sent == 0u);
}

BOOST_AUTO_TEST_CASE(a_node_that_took_a_full_sync_passes_it_to_the_peers_it_sends_deltas_to) {
  // a -- hub -- c. The hub is cut off from a while a writes and compacts;
  // c stays linked to the hub the whole time, taking deltas.
  cluster c({{"a", {link("hub", true)}},
             {"hub", {link("a"), link("c")}},
             {"c", {link("hub", true)}}},
            short_retention);
  c.sched.advance(200);
  auto& a = c.nodes.at("a");
  auto& hub = c.nodes.at("hub");
  auto& cn = c.nodes.at("c");
  c.net.partition("a", "hub");
  for (std::int64_t id = 1; id <= 30; ++id)
    a.write(id, "from a");
  c.sched.advance(3000);
  BOOST_TEST(a.rep->log_entries_dropped() > 0u);
  c.net.heal_all();
  c.sched.advance(4000);
  BOOST_TEST(a.link("hub").full_syncs_sent >= 1u);
  // The hub holds a's rows outside its log; c lacks them, so the hub sent
  // them on in a full sync rather than leave c without them.
  BOOST_TEST(hub.rows() == 30u);
  BOOST_TEST(cn.rows() == 30u);
  BOOST_TEST(digest(cn) == digest(a));
  BOOST_TEST(hub.link("c").full_syncs_sent >= 1u);
  // No echoes: the hub does not send a's rows back to a, nor c the hub's.
  BOOST_TEST(hub.link("a").full_syncs_sent == 0u);
  BOOST_TEST(cn.link("hub").full_syncs_sent == 0u);
  // The next change of a travels in order and settles every vector.
  a.write(31, "last");
  c.sched.advance(1000);
  BOOST_TEST((cn.row(31)[1] == value::text("last")));
  BOOST_TEST((cn.rep->held() == a.rep->held()));
  BOOST_TEST((hub.rep->held() == a.rep->held()));
}

BOOST_AUTO_TEST_CASE(after_a_restart_the_log_goes_on_from_its_last_entry) {
  cluster c({{"a", {link("b")}}, {"b", {link("a", true)}}}, short_retention);
  c.sched.advance(200);
  c.net.partition("a", "b");
  auto& a = c.nodes.at("a");
  for (std::int64_t id = 1; id <= 10; ++id)
    a.write(id);
  c.sched.advance(3000);
  const auto kept = log_seqs(a);
  BOOST_TEST_REQUIRE(kept.size() == 1u);
  BOOST_TEST(kept.front() == 10u);
  c.restart("a");
  a.write(11);
  const auto after = log_seqs(a);
  BOOST_TEST_REQUIRE(after.size() == 2u);
  BOOST_TEST(after.back() == 11u);  // after the entry kept, not in the gap before it
  c.net.heal_all();
  c.sched.advance(4000);
  BOOST_TEST(c.nodes.at("b").rows() == 11u);
}

BOOST_AUTO_TEST_CASE(a_long_write_is_logged_in_pages_and_read_back_whole_with_entries_from_before_pages) {
  cluster c({{"a", {link("b")}}, {"b", {link("a", true)}}});
  c.net.partition("a", "b");
  auto& a = c.nodes.at("a");
  a.write(1);
  a.write(2);
  // Entry 2 as a store written before pages holds it: a delta of one change
  // with id 1.
  {
    std::string name = "peer/log/";
    store::encode_u64_be(name, 2);
    auto raw = a.db->ext(name);
    BOOST_REQUIRE(raw.is_ok() && raw->has_value());
    auto m = messaging::peer::decode(**raw, {});
    BOOST_REQUIRE(m.is_ok());
    std::get<messaging::peer::delta>(m.value()).id = 1;
    store::batch b;
    b.ext.emplace_back(name, messaging::peer::encode(m.value()));
    BOOST_REQUIRE(a.db->apply(b).is_ok());
  }
  std::vector<store::row> rows;
  for (std::int64_t id = 3; id <= 302; ++id)
    rows.push_back({value::integer(id), value::text("bulk"), value::text("s")});
  BOOST_REQUIRE(a.rep->write("app.notes", rows, {}).is_ok());
  // Two single entries, then 300 changes in pages of 128, 128 and 44.
  BOOST_TEST(a.db->ext_scan("peer/log/", "peer/log/", 100).value().size() == 5u);
  std::vector<std::uint64_t> all(302);
  for (std::uint64_t i = 0; i < all.size(); ++i)
    all[i] = i + 1;
  BOOST_TEST(log_seqs(a) == all, boost::test_tools::per_element());
  // A restart finds the log's end inside the last page; deltas of 128
  // start in the middle of pages.
  c.restart("a");
  a.write(303);
  BOOST_TEST(log_seqs(a).back() == 303u);
  c.net.heal_all();
  c.sched.advance(3000);
  BOOST_TEST(c.nodes.at("b").rows() == 303u);
  BOOST_TEST(c.nodes.at("b").link("a").applied_changes == 303u);
  BOOST_TEST(c.nodes.at("b").rep->held() == a.rep->held());
}

BOOST_AUTO_TEST_CASE(big_rows_make_small_pages_and_deltas_and_pages_read_under_a_lower_frame_limit) {
  cluster c({{"a", {link("b")}}, {"b", {link("a", true)}}},
            [](peer::replicator_config& cfg) { cfg.limits.frame_bytes_max = 64 * 1024; });
  c.net.partition("a", "b");
  auto& a = c.nodes.at("a");
  std::vector<store::row> rows;  // 100 rows of 2 KB in one write
  for (std::int64_t id = 1; id <= 100; ++id)
    rows.push_back({value::integer(id), value::text(std::string(2000, 'x')), value::text("s")});
  BOOST_REQUIRE(a.rep->write("app.notes", rows, {}).is_ok());
  // Pages end at half the frame limit, not at 128 changes.
  const auto pages = a.db->ext_scan("peer/log/", "peer/log/", 1000).value();
  BOOST_TEST(pages.size() >= 7u);
  for (const auto& [name, raw] : pages)
    BOOST_TEST(raw.size() <= 32u * 1024);
  BOOST_TEST(log_seqs(a).size() == 100u);
  // After a restart with a quarter of that limit, the pages still read, and
  // the deltas a sends are bounded: b would refuse frames over its 64 KB
  // (128 rows of 2 KB in one delta would be).
  a.cfg.limits.frame_bytes_max = 16 * 1024;
  c.restart("a");
  c.net.heal_all();
  c.sched.advance(5000);
  BOOST_TEST(c.nodes.at("b").rows() == 100u);
  BOOST_TEST(c.nodes.at("b").link("a").frames_refused == 0u);
  BOOST_TEST(c.nodes.at("b").rep->held() == a.rep->held());
}

BOOST_AUTO_TEST_CASE(a_change_that_would_take_a_delta_past_half_the_frame_limit_starts_the_next) {
  cluster c({{"a", {link("b")}}, {"b", {link("a", true)}}},
            [](peer::replicator_config& cfg) { cfg.limits.frame_bytes_max = 64 * 1024; });
  c.net.partition("a", "b");
  auto& a = c.nodes.at("a");
  a.write(1, std::string(31 * 1024, 'x'));  // under half the limit
  a.write(2, std::string(40 * 1024, 'y'));  // over half, under the whole
  c.restart("a");  // b's changes come from the log, not from deltas in flight
  c.net.heal_all();
  c.sched.advance(3000);
  BOOST_TEST(c.nodes.at("b").rows() == 2u);
  BOOST_TEST(c.nodes.at("b").link("a").frames_refused == 0u);
}

BOOST_AUTO_TEST_CASE(a_row_that_would_take_a_full_syncs_batch_past_half_the_frame_limit_starts_the_next) {
  cluster c({{"a", {link("b")}}, {"b", {link("a", true)}}}, [](peer::replicator_config& cfg) {
    short_retention(cfg);
    cfg.limits.frame_bytes_max = 64 * 1024;
  });
  c.net.partition("a", "b");
  auto& a = c.nodes.at("a");
  a.write(1, std::string(31 * 1024, 'x'));  // under half the limit
  a.write(2, std::string(40 * 1024, 'y'));  // over half, under the whole
  a.write(3);
  c.sched.advance(3000);  // compacted: b gets the rows in a full sync
  BOOST_TEST(a.rep->log_entries_dropped() == 2u);
  c.net.heal_all();
  c.sched.advance(3000);
  BOOST_TEST(c.nodes.at("b").rows() == 3u);
  BOOST_TEST(c.nodes.at("b").link("a").frames_refused == 0u);
  BOOST_TEST(a.link("b").full_syncs_sent == 1u);
}

BOOST_AUTO_TEST_CASE(a_peer_reaching_an_unreadable_log_page_gets_a_full_sync_and_the_page_is_named) {
  cluster c({{"a", {link("b")}}, {"b", {link("a", true)}}});
  c.net.partition("a", "b");
  auto& a = c.nodes.at("a");
  for (std::int64_t id = 1; id <= 3; ++id)
    a.write(id);
  std::string name = "peer/log/";
  store::encode_u64_be(name, 2);
  store::batch damage;
  damage.ext.emplace_back(name, std::string("\x93not a frame"));
  BOOST_REQUIRE(a.db->apply(damage).is_ok());
  c.restart("a");  // the deltas in flight are gone: b's changes come from the log
  c.net.heal_all();
  c.sched.advance(3000);
  auto& b = c.nodes.at("b");
  BOOST_TEST(b.rows() == 3u);  // 2 too, from a's merge states
  BOOST_TEST(a.link("b").full_syncs_sent == 1u);
  BOOST_TEST(a.link("b").last_refusal.find("the peer log page") != std::string::npos,
             a.link("b").last_refusal);
  BOOST_TEST(b.rep->held() == a.rep->held());
}

BOOST_AUTO_TEST_CASE(an_unreadable_first_page_lets_the_node_start_and_compaction_drops_it_once) {
  cluster c({{"a", {link("b")}}, {"b", {link("a", true)}}}, short_retention);
  c.net.partition("a", "b");
  auto& a = c.nodes.at("a");
  for (std::int64_t id = 1; id <= 3; ++id)
    a.write(id);
  std::string name = "peer/log/";
  store::encode_u64_be(name, 1);
  store::batch damage;
  damage.ext.emplace_back(name, std::string("\x93not a frame"));
  BOOST_REQUIRE(a.db->apply(damage).is_ok());
  c.restart("a");  // starts over the damaged first page
  c.net.heal_all();
  c.sched.advance(3000);
  auto& b = c.nodes.at("b");
  BOOST_TEST(b.rows() == 3u);
  BOOST_TEST(a.link("b").full_syncs_sent == 1u);
  // Compaction dropped the damaged page and raised the floor to what a
  // held: b, which holds it all, reconnects to deltas, not another full sync.
  BOOST_TEST(log_seqs(a).size() == 1u);
  c.net.partition("a", "b");
  c.sched.advance(2000);
  c.net.heal_all();
  a.write(4);
  c.sched.advance(2000);
  BOOST_TEST(b.rows() == 4u);
  BOOST_TEST(a.link("b").full_syncs_sent == 1u);
  BOOST_TEST(b.rep->held() == a.rep->held());
}

BOOST_AUTO_TEST_CASE(a_full_sync_keeps_to_the_links_filters_and_excluded_columns) {
  // b takes only rows with body 'public' and never the secret column.
  auto b_link = link("a", true);
  b_link.excluded = {"app.notes.secret"};
  peer::row_filter f;
  f.table = "app.notes";
  f.column = "body";
  f.op = store::filter_op::eq;
  f.values = {value::text("public")};
  auto a_link = link("b");
  a_link.excluded = {"app.notes.secret"};
  a_link.filters = {f};
  cluster c({{"a", {a_link}}, {"b", {b_link}}}, short_retention);
  c.sched.advance(200);
  c.net.partition("a", "b");
  auto& a = c.nodes.at("a");
  auto& b = c.nodes.at("b");
  for (std::int64_t id = 1; id <= 10; ++id)
    a.write(id, id % 2 ? "public" : "private", "secret " + std::to_string(id));
  c.sched.advance(3000);
  BOOST_TEST(a.rep->log_entries_dropped() > 0u);
  c.net.heal_all();
  c.sched.advance(3000);
  BOOST_TEST(a.link("b").full_syncs_sent == 1u);
  BOOST_TEST(b.rows() == 5u);
  BOOST_TEST((b.row(1)[1] == value::text("public")));
  BOOST_TEST((b.row(1)[2] == value::null()));
  BOOST_TEST(b.row(2).empty());
}

BOOST_AUTO_TEST_CASE(a_bare_sync_complete_does_not_raise_the_version_vector) {
  // A peer that claims to have completed a full sync it never sent: the
  // hub holds nothing more than before.
  cluster c({{"hub", {link("evil")}}});
  raw_peer evil(c, "evil");
  BOOST_TEST_REQUIRE(evil.linked);
  auto& hub = c.nodes.at("hub");
  hub.write(1, "mine");
  const auto before = hub.rep->held();
  evil.send(peer::wire::encode(peer::wire::hello{"evil", peer::wire::link_mode::bidirectional, {}}));
  peer::wire::watermark claim{{"evil", store::hlc_timestamp(1'800'000'000'000ULL, 0)},
                              {"hub", store::hlc_timestamp(1'800'000'000'000ULL, 0)},
                              {"z", store::hlc_timestamp(1'800'000'000'000ULL, 0)}};
  evil.send(peer::wire::encode(peer::wire::sync_complete{claim}));
  c.sched.advance(200);
  BOOST_TEST((hub.rep->held() == before));
  BOOST_TEST(hub.link("evil").full_syncs_received == 0u);
  BOOST_TEST(evil.errors().empty());  // nothing malformed came back either
}

// A table that held rows before it was a peer table (a view of the same
// name, since dropped from the config): its rows have no merge states. They
// are taken in as local writes once, at start, and reach the peers; a
// peer's change of one column then leaves the others as they were.
BOOST_AUTO_TEST_CASE(rows_a_table_held_before_it_was_a_peer_table_are_taken_in_once_and_sent) {
  auto seed_rows = [](const std::string& id, node& n) {
    if (id != "a")
      return;
    BOOST_REQUIRE(n.db->create_table(notes()).is_ok());
    store::batch b;
    for (std::int64_t i = 1; i <= 2500; ++i) {
      store::change ch;
      ch.table = "app.notes";
      ch.op = store::change_op::insert;
      ch.new_row = store::row{value::integer(i), value::text("old " + std::to_string(i)),
                              value::text("s")};
      b.changes.push_back(std::move(ch));
    }
    BOOST_REQUIRE(n.db->apply(b).is_ok());
  };
  cluster c({{"a", {link("b")}}, {"b", {link("a", true)}}}, {}, {}, seed_rows);
  auto& a = c.nodes.at("a");
  auto& b = c.nodes.at("b");
  BOOST_TEST(a.rep->rows_adopted() == 2500u);  // pages of 1,000: none missed, none twice
  c.sched.advance(3000);
  BOOST_TEST(b.rows() == 2500u);
  BOOST_TEST((b.row(2500) == a.row(2500)));
  // The store logged each taken-in row with itself as the old row.
  auto log = a.db->read_changes(a.db->last_seq(), 1);
  BOOST_TEST_REQUIRE((log.is_ok() && log->size() == 1u));
  BOOST_TEST((log->front().old_row == log->front().new_row));

  // b changes the body only; at a the secret stays.
  b.write(7, "new", "s");
  c.sched.advance(500);
  BOOST_TEST((a.row(7) == store::row{value::integer(7), value::text("new"), value::text("s")}));

  c.restart("a");
  BOOST_TEST(a.rep->rows_adopted() == 0u);  // once
}

BOOST_AUTO_TEST_SUITE_END()
