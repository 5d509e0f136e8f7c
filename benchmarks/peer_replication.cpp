// Peer sync between two `syncmesh node` processes over ZeroMQ on loopback,
// with its baselines measured in the same run:
//
//  1. catch-up throughput: node a holds N changes; node b starts, dials a
//     and applies them durably: both nodes at the durability given
//     (default "buffered"), the LevelDB baseline likewise (under fsync one
//     synced write per batch, as a raw applier of each received frame).
//     Changes per second from b's start (its process spawned) until b holds
//     all N, which `ctl wait` for the stamp of a's last write says (and,
//     printed beside it, from b's first change on),
//     against the lesser of raw ZeroMQ DEALER->ROUTER throughput for the
//     same number of frames of the same size and raw LevelDB WriteBatch
//     throughput for the same bytes. Goal >= 0.5x that limit. The
//     catch-up runs --rounds times, each into a fresh b followed by its own
//     LevelDB baseline (the host's speed drifts within a minute), and the
//     round with the median ratio stands for the run; every round is
//     printed.
//  2. write-to-visible latency at a steady rate: one-row writes on a (ctl
//     exec), timed from the request until b, where a `wait` for a's next
//     stamp is always pending, answers that it holds the write (readable
//     there then; the answer's one-way trip counts). Goal p50 < 1 ms, p99
//     < 5 ms.
//
//   peer_replication [--changes 50000] [--rounds 5] [--rate 1000] [--seconds 5]
//                    [--durability buffered|fsync] [--peer "key = value"]...
//
// --peer adds a line to both nodes' [peer] section (e.g. "commits_in_flight_max = 1").

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <leveldb/db.h>
#include <leveldb/write_batch.h>
#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "benchmarks/process_stats.hpp"
#include "benchmarks/scratch_dir.hpp"
#include "messaging/control_client.hpp"
#include "messaging/peer_protocol.hpp"
#include "scenarios/node_process.hpp"
#include "store/store.hpp"

using namespace syncmesh;
using clock_type = std::chrono::steady_clock;
using nlohmann::json;

