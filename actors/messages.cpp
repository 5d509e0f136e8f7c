#include "actors/messages.hpp"

#include <algorithm>

#include <caf/actor_system_config.hpp>

#include "actors/errors.hpp"

namespace syncmesh::actors {

void register_message_types(caf::actor_system_config& cfg) {
  cfg.add_message_types<caf::id_block::syncmesh>();
  register_error_category(cfg);
}

std::string push_chain::refusal(const change_set& cs) const {
  if (!cs.after_previous)
    return {};
  auto it = whole_.find(cs.view);
  if (it != whole_.end() && it->second)
    return {};
  return "not pushed: the push of view " + cs.view
         + " ahead of it did not go through clean (a write in it was not taken as written), "
           "so these writes wait until it has settled; the view pushes them again";
}

void push_chain::ended(const std::string& view, const push_report* report) {
  whole_[view] = report
                 && std::all_of(report->outcomes.begin(), report->outcomes.end(),
                                [](const push_outcome& o) {
                                  return o.state == store::outbox_state::applied && o.written;
                                });
}

} // namespace syncmesh::actors
