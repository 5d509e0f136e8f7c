// Where the replicator keeps merge states: a visible row's stamps in the
// row's own record (store::change::meta), a tombstone in a peer/v/ record;
// a change of stamps alone rewrites the meta without a change-log entry;
// states written before format 3 (peer/v/ records of visible rows) are
// read, and moved into the row when next written.

#include <boost/test/unit_test.hpp>

#include <msgpack.hpp>

#include "connectors/peer/replicator.hpp"
#include "store/key_codec.hpp"
#include "store/value_codec.hpp"
#include "tests/connectors/peer_cluster.hpp"

using namespace syncmesh;
using namespace syncmesh::test;

namespace {

std::string state_name(std::int64_t id) {
  return std::string("peer/v/app.notes") + '\0' + store::encode_key({value::integer(id)});
}

/// The peer/v/ records `n` holds, by name.
std::size_t state_records(const node& n) {
  auto r = n.db->ext_scan("peer/v/");
  BOOST_REQUIRE(r.is_ok());
  return r->size();
}

bool has_state_record(const node& n, std::int64_t id) {
  auto r = n.db->ext(state_name(id));
  BOOST_REQUIRE(r.is_ok());
  return r->has_value();
}

/// The meta stored with row `id`; nullopt: no row.
std::optional<std::string> meta_of(const node& n, std::int64_t id) {
  const store::row key{value::integer(id)};
  auto r = n.db->get_stored("app.notes", {&key});
  BOOST_REQUIRE(r.is_ok());
  if (!r->front())
    return std::nullopt;
  return r->front()->meta;
}

peer::row_state state_of(const node& n, std::int64_t id) {
  auto s = n.rep->state_of("app.notes", {value::integer(id)});
  BOOST_REQUIRE(s.is_ok());
  BOOST_REQUIRE(s->has_value());
  return **s;
}

std::string digest(const node& n) { return peer::table_digest(*n.db, "app.notes").value(); }

void put_stamp(msgpack::packer<msgpack::sbuffer>& pk, std::uint64_t hlc, const std::string& origin) {
  pk.pack_array(2);
  pk.pack_uint64(hlc);
  pk.pack_str(static_cast<std::uint32_t>(origin.size()));
  pk.pack_str_body(origin.data(), static_cast<std::uint32_t>(origin.size()));
}

} // namespace

BOOST_AUTO_TEST_SUITE(peer_state_storage)

BOOST_AUTO_TEST_CASE(a_visible_rows_state_lives_in_its_record_and_a_tombstone_in_its_own) {
  cluster c({{"a", {link("b")}}, {"b", {link("a", true)}}});
  auto& a = c.nodes.at("a");
  auto& b = c.nodes.at("b");
  a.write(1, "one");
  a.write(2, "two");
  c.sched.advance(500);
  for (const auto* n : {&a, &b}) {
    BOOST_TEST(state_records(*n) == 0u);
    BOOST_TEST(!meta_of(*n, 1).value_or("").empty());
    BOOST_TEST(state_of(*n, 1).visible());
    BOOST_TEST((state_of(*n, 1).values == n->row(1)));
  }
  a.remove(1);
  c.sched.advance(500);
  for (const auto* n : {&a, &b}) {
    BOOST_TEST(!meta_of(*n, 1).has_value());  // the row is gone, and its meta with it
    BOOST_TEST(has_state_record(*n, 1));      // its tombstone
    BOOST_TEST(!state_of(*n, 1).visible());
    BOOST_TEST(!has_state_record(*n, 2));
  }
  // A newer insert brings it back: the state moves into the row again.
  a.write(1, "again");
  c.sched.advance(500);
  for (const auto* n : {&a, &b}) {
    BOOST_TEST(!has_state_record(*n, 1));
    BOOST_TEST(!meta_of(*n, 1).value_or("").empty());
    BOOST_TEST((n->row(1)[1] == value::text("again")));
  }
  BOOST_TEST(digest(a) == digest(b));
  // What a restarted replicator reads back is what it wrote.
  const auto before = state_of(b, 2);
  c.restart("b");
  BOOST_TEST((state_of(b, 2) == before));
}

