#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "connectors/postgres/pgoutput.hpp"
#include "store/row_encoder.hpp"
#include "store/schema.hpp"
#include "store/status.hpp"

namespace syncmesh::connectors::postgres {

/// Encodes rows of COPY text output straight into their stored form (a
/// store::row_encoder), without building store::row values: each field
/// becomes the value to_value() makes of it for its source column's type,
/// with an exact value named after its local column's type. This is a
/// snapshot's hot path: it runs on the connector's thread, so the store's
/// one writer only copies bytes.
class copy_encoder {
public:
  /// `shape`: the local table the rows are staged into, its columns in the
  /// COPY's order; `oids`: per column, the source column's type.
  /// REQUIRES: shape.validate() is ok, oids.size() == shape.columns.size().
  copy_encoder(store::schema shape, std::vector<std::uint32_t> oids);

  /// Encodes one row's COPY text line. corruption for a line that is not
  /// COPY text or has another number of fields than columns;
  /// invalid_argument for a field its column cannot take (a NULL key: "a
  /// row's key column 'id' is NULL; ...");
  /// the conversion's sentence for text its type cannot have. On error the
  /// row is not encoded; earlier rows stay.
  store::status add_line(std::string_view line);

  /// The rows encoded so far (take() hands them over).
  store::row_encoder& rows() { return rows_; }

private:
  store::status add_field(std::size_t column, const std::string_view* field);

  store::row_encoder rows_;
  std::vector<std::uint32_t> oids_;
  std::vector<store::value_kind> kinds_;
  type_names names_;
  std::string scratch_;
};

} // namespace syncmesh::connectors::postgres
