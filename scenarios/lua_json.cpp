#include "scenarios/lua_json.hpp"

#include <cmath>

#include <lua.hpp>

namespace syncmesh::scenarios {

using nlohmann::json;

void push_json(lua_State* L, const json& j) {
  switch (j.type()) {
    case json::value_t::null:
    case json::value_t::discarded: lua_pushnil(L); break;
    case json::value_t::boolean: lua_pushboolean(L, j.get<bool>()); break;
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: lua_pushinteger(L, j.get<lua_Integer>()); break;
    case json::value_t::number_float: lua_pushnumber(L, j.get<double>()); break;
    case json::value_t::string: lua_pushstring(L, j.get<std::string>().c_str()); break;
    case json::value_t::binary: lua_pushnil(L); break;
    case json::value_t::array: {
      lua_createtable(L, static_cast<int>(j.size()), 0);
      lua_Integer i = 1;
      for (const auto& v : j) {
        push_json(L, v);
        lua_rawseti(L, -2, i++);
      }
      break;
    }
    case json::value_t::object: {
      lua_createtable(L, 0, static_cast<int>(j.size()));
      for (const auto& [k, v] : j.items()) {
        push_json(L, v);
        lua_setfield(L, -2, k.c_str());
      }
      break;
    }
  }
}

json to_json(lua_State* L, int index, const std::string& what) {
  index = lua_absindex(L, index);
  switch (lua_type(L, index)) {
    case LUA_TNIL: return nullptr;
    case LUA_TBOOLEAN: return static_cast<bool>(lua_toboolean(L, index));
    case LUA_TNUMBER:
      if (lua_isinteger(L, index))
        return static_cast<std::int64_t>(lua_tointeger(L, index));
      return lua_tonumber(L, index);
    case LUA_TSTRING: {
      std::size_t n = 0;
      const char* s = lua_tolstring(L, index, &n);
      return std::string(s, n);
    }
    case LUA_TTABLE: {
      auto len = static_cast<lua_Integer>(luaL_len(L, index));
      lua_Integer keys = 0;
      bool all_string = true;
      lua_pushnil(L);
      while (lua_next(L, index) != 0) {
        ++keys;
        if (lua_type(L, -2) != LUA_TSTRING)
          all_string = false;
        lua_pop(L, 1);
      }
      if (keys > 0 && keys == len) {
        json arr = json::array();
        for (lua_Integer i = 1; i <= len; ++i) {
          lua_rawgeti(L, index, i);
          arr.push_back(to_json(L, -1, what));
          lua_pop(L, 1);
        }
        return arr;
      }
      if (!all_string)
        luaL_error(L, "%s: a table mixes list items and named fields; use one or the other",
                   what.c_str());
      json obj = json::object();
      lua_pushnil(L);
      while (lua_next(L, index) != 0) {
        obj[lua_tostring(L, -2)] = to_json(L, -1, what + "." + lua_tostring(L, -2));
        lua_pop(L, 1);
      }
      return obj;
    }
    default:
      luaL_error(L, "%s: a %s cannot be turned into data", what.c_str(),
                 luaL_typename(L, index));
      return nullptr;
  }
}

namespace {

std::string inline_value(const json& v) {
  switch (v.type()) {
    case json::value_t::object: {
      std::string out = "{ ";
      bool first = true;
      for (const auto& [k, x] : v.items()) {
        if (x.is_null())
          continue;
        out += (first ? "" : ", ") + json(k).dump() + " = " + inline_value(x);
        first = false;
      }
      return out + " }";
    }
    case json::value_t::array: {
      std::string out = "[";
      for (std::size_t i = 0; i < v.size(); ++i)
        out += (i ? ", " : "") + inline_value(v[i]);
      return out + "]";
    }
    case json::value_t::number_float: {
      auto d = v.get<double>();
      if (std::floor(d) == d && std::fabs(d) < 1e15)
        return std::to_string(static_cast<long long>(d)) + ".0";
      return v.dump();
    }
    default: return v.dump();  // strings, numbers, booleans: JSON spelling is TOML's
  }
}

bool is_array_of_objects(const json& v) {
  if (!v.is_array() || v.empty())
    return false;
  for (const auto& x : v)
    if (!x.is_object())
      return false;
  return true;
}

} // namespace

std::string to_toml(const json& doc) {
  // An empty Lua table is an empty object to to_json; at the top of a config
  // it means "none" (no remotes, default [retry]): leave the key out.
  std::string out;
  for (const auto& [k, v] : doc.items())
    if (!v.is_null() && !v.is_object() && !is_array_of_objects(v))
      out += json(k).dump() + " = " + inline_value(v) + "\n";
  for (const auto& [k, v] : doc.items()) {
    if (v.is_object() && v.empty())
      continue;
    if (v.is_object()) {
      out += "\n[" + json(k).dump() + "]\n";
      for (const auto& [k2, v2] : v.items())
        if (!v2.is_null())
          out += json(k2).dump() + " = " + inline_value(v2) + "\n";
    } else if (is_array_of_objects(v)) {
      for (const auto& item : v) {
        out += "\n[[" + json(k).dump() + "]]\n";
        for (const auto& [k2, v2] : item.items())
          if (!v2.is_null())
            out += json(k2).dump() + " = " + inline_value(v2) + "\n";
      }
    }
  }
  return out;
}

} // namespace syncmesh::scenarios
