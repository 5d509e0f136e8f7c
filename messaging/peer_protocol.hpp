#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "messaging/errc.hpp"
#include "store/hlc.hpp"
#include "store/records.hpp"
#include "store/value.hpp"

/// The peer protocol "syncmesh/1", spoken between two nodes on a link. One
/// frame is one MessagePack array:
///
///   [version, type, field...]
///
/// `version` is peer_protocol_version and `type` a message_type; the fields
/// follow in the order each message struct below lists them, every one
/// present. Values inside changes use the store's own value encoding
/// (store/value_codec.hpp). The envelope [version, type, ...] and the layout
/// of `error` are frozen across versions, so a node of any version can read
/// why a peer refused it.
///
/// Decoding is strict: the frame size is checked before parsing; every field
/// is type- and range-checked; unknown types, extra or missing fields and
/// trailing bytes are refused; and a frame must be canonical — byte for byte
/// what encode() writes for the message it decodes to (integers and lengths
/// in their shortest form, reals as float64, version vectors sorted by node
/// id) — so every message has exactly one wire form.
namespace syncmesh::messaging::peer {

inline constexpr std::uint32_t peer_protocol_version = 1;

/// Fixed bounds of the protocol itself (not configurable: a peer with other
/// numbers speaks another protocol).
inline constexpr std::size_t node_id_bytes_max = 128;
inline constexpr std::size_t table_name_bytes_max = 256;
inline constexpr std::size_t sentence_bytes_max = 4096;  // error and nack messages

/// Bounds a receiver applies to what a peer sends; every one is checked
/// before the thing it bounds is used. Defaults suit a link on a LAN.
struct limits {
  std::size_t frame_bytes_max = std::size_t{4} << 20;  // checked before parsing
  std::size_t changes_per_batch_max = 4096;            // delta and sync_batch
  std::size_t tables_max = 1024;                       // hello and hello_ack
  std::size_t watermark_origins_max = 4096;            // entries in one version vector
  std::size_t row_values_max = 1024;                   // values in one key or row
  std::uint64_t credits_max = 65536;                   // one resume's grant
};

enum class message_type : std::uint8_t {
  hello = 1,
  hello_ack = 2,
  sync_request = 3,
  sync_start = 4,
  sync_batch = 5,
  sync_complete = 6,
  delta = 7,
  delta_ack = 8,
  delta_nack = 9,
  pause = 10,
  resume = 11,
  ping = 12,
  pong = 13,
  error = 14,
};

inline constexpr std::uint8_t message_type_max = 14;

/// Which way changes flow on a link, from the sender of hello's side.
enum class link_mode : std::uint8_t {
  push = 1,           // the sender sends changes, takes none
  pull = 2,           // the sender takes changes, sends none
  bidirectional = 3,
};

/// Where an initial sync starts.
enum class sync_kind : std::uint8_t {
  none = 0,            // no initial sync: live deltas only
  full = 1,            // every row of the offered tables
  from_watermark = 2,  // every change past the request's version vector
};

/// Why a receiver refused a delta (delta_nack).
enum class nack_reason : std::uint8_t {
  untrusted_origin = 1,   // a change's origin is not trusted by the receiver
  table_not_allowed = 2,  // the link does not carry this table
  write_not_allowed = 3,  // the link's mode or a read-only role refuses writes this way
  unknown_table = 4,      // the receiver has no such table
  invalid_change = 5,     // a change does not fit the table's schema
  apply_failed = 6,       // the receiver's store failed; retry later
  policy_refused = 7,     // the receiver's custom trust policy refused a change
};

inline constexpr std::uint8_t nack_reason_max = 7;

/// The code of an `error` message. 1-6 are the decoder's refusals
/// (messaging::errc); the rest are refusals of a well-formed message.
enum class error_code : std::uint8_t {
  frame_too_large = 1,
  malformed_frame = 2,
  version_mismatch = 3,
  unknown_message = 4,
  invalid_field = 5,
  non_canonical = 6,
  unexpected_message = 7,  // valid, but not in the link's current state (delta before hello)
  not_allowed = 8,         // refused by the receiver's config (mode, tables, keys)
  over_credit = 9,         // sent more batches than resume granted
  shutting_down = 10,      // the node is stopping; reconnect later
  internal = 11,           // the receiver failed; a sentence says how
};

inline constexpr std::uint8_t error_code_max = 11;

const char* to_string(message_type t) noexcept;
const char* to_string(link_mode m) noexcept;
const char* to_string(sync_kind k) noexcept;
const char* to_string(nack_reason r) noexcept;
const char* to_string(error_code c) noexcept;

/// A version vector: for each origin node, the greatest HLC stamp of its
/// changes that the owner has applied (all of that origin's changes up to
/// it). Ordered by node id, which is also its wire order.
using watermark = std::map<std::string, store::hlc_timestamp>;

/// One change as it travels between peers: a change-log entry without the
/// sender's log position and old row, which mean nothing to the receiver.
struct change {
  store::hlc_timestamp hlc;            // never zero
  std::string origin;                  // the node that made the change
  std::string table;
  store::change_op op = store::change_op::insert;
  store::row key;                      // empty exactly for truncate
  std::optional<store::row> new_row;   // present exactly for insert and update
  /// For insert and update: the columns the write set, ascending, when not
  /// all of them (peers merge last-writer-wins per column, so a write that
  /// set one column must not win the others); empty means every column.
  /// Always empty for remove and truncate.
  std::vector<std::uint32_t> columns;

