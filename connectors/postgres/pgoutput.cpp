#include "connectors/postgres/pgoutput.hpp"
#include "connectors/postgres/hex.hpp"

#include <algorithm>
#include <charconv>
#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <limits>
#include <system_error>
#include <type_traits>
#include <utility>

namespace syncmesh::connectors::postgres {

namespace {

// --- rendering helpers shared by errors and describe() ---------------------

std::string format_lsn(wal_position lsn) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%" PRIX32 "/%" PRIX32, static_cast<std::uint32_t>(lsn >> 32),
                static_cast<std::uint32_t>(lsn));
  return buf;
}

std::string format_time(pg_time_us t) {
  // Floor division so that times before 1970 keep a non-negative fraction.
  const std::int64_t unix_us = t + pg_epoch_unix_us;
  std::int64_t secs = unix_us / 1'000'000;
  std::int64_t frac = unix_us % 1'000'000;
  if (frac < 0) {
    frac += 1'000'000;
    secs -= 1;
  }
  const std::time_t tt = static_cast<std::time_t>(secs);
  std::tm tm{};
  if (::gmtime_r(&tt, &tm) == nullptr)
    return std::to_string(t) + "us";
  char date[40];
  std::strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%s.%06d UTC", date, static_cast<int>(frac));
  return buf;
}

/// 'x' (0x78) — readable whether or not the byte is printable.
std::string show_byte(std::uint8_t b) {
  char buf[16];
  if (b >= 0x20 && b < 0x7f)
    std::snprintf(buf, sizeof(buf), "'%c' (0x%02x)", static_cast<char>(b), b);
  else
    std::snprintf(buf, sizeof(buf), "0x%02x", b);
  return buf;
}

/// "1 byte", "3 bytes".
std::string bytes_count(std::size_t n) {
  return std::to_string(n) + (n == 1 ? " byte" : " bytes");
}

/// `text` quoted, cut to about `max_chars` bytes with the full length noted, so a
/// 1 MB TOASTed value does not flood a log line or an error.
std::string quote_short(std::string_view text, std::size_t max_chars) {
  if (text.size() <= max_chars)
    return "'" + std::string(text) + "'";
  // Cut before a UTF-8 continuation byte so the line stays valid UTF-8.
  std::size_t cut = max_chars;
  while (cut > 0 && (static_cast<std::uint8_t>(text[cut]) & 0xc0) == 0x80)
    --cut;
  return "'" + std::string(text.substr(0, cut)) + "…' (" + bytes_count(text.size()) + ")";
}

const char* replica_identity_name(char c) {
  switch (c) {
    case 'd': return "default";
    case 'n': return "nothing";
    case 'f': return "full";
    case 'i': return "index";
  }
  return "unknown";
}

// --- the bounds-checked reader ----------------------------------------------

/// Reads big-endian fields from one message. The first failure is recorded
/// with the field that failed; every later read fails without touching the
/// bytes, so decoders may check once per group of fields.
class reader {
public:
  /// Reads `payload` from just after its type byte; offsets in errors count
  /// from the type byte.
  reader(std::string_view payload, const char* message_name)
    : bytes_(payload), pos_(1), message_name_(message_name) {}

  std::size_t remaining() const noexcept { return bytes_.size() - pos_; }
  std::size_t offset() const noexcept { return pos_; }
  bool failed() const noexcept { return !error_.empty(); }

  /// Names the tuple (and column within it) the next reads belong to, for
  /// error messages.
  void enter_tuple(const char* tuple_name) {
    tuple_name_ = tuple_name;
    column_index_ = no_column;
  }
  void enter_column(std::size_t index) { column_index_ = index; }
  void leave_tuple() { tuple_name_ = nullptr; }

