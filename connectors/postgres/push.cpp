#include "connectors/postgres/push.hpp"

#include <cmath>
#include <cstdio>

namespace syncmesh::connectors::postgres {

namespace {

std::string ident(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"')
      out.push_back('"');
    out.push_back(c);
  }
  return out + "\"";
}

std::string qualified(const push_table& t) { return ident(t.schema) + "." + ident(t.name); }

// Types without an equality operator (json, xml, point, ...) compare as text.
bool compares_as_text(const column_info& c) {
  switch (c.type_oid) {
    case 114:   // json
    case 142:   // xml
    case 600:   // point
    case 628:   // line
    case 718:   // circle
      return true;
    default: return false;
  }
}

class builder {
public:
  explicit builder(statement& s) : s_(s) {}

  // $n cast to the column's type.
  std::string param(const column_info& c, std::optional<std::string> text) {
    s_.params.push_back(std::move(text));
    return "$" + std::to_string(s_.params.size()) + "::" + c.type_name;
  }

  // "col" = $n for the key (never NULL).
  std::string key_match(const push_table& t, const store::row& key) {
    std::string out;
    for (std::size_t i = 0; i < t.key.size() && i < key.size(); ++i) {
      const auto& c = t.columns[t.key[i]];
      out += (i ? " AND " : "") + ident(c.name) + " = " + param(c, text_for(key[i]));
    }
    return out;
  }

  // The compare-and-set part: " AND col IS NOT DISTINCT FROM $n ..."
  std::string base_match(const push_table& t, const store::row& base) {
    std::string out;
    auto one = [&](std::size_t i) {
      const auto& c = t.columns[i];
      if (compares_as_text(c)) {
        s_.params.push_back(text_for(base[i]));
        out += " AND " + ident(c.name) + "::text IS NOT DISTINCT FROM $"
               + std::to_string(s_.params.size()) + "::text";
      } else {
        out += " AND " + ident(c.name) + " IS NOT DISTINCT FROM " + param(c, text_for(base[i]));
      }
    };
    if (t.version_column) {
      if (*t.version_column < base.size())
        one(*t.version_column);
      return out;
    }
    for (std::size_t i = 0; i < t.columns.size() && i < base.size(); ++i)
      one(i);
    return out;
  }

private:
  statement& s_;
};

store::row key_of(const push_table& t, const store::row& row) {
  store::row key;
  for (auto k : t.key)
    key.push_back(k < row.size() ? row[k] : store::value::null());
  return key;
}

std::string column_list(const push_table& t) {
  std::string out;
  for (std::size_t i = 0; i < t.columns.size(); ++i)
    out += (i ? ", " : "") + ident(t.columns[i].name);
  return out;
}

} // namespace

std::vector<std::string> create_mutations_sql() {
  return {"CREATE SCHEMA IF NOT EXISTS syncmesh",
          "CREATE TABLE IF NOT EXISTS syncmesh.mutations ("
          "mutation_id text PRIMARY KEY, node text NOT NULL, view text NOT NULL, "
          "applied_at timestamptz NOT NULL DEFAULT now())"};
}

std::optional<std::string> text_for(const store::value& v) {
  switch (v.kind()) {
    case store::value_kind::null: return std::nullopt;
    case store::value_kind::boolean: return std::string(v.as_bool() ? "t" : "f");
    case store::value_kind::integer: return std::to_string(v.as_int());
    case store::value_kind::real: {
      double d = v.as_real();
      if (std::isnan(d))
        return std::string("NaN");
      if (std::isinf(d))
        return std::string(d > 0 ? "Infinity" : "-Infinity");
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.17g", d);  // reads back as the same double
      return std::string(buf);
    }
    case store::value_kind::text: return v.as_text();
    case store::value_kind::exact: return v.as_exact().text;
    case store::value_kind::bytes: {
      static const char* digits = "0123456789abcdef";
      std::string out = "\\x";
      for (unsigned char c : v.as_bytes()) {
        out.push_back(digits[c >> 4]);
        out.push_back(digits[c & 15]);
      }
      return out;
    }
  }
  return std::nullopt;
}

statement insert_new(const push_table& t, const store::row& row) {
  statement s;
  builder b(s);
  std::string values;
  for (std::size_t i = 0; i < t.columns.size() && i < row.size(); ++i)
    values += (i ? ", " : "") + b.param(t.columns[i], text_for(row[i]));
  s.sql = "INSERT INTO " + qualified(t) + " (" + column_list(t) + ") VALUES (" + values
          + ") ON CONFLICT DO NOTHING";
  return s;
}

statement update_from(const push_table& t, const store::row& row, const store::row* base) {
  statement s;
  builder b(s);
  if (!base) {
    // Forced: the row ends as `row` whatever was there.
    std::string values, sets, keys;
    for (std::size_t i = 0; i < t.columns.size() && i < row.size(); ++i) {
      values += (i ? ", " : "") + b.param(t.columns[i], text_for(row[i]));
      sets += (sets.empty() ? "" : ", ") + ident(t.columns[i].name) + " = EXCLUDED."
              + ident(t.columns[i].name);
    }
    for (std::size_t k = 0; k < t.key.size(); ++k)
      keys += (k ? ", " : "") + ident(t.columns[t.key[k]].name);
    s.sql = "INSERT INTO " + qualified(t) + " (" + column_list(t) + ") VALUES (" + values
            + ") ON CONFLICT (" + keys + ") DO UPDATE SET " + sets;
    return s;
  }
  std::string sets;
  for (std::size_t i = 0; i < t.columns.size() && i < row.size(); ++i)
    sets += (i ? ", " : "") + ident(t.columns[i].name) + " = " + b.param(t.columns[i], text_for(row[i]));
  auto where = b.key_match(t, key_of(t, row));
  where += b.base_match(t, *base);
  s.sql = "UPDATE " + qualified(t) + " SET " + sets + " WHERE " + where;
  return s;
}

statement delete_from(const push_table& t, const store::row& key, const store::row* base) {
  statement s;
  builder b(s);
  auto where = b.key_match(t, key);
  if (base)
    where += b.base_match(t, *base);
  s.sql = "DELETE FROM " + qualified(t) + " WHERE " + where;
  return s;
}

statement select_row(const push_table& t, const store::row& key) {
  statement s;
  builder b(s);
  std::string cols;
  for (std::size_t i = 0; i < t.columns.size(); ++i)
    cols += (i ? ", " : "") + ident(t.columns[i].name) + "::text";
  s.sql = "SELECT " + cols + " FROM " + qualified(t) + " WHERE " + b.key_match(t, key);
  return s;
}

statement newer_than(const push_table& t, std::size_t column, const store::value& local,
                     const std::optional<std::string>& remote_text) {
  statement s;
  builder b(s);
  const auto& c = t.columns[column];
  auto l = b.param(c, text_for(local));
  auto r = b.param(c, remote_text);
  // NULL on either side: the side with a value is newer; both NULL: not newer.
  s.sql = "SELECT COALESCE(" + l + " > " + r + ", " + r + " IS NULL AND " + l + " IS NOT NULL)";
  return s;
}

} // namespace syncmesh::connectors::postgres
