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
///   R<table><pk>        table rows at generation 0 (every table starts there),
///                       each with its writer's meta, if any (format 3)
///   G<table><gen:u64be><pk>
///                       table rows at generation gen >= 1: a staged copy
///                       being written, the live copy once swapped in, or
///                       garbage (an abandoned stage, a retired copy)
///   T<table>            the table's live generation (u64be); absent = 0
///   L<seq:u64be>        change log, in apply order
///   O<seq:u64be>        outbox, in write order
///   J<view>             job state per view
///   K<source>           cursor per source (LSN, peer watermark, ...)
///   X<name>             extension records: opaque values a connector keeps
///                       with its data (peer row versions, peer watermarks),
///                       named by the connector ("peer/...")
///
/// A table's rows are read only from its live generation. A staged copy is
/// written in bounded batches into a fresh generation nobody reads, then one
/// batch writes T<table> (and the schema and a `replace` change-log entry),
/// which swaps it in; every other generation of the table is garbage,
/// deleted in bounded steps afterwards or, after a crash, found and deleted
/// again at the next open.
///
/// Bump `format_version` whenever a stored encoding changes; a store refuses
/// to open data written by a newer version. Format 2 added generations (G, T
/// and the `replace` change-log operation). A format-1 store opens as it is
/// (every table at generation 0) and stays format 1, readable by older
/// builds, until its first swap writes format 2 in the same batch. Format 3
/// added row records that carry their writer's meta (change::meta); an
/// older store likewise stays as it is until the first such row writes
/// format 3 with it.
inline constexpr std::uint32_t format_version = 3;
/// The first format with generations.
inline constexpr std::uint32_t generations_format_version = 2;
/// The first format whose row records may carry meta.
inline constexpr std::uint32_t meta_rows_format_version = 3;

inline constexpr char meta_prefix = 'M';
inline constexpr char schema_prefix = 'S';
inline constexpr char row_prefix = 'R';
inline constexpr char log_prefix = 'L';
inline constexpr char outbox_prefix = 'O';
inline constexpr char job_prefix = 'J';
inline constexpr char cursor_prefix = 'K';
inline constexpr char ext_prefix = 'X';
inline constexpr char generation_row_prefix = 'G';
inline constexpr char live_generation_prefix = 'T';

std::string meta_key(std::string_view name);
std::string schema_key(std::string_view table);
std::string row_prefix_of(std::string_view table);
std::string row_key(std::string_view table, const row& key);
/// The prefix of the rows of `table` at `generation`: row_prefix_of(table)
/// for generation 0, G<table><generation> otherwise.
std::string generation_prefix_of(std::string_view table, std::uint64_t generation);
std::string live_generation_key(std::string_view table);
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
