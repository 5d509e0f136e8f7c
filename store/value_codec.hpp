#pragma once

#include <cstdint>
#include <cstring>
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

/// Reads a value as append_value writes it. Also reads a float32 as a real.
/// Errors (invalid_argument, with a sentence): an integer outside int64, an
/// array that is not a [type, text] pair of strings, or a MessagePack type no
/// value has (map, ext). Never throws.
result<value> read_value(const msgpack::object& o);

/// Reads a row as append_row writes it. `what` names the row in sentences
/// ("key" gives "field 'key' is not an array").
result<row> read_row(const msgpack::object& o, std::string_view what);

} // namespace syncmesh::store
