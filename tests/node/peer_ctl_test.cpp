// Peer tables as a user drives them: two `syncmesh node` processes linked
// over loopback ZeroMQ, written, read and inspected with `syncmesh ctl`.

#include <optional>
#include <string>
#include <vector>

#include <boost/test/unit_test.hpp>

#include "store/hlc.hpp"
#include "tests/node/node_process.hpp"

using namespace syncmesh::node_test;

namespace {

/// A node with peer table app.notes (id integer key, body text), listening
/// on a port the OS chooses, with the given [[links]] lines.
std::string peer_config(const std::string& node_id, const std::string& links) {
  return "node_id = \"" + node_id + "\"\n"
         "data_dir = \"" + node_id + "-data\"\n"
         "control_endpoint = \"tcp://127.0.0.1:0\"\n"
         "events_endpoint = \"tcp://127.0.0.1:0\"\n"
         "durability = \"buffered\"\n"
         "[[tables]]\n"
         "name = \"app.notes\"\n"
         "columns = [ { name = \"id\", type = \"integer\", key = true },\n"
         "            { name = \"body\", type = \"text\" } ]\n"
         "[peer]\n"
         "listen = \"tcp://127.0.0.1:0\"\n"
         "heartbeat_ms = 200\n"
         "dead_after_ms = 1000\n"
         + links;
}

/// The peer endpoint `n` bound, as its node.json names it ("" if none).
std::string peer_endpoint(const node_process& n) {
  const json info = json::parse(read_file(n.node_json()), nullptr, false);
  return info.is_object() ? info.value("peer", "") : "";
}

/// The config of node `spoke`, whose one link dials node `hub` at `endpoint`.
std::string spoke_dialing(const std::string& endpoint) {
  return peer_config("spoke", "[[links]]\npeer = \"hub\"\nendpoint = \"" + endpoint + "\"\n");
}

/// The record of the link to `peer` in `ctl --json links`, or null.
json link_record(const node_process& n, const std::string& peer) {
  auto links = n.ctl_json({"links"});
  if (links.is_array())
    for (const auto& l : links)
      if (l.value("peer", "") == peer)
        return l;
  return nullptr;
}

std::size_t row_count(const node_process& n) {
  auto q = n.ctl_json({"query", "app.notes"});
  return q.is_object() && q.contains("rows") ? q["rows"].size() : 0;
}

/// A hub and a spoke dialing it, whose [peer] section adds `spoke_peer`
/// (credits, a commit delay), with their link live; then the hub writes
/// rows 1 to 3, one delta each, which the spoke holds the hub back on.
struct paused_by_spoke {
  paused_by_spoke(const temp_dir& dir, const std::string& spoke_peer) {
    hub.emplace(dir.write("hub.toml", peer_config("hub", "[[links]]\npeer = \"spoke\"\n")),
                dir.path() / "hub-data");
    BOOST_REQUIRE_MESSAGE(hub->await_serving(), tail(hub->log()));
    spoke.emplace(dir.write("spoke.toml", peer_config("spoke", spoke_peer + "[[links]]\npeer = "
                                                                  "\"hub\"\nendpoint = \""
                                                                  + peer_endpoint(*hub) + "\"\n")),
                  dir.path() / "spoke-data");
    BOOST_REQUIRE_MESSAGE(spoke->await_serving(), tail(spoke->log()));
    json record;
    BOOST_REQUIRE_MESSAGE(await_hub_link([](const json& r) { return r["state"] == "live"; }, record),
                          record.dump());
    for (int id = 1; id <= 3; ++id) {
      auto w = hub->ctl({"exec", "--table", "app.notes", "--upsert",
                         R"({"id": )" + std::to_string(id) + R"(, "body": "x"})"});
      BOOST_REQUIRE_MESSAGE(w.exit_code == 0, w);
    }
  }

  /// Awaits that the hub's link to the spoke satisfies `pred`; the last
  /// record seen is left in `record`.
  template <class Pred>
  bool await_hub_link(Pred pred, json& record) {
    return await([&] {
      record = link_record(*hub, "spoke");
      return record.is_object() && pred(record);
    });
  }

  /// The spoke holds the three rows, the hub's link is live with nothing
  /// unacknowledged, and the spoke refused nothing as beyond its credit.
  void await_caught_up(json& record) {
    BOOST_TEST(await([&] { return row_count(*spoke) == 3u; }));
    BOOST_TEST(await_hub_link([](const json& r) { return r["state"] == "live" && r["unacked"] == 0; },
                              record),
               record.dump());
    BOOST_TEST(link_record(*spoke, "hub")["over_credit"] == 0);
  }

