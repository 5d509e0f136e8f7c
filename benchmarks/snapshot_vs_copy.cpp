// Materializing a PostgreSQL table against PostgreSQL's own COPY, measured in
// one run:
//
//   snapshot_vs_copy [--rows N] [--syncmesh PATH]
//
// starts a throwaway PostgreSQL, fills a table with N rows of mixed columns,
// times `psql -c "COPY (SELECT ...) TO STDOUT" > /dev/null` (the baseline),
// then starts a `syncmesh node` process with a materialized view of the table
// and times one `sync` through the control socket. Prints both times, the
// ratio and the node's peak RSS (VmHWM). Goals: <= 1.5x the COPY time, peak
// RSS under 256 MiB. A measurement, not a test: exit code 0 either way.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <unistd.h>
#include <string>

#include <zmq.hpp>

#include "benchmarks/process_stats.hpp"
#include "scenarios/node_process.hpp"
#include "scenarios/postgres_server.hpp"

namespace fs = std::filesystem;
using namespace syncmesh;
using clock_type = std::chrono::steady_clock;

namespace {

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

} // namespace

int main(int argc, char** argv) {
  long rows = 1'000'000;
  std::string binary = SYNCMESH_BINARY;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--rows") && i + 1 < argc)
      rows = std::max(1000L, std::atol(argv[++i]));
    else if (!std::strcmp(argv[i], "--syncmesh") && i + 1 < argc)
      binary = argv[++i];
  }
  std::printf("reproduce: build-release/benchmarks/snapshot_vs_copy --rows %ld\n", rows);
  auto pg = scenarios::postgres_server::start();
  if (!pg) {
    std::cerr << "snapshot_vs_copy: " << pg.error().message() << "\n";
    return 1;
  }
  auto filled = (*pg)->sql(
    "CREATE TABLE items (id bigint PRIMARY KEY, title text, price numeric(10,2), "
    "created timestamptz, flag boolean, score double precision); "
    "INSERT INTO items SELECT g, 'item number ' || g, g % 10000 * 0.01, "
    "now() - g * interval '1 second', g % 2 = 0, g * 0.5 FROM generate_series(1, "
    + std::to_string(rows) + ") g");
  if (!filled) {
    std::cerr << "snapshot_vs_copy: " << filled.error().message() << "\n";
    return 1;
  }

  // Baseline: psql streaming the same rows to /dev/null.
  auto psql = "psql \"" + (*pg)->conninfo() + "\" -q -c \"COPY (SELECT id, title, price, created, "
              "flag, score FROM public.items) TO STDOUT\" > /dev/null";
  auto t0 = clock_type::now();
  if (std::system(psql.c_str()) != 0) {
    std::cerr << "snapshot_vs_copy: psql failed: " << psql << "\n";
    return 1;
  }
  double copy_s = seconds_since(t0);

  char tmpl[] = "/tmp/syncmesh-bench-XXXXXX";
  if (!::mkdtemp(tmpl))
    return 1;
  std::string dir = tmpl;
  std::string config = "node_id = \"bench\"\ndata_dir = \"" + dir + "/data\"\n"
                       "control_endpoint = \"tcp://127.0.0.1:0\"\nevents_endpoint = \"tcp://127.0.0.1:0\"\n"
                       "durability = \"buffered\"\n\n[[remotes]]\nname = \"pg\"\nkind = \"postgres\"\n"
                       "conninfo = \"" + (*pg)->conninfo() + "\"\n\n[[views]]\nnamespace = \"pg\"\n"
                       "name = \"items\"\npersistence = \"materialized\"\nremote = \"pg\"\n"
                       "source = \"public.items\"\nenabled = false\n";
  zmq::context_t ctx{1};
  auto node = scenarios::node_process::launch(ctx, "bench", binary, dir, config,
                                              std::chrono::seconds(30));
  if (!node) {
    std::cerr << "snapshot_vs_copy: " << node.error().message() << "\n";
    return 1;
  }
  const pid_t pid = (*node)->pid();
  double rss_before = benchmarks::process_peak_rss_mib(pid);
  double cpu_before = benchmarks::process_cpu_seconds(pid);
  t0 = clock_type::now();
  auto r = (*node)->call("resume", {{"selector", {{"pg", {"items"}}}}}, std::chrono::minutes(30));
  double sync_s = seconds_since(t0);
  double rss = benchmarks::process_peak_rss_mib(pid);
  double cpu = benchmarks::process_cpu_seconds(pid) - cpu_before;
  if (!r || r->at(0).value("state", "") != "synced") {
    std::cerr << "snapshot_vs_copy: the sync failed: "
              << (r ? r->dump() : r.error().message()) << "\n";
    return 1;
  }
  (void) (*node)->shutdown();
  fs::remove_all(dir);
  std::printf("%ld rows\n", rows);
  std::printf("psql COPY ... TO STDOUT > /dev/null   %8.2f s\n", copy_s);
  std::printf("syncmesh materialized sync           %8.2f s   %.2fx COPY (goal <= 1.50x: %s)\n",
              sync_s, sync_s / copy_s, sync_s / copy_s <= 1.5 ? "met" : "missed");
  std::printf("node CPU during the sync                %8.2f s   (all threads, user + system)\n",
              cpu);
  std::printf("node peak RSS                        %8.1f MiB (before the sync %.1f; goal < 256: %s)\n",
              rss, rss_before, rss < 256 ? "met" : "missed");
  return 0;
}
