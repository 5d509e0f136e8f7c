#include "connectors/postgres/push.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <set>

#include "connectors/postgres/quote.hpp"
#include "store/key_codec.hpp"

namespace syncmesh::connectors::postgres {

namespace {

std::string qualified(const push_table& t) {
  return quote_ident(t.schema) + "." + quote_ident(t.name);
}

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

// A GENERATED ... STORED column is PostgreSQL's to compute: a push neither
// writes nor compares it (its value follows from the columns that are).
bool written(const push_table& t, std::size_t i) { return !t.columns[i].generated; }

bool is_key(const push_table& t, std::size_t i) {
  return std::find(t.key.begin(), t.key.end(), i) != t.key.end();
}

// An UPDATE's SET: the written columns but the key (a write never moves a
// row to another key) and GENERATED ALWAYS identities (PostgreSQL lets an
// UPDATE set those only to DEFAULT; an insert gives them their value).
bool updated(const push_table& t, std::size_t i) {
  return written(t, i) && !is_key(t, i) && !t.columns[i].identity_always;
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
      out += (i ? " AND " : "") + quote_ident(c.name) + " = " + param(c, text_for(key[i]));
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
        out += " AND " + quote_ident(c.name) + "::text IS NOT DISTINCT FROM $"
               + std::to_string(s_.params.size()) + "::text";
      } else {
        out += " AND " + quote_ident(c.name) + " IS NOT DISTINCT FROM " + param(c, text_for(base[i]));
      }
    };
    if (t.version_column) {
      if (*t.version_column < base.size())
        one(*t.version_column);
      return out;
    }
    for (std::size_t i = 0; i < t.columns.size() && i < base.size(); ++i)
      if (written(t, i))
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

// The columns an INSERT names.
std::string column_list(const push_table& t) {
  std::string out;
  for (std::size_t i = 0; i < t.columns.size(); ++i)
    if (written(t, i))
      out += (out.empty() ? "" : ", ") + quote_ident(t.columns[i].name);
  return out;
}

// A leased id goes into a GENERATED ALWAYS identity key as it is.
std::string overriding(const push_table& t) {
  for (std::size_t i = 0; i < t.columns.size(); ++i)
    if (written(t, i) && t.columns[i].identity_always)
      return " OVERRIDING SYSTEM VALUE";
  return {};
}

} // namespace

std::vector<std::string> create_pushes_sql() {
  return {"CREATE SCHEMA IF NOT EXISTS syncmesh",
          "CREATE TABLE IF NOT EXISTS syncmesh.pushes ("
          "node text NOT NULL, incarnation text NOT NULL, view text NOT NULL, "
          "first_seq bigint NOT NULL, last_seq bigint NOT NULL, "
          "applied_at timestamptz NOT NULL DEFAULT now(), "
          "PRIMARY KEY (node, incarnation, view, first_seq))"};
}

std::vector<seq_run> runs_of(const std::vector<std::uint64_t>& seqs) {
  std::vector<seq_run> out;
  for (auto s : seqs) {
    if (!out.empty() && out.back().last + 1 == s)
      out.back().last = s;
    else
      out.push_back({s, s});
  }
  return out;
}

bool covered(const std::vector<seq_run>& runs, std::uint64_t seq) {
  return std::any_of(runs.begin(), runs.end(),
                     [&](const seq_run& r) { return r.first <= seq && seq <= r.last; });
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
    if (written(t, i))
      values += (values.empty() ? "" : ", ") + b.param(t.columns[i], text_for(row[i]));
  s.sql = "INSERT INTO " + qualified(t) + " (" + column_list(t) + ")" + overriding(t) + " VALUES ("
          + values + ") ON CONFLICT DO NOTHING";
  return s;
}

