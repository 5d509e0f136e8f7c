#include "actors/conflict_resolver.hpp"

#include <map>
#include <mutex>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>

#include "actors/messages.hpp"

namespace syncmesh::actors {

namespace {

caf::behavior merge_nonnull() {
  return {
    [](resolve_atom, const conflict_request& req) {
      auto local = nlohmann::json::parse(req.local, nullptr, false);
      auto remote = nlohmann::json::parse(req.remote, nullptr, false);
      // A delete on either side: the row goes.
      if (!local.is_object() || !remote.is_object())
        return conflict_decision{"merged", "null"};
      auto merged = remote;
      for (const auto& [column, value] : local.items())
        if (!value.is_null())
          merged[column] = value;
      return conflict_decision{"merged", merged.dump()};
    },
  };
}

struct registry {
  std::mutex mu;
  std::map<std::string, conflict_resolver_factory> resolvers;

  registry() {
    resolvers.emplace("merge_nonnull",
                      [](caf::actor_system& sys) { return sys.spawn(merge_nonnull); });
  }
};

registry& resolvers() {
  static registry r;
  return r;
}

} // namespace

bool register_conflict_resolver(const std::string& name, conflict_resolver_factory make) {
  if (name.empty() || !make)
    return false;
  auto& r = resolvers();
  std::lock_guard<std::mutex> lock(r.mu);
  return r.resolvers.emplace(name, std::move(make)).second;
}

std::vector<std::string> conflict_resolver_names() {
  auto& r = resolvers();
  std::lock_guard<std::mutex> lock(r.mu);
  std::vector<std::string> out;
  for (const auto& [name, make] : r.resolvers)
    out.push_back(name);
  return out;
}

caf::actor spawn_conflict_resolver(caf::actor_system& sys, const std::string& name) {
  conflict_resolver_factory make;
  {
    auto& r = resolvers();
    std::lock_guard<std::mutex> lock(r.mu);
    auto it = r.resolvers.find(name);
    if (it == r.resolvers.end())
      return {};
    make = it->second;
  }
  return make(sys);
}

} // namespace syncmesh::actors
