#include <boost/test/unit_test.hpp>

#include "actors/status_board.hpp"

using namespace syncmesh::actors;
using nlohmann::json;

namespace {

const std::vector<std::string> order = {"shop.items", "shop.orders", "crm.people"};

json record(const std::string& name, bool enabled, const std::string& state) {
  auto dot = name.find('.');
  return {{"namespace", name.substr(0, dot)}, {"name", name.substr(dot + 1)},
          {"enabled", enabled}, {"state", state}};
}

void fill(status_board& b, bool enabled) {
  for (const auto& v : order)
    b.publish(v, record(v, enabled, enabled ? "synced" : "idle"));
}

json sel(const json& s) { return {{"selector", s}}; }

} // namespace

BOOST_AUTO_TEST_SUITE(status_board_fast_path)

BOOST_AUTO_TEST_CASE(status_reads_the_covered_views_in_configuration_order) {
  status_board b;
  fill(b, true);
  auto all = answer_from_board(b, order, "status", json::object());
  BOOST_REQUIRE(all);
  BOOST_TEST(all->size() == 3u);
  BOOST_TEST((*all)[2]["namespace"] == "crm");
  auto shop = answer_from_board(b, order, "status", sel({{"shop", "*"}}));
  BOOST_REQUIRE(shop);
  BOOST_TEST(shop->size() == 2u);
  BOOST_TEST((*shop)[1]["name"] == "orders");
}

BOOST_AUTO_TEST_CASE(a_newer_record_replaces_the_older_one) {
  status_board b;
  fill(b, true);
  b.publish("shop.items", record("shop.items", true, "failed"));
  auto one = answer_from_board(b, order, "status", sel({{"shop", {"items"}}}));
  BOOST_REQUIRE(one);
  BOOST_TEST((*one)[0]["state"] == "failed");
}

BOOST_AUTO_TEST_CASE(anything_it_cannot_answer_goes_to_the_actors) {
  status_board b;
  fill(b, true);
  // Unknown views and bad selectors: the actor path says what is wrong.
  BOOST_TEST(!answer_from_board(b, order, "status", sel({{"shop", {"nope"}}})));
  BOOST_TEST(!answer_from_board(b, order, "status", sel(42)));
  BOOST_TEST(!answer_from_board(b, order, "status", {{"selector", "*"}, {"extra", 1}}));
  // Other verbs.
  BOOST_TEST(!answer_from_board(b, order, "stop", json::object()));
  BOOST_TEST(!answer_from_board(b, order, "query", json::object()));
  // A view that has not published yet.
  b.withdraw("crm.people");
  BOOST_TEST(!answer_from_board(b, order, "status", json::object()));
  BOOST_TEST(static_cast<bool>(answer_from_board(b, order, "status", sel({{"shop", "*"}}))));
}

BOOST_AUTO_TEST_CASE(sync_is_answered_only_when_every_covered_view_is_stopped) {
  status_board enabled;
  fill(enabled, true);
  BOOST_TEST(!answer_from_board(enabled, order, "sync", json::object()));
  status_board stopped;
  fill(stopped, false);
  auto r = answer_from_board(stopped, order, "sync", sel({{"shop", {"orders"}}}));
  BOOST_REQUIRE(r);
  BOOST_TEST((*r)[0].dump() == stopped_sync_reply("shop.orders", "idle").dump());
  stopped.publish("shop.items", record("shop.items", true, "synced"));
  BOOST_TEST(!answer_from_board(stopped, order, "sync", sel({{"shop", "*"}})));
  // A record without the fields (a view that is not running) is not a no-op.
  stopped.publish("crm.people", {{"view", "crm.people"}, {"state", "failed"}});
  BOOST_TEST(!answer_from_board(stopped, order, "sync", sel({{"crm", "*"}})));
}

BOOST_AUTO_TEST_SUITE_END()
