#include "store/record_codec.hpp"

#include <cstdint>
#include <cstring>
#include <stdexcept>

#include <msgpack.hpp>

#include "store/crc32.hpp"
#include "store/value_codec.hpp"

namespace syncmesh::store {

namespace {

constexpr char tag_row = 'R';
constexpr char tag_row_meta = 'W';  // a row, then its meta (a string)
constexpr char tag_change = 'C';
constexpr char tag_outbox = 'O';
constexpr char tag_job = 'J';
constexpr char tag_schema = 'S';
constexpr std::size_t header_size = 5;

// Bounds on what a stored record may claim, so a damaged length field cannot
// make the decoder allocate without limit.
const msgpack::unpack_limit record_limits{
  /*array*/ 1u << 20, /*map*/ 1u << 16, /*str*/ 64u << 20,
  /*bin*/ 64u << 20,  /*ext*/ 1u << 20, /*depth*/ 16};

using packer = msgpack::packer<msgpack::sbuffer>;

struct decode_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::uint32_t crc_of(const char* data, std::size_t size) { return crc32(data, size); }

std::string seal(char tag, const msgpack::sbuffer& payload) {
  std::string out;
  out.reserve(header_size + payload.size());
  out.push_back(tag);
  auto crc = crc_of(payload.data(), payload.size());
  for (int i = 0; i < 4; ++i)
    out.push_back(static_cast<char>((crc >> (8 * i)) & 0xff));
  out.append(payload.data(), payload.size());
  return out;
}

// --- writing ---------------------------------------------------------------

// A msgpack output that appends to a string.
struct string_sink {
  std::string& out;
  void write(const char* data, std::size_t size) { out.append(data, size); }
};

template <class Out>
void append_opt_row(Out& buf, const std::optional<row>& r) {
  if (r)
    append_row(buf, *r);
  else
    msgpack::packer<Out>(buf).pack_nil();
}

// Writes the header of the record of `size` bytes at `record`, whose
// payload follows its first header_size bytes (packed in place: the
// payload is never copied).
void seal_in_place(char tag, char* record, std::size_t size) {
  auto crc = crc_of(record + header_size, size - header_size);
  record[0] = tag;
  for (int i = 0; i < 4; ++i)
    record[1 + i] = static_cast<char>((crc >> (8 * i)) & 0xff);
}

// --- reading ---------------------------------------------------------------

const msgpack::object& field(const msgpack::object& arr, std::uint32_t i, const char* name) {
  if (i >= arr.via.array.size)
    throw decode_error(std::string("field '") + name + "' is missing");
  return arr.via.array.ptr[i];
}

const msgpack::object& as_array(const msgpack::object& o, const char* name,
                                std::uint32_t min_size = 0) {
  if (o.type != msgpack::type::ARRAY)
    throw decode_error(std::string("field '") + name + "' is not an array");
  if (o.via.array.size < min_size)
    throw decode_error(std::string("field '") + name + "' has " + std::to_string(o.via.array.size)
                       + " elements, expected at least " + std::to_string(min_size));
  return o;
}

std::string get_str(const msgpack::object& o, const char* name) {
  if (o.type != msgpack::type::STR)
    throw decode_error(std::string("field '") + name + "' is not a string");
  return std::string(o.via.str.ptr, o.via.str.size);
}

std::uint64_t get_u64(const msgpack::object& o, const char* name) {
  if (o.type != msgpack::type::POSITIVE_INTEGER)
    throw decode_error(std::string("field '") + name + "' is not an unsigned integer");
  return o.via.u64;
}

bool get_bool(const msgpack::object& o, const char* name) {
  if (o.type != msgpack::type::BOOLEAN)
    throw decode_error(std::string("field '") + name + "' is not a boolean");
  return o.via.boolean;
}

change_op op_of(std::uint64_t v) {
  if (v < 1 || v > 5)
    throw decode_error("field 'op' has unknown operation " + std::to_string(v));
  return static_cast<change_op>(v);
}

// The root array of a record of `name` with exactly `size` fields (the
// object reader accepted more; no version of the store wrote more).
void expect_fields(mp_cursor& in, const char* name, std::uint32_t size) {
  auto n = in.array(name);
  if (n != size)
    throw decode_error(std::string("field '") + name + "' has " + std::to_string(n)
                       + " elements, expected " + std::to_string(size));
}

// The payload of a record with tag `tag`, once its header checks out; or
// what is wrong with it.
result<std::string_view> open_header(std::string_view bytes, char tag) {
  if (bytes.size() < header_size)
    return status::invalid_argument("it is truncated to " + std::to_string(bytes.size()) + " bytes");
  if (bytes[0] != tag)
    return status::invalid_argument(
      "it has record tag 0x" + std::to_string(static_cast<unsigned char>(bytes[0])) + " where '"
      + std::string(1, tag) + "' was expected");
  std::uint32_t stored = 0;
  for (int i = 0; i < 4; ++i)
    stored |= static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[1 + i])) << (8 * i);
  auto payload = bytes.substr(header_size);
  if (crc_of(payload.data(), payload.size()) != stored)
    return status::invalid_argument("its checksum does not match (truncated or overwritten)");
  return payload;
}