  static change from_record(const store::change_record& r);
  /// The change as the receiving store applies it, keeping stamp and origin.
  store::change to_store_change() const;

  bool operator==(const change& o) const;
  bool operator!=(const change& o) const { return !(*this == o); }
};

/// Opens a link: who the sender is, what it wants, what it offers.
/// The protocol version is the frame's own.
struct hello {
  std::string node_id;
  link_mode mode = link_mode::bidirectional;
  std::vector<std::string> tables;  // offered; distinct
  /// The largest frame the sender takes (its frame_bytes_max): the peer
  /// sends it no larger one.
  std::uint64_t frame_bytes_max = limits{}.frame_bytes_max;
  bool operator==(const hello& o) const;
};

/// Accepts a hello with what the receiver grants (its own config decides).
struct hello_ack {
  std::string node_id;
  link_mode mode = link_mode::bidirectional;
  std::vector<std::string> tables;  // granted; distinct
  std::uint64_t frame_bytes_max = limits{}.frame_bytes_max;  // as in hello
  bool operator==(const hello_ack& o) const;
};

struct sync_request {
  sync_kind kind = sync_kind::full;
  watermark from;  // empty unless kind is from_watermark
  bool operator==(const sync_request& o) const;
};

struct sync_start {
  std::uint64_t estimate = 0;  // changes the responder expects to send; not a bound
  bool operator==(const sync_start& o) const { return estimate == o.estimate; }
};

struct sync_batch {
  std::uint64_t seq = 1;  // 1, 2, ... within one initial sync
  std::vector<change> changes;
  bool operator==(const sync_batch& o) const;
};

struct sync_complete {
  watermark through;  // what the receiver holds once it applied every batch
  bool operator==(const sync_complete& o) const;
};

struct delta {
  std::uint64_t id = 1;  // the sender's batch id, increasing, never zero
  std::vector<change> changes;  // at least one
  bool operator==(const delta& o) const;
};

struct delta_ack {
  std::uint64_t id = 1;
  watermark through;  // the receiver's version vector after applying the batch
  bool operator==(const delta_ack& o) const;
};

struct delta_nack {
  std::uint64_t id = 1;
  nack_reason reason = nack_reason::invalid_change;
  std::string message;  // a sentence naming the change and what to do
  bool operator==(const delta_nack& o) const;
};

/// Stop sending batches (delta, sync_batch) until a resume; frames already
/// sent still count. Heartbeats and acks keep flowing.
struct pause {
  bool operator==(const pause&) const { return true; }
};

/// Ends a pause and grants the peer credit: it may send batches up to
/// `credits` (1 to limits::credits_max) past the last one the sender of
/// resume acknowledged, and have at most `bytes` (at least 1) of batch
/// frames unacknowledged at once; a batch may always go when none is
/// unacknowledged, whatever its size. A window, not an increment, so a
/// lost or repeated grant takes nothing away and adds nothing; a receiver
/// keeps its window for the whole session and re-grants as it makes
/// batches durable.
struct resume {
  std::uint64_t credits = 1;
  std::uint64_t bytes = std::numeric_limits<std::uint64_t>::max();
  bool operator==(const resume& o) const { return credits == o.credits && bytes == o.bytes; }
};

struct ping {
  std::uint64_t nonce = 0;
  bool operator==(const ping& o) const { return nonce == o.nonce; }
};

struct pong {
  std::uint64_t nonce = 0;  // the ping's
  bool operator==(const pong& o) const { return nonce == o.nonce; }
};

struct error {
  error_code code = error_code::internal;
  std::string message;  // a sentence for a user: what was wrong, what to do
  bool fatal = false;   // the sender closes the link after this frame
  bool operator==(const error& o) const;
};

/// One frame's message. The variant's index + 1 is its message_type.
using message = std::variant<hello, hello_ack, sync_request, sync_start, sync_batch,
                             sync_complete, delta, delta_ack, delta_nack, pause, resume, ping,
                             pong, error>;

message_type type_of(const message& m) noexcept;

/// "delta 7 (3 changes)": a message in a few words, for logs.
std::string describe(const message& m);

/// Why decode refused a frame: the kind of fault and a sentence naming it.
struct decode_error {
  errc code = errc::malformed_frame;
  std::string message;
};

/// A decoded message, or the decode_error that explains its absence.
class [[nodiscard]] decode_result {
public:
  decode_result(message m) : data_(std::move(m)) {}
  decode_result(decode_error e) : data_(std::move(e)) {}

