#include "messaging/peer_protocol.hpp"

#include <algorithm>
#include <exception>
#include <new>
#include <type_traits>

#include <msgpack.hpp>

#include "store/value_codec.hpp"

namespace syncmesh::messaging::peer {

namespace {

using packer = msgpack::packer<msgpack::sbuffer>;

const std::string protocol_name = "syncmesh/" + std::to_string(peer_protocol_version);

// Nesting of the deepest message: frame → changes → change → row → exact
// value. Anything deeper is no syncmesh/1 frame, and the bound keeps the
// reader's recursion short whatever a peer sends.
constexpr std::size_t depth_max = 5;

// The fields after [version, type], by message type (index = type - 1).
struct layout {
  std::size_t count;
  const char* names;
};
constexpr layout layouts[message_type_max] = {
  {4, "node_id, mode, tables, frame_bytes_max"},  // hello
  {4, "node_id, mode, tables, frame_bytes_max"},  // hello_ack
  {2, "kind, from"},                // sync_request
  {1, "estimate"},                  // sync_start
  {2, "seq, changes"},              // sync_batch
  {1, "through"},                   // sync_complete
  {2, "id, changes"},               // delta
  {2, "id, through"},               // delta_ack
  {3, "id, reason, message"},       // delta_nack
  {0, "no fields"},                 // pause
  {2, "credits, bytes"},            // resume
  {1, "nonce"},                     // ping
  {1, "nonce"},                     // pong
  {3, "code, message, fatal"},      // error
};

// --- writing ---------------------------------------------------------------

void put_string(packer& pk, const std::string& s) { pk.pack(s); }

void put_watermark(packer& pk, const watermark& w) {
  pk.pack_map(static_cast<std::uint32_t>(w.size()));
  for (const auto& [node, stamp] : w) {
    put_string(pk, node);
    pk.pack_uint64(stamp.packed());
  }
}

void put_strings(packer& pk, const std::vector<std::string>& v) {
  pk.pack_array(static_cast<std::uint32_t>(v.size()));
  for (const auto& s : v)
    put_string(pk, s);
}

void put_changes(msgpack::sbuffer& buf, const std::vector<change>& changes) {
  packer pk(buf);
  pk.pack_array(static_cast<std::uint32_t>(changes.size()));
  for (const auto& c : changes) {
    pk.pack_array(7);
    pk.pack_uint64(c.hlc.packed());
    put_string(pk, c.origin);
    put_string(pk, c.table);
    pk.pack_uint8(static_cast<std::uint8_t>(c.op));
    store::append_row(buf, c.key);
    if (c.new_row)
      store::append_row(buf, *c.new_row);
    else
      pk.pack_nil();
    pk.pack_array(static_cast<std::uint32_t>(c.columns.size()));
    for (auto col : c.columns)
      pk.pack_uint32(col);
  }
}

struct writer {
  msgpack::sbuffer& buf;
  packer pk{buf};

  void operator()(const hello& m) { link(m.node_id, m.mode, m.tables, m.frame_bytes_max); }
  void operator()(const hello_ack& m) { link(m.node_id, m.mode, m.tables, m.frame_bytes_max); }
  void operator()(const sync_request& m) {
    pk.pack_uint8(static_cast<std::uint8_t>(m.kind));
    put_watermark(pk, m.from);
  }
  void operator()(const sync_start& m) { pk.pack_uint64(m.estimate); }
  void operator()(const sync_batch& m) {
    pk.pack_uint64(m.seq);
    put_changes(buf, m.changes);
  }
  void operator()(const sync_complete& m) { put_watermark(pk, m.through); }
  void operator()(const delta& m) {
    pk.pack_uint64(m.id);
    put_changes(buf, m.changes);
  }
  void operator()(const delta_ack& m) {
    pk.pack_uint64(m.id);
    put_watermark(pk, m.through);
  }
  void operator()(const delta_nack& m) {
    pk.pack_uint64(m.id);
    pk.pack_uint8(static_cast<std::uint8_t>(m.reason));
    put_string(pk, m.message);
  }
  void operator()(const pause&) {}
  void operator()(const resume& m) {
    pk.pack_uint64(m.credits);
    pk.pack_uint64(m.bytes);
  }
  void operator()(const ping& m) { pk.pack_uint64(m.nonce); }
  void operator()(const pong& m) { pk.pack_uint64(m.nonce); }
  void operator()(const error& m) {
    pk.pack_uint8(static_cast<std::uint8_t>(m.code));
    put_string(pk, m.message);
    pk.pack(m.fatal);
  }

