// Change propagation for a realtime view: an INSERT committed on PostgreSQL
// until the row is readable in the node's store, under a steady commit rate,
// against PostgreSQL's own logical replication of the same commits into a
// second throwaway PostgreSQL subscribed to a publication of the same table.
//
// Both clocks start when the INSERT is sent (autocommit, so that is also its
// commit) on one connection; the node's side stops when the store's change
// log holds the row (a change_follower: the row is readable from then on),
// the subscriber's when an ALWAYS trigger on the subscriber's table has sent
// a NOTIFY for it — delivered only once the apply transaction commits, so
// the row is readable there too. The NOTIFY's trip to this process is part of
// the subscriber's figure; the change follower's wake-up is part of the
// node's.
//
//   propagation_vs_subscriber [--rate 2000] [--seconds 10] [--warmup 1]

#include <sys/select.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <libpq-fe.h>
#include <nlohmann/json.hpp>

#include "actors/node.hpp"
#include "benchmarks/scratch_dir.hpp"
#include "messaging/control_client.hpp"
#include "scenarios/postgres_server.hpp"
#include "store/store.hpp"

using namespace syncmesh;
using clock_type = std::chrono::steady_clock;
using nlohmann::json;

namespace {

struct percentiles {
  double p50_ms = 0;
  double p99_ms = 0;
  double max_ms = 0;
};

percentiles summarize(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  auto at = [&](double p) {
    return ms[static_cast<std::size_t>(p * static_cast<double>(ms.size() - 1))];
  };
  return {at(0.50), at(0.99), ms.back()};
}

[[noreturn]] void fail(const std::string& what) {
  std::cerr << "propagation_vs_subscriber: " << what << "\n";
  std::exit(1);
}

void must(store::result<scenarios::sql_result> r, const std::string& what) {
  if (!r)
    fail(what + ": " + r.error().message());
}

/// Arrival times per id, written by the two watcher threads.
struct arrivals {
  explicit arrivals(std::size_t n) : at(n + 1) {}
  void mark(std::size_t id) {
    if (id < at.size() && at[id] == clock_type::time_point{}) {
      at[id] = clock_type::now();
      seen.fetch_add(1);
    }
  }
  std::vector<clock_type::time_point> at;
  std::atomic<std::size_t> seen{0};
};

} // namespace

