#include "actors/selector.hpp"

namespace syncmesh::actors {

namespace {

store::status bad(const std::string& what) {
  return store::status::invalid_argument(
    what + "; a selector is \"*\", or {\"namespace\": [\"view\", ...]} (\"*\" for a whole "
           "namespace); on the command line: '*' or 'ns.view,ns.*'");
}

} // namespace

store::result<selector> selector::from_json(const nlohmann::json& j) {
  selector s;
  if (j.is_string() && j.get<std::string>() == "*")
    return s;
  if (!j.is_object() || j.empty())
    return bad("the selector " + j.dump() + " is neither \"*\" nor a non-empty object");
  s.all_ = false;
  for (const auto& [ns, names] : j.items()) {
    if (ns.empty())
      return bad("the selector names an empty namespace");
    auto& set = s.names_[ns];
    if (names.is_string() && names.get<std::string>() == "*") {
      set.insert("*");
      continue;
    }
    if (!names.is_array() || names.empty())
      return bad("namespace '" + ns + "' in the selector maps to " + names.dump()
                 + " instead of a list of view names or \"*\"");
    for (const auto& n : names) {
      if (!n.is_string() || n.get<std::string>().empty())
        return bad("namespace '" + ns + "' in the selector lists " + n.dump()
                   + ", which is not a view name");
      set.insert(n.get<std::string>());
    }
  }
  return s;
}

store::result<selector> selector::parse(const std::string& text) {
  if (text.empty() || text == "*")
    return selector{};
  selector s;
  s.all_ = false;
  std::size_t start = 0;
  while (start <= text.size()) {
    auto end = text.find(',', start);
    auto item = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
    auto dot = item.rfind('.');
    if (item.empty() || dot == std::string::npos || dot == 0 || dot + 1 == item.size())
      return bad("'" + item + "' in the selector is not of the form ns.view or ns.*");
    s.names_[item.substr(0, dot)].insert(item.substr(dot + 1));
    if (end == std::string::npos)
      break;
    start = end + 1;
  }
  return s;
}

nlohmann::json selector::to_json() const {
  if (all_)
    return "*";
  auto j = nlohmann::json::object();
  for (const auto& [ns, names] : names_) {
    if (names.count("*"))
      j[ns] = "*";
    else
      j[ns] = std::vector<std::string>(names.begin(), names.end());
  }
  return j;
}

bool selector::matches(const std::string& ns, const std::string& name) const {
  if (all_)
    return true;
  auto i = names_.find(ns);
  return i != names_.end() && (i->second.count("*") || i->second.count(name));
}

std::string selector::unknown_names(const std::set<std::string>& known) const {
  if (all_)
    return {};
  std::string missing;
  for (const auto& [ns, names] : names_) {
    for (const auto& n : names) {
      bool found = false;
      if (n == "*") {
        for (const auto& k : known)
          found = found || k.compare(0, ns.size() + 1, ns + ".") == 0;
      } else {
        found = known.count(ns + "." + n) > 0;
      }
      if (!found)
        missing += (missing.empty() ? "" : ", ") + ns + "." + n;
    }
  }
  if (missing.empty())
    return {};
  return "no view matches " + missing + "; `syncmesh ctl status` lists the configured views";
}

} // namespace syncmesh::actors
