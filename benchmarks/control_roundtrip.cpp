// Control-surface latency against its baseline, measured in one run:
//
//   control_roundtrip [--calls N] [--json]
//
// starts a node in this process (memory remote, two views, one of them
// stopped), then times N `status` calls and N no-op `sync` calls (a sync of
// a stopped view, answered without a run) through messaging::control_client,
// and N raw ZeroMQ DEALER->ROUTER round trips carrying the same request and
// reply sizes. Prints p50/p99 of each and the ratio to the raw round trip at
// p50. Goal: <= 2x at p50. A measurement, not a test: exit code 0 either way.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "actors/node.hpp"
#include "benchmarks/scratch_dir.hpp"
#include "messaging/control_client.hpp"
#include "messaging/control_codec.hpp"

using namespace syncmesh;
using nlohmann::json;
using clock_type = std::chrono::steady_clock;

namespace {

struct percentiles {
  double p50_us = 0;
  double p99_us = 0;
};

percentiles summarize(std::vector<double> us) {
  std::sort(us.begin(), us.end());
  auto at = [&](double p) { return us[static_cast<std::size_t>(p * static_cast<double>(us.size() - 1))]; };
  return {at(0.50), at(0.99)};
}

actors::node_config bench_config(const std::string& dir) {
  actors::node_config cfg;
  cfg.node_id = "bench";
  cfg.data_dir = dir;
  cfg.control_endpoint = "tcp://127.0.0.1:0";
  cfg.events_endpoint = "tcp://127.0.0.1:0";
  cfg.durability = store::durability_mode::buffered;
  actors::remote_config r;
  r.name = "inventory";
  r.kind = "memory";
  actors::memory_table_config t;
  t.name = "items";
  t.columns = {{"id", "integer", true, false}, {"title", "text", false, true}};
  for (int i = 1; i <= 3; ++i)
    t.rows.push_back({store::value::integer(i), store::value::text("item")});
  r.tables.push_back(t);
  cfg.remotes.push_back(r);
  for (auto name : {"items", "idle"}) {
    actors::view_config v;
    v.ns = "shop";
    v.name = name;
    v.persistence = "materialized";
    v.remote = "inventory";
    v.source = "items";
    cfg.views.push_back(v);
  }
  return cfg;
}

template <class Fn>
void time_call(std::vector<double>& us, Fn fn) {
  auto t0 = clock_type::now();
  fn();
  us.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
}

} // namespace