  std::optional<node_process> hub, spoke;
};

} // namespace

BOOST_AUTO_TEST_SUITE(peer_ctl)

BOOST_AUTO_TEST_CASE(ctl_writes_a_peer_table_on_one_node_and_reads_it_and_its_link_on_the_other) {
  temp_dir dir;
  auto hub_config = dir.write("hub.toml", peer_config("hub", "[[links]]\npeer = \"spoke\"\n"));
  node_process hub(hub_config, dir.path() / "hub-data");
  BOOST_REQUIRE_MESSAGE(hub.await_serving(), tail(hub.log()));
  const std::string endpoint = peer_endpoint(hub);
  BOOST_REQUIRE_MESSAGE(endpoint.rfind("tcp://127.0.0.1:", 0) == 0,
                        "node.json names the bound peer endpoint: " << read_file(hub.node_json()));

  auto spoke_config = dir.write("spoke.toml", spoke_dialing(endpoint));
  node_process spoke(spoke_config, dir.path() / "spoke-data");
  BOOST_REQUIRE_MESSAGE(spoke.await_serving(), tail(spoke.log()));

  auto written = spoke.ctl({"exec", "--table", "app.notes", "--upsert",
                            R"([{"id": 1, "body": "hello"}, {"id": 2, "body": "world"}])"});
  BOOST_REQUIRE_MESSAGE(written.exit_code == 0, written);
  auto removed = spoke.ctl({"exec", "app.notes", "--delete", R"({"id": 2})"});
  BOOST_REQUIRE_MESSAGE(removed.exit_code == 0, removed);

  const bool arrived = await([&] {
    auto q = hub.ctl_json({"query", "app.notes"});
    return q.is_object() && q["rows"] == json::parse(R"([[1, "hello"]])");
  });
  BOOST_TEST(arrived, "the hub holds: " << hub.ctl_json({"query", "app.notes"}).dump());
  BOOST_TEST(row_count(spoke) == 1u);

  json record;
  const bool live = await([&] {
    record = link_record(hub, "spoke");
    return record.is_object() && record["state"] == "live" && record["applied"] == 3;
  });
  BOOST_TEST(live, record.dump());
  BOOST_TEST(record["role"] == "server");
  BOOST_TEST(link_record(spoke, "hub")["role"] == "client");

  auto table = hub.ctl({"links"});
  BOOST_TEST(table.exit_code == 0, table);
  BOOST_TEST(table.out.find("spoke") != std::string::npos, table);
  BOOST_TEST(table.out.find("live") != std::string::npos, table);
  auto topology = hub.ctl({"topology"});
  BOOST_TEST(topology.out.find("link spoke (bidirectional, server, live)") != std::string::npos,
             topology);
  BOOST_TEST(topology.out.find("peer table app.notes") != std::string::npos, topology);

  auto unknown = hub.ctl({"exec", "--table", "app.nope", "--upsert", R"({"id": 3})"});
  BOOST_TEST(unknown.exit_code == 1, unknown);
  BOOST_TEST(unknown.err.find("app.nope") != std::string::npos, unknown);
  auto bad_row = hub.ctl({"exec", "--table", "app.notes", "--upsert", R"({"id": "x"})"});
  BOOST_TEST(bad_row.exit_code == 1, bad_row);
}