  bool u8(std::uint8_t& out, const char* field) {
    std::uint64_t v = 0;
    if (!big_endian(1, v, field))
      return false;
    out = static_cast<std::uint8_t>(v);
    return true;
  }
  bool i16(std::int16_t& out, const char* field) {
    std::uint64_t v = 0;
    if (!big_endian(2, v, field))
      return false;
    out = static_cast<std::int16_t>(static_cast<std::uint16_t>(v));
    return true;
  }
  bool u32(std::uint32_t& out, const char* field) {
    std::uint64_t v = 0;
    if (!big_endian(4, v, field))
      return false;
    out = static_cast<std::uint32_t>(v);
    return true;
  }
  bool i32(std::int32_t& out, const char* field) {
    std::uint32_t v = 0;
    if (!u32(v, field))
      return false;
    out = static_cast<std::int32_t>(v);
    return true;
  }
  bool u64(std::uint64_t& out, const char* field) { return big_endian(8, out, field); }
  bool i64(std::int64_t& out, const char* field) {
    std::uint64_t v = 0;
    if (!big_endian(8, v, field))
      return false;
    out = static_cast<std::int64_t>(v);
    return true;
  }

  /// A zero-terminated string; the terminator must lie inside the message.
  bool cstring(std::string& out, const char* field) {
    if (failed())
      return false;
    const std::size_t end = bytes_.find('\0', pos_);
    if (end == std::string_view::npos)
      return fail("the " + where(field) + " at offset " + std::to_string(pos_)
                  + " has no terminating zero byte before the end of the message");
    out.assign(bytes_.data() + pos_, end - pos_);
    pos_ = end + 1;
    return true;
  }

  /// `n` raw bytes, checked against what is left before anything is copied.
  bool bytes(std::string& out, std::size_t n, const char* field) {
    if (!need(n, field))
      return false;
    out.assign(bytes_.data() + pos_, n);
    pos_ += n;
    return true;
  }

  /// A count read as a signed int that must not be negative.
  bool count(std::int64_t value, const char* field) {
    if (value < 0)
      return fail("the " + where(field) + " is " + std::to_string(value)
                  + ", a negative count");
    return true;
  }

  /// Records `sentence` as the error unless one is already recorded.
  bool fail(std::string sentence) {
    if (!failed())
      error_ = "pgoutput " + std::string(message_name_) + " message is damaged: "
               + std::move(sentence);
    return false;
  }

  /// The field's name with the tuple column it belongs to, if any.
  std::string where(const char* field) const {
    if (tuple_name_ == nullptr)
      return field;
    if (column_index_ == no_column)
      return std::string(field) + " of the " + tuple_name_;
    return std::string(field) + " of column " + std::to_string(column_index_ + 1) + " in the "
           + tuple_name_;
  }

  store::status error() const { return store::status::corruption(error_); }

private:
  bool need(std::size_t n, const char* field) {
    if (failed())
      return false;
    if (remaining() >= n)
      return true;
    error_ = "pgoutput " + std::string(message_name_) + " message is cut off: the "
             + where(field) + " needs " + bytes_count(n) + " at offset " + std::to_string(pos_)
             + " but only " + std::to_string(remaining()) + " of the "
             + std::to_string(bytes_.size()) + "-byte payload are left";
    return false;
  }

  bool big_endian(std::size_t n, std::uint64_t& out, const char* field) {
    if (!need(n, field))
      return false;
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i)
      v = (v << 8) | static_cast<std::uint8_t>(bytes_[pos_ + i]);
    pos_ += n;
    out = v;
    return true;
  }

  static constexpr std::size_t no_column = static_cast<std::size_t>(-1);

  std::string_view bytes_;
  std::size_t pos_;
  const char* message_name_;
  const char* tuple_name_ = nullptr;  // null: not inside a tuple
  std::size_t column_index_ = 0;
  std::string error_;
};

// --- per-message decoders ---------------------------------------------------
// Each reads the fields after the type byte and returns false with the
// reader's error recorded when they are not all there or not valid.

