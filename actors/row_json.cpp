#include "actors/row_json.hpp"

#include <cctype>

#include "store/key_codec.hpp"

namespace syncmesh::actors {

using store::value;
using store::value_kind;

nlohmann::json to_json(const value& v) {
  switch (v.kind()) {
    case value_kind::null: return nullptr;
    case value_kind::boolean: return v.as_bool();
    case value_kind::integer: return v.as_int();
    case value_kind::real: return v.as_real();
    case value_kind::text: return v.as_text();
    case value_kind::bytes: return "\\x" + store::to_hex(v.as_bytes());
    case value_kind::exact: return v.as_exact().text;
  }
  return nullptr;
}

nlohmann::json row_to_json(const store::schema& s, const store::row& r) {
  auto obj = nlohmann::json::object();
  for (std::size_t i = 0; i < s.columns.size() && i < r.size(); ++i)
    obj[s.columns[i].name] = to_json(r[i]);
  return obj;
}

namespace {

store::status bad(const store::schema& s, const store::column& c, const nlohmann::json& j,
                  const char* want) {
  return store::status::invalid_argument("column '" + s.table + "." + c.name + "' takes " + want
                                         + ", not " + j.dump());
}

store::result<value> value_from_json(const store::schema& s, const store::column& c,
                                     const nlohmann::json& j) {
  if (j.is_null()) {
    if (!c.nullable)
      return store::status::invalid_argument("column '" + s.table + "." + c.name
                                             + "' is not nullable; give it a value");
    return value::null();
  }
  switch (c.kind) {
    case value_kind::boolean:
      if (!j.is_boolean())
        return bad(s, c, j, "true or false");
      return value::boolean(j.get<bool>());
    case value_kind::integer:
      if (!j.is_number_integer())
        return bad(s, c, j, "an integer");
      return value::integer(j.get<std::int64_t>());
    case value_kind::real:
      if (!j.is_number())
        return bad(s, c, j, "a number");
      return value::real(j.get<double>());
    case value_kind::text:
      if (!j.is_string())
        return bad(s, c, j, "a string");
      return value::text(j.get<std::string>());
    case value_kind::bytes: {
      if (!j.is_string())
        return bad(s, c, j, "a string (\\x followed by hex digits for binary)");
      auto str = j.get<std::string>();
      if (str.size() < 2 || str.compare(0, 2, "\\x") != 0)
        return value::bytes(str);
      std::string out;
      for (std::size_t i = 2; i + 1 < str.size(); i += 2) {
        if (!std::isxdigit(static_cast<unsigned char>(str[i]))
            || !std::isxdigit(static_cast<unsigned char>(str[i + 1])))
          return bad(s, c, j, "\\x followed by an even number of hex digits");
        out.push_back(static_cast<char>(std::stoi(str.substr(i, 2), nullptr, 16)));
      }
      if (str.size() % 2 != 0)
        return bad(s, c, j, "\\x followed by an even number of hex digits");
      return value::bytes(std::move(out));
    }
    case value_kind::exact:
      if (j.is_string())
        return value::exact(c.type_name, j.get<std::string>());
      if (j.is_number() && c.type_name == "numeric")
        return value::exact(c.type_name, j.dump());
      if (c.type_name == "json")
        return value::exact(c.type_name, j.dump());
      return bad(s, c, j, ("a " + c.type_name + " written as a string").c_str());
    case value_kind::null: break;
  }
  return bad(s, c, j, "a value");
}

} // namespace

store::result<store::row> row_from_json(const store::schema& s, const nlohmann::json& obj) {
  if (!obj.is_object())
    return store::status::invalid_argument("a row for '" + s.table
                                           + "' must be a JSON object of column: value, not "
                                           + obj.dump());
  for (const auto& [name, v] : obj.items())
    if (!s.column_index(name))
      return store::status::invalid_argument("'" + s.table + "' has no column '" + name + "'");
  store::row r;
  for (const auto& c : s.columns) {
    auto it = obj.find(c.name);
    if (it == obj.end()) {
      if (!c.nullable)
        return store::status::invalid_argument("the row for '" + s.table + "' lacks column '"
                                               + c.name + "', which is required");
      r.push_back(value::null());
      continue;
    }
    auto v = value_from_json(s, c, *it);
    if (!v)
      return v.error();
    r.push_back(std::move(v).value());
  }
  return r;
}

store::result<store::row> key_from_json(const store::schema& s, const nlohmann::json& obj) {
  if (!obj.is_object())
    return store::status::invalid_argument("a key for '" + s.table
                                           + "' must be a JSON object of key column: value");
  store::row key;
  for (auto i : s.primary_key) {
    const auto& c = s.columns[i];
    auto it = obj.find(c.name);
    if (it == obj.end())
      return store::status::invalid_argument("the key for '" + s.table + "' lacks column '"
                                             + c.name + "'");
    auto v = value_from_json(s, c, *it);
    if (!v)
      return v.error();
    key.push_back(std::move(v).value());
  }
  if (obj.size() != s.primary_key.size())
    return store::status::invalid_argument("a key for '" + s.table
                                           + "' names only its key columns");
  return key;
}

store::result<std::vector<store::change>> changes_from_json(const store::schema& s,
                                                            const nlohmann::json& ops) {
  auto bad = [](const std::string& what) { return store::status::invalid_argument(what); };
  if (!ops.is_object())
    return bad("exec takes {\"upsert\": [rows], \"delete\": [keys]}, not " + ops.dump());
  for (const auto& [k, v] : ops.items())
    if (k != "upsert" && k != "delete")
      return bad("exec takes 'upsert' and 'delete', not '" + k + "'");
  std::vector<store::change> out;
  if (auto it = ops.find("upsert"); it != ops.end()) {
    if (!it->is_array())
      return bad("'upsert' must be a list of rows");
    for (const auto& r : *it) {
      auto row = row_from_json(s, r);
      if (!row)
        return row.error();
      store::change c;
      c.table = s.table;
      c.op = store::change_op::insert;
      c.new_row = std::move(row).value();
      out.push_back(std::move(c));
    }
  }
  if (auto it = ops.find("delete"); it != ops.end()) {
    if (!it->is_array())
      return bad("'delete' must be a list of keys");
    for (const auto& k : *it) {
      auto key = key_from_json(s, k);
      if (!key)
        return key.error();
      store::change c;
      c.table = s.table;
      c.op = store::change_op::remove;
      c.key = std::move(key).value();
      out.push_back(std::move(c));
    }
  }
  if (out.empty())
    return bad("exec names no rows to upsert or delete");
  return out;
}

} // namespace syncmesh::actors
