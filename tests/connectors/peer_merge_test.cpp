#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "connectors/peer/merge.hpp"
#include "tests/store/seed.hpp"

using namespace syncmesh;
using peer::merge;
using peer::peer_change;
using peer::row_state;
using peer::stamp;
using store::change_op;
using store::value;

namespace {

constexpr std::size_t width = 3;  // id, title, price
const std::vector<std::uint32_t> key_columns = {0};

stamp at(std::uint64_t ms, const std::string& node) { return {store::hlc_timestamp(ms, 0), node}; }

peer_change upsert(stamp s, std::int64_t id, std::vector<std::uint32_t> cols, const std::string& title,
                   std::int64_t price) {
  peer_change c;
  c.hlc = s.hlc;
  c.origin = s.origin;
  c.table = "items";
  c.op = change_op::insert;
  c.key = {value::integer(id)};
  if (cols.size() < width)  // every column is listed as none
    c.columns = std::move(cols);
  c.new_row = store::row{value::integer(id), value::text(title), value::integer(price)};
  return c;
}

peer_change update(stamp s, std::int64_t id, std::vector<std::uint32_t> cols, const std::string& title,
                   std::int64_t price) {
  auto c = upsert(std::move(s), id, std::move(cols), title, price);
  c.op = change_op::update;
  return c;
}

peer_change remove(stamp s, std::int64_t id) {
  peer_change c;
  c.hlc = s.hlc;
  c.origin = s.origin;
  c.table = "items";
  c.op = change_op::remove;
  c.key = {value::integer(id)};
  return c;
}

std::optional<row_state> apply_all(const std::vector<peer_change>& changes) {
  std::optional<row_state> s;
  for (const auto& c : changes) {
    BOOST_REQUIRE(peer::validate(c, width).is_ok());
    merge(s, c, width, key_columns);
  }
  return s;
}

} // namespace

BOOST_AUTO_TEST_SUITE(peer_merge)

BOOST_AUTO_TEST_CASE(concurrent_writes_to_different_columns_both_survive) {
  auto a = upsert(at(10, "a"), 1, {0, 1, 2}, "lamp", 10);
  auto b = update(at(20, "b"), 1, {1}, "desk lamp", 0);
  auto c = update(at(21, "c"), 1, {2}, "", 12);
  for (auto order : {std::vector<peer_change>{a, b, c}, {c, b, a}, {b, a, c}}) {
    auto s = apply_all(order);
    BOOST_REQUIRE(s);
    BOOST_TEST(s->visible());
    BOOST_TEST((s->values == store::row{value::integer(1), value::text("desk lamp"),
                                        value::integer(12)}));
  }
}

BOOST_AUTO_TEST_CASE(the_later_writer_wins_a_column_and_ties_go_to_the_larger_node_id) {
  auto early = update(at(10, "z"), 1, {1}, "early", 0);
  auto late = update(at(11, "a"), 1, {1}, "late", 0);
  BOOST_TEST((apply_all({upsert(at(1, "a"), 1, {0, 1, 2}, "x", 1), late, early})->values[1]
              == value::text("late")));
  auto from_a = update(at(10, "a"), 1, {1}, "from a", 0);
  auto from_b = update(at(10, "b"), 1, {1}, "from b", 0);
  BOOST_TEST((apply_all({from_b, from_a})->values[1] == value::text("from b")));
  BOOST_TEST((apply_all({from_a, from_b})->values[1] == value::text("from b")));
}

BOOST_AUTO_TEST_CASE(a_delete_hides_the_row_until_a_newer_insert) {
  auto ins = upsert(at(10, "a"), 1, {0, 1, 2}, "lamp", 10);
  auto del = remove(at(20, "b"), 1);
  BOOST_TEST(!apply_all({ins, del})->visible());
  BOOST_TEST(!apply_all({del, ins})->visible());  // the older insert does not resurrect it
  // An update after the delete changes a column but not existence (an SQL
  // UPDATE of a missing row); a newer upsert brings the row back.
  auto upd = update(at(30, "c"), 1, {2}, "", 99);
  BOOST_TEST(!apply_all({ins, del, upd})->visible());
  auto again = upsert(at(40, "a"), 1, {1}, "lamp again", 0);
  auto s = apply_all({again, upd, del, ins});
  BOOST_TEST(s->visible());
  BOOST_TEST((s->values == store::row{value::integer(1), value::text("lamp again"),
                                      value::integer(99)}));
}

BOOST_AUTO_TEST_CASE(repeats_change_nothing) {
  auto ins = upsert(at(10, "a"), 1, {0, 1, 2}, "lamp", 10);
  std::optional<row_state> s;
  BOOST_TEST(merge(s, ins, width, key_columns));
  BOOST_TEST(!merge(s, ins, width, key_columns));
  auto del = remove(at(5, "b"), 1);  // older than the insert
  BOOST_TEST(merge(s, del, width, key_columns));  // recorded as a tombstone...
  BOOST_TEST(s->visible());                       // ...that does not hide the newer insert
  BOOST_TEST(!merge(s, del, width, key_columns));
}

BOOST_AUTO_TEST_CASE(malformed_changes_are_refused_with_a_sentence) {
  auto ok = upsert(at(1, "a"), 1, {0, 1, 2}, "x", 1);
  BOOST_TEST(peer::validate(ok, width).is_ok());
  auto narrow = ok;
  narrow.new_row->pop_back();
  BOOST_TEST(peer::validate(narrow, width).message().find("3 columns") != std::string::npos);
  auto out_of_range = ok;
  out_of_range.columns = {0, 7};
  BOOST_TEST(!peer::validate(out_of_range, width).is_ok());
  auto unordered = ok;
  unordered.columns = {2, 1};
  BOOST_TEST(!peer::validate(unordered, width).is_ok());
  auto keyless = ok;
  keyless.key.clear();
  BOOST_TEST(!peer::validate(keyless, width).is_ok());
  auto truncate = ok;
  truncate.op = change_op::truncate;
  BOOST_TEST(!peer::validate(truncate, width).is_ok());
  auto remove_with_values = remove(at(1, "a"), 1);
  remove_with_values.new_row = ok.new_row;
  BOOST_TEST(!peer::validate(remove_with_values, width).is_ok());
}