// b writes the row a wrote, with the same values: every column gets b's
// newer stamp, and no row changes. The stamps are kept (a later, older
// write must lose to them) without a change-log entry on either node.
BOOST_AUTO_TEST_CASE(a_change_of_stamps_alone_rewrites_the_meta_and_logs_nothing) {
  cluster c({{"a", {link("b")}}, {"b", {link("a", true)}}});
  auto& a = c.nodes.at("a");
  auto& b = c.nodes.at("b");
  a.write(1, "same", "s");
  c.sched.advance(500);
  const auto a_seq = a.db->last_seq();
  const auto meta_before = meta_of(a, 1);
  BOOST_TEST(state_of(a, 1).inserted.origin == "a");

  b.write(1, "same", "s");
  c.sched.advance(500);
  BOOST_TEST(a.db->last_seq() == a_seq);  // no row changed
  BOOST_TEST((meta_of(a, 1) != meta_before));
  for (const auto* n : {&a, &b}) {
    const auto s = state_of(*n, 1);
    BOOST_TEST(s.inserted.origin == "b");
    for (const auto& col : s.columns)
      BOOST_TEST(col.origin == "b");
    BOOST_TEST(state_records(*n) == 0u);
  }
  c.restart("a");
  BOOST_TEST(state_of(a, 1).inserted.origin == "b");
  BOOST_TEST(digest(a) == digest(b));
}

// A store written before format 3 kept every state in a peer/v/ record,
// a visible row's too, and the row without meta: such a row is not taken
// for one without a state, its state reads as it was, and the next write
// moves it into the row.
BOOST_AUTO_TEST_CASE(a_state_written_before_format_3_is_read_and_moved_into_the_row) {
  const std::uint64_t hlc = store::hlc_timestamp{1'600'000'000'000ULL, 0}.packed();
  const store::row old_row{value::integer(7), value::text("from before"), value::text("s")};
  auto legacy = [&](const std::string& id, node& n) {
    if (id != "a")
      return;
    BOOST_REQUIRE(n.db->create_table(notes()).is_ok());
    store::batch b;
    store::change row;
    row.table = "app.notes";
    row.op = store::change_op::insert;
    row.new_row = old_row;
    row.hlc = store::hlc_timestamp::from_packed(hlc);
    row.origin = "z";
    b.changes.push_back(row);
    // [values, [column stamps], inserted, deleted], as format 2 kept it
    msgpack::sbuffer buf;
    msgpack::packer<msgpack::sbuffer> pk(buf);
    pk.pack_array(4);
    store::append_row(buf, old_row);
    pk.pack_array(3);
    for (int i = 0; i < 3; ++i)
      put_stamp(pk, hlc, "z");
    put_stamp(pk, hlc, "z");
    put_stamp(pk, 0, "");
    b.ext.emplace_back(state_name(7), std::string(buf.data(), buf.size()));
    b.ext.emplace_back("peer/adopted/app.notes", "1");
    BOOST_REQUIRE(n.db->apply(b).is_ok());
  };
  cluster c({{"a", {link("b")}}, {"b", {link("a", true)}}}, {}, {}, legacy);
  auto& a = c.nodes.at("a");
  BOOST_TEST(a.rep->rows_adopted() == 0u);
  BOOST_TEST(meta_of(a, 7).value_or("x").empty());
  auto s = state_of(a, 7);
  BOOST_TEST(s.inserted.origin == "z");
  BOOST_TEST(s.columns.size() == 3u);
  BOOST_TEST((s.values == old_row));

  // A write of one column: the others keep their stamps from before.
  auto w = a.rep->write("app.notes", {{value::integer(7), value::text("new"), value::text("s")}}, {});
  BOOST_REQUIRE(w.is_ok());
  BOOST_TEST(!has_state_record(a, 7));
  BOOST_TEST(!meta_of(a, 7).value_or("").empty());
  s = state_of(a, 7);
  BOOST_TEST(s.columns[1].origin == "a");
  BOOST_TEST(s.columns[2].origin == "z");
  c.restart("a");
  BOOST_TEST((state_of(a, 7) == s));
}

