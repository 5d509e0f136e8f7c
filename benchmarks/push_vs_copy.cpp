// A sync view's write path against PostgreSQL's own COPY, measured in one run:
//
//   push_vs_copy [--writes N] [--latency-writes M] [--syncmesh PATH]
//
// starts a throwaway PostgreSQL and a `syncmesh node` process with a sync
// view of a table, then measures
//   1. the baseline: `COPY orders_copy FROM STDIN` of N rows through libpq,
//      rows/s;
//   2. local write latency (exec acknowledged) p50/p99 with the remote up:
//      M single-row inserts through the control socket;
//   3. push throughput: N local writes queued while the view is stopped
//      (exec in chunks of 1,000 rows), then `resume`, until PostgreSQL holds
//      every row and the outbox is empty — rows/s and the ratio to COPY
//      (goal >= 0.5x);
//   4. local write latency p50/p99 with the remote down (PostgreSQL stopped).
// It also prints the CPU seconds the node and each kind of PostgreSQL
// process spent during the drain (from /proc), which says whether the node
// or PostgreSQL is the limit.
// A measurement, not a test: exit code 0 whatever the figures, 1 if a step
// fails.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <libpq-fe.h>
#include <unistd.h>
#include <nlohmann/json.hpp>
#include <zmq.hpp>

#include "scenarios/node_process.hpp"
#include "scenarios/postgres_server.hpp"

namespace fs = std::filesystem;
using namespace syncmesh;
using json = nlohmann::json;
using clock_type = std::chrono::steady_clock;

namespace {

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

[[noreturn]] void fail(const std::string& what) {
  std::cerr << "push_vs_copy: " << what << "\n";
  std::exit(1);
}

std::string title(long i) { return "order number " + std::to_string(i); }

json row(long i) {
  return {{"id", i}, {"title", title(i)}, {"qty", i % 100}, {"price", std::to_string(i % 1000) + ".25"}};
}

// PostgreSQL's COPY FROM STDIN of rows [first, first + n) into `table`, in
// one statement; returns the seconds it took.
double copy_rows(const std::string& conninfo, const std::string& table, long first, long n) {
  PGconn* c = PQconnectdb(conninfo.c_str());
  if (PQstatus(c) != CONNECTION_OK)
    fail(PQerrorMessage(c));
  auto t0 = clock_type::now();
  PGresult* r = PQexec(c, ("COPY " + table + " (id, title, qty, price) FROM STDIN").c_str());
  if (PQresultStatus(r) != PGRES_COPY_IN)
    fail(PQerrorMessage(c));
  PQclear(r);
  std::string chunk;
  for (long i = first; i < first + n; ++i) {
    chunk += std::to_string(i) + '\t' + title(i) + '\t' + std::to_string(i % 100) + '\t'
             + std::to_string(i % 1000) + ".25\n";
    if (chunk.size() > 64 * 1024 || i + 1 == first + n) {
      if (PQputCopyData(c, chunk.data(), static_cast<int>(chunk.size())) != 1)
        fail(PQerrorMessage(c));
      chunk.clear();
    }
  }
  if (PQputCopyEnd(c, nullptr) != 1)
    fail(PQerrorMessage(c));
  r = PQgetResult(c);
  if (PQresultStatus(r) != PGRES_COMMAND_OK)
    fail(PQerrorMessage(c));
  PQclear(r);
  double s = seconds_since(t0);
  PQfinish(c);
  return s;
}

long count_rows(scenarios::postgres_server& pg, const std::string& table) {
  auto r = pg.sql("SELECT count(*) FROM " + table);
  if (!r || r->rows.empty() || r->rows[0].empty() || !r->rows[0][0])
    fail("count(*) failed: " + (r ? std::string("no rows") : r.error().message()));
  return std::atol(r->rows[0][0]->c_str());
}

const json selector = {{"pg", {"orders"}}};

/// CPU seconds (user + system) so far of every running process whose
/// command line starts with "postgres" or names "syncmesh", by the name
/// PostgreSQL shows for it ("postgres: walsender ..." -> "walsender"): where
/// a drain's time goes, which wall time on a two-core machine does not say.
std::map<std::string, double> cpu_by_process() {
  std::map<std::string, double> out;
  const double tick = static_cast<double>(::sysconf(_SC_CLK_TCK));
  for (const auto& e : fs::directory_iterator("/proc")) {
    const auto name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos)
      continue;
    std::ifstream cl(e.path() / "cmdline");
    std::string cmd;
    std::getline(cl, cmd, '\0');
    std::string kind;
    if (cmd.rfind("postgres: ", 0) == 0) {
      std::istringstream words(cmd.substr(10));
      std::string w;
      while (words >> w && kind.empty())
        if (w == "walsender" || w == "checkpointer" || w == "walwriter" || w == "autovacuum"
            || w == "background" || w == "logical")
          kind = w;
      if (kind.empty())
        kind = cmd.find("bench") != std::string::npos || cmd.find("127.0.0.1") != std::string::npos
                 ? "backend"
                 : "other postgres";
    } else if (cmd.find("postgres") != std::string::npos) {
      kind = "postmaster";
    } else if (cmd.find("syncmesh") != std::string::npos && cmd.find("push_vs_copy") == std::string::npos) {
      kind = "syncmesh node";
    } else {
      continue;
    }
    std::ifstream st(e.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(st)), std::istreambuf_iterator<char>());
    auto close = stat.rfind(')');
    if (close == std::string::npos)
      continue;
    std::istringstream fields(stat.substr(close + 2));
    std::string f;
    double ut = 0, stt = 0;
    for (int i = 3; fields >> f; ++i) {
      if (i == 14)
        ut = std::atof(f.c_str());
      if (i == 15) {
        stt = std::atof(f.c_str());
        break;
      }
    }
    out[kind] += (ut + stt) / tick;
  }
  return out;
}