BOOST_AUTO_TEST_CASE(ctl_wait_answers_once_the_other_node_holds_a_write_so_it_reads_it_at_once) {
  temp_dir dir;
  auto hub_config = dir.write("hub.toml", peer_config("hub", "[[links]]\npeer = \"spoke\"\n"));
  node_process hub(hub_config, dir.path() / "hub-data");
  BOOST_REQUIRE_MESSAGE(hub.await_serving(), tail(hub.log()));
  // The spoke commits what it receives two seconds late, so a wait asked
  // right after the write is still waiting when the write lands.
  auto spoke_config = dir.write(
    "spoke.toml", peer_config("spoke", "commit_delay_ms = 2000\n[[links]]\npeer = \"hub\"\n"
                                       "endpoint = \"" + peer_endpoint(hub) + "\"\n"));
  node_process spoke(spoke_config, dir.path() / "spoke-data");
  BOOST_REQUIRE_MESSAGE(spoke.await_serving(), tail(spoke.log()));

  auto written = hub.ctl_json({"exec", "--table", "app.notes", "--upsert",
                               R"([{"id": 1, "body": "one"}, {"id": 2, "body": "two"}])"});
  BOOST_REQUIRE_MESSAGE(written.is_object() && written.contains("hlc"), written.dump());
  BOOST_TEST(written["origin"] == "hub");
  const std::string stamp = written["hlc"];
  auto waited = spoke.ctl({"--json", "wait", "--origin", "hub", "--hlc", stamp, "--timeout", "10000"});
  BOOST_REQUIRE_MESSAGE(waited.exit_code == 0, waited);
  // Once the wait answers, the write reads on the spoke: no polling.
  auto rows = spoke.rows("app.notes");
  BOOST_TEST(rows == json::parse(R"([[1, "one"], [2, "two"]])"), rows.dump());
  const auto reply = waited.out_json();
  BOOST_TEST(reply["origin"] == "hub");
  BOOST_TEST(reply["hlc"] == stamp);
  const auto held = syncmesh::store::hlc_timestamp::parse(reply.value("held", ""));
  const auto asked = syncmesh::store::hlc_timestamp::parse(stamp);
  BOOST_TEST_REQUIRE((held && asked));
  BOOST_TEST(asked->packed() <= held->packed(), reply.dump());
  // It waited for the commit (answered as the write landed, not at once).
  BOOST_TEST(reply.value("waited_ms", 0.0) > 100.0, reply.dump());
  auto text = spoke.ctl({"wait", "--origin", "hub", "--hlc", stamp});
  BOOST_TEST(text.exit_code == 0, text);
  BOOST_TEST(contains(text.out, "holds the changes of hub up to " + reply["held"].get<std::string>()),
             text);

  // A stamp the hub has not reached: refused when the time runs out, saying
  // what the spoke holds.
  auto later = spoke.ctl({"wait", "--origin", "hub", "--hlc", "99999999999999.0", "--timeout", "300"});
  BOOST_TEST(later.exit_code == 1, later);
  BOOST_TEST(contains(later.err, "holds the changes of 'hub' up to " + reply["held"].get<std::string>()
                                   + ", not up to 99999999999999.0"),
             later);
  auto nobody = spoke.ctl({"wait", "--origin", "nobody", "--hlc", "1.0", "--timeout", "200"});
  BOOST_TEST(nobody.exit_code == 1, nobody);
  BOOST_TEST(contains(nobody.err, "holds no change of 'nobody' yet"), nobody);
  auto bad = spoke.ctl({"wait", "--origin", "hub", "--hlc", "soon"});
  BOOST_TEST(bad.exit_code == 1, bad);
  BOOST_TEST(contains(bad.err, "'soon' is not an HLC stamp"), bad);
  // The node keeps serving.
  BOOST_TEST(spoke.running());
  BOOST_TEST(row_count(spoke) == 2u);
}

BOOST_AUTO_TEST_CASE(a_receiver_that_commits_slowly_pauses_its_sender_which_shows_paused_then_live) {
  temp_dir dir;
  // The spoke takes two deltas at a time and commits them 1.5 s later.
  paused_by_spoke pair(dir, "credits = 2\npause_at = 2\ncommit_delay_ms = 1500\n");
  json record;
  BOOST_TEST(pair.await_hub_link([](const json& r) { return r["state"] == "paused"; }, record),
             record.dump());
  pair.await_caught_up(record);
  BOOST_TEST(record["pauses_received"].get<int>() >= 1, record.dump());
}

BOOST_AUTO_TEST_CASE(a_receivers_credit_bytes_holds_its_sender_to_one_delta_at_a_time) {
  temp_dir dir;
  // Plenty of batch credits, but a byte window smaller than one frame: the
  // hub may have one delta unacknowledged, and the spoke commits it late.
  paused_by_spoke pair(dir, "credit_bytes = 1000\ncommit_delay_ms = 1500\n");
  BOOST_TEST(contains(pair.spoke->log(), "credit_bytes (1000) is less than twice frame_bytes_max"),
             tail(pair.spoke->log()));
  json record;
  BOOST_TEST(pair.await_hub_link(
               [](const json& r) { return r["state"] == "paused" && r["unacked"] == 1; }, record),
             record.dump());
  pair.await_caught_up(record);
}

