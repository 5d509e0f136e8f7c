// Bad input on a peer link: a peer that sends malformed, truncated,
// oversized, unknown and wrong-version frames, changes for a table the
// node does not have, and changes whose key is not their row's. Each is answered (an `error` frame, a nack, or the
// link closed for a version mismatch) and counted; the node keeps serving
// its other links.

#include <msgpack.hpp>

#include "tests/connectors/peer_cluster.hpp"

using namespace syncmesh;
using namespace syncmesh::test;
namespace wire = messaging::peer;

namespace {

std::string frame_of(std::initializer_list<std::uint64_t> head) {
  msgpack::sbuffer buf;
  msgpack::packer<msgpack::sbuffer> pk(buf);
  pk.pack_array(static_cast<std::uint32_t>(head.size()));
  for (auto v : head)
    pk.pack_uint64(v);
  return {buf.data(), buf.size()};
}

/// An insert made on "evil", its `n`th.
wire::change evil_insert(std::uint64_t n, const std::string& table, store::row key,
                         store::row values) {
  wire::change c;
  c.hlc = store::hlc_timestamp(1'700'000'000'000ULL, n);
  c.origin = "evil";
  c.table = table;
  c.op = store::change_op::insert;
  c.key = std::move(key);
  c.new_row = std::move(values);
  return c;
}

} // namespace

BOOST_AUTO_TEST_SUITE(peer_bad_input)

BOOST_AUTO_TEST_CASE(bad_frames_are_answered_and_counted_and_other_links_keep_syncing) {
  cluster c({{"hub", {link("a"), link("evil")}}, {"a", {link("hub", true)}}});
  raw_peer evil(c, "evil");
  auto& hub = c.nodes["hub"];
  BOOST_TEST_REQUIRE(evil.linked);

  const auto hello = wire::encode(wire::hello{"evil", wire::link_mode::bidirectional, {}});
  evil.send(hello);
  evil.send("\xc1");                                  // not MessagePack
  evil.send(hello.substr(0, hello.size() - 2));       // truncated
  evil.send(frame_of({1, 99}));                       // unknown message type
  evil.send(std::string(wire::limits{}.frame_bytes_max + 1, '\x90'));  // oversized
  auto errors = evil.errors();
  BOOST_REQUIRE_EQUAL(errors.size(), 4u);
  BOOST_TEST((errors[0].code == wire::error_code::malformed_frame));
  BOOST_TEST((errors[1].code == wire::error_code::malformed_frame));
  BOOST_TEST((errors[2].code == wire::error_code::unknown_message));
  BOOST_TEST((errors[3].code == wire::error_code::frame_too_large));
  for (const auto& e : errors) {
    BOOST_TEST(!e.fatal);
    BOOST_TEST(!e.message.empty());
  }
  BOOST_TEST(hub.link("evil").frames_refused == 4u);
  BOOST_TEST(evil.linked);  // frames are whole: the next one may be fine

  // A delta for a table the hub does not have: nacked with a sentence.
  auto ghost = evil_insert(1, "app.ghosts", {value::integer(1)}, {value::integer(1)});
  evil.send(wire::encode(wire::delta{1, {ghost}}));
  auto nacks = evil.nacks();
  BOOST_REQUIRE_EQUAL(nacks.size(), 1u);
  BOOST_TEST((nacks[0].reason == wire::nack_reason::unknown_table));
  BOOST_TEST(nacks[0].message.find("app.ghosts") != std::string::npos);
  BOOST_TEST(hub.link("evil").nacked == 1u);

  // A key that is not its row's (the merge state and the stored row would
  // be two rows), and a key of the wrong shape: nacked, nothing stored.
  auto other_key = evil_insert(2, "app.notes", {value::integer(7)},
                               {value::integer(8), value::text("b"), value::null()});
  auto wide_key = other_key;
  wide_key.key = {value::integer(8), value::text("x")};
  evil.send(wire::encode(wire::delta{2, {other_key, wide_key}}));
  c.sched.advance(100);
  nacks = evil.nacks();
  BOOST_REQUIRE_EQUAL(nacks.size(), 2u);
  BOOST_TEST((nacks[1].reason == wire::nack_reason::invalid_change));
  BOOST_TEST(nacks[1].message.find("key") != std::string::npos);
  BOOST_TEST(nacks[1].message.find("and 1 more refused") != std::string::npos);
  BOOST_TEST(hub.link("evil").nacked == 3u);
  BOOST_TEST(hub.rows() == 0u);

  // Through all of it the hub's link to a kept syncing.
  c.nodes["a"].write(1);
  c.sched.advance(500);
  BOOST_TEST(hub.rows() == 1u);
  hub.write(2);
  c.sched.advance(500);
  BOOST_TEST(c.nodes["a"].rows() == 2u);
}

BOOST_AUTO_TEST_CASE(a_frame_of_another_protocol_version_closes_the_link_naming_both_versions) {
  cluster c({{"hub", {link("a"), link("evil")}}, {"a", {link("hub", true)}}});
  raw_peer evil(c, "evil");
  auto& hub = c.nodes["hub"];
  evil.send(frame_of({2, 12, 7}));  // a ping of syncmesh/2
  c.sched.advance(200);             // the hub closes the link after its answer
  auto errors = evil.errors();
  BOOST_REQUIRE_EQUAL(errors.size(), 1u);
  BOOST_TEST((errors[0].code == wire::error_code::version_mismatch));
  BOOST_TEST(errors[0].fatal);
  BOOST_TEST(errors[0].message.find('1') != std::string::npos);
  BOOST_TEST(errors[0].message.find('2') != std::string::npos);
  BOOST_TEST(!evil.linked);  // nothing else on the link can be read
  BOOST_TEST(hub.link("evil").frames_refused == 1u);
  BOOST_TEST((hub.link("a").state == peer::link_state::live));
  c.nodes["a"].write(1);
  c.sched.advance(500);
  BOOST_TEST(hub.rows() == 1u);
}

BOOST_AUTO_TEST_SUITE_END()
