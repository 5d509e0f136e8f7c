#include <boost/test/unit_test.hpp>

#include <sys/stat.h>

#include "messaging/curve_keys.hpp"
#include "tests/node/node_process.hpp"

using namespace syncmesh::node_test;

namespace {

unsigned mode_of(const fs::path& p) {
  struct stat st {};
  BOOST_TEST_REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_mode & 0777;
}

} // namespace

BOOST_AUTO_TEST_SUITE(keygen_verb)

BOOST_AUTO_TEST_CASE(keygen_writes_a_loadable_pair_with_the_secret_file_0600) {
  temp_dir dir;
  const fs::path key = dir.path() / "a.key";
  auto r = run({syncmesh_binary(), "keygen", "--out", key.string(), "--json"});
  BOOST_TEST_REQUIRE(r.exit_code == 0, r);
  const json out = r.out_json();
  BOOST_TEST_REQUIRE(out.is_object(), r);
  BOOST_TEST(out["ok"] == true);
  BOOST_TEST(out["secret_key_file"] == key.string());
  BOOST_TEST(out["public_key_file"] == key.string() + ".pub");
  BOOST_TEST(r.out.find("secret_key\"") == std::string::npos, "the secret key is never printed");
  BOOST_TEST(mode_of(key) == 0600u);

  auto pair = syncmesh::messaging::load_curve_key_pair(key.string());
  BOOST_TEST_REQUIRE(pair.is_ok(), pair.error().to_string());
  BOOST_TEST(pair->public_key == out["public_key"].get<std::string>());
  BOOST_TEST(r.out.find(pair->secret_key) == std::string::npos);
  auto pub = syncmesh::messaging::load_curve_public_key(key.string() + ".pub");
  BOOST_TEST_REQUIRE(pub.is_ok(), pub.error().to_string());
  BOOST_TEST(*pub == pair->public_key);
}

BOOST_AUTO_TEST_CASE(keygen_refuses_to_overwrite_without_force) {
  temp_dir dir;
  const fs::path key = dir.path() / "a.key";
  auto first = run({syncmesh_binary(), "keygen", "--out", key.string()});
  BOOST_TEST_REQUIRE(first.exit_code == 0, first);
  BOOST_TEST(first.out.find("Public key: ") != std::string::npos, first);
  const std::string before = read_file(key);

  auto again = run({syncmesh_binary(), "keygen", "--out", key.string()});
  BOOST_TEST(again.exit_code == 1, again);
  BOOST_TEST(again.err.find("already exists; pass --force") != std::string::npos, again);
  BOOST_TEST(read_file(key) == before);

  auto forced = run({syncmesh_binary(), "keygen", "--out", key.string(), "--force"});
  BOOST_TEST_REQUIRE(forced.exit_code == 0, forced);
  BOOST_TEST(read_file(key) != before);
  BOOST_TEST(mode_of(key) == 0600u);
  BOOST_TEST(syncmesh::messaging::load_curve_key_pair(key.string()).is_ok());
}

BOOST_AUTO_TEST_SUITE_END()