json view_status(scenarios::node_process& node) {
  auto r = node.call("status", {{"selector", selector}});
  if (!r || r->empty())
    fail("status failed: " + (r ? r->dump() : r.error().message()));
  return r->at(0);
}

std::uint64_t pending(scenarios::node_process& node) {
  auto s = view_status(node);
  return s.contains("outbox") ? s["outbox"].value("pending", std::uint64_t{0}) : 0;
}

// Waits (polling status, a measurement's resolution is 5 ms) until the
// outbox is empty and `table` holds `rows` rows; false after `limit`. Sets
// `at` to when the outbox was seen empty: the count that confirms it (a
// new connection and a scan, tens of ms) is not part of the drain.
bool await_drained(scenarios::node_process& node, scenarios::postgres_server& pg,
                   const std::string& table, long rows, std::chrono::seconds limit,
                   clock_type::time_point* at = nullptr) {
  auto deadline = clock_type::now() + limit;
  while (clock_type::now() < deadline) {
    if (pending(node) == 0) {
      auto seen = clock_type::now();
      if (count_rows(pg, table) == rows) {
        if (at)
          *at = seen;
        return true;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

struct latency {
  double p50_ms = 0, p99_ms = 0;
};

// `count` single-row inserts from `first` on, each acknowledged before the
// next is sent.
latency exec_latency(scenarios::node_process& node, long first, long count) {
  std::vector<double> ms;
  ms.reserve(static_cast<std::size_t>(count));
  for (long i = first; i < first + count; ++i) {
    auto t0 = clock_type::now();
    auto r = node.call("exec", {{"view", "pg.orders"}, {"upsert", json::array({row(i)})}});
    ms.push_back(seconds_since(t0) * 1000.0);
    if (!r)
      fail("exec failed: " + r.error().message());
  }
  std::sort(ms.begin(), ms.end());
  auto at = [&](double q) { return ms[static_cast<std::size_t>(q * static_cast<double>(ms.size() - 1))]; };
  return {at(0.50), at(0.99)};
}

} // namespace

int main(int argc, char** argv) {
  long writes = 100'000, latency_writes = 2'000;
  std::string binary = SYNCMESH_BINARY;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--writes") && i + 1 < argc)
      writes = std::max(1000L, std::atol(argv[++i]));
    else if (!std::strcmp(argv[i], "--latency-writes") && i + 1 < argc)
      latency_writes = std::max(100L, std::atol(argv[++i]));
    else if (!std::strcmp(argv[i], "--syncmesh") && i + 1 < argc)
      binary = argv[++i];
    else
      fail(std::string("unknown argument '") + argv[i]
           + "'; use --writes N, --latency-writes M, --syncmesh PATH");
  }
  std::printf("reproduce: build-release/benchmarks/push_vs_copy --writes %ld --latency-writes %ld\n",
              writes, latency_writes);
  auto pg = scenarios::postgres_server::start();
  if (!pg)
    fail(pg.error().message());
  for (const auto* t : {"orders", "orders_copy"})
    if (auto made = (*pg)->sql(std::string("CREATE TABLE ") + t
                               + " (id bigint PRIMARY KEY, title text, qty int, price numeric(10,2))");
        !made)
      fail(made.error().message());

  // 1. The baseline.
  double copy_s = copy_rows((*pg)->conninfo(), "orders_copy", 1, writes);
  double copy_rate = static_cast<double>(writes) / copy_s;

  char tmpl[] = "/tmp/syncmesh-bench-XXXXXX";
  if (!::mkdtemp(tmpl))
    fail("mkdtemp failed");
  std::string dir = tmpl;
  std::string config =
    "node_id = \"bench\"\ndata_dir = \"" + dir + "/data\"\n"
    "control_endpoint = \"tcp://127.0.0.1:0\"\nevents_endpoint = \"tcp://127.0.0.1:0\"\n"
    "durability = \"buffered\"\n\n[[remotes]]\nname = \"pg\"\nkind = \"postgres\"\n"
    "conninfo = \"" + (*pg)->conninfo() + "\"\n\n[[views]]\nnamespace = \"pg\"\n"
    "name = \"orders\"\npersistence = \"sync\"\nremote = \"pg\"\n"
    "source = \"public.orders\"\nenabled = false\n";
  zmq::context_t ctx{1};
  auto node = scenarios::node_process::launch(ctx, "bench", binary, dir, config,
                                              std::chrono::seconds(30));
  if (!node)
    fail(node.error().message());
  auto& n = **node;
  if (auto r = n.call("resume", {{"selector", selector}}, std::chrono::minutes(5)); !r)
    fail("resume failed: " + r.error().message());

  // 2. Latency with the remote up.
  long next = 1;
  auto up = exec_latency(n, next, latency_writes);
  next += latency_writes;
  if (!await_drained(n, **pg, "orders", next - 1, std::chrono::seconds(120)))
    fail("the writes made with the remote up did not reach PostgreSQL within 120 s");

  // 3. Push throughput: queue while stopped, then resume.
  if (auto r = n.call("stop", {{"selector", selector}}); !r)
    fail("stop failed: " + r.error().message());
  auto w0 = clock_type::now();
  for (long i = 0; i < writes; i += 1000) {
    json rows = json::array();
    for (long j = i; j < std::min(writes, i + 1000); ++j)
      rows.push_back(row(next + j));
    if (auto r = n.call("exec", {{"view", "pg.orders"}, {"upsert", rows}}, std::chrono::minutes(1)); !r)
      fail("exec failed: " + r.error().message());
  }
  double local_s = seconds_since(w0);
  next += writes;
  auto cpu0 = cpu_by_process();
  auto t0 = clock_type::now();
  if (auto r = n.call("resume", {{"selector", selector}}, std::chrono::minutes(30)); !r)
    fail("resume failed: " + r.error().message());
  clock_type::time_point drained;
  if (!await_drained(n, **pg, "orders", next - 1, std::chrono::minutes(30), &drained))
    fail("the queued writes did not drain within 30 minutes");
  double push_s = std::chrono::duration<double>(drained - t0).count();
  auto cpu1 = cpu_by_process();
  double push_rate = static_cast<double>(writes) / push_s;

  // 4. Latency with the remote down.
  if (auto s = (*pg)->stop(); !s.is_ok())
    fail(s.message());
  auto down = exec_latency(n, next, latency_writes);

  (void) n.shutdown();
  fs::remove_all(dir);
  std::printf("%ld writes\n", writes);
  std::printf("COPY orders FROM STDIN (libpq)          %8.2f s  %10.0f rows/s\n", copy_s, copy_rate);
  std::printf("local writes queued (exec, 1,000/call)  %8.2f s  %10.0f rows/s\n", local_s,
              static_cast<double>(writes) / local_s);
  std::printf("push drained to PostgreSQL              %8.2f s  %10.0f rows/s  %.2fx COPY (goal >= 0.50x: %s)\n",
              push_s, push_rate, push_rate / copy_rate, push_rate / copy_rate >= 0.5 ? "met" : "missed");
  std::printf("CPU during the drain (s):");
  for (const auto& [kind, s1] : cpu1) {
    auto before = cpu0.count(kind) ? cpu0[kind] : 0.0;
    std::printf(" %s %.2f;", kind.c_str(), s1 - before);
  }
  std::printf("\n");
  std::printf("exec latency, remote up    (%ld writes)  p50 %6.3f ms  p99 %6.3f ms\n", latency_writes,
              up.p50_ms, up.p99_ms);
  std::printf("exec latency, remote down  (%ld writes)  p50 %6.3f ms  p99 %6.3f ms\n", latency_writes,
              down.p50_ms, down.p99_ms);
  return 0;
}
