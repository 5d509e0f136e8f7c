#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "store/status.hpp"
#include "store/value.hpp"

namespace syncmesh::store {

/// One column of a table. A column of kind `exact` names its type
/// (`type_name`, e.g. "numeric"); other kinds leave it empty.
struct column {
  std::string name;
  value_kind kind = value_kind::text;
  std::string type_name;
  bool nullable = true;

  bool operator==(const column& other) const {
    return name == other.name && kind == other.kind && type_name == other.type_name
           && nullable == other.nullable;
  }
};

/// A table's shape: its columns and its primary key (single or composite),
/// given as indexes into `columns`, in key order.
struct schema {
  std::string table;
  std::vector<column> columns;
  std::vector<std::size_t> primary_key;

  /// ok, or invalid_argument naming the problem (no key, duplicate column,
  /// key column out of range or nullable, empty names).
  status validate() const;

  /// Index of the named column, if any.
  std::optional<std::size_t> column_index(const std::string& name) const;

  /// ok if `r` has one value per column and each is null (where allowed) or
  /// of the column's kind; else invalid_argument naming the column.
  status check_row(const row& r) const;

  /// ok if `key` has one value per key column, none null, each of its
  /// column's kind.
  status check_key(const row& key) const;

  /// The primary-key values of a full row. REQUIRES: check_row(r) is ok.
  row key_of(const row& r) const;
  /// Whether `key` is key_of(r), without building it. REQUIRES: check_row(r)
  /// is ok.
  bool is_key_of(const row& key, const row& r) const;

  bool operator==(const schema& other) const {
    return table == other.table && columns == other.columns && primary_key == other.primary_key;
  }
};

} // namespace syncmesh::store
