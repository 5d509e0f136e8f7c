#pragma once

// One throwaway PostgreSQL per test binary, started on first use by the
// main thread (which outlives every test, as postgres_server requires) and
// stopped and removed when the binary exits. Tests that share it use their
// own tables, and nodes with their own ids (slots and publications are
// named for node and view).

#include <memory>

#include <boost/test/unit_test.hpp>

#include "scenarios/postgres_server.hpp"

namespace syncmesh::test {

inline scenarios::postgres_server& shared_postgres() {
  static std::unique_ptr<scenarios::postgres_server> shared = [] {
    auto started = scenarios::postgres_server::start();
    BOOST_REQUIRE_MESSAGE(started.is_ok(), started.error().to_string());
    return std::move(started).value();
  }();
  return *shared;
}

} // namespace syncmesh::test
