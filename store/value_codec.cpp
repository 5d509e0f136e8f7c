#include "store/value_codec.hpp"

#include <cstdint>
#include <cstring>
#include <algorithm>
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

// --- mp_cursor --------------------------------------------------------------

void mp_cursor::fail(std::string_view what, const char* problem) const {
  throw error(field_problem(what, problem));
}

std::uint64_t mp_cursor::take_be(std::size_t n) {
  if (remaining() < n)
    throw error("the record ends inside a number");
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i)
    v = (v << 8) | static_cast<unsigned char>(p_[i]);
  p_ += n;
  return v;
}

std::string_view mp_cursor::take(std::size_t n, std::string_view what) {
  if (remaining() < n)
    fail(what, "runs past the end of the record");
  std::string_view out(p_, n);
  p_ += n;
  return out;
}

bool mp_cursor::str_length(unsigned char b, std::size_t& n) {
  if ((b & 0xe0) == 0xa0)
    n = b & 0x1f;
  else if (b == 0xd9)
    n = take_be(1);
  else if (b == 0xda)
    n = take_be(2);
  else if (b == 0xdb)
    n = take_be(4);
  else
    return false;
  return true;
}

bool mp_cursor::bin_length(unsigned char b, std::size_t& n) {
  if (b == 0xc4)
    n = take_be(1);
  else if (b == 0xc5)
    n = take_be(2);
  else if (b == 0xc6)
    n = take_be(4);
  else
    return false;
  return true;
}

bool mp_cursor::nil() {
  if (p_ < end_ && static_cast<unsigned char>(*p_) == 0xc0) {
    ++p_;
    return true;
  }
  return false;
}

std::uint32_t mp_cursor::array(std::string_view what) {
  if (p_ == end_)
    fail(what, "is missing");
  auto b = static_cast<unsigned char>(*p_);
  if ((b & 0xf0) == 0x90) {
    ++p_;
    return b & 0x0f;
  }
  if (b == 0xdc || b == 0xdd) {
    ++p_;
    return static_cast<std::uint32_t>(take_be(b == 0xdc ? 2 : 4));
  }
  fail(what, "is not an array");
}

std::uint64_t mp_cursor::u64(std::string_view what) {
  if (p_ == end_)
    fail(what, "is missing");
  auto b = static_cast<unsigned char>(*p_);
  if (b <= 0x7f) {
    ++p_;
    return b;
  }
  std::int64_t signed_value = 0;
  switch (b) {
    case 0xcc: ++p_; return take_be(1);
    case 0xcd: ++p_; return take_be(2);
    case 0xce: ++p_; return take_be(4);
    case 0xcf: ++p_; return take_be(8);
    case 0xd0: ++p_; signed_value = static_cast<std::int8_t>(take_be(1)); break;
    case 0xd1: ++p_; signed_value = static_cast<std::int16_t>(take_be(2)); break;
    case 0xd2: ++p_; signed_value = static_cast<std::int32_t>(take_be(4)); break;
    case 0xd3: ++p_; signed_value = static_cast<std::int64_t>(take_be(8)); break;
    default: fail(what, "is not an unsigned integer");
  }
  if (signed_value < 0)
    fail(what, "is not an unsigned integer");
  return static_cast<std::uint64_t>(signed_value);
}

std::string_view mp_cursor::str(std::string_view what) {
  if (p_ == end_)
    fail(what, "is missing");
  std::size_t n = 0;
  auto b = static_cast<unsigned char>(*p_);
  ++p_;
  if (!str_length(b, n)) {
    --p_;
    fail(what, "is not a string");
  }
  return take(n, what);
}

bool mp_cursor::boolean(std::string_view what) {
  if (p_ == end_)
    fail(what, "is missing");
  auto b = static_cast<unsigned char>(*p_);
  if (b != 0xc2 && b != 0xc3)
    fail(what, "is not a boolean");
  ++p_;
  return b == 0xc3;
}

value mp_cursor::read_value() {
  if (p_ == end_)
    throw error("a value is missing");
  auto b = static_cast<unsigned char>(*p_);
  if (b <= 0x7f) {
    ++p_;
    return value::integer(b);
  }
  if (b >= 0xe0) {
    ++p_;
    return value::integer(static_cast<std::int8_t>(b));
  }
  std::size_t n = 0;
  ++p_;
  if (str_length(b, n))
    return value::text(std::string(take(n, "text")));
  if (bin_length(b, n))
    return value::bytes(std::string(take(n, "bytes")));
  switch (b) {
    case 0xc0: return value::null();
    case 0xc2: return value::boolean(false);
    case 0xc3: return value::boolean(true);
    case 0xcc: return value::integer(static_cast<std::int64_t>(take_be(1)));
    case 0xcd: return value::integer(static_cast<std::int64_t>(take_be(2)));
    case 0xce: return value::integer(static_cast<std::int64_t>(take_be(4)));
    case 0xcf: {
      auto u = take_be(8);
      if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        throw error("an integer value is out of range");
      return value::integer(static_cast<std::int64_t>(u));
    }
    case 0xd0: return value::integer(static_cast<std::int8_t>(take_be(1)));
    case 0xd1: return value::integer(static_cast<std::int16_t>(take_be(2)));
    case 0xd2: return value::integer(static_cast<std::int32_t>(take_be(4)));
    case 0xd3: return value::integer(static_cast<std::int64_t>(take_be(8)));
    case 0xca: {
      auto bits = static_cast<std::uint32_t>(take_be(4));
      float f = 0;
      std::memcpy(&f, &bits, sizeof f);
      return value::real(f);
    }
    case 0xcb: {
      auto bits = take_be(8);
      double d = 0;
      std::memcpy(&d, &bits, sizeof d);
      return value::real(d);
    }
    default: break;
  }
  --p_;
  if ((b & 0xf0) == 0x90 || b == 0xdc || b == 0xdd) {
    if (array("exact value") != 2)
      throw error("an exact value is not a [type, text] pair");
    auto type = str("type");
    auto text = str("text");
    return value::exact(std::string(type), std::string(text));
  }
  throw error("a value has an unexpected MessagePack type");
}

row mp_cursor::read_row(std::string_view what) {
  auto n = array(what);
  row r;
  r.reserve(std::min<std::size_t>(n, remaining()));  // a damaged count cannot allocate much
  for (std::uint32_t i = 0; i < n; ++i)
    r.push_back(read_value());
  return r;
}

std::optional<row> mp_cursor::read_opt_row(std::string_view what) {
  if (nil())
    return std::nullopt;
  return read_row(what);
}

} // namespace syncmesh::store
