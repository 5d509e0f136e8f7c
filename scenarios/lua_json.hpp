#pragma once

#include <string>

#include <nlohmann/json.hpp>

struct lua_State;

namespace syncmesh::scenarios {

/// Pushes `j` onto the Lua stack: objects as tables, arrays as sequences
/// (1-based), null as nil.
void push_json(lua_State* L, const nlohmann::json& j);

/// Reads the Lua value at `index` as JSON: a table whose keys are exactly
/// 1..n is an array (the empty table is an object), other tables are
/// objects with string keys; functions and userdata are refused with a
/// Lua error naming `what`.
nlohmann::json to_json(lua_State* L, int index, const std::string& what);

/// Renders a JSON object as a TOML document (nested objects become tables,
/// arrays of objects become arrays of tables, empty objects are left out).
std::string to_toml(const nlohmann::json& doc);

} // namespace syncmesh::scenarios