bool read_tuple(reader& r, const char* tuple_name, tuple_data& out) {
  r.enter_tuple(tuple_name);
  std::int16_t n = 0;
  if (!r.i16(n, "column count") || !r.count(n, "column count"))
    return false;
  // Every column takes at least its kind byte; never reserve past that.
  out.reserve(std::min<std::size_t>(static_cast<std::size_t>(n), r.remaining()));
  for (std::size_t i = 0; i < static_cast<std::size_t>(n); ++i) {
    r.enter_column(i);
    std::uint8_t kind = 0;
    if (!r.u8(kind, "kind byte"))
      return false;
    tuple_column col;
    switch (kind) {
      case 'n': col.kind = column_kind::null; break;
      case 'u': col.kind = column_kind::unchanged_toast; break;
      case 't': {
        col.kind = column_kind::text;
        std::int32_t len = 0;
        if (!r.i32(len, "text length") || !r.count(len, "text length")
            || !r.bytes(col.text, static_cast<std::size_t>(len), "text"))
          return false;
        break;
      }
      case 'b':
        return r.fail("the " + r.where("kind byte")
                      + " is 'b' (binary format), which syncmesh does not decode;"
                        " start the stream without the 'binary' option");
      default:
        return r.fail("the " + r.where("kind byte") + " is " + show_byte(kind)
                      + " where 'n' (null), 'u' (unchanged TOAST) or 't' (text) belongs");
    }
    out.push_back(std::move(col));
  }
  r.leave_tuple();
  return true;
}

bool read_begin(reader& r, begin_message& m) {
  return r.u64(m.final_lsn, "final LSN") && r.i64(m.commit_time_us, "commit timestamp")
         && r.u32(m.xid, "transaction id");
}

bool read_commit(reader& r, commit_message& m) {
  return r.u8(m.flags, "flags") && r.u64(m.commit_lsn, "commit LSN")
         && r.u64(m.end_lsn, "end LSN") && r.i64(m.commit_time_us, "commit timestamp");
}

bool read_origin(reader& r, origin_message& m) {
  return r.u64(m.origin_lsn, "origin LSN") && r.cstring(m.name, "origin name");
}

bool read_relation(reader& r, relation& m) {
  std::uint8_t identity = 0;
  std::int16_t n = 0;
  if (!r.u32(m.oid, "relation oid") || !r.cstring(m.namespace_name, "namespace")
      || !r.cstring(m.name, "relation name") || !r.u8(identity, "replica identity")
      || !r.i16(n, "column count"))
    return false;
  m.replica_identity = static_cast<char>(identity);
  if (std::string_view("dnfi").find(m.replica_identity) == std::string_view::npos)
    return r.fail("the replica identity is " + show_byte(identity)
                  + " where 'd', 'n', 'f' or 'i' belongs");
  if (!r.count(n, "column count"))
    return false;
  // A column takes at least 10 bytes (flags, empty name, type oid, modifier).
  m.columns.reserve(std::min<std::size_t>(static_cast<std::size_t>(n), r.remaining() / 10));
  for (std::int16_t i = 0; i < n; ++i) {
    relation_column c;
    if (!r.u8(c.flags, "column flags") || !r.cstring(c.name, "column name")
        || !r.u32(c.type_oid, "column type oid") || !r.i32(c.type_modifier, "column type modifier"))
      return false;
    m.columns.push_back(std::move(c));
  }
  return true;
}

bool read_type(reader& r, type_message& m) {
  return r.u32(m.oid, "type oid") && r.cstring(m.namespace_name, "namespace")
         && r.cstring(m.name, "type name");
}

bool read_insert(reader& r, insert_message& m) {
  std::uint8_t marker = 0;
  if (!r.u32(m.relation_oid, "relation oid") || !r.u8(marker, "new tuple marker"))
    return false;
  if (marker != 'N')
    return r.fail("the new tuple marker is " + show_byte(marker) + " where 'N' belongs");
  return read_tuple(r, "new tuple", m.new_tuple);
}

