#include "actors/trust_policy.hpp"

#include <map>
#include <mutex>

#include <caf/all.hpp>

#include "actors/messages.hpp"

namespace syncmesh::actors {

namespace {

caf::behavior refuse_deletes() {
  return {
    [](trust_atom, const trust_request& req) {
      trust_verdicts out;
      for (const auto& c : req.changes)
        out.refusals.push_back(c.op == "delete" || c.op == "truncate"
                                 ? "the trust policy 'refuse_deletes' takes no " + c.op
                                     + " from peers; delete the row on this node instead"
                                 : std::string());
      return out;
    },
  };
}

struct registry {
  std::mutex mu;
  std::map<std::string, trust_policy_factory> policies;

  registry() {
    policies.emplace("refuse_deletes",
                     [](caf::actor_system& sys) { return sys.spawn(refuse_deletes); });
  }
};

registry& policies() {
  static registry r;
  return r;
}

} // namespace

bool register_trust_policy(const std::string& name, trust_policy_factory make) {
  if (name.empty() || !make)
    return false;
  auto& r = policies();
  std::lock_guard<std::mutex> lock(r.mu);
  return r.policies.emplace(name, std::move(make)).second;
}

std::vector<std::string> trust_policy_names() {
  auto& r = policies();
  std::lock_guard<std::mutex> lock(r.mu);
  std::vector<std::string> out;
  for (const auto& [name, make] : r.policies)
    out.push_back(name);
  return out;
}

caf::actor spawn_trust_policy(caf::actor_system& sys, const std::string& name) {
  trust_policy_factory make;
  {
    auto& r = policies();
    std::lock_guard<std::mutex> lock(r.mu);
    auto it = r.policies.find(name);
    if (it == r.policies.end())
      return {};
    make = it->second;
  }
  return make(sys);
}

} // namespace syncmesh::actors