// A full sync from a store written before format 3 reads both kinds of
// state in name order: peer/v/ records of rows without meta (300 of them,
// more than a page, interleaved by key with rows written since, which
// carry their stamps) and tombstones.
BOOST_AUTO_TEST_CASE(a_full_sync_from_a_store_from_before_format_3_carries_every_state) {
  const std::uint64_t hlc = store::hlc_timestamp{1'600'000'000'000ULL, 0}.packed();
  auto legacy = [&](const std::string& id, node& n) {
    if (id != "a")
      return;
    BOOST_REQUIRE(n.db->create_table(notes()).is_ok());
    store::batch b;
    for (std::int64_t k = 1; k <= 600; k += 2) {
      const store::row r{value::integer(k), value::text("old " + std::to_string(k)),
                         value::text("s")};
      store::change row;
      row.table = "app.notes";
      row.op = store::change_op::insert;
      row.new_row = r;
      row.hlc = store::hlc_timestamp::from_packed(hlc);
      row.origin = "z";
      b.changes.push_back(row);
      msgpack::sbuffer buf;
      msgpack::packer<msgpack::sbuffer> pk(buf);
      pk.pack_array(4);
      store::append_row(buf, r);
      pk.pack_array(3);
      for (int i = 0; i < 3; ++i)
        put_stamp(pk, hlc, "z");
      put_stamp(pk, hlc, "z");
      put_stamp(pk, 0, "");
      b.ext.emplace_back(state_name(k), std::string(buf.data(), buf.size()));
    }
    b.ext.emplace_back("peer/adopted/app.notes", "1");
    BOOST_REQUIRE(n.db->apply(b).is_ok());
  };
  cluster c({{"a", {link("b")}}, {"b", {link("a", true)}}},
            [](peer::replicator_config& cfg) {
              cfg.log_retention_ms = 1000;
              cfg.gc_interval_ms = 100;
            },
            {}, legacy);
  auto& a = c.nodes.at("a");
  auto& b = c.nodes.at("b");
  c.sched.advance(200);
  c.net.partition("a", "b");
  for (std::int64_t k = 2; k <= 600; k += 20)
    a.write(k, "new " + std::to_string(k));  // rows with meta, between the old ones
  a.write(3, "old 3 changed");               // an old one moved into its row
  a.remove(5);                                // an old one deleted: a tombstone
  c.sched.advance(3000);
  BOOST_TEST(a.rep->log_entries_dropped() > 0u);
  BOOST_TEST(!has_state_record(a, 3));
  BOOST_TEST(has_state_record(a, 5));
  BOOST_TEST(has_state_record(a, 7));  // not written since: as format 2 left it

  c.net.heal_all();
  c.sched.advance(5000);
  BOOST_TEST(b.link("a").full_syncs_received == 1u);
  BOOST_TEST(b.rows() == a.rows());
  BOOST_TEST(b.rows() == 300u + 30u - 1u);
  BOOST_TEST(digest(b) == digest(a));
  for (std::int64_t k : {1, 2, 3, 5, 7, 599, 582}) {
    auto on_a = a.rep->state_of("app.notes", {value::integer(k)});
    auto on_b = b.rep->state_of("app.notes", {value::integer(k)});
    BOOST_TEST_REQUIRE((on_a.is_ok() && on_b.is_ok() && *on_a && *on_b));
    BOOST_TEST((**on_a == **on_b), "row " << k);
  }
}

// A hub sends a full sync to one spoke while another spoke's changes keep
// its commits in flight: the full sync waits for them before each read of
// states (a commit may move a state between a row and its record), and
// not from inside the taking of their results, which pumps every link.
BOOST_AUTO_TEST_CASE(a_full_sync_while_commits_are_in_flight_reads_states_between_them) {
  cluster c({{"a", {link("b"), link("c")}}, {"b", {link("a", true)}}, {"c", {link("a", true)}}},
            [](peer::replicator_config& cfg) {
              cfg.log_retention_ms = 1000;
              cfg.gc_interval_ms = 100;
              cfg.batch_max = 16;     // a full sync of many batches,
              cfg.in_flight_max = 4;  // sent as acknowledgements come
            });
  auto& writes = c.pipeline("a", 20, 4);
  auto& a = c.nodes.at("a");
  auto& b = c.nodes.at("b");
  auto& spoke = c.nodes.at("c");
  c.net.partition("a", "b");
  for (std::int64_t k = 1; k <= 300; ++k)
    a.write(k, "on a " + std::to_string(k));
  for (std::int64_t k = 1; k <= 300; k += 7)
    a.remove(k);  // tombstones among the rows
  c.sched.advance(3000);
  BOOST_TEST_REQUIRE(!a.rep->log_floor().empty());

  c.net.heal_all();
  for (int i = 0; i < 500 && a.link("b").state == peer::link_state::down; ++i)
    c.sched.advance(10);
  BOOST_TEST_REQUIRE((a.link("b").state != peer::link_state::down));
  std::size_t in_flight_seen = 0;
  for (std::int64_t k = 1; k <= 200; ++k) {
    spoke.write(1000 + k, "from c");
    if (k % 3 == 0)
      spoke.remove(1000 + k - 1);  // a's commits move states into records
    c.sched.advance(3);
    in_flight_seen += writes.pending() > 0;
  }
  c.sched.advance(5000);
  BOOST_TEST(in_flight_seen > 50u);
  BOOST_TEST(b.link("a").full_syncs_received >= 1u);
  BOOST_TEST(digest(b) == digest(a));
  BOOST_TEST(digest(spoke) == digest(a));
  BOOST_TEST(b.rows() == a.rows());
}

BOOST_AUTO_TEST_SUITE_END()
