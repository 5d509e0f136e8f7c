#pragma once

// The pgoutput logical replication protocol, version 1 (proto_version '1'),
// with column values in text format: one decoded message per XLogData
// payload, the relation and type descriptions the stream sends ahead of the
// changes that need them, and the conversion of a column's text to a
// store::value.
//
// Everything here is a plain library: no I/O, no threads, no actors. Decoding
// never trusts the bytes: every field is bounds-checked and a damaged or
// unexpected payload is a corruption status naming the message and the
// field, never a crash or an out-of-range read.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "store/status.hpp"
#include "store/value.hpp"

namespace syncmesh::connectors::postgres {

/// A position in PostgreSQL's write-ahead log, as the 64-bit number the
/// protocol carries; PostgreSQL prints it as "%X/%X" (high/low 32 bits).
using wal_position = std::uint64_t;

/// Microseconds since 2000-01-01 00:00:00 UTC (PostgreSQL's epoch), the unit
/// of every timestamp in the protocol.
using pg_time_us = std::int64_t;

/// PostgreSQL's epoch in microseconds since the Unix epoch: add it to a
/// pg_time_us to get Unix microseconds.
inline constexpr std::int64_t pg_epoch_unix_us = 946'684'800'000'000;

/// The message types of protocol version 1. The enumerator values are the
/// type bytes on the wire.
enum class message_kind : char {
  begin = 'B',
  commit = 'C',
  origin = 'O',
  relation = 'R',
  type = 'Y',
  insert = 'I',
  update = 'U',
  delete_ = 'D',
  truncate = 'T',
  message = 'M',
};

/// "Begin", "Commit", "Origin", "Relation", "Type", "Insert", "Update",
/// "Delete", "Truncate" or "Message": PostgreSQL's names for the types.
const char* to_string(message_kind kind) noexcept;

/// B: the start of a transaction. Changes until the matching Commit belong
/// to it.
struct begin_message {
  wal_position final_lsn = 0;  // the commit record's LSN
  pg_time_us commit_time_us = 0;
  std::uint32_t xid = 0;
};

/// C: the end of the transaction opened by the last Begin.
struct commit_message {
  std::uint8_t flags = 0;  // unused by PostgreSQL 15; kept as received
  wal_position commit_lsn = 0;
  wal_position end_lsn = 0;  // confirm this once the transaction is durable
  pg_time_us commit_time_us = 0;
};

/// O: the transaction was committed under a replication origin (e.g. a push
/// from a node); sent between Begin and the first change.
struct origin_message {
  wal_position origin_lsn = 0;  // the commit's LSN on the origin; 0 when not set up
  std::string name;
};

/// One column of a relation, in the table's column order (dropped and
/// generated columns are not sent).
struct relation_column {
  static constexpr std::uint8_t key_flag = 1;

  std::uint8_t flags = 0;  // bit 0: part of the replica identity
  std::string name;
  std::uint32_t type_oid = 0;
  std::int32_t type_modifier = -1;  // atttypmod; -1 when the type has none

  bool is_key() const noexcept { return (flags & key_flag) != 0; }
};

/// R: the description of a table, sent before the first change to it in a
/// session and again after anything invalidates PostgreSQL's cached copy
/// (ALTER TABLE, but also TRUNCATE). Also the entry of relation_cache.
struct relation {
  std::uint32_t oid = 0;
  std::string namespace_name;  // "" for pg_catalog
  std::string name;
  /// REPLICA IDENTITY: 'd' default (primary key), 'n' nothing, 'f' full,
  /// 'i' index.
  char replica_identity = 'd';
  std::vector<relation_column> columns;
};

/// Y: the name of a type that is not built in, sent before the Relation of
/// a table that uses it.
struct type_message {
  std::uint32_t oid = 0;
  std::string namespace_name;  // "" for pg_catalog
  std::string name;
};

/// How a column arrives in a tuple. The enumerator values are the bytes on
/// the wire.
enum class column_kind : char {
  null = 'n',
  /// An out-of-line TOASTed value the change did not touch: its value is not
  /// sent; keep the one already held for the row.
  unchanged_toast = 'u',
  text = 't',
};

/// One column of a tuple. `text` is PostgreSQL's text output of the value,
/// exactly as sent; empty unless kind is column_kind::text.
struct tuple_column {
  column_kind kind = column_kind::null;
  std::string text;

  bool operator==(const tuple_column& other) const {
    return kind == other.kind && text == other.text;
  }
  bool operator!=(const tuple_column& other) const { return !(*this == other); }
};

/// A row as the stream sends it: one entry per column of its relation.
using tuple_data = std::vector<tuple_column>;

/// Which old row an Update or Delete carries. The enumerator values are the
/// bytes on the wire.
enum class old_tuple_kind : char {
  none = 0,
  /// 'K': the replica identity columns; every other column is null.
  key = 'K',
  /// 'O': the whole old row (REPLICA IDENTITY FULL).
  full = 'O',
};

/// I: a new row.
struct insert_message {
  std::uint32_t relation_oid = 0;
  tuple_data new_tuple;
};

/// U: a changed row. The old row is sent only when the replica identity
/// changed ('K') or the table is REPLICA IDENTITY FULL ('O'); otherwise
/// old_kind is none and old_tuple is empty.
struct update_message {
  std::uint32_t relation_oid = 0;
  old_tuple_kind old_kind = old_tuple_kind::none;
  tuple_data old_tuple;
  tuple_data new_tuple;
};

/// D: a removed row, identified by its key ('K') or whole old row ('O').
/// old_kind is never none.
struct delete_message {
  std::uint32_t relation_oid = 0;
  old_tuple_kind old_kind = old_tuple_kind::key;
  tuple_data old_tuple;
};

/// T: TRUNCATE of one or more tables in one statement.
struct truncate_message {
  static constexpr std::uint8_t cascade_flag = 1;
  static constexpr std::uint8_t restart_identity_flag = 2;

