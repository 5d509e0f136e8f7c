// The node runtime as a user meets it: a real `syncmesh node` process,
// driven by the real `syncmesh ctl` and, for raw-protocol cases, by the
// control socket directly.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <iterator>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <boost/test/unit_test.hpp>
#include <zmq.hpp>

#include "messaging/control_client.hpp"
#include "messaging/control_codec.hpp"
#include "tests/node/node_process.hpp"

using namespace syncmesh::node_test;
namespace messaging = syncmesh::messaging;

namespace {

/// A node from standard_config() in its own temp dir, serving and with
/// every view synced once.
struct running_node {
  temp_dir dir;
  fs::path config;
  std::optional<node_process> node;

  explicit running_node(const config_options& o = {}) {
    config = dir.write("node.toml", standard_config(o));
    start(1);
  }

  /// Starts the node and waits until it serves; with `await_synced`, also
  /// until every view is synced.
  void start(int start_number, bool await_synced = true) {
    node.emplace(config, dir.path() / "data", start_number);
    const bool serving = node->await_serving();
    BOOST_REQUIRE_MESSAGE(serving, "the node did not serve within " << wait_max.count()
                                                                     << " ms; its log:\n"
                                                                     << tail(node->log()));
    if (!await_synced)
      return;
    json last;
    const bool synced = node->await_all_synced(last);
    BOOST_REQUIRE_MESSAGE(synced, "the views did not all reach synced; last status:\n"
                                    << last.dump(2) << "\nnode log:\n" << tail(node->log()));
  }

  node_process& n() { return *node; }
};

/// A view's field in a status, as text for messages.
std::string field(const json& status, const std::string& view, const std::string& key) {
  auto v = view_record(status, view);
  return v.is_object() && v.contains(key) ? v[key].dump() : "<missing>";
}

std::string row_json(int id, const std::string& title) {
  return json{{"id", id}, {"title", title}}.dump();
}

/// `ctl exec --remote inventory --table items --upsert {id, title}`.
run_result write_at_remote(node_process& n, int id, const std::string& title) {
  return n.ctl({"exec", "--remote", "inventory", "--table", "items", "--upsert",
                row_json(id, title)});
}

std::size_t line_count(const std::string& text) {
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

bool starts_with(const std::string& text, const std::string& prefix) {
  return text.compare(0, prefix.size(), prefix) == 0;
}

/// The lines of `text` that parse as JSON objects.
std::vector<json> json_lines(const std::string& text) {
  std::vector<json> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    auto j = json::parse(line, nullptr, false);
    if (j.is_object())
      out.push_back(std::move(j));
  }
  return out;
}

/// True when `events` hold a sync:start and a sync:end of `view` with the
/// same run number, and its state changes into running and (a materialized
/// view) out to synced.
bool holds_whole_run(const std::vector<json>& events, const std::string& view) {
  bool to_running = false, to_synced = false;
  std::vector<json> starts;
  for (const auto& e : events) {
    if (e.value("view", "") != view)
      continue;
    auto type = e.value("type", "");
    if (type == "state" && e.value("to", "") == "running")
      to_running = true;
    if (type == "state" && e.value("from", "") == "running" && e.value("to", "") == "synced")
      to_synced = true;
    if (type == "sync:start")
      starts.push_back(e["run"]);
    if (type == "sync:end" && std::find(starts.begin(), starts.end(), e["run"]) != starts.end())
      return to_running && to_synced;
  }
  return false;
}

/// A TCP port on 127.0.0.1 that nothing listens on (bound, then released).
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  BOOST_REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  BOOST_REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  BOOST_REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

/// A bare DEALER that sends whatever frames a test gives it and reads the
/// reply's last frame.
class raw_dealer {
public:
  raw_dealer(zmq::context_t& ctx, const std::string& endpoint)
      : socket_(ctx, zmq::socket_type::dealer) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.connect(endpoint);
  }

  /// An empty delimiter and `payload`, as REQ-style clients send it.
  void send(const std::string& payload) {
    socket_.send(zmq::const_buffer(), zmq::send_flags::sndmore);
    socket_.send(zmq::buffer(payload), zmq::send_flags::none);
  }

  /// The payload of the next reply, or nothing within `timeout`.
  std::optional<std::string> receive(milliseconds timeout = wait_max) {
    zmq_pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, timeout) == 0)
      return std::nullopt;
    std::string last;
    for (;;) {
      zmq::message_t part;
      (void)socket_.recv(part, zmq::recv_flags::none);
      last.assign(part.data<char>(), part.size());
      if (!part.more())
        return last;
    }
  }

private:
  zmq::socket_t socket_;
};

/// `status` over the raw protocol succeeds and lists the three views.
void expect_status_still_works(node_process& n) {
  zmq::context_t ctx{1};
  messaging::control_client client(ctx, n.control_endpoint(), wait_max);
  auto reply = client.call("status");
  BOOST_REQUIRE_MESSAGE(reply.is_ok(), "status after bad input: " << reply.error().message());
  BOOST_TEST(reply->ok, "status after bad input was refused: " << reply->error);
  BOOST_TEST(reply->result.is_array());
  BOOST_TEST(reply->result.size() == 3u);
  auto r = n.ctl({"status"});
  BOOST_TEST(r.exit_code == 0, r);
}

} // namespace

BOOST_AUTO_TEST_SUITE(ctl_verbs_against_a_running_node)