bool read_update(reader& r, update_message& m) {
  std::uint8_t marker = 0;
  if (!r.u32(m.relation_oid, "relation oid") || !r.u8(marker, "tuple marker"))
    return false;
  if (marker == 'K' || marker == 'O') {
    m.old_kind = static_cast<old_tuple_kind>(marker);
    if (!read_tuple(r, marker == 'K' ? "old key" : "old tuple", m.old_tuple)
        || !r.u8(marker, "new tuple marker"))
      return false;
    if (marker != 'N')
      return r.fail("the new tuple marker is " + show_byte(marker) + " where 'N' belongs");
  } else if (marker != 'N') {
    return r.fail("the tuple marker is " + show_byte(marker)
                  + " where 'K' (old key), 'O' (old tuple) or 'N' (new tuple) belongs");
  }
  return read_tuple(r, "new tuple", m.new_tuple);
}

bool read_delete(reader& r, delete_message& m) {
  std::uint8_t marker = 0;
  if (!r.u32(m.relation_oid, "relation oid") || !r.u8(marker, "old tuple marker"))
    return false;
  if (marker != 'K' && marker != 'O')
    return r.fail("the old tuple marker is " + show_byte(marker)
                  + " where 'K' (old key) or 'O' (old tuple) belongs");
  m.old_kind = static_cast<old_tuple_kind>(marker);
  return read_tuple(r, marker == 'K' ? "old key" : "old tuple", m.old_tuple);
}

bool read_truncate(reader& r, truncate_message& m) {
  std::int32_t n = 0;
  if (!r.i32(n, "relation count") || !r.count(n, "relation count")
      || !r.u8(m.options, "options"))
    return false;
  if (r.remaining() / 4 < static_cast<std::size_t>(n))
    return r.fail("the relation count is " + std::to_string(n) + " but only "
                  + bytes_count(r.remaining()) + " of 4-byte relation oids follow");
  m.relation_oids.resize(static_cast<std::size_t>(n));
  for (auto& oid : m.relation_oids)
    if (!r.u32(oid, "relation oid"))
      return false;
  return true;
}

bool read_message(reader& r, logical_message& m) {
  std::uint8_t flags = 0;
  std::int32_t len = 0;
  if (!r.u8(flags, "flags") || !r.u64(m.message_lsn, "LSN") || !r.cstring(m.prefix, "prefix")
      || !r.i32(len, "content length") || !r.count(len, "content length")
      || !r.bytes(m.content, static_cast<std::size_t>(len), "content"))
    return false;
  m.transactional = (flags & logical_message::transactional_flag) != 0;
  return true;
}

/// Names the message types of later protocol versions, so that a stream
/// started with the wrong options says so instead of "unknown byte".
const char* later_version_message(std::uint8_t type) {
  switch (type) {
    case 'S': return "Stream Start";
    case 'E': return "Stream Stop";
    case 'c': return "Stream Commit";
    case 'A': return "Stream Abort";
    case 'b': return "Begin Prepare";
    case 'P': return "Prepare";
    case 'K': return "Commit Prepared";
    case 'r': return "Rollback Prepared";
    case 'p': return "Stream Prepare";
  }
  return nullptr;
}

template <class Message, class Read>
store::result<pg_message> decode_as(std::string_view payload, message_kind kind, Read read) {
  reader r(payload, to_string(kind));
  Message m;
  if (!read(r, m))
    return r.error();
  if (r.remaining() != 0) {
    r.fail(bytes_count(r.remaining()) + " left over after the message ends at offset "
           + std::to_string(r.offset()));
    return r.error();
  }
  return pg_message(std::move(m));
}

// --- describe() ---------------------------------------------------------------

std::string describe_tuple(const tuple_data& t) {
  std::string out = "(";
  for (std::size_t i = 0; i < t.size(); ++i) {
    if (i > 0)
      out += ", ";
    switch (t[i].kind) {
      case column_kind::null: out += "null"; break;
      case column_kind::unchanged_toast: out += "unchanged"; break;
      case column_kind::text: out += quote_short(t[i].text, 32); break;
    }
  }
  return out + ")";
}