BOOST_AUTO_TEST_CASE(a_row_too_big_for_the_peers_frames_holds_its_link_and_says_so) {
  temp_dir dir;
  // The hub's frames may be 4 MiB (the default), the spoke's 16 KiB.
  paused_by_spoke pair(dir, "frame_bytes_max = 16384\n");
  json record;
  pair.await_caught_up(record);  // rows 1 to 3 went in frames the spoke takes
  auto big = pair.hub->ctl({"exec", "--table", "app.notes", "--upsert",
                            R"({"id": 4, "body": ")" + std::string(40 * 1024, 'b') + R"("})"});
  BOOST_REQUIRE_MESSAGE(big.exit_code == 0, big);
  auto after = pair.hub->ctl({"exec", "--table", "app.notes", "--upsert", R"({"id": 5, "body": "after"})"});
  BOOST_REQUIRE_MESSAGE(after.exit_code == 0, after);

  BOOST_TEST(pair.await_hub_link(
               [](const json& r) {
                 return contains(r.value("held", ""), "frame_bytes_max allows on node 'spoke' (16384)");
               },
               record),
             record.dump());
  BOOST_TEST(contains(record.value("held", ""), "raised to at least"), record.dump());
  BOOST_TEST(record["state"] == "live", record.dump());
  // Rows 4 and 5 are the hub's lag: neither went (not 5 past 4).
  BOOST_TEST(record["lag_changes"] == 2, record.dump());
  BOOST_TEST(record["unacked"] == 0, record.dump());
  auto table = pair.hub->ctl({"links"});
  BOOST_TEST(contains(table.out, "held: the row with key (4)"), table);
  BOOST_TEST(contains(pair.hub->log(), "the link to 'spoke' holds"), tail(pair.hub->log()));
  // Nothing too big was sent, so the spoke refused no frame; it lacks rows
  // 4 and 5 and still writes to the hub.
  BOOST_TEST(link_record(*pair.spoke, "hub")["frames_refused"] == 0);
  BOOST_TEST(row_count(*pair.spoke) == 3u);
  auto back = pair.spoke->ctl({"exec", "--table", "app.notes", "--upsert", R"({"id": 6, "body": "up"})"});
  BOOST_REQUIRE_MESSAGE(back.exit_code == 0, back);
  BOOST_TEST(await([&] { return row_count(*pair.hub) == 6u; }), "the hub holds " << row_count(*pair.hub));
}