BOOST_FIXTURE_TEST_CASE(status_shows_every_view_with_its_persistence_mode_and_state,
                        running_node) {
  auto r = n().ctl({"--json", "status"});
  BOOST_REQUIRE_MESSAGE(r.exit_code == 0, r);
  const json s = r.out_json();
  BOOST_REQUIRE_MESSAGE(s.is_array(), "status --json printed no JSON array: " << r.out);
  BOOST_TEST(s.size() == 3u);

  struct expected {
    const char* view;
    const char* persistence;
    const char* mode;
  };
  const expected views[] = {{"shop.items", "materialized", "snapshot"},
                            {"shop.live", "realtime", "stream"},
                            {"shop.cart", "sync", "local_first"}};
  for (std::size_t i = 0; i < std::size(views); ++i) {
    const auto& e = views[i];
    BOOST_TEST_CONTEXT("view " << e.view) {
      const json v = s.at(i);  // in config order
      BOOST_TEST(v.value("namespace", "") + "." + v.value("name", "") == e.view);
      BOOST_TEST(v.value("persistence", "") == e.persistence);
      BOOST_TEST(v.value("mode", "") == e.mode);
      BOOST_TEST(v.value("state", "") == settled_state(v));
      BOOST_TEST(v.value("enabled", false));
      BOOST_TEST(v.value("remote", "") == "inventory");
      BOOST_TEST(v.value("retry_count", -1) == 0);
      BOOST_TEST(v.value("last_error", "?") == "");
      BOOST_TEST(v["next_retry_at"].is_null());
    }
  }
  BOOST_TEST(s[2]["outbox"].dump()
             == json({{"applied", 0}, {"conflicted", 0}, {"failed", 0},
                      {"oldest_pending_age_ms", nullptr}, {"pending", 0}, {"pruned", 0},
                      {"staged_rows", 0}})
                  .dump());

  auto text = n().ctl({"status"});
  BOOST_TEST(text.exit_code == 0, text);
  BOOST_TEST(starts_with(text.out, "VIEW"), text);
  BOOST_TEST(line_count(text.out) == 4u, text);
  for (const auto* word : {"shop.items", "shop.live", "shop.cart", "materialized", "realtime",
                           "local_first", "synced"})
    BOOST_TEST(contains(text.out, word), "text status names " << word << "\n" << text);

  auto one = n().ctl_json({"status", "shop.live"});
  BOOST_TEST(one.size() == 1u, one.dump());
  BOOST_TEST(field(one, "shop.live", "persistence") == "\"realtime\"");
}

BOOST_FIXTURE_TEST_CASE(sync_runs_every_selected_view_and_reports_the_rows_it_pulled,
                        running_node) {
  auto r = n().ctl({"--json", "sync"});
  BOOST_REQUIRE_MESSAGE(r.exit_code == 0, r);
  const json runs = r.out_json();
  BOOST_REQUIRE(runs.is_array());
  BOOST_TEST(runs.size() == 3u);
  for (const auto* view : {"shop.items", "shop.live", "shop.cart"}) {
    BOOST_TEST_CONTEXT("view " << view) {
      const json run = view_record(runs, view);
      BOOST_REQUIRE(run.is_object());
      BOOST_TEST(run.value("state", "") == (std::string(view) == "shop.items" ? "synced" : "running"));
      BOOST_TEST(run.value("pulled", -1) == 2);
      BOOST_TEST(run.value("pushed", -1) == 0);
      BOOST_TEST(!run.contains("error"));
      BOOST_TEST(run.value("run", 0) >= 2, "the start-up run came first: " << run.dump());
    }
  }

  // A selector picks views; a later run has a later number.
  auto again = n().ctl_json({"sync", "shop.items,shop.cart"});
  BOOST_REQUIRE(again.is_array());
  BOOST_TEST(again.size() == 2u);
  BOOST_TEST(view_record(again, "shop.live").is_null());
  BOOST_TEST(view_record(again, "shop.items").value("run", 0)
             > view_record(runs, "shop.items").value("run", 0));

  auto text = n().ctl({"sync", "shop.*"});
  BOOST_TEST(text.exit_code == 0, text);
  BOOST_TEST(starts_with(text.out, "VIEW"), text);
  BOOST_TEST(line_count(text.out) == 4u, text);
  BOOST_TEST(contains(text.out, "synced"), text);
}

BOOST_FIXTURE_TEST_CASE(query_returns_the_rows_the_remote_was_configured_with, running_node) {
  for (const auto* view : {"shop.items", "shop.live", "shop.cart"}) {
    BOOST_TEST_CONTEXT("view " << view) {
      auto q = n().ctl_json({"query", view});
      BOOST_REQUIRE(q.is_object());
      BOOST_TEST(q["columns"].dump() == json({"id", "title"}).dump());
      BOOST_TEST(q["rows"].dump() == json({item(1, "apple"), item(2, "pear")}).dump());
      BOOST_TEST(q.value("truncated", true) == false);
    }
  }

  auto limited = n().ctl_json({"query", "shop.items", "--limit", "1"});
  BOOST_TEST(limited["rows"].dump() == json({item(1, "apple")}).dump());
  BOOST_TEST(limited.value("truncated", false));

  auto text = n().ctl({"query", "shop.items"});
  BOOST_TEST(text.exit_code == 0, text);
  BOOST_TEST(contains(text.out, "apple"), text);
  BOOST_TEST(contains(text.out, "pear"), text);
  BOOST_TEST(contains(text.out, "(2 rows)"), text);
}