statement update_from(const push_table& t, const store::row& row, const store::row* base) {
  statement s;
  builder b(s);
  if (!base) {
    // Forced: the row ends as `row` whatever was there.
    std::string values, sets, keys;
    for (std::size_t i = 0; i < t.columns.size() && i < row.size(); ++i) {
      if (!written(t, i))
        continue;
      values += (values.empty() ? "" : ", ") + b.param(t.columns[i], text_for(row[i]));
      if (updated(t, i))
        sets += (sets.empty() ? "" : ", ") + quote_ident(t.columns[i].name) + " = EXCLUDED."
                + quote_ident(t.columns[i].name);
    }
    for (std::size_t k = 0; k < t.key.size(); ++k)
      keys += (k ? ", " : "") + quote_ident(t.columns[t.key[k]].name);
    s.sql = "INSERT INTO " + qualified(t) + " (" + column_list(t) + ")" + overriding(t)
            + " VALUES (" + values + ") ON CONFLICT (" + keys + ") DO "
            + (sets.empty() ? "NOTHING" : "UPDATE SET " + sets);
    return s;
  }
  std::string sets;
  for (std::size_t i = 0; i < t.columns.size() && i < row.size(); ++i)
    if (updated(t, i))
      sets += (sets.empty() ? "" : ", ") + quote_ident(t.columns[i].name) + " = "
              + b.param(t.columns[i], text_for(row[i]));
  auto where = b.key_match(t, key_of(t, row));
  where += b.base_match(t, *base);
  // A table of key columns only has nothing to set: the compare-and-set is
  // then a locking read of the row as it was.
  s.sql = sets.empty() ? "SELECT 1 FROM " + qualified(t) + " WHERE " + where + " FOR UPDATE"
                       : "UPDATE " + qualified(t) + " SET " + sets + " WHERE " + where;
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

std::string text_array(const std::vector<std::optional<std::string>>& items) {
  std::string out = "{";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i)
      out.push_back(',');
    if (!items[i]) {
      out += "NULL";
      continue;
    }
    out.push_back('"');
    for (char c : *items[i]) {
      if (c == '"' || c == '\\')
        out.push_back('\\');
      out.push_back(c);
    }
    out.push_back('"');
  }
  return out + "}";
}

namespace {

// Columns of unnest(): one text[] parameter each, named v.<prefix><i>.
struct unnest_columns {
  explicit unnest_columns(statement& st) : s(st) {}
  statement& s;
  std::string args, names;
  void add(const std::string& name, const std::vector<std::optional<std::string>>& items) {
    s.params.push_back(text_array(items));
    args += (args.empty() ? "" : ", ") + std::string("$") + std::to_string(s.params.size())
            + "::text[]";
    names += (names.empty() ? "" : ", ") + name;
  }
  std::string from() const { return "unnest(" + args + ") AS v(" + names + ")"; }
};

// "t.col IS NOT DISTINCT FROM v.bI::type" for each compared column.
std::string base_match_bulk(const push_table& t) {
  std::string out;
  auto one = [&](std::size_t i) {
    const auto& c = t.columns[i];
    auto v = "v.b" + std::to_string(i);
    out += " AND " + (compares_as_text(c) ? "t." + quote_ident(c.name) + "::text IS NOT DISTINCT FROM " + v
                                          : "t." + quote_ident(c.name) + " IS NOT DISTINCT FROM " + v
                                              + "::" + c.type_name);
  };
  if (t.version_column)
    one(*t.version_column);
  else
    for (std::size_t i = 0; i < t.columns.size(); ++i)
      if (written(t, i))
        one(i);
  return out;
}

std::string key_match_bulk(const push_table& t) {
  std::string out;
  for (std::size_t k = 0; k < t.key.size(); ++k) {
    const auto& c = t.columns[t.key[k]];
    out += (k ? " AND " : "") + std::string("t.") + quote_ident(c.name) + " = v.k" + std::to_string(k)
           + "::" + c.type_name;
  }
  return out;
}

} // namespace