BOOST_AUTO_TEST_CASE(a_wait_pending_when_the_peer_actor_fails_is_answered_at_once_with_why) {
  temp_dir dir;
  // The hub's peer actor fails on its 21st frame: a few seconds of the
  // link's heartbeats once the spoke is there.
  auto hub_config = dir.write(
    "hub.toml", peer_config("hub", "failpoint_fail_after_frames = 20\n"
                                   "[[links]]\npeer = \"spoke\"\n"));
  node_process hub(hub_config, dir.path() / "hub-data");
  BOOST_REQUIRE_MESSAGE(hub.await_serving(), tail(hub.log()));
  auto spoke_config = dir.write("spoke.toml", spoke_dialing(peer_endpoint(hub)));
  node_process spoke(spoke_config, dir.path() / "spoke-data");
  BOOST_REQUIRE_MESSAGE(spoke.await_serving(), tail(spoke.log()));

  auto waited = hub.ctl({"wait", "--origin", "spoke", "--hlc", "99999999999999.0", "--timeout", "15000"});
  BOOST_TEST(waited.exit_code == 1, waited);
  BOOST_TEST(contains(waited.err, "peer sync stopped while waiting for the changes of 'spoke'"), waited);
  BOOST_TEST(waited.took.count() < 15'000, waited);
  BOOST_TEST(contains(hub.log(), "failing on purpose"), tail(hub.log()));
}

BOOST_AUTO_TEST_CASE(a_failed_peer_actor_is_restarted_by_its_supervisor_and_its_link_loses_nothing) {
  temp_dir dir;
  // The hub's peer actor fails on purpose on its 21st frame (a few deltas
  // into the spoke's writes); its supervisor restarts it 100 ms later, on
  // the same port.
  auto hub_config = dir.write(
    "hub.toml", peer_config("hub", "failpoint_fail_after_frames = 20\n"
                                   "[restart]\ninitial_ms = 100\njitter = 0.0\n"
                                   "[[links]]\npeer = \"spoke\"\n"));
  node_process hub(hub_config, dir.path() / "hub-data");
  BOOST_REQUIRE_MESSAGE(hub.await_serving(), tail(hub.log()));
  const std::string endpoint = peer_endpoint(hub);
  auto spoke_config = dir.write("spoke.toml", spoke_dialing(endpoint));
  node_process spoke(spoke_config, dir.path() / "spoke-data");
  BOOST_REQUIRE_MESSAGE(spoke.await_serving(), tail(spoke.log()));

  for (int id = 1; id <= 40; ++id) {  // one delta each
    auto w = spoke.ctl({"exec", "--table", "app.notes", "--upsert",
                        R"({"id": )" + std::to_string(id) + R"(, "body": "from the spoke"})"});
    BOOST_REQUIRE_MESSAGE(w.exit_code == 0, w);
  }
  BOOST_TEST(await([&] { return row_count(hub) == 40u; }),
             "the hub holds " << row_count(hub) << " of 40 rows");

  json peer_child;
  BOOST_TEST(await([&] {
    for (const auto& c : hub.ctl_json({"children"}))
      if (c.value("kind", "") == "peer")
        peer_child = c;
    return peer_child.is_object() && peer_child["running"] == true;
  }), peer_child.dump());
  BOOST_TEST(peer_child["restarts"] == 1, peer_child.dump());
  BOOST_TEST(hub.log().find("failing on purpose") != std::string::npos, tail(hub.log()));

  // The restarted actor serves the link both ways.
  auto w = hub.ctl({"exec", "--table", "app.notes", "--upsert", R"({"id": 100, "body": "from the hub"})"});
  BOOST_REQUIRE_MESSAGE(w.exit_code == 0, w);
  BOOST_TEST(await([&] { return row_count(spoke) == 41u; }),
             "the spoke holds " << row_count(spoke) << " of 41 rows");
  json record;
  BOOST_TEST(await([&] {
    record = link_record(spoke, "hub");
    return record.is_object() && record["state"] == "live" && record["unacked"] == 0;
  }), record.dump());
}

BOOST_AUTO_TEST_CASE(a_links_trust_policy_actor_refuses_a_peers_deletes_and_they_are_counted) {
  temp_dir dir;
  // The hub's link names the built-in policy actor refuse_deletes.
  auto hub_config = dir.write(
    "hub.toml",
    peer_config("hub", "[[links]]\npeer = \"spoke\"\ntrust_policy = \"refuse_deletes\"\n"));
  node_process hub(hub_config, dir.path() / "hub-data");
  BOOST_REQUIRE_MESSAGE(hub.await_serving(), tail(hub.log()));
  const std::string endpoint = peer_endpoint(hub);
  auto spoke_config = dir.write("spoke.toml", spoke_dialing(endpoint));
  node_process spoke(spoke_config, dir.path() / "spoke-data");
  BOOST_REQUIRE_MESSAGE(spoke.await_serving(), tail(spoke.log()));

  auto written = spoke.ctl({"exec", "--table", "app.notes", "--upsert",
                            R"([{"id": 1, "body": "kept"}, {"id": 2, "body": "also kept"}])"});
  BOOST_REQUIRE_MESSAGE(written.exit_code == 0, written);
  BOOST_REQUIRE(await([&] { return row_count(hub) == 2u; }));
  auto removed = spoke.ctl({"exec", "app.notes", "--delete", R"({"id": 2})"});
  BOOST_REQUIRE_MESSAGE(removed.exit_code == 0, removed);

  json record;
  const bool refused = await([&] {
    record = link_record(hub, "spoke");
    return record.is_object() && record["nacked"] == 1;
  });
  BOOST_TEST(refused, record.dump());
  BOOST_TEST(record["last_refusal"].get<std::string>().find("refuse_deletes") != std::string::npos,
             record.dump());
  BOOST_TEST(row_count(hub) == 2u);  // the delete was not taken
  BOOST_TEST(row_count(spoke) == 1u);
  json back;
  BOOST_TEST(await([&] {
    back = link_record(spoke, "hub");
    return back.is_object() && back["nacks_received"] == 1;
  }), back.dump());

  // The hub's own writes, and the spoke's upserts, still flow.
  auto more = spoke.ctl({"exec", "--table", "app.notes", "--upsert", R"({"id": 3, "body": "new"})"});
  BOOST_REQUIRE_MESSAGE(more.exit_code == 0, more);
  BOOST_TEST(await([&] { return row_count(hub) == 3u; }));
}

BOOST_AUTO_TEST_CASE(a_node_whose_peer_endpoint_cannot_be_bound_refuses_to_start_with_a_sentence) {
  temp_dir dir;
  // Not loopback and no keys: the transport refuses to listen there.
  auto text = peer_config("lonely", "");
  const std::string loopback = "listen = \"tcp://127.0.0.1:0\"";
  text.replace(text.find(loopback), loopback.size(), "listen = \"tcp://0.0.0.0:0\"");
  auto config = dir.write("node.toml", text);
  node_process n(config, dir.path() / "lonely-data");
  const bool serving = n.await_serving();
  BOOST_TEST(!serving, "the node started though it may not listen on 0.0.0.0 without keys");
  const auto code = n.wait_for_exit(wait_max);
  BOOST_TEST(code.value_or(0) != 0);
  BOOST_TEST(n.log().find("0.0.0.0") != std::string::npos, tail(n.log()));
}

BOOST_AUTO_TEST_SUITE_END()