namespace {

[[noreturn]] void fail(const std::string& what) {
  std::cerr << "peer_replication: " << what << "\n";
  std::exit(1);
}

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

std::string table_toml() {
  return "[[tables]]\nname = \"bench.items\"\ncolumns = [ { name = \"id\", type = \"integer\", "
         "key = true }, { name = \"note\", type = \"text\" }, { name = \"qty\", type = "
         "\"integer\" } ]\n\n";
}

std::string peer_extra;  // --peer lines
std::string peer_args;   // the same, as given (for the reproduce line)

/// A `syncmesh node` process in `dir` (its config, log and data/), serving
/// once this returns.
std::unique_ptr<scenarios::node_process> start_node(zmq::context_t& zctx, const std::string& id,
                                                    const std::string& dir,
                                                    const std::string& links,
                                                    store::durability_mode d) {
  std::filesystem::create_directories(dir);
  const auto toml =
    "node_id = \"" + id + "\"\ndata_dir = \"" + dir + "/data\"\n"
    "control_endpoint = \"tcp://127.0.0.1:0\"\nevents_endpoint = \"tcp://127.0.0.1:0\"\n"
    "durability = \"" + std::string(store::to_string(d)) + "\"\nlog_level = \"warn\"\n"
    "query_rows_max = 100000000\n\n" + table_toml()
    + "[peer]\nlisten = \"tcp://127.0.0.1:0\"\n" + peer_extra + "\n" + links;
  auto node = scenarios::node_process::launch(zctx, id, SYNCMESH_BINARY, dir, toml,
                                              std::chrono::seconds(60));
  if (!node)
    fail(node.error().message());
  return std::move(node).value();
}

/// The endpoint node `n` serves under `key` ("control" or "peer").
std::string endpoint_of(const scenarios::node_process& n, const char* key) {
  auto ep = n.endpoint(key);
  if (ep.empty())
    fail("node.json in " + n.dir() + "/data names no " + key + " endpoint");
  return ep;
}

json rows_json(std::int64_t from, std::int64_t n) {
  json rows = json::array();
  for (std::int64_t id = from; id < from + n; ++id)
    rows.push_back({{"id", id}, {"note", "note number " + std::to_string(id)}, {"qty", id % 97}});
  return rows;
}

/// Upserts rows [from, from + n) on a; the stamp of the last one.
std::string write_rows(messaging::control_client& ctl, std::int64_t from, std::int64_t n) {
  auto r = ctl.call("exec", {{"table", "bench.items"}, {"upsert", rows_json(from, n)}});
  if (!r || !r->ok)
    fail("writing on a: " + (r ? r->error : r.error().message()));
  if (!r->result.contains("hlc") || !r->result["hlc"].is_string())
    fail("a's exec reply names no stamp: " + r->result.dump());
  return r->result["hlc"].get<std::string>();
}

/// Returns once the node behind `ctl` holds a's changes up to `hlc`: the
/// newest stamp of a's it holds then.
std::string wait_for(messaging::control_client& ctl, const std::string& hlc) {
  auto r = ctl.call("wait", {{"origin", "a"}, {"hlc", hlc}, {"timeout_ms", 600'000}});
  if (!r || !r->ok)
    fail("waiting on b for a's stamp " + hlc + ": " + (r ? r->error : r.error().message()));
  if (!r->result.contains("held") || !r->result["held"].is_string())
    fail("b's wait reply names no stamp held: " + r->result.dump());
  return r->result["held"].get<std::string>();
}

/// Raw ZeroMQ: `frames` frames of `bytes` bytes DEALER -> ROUTER, counted at
/// the receiver. Frames per second.
double raw_zmq_frames_per_s(std::size_t frames, std::size_t bytes) {
  zmq::context_t ctx{1};
  zmq::socket_t router(ctx, zmq::socket_type::router);
  router.bind("tcp://127.0.0.1:*");
  auto ep = router.get(zmq::sockopt::last_endpoint);
  zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
  dealer.connect(ep);
  std::string payload(bytes, 'p');
  // Make sure the connection is up before timing.
  dealer.send(zmq::buffer(payload), zmq::send_flags::none);
  zmq::message_t id, body;
  (void) router.recv(id);
  (void) router.recv(body);
  auto t0 = clock_type::now();
  std::thread sender([&] {
    for (std::size_t i = 0; i < frames; ++i)
      dealer.send(zmq::buffer(payload), zmq::send_flags::none);
  });
  for (std::size_t i = 0; i < frames; ++i) {
    (void) router.recv(id);
    (void) router.recv(body);
  }
  double s = seconds_since(t0);
  sender.join();
  return static_cast<double>(frames) / s;
}

/// Raw LevelDB: the same rows as WriteBatches of `per_batch` rows, each
/// write synced under fsync, not synced under buffered.
double raw_leveldb_changes_per_s(const std::string& dir, std::size_t changes,
                                 std::size_t per_batch, std::size_t row_bytes,
                                 store::durability_mode d) {
  leveldb::Options o;
  o.create_if_missing = true;
  leveldb::DB* raw = nullptr;
  if (!leveldb::DB::Open(o, dir, &raw).ok())
    fail("cannot open a raw LevelDB in " + dir);
  std::unique_ptr<leveldb::DB> db(raw);
  std::string value(row_bytes, 'v');
  leveldb::WriteOptions wo;
  wo.sync = d == store::durability_mode::fsync;
  auto t0 = clock_type::now();
  for (std::size_t i = 0; i < changes;) {
    leveldb::WriteBatch b;
    for (std::size_t k = 0; k < per_batch && i < changes; ++k, ++i)
      b.Put("R" + std::to_string(i), value);
    if (!db->Write(wo, &b).ok())
      fail("raw LevelDB write failed");
  }
  return static_cast<double>(changes) / seconds_since(t0);
}

struct round_result {
  double serving_s = 0, first_s = 0, catch_up_s = 0, cpu_s = 0;
  double rate = 0, ldb_rate = 0, ratio = 0;
};

struct percentiles {
  double p50 = 0, p99 = 0;
};

percentiles summarize(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  auto at = [&](double p) { return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))]; };
  return {at(0.5), at(0.99)};
}

} // namespace

