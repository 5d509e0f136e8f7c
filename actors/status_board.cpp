#include "actors/status_board.hpp"

#include <set>

#include "actors/selector.hpp"

namespace syncmesh::actors {

using nlohmann::json;

void status_board::publish(const std::string& view, json record) {
  std::lock_guard<std::mutex> lock(mutex_);
  records_[view] = std::move(record);
}

void status_board::withdraw(const std::string& view) {
  std::lock_guard<std::mutex> lock(mutex_);
  records_.erase(view);
}

std::optional<std::vector<json>> status_board::read(const std::vector<std::string>& views) const {
  std::vector<json> out;
  out.reserve(views.size());
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& v : views) {
    auto it = records_.find(v);
    if (it == records_.end())
      return std::nullopt;
    out.push_back(it->second);
  }
  return out;
}

json stopped_sync_reply(const std::string& view, const std::string& state) {
  return {{"view", view},
          {"skipped", true},
          {"state", state},
          {"reason", "the view is stopped; `ctl resume` re-enables it"}};
}

std::optional<std::vector<std::string>> views_covered(const selector& sel,
                                                      const std::vector<std::string>& view_order) {
  std::set<std::string> known(view_order.begin(), view_order.end());
  if (!sel.unknown_names(known).empty())
    return std::nullopt;
  std::vector<std::string> targets;
  for (const auto& name : view_order) {
    auto dot = name.find('.');
    if (sel.matches(name.substr(0, dot), name.substr(dot + 1)))
      targets.push_back(name);
  }
  return targets;
}

std::optional<json> answer_from_board(const status_board& board,
                                      const std::vector<std::string>& view_order,
                                      const std::string& verb, const json& args) {
  if (verb != "status" && verb != "sync")
    return std::nullopt;
  for (const auto& [k, v] : args.items())
    if (k != "selector")
      return std::nullopt;
  auto it = args.find("selector");
  auto sel = selector::from_json(it == args.end() ? json("*") : *it);
  if (!sel)
    return std::nullopt;
  auto targets = views_covered(*sel, view_order);
  if (!targets || targets->empty())
    return std::nullopt;
  auto records = board.read(*targets);
  if (!records)
    return std::nullopt;
  if (verb == "status")
    return json(std::move(*records));
  json out = json::array();
  for (std::size_t i = 0; i < records->size(); ++i) {
    const auto& r = (*records)[i];
    auto enabled = r.find("enabled");
    auto state = r.find("state");
    if (enabled == r.end() || !enabled->is_boolean() || enabled->get<bool>()
        || state == r.end() || !state->is_string())
      return std::nullopt;  // this view would run: the view actor decides
    out.push_back(stopped_sync_reply((*targets)[i], state->get<std::string>()));
  }
  return out;
}

} // namespace syncmesh::actors