  void link(const std::string& node_id, link_mode mode, const std::vector<std::string>& tables,
            std::uint64_t frame_bytes_max) {
    put_string(pk, node_id);
    pk.pack_uint8(static_cast<std::uint8_t>(mode));
    put_strings(pk, tables);
    pk.pack_uint64(frame_bytes_max);
  }
};

// --- reading ---------------------------------------------------------------

// Thrown inside this file only, caught in decode().
struct refusal {
  errc code;
  std::string message;
};

[[noreturn]] void refuse(errc code, std::string message) {
  throw refusal{code, std::move(message)};
}

const char* kind_of(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL: return "nil";
    case msgpack::type::BOOLEAN: return "a boolean";
    case msgpack::type::POSITIVE_INTEGER: return "an unsigned integer";
    case msgpack::type::NEGATIVE_INTEGER: return "a negative integer";
    case msgpack::type::FLOAT32: return "a float32";
    case msgpack::type::FLOAT64: return "a float64";
    case msgpack::type::STR: return "a string";
    case msgpack::type::BIN: return "binary";
    case msgpack::type::ARRAY: return "an array";
    case msgpack::type::MAP: return "a map";
    case msgpack::type::EXT: return "an extension";
  }
  return "an unknown MessagePack type";
}

// Names a field in sentences: "delta change 3 field 'op'".
struct place {
  const std::string& where;  // "hello", "delta change 3"
  const char* name;

  std::string text() const { return protocol_name + " " + where + " field '" + name + "'"; }
};

[[noreturn]] void invalid(const place& at, const std::string& problem) {
  refuse(errc::invalid_field, at.text() + " " + problem);
}

void expect_type(const msgpack::object& o, msgpack::type::object_type t, const place& at,
                 const char* wanted) {
  if (o.type != t)
    invalid(at, std::string("must be ") + wanted + "; got " + kind_of(o));
}

std::uint64_t get_u64(const msgpack::object& o, const place& at) {
  expect_type(o, msgpack::type::POSITIVE_INTEGER, at, "an unsigned integer");
  return o.via.u64;
}

std::uint64_t get_u64_nonzero(const msgpack::object& o, const place& at) {
  auto v = get_u64(o, at);
  if (v == 0)
    invalid(at, "must not be 0");
  return v;
}

bool get_bool(const msgpack::object& o, const place& at) {
  expect_type(o, msgpack::type::BOOLEAN, at, "true or false");
  return o.via.boolean;
}

// Valid UTF-8: no overlong forms, no surrogates, nothing past U+10FFFF.
bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    std::size_t extra;
    std::uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if (c >= 0xc2 && c <= 0xdf) {
      extra = 1;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      extra = 2;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      extra = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (s.size() - i <= extra)
      return false;
    for (std::size_t k = 1; k <= extra; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80)
        return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if ((extra == 2 && cp < 0x800) || (extra == 3 && cp < 0x10000) || cp > 0x10ffff
        || (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += extra + 1;
  }
  return true;
}

std::string get_sentence(const msgpack::object& o, const place& at) {
  expect_type(o, msgpack::type::STR, at, "a string");
  std::string_view s(o.via.str.ptr, o.via.str.size);
  if (s.size() > sentence_bytes_max)
    invalid(at, "has " + std::to_string(s.size()) + " bytes; at most " +
                    std::to_string(sentence_bytes_max) + " are allowed");
  if (!valid_utf8(s))
    invalid(at, "is not valid UTF-8");
  return std::string(s);
}

// A node id or table name: 1 to bytes_max bytes of UTF-8, no control characters.
std::string get_name(const msgpack::object& o, const place& at, std::size_t bytes_max) {
  expect_type(o, msgpack::type::STR, at, "a string");
  std::string_view s(o.via.str.ptr, o.via.str.size);
  if (s.empty())
    invalid(at, "is empty");
  if (s.size() > bytes_max)
    invalid(at, "has " + std::to_string(s.size()) + " bytes; at most " +
                    std::to_string(bytes_max) + " are allowed");
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f)
      invalid(at, "holds a control character");
  }
  if (!valid_utf8(s))
    invalid(at, "is not valid UTF-8");
  return std::string(s);
}

// An enum stored as an unsigned integer in [lo, hi]; `known` lists the values.
template <class E>
E get_enum(const msgpack::object& o, const place& at, std::uint64_t lo, std::uint64_t hi,
           const char* what) {
  auto v = get_u64(o, at);
  if (v < lo || v > hi) {
    std::string known;
    for (auto k = lo; k <= hi; ++k)
      known += (k == lo ? "" : ", ") + std::to_string(k) + " " + to_string(static_cast<E>(k));
    invalid(at, "has unknown " + std::string(what) + " " + std::to_string(v) + " (known: " +
                    known + ")");
  }
  return static_cast<E>(v);
}