std::string damaged(const char* what, const std::string& where, const std::string& why) {
  return "the " + std::string(what) + " stored at " + where + " is damaged: " + why
         + "; the data directory needs repair (restore it, or delete it and let the node "
           "re-sync)";
}

// As open_envelope, for the hot records: `fn` reads the payload through an
// mp_cursor, which must end exactly at its end.
template <class T, class Fn>
result<T> open_record(std::string_view bytes, char tag, const char* what,
                      const std::string& where, Fn fn) {
  auto payload = open_header(bytes, tag);
  if (!payload)
    return status::corruption(damaged(what, where, payload.error().message()));
  try {
    mp_cursor in(*payload);
    T out = fn(in);
    if (in.remaining() != 0)
      return status::corruption(
        damaged(what, where, "it has " + std::to_string(in.remaining()) + " trailing bytes"));
    return out;
  } catch (const std::exception& e) {
    return status::corruption(damaged(what, where, e.what()));
  }
}

// Checks the envelope and hands the payload's root object to `fn`; every
// failure becomes a corruption status naming `where`.
template <class T, class Fn>
result<T> open_envelope(std::string_view bytes, char tag, const char* what,
                        const std::string& where, Fn fn) {
  auto fail = [&](const std::string& why) -> status {
    return status::corruption(damaged(what, where, why));
  };
  auto opened = open_header(bytes, tag);
  if (!opened)
    return fail(opened.error().message());
  auto payload = *opened;
  try {
    std::size_t offset = 0;
    auto handle = msgpack::unpack(payload.data(), payload.size(), offset, nullptr, nullptr,
                                  record_limits);
    if (offset != payload.size())
      return fail("it has " + std::to_string(payload.size() - offset) + " trailing bytes");
    return fn(handle.get());
  } catch (const decode_error& e) {
    return fail(e.what());
  } catch (const std::exception& e) {
    return fail(std::string("MessagePack: ") + e.what());
  }
}

} // namespace

std::string encode_row(const row& r) {
  // The hottest encoding (every row a snapshot stages): packed straight
  // behind room for the header, so the payload is never copied.
  std::string out(header_size, '\0');
  out.reserve(128);
  string_sink sink{out};
  append_row(sink, r);
  seal_row(out.data(), out.size());
  return out;
}

void seal_row(char* record, std::size_t size) {
  static_assert(header_size == record_header_size);
  seal_in_place(tag_row, record, size);
}

std::string encode_row(const row& r, std::string_view meta) {
  std::string out(header_size, '\0');
  out.reserve(128 + meta.size());
  string_sink sink{out};
  append_row(sink, r);
  msgpack::packer<string_sink> pk(sink);
  pk.pack_str(static_cast<std::uint32_t>(meta.size()));
  pk.pack_str_body(meta.data(), static_cast<std::uint32_t>(meta.size()));
  seal_in_place(tag_row_meta, out.data(), out.size());
  return out;
}

result<stored_row> decode_stored_row(std::string_view bytes, const std::string& where) {
  const char tag = bytes.empty() ? tag_row : bytes[0];
  if (tag != tag_row_meta)
    return open_record<stored_row>(bytes, tag_row, "row", where, [](mp_cursor& in) {
      return stored_row{in.read_row("row"), {}};
    });
  return open_record<stored_row>(bytes, tag_row_meta, "row", where, [](mp_cursor& in) {
    stored_row out;
    out.values = in.read_row("row");
    out.meta = std::string(in.str("meta"));
    return out;
  });
}