  std::uint8_t options = 0;
  std::vector<std::uint32_t> relation_oids;

  bool cascade() const noexcept { return (options & cascade_flag) != 0; }
  bool restart_identity() const noexcept { return (options & restart_identity_flag) != 0; }
};

/// M: a message from pg_logical_emit_message (sent only when the stream was
/// started with the option messages 'true'). A transactional one arrives
/// between its transaction's Begin and Commit; a non-transactional one
/// arrives on its own, outside any Begin/Commit.
struct logical_message {
  static constexpr std::uint8_t transactional_flag = 1;

  bool transactional = false;
  wal_position message_lsn = 0;
  std::string prefix;
  std::string content;  // arbitrary bytes
};

/// One decoded pgoutput message.
using pg_message =
  std::variant<begin_message, commit_message, origin_message, relation, type_message,
               insert_message, update_message, delete_message, truncate_message,
               logical_message>;

/// Which kind of message `m` holds.
message_kind kind_of(const pg_message& m) noexcept;

/// A one-line description for logs, e.g.
/// "Insert into 16385 new ('1', 'ada', null, unchanged)". Column texts longer
/// than 32 bytes are cut, with their length noted.
std::string describe(const pg_message& m);

/// Decodes one pgoutput message: the bytes of an XLogData payload after its
/// 'w' header (the caller strips 'w' and the three int64 fields), or one
/// `data` value of pg_logical_slot_get_binary_changes. The whole payload must
/// be exactly one message.
///
/// Errors are corruption statuses naming the message type and what was
/// wrong: a field cut off by the end of the payload, an unknown type byte, a
/// bad tuple column kind, a length past the end, a negative count, bytes
/// left over after the message. Messages of protocol versions above 1
/// (streaming, two-phase) and binary-format columns are refused the same
/// way, with a sentence saying so.
store::result<pg_message> decode(std::string_view payload);

/// The relations the stream has described, by oid. The stream describes a
/// relation before its first change in a session and again after it may have
/// changed, so a change whose relation is not found here means the stream and the
/// cache are out of step (e.g. the cache was not kept across a reconnect's
/// Relation messages).
///
/// Not thread-safe: one thread at a time.
class relation_cache {
public:
  /// Remembers `r`, replacing what was known about the same oid.
  void update(const relation& r);

  /// The relation with `oid`, or nullptr when none was described. The
  /// pointer stays valid until the next update() of the same oid or the
  /// cache is destroyed.
  const relation* find(std::uint32_t oid) const;

  /// How many relations are known.
  std::size_t size() const noexcept { return relations_.size(); }

private:
  std::unordered_map<std::uint32_t, relation> relations_;
};

/// The names of column types by oid: built-in types by their PostgreSQL name
/// ("int8", "timestamptz", "interval", "int4[]", ...), other types as the
/// stream's Type messages described them.
///
/// Not thread-safe: one thread at a time.
class type_names {
public:
  /// Remembers the name of a type that is not built in.
  void update(const type_message& t);

  /// "int8" for a built-in type; "namespace.name" (or "name" when the
  /// namespace is pg_catalog) for one a Type message described; "oid:N"
  /// otherwise.
  std::string name_of(std::uint32_t type_oid) const;

private:
  std::unordered_map<std::uint32_t, std::string> names_;
};

/// Converts PostgreSQL's text output of one value of type `type_oid` to a
/// store::value:
///   bool (16)                                  -> boolean ('t' / 'f')
///   int2, int4, int8 (21, 23, 20)              -> integer (range-checked)
///   float4, float8 (700, 701)                  -> real (incl. NaN, ±Infinity)
///   text, varchar, bpchar, name, uuid          -> text
///     (25, 1043, 1042, 19, 2950)
///   bytea (17, hex format '\x…')               -> bytes
///   numeric (1700)                             -> exact "numeric"
///   timestamp, timestamptz, date, time         -> exact "timestamp",
///     (1114, 1184, 1082, 1083)                    "timestamptz", "date", "time"
///   json, jsonb (114, 3802)                    -> exact "json", "jsonb"
///   anything else                              -> exact names.name_of(type_oid)
/// Text that the type cannot have (e.g. "abc" for int8, "x" for bool, a
/// bytea without "\x" or with odd or non-hex digits) is a corruption status
/// naming the type and the text.
store::result<store::value> to_value(std::uint32_t type_oid, std::string_view text,
                                     const type_names& names);

/// Converts one column of a tuple: null -> store::value::null(), text -> as
/// the overload above, with errors naming the column (e.g. "int8 column 'id'
/// has text 'abc', which is not an integer"). An unchanged TOAST column has no
/// value to convert and is an invalid_argument status: merge it from the
/// row already held.
store::result<store::value> to_value(const relation_column& column, const tuple_column& datum,
                                     const type_names& names);

/// Converts a whole tuple of `rel`, one entry per column in the relation's
/// order; an unchanged TOAST column is nullopt. A tuple whose column count
/// differs from the relation's is a corruption status (the relation
/// description is stale or the message is damaged).
store::result<std::vector<std::optional<store::value>>> to_values(const relation& rel,
                                                                  const tuple_data& tuple,
                                                                  const type_names& names);

} // namespace syncmesh::connectors::postgres
