#include "store/row_encoder.hpp"

#include <algorithm>

#include "store/key_codec.hpp"
#include "store/record_codec.hpp"
#include "store/value_codec.hpp"

namespace syncmesh::store {

namespace {

} // namespace

// A MessagePack output that writes into the encoder's buffer, which is kept
// larger than what it holds: a write is an inline copy, not a call into
// std::string (the appends of a row's few bytes at a time were a sixth of a
// snapshot's encoding time).
struct row_encoder::sink {
  std::string& out;
  std::size_t& used;

  void write(const char* data, std::size_t size) {
    if (used + size > out.size())
      out.resize(std::max(out.size() * 2, used + size + 4096));
    std::memcpy(&out[used], data, size);
    used += size;
  }
  void append_u32(std::size_t n) {
    auto v = static_cast<std::uint32_t>(n);
    write(reinterpret_cast<const char*>(&v), sizeof v);
  }
};

row_encoder::row_encoder(schema shape) : rows_(std::make_shared<encoded_rows>()) {
  key_slot_.assign(shape.columns.size(), -1);
  for (std::size_t k = 0; k < shape.primary_key.size(); ++k)
    key_slot_[shape.primary_key[k]] = static_cast<int>(k);
  key_parts_.resize(shape.primary_key.size());
  rows_->shape_ = std::move(shape);
}

status row_encoder::refuse(std::string why) {
  abandon_row();
  return status::invalid_argument(std::move(why));
}

status row_encoder::next_column(value_kind kind, std::size_t& column) {
  const auto& s = rows_->shape_;
  if (column_ >= s.columns.size())
    return refuse("table '" + s.table + "' has " + std::to_string(s.columns.size())
                  + " columns but the row has more values");
  const auto& c = s.columns[column_];
  if (kind == value_kind::null) {
    if (!c.nullable)
      return refuse("column '" + s.table + "." + c.name + "' is not nullable but got null");
  } else if (kind != c.kind) {
    return refuse("column '" + s.table + "." + c.name + "' holds " + to_string(c.kind)
                  + " values but got a " + to_string(kind) + " value");
  }
  if (column_ == 0) {
    // The value's size and the envelope's header are filled in by end_row.
    row_start_ = used_;
    static const char room[sizeof(std::uint32_t) + record_header_size] = {};
    sink out{rows_->data_, used_};
    out.write(room, sizeof room);
    msgpack::packer<sink>(out).pack_array(static_cast<std::uint32_t>(s.columns.size()));
  }
  column = column_++;
  return status::ok();
}

void row_encoder::key_part(std::size_t column, const value& v) {
  if (auto slot = key_slot_[column]; slot >= 0) {
    auto& part = key_parts_[static_cast<std::size_t>(slot)];
    part.clear();
    encode_key_part(part, v);
  }
}

status row_encoder::add_null() {
  std::size_t c = 0;
  if (auto st = next_column(value_kind::null, c); !st)
    return st;
  sink out{rows_->data_, used_};
  append_null(out);
  return status::ok();
}

status row_encoder::add_bool(bool b) {
  std::size_t c = 0;
  if (auto st = next_column(value_kind::boolean, c); !st)
    return st;
  sink out{rows_->data_, used_};
  append_bool(out, b);
  if (key_slot_[c] >= 0)
    key_part(c, value::boolean(b));
  return status::ok();
}

status row_encoder::add_int(std::int64_t i) {
  std::size_t c = 0;
  if (auto st = next_column(value_kind::integer, c); !st)
    return st;
  sink out{rows_->data_, used_};
  append_int(out, i);
  if (key_slot_[c] >= 0)
    key_part(c, value::integer(i));
  return status::ok();
}

status row_encoder::add_real(double d) {
  std::size_t c = 0;
  if (auto st = next_column(value_kind::real, c); !st)
    return st;
  sink out{rows_->data_, used_};
  append_real(out, d);
  if (key_slot_[c] >= 0)
    key_part(c, value::real(d));
  return status::ok();
}

status row_encoder::add_text(std::string_view s) {
  std::size_t c = 0;
  if (auto st = next_column(value_kind::text, c); !st)
    return st;
  sink out{rows_->data_, used_};
  append_text(out, s);
  if (key_slot_[c] >= 0)
    key_part(c, value::text(std::string(s)));
  return status::ok();
}

status row_encoder::add_bytes(std::string_view s) {
  std::size_t c = 0;
  if (auto st = next_column(value_kind::bytes, c); !st)
    return st;
  sink out{rows_->data_, used_};
  append_bytes(out, s);
  if (key_slot_[c] >= 0)
    key_part(c, value::bytes(std::string(s)));
  return status::ok();
}

status row_encoder::add_exact(std::string_view text) {
  std::size_t c = 0;
  if (auto st = next_column(value_kind::exact, c); !st)
    return st;
  const auto& type_name = rows_->shape_.columns[c].type_name;
  sink out{rows_->data_, used_};
  append_exact(out, type_name, text);
  if (key_slot_[c] >= 0)
    key_part(c, value::exact(type_name, std::string(text)));
  return status::ok();
}

status row_encoder::add(const value& v) {
  switch (v.kind()) {
    case value_kind::null: return add_null();
    case value_kind::boolean: return add_bool(v.as_bool());
    case value_kind::integer: return add_int(v.as_int());
    case value_kind::real: return add_real(v.as_real());
    case value_kind::text: return add_text(v.as_text());
    case value_kind::bytes: return add_bytes(v.as_bytes());
    case value_kind::exact: {
      const auto& s = rows_->shape_;
      if (column_ < s.columns.size() && s.columns[column_].kind == value_kind::exact
          && s.columns[column_].type_name != v.as_exact().type_name)
        return refuse("column '" + s.table + "." + s.columns[column_].name + "' holds "
                      + s.columns[column_].type_name + " values but got "
                      + v.as_exact().type_name);
      return add_exact(v.as_exact().text);
    }
  }
  return refuse("a value has an unknown kind");
}

status row_encoder::end_row() {
  const auto& s = rows_->shape_;
  if (column_ != s.columns.size())
    return refuse("table '" + s.table + "' has " + std::to_string(s.columns.size())
                  + " columns but the row has " + std::to_string(column_) + " values");
  auto& data = rows_->data_;
  const auto value_at = row_start_ + sizeof(std::uint32_t);
  const auto value_size = static_cast<std::uint32_t>(used_ - value_at);
  std::memcpy(&data[row_start_], &value_size, sizeof value_size);
  seal_row(&data[value_at], value_size);
  std::size_t key_size = 0;
  for (const auto& part : key_parts_)
    key_size += part.size();
  sink out{data, used_};
  out.append_u32(key_size);
  for (const auto& part : key_parts_)
    out.write(part.data(), part.size());
  ++rows_->rows_;
  column_ = 0;
  return status::ok();
}

void row_encoder::abandon_row() {
  if (column_ == 0)
    return;
  used_ = row_start_;
  column_ = 0;
}

std::shared_ptr<const encoded_rows> row_encoder::take() {
  abandon_row();
  auto next = std::make_shared<encoded_rows>();
  next->shape_ = rows_->shape_;
  next->data_.resize(used_);  // the next piece is likely as large
  std::swap(next, rows_);
  next->data_.resize(used_);
  used_ = 0;
  return next;
}

} // namespace syncmesh::store
