#pragma once

#include <string>
#include <system_error>
#include <utility>
#include <variant>

namespace syncmesh::store {

/// What went wrong in the store library. Plugs into std::error_code.
enum class errc {
  ok = 0,
  io_error,          // the file system failed; the store is unchanged
  corruption,        // a value read back from disk is damaged
  not_found,         // a named table, row or record does not exist
  invalid_argument,  // the caller passed something the store cannot take
  format_too_new,    // the data directory was written by a newer syncmesh
  clock_skew,        // a remote stamp lies too far in the future
  closed,            // the store was closed or failed and takes no writes
};

const std::error_category& store_category() noexcept;
std::error_code make_error_code(errc e) noexcept;

/// The outcome of a store operation: ok, or a code with a sentence that says
/// what is wrong and what to do. Cheap to copy when ok.
class [[nodiscard]] status {
public:
  status() = default;

  static status ok() { return {}; }
  static status io_error(std::string msg) { return {errc::io_error, std::move(msg)}; }
  static status corruption(std::string msg) { return {errc::corruption, std::move(msg)}; }
  static status not_found(std::string msg) { return {errc::not_found, std::move(msg)}; }
  static status invalid_argument(std::string msg) {
    return {errc::invalid_argument, std::move(msg)};
  }
  static status format_too_new(std::string msg) {
    return {errc::format_too_new, std::move(msg)};
  }
  static status clock_skew(std::string msg) { return {errc::clock_skew, std::move(msg)}; }
  static status closed(std::string msg) { return {errc::closed, std::move(msg)}; }

  bool is_ok() const noexcept { return code_ == errc::ok; }
  explicit operator bool() const noexcept { return is_ok(); }
  errc code() const noexcept { return code_; }
  std::error_code error_code() const noexcept { return make_error_code(code_); }
  const std::string& message() const noexcept { return message_; }

  /// "corruption: <message>", or "ok".
  std::string to_string() const;

private:
  status(errc code, std::string msg) : code_(code), message_(std::move(msg)) {}

  errc code_ = errc::ok;
  std::string message_;
};

/// A value or the status that explains its absence.
template <class T>
class [[nodiscard]] result {
public:
  result(T value) : data_(std::move(value)) {}
  result(status st) : data_(std::move(st)) {}

  bool is_ok() const noexcept { return data_.index() == 0; }
  explicit operator bool() const noexcept { return is_ok(); }

  // REQUIRES: is_ok()
  T& value() & { return std::get<0>(data_); }
  const T& value() const& { return std::get<0>(data_); }
  T&& value() && { return std::get<0>(std::move(data_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  /// The error; ok() when a value is held.
  status error() const { return is_ok() ? status::ok() : std::get<1>(data_); }

private:
  std::variant<T, status> data_;
};

} // namespace syncmesh::store

namespace std {
template <>
struct is_error_code_enum<syncmesh::store::errc> : true_type {};
} // namespace std