BOOST_FIXTURE_TEST_CASE(a_write_at_the_remote_reaches_the_realtime_view_without_a_sync,
                        running_node) {
  auto w = write_at_remote(n(), 3, "plum");
  BOOST_REQUIRE_MESSAGE(w.exit_code == 0, w);
  BOOST_TEST(w.out_json().value("remote", "") == "inventory", w);

  json rows;
  const bool arrived =
    n().await_rows("shop.live", [](const json& r) { return has_id(r, 3); }, rows);
  BOOST_TEST(arrived, "shop.live never showed row 3: " << rows.dump());
  BOOST_TEST(rows.dump() == json({item(1, "apple"), item(2, "pear"), item(3, "plum")}).dump());
  // A materialized view is a copy as of its last sync.
  BOOST_TEST(!has_id(n().rows("shop.items"), 3));
  BOOST_TEST(n().ctl({"sync", "shop.items"}).exit_code == 0);
  BOOST_TEST(has_id(n().rows("shop.items"), 3));

  auto del = n().ctl({"exec", "--remote", "inventory", "--table", "items", "--delete",
                      json{{"id", 1}}.dump()});
  BOOST_REQUIRE_MESSAGE(del.exit_code == 0, del);
  const bool deleted =
    n().await_rows("shop.live", [](const json& r) { return !has_id(r, 1); }, rows);
  BOOST_TEST(deleted, "shop.live kept the deleted row 1: " << rows.dump());
}

BOOST_FIXTURE_TEST_CASE(a_write_to_the_sync_view_lands_locally_and_reaches_the_remote,
                        running_node) {
  auto w = n().ctl({"--json", "exec", "shop.cart", "--upsert", row_json(4, "fig")});
  BOOST_REQUIRE_MESSAGE(w.exit_code == 0, w);
  BOOST_TEST(w.out_json().value("applied", 0) == 1, w);
  // Acknowledged means it is in the local view.
  BOOST_TEST(has_id(n().rows("shop.cart"), 4), n().rows("shop.cart").dump());

  // It reaches the remote: a sync of the materialized view pulls it.
  json rows;
  const bool pulled = await([&] {
    rows = n().ctl({"sync", "shop.items"}).exit_code == 0 ? n().rows("shop.items") : json();
    return has_id(rows, 4);
  });
  BOOST_TEST(pulled, "row 4 never reached the remote; shop.items: " << rows.dump());
  const bool streamed =
    n().await_rows("shop.live", [](const json& r) { return has_id(r, 4); }, rows);
  BOOST_TEST(streamed, "shop.live: " << rows.dump());
  json last;
  const bool pushed = n().await_status(
    [](const json& s) {
      auto cart = view_record(s, "shop.cart");
      return cart["outbox"].value("pending", -1) == 0 && cart["outbox"].value("applied", -1) == 1;
    },
    last);
  BOOST_TEST(pushed, "outbox: " << field(last, "shop.cart", "outbox"));

  // A write the view cannot take is refused with a reason.
  auto bad = n().ctl({"exec", "shop.cart", "--upsert", json{{"id", "x"}, {"title", "y"}}.dump()});
  BOOST_TEST(bad.exit_code == 1, bad);
  BOOST_TEST(contains(bad.err, "integer"), bad);
  auto read_only = n().ctl({"exec", "shop.items", "--upsert", row_json(9, "nope")});
  BOOST_TEST(read_only.exit_code == 1, read_only);
  BOOST_TEST(contains(read_only.err, "materialized"), read_only);
}

BOOST_FIXTURE_TEST_CASE(forget_stops_a_view_and_says_what_it_dropped_upstream, running_node) {
  // A memory remote keeps nothing per view, so there is nothing to drop.
  auto text = n().ctl({"forget", "shop.live"});
  BOOST_REQUIRE_MESSAGE(text.exit_code == 0, text);
  BOOST_TEST(contains(text.out, "shop.live: stopped; nothing upstream to drop"), text);
  auto json_out = n().ctl({"--json", "forget", "shop.live"});
  BOOST_REQUIRE_MESSAGE(json_out.exit_code == 0, json_out);
  auto record = view_record(json_out.out_json(), "shop.live");
  BOOST_TEST(record.value("enabled", true) == false, json_out);
  BOOST_TEST(record["dropped"].empty(), json_out);
  BOOST_TEST(field(n().status(), "shop.live", "enabled") == "false");
  auto no_selector = n().ctl({"forget"});
  // Forgetting every view by accident takes an explicit '*'.
  BOOST_TEST(no_selector.exit_code != 0, no_selector);
  BOOST_TEST(contains(no_selector.err, "selector is required"), no_selector);
  auto resumed = n().ctl({"--json", "resume", "shop.live"});
  BOOST_TEST(resumed.exit_code == 0, resumed);
  BOOST_TEST(field(n().status(), "shop.live", "enabled") == "true");
}

