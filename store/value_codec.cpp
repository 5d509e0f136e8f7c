#include "store/value_codec.hpp"

#include <cstdint>
#include <cstring>
#include <limits>

namespace syncmesh::store {

namespace {

// msgpack-cxx's pack_double writes an integral double (1.0, -0.0) as an
// integer, which reads back as value::integer: a real must keep its kind, so
// reals are always written as float64 (0xcb and eight big-endian bytes).
std::string field_problem(std::string_view name, const char* problem) {
  return "field '" + std::string(name) + "' " + problem;
}

} // namespace

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
