#include "store/key_codec.hpp"

#include <cstring>

namespace syncmesh::store {

namespace {

// Type tags, in the order types sort.
constexpr char tag_null = 0x01;
constexpr char tag_false = 0x02;
constexpr char tag_true = 0x03;
constexpr char tag_integer = 0x10;
constexpr char tag_real = 0x11;
constexpr char tag_text = 0x20;
constexpr char tag_bytes = 0x21;
constexpr char tag_exact = 0x22;

// Strings: 0x00 is escaped as 0x00 0xff and the string ends with 0x00 0x00's
// first byte, so "a" < "a\0" < "ab" holds after encoding.
void encode_string(std::string& out, std::string_view s) {
  for (char c : s) {
    out.push_back(c);
    if (c == '\0')
      out.push_back('\xff');
  }
  out.push_back('\0');
}

bool decode_string(std::string_view& in, std::string& s) {
  s.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '\0') {
      s.push_back(in[i]);
      continue;
    }
    if (i + 1 < in.size() && in[i + 1] == '\xff') {
      s.push_back('\0');
      ++i;
      continue;
    }
    in.remove_prefix(i + 1);
    return true;
  }
  return false;
}

std::uint64_t real_to_ordered(double d) {
  std::uint64_t bits;
  std::memcpy(&bits, &d, sizeof bits);
  // Negative numbers: flip all bits; positive: flip the sign bit.
  return (bits & (1ULL << 63)) ? ~bits : bits | (1ULL << 63);
}

double ordered_to_real(std::uint64_t bits) {
  bits = (bits & (1ULL << 63)) ? bits & ~(1ULL << 63) : ~bits;
  double d;
  std::memcpy(&d, &bits, sizeof d);
  return d;
}

} // namespace

void encode_u64_be(std::string& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xff));
}

std::uint64_t decode_u64_be(std::string_view bytes) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i)
    v = (v << 8) | static_cast<unsigned char>(bytes[i]);
  return v;
}

void encode_key_part(std::string& out, const value& v) {
  switch (v.kind()) {
    case value_kind::null: out.push_back(tag_null); break;
    case value_kind::boolean: out.push_back(v.as_bool() ? tag_true : tag_false); break;
    case value_kind::integer:
      out.push_back(tag_integer);
      encode_u64_be(out, static_cast<std::uint64_t>(v.as_int()) ^ (1ULL << 63));
      break;
    case value_kind::real:
      out.push_back(tag_real);
      encode_u64_be(out, real_to_ordered(v.as_real()));
      break;
    case value_kind::text:
      out.push_back(tag_text);
      encode_string(out, v.as_text());
      break;
    case value_kind::bytes:
      out.push_back(tag_bytes);
      encode_string(out, v.as_bytes());
      break;
    case value_kind::exact:
      out.push_back(tag_exact);
      encode_string(out, v.as_exact().type_name);
      encode_string(out, v.as_exact().text);
      break;
  }
}

std::string encode_key(const row& key) {
  std::string out;
  for (const auto& v : key)
    encode_key_part(out, v);
  return out;
}

result<value> decode_key_part(std::string_view& in) {
  if (in.empty())
    return status::corruption("key ends where a component was expected");
  char tag = in.front();
  in.remove_prefix(1);
  switch (tag) {
    case tag_null: return value::null();
    case tag_false: return value::boolean(false);
    case tag_true: return value::boolean(true);
    case tag_integer:
    case tag_real: {
      if (in.size() < 8)
        return status::corruption("key is truncated inside a number");
      auto bits = decode_u64_be(in);
      in.remove_prefix(8);
      if (tag == tag_integer)
        return value::integer(static_cast<std::int64_t>(bits ^ (1ULL << 63)));
      return value::real(ordered_to_real(bits));
    }
    case tag_text:
    case tag_bytes: {
      std::string s;
      if (!decode_string(in, s))
        return status::corruption("key is truncated inside a string");
      return tag == tag_text ? value::text(std::move(s)) : value::bytes(std::move(s));
    }
    case tag_exact: {
      std::string type, text;
      if (!decode_string(in, type) || !decode_string(in, text))
        return status::corruption("key is truncated inside an exact value");
      return value::exact(std::move(type), std::move(text));
    }
    default:
      return status::corruption("key has unknown type tag 0x"
                                + to_hex(std::string_view(&tag, 1)));
  }
}

result<row> decode_key(std::string_view bytes) {
  row out;
  while (!bytes.empty()) {
    auto part = decode_key_part(bytes);
    if (!part)
      return part.error();
    out.push_back(std::move(part).value());
  }
  return out;
}

std::string to_hex(std::string_view bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 0xf]);
  }
  return out;
}

} // namespace syncmesh::store