BOOST_FIXTURE_TEST_CASE(a_stopped_view_skips_plain_syncs_and_resume_catches_up_on_remote_writes,
                        running_node) {
  auto stop = n().ctl({"--json", "stop", "shop.live"});
  BOOST_REQUIRE_MESSAGE(stop.exit_code == 0, stop);
  auto stopped = view_record(stop.out_json(), "shop.live");
  BOOST_TEST(stopped.value("enabled", true) == false, stop);
  BOOST_TEST(stopped.value("state", "") == "idle", stop);

  BOOST_REQUIRE(write_at_remote(n(), 5, "lime").exit_code == 0);

  auto sync = n().ctl({"--json", "sync"});
  BOOST_REQUIRE_MESSAGE(sync.exit_code == 0, sync);
  auto runs = sync.out_json();
  auto live = view_record(runs, "shop.live");
  BOOST_TEST(live.value("skipped", false), sync);
  BOOST_TEST(contains(live.value("reason", ""), "resume"), sync);
  // The write is at the remote: the running views pulled it.
  BOOST_TEST(view_record(runs, "shop.items").value("pulled", 0) == 3, sync);
  BOOST_TEST(has_id(n().rows("shop.items"), 5));
  BOOST_TEST(!has_id(n().rows("shop.live"), 5), "a stopped view took a remote write");
  BOOST_TEST(field(n().status(), "shop.live", "enabled") == "false");

  auto text = n().ctl({"sync", "shop.live"});
  BOOST_TEST(text.exit_code == 0, text);
  BOOST_TEST(contains(text.out, "the view is stopped"), text);

  auto resume = n().ctl({"--json", "resume", "shop.live"});
  BOOST_REQUIRE_MESSAGE(resume.exit_code == 0, resume);
  auto resumed = view_record(resume.out_json(), "shop.live");
  BOOST_TEST(resumed.value("state", "") == "running", resume);
  // It followed on from its stream (no new copy); the write made while it
  // was stopped arrives through the stream.
  BOOST_TEST(resumed.value("pulled", -1) == 0, resume);
  json caught_up;
  BOOST_TEST(n().await_rows("shop.live", [](const json& r) { return has_id(r, 5); }, caught_up));
  BOOST_TEST(caught_up.dump() == json({item(1, "apple"), item(2, "pear"), item(5, "lime")}).dump());
  BOOST_TEST(field(n().status(), "shop.live", "enabled") == "true");

  // It follows the stream again.
  BOOST_REQUIRE(write_at_remote(n(), 6, "date").exit_code == 0);
  json rows;
  const bool follows =
    n().await_rows("shop.live", [](const json& r) { return has_id(r, 6); }, rows);
  BOOST_TEST(follows, "shop.live: " << rows.dump());
}

BOOST_FIXTURE_TEST_CASE(
  a_remote_outage_fails_views_with_the_reason_and_a_next_retry_and_they_recover_on_their_own,
  running_node) {
  auto down = n().ctl({"remote", "inventory", "--down"});
  BOOST_REQUIRE_MESSAGE(down.exit_code == 0, down);

  json last;
  const bool failed = n().await_status(
    [](const json& s) {
      for (const auto* view : {"shop.live", "shop.cart"}) {
        auto v = view_record(s, view);
        if (v.value("state", "") != "failed" || v.value("retry_count", 0) < 1
            || !contains(v.value("last_error", ""), "inventory")
            || !v["next_retry_at"].is_number())
          return false;
      }
      return true;
    },
    last);
  BOOST_TEST(failed, "the streaming views did not fail with a reason and a next retry:\n"
                       << last.dump(2));
  auto live = view_record(last, "shop.live");
  BOOST_TEST(contains(live.value("last_error", ""), "down"), live.dump());
  BOOST_TEST(live.value("enabled", false));

  // A sync while the remote is down reports the failure: exit code 3.
  auto sync = n().ctl({"sync", "shop.items"});
  BOOST_TEST(sync.exit_code == 3, sync);
  BOOST_TEST(contains(sync.out, "down"), sync);
  auto text = n().ctl({"status"});
  BOOST_TEST(contains(text.out, "failed"), text);
  BOOST_TEST(contains(text.out, "remote 'inventory' is down"), text);

  auto up = n().ctl({"remote", "inventory", "--up"});
  BOOST_REQUIRE_MESSAGE(up.exit_code == 0, up);
  const bool recovered = n().await_status(
    [](const json& s) {
      for (const auto& v : s)
        if (v.value("state", "") != settled_state(v) || v.value("retry_count", -1) != 0
            || !v["next_retry_at"].is_null() || !v.value("last_error", "?").empty())
          return false;
      return s.size() == 3;
    },
    last);
  BOOST_TEST(recovered, "the views did not recover on their own:\n" << last.dump(2));

  BOOST_REQUIRE(write_at_remote(n(), 8, "sloe").exit_code == 0);
  json rows;
  const bool streamed =
    n().await_rows("shop.live", [](const json& r) { return has_id(r, 8); }, rows);
  BOOST_TEST(streamed, "shop.live: " << rows.dump());
}

