// store_vs_raw: one whole-program measurement of group-committed
// store::apply() throughput against raw LevelDB WriteBatch writes of the
// same bytes (see raw_writer), for durability fsync and buffered, with the
// same writers, rows per batch and duration. Prints batches/s of both and
// the ratio store/raw against the goal of 0.70. The exit code is 0 whatever
// the ratio: this is a measurement, not a test; 1 means it could not be
// made, 2 a bad command line, 130 an interrupt (SIGINT/SIGTERM).

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <leveldb/db.h>

#include "benchmarks/scratch_dir.hpp"
#include "benchmarks/workload.hpp"
#include "store/store.hpp"

#ifndef SYNCMESH_BUILD_TYPE
#define SYNCMESH_BUILD_TYPE "unknown"
#endif

namespace {

namespace fs = std::filesystem;
namespace sb = syncmesh::benchmarks;
namespace st = syncmesh::store;

constexpr double ratio_goal = 0.70;
// Other processes using more than this many cores during a measurement
// make its figures suspect.
constexpr double disturbed_cores = 0.15;
constexpr double seconds_max = 3600;
constexpr int writers_max = 256;
constexpr auto interrupt_poll = std::chrono::milliseconds(50);
constexpr int exit_interrupted = 130;

// Set by SIGINT/SIGTERM: the running measurement stops early and the
// scratch databases are removed before the program exits.
volatile sig_atomic_t interrupted = 0;

void on_interrupt(int) { interrupted = 1; }

struct config {
  double seconds = 3;
  int writers = 8;
  std::size_t rows = 1;
  bool json = false;
  std::vector<st::durability_mode> durabilities{st::durability_mode::fsync,
                                                st::durability_mode::buffered};
  std::string dir;  // scratch base; empty: scratch_dir::default_base()
};

const char* usage =
  "usage: store_vs_raw [--seconds S] [--writers W] [--rows N] [--json] [--dir D]\n"
  "                    [--durability fsync|buffered|both]\n"
  "  --seconds S  how long each measurement (raw or store, per durability) runs (default 3)\n"
  "  --writers W  concurrent writer threads (default 8)\n"
  "  --rows N     rows per batch; every batch also carries its writer's cursor (default 1)\n"
  "  --json       print one JSON object instead of the table\n"
  "  --durability which durabilities to measure (default both: fsync, then buffered)\n"
  "  --dir D      where the scratch databases go (default: $SYNCMESH_BENCH_DIR, else the\n"
  "               temporary directory unless it is tmpfs, else the current directory)\n";

std::optional<config> parse_args(int argc, char** argv, std::string& error) {
  config c;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto next = [&]() -> std::optional<std::string> {
      if (i + 1 >= argc) {
        error = arg + " needs a value";
        return std::nullopt;
      }
      return std::string(argv[++i]);
    };
    try {
      if (arg == "--json") {
        c.json = true;
      } else if (arg == "--seconds") {
        auto v = next();
        if (!v)
          return std::nullopt;
        c.seconds = std::stod(*v);
        if (!(c.seconds > 0 && c.seconds <= seconds_max)) {
          error = "--seconds must be more than 0 and at most 3600";
          return std::nullopt;
        }
      } else if (arg == "--writers") {
        auto v = next();
        if (!v)
          return std::nullopt;
        c.writers = std::stoi(*v);
        if (c.writers < 1 || c.writers > writers_max) {
          error = "--writers must be between 1 and 256";
          return std::nullopt;
        }
      } else if (arg == "--rows") {
        auto v = next();
        if (!v)
          return std::nullopt;
        auto rows = std::stol(*v);
        if (rows < 1 || static_cast<std::size_t>(rows) > sb::rows_per_batch_max) {
          error = "--rows must be between 1 and " + std::to_string(sb::rows_per_batch_max);
          return std::nullopt;
        }
        c.rows = static_cast<std::size_t>(rows);
      } else if (arg == "--durability") {
        auto v = next();
        if (!v)
          return std::nullopt;
        if (*v == "both") {
          c.durabilities = {st::durability_mode::fsync, st::durability_mode::buffered};
        } else {
          auto d = st::parse_durability(*v);
          if (!d) {
            error = d.error().message();
            return std::nullopt;
          }
          c.durabilities = {*d};
        }
      } else if (arg == "--dir") {
        auto v = next();
        if (!v)
          return std::nullopt;
        c.dir = *v;
      } else if (arg == "--help" || arg == "-h") {
        std::cout << usage;
        std::exit(0);
      } else {
        error = "unknown argument '" + arg + "'";
        return std::nullopt;
      }
    } catch (const std::exception&) {
      error = arg + " needs a number";
      return std::nullopt;
    }
  }
  if (c.dir.empty())
    c.dir = sb::scratch_dir::default_base();
  std::error_code ec;
  if (!fs::is_directory(c.dir, ec)) {
    error = "--dir '" + c.dir + "' is not an existing directory";
    return std::nullopt;
  }
  return c;
}

