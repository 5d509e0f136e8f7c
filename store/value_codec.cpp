#include "store/value_codec.hpp"

#include <cstdint>
#include <cstring>
#include <limits>

namespace syncmesh::store {

namespace {

using packer = msgpack::packer<msgpack::sbuffer>;

// msgpack-cxx's pack_double writes an integral double (1.0, -0.0) as an
// integer, which reads back as value::integer: a real must keep its kind, so
// reals are always written as float64 (0xcb and eight big-endian bytes).
void append_float64(msgpack::sbuffer& out, double d) {
  std::uint64_t bits = 0;
  static_assert(sizeof bits == sizeof d);
  std::memcpy(&bits, &d, sizeof d);
  char buf[9];
  buf[0] = static_cast<char>(0xcb);
  for (int i = 0; i < 8; ++i)
    buf[1 + i] = static_cast<char>((bits >> (8 * (7 - i))) & 0xff);
  out.write(buf, sizeof buf);
}

std::string field_problem(std::string_view name, const char* problem) {
  return "field '" + std::string(name) + "' " + problem;
}

} // namespace

void append_value(msgpack::sbuffer& out, const value& v) {
  packer pk(out);
  switch (v.kind()) {
    case value_kind::null: pk.pack_nil(); break;
    case value_kind::boolean: pk.pack(v.as_bool()); break;
    case value_kind::integer: pk.pack_int64(v.as_int()); break;
    case value_kind::real: append_float64(out, v.as_real()); break;
    case value_kind::text: pk.pack(v.as_text()); break;
    case value_kind::bytes:
      pk.pack_bin(static_cast<std::uint32_t>(v.as_bytes().size()));
      pk.pack_bin_body(v.as_bytes().data(), static_cast<std::uint32_t>(v.as_bytes().size()));
      break;
    case value_kind::exact:
      pk.pack_array(2);
      pk.pack(v.as_exact().type_name);
      pk.pack(v.as_exact().text);
      break;
  }
}

void append_row(msgpack::sbuffer& out, const row& r) {
  packer(out).pack_array(static_cast<std::uint32_t>(r.size()));
  for (const auto& v : r)
    append_value(out, v);
}

result<value> read_value(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL: return value::null();
    case msgpack::type::BOOLEAN: return value::boolean(o.via.boolean);
    case msgpack::type::POSITIVE_INTEGER:
      if (o.via.u64 > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        return status::invalid_argument("an integer value is out of range");
      return value::integer(static_cast<std::int64_t>(o.via.u64));
    case msgpack::type::NEGATIVE_INTEGER: return value::integer(o.via.i64);
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: return value::real(o.via.f64);
    case msgpack::type::STR: return value::text(std::string(o.via.str.ptr, o.via.str.size));
    case msgpack::type::BIN: return value::bytes(std::string(o.via.bin.ptr, o.via.bin.size));
    case msgpack::type::ARRAY: {
      if (o.via.array.size != 2)
        return status::invalid_argument("an exact value is not a [type, text] pair");
      const auto& type = o.via.array.ptr[0];
      const auto& text = o.via.array.ptr[1];
      if (type.type != msgpack::type::STR)
        return status::invalid_argument(field_problem("type", "is not a string"));
      if (text.type != msgpack::type::STR)
        return status::invalid_argument(field_problem("text", "is not a string"));
      return value::exact(std::string(type.via.str.ptr, type.via.str.size),
                          std::string(text.via.str.ptr, text.via.str.size));
    }
    default: return status::invalid_argument("a value has an unexpected MessagePack type");
  }
}

result<row> read_row(const msgpack::object& o, std::string_view what) {
  if (o.type != msgpack::type::ARRAY)
    return status::invalid_argument(field_problem(what, "is not an array"));
  row r;
  r.reserve(o.via.array.size);
  for (std::uint32_t i = 0; i < o.via.array.size; ++i) {
    auto v = read_value(o.via.array.ptr[i]);
    if (!v)
      return v.error();
    r.push_back(std::move(v).value());
  }
  return r;
}

} // namespace syncmesh::store
