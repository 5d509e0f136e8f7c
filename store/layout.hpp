#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "store/value.hpp"

namespace syncmesh::store::layout {

/// The LevelDB key space. Each kind of record has a one-byte prefix; rows of
/// a table share the prefix 'R' + encoded table name, followed by the
/// order-preserving primary key, so a table scan is one range in key order.
///
///   M<name>             meta: format version, node id, last HLC
///   S<table>            schema catalog
///   R<table><pk>        table rows
///   L<seq:u64be>        change log, in apply order
///   O<seq:u64be>        outbox, in write order
///   J<view>             job state per view
///   K<source>           cursor per source (LSN, peer watermark, ...)
///   X<name>             extension records: opaque values a connector keeps
///                       with its data (peer row versions, peer watermarks),
///                       named by the connector ("peer/...")
///
/// Bump `format_version` whenever a stored encoding changes; a store refuses
/// to open data written by a newer version.
inline constexpr std::uint32_t format_version = 1;

inline constexpr char meta_prefix = 'M';
inline constexpr char schema_prefix = 'S';
inline constexpr char row_prefix = 'R';
inline constexpr char log_prefix = 'L';
inline constexpr char outbox_prefix = 'O';
inline constexpr char job_prefix = 'J';
inline constexpr char cursor_prefix = 'K';
inline constexpr char ext_prefix = 'X';

std::string meta_key(std::string_view name);
std::string schema_key(std::string_view table);
std::string row_prefix_of(std::string_view table);
std::string row_key(std::string_view table, const row& key);
std::string log_key(std::uint64_t seq);
std::string outbox_key(std::uint64_t seq);
std::string job_key(std::string_view view);
std::string cursor_key(std::string_view source);
std::string ext_key(std::string_view name);

/// The smallest key greater than every key starting with `prefix`.
std::string prefix_end(std::string prefix);

/// A readable name for a raw key, for error messages:
/// "row users(42) [key 52...]".
std::string describe_key(std::string_view raw);

} // namespace syncmesh::store::layout