void check_count(std::size_t count, std::size_t bound, const place& at, const char* items,
                 const char* bound_name) {
  if (count > bound)
    invalid(at, "holds " + std::to_string(count) + " " + items + "; the bound is " +
                    std::to_string(bound) + " (" + bound_name + ")");
}

watermark get_watermark(const msgpack::object& o, const place& at, const limits& lim) {
  expect_type(o, msgpack::type::MAP, at, "a map of node id to HLC stamp");
  check_count(o.via.map.size, lim.watermark_origins_max, at, "origins", "watermark_origins_max");
  watermark w;
  const std::string* previous = nullptr;
  for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
    const auto& kv = o.via.map.ptr[i];
    auto node = get_name(kv.key, {at.where + " " + at.name + " entry " + std::to_string(i + 1),
                                  "node id"},
                         node_id_bytes_max);
    auto stamp = get_u64_nonzero(kv.val, {at.where + " " + at.name + " entry " +
                                              std::to_string(i + 1), "hlc"});
    if (previous && node == *previous)
      invalid(at, "names origin \"" + node + "\" twice");
    if (previous && node < *previous)
      refuse(errc::non_canonical, at.text() + " is not sorted by node id (\"" + node +
                                      "\" follows \"" + *previous + "\")");
    auto [it, inserted] = w.emplace(std::move(node), store::hlc_timestamp::from_packed(stamp));
    (void)inserted;
    previous = &it->first;
  }
  return w;
}

std::vector<std::string> get_tables(const msgpack::object& o, const place& at,
                                    const limits& lim) {
  expect_type(o, msgpack::type::ARRAY, at, "an array of table names");
  check_count(o.via.array.size, lim.tables_max, at, "tables", "tables_max");
  std::vector<std::string> tables;
  tables.reserve(o.via.array.size);
  for (std::uint32_t i = 0; i < o.via.array.size; ++i) {
    auto name = get_name(o.via.array.ptr[i],
                         {at.where + " table " + std::to_string(i + 1), "name"},
                         table_name_bytes_max);
    if (std::find(tables.begin(), tables.end(), name) != tables.end())
      invalid(at, "names table \"" + name + "\" twice");
    tables.push_back(std::move(name));
  }
  return tables;
}

store::row get_row(const msgpack::object& o, const place& at, const limits& lim) {
  expect_type(o, msgpack::type::ARRAY, at, "an array of values");
  check_count(o.via.array.size, lim.row_values_max, at, "values", "row_values_max");
  auto r = store::read_row(o, at.name);
  if (!r)
    invalid(at, "holds a bad value: " + r.error().message());
  return std::move(r).value();
}

change get_change(const msgpack::object& o, const std::string& where, const limits& lim) {
  if (o.type != msgpack::type::ARRAY || o.via.array.size != 7)
    refuse(errc::invalid_field,
           protocol_name + " " + where + " must be an array of 7 fields (hlc, origin, table, "
               "op, key, new_row, columns); got " + (o.type == msgpack::type::ARRAY
                                                ? std::to_string(o.via.array.size) + " fields"
                                                : std::string(kind_of(o))));
  const auto* f = o.via.array.ptr;
  change c;
  c.hlc = store::hlc_timestamp::from_packed(get_u64_nonzero(f[0], {where, "hlc"}));
  c.origin = get_name(f[1], {where, "origin"}, node_id_bytes_max);
  c.table = get_name(f[2], {where, "table"}, table_name_bytes_max);
  c.op = get_enum<store::change_op>(f[3], {where, "op"}, 1, 4, "operation");
  c.key = get_row(f[4], {where, "key"}, lim);
  if (f[5].type != msgpack::type::NIL)
    c.new_row = get_row(f[5], {where, "new_row"}, lim);

  const bool truncate = c.op == store::change_op::truncate;
  const bool writes_row = c.op == store::change_op::insert || c.op == store::change_op::update;
  const char* op = store::to_string(c.op);
  if (truncate && !c.key.empty())
    invalid({where, "key"}, "must be empty for a truncate");
  if (!truncate && c.key.empty())
    invalid({where, "key"}, std::string("must not be empty for ") + op);
  for (const auto& v : c.key)
    if (v.is_null())
      invalid({where, "key"}, "holds a null; key values are never null");
  if (writes_row && !c.new_row)
    invalid({where, "new_row"}, std::string("must be a row for ") + op);
  if (writes_row && c.new_row->empty())
    invalid({where, "new_row"}, std::string("must not be empty for ") + op);
  if (!writes_row && c.new_row)
    invalid({where, "new_row"}, std::string("must be nil for ") + op);

  const place cols{where, "columns"};
  expect_type(f[6], msgpack::type::ARRAY, cols, "an array of column numbers");
  const auto& list = f[6].via.array;
  if (!writes_row && list.size != 0)
    invalid(cols, std::string("must be empty for ") + op);
  if (writes_row && list.size >= c.new_row->size())
    invalid(cols, "lists " + std::to_string(list.size) + " of the row's "
                      + std::to_string(c.new_row->size())
                      + " columns; a write that sets every column lists none");
  for (std::uint32_t i = 0; i < list.size; ++i) {
    const auto& e = list.ptr[i];
    if (e.type != msgpack::type::POSITIVE_INTEGER || e.via.u64 >= c.new_row->size())
      invalid(cols, "holds something that is not a column number below "
                        + std::to_string(c.new_row->size()));
    if (i > 0 && e.via.u64 <= c.columns.back())
      invalid(cols, "must list columns ascending, each once");
    c.columns.push_back(static_cast<std::uint32_t>(e.via.u64));
  }
  return c;
}