const char* old_tuple_label(old_tuple_kind k) {
  switch (k) {
    case old_tuple_kind::key: return "key";
    case old_tuple_kind::full: return "old";
    case old_tuple_kind::none: break;
  }
  return "";
}

std::string qualified(const std::string& namespace_name, const std::string& name) {
  return namespace_name.empty() ? name : namespace_name + "." + name;
}

// --- type conversion ----------------------------------------------------------

namespace oid {
constexpr std::uint32_t bool_ = 16;
constexpr std::uint32_t bytea = 17;
constexpr std::uint32_t name = 19;
constexpr std::uint32_t int8 = 20;
constexpr std::uint32_t int2 = 21;
constexpr std::uint32_t int4 = 23;
constexpr std::uint32_t text = 25;
constexpr std::uint32_t json = 114;
constexpr std::uint32_t float4 = 700;
constexpr std::uint32_t float8 = 701;
constexpr std::uint32_t bpchar = 1042;
constexpr std::uint32_t varchar = 1043;
constexpr std::uint32_t date = 1082;
constexpr std::uint32_t time = 1083;
constexpr std::uint32_t timestamp = 1114;
constexpr std::uint32_t timestamptz = 1184;
constexpr std::uint32_t numeric = 1700;
constexpr std::uint32_t uuid = 2950;
constexpr std::uint32_t jsonb = 3802;
} // namespace oid

struct builtin_type {
  std::uint32_t oid;
  const char* name;
};

// Built-in types keep their oids across PostgreSQL versions (pg_type.dat),
// and pgoutput sends no Type message for them.
constexpr builtin_type builtin_types[] = {
  {16, "bool"},          {17, "bytea"},         {18, "char"},         {19, "name"},
  {20, "int8"},          {21, "int2"},          {23, "int4"},         {24, "regproc"},
  {25, "text"},          {26, "oid"},           {27, "tid"},          {28, "xid"},
  {29, "cid"},           {114, "json"},         {142, "xml"},         {199, "json[]"},
  {600, "point"},        {601, "lseg"},         {602, "path"},        {603, "box"},
  {604, "polygon"},      {628, "line"},         {650, "cidr"},        {651, "cidr[]"},
  {700, "float4"},       {701, "float8"},       {718, "circle"},      {774, "macaddr8"},
  {790, "money"},        {829, "macaddr"},      {869, "inet"},        {1000, "bool[]"},
  {1001, "bytea[]"},     {1002, "char[]"},      {1003, "name[]"},     {1005, "int2[]"},
  {1007, "int4[]"},      {1009, "text[]"},      {1014, "bpchar[]"},   {1015, "varchar[]"},
  {1016, "int8[]"},      {1021, "float4[]"},    {1022, "float8[]"},   {1028, "oid[]"},
  {1041, "inet[]"},      {1042, "bpchar"},      {1043, "varchar"},    {1082, "date"},
  {1083, "time"},        {1114, "timestamp"},   {1115, "timestamp[]"}, {1182, "date[]"},
  {1183, "time[]"},      {1184, "timestamptz"}, {1185, "timestamptz[]"}, {1186, "interval"},
  {1187, "interval[]"},  {1231, "numeric[]"},   {1266, "timetz"},     {1560, "bit"},
  {1562, "varbit"},      {1700, "numeric"},     {1790, "refcursor"},  {2205, "regclass"},
  {2950, "uuid"},        {2951, "uuid[]"},      {3220, "pg_lsn"},     {3614, "tsvector"},
  {3615, "tsquery"},     {3802, "jsonb"},       {3807, "jsonb[]"},    {3904, "int4range"},
  {3906, "numrange"},    {3908, "tsrange"},     {3910, "tstzrange"},  {3912, "daterange"},
  {3926, "int8range"},   {4072, "jsonpath"},    {5038, "pg_snapshot"}, {5069, "xid8"},
};

const char* builtin_name(std::uint32_t type_oid) {
  for (const auto& t : builtin_types)
    if (t.oid == type_oid)
      return t.name;
  return nullptr;
}