std::vector<bulk_statement> bulk_statements(const push_table& t,
                                            const std::vector<bulk_write>& writes) {
  std::set<std::string> keys;
  std::vector<const bulk_write*> inserts, updates, deletes;
  for (const auto& w : writes) {
    if (!w.key || (!w.remove && !w.row) || (w.remove && !w.base))
      return {};
    if (!keys.insert(store::encode_key(*w.key)).second)
      return {};
    (w.remove ? deletes : w.base ? updates : inserts).push_back(&w);
  }
  const auto n = t.columns.size();
  auto column_of = [&](const std::vector<const bulk_write*>& ws, auto pick) {
    std::vector<std::optional<std::string>> items;
    for (const auto* w : ws)
      items.push_back(pick(*w));
    return items;
  };
  auto keys_and_bases = [&](unnest_columns& u, const std::vector<const bulk_write*>& ws) {
    for (std::size_t k = 0; k < t.key.size(); ++k)
      u.add("k" + std::to_string(k), column_of(ws, [&](const bulk_write& w) {
              return k < w.key->size() ? text_for((*w.key)[k]) : std::nullopt;
            }));
    for (std::size_t i = 0; i < n; ++i)
      if (t.version_column ? *t.version_column == i : written(t, i))
        u.add("b" + std::to_string(i), column_of(ws, [&](const bulk_write& w) {
                return i < w.base->size() ? text_for((*w.base)[i]) : std::nullopt;
              }));
  };
  auto new_values = [&](unnest_columns& u, const std::vector<const bulk_write*>& ws) {
    for (std::size_t i = 0; i < n; ++i)
      if (written(t, i))
        u.add("n" + std::to_string(i), column_of(ws, [&](const bulk_write& w) {
              return i < w.row->size() ? text_for((*w.row)[i]) : std::nullopt;
            }));
  };
  std::vector<bulk_statement> out;
  if (!deletes.empty()) {
    bulk_statement b;
    unnest_columns u(b.stmt);
    keys_and_bases(u, deletes);
    b.stmt.sql = "DELETE FROM " + qualified(t) + " AS t USING " + u.from() + " WHERE "
                 + key_match_bulk(t) + base_match_bulk(t);
    b.expect = deletes.size();
    out.push_back(std::move(b));
  }
  if (!updates.empty()) {
    bulk_statement b;
    unnest_columns u(b.stmt);
    keys_and_bases(u, updates);
    new_values(u, updates);
    std::string sets;
    for (std::size_t i = 0; i < n; ++i)
      if (updated(t, i))
        sets += (sets.empty() ? "" : ", ") + quote_ident(t.columns[i].name) + " = v.n"
                + std::to_string(i) + "::" + t.columns[i].type_name;
    if (sets.empty())
      return {};  // key columns only: one at a time (a locking read each)
    b.stmt.sql = "UPDATE " + qualified(t) + " AS t SET " + sets + " FROM " + u.from() + " WHERE "
                 + key_match_bulk(t) + base_match_bulk(t);
    b.expect = updates.size();
    out.push_back(std::move(b));
  }
  if (!inserts.empty()) {
    bulk_statement b;
    unnest_columns u(b.stmt);
    new_values(u, inserts);
    std::string values;
    for (std::size_t i = 0; i < n; ++i)
      if (written(t, i))
        values += (values.empty() ? "" : ", ") + std::string("v.n") + std::to_string(i) + "::"
                  + t.columns[i].type_name;
    b.stmt.sql = "INSERT INTO " + qualified(t) + " (" + column_list(t) + ")" + overriding(t)
                 + " SELECT " + values + " FROM " + u.from() + " ON CONFLICT DO NOTHING";
    b.expect = inserts.size();
    out.push_back(std::move(b));
  }
  return out;
}

void append_copy_field(std::string& out, const std::optional<std::string>& text) {
  if (!text) {
    out += "\\N";
    return;
  }
  for (char c : *text) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      default: out.push_back(c);
    }
  }
}

