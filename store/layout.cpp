#include "store/layout.hpp"

#include "store/key_codec.hpp"

namespace syncmesh::store::layout {

namespace {

std::string with_prefix(char prefix, std::string_view rest) {
  std::string k;
  k.reserve(1 + rest.size());
  k.push_back(prefix);
  k.append(rest);
  return k;
}

std::string with_seq(char prefix, std::uint64_t seq) {
  std::string k(1, prefix);
  encode_u64_be(k, seq);
  return k;
}

} // namespace

std::string meta_key(std::string_view name) { return with_prefix(meta_prefix, name); }
std::string schema_key(std::string_view table) { return with_prefix(schema_prefix, table); }
std::string job_key(std::string_view view) { return with_prefix(job_prefix, view); }
std::string cursor_key(std::string_view source) { return with_prefix(cursor_prefix, source); }
std::string ext_key(std::string_view name) { return with_prefix(ext_prefix, name); }
std::string log_key(std::uint64_t seq) { return with_seq(log_prefix, seq); }
std::string outbox_key(std::uint64_t seq) { return with_seq(outbox_prefix, seq); }

std::string row_prefix_of(std::string_view table) {
  std::string k(1, row_prefix);
  encode_key_part(k, value::text(std::string(table)));
  return k;
}

std::string row_key(std::string_view table, const row& key) {
  auto k = row_prefix_of(table);
  for (const auto& v : key)
    encode_key_part(k, v);
  return k;
}

std::string generation_prefix_of(std::string_view table, std::uint64_t generation) {
  if (generation == 0)
    return row_prefix_of(table);
  std::string k(1, generation_row_prefix);
  encode_key_part(k, value::text(std::string(table)));
  encode_u64_be(k, generation);
  return k;
}

std::string live_generation_key(std::string_view table) {
  return with_prefix(live_generation_prefix, table);
}

std::string prefix_end(std::string prefix) {
  while (!prefix.empty()) {
    auto& last = prefix.back();
    if (static_cast<unsigned char>(last) != 0xff) {
      ++last;
      return prefix;
    }
    prefix.pop_back();
  }
  return prefix;  // empty: no upper bound
}

std::string describe_key(std::string_view raw) {
  auto hex = " [key " + to_hex(raw) + "]";
  if (raw.empty())
    return "the empty key";
  auto rest = raw.substr(1);
  switch (raw[0]) {
    case meta_prefix: return "meta '" + std::string(rest) + "'" + hex;
    case schema_prefix: return "schema of table '" + std::string(rest) + "'" + hex;
    case job_prefix: return "job state of view '" + std::string(rest) + "'" + hex;
    case cursor_prefix: return "cursor of source '" + std::string(rest) + "'" + hex;
    case ext_prefix: return "extension record '" + std::string(rest) + "'" + hex;
    case live_generation_prefix:
      return "live generation of table '" + std::string(rest) + "'" + hex;
    case log_prefix:
      if (rest.size() == 8)
        return "change-log entry " + std::to_string(decode_u64_be(rest)) + hex;
      break;
    case outbox_prefix:
      if (rest.size() == 8)
        return "outbox entry " + std::to_string(decode_u64_be(rest)) + hex;
      break;
    case row_prefix: {
      auto table = decode_key_part(rest);
      auto key = decode_key(rest);
      if (table && table->kind() == value_kind::text && key)
        return "row " + table->as_text() + to_display(*key) + hex;
      break;
    }
    case generation_row_prefix: {
      auto table = decode_key_part(rest);
      if (!table || table->kind() != value_kind::text || rest.size() < 8)
        break;
      auto generation = decode_u64_be(rest.substr(0, 8));
      rest.remove_prefix(8);
      auto key = decode_key(rest);
      if (key)
        return "row " + table->as_text() + to_display(*key) + " of generation "
               + std::to_string(generation) + hex;
      break;
    }
    default: break;
  }
  return "key" + hex;
}

} // namespace syncmesh::store::layout
