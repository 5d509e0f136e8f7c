#include <boost/test/unit_test.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <system_error>
#include <vector>

#include <msgpack.hpp>

#include "messaging/peer_protocol.hpp"
#include "tests/messaging/peer_message_gen.hpp"
#include "tests/store/seed.hpp"

namespace peer = syncmesh::messaging::peer;
using syncmesh::messaging::errc;
using syncmesh::store::change_op;
using syncmesh::store::hlc_timestamp;
using syncmesh::store::row;
using syncmesh::store::value;

namespace {

const peer::limits defaults{};

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string hex(const std::string& bytes) {
  static const char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

// Writes MessagePack by hand, for frames the encoder would never write.
class mp {
public:
  mp& array(std::uint32_t n) { return pk_.pack_array(n), *this; }
  mp& map(std::uint32_t n) { return pk_.pack_map(n), *this; }
  mp& u(std::uint64_t v) { return pk_.pack_uint64(v), *this; }
  mp& i(std::int64_t v) { return pk_.pack_int64(v), *this; }
  mp& s(const std::string& v) { return pk_.pack(v), *this; }
  mp& b(bool v) { return pk_.pack(v), *this; }
  mp& nil() { return pk_.pack_nil(), *this; }
  mp& f32(float v) {
    // msgpack-cxx writes an integral float as an integer; 1.5 stays float32.
    return pk_.pack_float(v), *this;
  }
  mp& raw(const std::string& bytes) { return buf_.write(bytes.data(), bytes.size()), *this; }
  // The frame envelope [1, type, ...] with `fields` fields to follow.
  mp& head(std::uint64_t type, std::uint32_t fields) { return array(2 + fields).u(1).u(type); }
  // A valid change: [hlc, origin, table, op, key, new_row].
  mp& insert_change() {
    return array(7).u(7).s("a").s("t").u(1).array(1).i(1).array(1).i(1).array(0);
  }
  std::string str() const { return std::string(buf_.data(), buf_.size()); }

private:
  msgpack::sbuffer buf_;
  msgpack::packer<msgpack::sbuffer> pk_{buf_};
};

peer::change sample_change(change_op op) {
  peer::change c;
  c.hlc = hlc_timestamp(1'700'000'000'123, 4);
  c.origin = "node-a";
  c.table = "items";
  c.op = op;
  if (op != change_op::truncate)
    c.key = row{value::integer(42)};
  if (op == change_op::insert || op == change_op::update)
    c.new_row = row{value::integer(42), value::text("ada"), value::real(2.0), value::null(),
                    value::bytes(std::string("\0\xff", 2)), value::boolean(true),
                    value::exact("numeric", "12.50")};
  return c;
}

// One message of every type, with fields that exercise their rules.
std::vector<peer::message> one_of_each() {
  peer::watermark marks{{"node-a", hlc_timestamp(1'700'000'000'000, 1)},
                        {"node-b", hlc_timestamp(1'700'000'000'500, 0)}};
  std::vector<peer::change> changes{sample_change(change_op::insert),
                                    sample_change(change_op::update),
                                    sample_change(change_op::remove),
                                    sample_change(change_op::truncate)};
  return {
    peer::hello{"node-a", peer::link_mode::bidirectional, {"items", "orders"}},
    peer::hello_ack{"node-b", peer::link_mode::pull, {"items"}, 1},
    peer::sync_request{peer::sync_kind::from_watermark, marks},
    peer::sync_start{1'000'000},
    peer::sync_batch{1, changes},
    peer::sync_complete{marks},
    peer::delta{7, changes},
    peer::delta_ack{7, marks},
    peer::delta_nack{8, peer::nack_reason::untrusted_origin,
                     "change 1 comes from node-x, which this node does not trust"},
    peer::pause{},
    peer::resume{64, 32u << 20},
    peer::ping{0xdeadbeefcafeULL},
    peer::pong{0xdeadbeefcafeULL},
    peer::error{peer::error_code::not_allowed, "the link is read-only", true},
  };
}

// The refusal's sentence, or "" when accepted. Boost.Test evaluates a
// message's operands even when the check passes, so they must be safe to read.
std::string why(const peer::decode_result& r) { return r.is_ok() ? "" : r.error().message; }

peer::decode_error refusal_of(const std::string& frame, const peer::limits& lim = defaults) {
  auto r = peer::decode(frame, lim);
  if (r.is_ok())
    BOOST_FAIL("frame " << hex(frame) << " was accepted as " << peer::describe(r.value()));
  return r.error();
}

void check_refused(const std::string& frame, errc code, const std::string& part,
                   const peer::limits& lim = defaults) {
  auto e = refusal_of(frame, lim);
  BOOST_TEST(static_cast<int>(e.code) == static_cast<int>(code),
             "frame " << hex(frame) << " refused with code " << static_cast<int>(e.code)
                      << ", not " << static_cast<int>(code) << ": " << e.message);
  BOOST_TEST(contains(e.message, part),
             "the sentence \"" << e.message << "\" does not mention \"" << part << "\"");
}

} // namespace

BOOST_AUTO_TEST_SUITE(peer_protocol)

BOOST_AUTO_TEST_CASE(every_message_type_round_trips_byte_for_byte) {
  auto messages = one_of_each();
  BOOST_TEST(messages.size() == std::size_t{peer::message_type_max});
  for (const auto& m : messages) {
    auto frame = peer::encode(m);
    auto back = peer::decode(frame, defaults);
    BOOST_TEST_REQUIRE(back.is_ok(), peer::describe(m) << ": " << why(back));
    BOOST_TEST((back.value() == m), peer::describe(m) << " came back as "
                                                      << peer::describe(back.value()));
    BOOST_TEST(peer::encode(back.value()) == frame);
    BOOST_TEST(static_cast<int>(peer::type_of(back.value())) ==
               static_cast<int>(m.index() + 1));
  }
}

BOOST_AUTO_TEST_CASE(a_real_keeps_its_kind_even_when_integral) {
  // msgpack-cxx's pack_double writes 2.0 as the integer 2; on the wire that
  // would arrive as value::integer(2), another value.
  peer::delta d{1, {sample_change(change_op::insert)}};
  d.changes[0].new_row = row{value::real(2.0), value::real(-0.0), value::integer(2)};
  auto back = peer::decode(peer::encode(d), defaults);
  BOOST_TEST_REQUIRE(back.is_ok(), why(back));
  const auto& r = *std::get<peer::delta>(back.value()).changes[0].new_row;
  BOOST_TEST((r[0].kind() == syncmesh::store::value_kind::real));
  BOOST_TEST((r[1].kind() == syncmesh::store::value_kind::real));
  BOOST_TEST(std::signbit(r[1].as_real()));
  BOOST_TEST((r[2].kind() == syncmesh::store::value_kind::integer));
}

BOOST_AUTO_TEST_CASE(random_messages_round_trip_for_a_printed_seed) {
  auto seed = syncmesh::test::test_seed();
  syncmesh::test::peer_message_gen gen(seed);
  std::array<int, peer::message_type_max> seen{};
  for (int i = 0; i < 3000; ++i) {
    auto m = gen.any();
    ++seen[m.index()];
    auto frame = peer::encode(m);
    auto back = peer::decode(frame, defaults);
    BOOST_TEST_REQUIRE(back.is_ok(), "message " << i << " (" << peer::describe(m)
                                                << ") refused: " << why(back)
                                                << "; replay with SYNCMESH_SEED=" << seed);
    BOOST_TEST_REQUIRE((back.value() == m), "message " << i << " (" << peer::describe(m)
                                                       << ") changed on the way; replay with "
                                                          "SYNCMESH_SEED="
                                                       << seed);
    BOOST_TEST_REQUIRE(peer::encode(back.value()) == frame);
  }
  for (auto n : seen)
    BOOST_TEST(n > 0);
}

BOOST_AUTO_TEST_CASE(a_frame_at_the_bound_is_read_and_one_byte_more_is_refused_unparsed) {
  auto frame = peer::encode(peer::delta{3, {sample_change(change_op::insert)}});
  peer::limits lim;
  lim.frame_bytes_max = frame.size();
  BOOST_TEST(peer::decode(frame, lim).is_ok());
  lim.frame_bytes_max = frame.size() - 1;
  check_refused(frame, errc::frame_too_large,
                "of " + std::to_string(frame.size()) + " bytes exceeds the bound of " +
                  std::to_string(frame.size() - 1) + " bytes (frame_bytes_max)",
                lim);
  // Not parsed: garbage past the bound is refused for its size alone.
  check_refused(std::string(lim.frame_bytes_max + 1, '\xc1'), errc::frame_too_large,
                "frame_bytes_max", lim);
}

BOOST_AUTO_TEST_CASE(every_prefix_of_a_valid_frame_is_refused_as_truncated) {
  for (const auto& m : one_of_each()) {
    auto frame = peer::encode(m);
    check_refused("", errc::malformed_frame, "is empty");
    for (std::size_t n = 1; n < frame.size(); ++n)
      check_refused(frame.substr(0, n), errc::malformed_frame, "truncated");
  }
}

BOOST_AUTO_TEST_CASE(bytes_that_are_not_one_messagepack_array_are_malformed) {
  check_refused("\xc1", errc::malformed_frame, "is not MessagePack");
  check_refused(mp().head(12, 1).u(5).str() + std::string(1, '\0'), errc::malformed_frame,
                "1 trailing bytes");
  check_refused(mp().map(0).str(), errc::malformed_frame, "got a map");
  check_refused(mp().s("hello").str(), errc::malformed_frame, "got a string");
  check_refused(mp().array(1).u(1).str(), errc::malformed_frame, "got an array of 1");
  check_refused(mp().array(3).s("1").u(12).u(5).str(), errc::malformed_frame,
                "version must be an unsigned integer");
  check_refused(mp().array(3).u(1).s("ping").u(5).str(), errc::malformed_frame,
                "message type must be an unsigned integer");
  // Deeper than any message: six nested arrays inside a ping's nonce.
  check_refused(mp().head(12, 1).array(1).array(1).array(1).array(1).array(0).str(),
                errc::malformed_frame, "deeper");
  // A length that claims more than the whole frame holds, refused before
  // anything is allocated for it.
  check_refused(mp().head(12, 1).raw("\xdd\xff\xff\xff\xff").str(), errc::malformed_frame,
                "more elements or bytes than the whole frame holds");
}

BOOST_AUTO_TEST_CASE(another_protocol_version_is_a_fatal_error_naming_both) {
  auto frame = mp().array(3).u(2).u(12).u(5).str();
  check_refused(frame, errc::version_mismatch, "peer speaks syncmesh/2");
  check_refused(frame, errc::version_mismatch, "this node speaks syncmesh/1");
  auto reply = peer::error_for(refusal_of(frame));
  BOOST_TEST(reply.fatal);
  BOOST_TEST((reply.code == peer::error_code::version_mismatch));
  // The reply itself is a valid frame.
  BOOST_TEST(peer::decode(peer::encode(reply), defaults).is_ok());

  // Named even when the rest is nothing syncmesh/1 can read.
  check_refused(mp().array(2).u(7).raw("\xc1").str(), errc::version_mismatch,
                "peer speaks syncmesh/7");
  check_refused(mp().array(2).u(0).u(1).str(), errc::version_mismatch, "syncmesh/0");
  check_refused(mp().array(2).u(1ULL << 40).u(1).str(), errc::version_mismatch,
                "syncmesh/1099511627776");
}

BOOST_AUTO_TEST_CASE(unknown_message_types_are_refused) {
  for (std::uint64_t type : {0ULL, 15ULL, 255ULL, 1ULL << 40})
    check_refused(mp().head(type, 0).str(), errc::unknown_message,
                  "unknown message type " + std::to_string(type));
  auto reply = peer::error_for(refusal_of(mp().head(99, 0).str()));
  BOOST_TEST(!reply.fatal);
  BOOST_TEST((reply.code == peer::error_code::unknown_message));
}

BOOST_AUTO_TEST_CASE(missing_and_extra_fields_are_refused_naming_the_layout) {
  check_refused(mp().head(1, 3).s("a").u(1).array(0).str(), errc::invalid_field,
                "hello has 3 fields; it has exactly 4 (node_id, mode, tables, frame_bytes_max)");
  check_refused(mp().head(10, 1).nil().str(), errc::invalid_field,
                "pause has 1 fields; it has exactly 0");
  check_refused(mp().head(7, 3).u(1).array(1).insert_change().u(0).str(),
                errc::invalid_field, "delta has 3 fields");
  check_refused(mp().head(7, 2).u(1).array(1).array(5).u(7).s("a").s("t").u(1).array(0).str(),
                errc::invalid_field, "delta change 1 must be an array of 7 fields");
}

BOOST_AUTO_TEST_CASE(fields_of_the_wrong_type_are_refused_naming_the_field) {
  check_refused(mp().head(1, 4).s("a").s("push").array(0).u(1024).str(), errc::invalid_field,
                "hello field 'mode' must be an unsigned integer; got a string");
  check_refused(mp().head(1, 4).u(5).u(1).array(0).u(1024).str(), errc::invalid_field,
                "hello field 'node_id' must be a string; got an unsigned integer");
  check_refused(mp().head(1, 4).s("a").u(1).map(0).u(1024).str(), errc::invalid_field,
                "hello field 'tables' must be an array of table names; got a map");
  check_refused(mp().head(7, 2).i(-1).array(1).insert_change().str(), errc::invalid_field,
                "delta field 'id' must be an unsigned integer; got a negative integer");
  check_refused(mp().head(14, 3).u(1).s("x").u(1).str(), errc::invalid_field,
                "error field 'fatal' must be true or false");
  check_refused(mp().head(8, 2).u(1).array(0).str(), errc::invalid_field,
                "delta_ack field 'through' must be a map of node id to HLC stamp");
  check_refused(mp().head(8, 2).u(1).map(1).s("a").s("5").str(), errc::invalid_field,
                "field 'hlc' must be an unsigned integer; got a string");
  check_refused(
    mp().head(7, 2).u(1).array(1).array(7).u(7).s("a").s("t").u(1).array(1).map(0).nil().array(0)
      .str(),
    errc::invalid_field, "delta change 1 field 'key' holds a bad value");
  check_refused(
    mp().head(7, 2).u(1).array(1).array(7).u(7).s("a").s("t").u(1).array(1).i(1).s("x").array(0)
      .str(),
    errc::invalid_field, "delta change 1 field 'new_row' must be an array of values");
}

BOOST_AUTO_TEST_CASE(fields_out_of_range_are_refused_naming_the_field) {
  auto change = [](std::uint64_t hlc, const std::string& origin, std::uint64_t op,
                   bool with_key, bool with_row) {
    mp m;
    m.head(7, 2).u(1).array(1).array(7).u(hlc).s(origin).s("t").u(op);
    if (with_key)
      m.array(1).i(1);
    else
      m.array(0);
    if (with_row)
      m.array(1).i(1);
    else
      m.nil();
    m.array(0);
    return m.str();
  };
  check_refused(change(7, "a", 5, true, true), errc::invalid_field,
                "delta change 1 field 'op' has unknown operation 5 (known: 1 insert");
  check_refused(change(0, "a", 1, true, true), errc::invalid_field,
                "delta change 1 field 'hlc' must not be 0");
  check_refused(change(7, "", 1, true, true), errc::invalid_field,
                "delta change 1 field 'origin' is empty");
  check_refused(change(7, std::string(peer::node_id_bytes_max + 1, 'a'), 1, true, true),
                errc::invalid_field, "has 129 bytes; at most 128 are allowed");
  check_refused(change(7, "a\nb", 1, true, true), errc::invalid_field,
                "field 'origin' holds a control character");
  check_refused(change(7, "a\xc3", 1, true, true), errc::invalid_field,
                "field 'origin' is not valid UTF-8");
  check_refused(change(7, "\xc0\xaf", 1, true, true), errc::invalid_field,
                "is not valid UTF-8");  // an overlong '/'
  check_refused(change(7, "a", 4, true, false), errc::invalid_field,
                "field 'key' must be empty for a truncate");
  check_refused(change(7, "a", 3, false, false), errc::invalid_field,
                "field 'key' must not be empty for delete");
  check_refused(change(7, "a", 3, true, true), errc::invalid_field,
                "field 'new_row' must be nil for delete");
  check_refused(change(7, "a", 2, true, false), errc::invalid_field,
                "field 'new_row' must be a row for update");
  check_refused(
    mp().head(7, 2).u(1).array(1).array(7).u(7).s("a").s("t").u(1).array(1).nil().array(1).i(1)
      .array(0).str(),
    errc::invalid_field, "field 'key' holds a null");
  check_refused(mp().head(7, 2).u(0).array(1).insert_change().str(), errc::invalid_field,
                "delta field 'id' must not be 0");
  // The columns a write set: ascending, in range, fewer than all, none for a delete.
  auto cols = [](std::uint64_t op, std::vector<std::uint64_t> list) {
    mp m;
    m.head(7, 2).u(1).array(1).array(7).u(7).s("a").s("t").u(op).array(1).i(1);
    if (op == 3)
      m.nil();
    else
      m.array(3).i(1).i(2).i(3);
    m.array(static_cast<std::uint32_t>(list.size()));
    for (auto c : list)
      m.u(c);
    return m.str();
  };
  check_refused(cols(2, {2, 1}), errc::invalid_field, "must list columns ascending, each once");
  check_refused(cols(2, {1, 1}), errc::invalid_field, "must list columns ascending, each once");
  check_refused(cols(2, {3}), errc::invalid_field, "not a column number below 3");
  check_refused(cols(1, {0, 1, 2}), errc::invalid_field,
                "a write that sets every column lists none");
  check_refused(cols(3, {0}), errc::invalid_field, "field 'columns' must be empty for delete");
  BOOST_TEST(peer::decode(cols(2, {0, 2}), defaults).is_ok());
  check_refused(mp().head(7, 2).u(1).array(0).str(), errc::invalid_field,
                "delta field 'changes' holds no changes");
  check_refused(mp().head(1, 4).s("a").u(4).array(0).u(1024).str(), errc::invalid_field,
                "hello field 'mode' has unknown link mode 4 (known: 1 push, 2 pull, 3 "
                "bidirectional)");
  check_refused(mp().head(1, 4).s("a").u(1).array(2).s("t").s("t").u(1024).str(), errc::invalid_field,
                "hello field 'tables' names table \"t\" twice");
  check_refused(mp().head(1, 4).s("a").u(1).array(1).s("").u(1024).str(), errc::invalid_field,
                "hello table 1 field 'name' is empty");
  check_refused(mp().head(2, 4).s("a").u(1).array(0).u(0).str(), errc::invalid_field,
                "hello_ack field 'frame_bytes_max'");
  check_refused(mp().head(3, 2).u(3).map(0).str(), errc::invalid_field,
                "sync_request field 'kind' has unknown sync kind 3");
  check_refused(mp().head(3, 2).u(1).map(1).s("a").u(5).str(), errc::invalid_field,
                "sync_request field 'from' must be empty for a sync of kind full");
  check_refused(mp().head(6, 1).map(2).s("a").u(5).s("a").u(6).str(), errc::invalid_field,
                "names origin \"a\" twice");
  check_refused(mp().head(6, 1).map(1).s("a").u(0).str(), errc::invalid_field,
                "field 'hlc' must not be 0");
  check_refused(mp().head(9, 3).u(1).u(8).s("x").str(), errc::invalid_field,
                "delta_nack field 'reason' has unknown reason 8");
  check_refused(mp().head(9, 3).u(1).u(1).s(std::string(peer::sentence_bytes_max + 1, 'x'))
                  .str(),
                errc::invalid_field, "delta_nack field 'message' has 4097 bytes");
  check_refused(mp().head(14, 3).u(12).s("x").b(false).str(), errc::invalid_field,
                "error field 'code' has unknown error code 12");
  check_refused(mp().head(14, 3).u(0).s("x").b(false).str(), errc::invalid_field,
                "unknown error code 0");
  check_refused(mp().head(11, 2).u(0).u(1).str(), errc::invalid_field,
                "resume field 'credits' must not be 0");
  check_refused(mp().head(11, 2).u(1).u(0).str(), errc::invalid_field,
                "resume field 'bytes' must not be 0");
  check_refused(mp().head(5, 2).u(0).array(1).insert_change().str(), errc::invalid_field,
                "sync_batch field 'seq' must not be 0");
}

BOOST_AUTO_TEST_CASE(every_count_bound_is_enforced_and_named) {
  peer::limits lim;
  lim.changes_per_batch_max = 2;
  lim.tables_max = 1;
  lim.watermark_origins_max = 1;
  lim.row_values_max = 2;
  lim.credits_max = 10;

  peer::delta three{1, {sample_change(change_op::remove), sample_change(change_op::remove),
                        sample_change(change_op::remove)}};
  check_refused(peer::encode(three), errc::invalid_field,
                "holds 3 changes; the bound is 2 (changes_per_batch_max)", lim);
  three.changes.pop_back();
  BOOST_TEST(peer::decode(peer::encode(three), lim).is_ok());

  check_refused(peer::encode(peer::hello{"a", peer::link_mode::push, {"t1", "t2"}}),
                errc::invalid_field, "holds 2 tables; the bound is 1 (tables_max)", lim);
  peer::watermark two{{"a", hlc_timestamp(1, 0)}, {"b", hlc_timestamp(2, 0)}};
  check_refused(peer::encode(peer::delta_ack{1, two}), errc::invalid_field,
                "holds 2 origins; the bound is 1 (watermark_origins_max)", lim);
  auto wide = sample_change(change_op::insert);  // a row of 7 values
  check_refused(peer::encode(peer::sync_batch{1, {wide}}), errc::invalid_field,
                "field 'new_row' holds 7 values; the bound is 2 (row_values_max)", lim);
  check_refused(peer::encode(peer::resume{11}), errc::invalid_field,
                "grants 11 batches; the bound is 10 (credits_max)", lim);
  BOOST_TEST(peer::decode(peer::encode(peer::resume{10}), lim).is_ok());
}

BOOST_AUTO_TEST_CASE(other_encodings_of_a_valid_message_are_refused_as_non_canonical) {
  // The version as uint8 (0xcc 0x01) instead of a fixint.
  check_refused(mp().array(3).raw("\xcc\x01").u(12).u(5).str(), errc::non_canonical,
                "first difference at byte 1");
  // A nonce as uint32 where a fixint would do.
  check_refused(mp().head(12, 1).raw(std::string("\xce\x00\x00\x00\x05", 5)).str(),
                errc::non_canonical, "decodes to a valid ping");
  // A short string as str8.
  check_refused(mp().head(1, 4).raw("\xd9\x01" "a").u(1).array(0).u(1024).str(), errc::non_canonical,
                "canonical");
  // An integer value as int8 holding a positive number.
  check_refused(mp().head(7, 2).u(1).array(1).array(7).u(7).s("a").s("t").u(3).array(1)
                  .raw("\xd0\x05").nil().array(0).str(),
                errc::non_canonical, "canonical");
  // A real as float32.
  check_refused(mp().head(7, 2).u(1).array(1).array(7).u(7).s("a").s("t").u(1).array(1).i(1)
                  .array(1).f32(1.5f).array(0).str(),
                errc::non_canonical, "not float64");
  // Integer values at the edges of the signed forms: -33 is int8 and -129
  // int16, as encode writes them; -32 as int8 or -128 as int16 is wider
  // than needed, and so is a short array as array16 or a short key as bin16.
  auto with_key = [](const std::string& key) {
    return mp().head(7, 2).u(1).array(1).array(7).u(7).s("a").s("t").u(3).array(1).raw(key)
      .nil().array(0).str();
  };
  BOOST_TEST(peer::decode(with_key("\xd0\xdf"), defaults).is_ok());
  BOOST_TEST(peer::decode(with_key(std::string("\xd1\xff\x7f", 3)), defaults).is_ok());
  check_refused(with_key("\xd0\xe0"), errc::non_canonical, "first difference at byte 13");
  check_refused(with_key(std::string("\xd1\xff\x80", 3)), errc::non_canonical, "canonical");
  check_refused(with_key(std::string("\xd3\xff\xff\xff\xff\x80\x00\x00\x00", 9)),
                errc::non_canonical, "canonical");
  check_refused(with_key(std::string("\xc5\x00\x01" "k", 4)), errc::non_canonical, "canonical");
  check_refused(mp().head(6, 1).raw(std::string("\xde\x00\x01", 3)).s("a").u(6).str(),
                errc::non_canonical, "canonical");
  // A version vector out of node-id order.
  check_refused(mp().head(6, 1).map(2).s("b").u(5).s("a").u(6).str(), errc::non_canonical,
                "is not sorted by node id (\"a\" follows \"b\")");
}

BOOST_AUTO_TEST_CASE(mutated_frames_never_crash_and_are_accepted_only_in_canonical_form) {
  auto seed = syncmesh::test::test_seed();
  syncmesh::test::peer_message_gen gen(seed);
  std::map<int, int> outcomes;  // errc → count; 0 = accepted
  for (int i = 0; i < 50000; ++i) {
    auto frame = peer::encode(gen.any());
    auto mutations = gen.pick(1, 4);
    for (std::uint64_t k = 0; k < mutations && !frame.empty(); ++k) {
      auto at = gen.pick(0, frame.size() - 1);
      switch (gen.pick(0, 5)) {
        case 0: frame[at] = static_cast<char>(frame[at] ^ (1 << gen.pick(0, 7))); break;
        case 1: frame[at] = static_cast<char>(gen.pick(0, 255)); break;
        case 2: frame.insert(frame.begin() + static_cast<std::ptrdiff_t>(at),
                             static_cast<char>(gen.pick(0, 255)));
          break;
        case 3: frame.erase(at, 1); break;
        case 4: frame.resize(at); break;
        default: {  // an interesting byte: a type tag or length boundary
          static const unsigned char tags[] = {0x00, 0x7f, 0x80, 0x90, 0xa0, 0xc0, 0xc2,
                                               0xcc, 0xcf, 0xd0, 0xd3, 0xdc, 0xdd, 0xde,
                                               0xdf, 0xff};
          frame[at] = static_cast<char>(tags[gen.pick(0, sizeof tags - 1)]);
        }
      }
    }
    auto r = peer::decode(frame, defaults);
    if (r.is_ok()) {
      ++outcomes[0];
      BOOST_TEST_REQUIRE(peer::encode(r.value()) == frame,
                         "mutated frame " << hex(frame) << " was accepted as "
                                          << peer::describe(r.value())
                                          << " but encodes differently; replay with "
                                             "SYNCMESH_SEED="
                                          << seed);
    } else {
      ++outcomes[static_cast<int>(r.error().code)];
      BOOST_TEST_REQUIRE(!r.error().message.empty());
    }
  }
  std::string summary;
  for (auto [code, n] : outcomes)
    summary += " " + std::string(code == 0 ? "accepted" : make_error_code(static_cast<errc>(
                                                            code)).message()) +
               "=" + std::to_string(n);
  BOOST_TEST_MESSAGE("mutation outcomes:" << summary);
  // The mutations reach past the MessagePack layer into field checks.
  BOOST_TEST(outcomes[static_cast<int>(errc::invalid_field)] > 0);
  BOOST_TEST(outcomes[static_cast<int>(errc::malformed_frame)] > 0);
}

BOOST_AUTO_TEST_CASE(a_change_keeps_its_stamp_and_origin_from_log_to_store) {
  syncmesh::store::change_record rec;
  rec.seq = 17;
  rec.hlc = hlc_timestamp(1'700'000'000'000, 3);
  rec.origin = "node-c";
  rec.table = "items";
  rec.op = change_op::update;
  rec.key = row{value::integer(1)};
  rec.old_row = row{value::integer(1), value::text("old")};
  rec.new_row = row{value::integer(1), value::text("new")};
  auto c = peer::change::from_record(rec);
  auto sc = c.to_store_change();
  BOOST_TEST(sc.hlc.has_value());
  BOOST_TEST((*sc.hlc == rec.hlc));
  BOOST_TEST(sc.origin == "node-c");
  BOOST_TEST(sc.table == "items");
  BOOST_TEST((sc.new_row == rec.new_row));
  BOOST_TEST((sc.key == rec.key));
}

BOOST_AUTO_TEST_CASE(refusals_read_as_sentences_in_error_codes) {
  std::error_code ec = errc::version_mismatch;
  BOOST_TEST(ec.message() == "protocol version mismatch");
  BOOST_TEST(std::string(ec.category().name()) == "syncmesh.messaging");
  BOOST_TEST(peer::describe(peer::delta{7, {sample_change(change_op::remove)}}) ==
             "delta 7 (1 change)");
  BOOST_TEST(peer::describe(peer::error{peer::error_code::internal, "disk full", true}) ==
             "error internal (fatal): disk full");
}

BOOST_AUTO_TEST_SUITE_END()