int main(int argc, char** argv) {
  std::size_t changes = 50'000;
  int rounds = 5;
  int rate = 1000;
  double seconds = 5;
  auto durability = store::durability_mode::buffered;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--changes") && i + 1 < argc)
      changes = std::max<std::size_t>(1000, std::strtoull(argv[++i], nullptr, 10));
    else if (!std::strcmp(argv[i], "--rounds") && i + 1 < argc)
      rounds = std::max(1, std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--rate") && i + 1 < argc)
      rate = std::max(1, std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--seconds") && i + 1 < argc)
      seconds = std::max(1.0, std::atof(argv[++i]));
    else if (!std::strcmp(argv[i], "--durability") && i + 1 < argc) {
      auto d = store::parse_durability(argv[++i]);
      if (!d)
        fail(d.error().message());
      durability = *d;
    } else if (!std::strcmp(argv[i], "--peer") && i + 1 < argc) {
      peer_extra += std::string(argv[++i]) + "\n";
      peer_args += std::string(" --peer '") + argv[i] + "'";
    } else {
      std::cerr << "usage: peer_replication [--changes N] [--rounds K] [--rate R] [--seconds S] "
                   "[--durability buffered|fsync] [--peer \"key = value\"]...\n";
      return 2;
    }
  }
  auto scratch = benchmarks::scratch_dir::create();
  if (!scratch)
    fail(scratch.error().message());
  const auto root = scratch->path();
  const auto latency_ids = static_cast<std::size_t>(rate * seconds);
  zmq::context_t zctx{1};

  // --- 1. catch-up throughput ------------------------------------------------
  auto a = start_node(zctx, "a", root + "/a", "[[links]]\npeer = \"b\"\n", durability);
  messaging::control_client ctl_a(zctx, endpoint_of(*a, "control"),
                                  std::chrono::seconds(60));
  // Row 1 alone, so that its stamp marks b's first change; then the rest.
  const std::string first_hlc = write_rows(ctl_a, 1, 1);
  std::string last_hlc = first_hlc;
  constexpr std::int64_t per_exec = 1000;
  for (std::int64_t id = 2; id <= static_cast<std::int64_t>(changes); id += per_exec)
    last_hlc = write_rows(ctl_a, id,
                          std::min<std::int64_t>(per_exec, static_cast<std::int64_t>(changes) - id + 1));
  // The frames that carry it: deltas of batch_max (128) changes, as sent.
  messaging::peer::delta sample{1, {}};
  for (std::int64_t id = 1; id <= 128; ++id) {
    messaging::peer::change c;
    c.hlc = store::hlc_timestamp(1'700'000'000'000ULL, static_cast<std::uint64_t>(id));
    c.origin = "a";
    c.table = "bench.items";
    c.op = store::change_op::insert;
    c.key = {store::value::integer(id)};
    c.new_row = store::row{store::value::integer(id), store::value::text("note number " + std::to_string(id)),
                           store::value::integer(id % 97)};
    sample.changes.push_back(std::move(c));
  }
  const auto frame_bytes = messaging::peer::encode(sample).size();
  const auto frames = (changes + 127) / 128;
  const double zmq_rate = raw_zmq_frames_per_s(frames, frame_bytes) * 128.0;

  // Each round starts a fresh b process (its own directory), which catches
  // up from a, and then measures the raw LevelDB baseline right after it,
  // so that a round's ratio compares the two under the same load on the host.
  const auto a_link = "[[links]]\npeer = \"a\"\nendpoint = \"" + endpoint_of(*a, "peer")
                      + "\"\n";
  std::unique_ptr<scenarios::node_process> b;
  std::string b_dir;
  std::vector<round_result> results;
  for (int r = 1; r <= rounds; ++r) {
    if (b) {
      (void) b->shutdown();
      b.reset();
      std::filesystem::remove_all(b_dir);
    }
    b_dir = root + "/b" + std::to_string(r);
    round_result res;
    const double cpu_a0 = benchmarks::process_cpu_seconds(a->pid());
    auto t0 = clock_type::now();
    b = start_node(zctx, "b", b_dir, a_link, durability);
    res.serving_s = seconds_since(t0);
    messaging::control_client ctl_b(zctx, endpoint_of(*b, "control"), std::chrono::seconds(660));
    (void) wait_for(ctl_b, first_hlc);
    res.first_s = seconds_since(t0);
    (void) wait_for(ctl_b, last_hlc);
    res.catch_up_s = seconds_since(t0);
    res.cpu_s = benchmarks::process_cpu_seconds(a->pid()) - cpu_a0
                + benchmarks::process_cpu_seconds(b->pid());
    auto held = ctl_b.call("query", {{"view", "bench.items"}, {"limit", changes + 1}});
    if (!held || !held->ok || held->result.value("rows", json::array()).size() != changes)
      fail("b holds a's last stamp but its table answers "
           + (!held ? held.error().message()
              : !held->ok ? held->error
                          : std::to_string(held->result.value("rows", json::array()).size())
                              + " rows, not " + std::to_string(changes)));
    const auto raw_dir = root + "/raw-leveldb" + std::to_string(r);
    res.ldb_rate = raw_leveldb_changes_per_s(raw_dir, changes, 128, frame_bytes / 128, durability);
    std::filesystem::remove_all(raw_dir);
    res.rate = static_cast<double>(changes) / res.catch_up_s;
    res.ratio = res.rate / std::min(zmq_rate, res.ldb_rate);
    std::printf("round %d: catch-up %.3f s = %.0f changes/s (b serving after %.3f s, first "
                "change after %.3f s), %.1f us CPU per change; raw LevelDB %.0f changes/s; %.2fx\n",
                r, res.catch_up_s, res.rate, res.serving_s, res.first_s,
                res.cpu_s * 1e6 / static_cast<double>(changes), res.ldb_rate, res.ratio);
    std::fflush(stdout);
    results.push_back(res);
  }
  // The round with the median ratio stands for the run.
  auto by_ratio = results;
  std::sort(by_ratio.begin(), by_ratio.end(),
            [](const round_result& x, const round_result& y) { return x.ratio < y.ratio; });
  const auto& mid = by_ratio[by_ratio.size() / 2];
  const auto& low = by_ratio.front();
  const auto& high = by_ratio.back();

  // --- 2. write-to-visible latency --------------------------------------------
  // A waiter keeps one `wait` pending at b for the stamp just after the
  // newest of a's that b holds, so b answers as soon as it holds the next
  // write, and notes when each answer arrived and what b held then. The
  // writer (this thread) notes when it sent each write and its stamp. A
  // write was visible at the first answer that held its stamp; the one-way
  // trip of that answer counts.
  const auto stamp_of = [](const std::string& text) {
    auto t = store::hlc_timestamp::parse(text);
    if (!t)
      fail("'" + text + "' is not a stamp");
    return t->packed();
  };
  std::vector<clock_type::time_point> sent(latency_ids);
  std::vector<std::uint64_t> stamps(latency_ids);
  std::vector<std::pair<std::uint64_t, clock_type::time_point>> answers;  // held, when
  std::atomic<std::uint64_t> last_stamp{~0ULL};  // the last measured write's, once written
  std::thread waiter([&] {
    messaging::control_client ctl_b(zctx, endpoint_of(*b, "control"), std::chrono::seconds(660));
    auto held = stamp_of(last_hlc);  // b holds the catch-up
    while (held < last_stamp.load()) {
      held = stamp_of(wait_for(ctl_b, store::hlc_timestamp::from_packed(held + 1).to_string()));
      answers.emplace_back(held, clock_type::now());
    }
  });
  const auto interval = std::chrono::nanoseconds(1'000'000'000 / rate);
  const auto start = clock_type::now();
  for (std::size_t k = 0; k < latency_ids; ++k) {
    std::this_thread::sleep_until(start + interval * static_cast<long>(k));
    sent[k] = clock_type::now();
    stamps[k] = stamp_of(write_rows(ctl_a, static_cast<std::int64_t>(changes + 1 + k), 1));
  }
  last_stamp = stamps.back();
  // A wait pending past the last write is answered by one more.
  (void) write_rows(ctl_a, static_cast<std::int64_t>(changes + latency_ids + 1), 1);
  waiter.join();
  std::vector<double> ms;
  for (std::size_t k = 0; k < latency_ids; ++k) {
    auto it = std::lower_bound(answers.begin(), answers.end(), stamps[k],
                               [](const auto& x, std::uint64_t s) { return x.first < s; });
    if (it == answers.end())
      fail("no answer from b held a's write " + std::to_string(k));
    ms.push_back(std::chrono::duration<double, std::milli>(it->second - sent[k]).count());
  }
  auto lat = summarize(ms);
  (void) b->shutdown();
  (void) a->shutdown();

  const char* mode = store::to_string(durability);
  std::printf("reproduce: build-release/benchmarks/peer_replication --changes %zu --rounds %d "
              "--rate %d --seconds %g --durability %s%s\n",
              changes, rounds, rate, seconds, mode, peer_args.c_str());
  std::printf("catch-up of %zu changes a -> b (durability %s), median of %d rounds: %.2f s = "
              "%.0f changes/s\n",
              changes, mode, rounds, mid.catch_up_s, mid.rate);
  std::printf("  of which b's start until its first change: %.3f s; from then on %.0f changes/s\n",
              mid.first_s, static_cast<double>(changes - 1) / (mid.catch_up_s - mid.first_s));
  std::printf("  CPU of both nodes meanwhile: %.2f s = %.1f us per change\n", mid.cpu_s,
              mid.cpu_s * 1e6 / static_cast<double>(changes));
  std::printf("  raw ZeroMQ, %zu frames of %zu bytes: %.0f changes/s\n", frames, frame_bytes,
              zmq_rate);
  std::printf("  raw LevelDB, batches of 128 rows of %zu bytes%s: %.0f changes/s\n",
              frame_bytes / 128, durability == store::durability_mode::fsync ? ", each synced" : "",
              mid.ldb_rate);
  std::printf("  %.2fx the lesser baseline (rounds %.2fx to %.2fx; goal >= 0.50x: %s)\n", mid.ratio,
              low.ratio, high.ratio, mid.ratio >= 0.5 ? "met" : "missed");
  std::printf("write on a -> readable on b at %d writes/s (%zu writes): p50 %.2f ms, p99 %.2f ms "
              "(goal p50 < 1 ms: %s, p99 < 5 ms: %s)\n",
              rate, latency_ids, lat.p50, lat.p99, lat.p50 < 1 ? "met" : "missed",
              lat.p99 < 5 ? "met" : "missed");
  return 0;
}
