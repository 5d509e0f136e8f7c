#pragma once

// A view's row filters (column = value, ranges, IN lists) evaluated on the
// rows the pgoutput stream sends, with the meaning PostgreSQL gives the
// WHERE clause the snapshot runs (snapshot_reader::copy): so a row the
// snapshot would hold is exactly a row the stream keeps.
//
//   auto f = row_filter::compile(where, table);   // after describe()
//   switch (*f->evaluate(relation, tuple)) { ... } // per Insert / Update
//
// A plain library: no I/O, no threads.

#include <cstdint>
#include <string>
#include <vector>

#include "connectors/postgres/pgoutput.hpp"
#include "connectors/postgres/replication_stream.hpp"
#include "store/status.hpp"

namespace syncmesh::connectors::postgres {

/// What the filters say of one row. SQL's three-valued logic folds NULL
/// into no_match (a WHERE keeps only rows it finds true); `unknown` means a
/// column a filter reads has no value in the tuple (an unchanged TOASTed
/// value, or a column the relation no longer has).
enum class filter_verdict { match, no_match, unknown };

/// Whether `collation` (a column_info::collation) orders text by its bytes,
/// as C, POSIX and C.UTF-8 do: only then do < <= > >= on text mean the same
/// here as in PostgreSQL.
bool byte_ordered_collation(const std::string& collation);

/// A conjunction of column filters, compiled for the columns' types.
/// Copyable; evaluate() is const and may run on any thread.
class row_filter {
public:
  /// Matches every row.
  row_filter() = default;

  /// Compiles `filters` (all must hold) for the column types of `table`.
  /// Comparisons follow PostgreSQL per type: boolean, int2/int4/int8,
  /// float4/float8 (NaN equal to itself and above everything), numeric
  /// (exact, NaN and ±Infinity included), text, varchar, name and
  /// char(n) (trailing blanks ignored), uuid, date, timestamp and
  /// timestamptz (±infinity included; timestamptz compared as instants, so
  /// its text may carry any UTC offset). Date and time text must be ISO
  /// (`YYYY-MM-DD[ HH:MM[:SS[.ffffff]]][±HH[:MM[:SS]]][ BC]`, as PostgreSQL
  /// prints it under DateStyle ISO, which the connections set), and a
  /// timestamptz filter value must carry its offset (Z, +00, -05:30): without
  /// one PostgreSQL reads it in the session's TimeZone. invalid_argument,
  /// naming the column, for: a column `table` lacks; a value its type cannot
  /// take; a column of another type (its order cannot be reproduced here); a
  /// range comparison on text whose collation is not byte-ordered.
  static store::result<row_filter> compile(const std::vector<column_filter>& filters,
                                           const table_info& table);

  bool empty() const noexcept { return terms_.empty(); }

  /// The names of the columns the filters read (each once).
  std::vector<std::string> columns() const;

  /// Evaluates the filters on `tuple`, a row of `rel` (columns found by
  /// name). match when every filter holds; no_match when one is false or
  /// reads NULL; unknown when none is false but one reads an unchanged
  /// TOASTed value or a column `rel` lacks. corruption when a column's
  /// text is not a value of its type.
  store::result<filter_verdict> evaluate(const relation& rel, const tuple_data& tuple) const;

private:
  /// One value of a filterable type, parsed for comparison.
  struct operand {
    int cls = 0;          // order class: -1 -infinity, 0 finite, 1 +infinity, 2 NaN
    bool negative = false;
    std::int64_t integer = 0;  // also: days (date), microseconds (timestamp[tz]) since 2000-01-01
    double real = 0;
    std::string digits;    // numeric: significant digits, no leading/trailing zeros
    std::int64_t exponent = 0;  // numeric: value = 0.digits × 10^exponent
    std::string text;      // text-like and uuid (normalised)
  };


  enum class type_class { boolean, integer, real, numeric, text, bpchar, uuid, date, timestamp,
                          timestamptz };

  struct term {
    std::string column;
    type_class type = type_class::text;
    filter_op op = filter_op::eq;
    std::vector<operand> values;
  };

  /// `filter_value`: the text is a filter's value (PostgreSQL input), not
  /// a row's (PostgreSQL output); only a timestamptz reads them differently.
  static store::result<operand> parse(type_class type, const std::string& text,
                                      bool filter_value = false);
  static int compare(type_class type, const operand& a, const operand& b);

  std::vector<term> terms_;
};

} // namespace syncmesh::connectors::postgres
