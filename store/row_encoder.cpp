#include "store/row_encoder.hpp"

#include "store/key_codec.hpp"
#include "store/record_codec.hpp"
#include "store/value_codec.hpp"

namespace syncmesh::store {

namespace {

// A MessagePack output that appends to a string.
struct string_sink {
  std::string& out;
  void write(const char* data, std::size_t size) { out.append(data, size); }
};

void append_u32(std::string& out, std::size_t n) {
  auto v = static_cast<std::uint32_t>(n);
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}

} // namespace

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

result<std::size_t> row_encoder::next_column(value_kind kind) {
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
    auto& data = rows_->data_;
    row_start_ = data.size();
    data.append(sizeof(std::uint32_t) + record_header_size, '\0');
    string_sink sink{data};
    msgpack::packer<string_sink>(sink).pack_array(static_cast<std::uint32_t>(s.columns.size()));
  }
  return column_++;
}

void row_encoder::key_part(std::size_t column, const value& v) {
  if (auto slot = key_slot_[column]; slot >= 0) {
    auto& part = key_parts_[static_cast<std::size_t>(slot)];
    part.clear();
    encode_key_part(part, v);
  }
}

status row_encoder::add_null() {
  auto c = next_column(value_kind::null);
  if (!c)
    return c.error();
  string_sink sink{rows_->data_};
  append_null(sink);
  return status::ok();
}

status row_encoder::add_bool(bool b) {
  auto c = next_column(value_kind::boolean);
  if (!c)
    return c.error();
  string_sink sink{rows_->data_};
  append_bool(sink, b);
  if (key_slot_[*c] >= 0)
    key_part(*c, value::boolean(b));
  return status::ok();
}

status row_encoder::add_int(std::int64_t i) {
  auto c = next_column(value_kind::integer);
  if (!c)
    return c.error();
  string_sink sink{rows_->data_};
  append_int(sink, i);
  if (key_slot_[*c] >= 0)
    key_part(*c, value::integer(i));
  return status::ok();
}

status row_encoder::add_real(double d) {
  auto c = next_column(value_kind::real);
  if (!c)
    return c.error();
  string_sink sink{rows_->data_};
  append_real(sink, d);
  if (key_slot_[*c] >= 0)
    key_part(*c, value::real(d));
  return status::ok();
}

status row_encoder::add_text(std::string_view s) {
  auto c = next_column(value_kind::text);
  if (!c)
    return c.error();
  string_sink sink{rows_->data_};
  append_text(sink, s);
  if (key_slot_[*c] >= 0)
    key_part(*c, value::text(std::string(s)));
  return status::ok();
}

status row_encoder::add_bytes(std::string_view s) {
  auto c = next_column(value_kind::bytes);
  if (!c)
    return c.error();
  string_sink sink{rows_->data_};
  append_bytes(sink, s);
  if (key_slot_[*c] >= 0)
    key_part(*c, value::bytes(std::string(s)));
  return status::ok();
}

status row_encoder::add_exact(std::string_view text) {
  auto c = next_column(value_kind::exact);
  if (!c)
    return c.error();
  const auto& type_name = rows_->shape_.columns[*c].type_name;
  string_sink sink{rows_->data_};
  append_exact(sink, type_name, text);
  if (key_slot_[*c] >= 0)
    key_part(*c, value::exact(type_name, std::string(text)));
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
  auto value_at = row_start_ + sizeof(std::uint32_t);
  auto value_size = static_cast<std::uint32_t>(data.size() - value_at);
  std::memcpy(&data[row_start_], &value_size, sizeof value_size);
  seal_row(data, value_at);
  std::size_t key_size = 0;
  for (const auto& part : key_parts_)
    key_size += part.size();
  append_u32(data, key_size);
  for (const auto& part : key_parts_)
    data.append(part);
  ++rows_->rows_;
  column_ = 0;
  return status::ok();
}

void row_encoder::abandon_row() {
  if (column_ == 0)
    return;
  rows_->data_.resize(row_start_);
  column_ = 0;
}

std::shared_ptr<const encoded_rows> row_encoder::take() {
  abandon_row();
  auto next = std::make_shared<encoded_rows>();
  next->shape_ = rows_->shape_;
  std::swap(next, rows_);
  return next;
}

} // namespace syncmesh::store
