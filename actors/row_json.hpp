#pragma once

#include <nlohmann/json.hpp>

#include "store/records.hpp"
#include "store/schema.hpp"
#include "store/status.hpp"
#include "store/value.hpp"

namespace syncmesh::actors {

/// Values as JSON for `ctl query` and `ctl exec`: null, booleans, integers,
/// reals and text as themselves; exact values (numeric, timestamp, json) as
/// their exact text; bytes as "\\x" followed by lowercase hex.
nlohmann::json to_json(const store::value& v);

/// A row as a JSON object keyed by column name.
nlohmann::json row_to_json(const store::schema& s, const store::row& r);

/// A full row from a JSON object: every column named, none unknown, each
/// value fitting its column. invalid_argument with a sentence otherwise.
store::result<store::row> row_from_json(const store::schema& s, const nlohmann::json& obj);

/// A primary key from a JSON object naming exactly the key columns.
store::result<store::row> key_from_json(const store::schema& s, const nlohmann::json& obj);

/// The changes an exec request names: {"upsert": [rows], "delete": [keys]}
/// against table `s` (each change's table is s.table). invalid_argument with
/// a sentence for anything else, or for no rows at all.
store::result<std::vector<store::change>> changes_from_json(const store::schema& s,
                                                            const nlohmann::json& ops);

} // namespace syncmesh::actors