/// Says that `text` is not a valid `type_name`, naming the column when known.
store::status bad_text(const std::string& type_name, const std::string* column_name,
                       std::string_view text, const char* why) {
  if (column_name != nullptr)
    return store::status::corruption(type_name + " column '" + *column_name + "' has text "
                                     + quote_short(text, 64) + ", which is " + why);
  return store::status::corruption(type_name + " text " + quote_short(text, 64) + " is " + why);
}


store::result<store::value> convert(std::uint32_t type_oid, std::string_view text,
                                    const type_names& names, const std::string* column_name) {
  switch (type_oid) {
    case oid::bool_:
      if (text == "t")
        return store::value::boolean(true);
      if (text == "f")
        return store::value::boolean(false);
      return bad_text("bool", column_name, text, "neither 't' nor 'f'");

    case oid::int2:
    case oid::int4:
    case oid::int8: {
      const char* type_name =
        type_oid == oid::int2 ? "int2" : type_oid == oid::int4 ? "int4" : "int8";
      std::int64_t v = 0;
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
      if (ec == std::errc::result_out_of_range)
        return bad_text(type_name, column_name, text, "out of range for int8");
      if (ec != std::errc() || end != text.data() + text.size())
        return bad_text(type_name, column_name, text, "not an integer");
      const std::int64_t lo = type_oid == oid::int2   ? std::numeric_limits<std::int16_t>::min()
                              : type_oid == oid::int4 ? std::numeric_limits<std::int32_t>::min()
                                                      : std::numeric_limits<std::int64_t>::min();
      const std::int64_t hi = type_oid == oid::int2   ? std::numeric_limits<std::int16_t>::max()
                              : type_oid == oid::int4 ? std::numeric_limits<std::int32_t>::max()
                                                      : std::numeric_limits<std::int64_t>::max();
      if (v < lo || v > hi)
        return bad_text(type_name, column_name, text,
                        type_oid == oid::int2 ? "out of range for int2" : "out of range for int4");
      return store::value::integer(v);
    }

    case oid::float4:
    case oid::float8: {
      const char* type_name = type_oid == oid::float4 ? "float4" : "float8";
      double v = 0;
      // from_chars takes PostgreSQL's "NaN", "Infinity" and "-Infinity" too.
      const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
      if (ec == std::errc::result_out_of_range)
        return bad_text(type_name, column_name, text, "out of range for float8");
      if (ec != std::errc() || end != text.data() + text.size())
        return bad_text(type_name, column_name, text, "not a number");
      return store::value::real(v);
    }

    case oid::text:
    case oid::varchar:
    case oid::bpchar:
    case oid::name:
    case oid::uuid: return store::value::text(std::string(text));

    case oid::bytea: {
      // bytea_output = 'hex' (the default): "\x" then two hex digits a byte.
      if (text.size() < 2 || text[0] != '\\' || text[1] != 'x' || text.size() % 2 != 0)
        return bad_text("bytea", column_name, text,
                        "not hex-format bytea ('\\x' and pairs of hex digits;"
                        " set bytea_output = 'hex' on the server)");
      std::string out;
      out.reserve((text.size() - 2) / 2);
      for (std::size_t i = 2; i < text.size(); i += 2) {
        const int hi = hex_digit(text[i]);
        const int lo = hex_digit(text[i + 1]);
        if (hi < 0 || lo < 0)
          return bad_text("bytea", column_name, text,
                          "not hex-format bytea (a non-hex digit follows '\\x')");
        out.push_back(static_cast<char>((hi << 4) | lo));
      }
      return store::value::bytes(std::move(out));
    }

    case oid::numeric: return store::value::exact("numeric", std::string(text));
    case oid::timestamp: return store::value::exact("timestamp", std::string(text));
    case oid::timestamptz: return store::value::exact("timestamptz", std::string(text));
    case oid::date: return store::value::exact("date", std::string(text));
    case oid::time: return store::value::exact("time", std::string(text));
    case oid::json: return store::value::exact("json", std::string(text));
    case oid::jsonb: return store::value::exact("jsonb", std::string(text));
  }
  return store::value::exact(names.name_of(type_oid), std::string(text));
}

} // namespace

