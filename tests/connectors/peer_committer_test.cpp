// The committers the replicator writes its commits through: in order, and
// after a failed batch none of the later ones until resume() (each was
// merged on top of the failed one).

#include <boost/test/unit_test.hpp>

#include <leveldb/env.h>
#include <leveldb/helpers/memenv.h>

#include <atomic>
#include <memory>

#include "connectors/peer/committer.hpp"
#include "store/store.hpp"

using namespace syncmesh;

namespace {

struct mem_store {
  mem_store() : env(leveldb::NewMemEnv(leveldb::Env::Default())) {
    store::options so;
    so.path = "/mem/committer";
    so.node_id = "n";
    so.env = env.get();
    so.durability = store::durability_mode::buffered;
    db = std::move(store::store::open(so)).value();
  }
  std::unique_ptr<leveldb::Env> env;
  std::unique_ptr<store::store> db;
};

store::batch record(const std::string& name, const std::string& value) {
  store::batch b;
  b.ext.emplace_back(name, value);
  return b;
}

/// A batch the store refuses whole, without closing: a change of a table
/// it does not have.
store::batch refused() {
  store::batch b;
  store::change c;
  c.table = "no.such";
  c.op = store::change_op::insert;
  c.key = {store::value::integer(1)};
  c.new_row = store::row{store::value::integer(1)};
  b.changes.push_back(c);
  b.ext.emplace_back("peer/test/refused", "x");
  return b;
}

bool stored(const store::store& db, const std::string& name) {
  auto v = db.ext(name);
  return v && v->has_value();
}

/// The same sequence against either committer: ok; refused, then skipped
/// (or written with it, failing with it); after resume() written again.
void check_failure_stops_later_batches(peer::committer& c, const store::store& db) {
  c.submit(record("peer/test/1", "a"));
  c.wait();
  auto done = c.take_done();
  BOOST_TEST_REQUIRE(done.size() == 1u);
  BOOST_TEST(static_cast<bool>(done[0]));
  c.submit(refused());
  c.submit(record("peer/test/2", "b"));  // merged on top of the refused one
  c.wait();
  done = c.take_done();
  BOOST_TEST_REQUIRE(done.size() == 2u);
  BOOST_TEST(!done[0]);
  BOOST_TEST(!done[1]);
  BOOST_TEST(stored(db, "peer/test/1"));
  BOOST_TEST(!stored(db, "peer/test/refused"));
  BOOST_TEST(!stored(db, "peer/test/2"));  // not written after the failure
  BOOST_TEST(c.take_done().empty());

  c.resume();
  c.submit(record("peer/test/3", "c"));
  c.wait();
  done = c.take_done();
  BOOST_TEST_REQUIRE(done.size() == 1u);
  BOOST_TEST(static_cast<bool>(done[0]));
  BOOST_TEST(stored(db, "peer/test/3"));
}

} // namespace

BOOST_AUTO_TEST_SUITE(peer_committer)

BOOST_AUTO_TEST_CASE(inline_committer_writes_nothing_after_a_failure_until_resumed) {
  mem_store s;
  auto c = peer::inline_committer(*s.db);
  check_failure_stops_later_batches(*c, *s.db);
}

BOOST_AUTO_TEST_CASE(thread_committer_writes_nothing_after_a_failure_until_resumed) {
  mem_store s;
  std::atomic<int> notices{0};
  auto c = peer::thread_committer(*s.db, [&] { ++notices; });
  check_failure_stops_later_batches(*c, *s.db);
  c.reset();  // joins: every notice is given
  BOOST_TEST(notices.load() >= 3);  // one per write: the failed two may be one
}

// Given faster than written, batches go out joined; a record named in
// several ends as the last of them wrote it.
BOOST_AUTO_TEST_CASE(thread_committer_writes_in_order_and_all_before_it_is_destroyed) {
  mem_store s;
  {
    auto c = peer::thread_committer(*s.db, {});
    for (int i = 0; i < 200; ++i)
      c->submit(record("peer/test/k", std::to_string(i)));  // each overwrites the last
  }
  auto v = s.db->ext("peer/test/k");
  BOOST_TEST_REQUIRE(static_cast<bool>(v));
  BOOST_TEST(v->value_or("") == "199");
}

BOOST_AUTO_TEST_SUITE_END()
