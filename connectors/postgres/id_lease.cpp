#include "connectors/postgres/id_lease.hpp"

#include <charconv>

namespace syncmesh::connectors::postgres {

void id_pool::add(const std::vector<std::int64_t>& ids) {
  for (auto id : ids) {
    if (!ranges_.empty() && ranges_.back().second != INT64_MAX && ranges_.back().second + 1 == id)
      ranges_.back().second = id;
    else
      ranges_.emplace_back(id, id);
    ++size_;
  }
}

std::optional<std::int64_t> id_pool::take() {
  if (ranges_.empty())
    return std::nullopt;
  auto& front = ranges_.front();
  auto id = front.first;
  if (front.first == front.second)
    ranges_.erase(ranges_.begin());
  else
    ++front.first;
  --size_;
  return id;
}

std::string id_pool::encode() const {
  std::string out;
  for (const auto& [first, last] : ranges_) {
    if (!out.empty())
      out += ',';
    out += std::to_string(first) + '~' + std::to_string(last);
  }
  return out;
}

namespace {

bool parse_i64(std::string_view text, std::int64_t& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc{} && end == text.data() + text.size() && !text.empty();
}

} // namespace

store::result<id_pool> id_pool::decode(const std::string& text, const std::string& what) {
  id_pool pool;
  std::string_view rest(text);
  auto bad = [&](const std::string& why) {
    return store::status::invalid_argument(
      what + " is damaged (" + why + "): \"" + text
      + "\"; its ids are not used, and the view leases a fresh block when the remote is "
        "next reachable");
  };
  while (!rest.empty()) {
    auto comma = rest.find(',');
    auto item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    if (comma != std::string_view::npos && rest.empty())
      return bad("a trailing comma");
    auto sep = item.find('~', 1);
    std::int64_t first = 0, last = 0;
    if (sep == std::string_view::npos || !parse_i64(item.substr(0, sep), first)
        || !parse_i64(item.substr(sep + 1), last))
      return bad("\"" + std::string(item) + "\" is not first~last");
    if (last < first)
      return bad("range " + std::string(item) + " runs backwards");
    pool.ranges_.emplace_back(first, last);
    pool.size_ += static_cast<std::uint64_t>(last - first) + 1;
  }
  return pool;
}

std::string id_pool_record(const std::string& view) {
  return "ids/" + view;
}

std::string no_id_sentence(const std::string& view, const std::string& column,
                           const std::string& sequence, std::uint64_t block) {
  return "view " + view + " cannot give this insert an id: its key column '" + column
         + "' comes from the remote sequence " + sequence
         + ", the remote is unreachable and no leased ids are left (each lease "
           "holds "
         + std::to_string(block) + "); give '" + column
         + "' explicitly, or insert again once the remote is back (a larger "
           "`id_block` keeps "
           "more ids in hand for long outages)";
}

} // namespace syncmesh::connectors::postgres
