#include "cli/store_demo.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <thread>
#include <vector>

#include "store/store.hpp"

namespace syncmesh::cli {

namespace fs = std::filesystem;
using namespace syncmesh::store;

namespace {

int fail(const status& st) {
  std::cerr << "syncmesh demo: " << st.to_string() << "\n";
  return 1;
}

schema users_schema() {
  schema s;
  s.table = "demo.users";
  s.columns = {{"id", value_kind::integer, "", false},
               {"name", value_kind::text, "", true},
               {"balance", value_kind::exact, "numeric", true}};
  s.primary_key = {0};
  return s;
}

} // namespace

int run_store_demo(const store_demo_options& o) {
  bool temporary = o.data_dir.empty();
  fs::path dir = o.data_dir;
  if (temporary) {
    char tmpl[] = "/tmp/syncmesh-demo-XXXXXX";
    if (!mkdtemp(tmpl)) {
      std::perror("syncmesh demo: cannot create a temporary directory");
      return 1;
    }
    dir = tmpl;
  }
  auto cleanup = [&] {
    if (temporary) {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  };
  auto say = [&](const std::string& line) {
    if (!o.json)
      std::cout << line << "\n";
  };

  auto dur = parse_durability(o.durability);
  if (!dur)
    return fail(dur.error());
  options opts;
  opts.path = dir.string();
  opts.node_id = "demo-node";
  opts.durability = *dur;

  std::uint64_t total = 0;
  double seconds = 0;
  {
    auto opened = store::store::open(opts);
    if (!opened) {
      cleanup();
      return fail(opened.error());
    }
    auto& db = **opened;
    say("Opened a store at " + dir.string() + " (node '" + db.node_id() + "', durability "
        + to_string(*dur) + ").");
    if (auto st = db.create_table(users_schema()); !st) {
      cleanup();
      return fail(st);
    }
    say("Created table demo.users (id integer primary key, name text, balance numeric).");

    auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    std::vector<status> errors(static_cast<std::size_t>(o.writers));
    for (int w = 0; w < o.writers; ++w) {
      threads.emplace_back([&, w] {
        for (int b = 0; b < o.batches_per_writer; ++b) {
          batch bt;
          std::int64_t id = static_cast<std::int64_t>(w) * 1'000'000 + b;
          bt.changes.push_back({"demo.users", change_op::insert, {},
                                row{value::integer(id), value::text("user-" + std::to_string(id)),
                                    value::exact("numeric", std::to_string(b) + ".50")},
                                std::nullopt, "", std::nullopt, std::nullopt, false});
          bt.cursors.emplace_back("writer-" + std::to_string(w), std::to_string(b));
          auto r = db.apply(bt);
          if (!r) {
            errors[static_cast<std::size_t>(w)] = r.error();
            return;
          }
        }
      });
    }
    for (auto& t : threads)
      t.join();
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    for (const auto& e : errors)
      if (!e) {
        cleanup();
        return fail(e);
      }
    total = static_cast<std::uint64_t>(o.writers) * static_cast<std::uint64_t>(o.batches_per_writer);
    char line[200];
    std::snprintf(line, sizeof line,
                  "%d writers applied %llu batches concurrently in %.2f s (%.0f batches/s); "
                  "each batch held a row and its writer's cursor, group-committed together.",
                  o.writers, static_cast<unsigned long long>(total), seconds,
                  seconds > 0 ? static_cast<double>(total) / seconds : 0.0);
    say(line);
    auto changes = db.read_changes(db.last_seq(), 1);
    if (changes && !changes->empty()) {
      const auto& c = changes->back();
      say("The change log holds " + std::to_string(db.last_seq()) + " entries; the newest is #"
          + std::to_string(c.seq) + ": " + to_string(c.op) + " " + c.table + to_display(c.key)
          + " stamped " + c.hlc.to_string() + " by '" + c.origin + "'.");
    }
  }

  // Reopen: everything acknowledged is still there.
  auto reopened = store::store::open(opts);
  if (!reopened) {
    cleanup();
    return fail(reopened.error());
  }
  auto& db = **reopened;
  auto rows = db.scan("demo.users");
  if (!rows) {
    cleanup();
    return fail(rows.error());
  }
  auto cur = db.cursor("writer-0");
  std::string cursor0 = cur && *cur ? **cur : "";
  say("Reopened the store: " + std::to_string(rows->size()) + " rows in primary-key order, "
      + "first " + (rows->empty() ? "-" : to_display(rows->front())) + ", writer-0's cursor at "
      + cursor0 + ".");
  bool ok = rows->size() == total;
  say(ok ? "Every acknowledged batch survived the reopen."
         : "MISMATCH: expected " + std::to_string(total) + " rows.");
  if (o.json)
    std::cout << "{\"data_dir\":\"" << dir.string() << "\",\"durability\":\"" << to_string(*dur)
              << "\",\"writers\":" << o.writers << ",\"batches\":" << total
              << ",\"seconds\":" << seconds << ",\"rows_after_reopen\":" << rows->size()
              << ",\"last_seq\":" << db.last_seq() << ",\"ok\":" << (ok ? "true" : "false")
              << "}\n";
  reopened->reset();
  cleanup();
  if (temporary)
    say("Removed the temporary directory.");
  return ok ? 0 : 1;
}

} // namespace syncmesh::cli
