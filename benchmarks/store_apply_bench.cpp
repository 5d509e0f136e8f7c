// Group-committed store::apply() throughput against raw LevelDB WriteBatch
// writes of the same bytes, 8 concurrent writers, at both durabilities.
// Each iteration of a thread is one batch (N fresh rows plus a cursor);
// items_per_second is batches per second over all threads, in real time.
// After the runs the console output ends with the store/raw ratio per
// configuration.
//
// Unless --benchmark_min_time is given, each benchmark runs for at least
// 3 s, as long as one store_vs_raw measurement: shorter runs
// never fill the 16 MiB memtable, so they leave out the memtable flushes and
// L0 compactions that a sustained writer pays for, and their ratios come out
// different (and noisier) than the whole-program figures.

#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <unistd.h>

#include <benchmark/benchmark.h>

#include "benchmarks/scratch_dir.hpp"
#include "benchmarks/workload.hpp"
#include "store/store.hpp"

namespace {

namespace sb = syncmesh::benchmarks;
namespace st = syncmesh::store;

constexpr int writer_threads = 8;
constexpr const char* default_min_time_flag = "--benchmark_min_time=3";
constexpr double ratio_goal = 0.70;
constexpr std::string_view store_name = "BM_store_apply/";
constexpr std::string_view raw_name = "BM_raw_leveldb_write/";

// The database of the run in progress. Thread 0 creates it before the
// benchmark loop and destroys it after; Google Benchmark starts and ends the
// loop of all threads on a barrier, so the other threads only touch it in
// between. Every run (including the iteration-count probes) gets a fresh
// directory.
struct run_state {
  std::optional<sb::scratch_dir> dir;
  std::unique_ptr<st::store> db;
  std::unique_ptr<sb::raw_writer> raw;
  std::string error;
};
run_state current_run;

// Closes the database before its directory is removed.
void end_run() {
  current_run.db.reset();
  current_run.raw.reset();
  current_run.dir.reset();
  current_run.error.clear();
}

bool prepare_dir(benchmark::State& state) {
  end_run();
  auto dir = sb::scratch_dir::create();
  if (!dir) {
    current_run.error = dir.error().to_string();
    state.SkipWithError(current_run.error.c_str());
    return false;
  }
  current_run.dir.emplace(std::move(dir).value());
  return true;
}

void store_apply(benchmark::State& state, st::durability_mode durability) {
  auto rows = static_cast<std::size_t>(state.range(0));
  if (state.thread_index() == 0 && prepare_dir(state)) {
    st::options opts;
    opts.path = current_run.dir->path();
    opts.node_id = sb::bench_node_id;
    opts.durability = durability;
    auto opened = st::store::open(opts);
    st::status created = opened ? (*opened)->create_table(sb::users_schema()) : opened.error();
    if (!created) {
      current_run.error = created.to_string();
      state.SkipWithError(current_run.error.c_str());
    } else {
      current_run.db = std::move(opened).value();
    }
  }
  std::uint64_t batch_index = 0;
  for (auto _ : state) {
    if (!current_run.db) {
      state.SkipWithError("the store did not open");
      break;
    }
    auto b = sb::make_batch(state.thread_index(), batch_index++, rows);
    auto r = current_run.db->apply(b);
    if (!r) {
      state.SkipWithError(r.error().to_string().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0)
    end_run();
}

void raw_leveldb_write(benchmark::State& state, st::durability_mode durability) {
  auto rows = static_cast<std::size_t>(state.range(0));
  if (state.thread_index() == 0 && prepare_dir(state)) {
    auto opened = sb::raw_writer::open(current_run.dir->path(), durability);
    if (!opened) {
      current_run.error = opened.error().to_string();
      state.SkipWithError(current_run.error.c_str());
    } else {
      current_run.raw = std::move(opened).value();
    }
  }
  std::uint64_t batch_index = 0;
  for (auto _ : state) {
    if (!current_run.raw) {
      state.SkipWithError("the baseline database did not open");
      break;
    }
    auto b = sb::make_batch(state.thread_index(), batch_index++, rows);
    if (auto s = current_run.raw->write(b); !s) {
      state.SkipWithError(s.to_string().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0)
    end_run();
}

// The console reporter, followed by one line per configuration that ran both
// ways: store batches/s over raw batches/s (the mean over repetitions).
class ratio_reporter final : public benchmark::ConsoleReporter {
public:
  using benchmark::ConsoleReporter::ConsoleReporter;

  void ReportRuns(const std::vector<Run>& runs) override {
    benchmark::ConsoleReporter::ReportRuns(runs);
    for (const auto& run : runs) {
      if (run.run_type != Run::RT_Iteration || run.error_occurred)
        continue;
      auto counter = run.counters.find("items_per_second");
      if (counter == run.counters.end())
        continue;
      auto& [sum, n] = batches_per_s_[run.benchmark_name()];
      sum += counter->second.value;
      ++n;
    }
  }

  void Finalize() override {
    benchmark::ConsoleReporter::Finalize();
    auto& out = GetOutputStream();
    bool header = false;
    for (const auto& [name, store_rate] : batches_per_s_) {
      if (name.compare(0, store_name.size(), store_name) != 0)
        continue;
      auto config = name.substr(store_name.size());
      auto raw = batches_per_s_.find(std::string(raw_name) + config);
      if (raw == batches_per_s_.end())
        continue;
      auto store_mean = store_rate.first / store_rate.second;
      auto raw_mean = raw->second.first / raw->second.second;
      auto ratio = raw_mean > 0 ? store_mean / raw_mean : 0.0;
      if (!header) {
        out << "\nstore/raw ratio (batches/s), goal >= " << ratio_goal << "\n";
        header = true;
      }
      char line[256];
      std::snprintf(line, sizeof line, "  %-40s store %10.0f  raw %10.0f  ratio %.2f  %s\n",
                    config.c_str(), store_mean, raw_mean, ratio,
                    ratio >= ratio_goal ? "met" : "missed");
      out << line;
    }
    out.flush();
  }

private:
  std::map<std::string, std::pair<double, int>> batches_per_s_;  // sum, count
};

void register_benchmarks() {
  for (auto d : {st::durability_mode::fsync, st::durability_mode::buffered}) {
    auto durability = std::string(st::to_string(d));
    for (auto* b : {benchmark::RegisterBenchmark(
                      (std::string(store_name) + durability).c_str(), store_apply, d),
                    benchmark::RegisterBenchmark(
                      (std::string(raw_name) + durability).c_str(), raw_leveldb_write, d)})
      b->ArgName("rows")->Arg(1)->Arg(16)->Threads(writer_threads)->UseRealTime()->Unit(
        benchmark::kMicrosecond);
  }
}

// The value of flag `--name=value` on the command line, or nullopt.
std::optional<std::string_view> flag_value(int argc, char** argv, std::string_view name) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg.size() > name.size() + 2 && arg.substr(0, 2) == "--"
        && arg.substr(2, name.size()) == name && arg[2 + name.size()] == '=')
      return arg.substr(3 + name.size());
  }
  return std::nullopt;
}

} // namespace

int main(int argc, char** argv) {
  register_benchmarks();
  auto format = flag_value(argc, argv, "benchmark_format");
  bool console = !format || *format == "console";
  std::vector<char*> args(argv, argv + argc);
  std::string min_time = default_min_time_flag;
  if (!flag_value(argc, argv, "benchmark_min_time"))
    args.insert(args.begin() + 1, min_time.data());
  int args_size = static_cast<int>(args.size());
  benchmark::Initialize(&args_size, args.data());
  if (benchmark::ReportUnrecognizedArguments(args_size, args.data()))
    return 1;
  auto base = sb::scratch_dir::default_base();
  benchmark::AddCustomContext("scratch_dir", base + " (" + sb::scratch_dir::filesystem_of(base)
                                               + "; set SYNCMESH_BENCH_DIR to move it)");
  if (console) {
    ratio_reporter reporter{isatty(STDOUT_FILENO) ? benchmark::ConsoleReporter::OO_ColorTabular
                                                  : benchmark::ConsoleReporter::OO_Tabular};
    benchmark::RunSpecifiedBenchmarks(&reporter);
  } else {
    benchmark::RunSpecifiedBenchmarks();
  }
  benchmark::Shutdown();
  return 0;
}