// --- public API ---------------------------------------------------------------

const char* to_string(message_kind kind) noexcept {
  switch (kind) {
    case message_kind::begin: return "Begin";
    case message_kind::commit: return "Commit";
    case message_kind::origin: return "Origin";
    case message_kind::relation: return "Relation";
    case message_kind::type: return "Type";
    case message_kind::insert: return "Insert";
    case message_kind::update: return "Update";
    case message_kind::delete_: return "Delete";
    case message_kind::truncate: return "Truncate";
    case message_kind::message: return "Message";
  }
  return "unknown";
}

message_kind kind_of(const pg_message& m) noexcept {
  // The variant's alternatives are in the order of this table.
  static constexpr message_kind kinds[] = {
    message_kind::begin,  message_kind::commit, message_kind::origin,  message_kind::relation,
    message_kind::type,   message_kind::insert, message_kind::update,  message_kind::delete_,
    message_kind::truncate, message_kind::message,
  };
  static_assert(std::size(kinds) == std::variant_size_v<pg_message>);
  return kinds[m.index()];
}

std::string describe(const pg_message& m) {
  struct visitor {
    std::string operator()(const begin_message& b) const {
      return "Begin xid " + std::to_string(b.xid) + ", final LSN " + format_lsn(b.final_lsn)
             + ", committed " + format_time(b.commit_time_us);
    }
    std::string operator()(const commit_message& c) const {
      return "Commit LSN " + format_lsn(c.commit_lsn) + ", end " + format_lsn(c.end_lsn)
             + ", committed " + format_time(c.commit_time_us);
    }
    std::string operator()(const origin_message& o) const {
      return "Origin '" + o.name + "' at " + format_lsn(o.origin_lsn);
    }
    std::string operator()(const relation& r) const {
      std::string out = "Relation " + std::to_string(r.oid) + " "
                        + qualified(r.namespace_name, r.name) + ", replica identity "
                        + replica_identity_name(r.replica_identity) + ", columns (";
      for (std::size_t i = 0; i < r.columns.size(); ++i) {
        if (i > 0)
          out += ", ";
        out += r.columns[i].name;
        if (r.columns[i].is_key())
          out += " key";
      }
      return out + ")";
    }
    std::string operator()(const type_message& t) const {
      return "Type " + std::to_string(t.oid) + " " + qualified(t.namespace_name, t.name);
    }
    std::string operator()(const insert_message& i) const {
      return "Insert into " + std::to_string(i.relation_oid) + " new "
             + describe_tuple(i.new_tuple);
    }
    std::string operator()(const update_message& u) const {
      std::string out = "Update " + std::to_string(u.relation_oid);
      if (u.old_kind != old_tuple_kind::none)
        out += std::string(" ") + old_tuple_label(u.old_kind) + " " + describe_tuple(u.old_tuple);
      return out + " new " + describe_tuple(u.new_tuple);
    }
    std::string operator()(const delete_message& d) const {
      return "Delete from " + std::to_string(d.relation_oid) + " " + old_tuple_label(d.old_kind)
             + " " + describe_tuple(d.old_tuple);
    }
    std::string operator()(const truncate_message& t) const {
      std::string out = "Truncate";
      for (std::size_t i = 0; i < t.relation_oids.size(); ++i)
        out += (i == 0 ? " " : ", ") + std::to_string(t.relation_oids[i]);
      if (t.cascade())
        out += " cascade";
      if (t.restart_identity())
        out += " restart identity";
      return out;
    }
    std::string operator()(const logical_message& l) const {
      return std::string("Message ") + (l.transactional ? "transactional" : "non-transactional")
             + " prefix '" + l.prefix + "' at " + format_lsn(l.message_lsn) + ", "
             + std::to_string(l.content.size()) + " bytes";
    }
  };
  return std::visit(visitor{}, m);
}