std::vector<change> get_changes(const msgpack::object& o, const place& at, const limits& lim) {
  expect_type(o, msgpack::type::ARRAY, at, "an array of changes");
  if (o.via.array.size == 0)
    invalid(at, "holds no changes; a batch carries at least one");
  check_count(o.via.array.size, lim.changes_per_batch_max, at, "changes",
              "changes_per_batch_max");
  std::vector<change> changes;
  changes.reserve(o.via.array.size);
  for (std::uint32_t i = 0; i < o.via.array.size; ++i)
    changes.push_back(get_change(o.via.array.ptr[i],
                                 at.where + " change " + std::to_string(i + 1), lim));
  return changes;
}

message read_body(message_type type, const msgpack::object* f, const limits& lim) {
  const std::string where = to_string(type);
  switch (type) {
    case message_type::hello:
    case message_type::hello_ack: {
      auto node_id = get_name(f[0], {where, "node_id"}, node_id_bytes_max);
      auto mode = get_enum<link_mode>(f[1], {where, "mode"}, 1, 3, "link mode");
      auto tables = get_tables(f[2], {where, "tables"}, lim);
      const auto frame_max = get_u64_nonzero(f[3], {where, "frame_bytes_max"});
      if (type == message_type::hello)
        return hello{std::move(node_id), mode, std::move(tables), frame_max};
      return hello_ack{std::move(node_id), mode, std::move(tables), frame_max};
    }
    case message_type::sync_request: {
      sync_request m;
      m.kind = get_enum<sync_kind>(f[0], {where, "kind"}, 0, 2, "sync kind");
      m.from = get_watermark(f[1], {where, "from"}, lim);
      if (m.kind != sync_kind::from_watermark && !m.from.empty())
        invalid({where, "from"}, std::string("must be empty for a sync of kind ") +
                                     to_string(m.kind));
      return m;
    }
    case message_type::sync_start: return sync_start{get_u64(f[0], {where, "estimate"})};
    case message_type::sync_batch: {
      sync_batch m;
      m.seq = get_u64_nonzero(f[0], {where, "seq"});
      m.changes = get_changes(f[1], {where, "changes"}, lim);
      return m;
    }
    case message_type::sync_complete:
      return sync_complete{get_watermark(f[0], {where, "through"}, lim)};
    case message_type::delta: {
      delta m;
      m.id = get_u64_nonzero(f[0], {where, "id"});
      m.changes = get_changes(f[1], {where, "changes"}, lim);
      return m;
    }
    case message_type::delta_ack: {
      delta_ack m;
      m.id = get_u64_nonzero(f[0], {where, "id"});
      m.through = get_watermark(f[1], {where, "through"}, lim);
      return m;
    }
    case message_type::delta_nack: {
      delta_nack m;
      m.id = get_u64_nonzero(f[0], {where, "id"});
      m.reason = get_enum<nack_reason>(f[1], {where, "reason"}, 1, nack_reason_max, "reason");
      m.message = get_sentence(f[2], {where, "message"});
      return m;
    }
    case message_type::pause: return pause{};
    case message_type::resume: {
      resume m;
      m.credits = get_u64_nonzero(f[0], {where, "credits"});
      if (m.credits > lim.credits_max)
        invalid({where, "credits"}, "grants " + std::to_string(m.credits) +
                                        " batches; the bound is " +
                                        std::to_string(lim.credits_max) + " (credits_max)");
      m.bytes = get_u64_nonzero(f[1], {where, "bytes"});
      return m;
    }
    case message_type::ping: return ping{get_u64(f[0], {where, "nonce"})};
    case message_type::pong: return pong{get_u64(f[0], {where, "nonce"})};
    case message_type::error: {
      error m;
      m.code = get_enum<error_code>(f[0], {where, "code"}, 1, error_code_max, "error code");
      m.message = get_sentence(f[1], {where, "message"});
      m.fatal = get_bool(f[2], {where, "fatal"});
      return m;
    }
  }
  refuse(errc::unknown_message, "unreachable message type");  // checked by the caller
}

