#include "store/schema.hpp"

#include <set>

namespace syncmesh::store {

status schema::validate() const {
  if (table.empty())
    return status::invalid_argument("a table needs a name");
  if (columns.empty())
    return status::invalid_argument("table '" + table + "' needs at least one column");
  std::set<std::string> names;
  for (const auto& c : columns) {
    if (c.name.empty())
      return status::invalid_argument("table '" + table + "' has a column without a name");
    if (!names.insert(c.name).second)
      return status::invalid_argument("table '" + table + "' names column '" + c.name
                                      + "' twice; column names must be unique");
    if (c.kind == value_kind::null)
      return status::invalid_argument("column '" + table + "." + c.name
                                      + "' has kind null; give it a value kind");
    if (c.kind == value_kind::exact && c.type_name.empty())
      return status::invalid_argument("column '" + table + "." + c.name
                                      + "' is exact but names no type (e.g. numeric)");
  }
  if (primary_key.empty())
    return status::invalid_argument("table '" + table
                                    + "' has no primary key; name one or more key columns");
  std::set<std::size_t> seen;
  for (auto i : primary_key) {
    if (i >= columns.size())
      return status::invalid_argument("table '" + table + "' has a primary key column index "
                                      + std::to_string(i) + " past its "
                                      + std::to_string(columns.size()) + " columns");
    if (!seen.insert(i).second)
      return status::invalid_argument("table '" + table + "' lists key column '"
                                      + columns[i].name + "' twice");
    if (columns[i].nullable)
      return status::invalid_argument("key column '" + table + "." + columns[i].name
                                      + "' must be declared not nullable");
  }
  return status::ok();
}

std::optional<std::size_t> schema::column_index(const std::string& name) const {
  for (std::size_t i = 0; i < columns.size(); ++i)
    if (columns[i].name == name)
      return i;
  return std::nullopt;
}

namespace {

status check_value(const std::string& table, const column& c, const value& v) {
  if (v.is_null()) {
    if (c.nullable)
      return status::ok();
    return status::invalid_argument("column '" + table + "." + c.name
                                    + "' is not nullable but got null");
  }
  if (v.kind() != c.kind)
    return status::invalid_argument("column '" + table + "." + c.name + "' holds "
                                    + to_string(c.kind) + " values but got "
                                    + to_string(v.kind()) + " " + v.to_display());
  if (c.kind == value_kind::exact && v.as_exact().type_name != c.type_name)
    return status::invalid_argument("column '" + table + "." + c.name + "' holds "
                                    + c.type_name + " values but got "
                                    + v.as_exact().type_name);
  return status::ok();
}

} // namespace

status schema::check_row(const row& r) const {
  if (r.size() != columns.size())
    return status::invalid_argument("table '" + table + "' has " + std::to_string(columns.size())
                                    + " columns but the row has " + std::to_string(r.size())
                                    + " values");
  for (std::size_t i = 0; i < r.size(); ++i)
    if (auto st = check_value(table, columns[i], r[i]); !st)
      return st;
  return status::ok();
}

status schema::check_key(const row& key) const {
  if (key.size() != primary_key.size())
    return status::invalid_argument("table '" + table + "' has a "
                                    + std::to_string(primary_key.size())
                                    + "-column primary key but the key has "
                                    + std::to_string(key.size()) + " values");
  for (std::size_t i = 0; i < key.size(); ++i)
    if (auto st = check_value(table, columns[primary_key[i]], key[i]); !st)
      return st;
  return status::ok();
}

bool schema::is_key_of(const row& key, const row& r) const {
  if (key.size() != primary_key.size())
    return false;
  for (std::size_t i = 0; i < key.size(); ++i)
    if (!(key[i] == r[primary_key[i]]))
      return false;
  return true;
}

row schema::key_of(const row& r) const {
  row key;
  key.reserve(primary_key.size());
  for (auto i : primary_key)
    key.push_back(r[i]);
  return key;
}

} // namespace syncmesh::store