result<row> decode_row(std::string_view bytes, const std::string& where) {
  if (!bytes.empty() && bytes[0] == tag_row_meta) {
    auto r = decode_stored_row(bytes, where);
    if (!r)
      return r.error();
    return std::move(r->values);
  }
  return open_record<row>(bytes, tag_row, "row", where,
                          [](mp_cursor& in) { return in.read_row("row"); });
}

std::string encode_change(const change_record& c) {
  return encode_change(c.seq, c.hlc, c.origin, c.table, c.op, c.key,
                       c.old_row ? &*c.old_row : nullptr, c.new_row ? &*c.new_row : nullptr);
}

std::string encode_change(std::uint64_t seq, hlc_timestamp hlc, std::string_view origin,
                          std::string_view table, change_op op, const row& key,
                          const row* old_row, const row* new_row) {
  std::string out(header_size, '\0');
  out.reserve(160);
  string_sink buf{out};
  msgpack::packer<string_sink> pk(buf);
  pk.pack_array(8);
  pk.pack_uint64(seq);
  pk.pack_uint64(hlc.packed());
  pk.pack_str(static_cast<std::uint32_t>(origin.size()));
  pk.pack_str_body(origin.data(), static_cast<std::uint32_t>(origin.size()));
  pk.pack_str(static_cast<std::uint32_t>(table.size()));
  pk.pack_str_body(table.data(), static_cast<std::uint32_t>(table.size()));
  pk.pack_uint8(static_cast<std::uint8_t>(op));
  append_row(buf, key);
  for (const row* r : {old_row, new_row})
    if (r)
      append_row(buf, *r);
    else
      pk.pack_nil();
  seal_in_place(tag_change, out.data(), out.size());
  return out;
}

result<change_record> decode_change(std::string_view bytes, const std::string& where) {
  return open_record<change_record>(bytes, tag_change, "change-log entry", where,
                                    [](mp_cursor& in) {
    expect_fields(in, "change", 8);
    change_record c;
    c.seq = in.u64("seq");
    c.hlc = hlc_timestamp::from_packed(in.u64("hlc"));
    c.origin = in.str("origin");
    c.table = in.str("table");
    c.op = op_of(in.u64("op"));
    c.key = in.read_row("key");
    c.old_row = in.read_opt_row("old_row");
    c.new_row = in.read_opt_row("new_row");
    return c;
  });
}

std::string encode_outbox(const outbox_entry& e) {
  std::string out(header_size, '\0');
  out.reserve(192);
  string_sink buf{out};
  msgpack::packer<string_sink> pk(buf);
  pk.pack_array(12);
  pk.pack_uint64(e.seq);
  pk.pack(e.mutation_id);
  pk.pack(e.view);
  pk.pack(e.table);
  pk.pack_uint8(static_cast<std::uint8_t>(e.op));
  append_row(buf, e.key);
  pk.pack(e.base_version);
  append_opt_row(buf, e.new_row);
  pk.pack_uint8(static_cast<std::uint8_t>(e.state));
  pk.pack_uint32(e.attempts);
  pk.pack(e.last_error);
  pk.pack_uint64(e.created.packed());
  seal_in_place(tag_outbox, out.data(), out.size());
  return out;
}

result<outbox_entry> decode_outbox(std::string_view bytes, const std::string& where) {
  return open_record<outbox_entry>(bytes, tag_outbox, "outbox entry", where,
                                   [](mp_cursor& in) {
    expect_fields(in, "outbox", 12);
    outbox_entry e;
    e.seq = in.u64("seq");
    e.mutation_id = in.str("mutation_id");
    e.view = in.str("view");
    e.table = in.str("table");
    e.op = op_of(in.u64("op"));
    e.key = in.read_row("key");
    e.base_version = in.str("base_version");
    e.new_row = in.read_opt_row("new_row");
    auto st = in.u64("state");
    if (st > 3)
      throw decode_error("field 'state' has unknown outbox state " + std::to_string(st));
    e.state = static_cast<outbox_state>(st);
    e.attempts = static_cast<std::uint32_t>(in.u64("attempts"));
    e.last_error = in.str("last_error");
    e.created = hlc_timestamp::from_packed(in.u64("created"));
    return e;
  });
}

