#pragma once

#include <memory>

#include <boost/test/unit_test.hpp>

#include <leveldb/env.h>
#include <leveldb/helpers/memenv.h>

#include "fixture.hpp"
#include "store/fault_env.hpp"

namespace syncmesh::store::test {

/// A memory store whose file system can be told to fail, holding one user
/// row ("before") and the cursor src = 10.
struct faulty_store {
  faulty_store()
    : mem(leveldb::NewMemEnv(leveldb::Env::Default())), faults(mem.get()), clock(1'700'000'000'000) {
    opts.path = "/mem/faulty";
    opts.node_id = "node-a";
    opts.env = faults.env();
    opts.clock = &clock;
    reopen();
    BOOST_REQUIRE(db->create_table(users_schema()).is_ok());
    batch b;
    b.changes.push_back(upsert("app.users", user(1, "before")));
    b.cursors.emplace_back("src", "10");
    BOOST_REQUIRE(db->apply(b).is_ok());
  }

  void reopen() {
    db.reset();
    auto r = store::open(opts);
    BOOST_REQUIRE_MESSAGE(r.is_ok(), r.error().to_string());
    db = std::move(r).value();
  }

  std::unique_ptr<leveldb::Env> mem;
  fault_injection faults;
  manual_physical_clock clock;
  options opts;
  std::unique_ptr<store> db;
};

} // namespace syncmesh::store::test