store::result<pg_message> decode(std::string_view payload) {
  if (payload.empty())
    return store::status::corruption("pgoutput message is empty: it has no type byte");
  const auto type = static_cast<std::uint8_t>(payload[0]);
  switch (type) {
    case 'B': return decode_as<begin_message>(payload, message_kind::begin, read_begin);
    case 'C': return decode_as<commit_message>(payload, message_kind::commit, read_commit);
    case 'O': return decode_as<origin_message>(payload, message_kind::origin, read_origin);
    case 'R': return decode_as<relation>(payload, message_kind::relation, read_relation);
    case 'Y': return decode_as<type_message>(payload, message_kind::type, read_type);
    case 'I': return decode_as<insert_message>(payload, message_kind::insert, read_insert);
    case 'U': return decode_as<update_message>(payload, message_kind::update, read_update);
    case 'D': return decode_as<delete_message>(payload, message_kind::delete_, read_delete);
    case 'T': return decode_as<truncate_message>(payload, message_kind::truncate, read_truncate);
    case 'M': return decode_as<logical_message>(payload, message_kind::message, read_message);
  }
  if (const char* later = later_version_message(type))
    return store::status::corruption(
      "pgoutput message type " + show_byte(type) + " (" + later
      + ") is not part of protocol version 1; start the stream with proto_version '1'"
        " and without the 'streaming' or 'two_phase' options");
  return store::status::corruption("pgoutput message type " + show_byte(type)
                                   + " is unknown to protocol version 1");
}

void relation_cache::update(const relation& r) { relations_[r.oid] = r; }

const relation* relation_cache::find(std::uint32_t oid) const {
  const auto it = relations_.find(oid);
  return it == relations_.end() ? nullptr : &it->second;
}

void type_names::update(const type_message& t) {
  names_[t.oid] = qualified(t.namespace_name, t.name);
}

std::string type_names::name_of(std::uint32_t type_oid) const {
  if (const char* builtin = builtin_name(type_oid))
    return builtin;
  const auto it = names_.find(type_oid);
  if (it != names_.end())
    return it->second;
  return "oid:" + std::to_string(type_oid);
}

store::result<store::value> to_value(std::uint32_t type_oid, std::string_view text,
                                     const type_names& names) {
  return convert(type_oid, text, names, nullptr);
}

store::result<store::value> to_value(const relation_column& column, const tuple_column& datum,
                                     const type_names& names) {
  switch (datum.kind) {
    case column_kind::null: return store::value::null();
    case column_kind::text: return convert(column.type_oid, datum.text, names, &column.name);
    case column_kind::unchanged_toast: break;
  }
  return store::status::invalid_argument(
    "column '" + column.name
    + "' is an unchanged TOASTed value and has no value in this change; keep the value"
      " already held for the row");
}

store::result<std::vector<std::optional<store::value>>> to_values(const relation& rel,
                                                                  const tuple_data& tuple,
                                                                  const type_names& names) {
  if (tuple.size() != rel.columns.size())
    return store::status::corruption(
      "a tuple of relation " + qualified(rel.namespace_name, rel.name) + " ("
      + std::to_string(rel.oid) + ") has " + std::to_string(tuple.size())
      + " columns but the relation describes " + std::to_string(rel.columns.size())
      + "; the relation description is stale or the message is damaged");
  std::vector<std::optional<store::value>> out;
  out.reserve(tuple.size());
  for (std::size_t i = 0; i < tuple.size(); ++i) {
    if (tuple[i].kind == column_kind::unchanged_toast) {
      out.emplace_back(std::nullopt);
      continue;
    }
    auto v = to_value(rel.columns[i], tuple[i], names);
    if (!v)
      return v.error();
    out.emplace_back(std::move(v).value());
  }
  return out;
}

} // namespace syncmesh::connectors::postgres
