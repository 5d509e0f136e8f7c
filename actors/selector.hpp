#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "store/status.hpp"

namespace syncmesh::actors {

/// Which views a control request is about: every view ("*"), or a map from
/// namespace to view names, where a namespace may map to "*" for all of its
/// views. JSON forms: "*", {"shop": ["items", "orders"]}, {"shop": "*"}.
class selector {
public:
  static selector all() { return selector{}; }

  /// Parses the JSON form; invalid_argument with a sentence otherwise.
  static store::result<selector> from_json(const nlohmann::json& j);

  /// Parses the command-line form: "*", or comma-separated "ns.name" and
  /// "ns.*" items.
  static store::result<selector> parse(const std::string& text);

  nlohmann::json to_json() const;

  bool matches(const std::string& ns, const std::string& name) const;

  /// Every (ns, name) the selector names explicitly that is not among
  /// `known` ("ns.name" strings), as a sentence; empty if all are known. A
  /// namespace with "*" must contain at least one known view.
  std::string unknown_names(const std::set<std::string>& known) const;

private:
  bool all_ = true;
  std::map<std::string, std::set<std::string>> names_;  // "*" = whole namespace
};

} // namespace syncmesh::actors