// The version of a frame read straight from its first bytes — an array
// header, then an unsigned integer — so a frame of another version is named
// as such even if the rest of it is nothing this version can parse.
std::optional<std::uint64_t> peek_version(std::string_view frame) {
  auto byte = [&](std::size_t i) { return static_cast<unsigned char>(frame[i]); };
  std::size_t pos;
  if (frame.empty())
    return std::nullopt;
  if (byte(0) >= 0x91 && byte(0) <= 0x9f)
    pos = 1;
  else if (byte(0) == 0xdc)
    pos = 3;
  else if (byte(0) == 0xdd)
    pos = 5;
  else
    return std::nullopt;
  if (frame.size() <= pos)
    return std::nullopt;
  auto tag = byte(pos);
  if (tag <= 0x7f)
    return tag;
  std::size_t width;
  switch (tag) {
    case 0xcc: width = 1; break;
    case 0xcd: width = 2; break;
    case 0xce: width = 4; break;
    case 0xcf: width = 8; break;
    default: return std::nullopt;
  }
  if (frame.size() - pos - 1 < width)
    return std::nullopt;
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < width; ++i)
    v = (v << 8) | byte(pos + 1 + i);
  return v;
}

std::string frame_problem(const std::string& problem) { return "peer frame " + problem; }

msgpack::object_handle parse(std::string_view frame) {
  // Every element, key and byte of a string takes at least one byte of the
  // frame, so no count larger than the frame can be true: refusing it before
  // allocating keeps a tiny frame from claiming gigabytes.
  const msgpack::unpack_limit bounds(/*array*/ frame.size(), /*map*/ frame.size() / 2,
                                     /*str*/ frame.size(), /*bin*/ frame.size(),
                                     /*ext*/ frame.size(), depth_max);
  std::size_t offset = 0;
  msgpack::object_handle handle;
  try {
    handle = msgpack::unpack(frame.data(), frame.size(), offset, nullptr, nullptr, bounds);
  } catch (const msgpack::insufficient_bytes&) {
    refuse(errc::malformed_frame,
           frame_problem("is truncated: its " + std::to_string(frame.size()) +
                         " bytes end inside a MessagePack value"));
  } catch (const msgpack::depth_size_overflow&) {
    refuse(errc::malformed_frame,
           frame_problem("nests arrays and maps deeper than any " + protocol_name +
                         " message (" + std::to_string(depth_max) + " levels)"));
  } catch (const msgpack::size_overflow&) {
    refuse(errc::malformed_frame,
           frame_problem("is truncated or damaged: an array, map or string in it claims "
                         "more elements or bytes than the whole frame holds (" +
                         std::to_string(frame.size()) + " bytes)"));
  } catch (const msgpack::parse_error& e) {
    refuse(errc::malformed_frame,
           frame_problem(std::string("is not MessagePack (") + e.what() + ")"));
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {
    refuse(errc::malformed_frame,
           frame_problem(std::string("could not be read as MessagePack (") + e.what() + ")"));
  }
  if (offset != frame.size())
    refuse(errc::malformed_frame,
           frame_problem("has " + std::to_string(frame.size() - offset) +
                         " trailing bytes after its MessagePack value"));
  return handle;
}

// Where `frame` (one MessagePack value, as parse() took it) departs from
// the form encode() writes: the offset of the first header that is wider
// than its value needs, a float32, or a type encode() never writes (ext);
// nullopt if none does. encode() writes every integer, length and count in
// its smallest form and every real as float64, and the decoder keeps each
// field's value and kind, so a frame that read_frame() accepts and that
// passes this check is the bytes encode() gives for what it decoded to
// (checked against encode() itself by the mutation tests and the fuzz
// target). One pass over the bytes, instead of encoding the message again.
std::optional<std::size_t> first_wide_header(std::string_view frame) {
  const auto* p = reinterpret_cast<const unsigned char*>(frame.data());
  const std::size_t size = frame.size();
  auto be = [&](std::size_t at, std::size_t width) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < width; ++i)
      v = (v << 8) | p[at + i];
    return v;
  };
  std::size_t pos = 0;
  std::uint64_t values_left = 1;
  while (values_left > 0) {
    if (pos >= size)
      return size;  // parse() accepted the frame whole; not reached
    --values_left;
    const auto at = pos;
    const unsigned char tag = p[pos++];
    std::size_t width = 0;   // bytes of the length or number after the tag
    std::uint64_t least = 0; // the smallest value that needs this width
    enum { number, string, items, pairs } what = number;
    if (tag <= 0x7f || tag >= 0xe0 || tag == 0xc0 || tag == 0xc2 || tag == 0xc3)
      continue;  // fixint, nil, bool: one form each
    if (tag >= 0x80 && tag <= 0x8f) {
      values_left += 2 * static_cast<std::uint64_t>(tag & 0x0f);
      continue;
    }
    if (tag >= 0x90 && tag <= 0x9f) {
      values_left += tag & 0x0f;
      continue;
    }
    if (tag >= 0xa0 && tag <= 0xbf) {
      pos += tag & 0x1f;
      continue;
    }
    switch (tag) {
      case 0xc4: width = 1; least = 0; what = string; break;        // bin8
      case 0xc5: width = 2; least = 0x100; what = string; break;    // bin16
      case 0xc6: width = 4; least = 0x10000; what = string; break;  // bin32
      case 0xcb: pos += 8; continue;                                // float64
      case 0xcc: width = 1; least = 0x80; break;                    // uint8
      case 0xcd: width = 2; least = 0x100; break;
      case 0xce: width = 4; least = 0x10000; break;
      case 0xcf: width = 8; least = 0x100000000; break;
      case 0xd9: width = 1; least = 0x20; what = string; break;     // str8
      case 0xda: width = 2; least = 0x100; what = string; break;
      case 0xdb: width = 4; least = 0x10000; what = string; break;
      case 0xdc: width = 2; least = 0x10; what = items; break;      // array16
      case 0xdd: width = 4; least = 0x10000; what = items; break;
      case 0xde: width = 2; least = 0x10; what = pairs; break;      // map16
      case 0xdf: width = 4; least = 0x10000; what = pairs; break;
      case 0xd0: case 0xd1: case 0xd2: case 0xd3: {                 // int8..int64
        // Only a negative number below the next narrower form's range.
        const std::size_t w = std::size_t{1} << (tag - 0xd0);
        if (size - pos < w)
          return at;
        const auto raw = be(pos, w);
        const auto sign = std::uint64_t{1} << (8 * w - 1);
        if (!(raw & sign))
          return at;  // not negative: encode() writes it unsigned
        const std::uint64_t magnitude = w == 8 ? ~raw + 1 : (std::uint64_t{1} << (8 * w)) - raw;
        const std::uint64_t narrower = w == 1 ? 32 : std::uint64_t{1} << (4 * w - 1);
        if (magnitude <= narrower)
          return at;
        pos += w;
        continue;
      }
      default: return at;  // float32, ext: encode() writes neither
    }
    if (size - pos < width)
      return at;
    const auto v = be(pos, width);
    if (v < least)
      return at;
    pos += width;
    if (what == string)
      pos += v;
    else if (what == items)
      values_left += v;
    else if (what == pairs)
      values_left += 2 * v;
  }
  return pos == size ? std::nullopt : std::optional<std::size_t>{pos};
}

