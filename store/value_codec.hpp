#pragma once

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
void append_value(msgpack::sbuffer& out, const value& v);

/// A row as an array of values, in column order.
void append_row(msgpack::sbuffer& out, const row& r);

/// Reads a value as append_value writes it. Also reads a float32 as a real.
/// Errors (invalid_argument, with a sentence): an integer outside int64, an
/// array that is not a [type, text] pair of strings, or a MessagePack type no
/// value has (map, ext). Never throws.
result<value> read_value(const msgpack::object& o);

/// Reads a row as append_row writes it. `what` names the row in sentences
/// ("key" gives "field 'key' is not an array").
result<row> read_row(const msgpack::object& o, std::string_view what);

} // namespace syncmesh::store
