#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "store/records.hpp"
#include "store/schema.hpp"
#include "store/status.hpp"
#include "store/value.hpp"

namespace syncmesh::store {

/// How records are stored as LevelDB values: a one-byte record tag, a CRC-32
/// of the payload (little endian), then the MessagePack payload. Decoding
/// checks all three and every field's type, so damaged bytes read back from
/// disk become a corruption status naming `where` (the key), never a crash.
std::string encode_row(const row& r);
/// A row record that carries `meta` after the row (change::meta). Only a
/// store of format 3 or later holds one.
std::string encode_row(const row& r, std::string_view meta);

/// The bytes of the envelope's header (tag and CRC-32) before its payload.
inline constexpr std::size_t record_header_size = 5;

/// Seals the row record of `size` bytes at `record`, whose MessagePack
/// payload (as append_row writes it) follows its first record_header_size
/// bytes: writes the header there, so the record equals encode_row of the
/// row. For encoders that pack rows in place (store::row_encoder).
/// REQUIRES: size >= record_header_size.
void seal_row(char* record, std::size_t size);
/// The row of a row record, with or without meta (which it leaves out).
result<row> decode_row(std::string_view bytes, const std::string& where);
/// The row and meta of a row record (empty meta: it has none).
result<stored_row> decode_stored_row(std::string_view bytes, const std::string& where);

std::string encode_change(const change_record& c);
/// The same record from its parts, without copying rows into a
/// change_record (null: no row).
std::string encode_change(std::uint64_t seq, hlc_timestamp hlc, std::string_view origin,
                          std::string_view table, change_op op, const row& key,
                          const row* old_row, const row* new_row);
result<change_record> decode_change(std::string_view bytes, const std::string& where);

std::string encode_outbox(const outbox_entry& e);
result<outbox_entry> decode_outbox(std::string_view bytes, const std::string& where);

std::string encode_job(const job_state& j);
result<job_state> decode_job(std::string_view bytes, const std::string& where);

std::string encode_schema(const schema& s);
result<schema> decode_schema(std::string_view bytes, const std::string& where);

} // namespace syncmesh::store