BOOST_FIXTURE_TEST_CASE(events_prints_sync_start_sync_end_and_state_lines_while_a_sync_runs,
                        running_node) {
  const auto d = n().data_dir().string();
  child_process as_json({syncmesh_binary(), "ctl", "--node", d, "--json", "events", "--count",
                         "8", "--for", "15000"},
                        dir.path() / "events.json.out", dir.path() / "events.json.err");
  child_process as_text({syncmesh_binary(), "ctl", "--node", d, "events", "--count", "4",
                         "--type", "sync:", "--for", "15000"},
                        dir.path() / "events.text.out", dir.path() / "events.text.err");
  auto text_done = [&] {
    const auto out = as_text.out();
    return contains(out, "sync:start view=shop.items") && contains(out, "sync:end view=shop.items");
  };
  auto json_done = [&] { return holds_whole_run(json_lines(as_json.out()), "shop.items"); };

  // The subscribers connect in their own time; events before that are not
  // theirs. Run syncs until both have seen a whole one.
  const bool seen = await([&] {
    if (json_done() && text_done())
      return true;
    if (!as_json.running() && !as_text.running())
      return true;
    (void)n().ctl({"sync", "shop.items"});
    return json_done() && text_done();
  });
  BOOST_TEST(seen);
  BOOST_TEST(json_done(), "--json events:\n" << as_json.out() << as_json.err());
  BOOST_TEST(text_done(), "text events:\n" << as_text.out() << as_text.err());

  // --count ends them; the syncs above give them enough events.
  (void)n().ctl({"sync", "shop.items"});
  (void)n().ctl({"sync", "shop.items"});
  const int json_exit = as_json.wait_for(wait_max).value_or(-1);
  const int text_exit = as_text.wait_for(wait_max).value_or(-1);
  BOOST_TEST(json_exit == 0, as_json.err());
  BOOST_TEST(text_exit == 0, as_text.err());
  const auto events = json_lines(as_json.out());
  BOOST_TEST(events.size() == 8u, as_json.out());
  for (const auto& e : events)
    BOOST_TEST(e.value("node", "") == "node-a", e.dump());
  for (const auto& line : json_lines(as_text.out()))
    BOOST_TEST(false, "text events printed JSON: " << line.dump());
  std::istringstream lines(as_text.out());
  for (std::string line; std::getline(lines, line);)
    BOOST_TEST(starts_with(line, "sync:"), "--type sync: let through: " << line);
}