message read_frame(std::string_view frame, const limits& lim) {
  if (frame.empty())
    refuse(errc::malformed_frame, frame_problem("is empty; expected one " + protocol_name +
                                                " MessagePack array"));
  if (auto v = peek_version(frame); v && *v != peer_protocol_version)
    refuse(errc::version_mismatch,
           "peer speaks syncmesh/" + std::to_string(*v) + ", but this node speaks " +
               protocol_name + "; run the same syncmesh protocol version on both nodes");

  auto handle = parse(frame);
  const auto& root = handle.get();
  if (root.type != msgpack::type::ARRAY || root.via.array.size < 2)
    refuse(errc::malformed_frame,
           frame_problem("must be a MessagePack array [version, type, field...]; got " +
                         (root.type == msgpack::type::ARRAY
                            ? "an array of " + std::to_string(root.via.array.size)
                            : std::string(kind_of(root)))));
  const auto* items = root.via.array.ptr;
  if (items[0].type != msgpack::type::POSITIVE_INTEGER)
    refuse(errc::malformed_frame, frame_problem(std::string("version must be an unsigned "
                                                            "integer; got ") +
                                                kind_of(items[0])));
  if (items[0].via.u64 != peer_protocol_version)  // peek_version saw another form
    refuse(errc::version_mismatch,
           "peer speaks syncmesh/" + std::to_string(items[0].via.u64) +
               ", but this node speaks " + protocol_name +
               "; run the same syncmesh protocol version on both nodes");
  if (items[1].type != msgpack::type::POSITIVE_INTEGER)
    refuse(errc::malformed_frame, frame_problem(std::string("message type must be an "
                                                            "unsigned integer; got ") +
                                                kind_of(items[1])));
  auto type_code = items[1].via.u64;
  if (type_code < 1 || type_code > message_type_max)
    refuse(errc::unknown_message,
           frame_problem("has unknown message type " + std::to_string(type_code) + "; " +
                         protocol_name + " knows 1 (hello) to " +
                         std::to_string(message_type_max) + " (error)"));
  auto type = static_cast<message_type>(type_code);
  const auto& shape = layouts[type_code - 1];
  auto fields = root.via.array.size - 2;
  if (fields != shape.count)
    refuse(errc::invalid_field,
           protocol_name + " " + to_string(type) + " has " + std::to_string(fields) +
               " fields; it has exactly " + std::to_string(shape.count) + " (" +
               shape.names + ")");
  return read_body(type, items + 2, lim);
}

} // namespace

