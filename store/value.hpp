#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace syncmesh::store {

/// The kinds of value a column can hold. `exact` keeps types that must not be
/// rounded (numeric, timestamp, json, ...) as their text with the type name.
enum class value_kind : std::uint8_t {
  null = 0,
  boolean = 1,
  integer = 2,
  real = 3,
  text = 4,
  bytes = 5,
  exact = 6,
};

const char* to_string(value_kind kind) noexcept;

/// An immutable cell value. Equality is exact: 1 (integer) != 1.0 (real).
class value {
public:
  struct bytes_t {
    std::string data;
    bool operator==(const bytes_t& other) const { return data == other.data; }
  };
  struct exact_t {
    std::string type_name;  // e.g. "numeric", "timestamptz", "json"
    std::string text;       // the value exactly as its origin printed it
    bool operator==(const exact_t& other) const {
      return type_name == other.type_name && text == other.text;
    }
  };

  value() = default;  // null

  static value null() { return {}; }
  static value boolean(bool b) { return make<bool>(b); }
  static value integer(std::int64_t i) { return make<std::int64_t>(i); }
  static value real(double d) { return make<double>(d); }
  static value text(std::string s) { return make<std::string>(std::move(s)); }
  static value bytes(std::string data) { return make<bytes_t>(bytes_t{std::move(data)}); }
  static value exact(std::string type_name, std::string text) {
    return make<exact_t>(exact_t{std::move(type_name), std::move(text)});
  }

  value_kind kind() const noexcept { return static_cast<value_kind>(data_.index()); }
  bool is_null() const noexcept { return kind() == value_kind::null; }

  // REQUIRES: kind() is the kind named by the accessor.
  bool as_bool() const { return std::get<bool>(data_); }
  std::int64_t as_int() const { return std::get<std::int64_t>(data_); }
  double as_real() const { return std::get<double>(data_); }
  const std::string& as_text() const { return std::get<std::string>(data_); }
  const std::string& as_bytes() const { return std::get<bytes_t>(data_).data; }
  const exact_t& as_exact() const { return std::get<exact_t>(data_); }

  /// A human-readable rendering for logs, errors and `ctl query` tables.
  std::string to_display() const;

  bool operator==(const value& other) const { return data_ == other.data_; }
  bool operator!=(const value& other) const { return !(*this == other); }

private:
  using data_type =
    std::variant<std::monostate, bool, std::int64_t, double, std::string, bytes_t, exact_t>;

  template <class T, class... Args>
  static value make(Args&&... args) {
    value v;
    v.data_.template emplace<T>(std::forward<Args>(args)...);
    return v;
  }

  data_type data_;
};

/// A row holds one value per column, in the schema's column order.
using row = std::vector<value>;

/// "(1, 'ada')": a row or key for messages and logs.
std::string to_display(const row& r);

} // namespace syncmesh::store