BOOST_FIXTURE_TEST_CASE(topology_prints_the_views_and_remotes_as_text_dot_and_json,
                        running_node) {
  auto text = n().ctl({"topology"});
  BOOST_TEST(text.exit_code == 0, text);
  for (const auto* part : {"node node-a", "view shop.items (materialized)",
                           "view shop.live (realtime)", "view shop.cart (sync)",
                           "pull inventory/items", "two-way inventory/items",
                           "remote inventory (memory)"})
    BOOST_TEST(contains(text.out, part), "text topology shows " << part << "\n" << text);

  auto dot = n().ctl({"topology", "--format", "dot"});
  BOOST_TEST(dot.exit_code == 0, dot);
  BOOST_TEST(starts_with(dot.out, "digraph"), dot);
  BOOST_TEST(contains(dot.out, "\"view:shop.cart\" -> \"remote:inventory\" [label=\"two-way\"]"),
             dot);
  BOOST_TEST((dot.out.size() >= 2 && dot.out.substr(dot.out.size() - 2) == "}\n"), dot);

  auto as_json = n().ctl({"topology", "--format", "json"});
  BOOST_TEST(as_json.exit_code == 0, as_json);
  const json t = as_json.out_json();
  BOOST_TEST(!t.is_discarded(), "topology --format json is not JSON:\n" << as_json.out);
  auto ctl_json = n().ctl_json({"topology"});
  for (const json& topo : {t, ctl_json}) {
    if (!topo.is_object())
      continue;
    BOOST_TEST(topo.value("node", "") == "node-a");
    BOOST_TEST(topo["nodes"].size() == 5u, topo.dump());
    BOOST_TEST(topo["edges"].size() == 6u, topo.dump());
  }
  BOOST_TEST(ctl_json.is_object(), "ctl --json topology is not a JSON object");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(node_lifecycle)

BOOST_AUTO_TEST_CASE(a_node_killed_with_sigkill_restarts_with_its_rows_and_job_states) {
  config_options o;
  o.durability = "fsync";
  running_node f(o);
  auto& first = f.n();
  BOOST_REQUIRE(write_at_remote(first, 3, "plum").exit_code == 0);
  BOOST_REQUIRE(first.ctl({"sync", "shop.items"}).exit_code == 0);
  BOOST_REQUIRE(first.ctl({"stop", "shop.items,shop.cart"}).exit_code == 0);
  // Written while the sync view is stopped: queued locally, not pushed.
  BOOST_REQUIRE(first.ctl({"exec", "shop.cart", "--upsert", row_json(7, "kiwi")}).exit_code == 0);
  const json before = first.status();
  BOOST_REQUIRE(before.is_array());
  BOOST_TEST(view_record(before, "shop.cart")["outbox"].value("pending", -1) == 1);

  first.kill();
  BOOST_TEST(first.wait_for_exit(milliseconds(0)).value_or(-1) == 128 + SIGKILL);
  // The killed node left its node.json; ctl says it cannot reach it.
  auto stale = first.ctl({"--timeout", "500", "status"});
  BOOST_TEST(stale.exit_code == 2, stale);

  f.start(2, false);  // two views are stopped: only shop.live syncs
  auto& second = f.n();
  json after;
  const bool live_synced = second.await_status(
    [](const json& s) { return field(s, "shop.live", "state") == "\"running\""; }, after);
  BOOST_TEST(live_synced, "shop.live did not sync after the restart:\n" << after.dump(2));
  for (const auto* view : {"shop.items", "shop.cart"}) {
    BOOST_TEST_CONTEXT("view " << view) {
      BOOST_TEST(field(after, view, "enabled") == "false");
      BOOST_TEST(field(after, view, "state") == "\"idle\"");
      BOOST_TEST(field(after, view, "last_seen_commit") == field(before, view, "last_seen_commit"));
    }
  }
  // The queue survives as it was (only the age of its oldest entry grew).
  auto outbox_of = [](const json& s) {
    auto ob = view_record(s, "shop.cart")["outbox"];
    ob.erase("oldest_pending_age_ms");
    return ob.dump();
  };
  BOOST_TEST(outbox_of(after) == outbox_of(before));
  // The memory remote starts over from its config rows (1 and 2); row 3 is
  // in shop.items only because the node kept it on disk.
  BOOST_TEST(second.rows("shop.items").dump()
             == json({item(1, "apple"), item(2, "pear"), item(3, "plum")}).dump());
  BOOST_TEST(has_id(second.rows("shop.cart"), 7));
  auto skipped = second.ctl_json({"sync", "shop.items"});
  BOOST_TEST(view_record(skipped, "shop.items").value("skipped", false), skipped.dump());

  // The write queued before the crash is pushed on resume.
  auto resume = second.ctl_json({"resume", "shop.cart"});
  BOOST_TEST(view_record(resume, "shop.cart").value("pushed", 0) == 1, resume.dump());
  json rows;
  const bool replayed =
    second.await_rows("shop.live", [](const json& r) { return has_id(r, 7); }, rows);
  BOOST_TEST(replayed, "shop.live: " << rows.dump());
}

BOOST_AUTO_TEST_CASE(an_orderly_shutdown_exits_zero_removes_node_json_and_frees_the_directory) {
  running_node f;
  const int code = f.n().terminate().value_or(-1);
  BOOST_TEST(code == 0, f.n().log());
  BOOST_TEST(!fs::exists(f.n().node_json()));
  auto gone = f.n().ctl({"status"});
  BOOST_TEST(gone.exit_code == 2, gone);
  BOOST_TEST(contains(gone.err, "node.json"), gone);
  f.start(2);  // the store lock was released
  BOOST_TEST(f.n().ctl({"status"}).exit_code == 0);

  // SIGINT (Ctrl-C) is an orderly shutdown too.
  const int interrupted = f.n().terminate(wait_max, SIGINT).value_or(-1);
  BOOST_TEST(interrupted == 0, f.n().log());
  BOOST_TEST(!fs::exists(f.n().node_json()));
}

BOOST_AUTO_TEST_CASE(a_second_node_on_the_same_data_directory_is_refused_and_the_first_serves) {
  running_node f;
  const pid_t first_pid = f.n().pid();
  auto second = run({syncmesh_binary(), "node", "--config", f.config.string()}, wait_max);
  BOOST_TEST(!second.timed_out, "the second node kept running: " << second);
  BOOST_TEST(second.exit_code != 0, second);
  BOOST_TEST(contains(second.err, "in use by another syncmesh node"), second);
  BOOST_TEST(contains(second.err, "pid " + std::to_string(first_pid)), second);
  BOOST_TEST(line_count(second.err) == 1u, second);

  BOOST_TEST(f.n().running());
  auto info = json::parse(read_file(f.n().node_json()), nullptr, false);
  BOOST_TEST(info.value("pid", 0) == first_pid, "node.json: " << info.dump());
  auto status = f.n().ctl({"--json", "status"});
  BOOST_TEST(status.exit_code == 0, status);
  BOOST_TEST(status.out_json().size() == 3u, status);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(node_config_errors)

namespace {

std::string lines(const std::vector<std::string>& ls) {
  std::string s;
  for (const auto& l : ls)
    s += l + "\n";
  return s;
}

// Lines 1..16; the bad configs below change or add lines and assert where.
const std::vector<std::string> good_lines = {
  "node_id = \"node-a\"",                                           // 1
  "data_dir = \"data\"",                                            // 2
  "control_endpoint = \"tcp://127.0.0.1:0\"",                       // 3
  "[[remotes]]",                                                    // 4
  "name = \"inventory\"",                                           // 5
  "kind = \"memory\"",                                              // 6
  "[[remotes.tables]]",                                             // 7
  "name = \"items\"",                                               // 8
  "columns = [ { name = \"id\", type = \"integer\", key = true } ]",  // 9
  "[[views]]",                                                      // 10
  "namespace = \"shop\"",                                           // 11
  "name = \"items\"",                                               // 12
  "persistence = \"materialized\"",                                 // 13
  "remote = \"inventory\"",                                         // 14
  "source = \"items\"",                                             // 15
};

std::vector<std::string> with(std::vector<std::string> ls, std::size_t line,
                              const std::string& text) {
  ls.at(line - 1) = text;
  return ls;
}

std::vector<std::string> plus(std::vector<std::string> ls, const std::vector<std::string>& more) {
  ls.insert(ls.end(), more.begin(), more.end());
  return ls;
}

} // namespace

BOOST_AUTO_TEST_CASE(invalid_configs_are_refused_at_start_with_file_line_and_a_sentence) {
  struct bad_config {
    const char* what;
    std::string text;
    int line;
    std::vector<std::string> needles;
  };
  const std::vector<bad_config> cases = {
    {"unknown key", lines(with(good_lines, 13, "persistance = \"materialized\"")), 13,
     {"unknown key 'persistance'", "did you mean 'persistence'"}},
    {"wrong type", lines(with(good_lines, 3, "control_endpoint = 7400")), 3,
     {"'control_endpoint'", "must be a string", "an integer"}},
    {"missing required field", lines(with(good_lines, 15, "")), 10,
     {"view 'shop.items' has no 'source'", "add source ="}},
    {"duplicate view name",
     lines(plus(good_lines, {"[[views]]", "namespace = \"shop\"", "name = \"items\"",
                             "persistence = \"sync\"", "remote = \"inventory\"",
                             "source = \"items\""})),
     16, {"view 'shop.items' is declared twice", "lines 10 and 16"}},
  };
  for (const auto& c : cases) {
    BOOST_TEST_CONTEXT(c.what << "; config:\n" << c.text) {
      temp_dir dir;
      const auto config = dir.write("bad.toml", c.text);
      auto r = run({syncmesh_binary(), "node", "--config", config.string()}, wait_max);
      BOOST_TEST(!r.timed_out, "the node started anyway: " << r);
      BOOST_TEST(r.exit_code != 0, r);
      BOOST_TEST(r.exit_code < 128, "the node crashed: " << r);
      const std::string prefix =
        "syncmesh node: " + config.string() + ":" + std::to_string(c.line) + ":";
      BOOST_TEST(starts_with(r.err, prefix), "stderr starts with " << prefix << "\n" << r);
      for (const auto& needle : c.needles)
        BOOST_TEST(contains(r.err, needle), "stderr names " << needle << "\n" << r);
      // After "FILE:LINE:COL: " comes a sentence.
      const auto after = r.err.find(": ", prefix.size());
      const std::string sentence =
        after == std::string::npos ? "" : r.err.substr(after + 2, r.err.size() - after - 3);
      BOOST_TEST(is_sentence(sentence), "not a sentence: '" << sentence << "'\n" << r);
      BOOST_TEST(line_count(r.err) == 1u, r);
      BOOST_TEST(!fs::exists(dir.path() / "data" / "node.json"));
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(control_input)

namespace {

config_options small_requests() {
  config_options o;
  o.control_request_bytes_max = 2048;
  return o;
}

} // namespace

BOOST_AUTO_TEST_CASE(garbage_bytes_get_an_error_reply_and_the_node_keeps_serving) {
  running_node f(small_requests());
  zmq::context_t ctx{1};
  raw_dealer dealer(ctx, f.n().control_endpoint());
  dealer.send(std::string("\xc1\xff this is not MessagePack", 26));
  auto bytes = dealer.receive();
  BOOST_REQUIRE_MESSAGE(bytes, "no reply to garbage bytes");
  auto reply = messaging::decode_reply(*bytes, messaging::control_reply_bytes_max_default);
  BOOST_REQUIRE_MESSAGE(reply.is_ok(), "the reply does not decode: " << reply.error().message());
  BOOST_TEST(!reply->ok);
  BOOST_TEST(reply->id == 0u);
  BOOST_TEST(is_sentence(reply->error), reply->error);
  BOOST_TEST(contains(reply->error, "MessagePack"), reply->error);

  // A well-formed map that is not a request.
  dealer.send(messaging::encode_request({5, "status", json::object()}).substr(0, 9));
  auto truncated = dealer.receive();
  BOOST_REQUIRE(truncated);
  auto refused = messaging::decode_reply(*truncated, messaging::control_reply_bytes_max_default);
  BOOST_REQUIRE(refused.is_ok());
  BOOST_TEST(!refused->ok);
  BOOST_TEST(is_sentence(refused->error), refused->error);

  expect_status_still_works(f.n());
}

BOOST_AUTO_TEST_CASE(
  an_oversized_request_gets_an_error_naming_the_bound_and_the_node_keeps_serving) {
  running_node f(small_requests());
  zmq::context_t ctx{1};
  raw_dealer dealer(ctx, f.n().control_endpoint());
  const std::string big =
    messaging::encode_request({42, "status", json{{"pad", std::string(4000, 'x')}}});
  BOOST_REQUIRE(big.size() > 2048);
  dealer.send(big);
  auto bytes = dealer.receive();
  BOOST_REQUIRE_MESSAGE(bytes, "no reply to an oversized request");
  auto reply = messaging::decode_reply(*bytes, messaging::control_reply_bytes_max_default);
  BOOST_REQUIRE(reply.is_ok());
  BOOST_TEST(!reply->ok);
  BOOST_TEST(is_sentence(reply->error), reply->error);
  BOOST_TEST(contains(reply->error, "control_request_bytes_max"), reply->error);
  BOOST_TEST(contains(reply->error, "2048"), reply->error);
  expect_status_still_works(f.n());

  // Far past the bound the connection is dropped unread; the node serves on.
  raw_dealer flooder(ctx, f.n().control_endpoint());
  flooder.send(std::string(1u << 20, 'x'));
  expect_status_still_works(f.n());

  // ctl's own oversized request is refused with the same sentence.
  auto r = f.n().ctl({"exec", "shop.cart", "--upsert", row_json(9, std::string(4000, 'y'))});
  BOOST_TEST(r.exit_code == 1, r);
  BOOST_TEST(contains(r.err, "control_request_bytes_max"), r);
  BOOST_TEST(!has_id(f.n().rows("shop.cart"), 9));
}

BOOST_AUTO_TEST_CASE(unknown_verbs_and_bad_arguments_get_an_error_and_the_node_keeps_serving) {
  running_node f(small_requests());
  zmq::context_t ctx{1};
  messaging::control_client client(ctx, f.n().control_endpoint(), wait_max);

  auto unknown = client.call("frobnicate");
  BOOST_REQUIRE_MESSAGE(unknown.is_ok(), unknown.error().message());
  BOOST_TEST(!unknown->ok);
  BOOST_TEST(contains(unknown->error, "unknown verb 'frobnicate'"), unknown->error);
  BOOST_TEST(contains(unknown->error, "status"), unknown->error);

  auto bad_verb = client.call("Status!");
  BOOST_REQUIRE(bad_verb.is_ok());
  BOOST_TEST(!bad_verb->ok);
  BOOST_TEST(is_sentence(bad_verb->error), bad_verb->error);

  auto no_view = client.call("query", json::object());
  BOOST_REQUIRE(no_view.is_ok());
  BOOST_TEST(!no_view->ok);
  BOOST_TEST(contains(no_view->error, "'view'"), no_view->error);

  auto bad_selector = client.call("status", json{{"selector", 5}});
  BOOST_REQUIRE(bad_selector.is_ok());
  BOOST_TEST(!bad_selector->ok);
  BOOST_TEST(is_sentence(bad_selector->error), bad_selector->error);

  auto bad_outage = client.call("remote", json{{"remote", "inventory"}, {"outage", "yes"}});
  BOOST_REQUIRE(bad_outage.is_ok());
  BOOST_TEST(!bad_outage->ok);
  BOOST_TEST(contains(bad_outage->error, "outage"), bad_outage->error);

  expect_status_still_works(f.n());
  json last;
  const bool synced = f.n().await_all_synced(last);
  BOOST_TEST(synced, last.dump(2));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(ctl_errors)

BOOST_FIXTURE_TEST_CASE(unknown_views_and_remotes_are_refused_with_exit_code_1_not_an_empty_success,
                        running_node) {
  const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
    {{"status", "shop.nope"}, "shop.nope"},
    {{"sync", "nope.*"}, "nope.*"},
    {{"stop", "shop.items,shop.nope"}, "shop.nope"},
    {{"resume", "shop.nope"}, "shop.nope"},
    {{"query", "shop.nope"}, "shop.nope"},
    {{"exec", "shop.nope", "--upsert", row_json(1, "a")}, "shop.nope"},
    {{"remote", "nope", "--down"}, "nope"},
    {{"exec", "--remote", "nope", "--table", "items", "--upsert", row_json(1, "a")}, "nope"},
    {{"exec", "--remote", "inventory", "--table", "nope", "--upsert", row_json(1, "a")}, "nope"},
  };
  for (const auto& [args, name] : cases) {
    for (bool as_json : {false, true}) {
      std::vector<std::string> a = args;
      if (as_json)
        a.insert(a.begin(), "--json");
      std::string shown;
      for (const auto& x : a)
        shown += x + " ";
      BOOST_TEST_CONTEXT("ctl " << shown) {
        auto r = n().ctl(a);
        BOOST_TEST(r.exit_code == 1, r);
        BOOST_TEST(r.out.empty(), r);
        BOOST_TEST(starts_with(r.err, "syncmesh ctl: "), r);
        BOOST_TEST((contains(r.err, "'" + name + "'") || contains(r.err, " " + name + ";")), r);
        BOOST_TEST(line_count(r.err) == 1u, r);
      }
    }
  }
  // A refused selector changed nothing, not even for the views it named
  // correctly.
  json last = n().status();
  BOOST_TEST(field(last, "shop.items", "enabled") == "true");
  BOOST_TEST(field(last, "shop.items", "state") == "\"synced\"");
}

BOOST_AUTO_TEST_CASE(
  ctl_against_a_port_with_no_node_exits_2_within_the_timeout_with_a_one_line_reason) {
  const std::string endpoint = "tcp://127.0.0.1:" + std::to_string(free_port());
  auto r = run({syncmesh_binary(), "ctl", "--node", endpoint, "--timeout", "1000", "status"});
  BOOST_TEST(r.exit_code == 2, r);
  BOOST_TEST(r.took.count() < 1000 + 2000, r);
  BOOST_TEST(r.out.empty(), r);
  BOOST_TEST(line_count(r.err) == 1u, r);
  BOOST_TEST(contains(r.err, endpoint), r);
  BOOST_TEST(contains(r.err, "no reply"), r);

  // Neither an endpoint nor a node's data directory.
  temp_dir empty;
  auto nowhere = run({syncmesh_binary(), "ctl", "--node", empty.path().string(), "status"});
  BOOST_TEST(nowhere.exit_code == 2, nowhere);
  BOOST_TEST(line_count(nowhere.err) == 1u, nowhere);
  BOOST_TEST(contains(nowhere.err, "node.json"), nowhere);
}

BOOST_AUTO_TEST_CASE(usage_errors_exit_2_and_help_exits_0) {
  auto unknown = run({syncmesh_binary(), "ctl", "--no-such-flag", "status"});
  BOOST_TEST(unknown.exit_code == 2, unknown);
  BOOST_TEST(!unknown.err.empty(), unknown);
  auto missing = run({syncmesh_binary(), "node"});  // --config is required
  BOOST_TEST(missing.exit_code == 2, missing);
  auto help = run({syncmesh_binary(), "ctl", "--help"});
  BOOST_TEST(help.exit_code == 0, help);
}

BOOST_AUTO_TEST_SUITE_END()
