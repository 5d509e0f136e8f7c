#pragma once

// Shared set-up for the store suites: a store on LevelDB's in-memory Env
// with a manual clock, and the tables the tests write.

#include <memory>
#include <string>

#include <leveldb/env.h>
#include <leveldb/helpers/memenv.h>

#include "store/store.hpp"

namespace syncmesh::store::test {

inline schema users_schema() {
  schema s;
  s.table = "app.users";
  s.columns = {{"id", value_kind::integer, "", false},
               {"name", value_kind::text, "", true},
               {"balance", value_kind::exact, "numeric", true}};
  s.primary_key = {0};
  return s;
}

// Composite key (tenant text, seq integer).
inline schema events_schema() {
  schema s;
  s.table = "app.events";
  s.columns = {{"tenant", value_kind::text, "", false},
               {"seq", value_kind::integer, "", false},
               {"body", value_kind::bytes, "", true}};
  s.primary_key = {0, 1};
  return s;
}

inline row user(std::int64_t id, std::string name, std::string balance = "0") {
  return {value::integer(id), value::text(std::move(name)),
          value::exact("numeric", std::move(balance))};
}

inline change upsert(std::string table, row r) {
  change c;
  c.table = std::move(table);
  c.op = change_op::insert;
  c.new_row = std::move(r);
  return c;
}

inline change erase(std::string table, row key) {
  change c;
  c.table = std::move(table);
  c.op = change_op::remove;
  c.key = std::move(key);
  return c;
}

/// A store in memory. reopen() closes and opens it on the same Env, the way a
/// node restarts on the same data directory.
struct mem_store_fixture {
  mem_store_fixture() : env(leveldb::NewMemEnv(leveldb::Env::Default())), clock(1'700'000'000'000) {
    opts.path = "/mem/store";
    opts.node_id = "node-a";
    opts.env = env.get();
    opts.clock = &clock;
    reopen();
  }

  void reopen() {
    db.reset();
    auto opened = store::open(opts);
    if (!opened)
      throw std::runtime_error(opened.error().to_string());
    db = std::move(opened).value();
  }

  void create_tables() {
    auto st = db->create_table(users_schema());
    if (!st)
      throw std::runtime_error(st.to_string());
    st = db->create_table(events_schema());
    if (!st)
      throw std::runtime_error(st.to_string());
  }

  std::unique_ptr<leveldb::Env> env;
  manual_physical_clock clock;
  options opts;
  std::unique_ptr<store> db;
};

} // namespace syncmesh::store::test
