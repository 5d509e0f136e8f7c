#include "connectors/postgres/copy_encoder.hpp"

#include <charconv>
#include <limits>

#include "connectors/postgres/replication_stream.hpp"

namespace syncmesh::connectors::postgres {

using store::status;
using store::value_kind;

namespace {

// Type oids with a conversion done here without a store::value; every other
// type goes through to_value().
constexpr std::uint32_t oid_bool = 16;
constexpr std::uint32_t oid_int8 = 20;
constexpr std::uint32_t oid_int2 = 21;
constexpr std::uint32_t oid_int4 = 23;
constexpr std::uint32_t oid_float4 = 700;
constexpr std::uint32_t oid_float8 = 701;

bool is_text_type(std::uint32_t oid) {
  switch (oid) {
    case 25: case 1043: case 1042: case 19: case 2950:  // text, varchar, bpchar, name, uuid
      return true;
    default: return false;
  }
}

bool is_exact_type(std::uint32_t oid) {
  switch (oid) {
    case 1700: case 1114: case 1184: case 1082: case 1083:  // numeric, timestamp(tz), date, time
    case 114: case 3802:                                    // json, jsonb
      return true;
    default: return false;
  }
}

} // namespace

copy_encoder::copy_encoder(store::schema shape, std::vector<std::uint32_t> oids)
  : rows_(shape), oids_(std::move(oids)) {
  for (const auto& c : shape.columns)
    kinds_.push_back(c.kind);
}

store::status copy_encoder::add_line(std::string_view line) {
  std::size_t fields = 0;
  auto field = [&](const std::string_view* text) -> status {
    if (fields >= oids_.size()) {
      ++fields;  // counted, refused below
      return status::ok();
    }
    return add_field(fields++, text);
  };
  status st;
  if (line.find('\\') == std::string_view::npos) {
    // The usual line: no escape and no NULL (\N), so every field is a view
    // of the line as it is, split at the tabs here.
    if (!line.empty() && line.back() == '\n')
      line.remove_suffix(1);
    for (std::size_t start = 0;;) {
      auto end = line.find('\t', start);
      const auto text = line.substr(start, end == std::string_view::npos ? end : end - start);
      if (st = field(&text); !st || end == std::string_view::npos)
        break;
      start = end + 1;
    }
  } else {
    st = for_each_copy_field(line, scratch_, field);
  }
  if (st && fields != oids_.size())
    st = status::corruption("COPY sent a row of " + std::to_string(fields) + " fields for "
                            + std::to_string(oids_.size()) + " columns");
  if (!st) {
    rows_.abandon_row();
    return st;
  }
  return rows_.end_row();
}

store::status copy_encoder::add_field(std::size_t column, const std::string_view* field) {
  if (!field) {
    const auto& c = rows_.shape().columns[column];
    if (!c.nullable) {
      rows_.abandon_row();
      return status::invalid_argument(
        "a row's key column '" + c.name + "' is NULL; a key must identify every row — filter "
        "NULLs out in the query or name other key columns");
    }
    return rows_.add_null();
  }
  const auto text = *field;
  const auto oid = oids_[column];
  const auto kind = kinds_[column];
  // The usual types, converted in place; what these cannot take falls
  // through to to_value(), which says what is wrong with it.
  switch (kind) {
    case value_kind::text:
      if (is_text_type(oid))
        return rows_.add_text(text);
      break;
    case value_kind::exact:
      if (is_exact_type(oid))
        return rows_.add_exact(text);
      break;
    case value_kind::boolean:
      if (oid == oid_bool && text.size() == 1 && (text[0] == 't' || text[0] == 'f'))
        return rows_.add_bool(text[0] == 't');
      break;
    case value_kind::integer:
      if (oid == oid_int8 || oid == oid_int4 || oid == oid_int2) {
        std::int64_t v = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        const std::int64_t lo = oid == oid_int2   ? std::numeric_limits<std::int16_t>::min()
                                : oid == oid_int4 ? std::numeric_limits<std::int32_t>::min()
                                                  : std::numeric_limits<std::int64_t>::min();
        const std::int64_t hi = oid == oid_int2   ? std::numeric_limits<std::int16_t>::max()
                                : oid == oid_int4 ? std::numeric_limits<std::int32_t>::max()
                                                  : std::numeric_limits<std::int64_t>::max();
        if (ec == std::errc() && end == text.data() + text.size() && v >= lo && v <= hi)
          return rows_.add_int(v);
      }
      break;
    case value_kind::real:
      if (oid == oid_float8 || oid == oid_float4) {
        double v = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
        if (ec == std::errc() && end == text.data() + text.size())
          return rows_.add_real(v);
      }
      break;
    default: break;
  }
  auto v = to_value(oid, text, names_);
  if (!v) {
    rows_.abandon_row();
    return v.error();
  }
  // An exact value takes its local column's type name (a domain or an
  // unknown type is named by its column, not by its oid).
  if (v->kind() == value_kind::exact && kind == value_kind::exact)
    return rows_.add_exact(v->as_exact().text);
  return rows_.add(*v);
}

} // namespace syncmesh::connectors::postgres
