#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string_view>

#include <msgpack.hpp>

#include "store/status.hpp"
#include "store/value.hpp"

namespace syncmesh::store {

/// The MessagePack form of cell values, shared by the stored record envelopes
/// (record_codec) and the peer protocol (messaging/peer_protocol), so a value
/// has one encoding on disk and on the wire:
///
///   null → nil, boolean → bool, integer → int (smallest form),
///   real → float64 (always, even when integral), text → str,
///   bytes → bin, exact → [type_name, text].
///
/// Every value has exactly one encoding; read_value(append_value(v)) == v.
/// `Out` is any MessagePack output: write(const char*, std::size_t). The
/// append_<kind> functions write the same bytes as append_value of a value of
/// that kind, for encoders that never build the value (store::row_encoder).
template <class Out>
void append_null(Out& out) {
  msgpack::packer<Out>(out).pack_nil();
}

template <class Out>
void append_bool(Out& out, bool b) {
  msgpack::packer<Out> pk(out);
  if (b)
    pk.pack_true();
  else
    pk.pack_false();
}

template <class Out>
void append_int(Out& out, std::int64_t i) {
  msgpack::packer<Out>(out).pack_int64(i);
}

template <class Out>
void append_real(Out& out, double d) {
  // Always float64: msgpack-cxx's pack_double writes an integral double
  // as an integer, which would read back as another value.
  std::uint64_t bits = 0;
  static_assert(sizeof bits == sizeof d);
  std::memcpy(&bits, &d, sizeof d);
  char buf[9];
  buf[0] = static_cast<char>(0xcb);
  for (int i = 0; i < 8; ++i)
    buf[1 + i] = static_cast<char>((bits >> (8 * (7 - i))) & 0xff);
  out.write(buf, sizeof buf);
}

template <class Out>
void append_text(Out& out, std::string_view s) {
  msgpack::packer<Out> pk(out);
  pk.pack_str(static_cast<std::uint32_t>(s.size()));
  pk.pack_str_body(s.data(), static_cast<std::uint32_t>(s.size()));
}

template <class Out>
void append_bytes(Out& out, std::string_view s) {
  msgpack::packer<Out> pk(out);
  pk.pack_bin(static_cast<std::uint32_t>(s.size()));
  pk.pack_bin_body(s.data(), static_cast<std::uint32_t>(s.size()));
}

template <class Out>
void append_exact(Out& out, std::string_view type_name, std::string_view text) {
  msgpack::packer<Out>(out).pack_array(2);
  append_text(out, type_name);
  append_text(out, text);
}

template <class Out>
void append_value(Out& out, const value& v) {
  switch (v.kind()) {
    case value_kind::null: append_null(out); break;
    case value_kind::boolean: append_bool(out, v.as_bool()); break;
    case value_kind::integer: append_int(out, v.as_int()); break;
    case value_kind::real: append_real(out, v.as_real()); break;
    case value_kind::text: append_text(out, v.as_text()); break;
    case value_kind::bytes: append_bytes(out, v.as_bytes()); break;
    case value_kind::exact: append_exact(out, v.as_exact().type_name, v.as_exact().text); break;
  }
}

/// A row as an array of values, in column order.
template <class Out>
void append_row(Out& out, const row& r) {
  msgpack::packer<Out>(out).pack_array(static_cast<std::uint32_t>(r.size()));
  for (const auto& v : r)
    append_value(out, v);
}

/// A forward reader over MessagePack bytes for the fixed shapes of the hot
/// stored records (rows, change-log and outbox entries): it reads them
/// without msgpack-cxx's object tree, which costs a zone and one object per
/// element per record (a third of the time a push spends reading its
/// outbox). Every read checks the bytes left; anything malformed or of the
/// wrong type throws mp_cursor::error with a sentence naming the field.
/// Not a general MessagePack parser: maps and ext are never expected.
class mp_cursor {
public:
  struct error : std::runtime_error {
    using std::runtime_error::runtime_error;
  };

  explicit mp_cursor(std::string_view bytes) : p_(bytes.data()), end_(bytes.data() + bytes.size()) {}

  std::size_t remaining() const { return static_cast<std::size_t>(end_ - p_); }

  /// Whether the next item is nil; consumes it if so.
  bool nil();
  /// The element count of an array header.
  std::uint32_t array(std::string_view what);
  /// A non-negative integer in any integer form.
  std::uint64_t u64(std::string_view what);
  /// A string's bytes (valid while the input is).
  std::string_view str(std::string_view what);
  bool boolean(std::string_view what);
  /// A value as append_value writes it (a float32 reads as a real).
  value read_value();
  /// A row as append_row writes it.
  row read_row(std::string_view what);
  /// nil, or a row.
  std::optional<row> read_opt_row(std::string_view what);

private:
  [[noreturn]] void fail(std::string_view what, const char* problem) const;
  std::uint64_t take_be(std::size_t n);        // n big-endian bytes
  std::string_view take(std::size_t n, std::string_view what);
  // The length of a str/bin whose header byte `b` was taken; false: not one.
  bool str_length(unsigned char b, std::size_t& n);
  bool bin_length(unsigned char b, std::size_t& n);

  const char* p_;
  const char* end_;
};

/// Reads a value as append_value writes it. Also reads a float32 as a real.
/// Errors (invalid_argument, with a sentence): an integer outside int64, an
/// array that is not a [type, text] pair of strings, or a MessagePack type no
/// value has (map, ext). Never throws.
result<value> read_value(const msgpack::object& o);

/// Reads a row as append_row writes it. `what` names the row in sentences
/// ("key" gives "field 'key' is not an array").
result<row> read_row(const msgpack::object& o, std::string_view what);

} // namespace syncmesh::store