int main(int argc, char** argv) {
  int calls = 10'000;
  bool as_json = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--calls") && i + 1 < argc)
      calls = std::max(100, std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--json"))
      as_json = true;
  }
  auto dir = benchmarks::scratch_dir::create();
  if (!dir) {
    std::cerr << dir.error().message() << "\n";
    return 1;
  }
  auto node = actors::node::start(bench_config(dir->path()));
  if (!node) {
    std::cerr << "control_roundtrip: " << node.error().message() << "\n";
    return 1;
  }
  zmq::context_t ctx{1};
  messaging::control_client client(ctx, (*node)->control_endpoint(), std::chrono::seconds(10));
  json one_view = {{"selector", {{"shop", {"items"}}}}};
  json stopped = {{"selector", {{"shop", {"idle"}}}}};
  if (auto r = client.call("stop", stopped); !r || !r->ok) {
    std::cerr << "control_roundtrip: could not stop shop.idle\n";
    return 1;
  }
  // Sizes of one status exchange, for the raw baseline.
  messaging::control_request probe{1, "status", one_view};
  auto status_reply = client.call("status", one_view);
  if (!status_reply || !status_reply->ok) {
    std::cerr << "control_roundtrip: status failed\n";
    return 1;
  }
  auto request_bytes = messaging::encode_request(probe).size();
  auto reply_bytes = messaging::encode_reply(*status_reply).size();

  zmq::socket_t router(ctx, zmq::socket_type::router);
  router.bind("tcp://127.0.0.1:*");
  auto endpoint = router.get(zmq::sockopt::last_endpoint);
  std::thread echo([&] {
    std::string reply(reply_bytes, 'r');
    while (true) {
      zmq::message_t id, empty, body;
      if (!router.recv(id) || !router.recv(empty) || !router.recv(body))
        return;
      if (body.size() == 4 && std::memcmp(body.data(), "quit", 4) == 0)
        return;
      router.send(id, zmq::send_flags::sndmore);
      router.send(zmq::message_t{}, zmq::send_flags::sndmore);
      router.send(zmq::buffer(reply), zmq::send_flags::none);
    }
  });
  zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
  dealer.connect(endpoint);
  std::string request(request_bytes, 'q');
  auto raw_call = [&] {
    dealer.send(zmq::message_t{}, zmq::send_flags::sndmore);
    dealer.send(zmq::buffer(request), zmq::send_flags::none);
    zmq::message_t empty, body;
    (void) dealer.recv(empty);
    (void) dealer.recv(body);
  };
  auto status_call = [&] { (void) client.call("status", one_view); };
  auto sync_call = [&] { (void) client.call("sync", stopped); };
  for (int i = 0; i < 500; ++i) {  // warm-up
    raw_call();
    status_call();
    sync_call();
  }
  // In alternating blocks: each block runs back to back (a closed loop, as
  // a script calling ctl would), and whatever else the machine does over the
  // run weighs on the baseline and on the node alike.
  constexpr int block = 500;
  std::vector<double> raw_us, status_us, sync_us;
  for (int done = 0; done < calls; done += block) {
    const int n = std::min(block, calls - done);
    for (int i = 0; i < n; ++i)
      time_call(raw_us, raw_call);
    for (int i = 0; i < n; ++i)
      time_call(status_us, status_call);
    for (int i = 0; i < n; ++i)
      time_call(sync_us, sync_call);
  }
  dealer.send(zmq::message_t{}, zmq::send_flags::sndmore);
  dealer.send(zmq::str_buffer("quit"), zmq::send_flags::none);
  echo.join();
  (*node)->stop();

  auto raw = summarize(raw_us), st = summarize(status_us), sy = summarize(sync_us);
  auto ratio_status = st.p50_us / raw.p50_us, ratio_sync = sy.p50_us / raw.p50_us;
  if (as_json) {
    std::cout << json{{"calls", calls},
                      {"request_bytes", request_bytes},
                      {"reply_bytes", reply_bytes},
                      {"raw", {{"p50_us", raw.p50_us}, {"p99_us", raw.p99_us}}},
                      {"status", {{"p50_us", st.p50_us}, {"p99_us", st.p99_us}, {"ratio_p50", ratio_status}}},
                      {"noop_sync", {{"p50_us", sy.p50_us}, {"p99_us", sy.p99_us}, {"ratio_p50", ratio_sync}}}}
                   .dump(2)
              << "\n";
    return 0;
  }
  std::printf("reproduce: build-release/benchmarks/control_roundtrip --calls %d\n", calls);
  std::printf("%d calls each; request %zu bytes, reply %zu bytes\n", calls, request_bytes,
              reply_bytes);
  std::printf("%-34s %9s %9s %8s\n", "", "p50 us", "p99 us", "x raw");
  std::printf("%-34s %9.1f %9.1f %8s\n", "raw ZeroMQ DEALER->ROUTER", raw.p50_us, raw.p99_us, "1.00");
  std::printf("%-34s %9.1f %9.1f %8.2f\n", "ctl status (one view)", st.p50_us, st.p99_us, ratio_status);
  std::printf("%-34s %9.1f %9.1f %8.2f\n", "ctl sync, no-op (stopped view)", sy.p50_us, sy.p99_us,
              ratio_sync);
  std::printf("goal <= 2.00x raw at p50: status %s, no-op sync %s\n",
              ratio_status <= 2.0 ? "met" : "missed", ratio_sync <= 2.0 ? "met" : "missed");
  return 0;
}
