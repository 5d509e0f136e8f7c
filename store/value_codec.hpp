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
/// `Out` is any MessagePack output: write(const char*, std::size_t).
template <class Out>
void append_value(Out& out, const value& v) {
  msgpack::packer<Out> pk(out);
  switch (v.kind()) {
    case value_kind::null: pk.pack_nil(); break;
    case value_kind::boolean: pk.pack(v.as_bool()); break;
    case value_kind::integer: pk.pack_int64(v.as_int()); break;
    case value_kind::real: {
      // Always float64: msgpack-cxx's pack_double writes an integral double
      // as an integer, which would read back as another value.
      std::uint64_t bits = 0;
      const double d = v.as_real();
      static_assert(sizeof bits == sizeof d);
      std::memcpy(&bits, &d, sizeof d);
      char buf[9];
      buf[0] = static_cast<char>(0xcb);
      for (int i = 0; i < 8; ++i)
        buf[1 + i] = static_cast<char>((bits >> (8 * (7 - i))) & 0xff);
      out.write(buf, sizeof buf);
      break;
    }
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