namespace {

// append_copy_field of text_for(v), without the intermediate string for
// the common kinds (a batch has thousands of rows).
void append_copy_value(std::string& out, const store::value& v) {
  switch (v.kind()) {
    case store::value_kind::null: out += "\\N"; return;
    case store::value_kind::boolean: out.push_back(v.as_bool() ? 't' : 'f'); return;
    case store::value_kind::integer: {
      char buf[24];
      auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v.as_int());
      out.append(buf, end);
      return;
    }
    case store::value_kind::text: {
      const auto& t = v.as_text();
      if (t.find_first_of("\\\t\n\r") == std::string::npos)
        out += t;
      else
        append_copy_field(out, t);
      return;
    }
    case store::value_kind::exact: append_copy_field(out, v.as_exact().text); return;
    default: append_copy_field(out, text_for(v)); return;
  }
}

} // namespace

bool copyable_inserts(const std::vector<bulk_write>& writes, bool keys_distinct) {
  std::vector<std::string> keys;
  keys.reserve(keys_distinct ? 0 : writes.size());
  for (const auto& w : writes) {
    if (w.remove || w.base || !w.row || !w.key)
      return false;
    if (!keys_distinct)
      keys.push_back(store::encode_key(*w.key));
  }
  // Distinct keys only (a key written twice goes one write at a time).
  std::sort(keys.begin(), keys.end());
  return std::adjacent_find(keys.begin(), keys.end()) == keys.end();
}

std::string copy_inserts_sql(const push_table& t) {
  // COPY writes the values it is given into an identity column, GENERATED
  // ALWAYS or not (as INSERT ... OVERRIDING SYSTEM VALUE does).
  return "COPY " + qualified(t) + " (" + column_list(t) + ") FROM STDIN";
}

void append_copy_rows(const push_table& t, const std::vector<bulk_write>& writes,
                      std::size_t from, std::size_t to, std::string& out) {
  for (std::size_t k = from; k < to && k < writes.size(); ++k) {
    const auto& row = *writes[k].row;
    bool first = true;
    for (std::size_t i = 0; i < t.columns.size(); ++i) {
      if (!written(t, i))
        continue;
      if (!first)
        out.push_back('\t');
      first = false;
      if (i < row.size())
        append_copy_value(out, row[i]);
      else
        out += "\\N";
    }
    out.push_back('\n');
  }
}

std::optional<copy_statement> copy_inserts(const push_table& t,
                                           const std::vector<bulk_write>& writes) {
  if (!copyable_inserts(writes))
    return std::nullopt;
  copy_statement out;
  out.data.reserve(writes.size() * 48);
  append_copy_rows(t, writes, 0, writes.size(), out.data);
  out.rows = writes.size();
  out.sql = copy_inserts_sql(t);
  return out;
}

namespace {

// One pusher's node, incarnation and view as quoted literals, comma-separated.
std::string pusher_literals(const pusher& who) {
  return escape_literal(who.node) + ", " + escape_literal(who.incarnation) + ", "
         + escape_literal(who.view);
}

} // namespace

std::string record_pushes(const std::vector<seq_run>& runs, const pusher& who) {
  const auto whose = "(" + pusher_literals(who) + ", ";
  std::string sql = std::string("INSERT INTO ") + pushes_table
                    + " (node, incarnation, view, first_seq, last_seq) VALUES ";
  for (std::size_t i = 0; i < runs.size(); ++i)
    sql += (i ? ", " : "") + whose + std::to_string(runs[i].first) + ", "
           + std::to_string(runs[i].last) + ")";
  return sql;
}

std::string recorded_pushes(const pusher& who, std::uint64_t first, std::uint64_t last) {
  const std::string whose = std::string("FROM ") + pushes_table
                            + " WHERE (node, incarnation, view) = (" + pusher_literals(who) + ") ";
  const auto lo = std::to_string(first), hi = std::to_string(last);
  return "(SELECT first_seq, last_seq " + whose + "AND first_seq BETWEEN " + lo + " AND " + hi
         + ") UNION ALL (SELECT first_seq, last_seq " + whose + "AND first_seq < " + lo
         + " ORDER BY first_seq DESC LIMIT 1)";
}

statement select_row(const push_table& t, const store::row& key) {
  statement s;
  builder b(s);
  std::string cols;
  for (std::size_t i = 0; i < t.columns.size(); ++i)
    cols += (i ? ", " : "") + quote_ident(t.columns[i].name) + "::text";
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