// --- names -----------------------------------------------------------------

const char* to_string(message_type t) noexcept {
  switch (t) {
    case message_type::hello: return "hello";
    case message_type::hello_ack: return "hello_ack";
    case message_type::sync_request: return "sync_request";
    case message_type::sync_start: return "sync_start";
    case message_type::sync_batch: return "sync_batch";
    case message_type::sync_complete: return "sync_complete";
    case message_type::delta: return "delta";
    case message_type::delta_ack: return "delta_ack";
    case message_type::delta_nack: return "delta_nack";
    case message_type::pause: return "pause";
    case message_type::resume: return "resume";
    case message_type::ping: return "ping";
    case message_type::pong: return "pong";
    case message_type::error: return "error";
  }
  return "unknown";
}

const char* to_string(link_mode m) noexcept {
  switch (m) {
    case link_mode::push: return "push";
    case link_mode::pull: return "pull";
    case link_mode::bidirectional: return "bidirectional";
  }
  return "unknown";
}

const char* to_string(sync_kind k) noexcept {
  switch (k) {
    case sync_kind::none: return "none";
    case sync_kind::full: return "full";
    case sync_kind::from_watermark: return "from_watermark";
  }
  return "unknown";
}

const char* to_string(nack_reason r) noexcept {
  switch (r) {
    case nack_reason::untrusted_origin: return "untrusted_origin";
    case nack_reason::table_not_allowed: return "table_not_allowed";
    case nack_reason::write_not_allowed: return "write_not_allowed";
    case nack_reason::unknown_table: return "unknown_table";
    case nack_reason::invalid_change: return "invalid_change";
    case nack_reason::apply_failed: return "apply_failed";
    case nack_reason::policy_refused: return "policy_refused";
  }
  return "unknown";
}

const char* to_string(error_code c) noexcept {
  switch (c) {
    case error_code::frame_too_large: return "frame_too_large";
    case error_code::malformed_frame: return "malformed_frame";
    case error_code::version_mismatch: return "version_mismatch";
    case error_code::unknown_message: return "unknown_message";
    case error_code::invalid_field: return "invalid_field";
    case error_code::non_canonical: return "non_canonical";
    case error_code::unexpected_message: return "unexpected_message";
    case error_code::not_allowed: return "not_allowed";
    case error_code::over_credit: return "over_credit";
    case error_code::shutting_down: return "shutting_down";
    case error_code::internal: return "internal";
  }
  return "unknown";
}

// --- messages --------------------------------------------------------------

change change::from_record(const store::change_record& r) {
  return change{r.hlc, r.origin, r.table, r.op, r.key, r.new_row, {}};
}

store::change change::to_store_change() const {
  store::change c;
  c.table = table;
  c.op = op;
  c.key = key;
  c.new_row = new_row;
  c.hlc = hlc;
  c.origin = origin;
  return c;
}

bool change::operator==(const change& o) const {
  return hlc == o.hlc && origin == o.origin && table == o.table && op == o.op && key == o.key
         && new_row == o.new_row && columns == o.columns;
}

bool hello::operator==(const hello& o) const {
  return node_id == o.node_id && mode == o.mode && tables == o.tables
         && frame_bytes_max == o.frame_bytes_max;
}

bool hello_ack::operator==(const hello_ack& o) const {
  return node_id == o.node_id && mode == o.mode && tables == o.tables
         && frame_bytes_max == o.frame_bytes_max;
}

bool sync_request::operator==(const sync_request& o) const {
  return kind == o.kind && from == o.from;
}

bool sync_batch::operator==(const sync_batch& o) const {
  return seq == o.seq && changes == o.changes;
}

bool sync_complete::operator==(const sync_complete& o) const { return through == o.through; }

bool delta::operator==(const delta& o) const {
  return id == o.id && changes == o.changes;
}