BOOST_AUTO_TEST_CASE(a_local_upsert_sets_only_the_columns_it_changed) {
  store::change_record r;
  r.hlc = store::hlc_timestamp(50, 1);
  r.origin = "n1";
  r.table = "items";
  r.op = change_op::insert;
  r.key = {value::integer(7)};
  r.new_row = store::row{value::integer(7), value::text("new"), value::integer(3)};
  auto fresh = peer::from_local(r);
  BOOST_TEST((fresh.op == change_op::insert));
  BOOST_TEST(fresh.columns.empty());  // a new row: every column
  BOOST_TEST((peer::stamp_of(fresh) == stamp{store::hlc_timestamp(50, 1), "n1"}));
  r.old_row = store::row{value::integer(7), value::text("old"), value::integer(3)};
  auto changed = peer::from_local(r);
  BOOST_TEST((changed.columns == std::vector<std::uint32_t>{1}));
  r.op = change_op::remove;
  r.new_row.reset();
  auto gone = peer::from_local(r);
  BOOST_TEST((gone.op == change_op::remove));
  BOOST_TEST(!gone.new_row);
  BOOST_TEST(peer::validate(gone, width).is_ok());
}

// The property convergence rests on: any order, with repeats, same state.
BOOST_AUTO_TEST_CASE(random_histories_merge_to_the_same_state_in_any_order_with_repeats) {
  const auto seed = test::test_seed();
  BOOST_TEST_CONTEXT("seed " << seed << " (replay with SYNCMESH_SEED=" << seed << ")") {
    std::mt19937_64 rng(seed);
    for (int round = 0; round < 200; ++round) {
      std::vector<peer_change> history;
      std::set<std::pair<std::uint64_t, std::string>> used;  // a node never reuses a stamp
      const int n = 1 + static_cast<int>(rng() % 30);
      for (int i = 0; i < n; ++i) {
        auto node = std::string(1, static_cast<char>('a' + rng() % 3));
        auto ms = 1 + rng() % 20;
        while (!used.emplace(ms, node).second)
          ++ms;
        auto s = at(ms, node);
        auto id = static_cast<std::int64_t>(1 + rng() % 3);
        switch (rng() % 4) {
          case 0: history.push_back(remove(s, id)); break;
          case 1: history.push_back(update(s, id, {1 + static_cast<std::uint32_t>(rng() % 2)},
                                           "u" + std::to_string(i), i)); break;
          default: {
            std::vector<std::uint32_t> cols = {0};
            for (std::uint32_t c = 1; c < width; ++c)
              if (rng() % 2)
                cols.push_back(c);
            history.push_back(upsert(s, id, cols, "i" + std::to_string(i), i));
          }
        }
      }
      auto replay = [&](std::vector<peer_change> order) {
        std::map<std::int64_t, std::optional<row_state>> rows;
        for (const auto& c : order)
          merge(rows[c.key[0].as_int()], c, width, key_columns);
        return rows;
      };
      auto reference = replay(history);
      for (int k = 0; k < 5; ++k) {
        auto shuffled = history;
        for (int d = 0; d < n / 2; ++d)  // repeats
          shuffled.push_back(history[rng() % history.size()]);
        std::shuffle(shuffled.begin(), shuffled.end(), rng);
        auto got = replay(shuffled);
        BOOST_REQUIRE_EQUAL(got.size(), reference.size());
        for (const auto& [id, state] : reference)
          BOOST_REQUIRE_MESSAGE(got[id] == state, "round " << round << ", key " << id
                                                  << ": another order merged differently");
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(with_a_tie_winner_its_write_wins_between_equal_hlcs_in_any_order) {
  const peer::stamp_order winner_a{"a"};
  BOOST_TEST(winner_a(at(5, "b"), at(5, "a")));  // equal HLCs: a wins over a larger id
  BOOST_TEST(!winner_a(at(5, "a"), at(5, "b")));
  BOOST_TEST(winner_a(at(5, "a"), at(6, "b")));  // the HLC still decides first
  BOOST_TEST(winner_a(at(5, "b"), at(5, "c")));  // neither is the winner: larger id
  BOOST_TEST(!winner_a(at(5, "a"), at(5, "a")));
  BOOST_TEST(peer::stamp_order{}(at(5, "a"), at(5, "b")));  // the default: larger id

  const auto from_a = upsert(at(5, "a"), 1, {}, "from a", 1);
  const auto from_b = upsert(at(5, "b"), 1, {}, "from b", 2);
  const auto del_b = remove(at(7, "b"), 1);
  const auto ins_a = upsert(at(7, "a"), 1, {1}, "again", 1);
  for (const auto& order : {std::vector<peer_change>{from_a, from_b, del_b, ins_a},
                            std::vector<peer_change>{ins_a, del_b, from_b, from_a}}) {
    std::optional<row_state> s;
    for (const auto& c : order)
      merge(s, c, width, key_columns, winner_a);
    BOOST_TEST((s->values[1] == value::text("again")));
    BOOST_TEST((s->values[2] == value::integer(1)));  // a's price, not b's
    BOOST_TEST(s->visible(winner_a));      // a's insert beats b's delete at 7
    BOOST_TEST(!s->visible());             // which the default order would not say
  }
}

BOOST_AUTO_TEST_SUITE_END()