std::string encode_job(const job_state& j) {
  msgpack::sbuffer buf;
  packer pk(buf);
  pk.pack_array(11);
  pk.pack(j.view);
  pk.pack(j.persistence);
  pk.pack(j.mode);
  pk.pack(j.enabled);
  pk.pack(j.state);
  pk.pack(j.slot_id);
  pk.pack(j.last_seen_commit);
  pk.pack_uint32(j.retry_count);
  pk.pack(j.last_error);
  pk.pack_uint64(j.next_retry_at_ms);
  pk.pack_uint64(j.updated_at_ms);
  return seal(tag_job, buf);
}

result<job_state> decode_job(std::string_view bytes, const std::string& where) {
  return open_envelope<job_state>(bytes, tag_job, "job state", where,
                                  [](const msgpack::object& root) {
    as_array(root, "job", 11);
    job_state j;
    j.view = get_str(field(root, 0, "view"), "view");
    j.persistence = get_str(field(root, 1, "persistence"), "persistence");
    j.mode = get_str(field(root, 2, "mode"), "mode");
    j.enabled = get_bool(field(root, 3, "enabled"), "enabled");
    j.state = get_str(field(root, 4, "state"), "state");
    j.slot_id = get_str(field(root, 5, "slot_id"), "slot_id");
    j.last_seen_commit = get_str(field(root, 6, "last_seen_commit"), "last_seen_commit");
    j.retry_count =
      static_cast<std::uint32_t>(get_u64(field(root, 7, "retry_count"), "retry_count"));
    j.last_error = get_str(field(root, 8, "last_error"), "last_error");
    j.next_retry_at_ms = get_u64(field(root, 9, "next_retry_at_ms"), "next_retry_at_ms");
    j.updated_at_ms = get_u64(field(root, 10, "updated_at_ms"), "updated_at_ms");
    return j;
  });
}

std::string encode_schema(const schema& s) {
  msgpack::sbuffer buf;
  packer pk(buf);
  pk.pack_array(3);
  pk.pack(s.table);
  pk.pack_array(static_cast<std::uint32_t>(s.columns.size()));
  for (const auto& c : s.columns) {
    pk.pack_array(4);
    pk.pack(c.name);
    pk.pack_uint8(static_cast<std::uint8_t>(c.kind));
    pk.pack(c.type_name);
    pk.pack(c.nullable);
  }
  pk.pack_array(static_cast<std::uint32_t>(s.primary_key.size()));
  for (auto i : s.primary_key)
    pk.pack_uint64(i);
  return seal(tag_schema, buf);
}

result<schema> decode_schema(std::string_view bytes, const std::string& where) {
  return open_envelope<schema>(bytes, tag_schema, "table schema", where,
                               [](const msgpack::object& root) {
    as_array(root, "schema", 3);
    schema s;
    s.table = get_str(field(root, 0, "table"), "table");
    const auto& cols = as_array(field(root, 1, "columns"), "columns");
    for (std::uint32_t i = 0; i < cols.via.array.size; ++i) {
      const auto& c = as_array(cols.via.array.ptr[i], "column", 4);
      column col;
      col.name = get_str(field(c, 0, "name"), "name");
      auto kind = get_u64(field(c, 1, "kind"), "kind");
      if (kind < 1 || kind > 6)
        throw decode_error("column kind " + std::to_string(kind) + " is unknown");
      col.kind = static_cast<value_kind>(kind);
      col.type_name = get_str(field(c, 2, "type_name"), "type_name");
      col.nullable = get_bool(field(c, 3, "nullable"), "nullable");
      s.columns.push_back(std::move(col));
    }
    const auto& pk = as_array(field(root, 2, "primary_key"), "primary_key");
    for (std::uint32_t i = 0; i < pk.via.array.size; ++i)
      s.primary_key.push_back(static_cast<std::size_t>(get_u64(pk.via.array.ptr[i], "key")));
    if (auto st = s.validate(); !st)
      throw decode_error(st.message());
    return s;
  });
}

} // namespace syncmesh::store