struct measurement {
  std::uint64_t batches = 0;
  double seconds = 0;
  double cpu_seconds = 0;  // of the whole process, LevelDB's compaction thread included
  double machine_busy_seconds = 0;  // of all CPUs, every process included
  double batches_per_s() const { return seconds > 0 ? static_cast<double>(batches) / seconds : 0; }
  double cores_busy() const { return seconds > 0 ? cpu_seconds / seconds : 0; }
  /// Cores other processes kept busy meanwhile; much above 0 means the
  /// figure was disturbed and should be measured again.
  double other_cores_busy() const {
    return seconds > 0 && machine_busy_seconds > cpu_seconds
             ? (machine_busy_seconds - cpu_seconds) / seconds
             : 0;
  }
};

double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// CPU time all CPUs spent outside idle and iowait since boot, from
// /proc/stat; 0 if it cannot be read.
double machine_busy_seconds() {
  std::ifstream in{"/proc/stat"};
  std::string cpu;
  unsigned long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0,
                     softirq = 0, steal = 0;
  if (!(in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal)
      || cpu != "cpu")
    return 0;
  auto ticks_per_s = sysconf(_SC_CLK_TCK);
  if (ticks_per_s <= 0)
    return 0;
  return static_cast<double>(user + nice + system + irq + softirq + steal)
         / static_cast<double>(ticks_per_s);
}

using write_fn = std::function<st::status(const st::batch&)>;

// Runs `c.writers` threads that each write make_batch() batches through
// `write` back to back for `c.seconds`. The clock starts when all threads
// are released together and stops when the last one has returned, so the
// batches in flight at the deadline count and so does their time.
st::result<measurement> drive(const config& c, const write_fn& write) {
  std::mutex mu;
  std::condition_variable cv;
  int ready = 0;
  bool go = false;
  std::atomic<bool> stop{false};
  std::vector<std::uint64_t> counts(static_cast<std::size_t>(c.writers), 0);
  std::vector<st::status> errors(static_cast<std::size_t>(c.writers));
  std::vector<std::thread> threads;
  for (int w = 0; w < c.writers; ++w)
    threads.emplace_back([&, w] {
      auto slot = static_cast<std::size_t>(w);
      {
        std::unique_lock<std::mutex> lock{mu};
        ++ready;
        cv.notify_all();
        cv.wait(lock, [&] { return go; });
      }
      std::uint64_t n = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        auto b = sb::make_batch(w, n, c.rows);
        if (auto s = write(b); !s) {
          errors[slot] = s;
          break;
        }
        ++n;
      }
      counts[slot] = n;
    });
  {
    std::unique_lock<std::mutex> lock{mu};
    cv.wait(lock, [&] { return ready == c.writers; });
    go = true;
  }
  auto start = std::chrono::steady_clock::now();
  auto cpu_start = process_cpu_seconds();
  auto machine_start = machine_busy_seconds();
  cv.notify_all();
  auto deadline = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                            std::chrono::duration<double>(c.seconds));
  while (!interrupted && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(
      std::min<std::chrono::steady_clock::duration>(interrupt_poll,
                                                    deadline - std::chrono::steady_clock::now()));
  stop = true;
  for (auto& t : threads)
    t.join();
  measurement m;
  m.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  m.cpu_seconds = process_cpu_seconds() - cpu_start;
  m.machine_busy_seconds = machine_busy_seconds() - machine_start;
  if (interrupted)
    return st::status::closed("interrupted");
  for (std::size_t i = 0; i < counts.size(); ++i) {
    if (!errors[i])
      return errors[i];
    m.batches += counts[i];
  }
  return m;
}

st::result<measurement> measure_raw(const config& c, st::durability_mode d) {
  auto dir = sb::scratch_dir::create(c.dir);
  if (!dir)
    return dir.error();
  auto raw = sb::raw_writer::open(dir->path(), d);
  if (!raw)
    return raw.error();
  auto& w = **raw;
  return drive(c, [&](const st::batch& b) { return w.write(b); });
}

st::result<measurement> measure_store(const config& c, st::durability_mode d) {
  auto dir = sb::scratch_dir::create(c.dir);
  if (!dir)
    return dir.error();
  st::options opts;
  opts.path = dir->path();
  opts.node_id = sb::bench_node_id;
  opts.durability = d;
  auto opened = st::store::open(opts);
  if (!opened)
    return opened.error();
  auto& db = **opened;
  if (auto s = db.create_table(sb::users_schema()); !s)
    return s;
  return drive(c, [&](const st::batch& b) { return db.apply(b).error(); });
}

std::string self_path(const char* argv0) {
  std::error_code ec;
  auto p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(argv0) : p.string();
}

std::string cpu_model() {
  std::ifstream in{"/proc/cpuinfo"};
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      auto colon = line.find(':');
      if (colon != std::string::npos && colon + 2 <= line.size())
        return line.substr(colon + 2);
    }
  return "unknown CPU";
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\')
      out.push_back('\\');
    out.push_back(ch);
  }
  return out + "\"";
}

struct outcome {
  st::durability_mode durability;
  measurement raw;
  measurement store;
  double ratio() const {
    return raw.batches_per_s() > 0 ? store.batches_per_s() / raw.batches_per_s() : 0;
  }
};

} // namespace