int main(int argc, char** argv) {
  int rate = 2000;
  double seconds = 10, warmup = 1;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--rate") && i + 1 < argc)
      rate = std::max(1, std::atoi(argv[++i]));
    else if (!std::strcmp(argv[i], "--seconds") && i + 1 < argc)
      seconds = std::max(1.0, std::atof(argv[++i]));
    else if (!std::strcmp(argv[i], "--warmup") && i + 1 < argc)
      warmup = std::max(0.0, std::atof(argv[++i]));
    else {
      std::cerr << "usage: propagation_vs_subscriber [--rate N] [--seconds S] [--warmup S]\n";
      return 2;
    }
  }
  const auto total = static_cast<std::size_t>(rate * (seconds + warmup));
  const auto skip = static_cast<std::size_t>(rate * warmup);

  auto source = scenarios::postgres_server::start();
  if (!source)
    fail(source.error().message());
  auto replica = scenarios::postgres_server::start();
  if (!replica)
    fail(replica.error().message());
  auto& pub = **source;
  auto& sub = **replica;
  const std::string table = "CREATE TABLE bench (id bigint PRIMARY KEY, note text, at timestamptz)";
  must(pub.sql(table), "creating the source table");
  must(pub.sql("CREATE PUBLICATION pg_own FOR TABLE bench"), "creating the publication");
  must(sub.sql(table), "creating the subscriber's table");
  must(sub.sql("CREATE FUNCTION seen() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
               "PERFORM pg_notify('seen', NEW.id::text); RETURN NEW; END $$; "
               "CREATE TRIGGER seen AFTER INSERT ON bench FOR EACH ROW EXECUTE FUNCTION seen(); "
               "ALTER TABLE bench ENABLE ALWAYS TRIGGER seen"),
       "creating the subscriber's trigger");
  must(sub.sql("CREATE SUBSCRIPTION pg_own CONNECTION '" + pub.conninfo() +
               "' PUBLICATION pg_own"),
       "subscribing");

  auto dir = benchmarks::scratch_dir::create();
  if (!dir)
    fail(dir.error().message());
  auto cfg = actors::parse_node_config(
    "node_id = \"bench\"\ndata_dir = \"" + dir->path() + "\"\n"
    "control_endpoint = \"tcp://127.0.0.1:0\"\nevents_endpoint = \"tcp://127.0.0.1:0\"\n"
    "durability = \"buffered\"\n\n[[remotes]]\nname = \"pg\"\nkind = \"postgres\"\n"
    "conninfo = \"" + pub.conninfo() + "\"\n\n[[views]]\nnamespace = \"pg\"\n"
    "name = \"bench\"\npersistence = \"realtime\"\nremote = \"pg\"\nsource = \"public.bench\"\n",
    "bench.toml");
  if (!cfg)
    fail(cfg.error().message());
  auto node = actors::node::start(*cfg);
  if (!node)
    fail(node.error().message());

  zmq::context_t zctx{1};
  messaging::control_client control(zctx, (*node)->control_endpoint(), std::chrono::seconds(10));
  auto await = [&](const std::string& what, auto ready) {
    std::fprintf(stderr, "propagation_vs_subscriber: waiting for %s\n", what.c_str());
    auto deadline = clock_type::now() + std::chrono::seconds(60);
    while (!ready()) {
      if (clock_type::now() > deadline)
        fail("gave up waiting for " + what);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // a benchmark's set-up
    }
  };
  await("the realtime view to follow its stream", [&] {
    auto r = control.call("status", json::object());
    return r && r->ok && r->result.at(0).value("streaming", false);
  });
  await("the subscription to finish its initial copy", [&] {
    auto r = sub.sql("SELECT count(*) FROM pg_subscription_rel WHERE srsubstate <> 'r'");
    return r && !r->rows.empty() && r->rows[0][0] == std::optional<std::string>("0");
  });

  arrivals node_seen(total), sub_seen(total);
  std::atomic<bool> done{false};

  // The node: follow the store's change log from where it is now.
  std::shared_ptr<store::store> db = (*node)->store();
  std::thread follow_node([&] {
    store::change_follower follower(*db, db->last_seq() + 1);
    while (!done) {
      auto batch = follower.next(1024, clock_type::now() + std::chrono::milliseconds(100));
      if (!batch)
        fail("reading the node's change log: " + batch.error().message());
      for (const auto& c : *batch)
        if (c.table == "pg.bench" && c.new_row && !c.new_row->empty() &&
            c.new_row->front().kind() == store::value_kind::integer)
          node_seen.mark(static_cast<std::size_t>(c.new_row->front().as_int()));
    }
  });

  // The subscriber: LISTEN for the trigger's notifications.
  PGconn* listener = PQconnectdb(sub.conninfo().c_str());
  if (PQstatus(listener) != CONNECTION_OK)
    fail(std::string("connecting to the subscriber: ") + PQerrorMessage(listener));
  PQclear(PQexec(listener, "LISTEN seen"));
  std::thread follow_sub([&] {
    int fd = PQsocket(listener);
    while (!done) {
      fd_set in;
      FD_ZERO(&in);
      FD_SET(fd, &in);
      timeval tv{0, 100'000};
      if (::select(fd + 1, &in, nullptr, nullptr, &tv) <= 0)
        continue;
      PQconsumeInput(listener);
      while (PGnotify* n = PQnotifies(listener)) {
        sub_seen.mark(static_cast<std::size_t>(std::strtoull(n->extra, nullptr, 10)));
        PQfreemem(n);
      }
    }
  });

  // The load: one INSERT per commit, paced to `rate` commits per second.
  PGconn* writer = PQconnectdb(pub.conninfo().c_str());
  if (PQstatus(writer) != CONNECTION_OK)
    fail(std::string("connecting to the source: ") + PQerrorMessage(writer));
  PQclear(PQprepare(writer, "ins", "INSERT INTO bench VALUES ($1::bigint, 'steady', now())", 1,
                    nullptr));
  std::vector<clock_type::time_point> sent(total + 1);
  const auto interval = std::chrono::nanoseconds(1'000'000'000 / rate);
  const auto start = clock_type::now();
  std::size_t late = 0;
  for (std::size_t id = 1; id <= total; ++id) {
    auto due = start + interval * static_cast<long>(id - 1);
    if (clock_type::now() < due)
      std::this_thread::sleep_until(due);
    else if (clock_type::now() - due > std::chrono::milliseconds(5))
      ++late;
    auto text = std::to_string(id);
    const char* params[] = {text.c_str()};
    sent[id] = clock_type::now();
    PGresult* r = PQexecPrepared(writer, "ins", 1, params, nullptr, nullptr, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
      fail(std::string("INSERT failed: ") + PQerrorMessage(writer));
    PQclear(r);
  }
  const double achieved =
    static_cast<double>(total) / std::chrono::duration<double>(clock_type::now() - start).count();
  await("both sides to hold every row", [&] {
    return node_seen.seen.load() >= total && sub_seen.seen.load() >= total;
  });
  done = true;
  follow_node.join();
  follow_sub.join();
  PQfinish(writer);
  PQfinish(listener);
  (*node)->stop();

  std::vector<double> node_ms, sub_ms;
  for (std::size_t id = skip + 1; id <= total; ++id) {
    node_ms.push_back(std::chrono::duration<double, std::milli>(node_seen.at[id] - sent[id]).count());
    sub_ms.push_back(std::chrono::duration<double, std::milli>(sub_seen.at[id] - sent[id]).count());
  }
  auto n = summarize(node_ms), s = summarize(sub_ms);
  std::printf("reproduce: build-release/benchmarks/propagation_vs_subscriber --rate %d --seconds %g\n",
              rate, seconds);
  std::printf("%zu commits measured (after %zu warm-up), %.0f commits/s achieved (asked %d, "
              "%zu sent over 5 ms late)\n",
              node_ms.size(), skip, achieved, rate, late);
  std::printf("%-44s %9s %9s %9s\n", "commit -> readable", "p50 ms", "p99 ms", "max ms");
  std::printf("%-44s %9.2f %9.2f %9.2f\n", "PostgreSQL subscriber (second server)", s.p50_ms,
              s.p99_ms, s.max_ms);
  std::printf("%-44s %9.2f %9.2f %9.2f\n", "syncmesh realtime view (node store)", n.p50_ms,
              n.p99_ms, n.max_ms);
  std::printf("goal p99 <= subscriber's p99: %s (%.2fx)\n", n.p99_ms <= s.p99_ms ? "met" : "missed",
              n.p99_ms / s.p99_ms);
  return 0;
}