bool delta_ack::operator==(const delta_ack& o) const {
  return id == o.id && through == o.through;
}

bool delta_nack::operator==(const delta_nack& o) const {
  return id == o.id && reason == o.reason && message == o.message;
}

bool error::operator==(const error& o) const {
  return code == o.code && message == o.message && fatal == o.fatal;
}

message_type type_of(const message& m) noexcept {
  return static_cast<message_type>(m.index() + 1);
}

std::string describe(const message& m) {
  auto changes = [](const std::vector<change>& c) {
    return " (" + std::to_string(c.size()) + (c.size() == 1 ? " change)" : " changes)");
  };
  auto origins = [](const watermark& w) {
    return " (" + std::to_string(w.size()) + (w.size() == 1 ? " origin)" : " origins)");
  };
  return std::visit(
    [&](const auto& v) -> std::string {
      using T = std::decay_t<decltype(v)>;
      std::string name = to_string(type_of(m));
      if constexpr (std::is_same_v<T, hello> || std::is_same_v<T, hello_ack>)
        return name + " from " + v.node_id + " (" + to_string(v.mode) + ", " +
               std::to_string(v.tables.size()) + " tables)";
      else if constexpr (std::is_same_v<T, sync_request>)
        return name + " " + to_string(v.kind) + origins(v.from);
      else if constexpr (std::is_same_v<T, sync_start>)
        return name + " (about " + std::to_string(v.estimate) + " changes)";
      else if constexpr (std::is_same_v<T, sync_batch>)
        return name + " " + std::to_string(v.seq) + changes(v.changes);
      else if constexpr (std::is_same_v<T, sync_complete>)
        return name + origins(v.through);
      else if constexpr (std::is_same_v<T, delta>)
        return name + " " + std::to_string(v.id) + changes(v.changes);
      else if constexpr (std::is_same_v<T, delta_ack>)
        return name + " " + std::to_string(v.id) + origins(v.through);
      else if constexpr (std::is_same_v<T, delta_nack>)
        return name + " " + std::to_string(v.id) + " " + to_string(v.reason) + ": " + v.message;
      else if constexpr (std::is_same_v<T, resume>)
        return name + " (" + std::to_string(v.credits) + " credits, " + std::to_string(v.bytes)
               + " bytes)";
      else if constexpr (std::is_same_v<T, ping> || std::is_same_v<T, pong>)
        return name + " " + std::to_string(v.nonce);
      else if constexpr (std::is_same_v<T, error>)
        return name + " " + to_string(v.code) + (v.fatal ? " (fatal): " : ": ") + v.message;
      else
        return name;
    },
    m);
}

// --- codec -----------------------------------------------------------------

std::string encode(const message& m) {
  msgpack::sbuffer buf;
  packer pk(buf);
  auto type = type_of(m);
  pk.pack_array(static_cast<std::uint32_t>(2 + layouts[m.index()].count));
  pk.pack_uint32(peer_protocol_version);
  pk.pack_uint8(static_cast<std::uint8_t>(type));
  std::visit(writer{buf}, m);
  return std::string(buf.data(), buf.size());
}

decode_result decode(std::string_view frame, const limits& lim) {
  if (frame.size() > lim.frame_bytes_max)
    return decode_error{errc::frame_too_large,
                        frame_problem("of " + std::to_string(frame.size()) +
                                      " bytes exceeds the bound of " +
                                      std::to_string(lim.frame_bytes_max) +
                                      " bytes (frame_bytes_max); send smaller batches, or "
                                      "raise the bound on the receiving node")};
  try {
    auto m = read_frame(frame, lim);
    // Canonical: the one wire form of this message, byte for byte.
    if (auto wide = first_wide_header(frame)) {
      const auto at = *wide;
      return decode_error{
        errc::non_canonical,
        frame_problem("decodes to a valid " + std::string(to_string(type_of(m))) +
                      " but is not in " + protocol_name + "'s canonical encoding (first "
                      "difference at byte " + std::to_string(at) + " of " +
                      std::to_string(frame.size()) + ": a number or length written wider "
                      "than needed, or a real that is not float64); encode it as syncmesh "
                      "does")};
    }
    return m;
  } catch (const refusal& r) {
    return decode_error{r.code, r.message};
  } catch (const std::bad_alloc&) {
    return decode_error{errc::malformed_frame,
                        frame_problem("could not be read: out of memory")};
  } catch (const std::exception& e) {
    return decode_error{errc::malformed_frame,
                        frame_problem(std::string("could not be read: ") + e.what())};
  }
}

error error_for(const decode_error& e) {
  return error{static_cast<error_code>(e.code), e.message, e.code == errc::version_mismatch};
}

} // namespace syncmesh::messaging::peer