int main(int argc, char** argv) {
  std::string error;
  auto parsed = parse_args(argc, argv, error);
  if (!parsed) {
    std::cerr << "store_vs_raw: " << error << "\n" << usage;
    return 2;
  }
  const auto& c = *parsed;
  signal(SIGINT, on_interrupt);
  signal(SIGTERM, on_interrupt);

  std::ostringstream command;
  command << self_path(argv[0]) << " --seconds " << c.seconds << " --writers " << c.writers
          << " --rows " << c.rows << " --durability "
          << (c.durabilities.size() == 1 ? st::to_string(c.durabilities.front()) : "both")
          << " --dir " << c.dir << (c.json ? " --json" : "");
  auto cores = std::thread::hardware_concurrency();
  auto filesystem = sb::scratch_dir::filesystem_of(c.dir);
  std::ostringstream leveldb_version;
  leveldb_version << leveldb::kMajorVersion << "." << leveldb::kMinorVersion;

  if (!c.json) {
    std::cout << "# reproduce: " << command.str() << "\n"
              << "# machine: " << cores << " cores (" << cpu_model() << "), scratch dir "
              << c.dir << " on " << filesystem << ", leveldb " << leveldb_version.str()
              << ", build " << SYNCMESH_BUILD_TYPE << "\n"
              << "# " << c.writers << " writers, " << c.rows
              << " row(s) + 1 cursor per batch, " << c.seconds
              << " s per measurement, raw baseline first\n\n";
    std::printf("%-10s %14s %16s %7s  %-20s %-21s %s\n", "durability", "raw batches/s",
                "store batches/s", "ratio", "goal", "cores busy raw/store",
                "other processes");
    std::fflush(stdout);
  }

  std::vector<outcome> outcomes;
  for (auto d : c.durabilities) {
    auto raw = measure_raw(c, d);
    if (interrupted)
      return exit_interrupted;
    if (!raw) {
      std::cerr << "store_vs_raw: the raw baseline failed: " << raw.error().to_string() << "\n";
      return 1;
    }
    auto store = measure_store(c, d);
    if (interrupted)
      return exit_interrupted;
    if (!store) {
      std::cerr << "store_vs_raw: the store failed: " << store.error().to_string() << "\n";
      return 1;
    }
    outcomes.push_back({d, *raw, *store});
    const auto& o = outcomes.back();
    if (!c.json) {
      char goal[64];
      std::snprintf(goal, sizeof goal, "goal >= %.2f: %s", ratio_goal,
                    o.ratio() >= ratio_goal ? "met" : "missed");
      char busy[32];
      std::snprintf(busy, sizeof busy, "%.2f/%.2f", o.raw.cores_busy(), o.store.cores_busy());
      auto other = std::max(o.raw.other_cores_busy(), o.store.other_cores_busy());
      std::printf("%-10s %14.0f %16.0f %7.2f  %-20s %-21s %.2f cores%s\n", st::to_string(d),
                  o.raw.batches_per_s(), o.store.batches_per_s(), o.ratio(), goal, busy, other,
                  other > disturbed_cores ? " (disturbed: measure again)" : "");
      std::fflush(stdout);
    }
  }

  if (c.json) {
    std::cout << "{\"command\":" << json_string(command.str()) << ",\"cores\":" << cores
              << ",\"cpu\":" << json_string(cpu_model()) << ",\"scratch_dir\":"
              << json_string(c.dir) << ",\"filesystem\":" << json_string(filesystem)
              << ",\"leveldb\":" << json_string(leveldb_version.str())
              << ",\"build\":" << json_string(SYNCMESH_BUILD_TYPE) << ",\"writers\":" << c.writers
              << ",\"rows_per_batch\":" << c.rows << ",\"seconds_per_measurement\":" << c.seconds
              << ",\"goal_ratio\":" << ratio_goal << ",\"results\":[";
    for (std::size_t i = 0; i < outcomes.size(); ++i) {
      const auto& o = outcomes[i];
      std::cout << (i ? "," : "") << "{\"durability\":\"" << st::to_string(o.durability)
                << "\",\"raw_batches\":" << o.raw.batches << ",\"raw_seconds\":" << o.raw.seconds
                << ",\"raw_batches_per_s\":" << o.raw.batches_per_s()
                << ",\"raw_cores_busy\":" << o.raw.cores_busy()
                << ",\"raw_other_cores_busy\":" << o.raw.other_cores_busy()
                << ",\"store_batches\":" << o.store.batches
                << ",\"store_seconds\":" << o.store.seconds
                << ",\"store_batches_per_s\":" << o.store.batches_per_s()
                << ",\"store_cores_busy\":" << o.store.cores_busy()
                << ",\"store_other_cores_busy\":" << o.store.other_cores_busy()
                << ",\"ratio\":" << o.ratio()
                << ",\"goal_met\":" << (o.ratio() >= ratio_goal ? "true" : "false") << "}";
    }
    std::cout << "]}\n";
  }
  return 0;
}