  bool is_ok() const noexcept { return data_.index() == 0; }
  explicit operator bool() const noexcept { return is_ok(); }

  // REQUIRES: is_ok()
  message& value() & { return std::get<0>(data_); }
  const message& value() const& { return std::get<0>(data_); }
  message&& value() && { return std::get<0>(std::move(data_)); }

  // REQUIRES: !is_ok()
  const decode_error& error() const& { return std::get<1>(data_); }

private:
  std::variant<message, decode_error> data_;
};

/// The wire form of `m`. Encodes whatever it is given: a message that breaks
/// a rule (an empty node id, a zero stamp) encodes, and the receiver refuses
/// it. Fails only by running out of memory.
std::string encode(const message& m);

/// Reads one frame. Never throws and never reads outside `frame`. Refusals:
///   frame_too_large  — more than lim.frame_bytes_max bytes (checked first);
///   version_mismatch — the envelope names another version (the sentence
///                      names both); checked before the rest is parsed;
///   malformed_frame  — empty, not MessagePack, truncated, trailing bytes,
///                      nested deeper than any message, not an array;
///   unknown_message  — a type outside 1..message_type_max;
///   invalid_field    — a missing or extra field, a wrong type, a value out
///                      of range or a bound in `lim` exceeded;
///   non_canonical    — everything checks, but encode() of the result would
///                      write other bytes.
decode_result decode(std::string_view frame, const limits& lim);

/// The `error` a receiver sends back for a refused frame: the same code and
/// sentence; fatal for version_mismatch (nothing else on the link can be
/// read), not fatal otherwise (frames are whole, so the next one may be fine).
/// REQUIRES: e.code != errc::ok
error error_for(const decode_error& e);

} // namespace syncmesh::messaging::peer
