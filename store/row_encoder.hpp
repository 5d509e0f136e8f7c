#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "store/schema.hpp"
#include "store/status.hpp"
#include "store/value.hpp"

namespace syncmesh::store {

/// Rows of a staged copy in their stored form, made by a row_encoder: per
/// row its encoded primary key (without the table and generation prefix) and
/// its stored value, all in one buffer. The store only copies these bytes
/// into its write (batch::stage), so the encoding work of a snapshot happens
/// on the thread that reads the snapshot, not on the store's one writer.
class encoded_rows {
public:
  /// The schema the rows were checked and encoded against; the store refuses
  /// them for a staging of another shape.
  const schema& shape() const { return shape_; }
  std::size_t size() const { return rows_; }
  bool empty() const { return rows_ == 0; }
  /// Bytes of keys and values together, with their framing.
  std::size_t bytes() const { return data_.size(); }

  /// Calls fn(key, value) for each row, in the order they were encoded.
  template <class Fn>
  void for_each(Fn&& fn) const {
    const char* p = data_.data();
    const char* end = p + data_.size();
    while (p < end) {
      auto value = next(p);
      auto key = next(p);
      fn(key, value);
    }
  }

private:
  friend class row_encoder;

  static std::string_view next(const char*& p) {
    std::uint32_t n = 0;
    std::memcpy(&n, p, sizeof n);
    std::string_view out(p + sizeof n, n);
    p += sizeof n + n;
    return out;
  }

  schema shape_;
  std::size_t rows_ = 0;
  /// Per row: u32 size, stored value, u32 size, encoded key (sizes in host
  /// byte order: this buffer is never stored and never leaves the process).
  std::string data_;
};

/// Encodes rows of one schema without building store::row values: one add
/// per column, in column order, then end_row(). Every value is checked
/// against its column as schema::check_row checks it (kind, exact type, null
/// only where allowed), and the bytes are those encode_row() and
/// encode_key() write for the same row. One encoder per producer thread.
class row_encoder {
public:
  /// REQUIRES: shape.validate() is ok.
  explicit row_encoder(schema shape);

  // The next column's value. invalid_argument, naming the column, when it
  // does not fit the column (or the row has a value too many); the row is
  // then abandoned and the next add starts a new one.
  status add_null();
  status add_bool(bool b);
  status add_int(std::int64_t i);
  status add_real(double d);
  status add_text(std::string_view s);
  status add_bytes(std::string_view s);
  /// An exact value of the column's type (its type_name).
  status add_exact(std::string_view text);
  /// Any value; an exact one must name the column's type.
  status add(const value& v);

  /// Ends the row. invalid_argument when it has fewer values than columns
  /// (the row is abandoned).
  status end_row();
  /// Abandons the row being added, if any; ended rows stay.
  void abandon_row();

  const schema& shape() const { return rows_->shape_; }
  /// Rows ended and not yet taken, and their bytes.
  std::size_t rows() const { return rows_->rows_; }
  std::size_t bytes() const { return used_; }

  /// Hands over the rows ended so far and starts over empty.
  std::shared_ptr<const encoded_rows> take();

private:
  struct sink;

  // Checks the next column against `kind`, opens the row if needed and
  // sets `column` to the column's index.
  status next_column(value_kind kind, std::size_t& column);
  status refuse(std::string why);
  void key_part(std::size_t column, const value& v);

  std::shared_ptr<encoded_rows> rows_;
  std::vector<int> key_slot_;  // per column: its place in the key, or -1
  std::vector<std::string> key_parts_;
  std::size_t column_ = 0;     // the next column to add; 0: no row open
  std::size_t row_start_ = 0;  // where the open row's bytes begin
  std::size_t used_ = 0;       // bytes of rows_->data_ in use; the rest is room
};

} // namespace syncmesh::store
