#include "actors/store_actor.hpp"

#include <caf/all.hpp>

#include "actors/errors.hpp"
#include "actors/messages.hpp"

namespace syncmesh::actors {

namespace {

caf::behavior store_actor(caf::event_based_actor*, node_context_ptr ctx) {
  return {
    [ctx](apply_atom, const batch_ref& b) -> caf::result<std::uint64_t> {
      if (!b.ptr)
        return make_error(errc::invalid_request, "an apply carries no batch");
      auto r = ctx->db->apply(*b.ptr);
      if (!r)
        return make_error(errc::store_failed, "the local store refused a write: "
                                                + r.error().to_string());
      return r->last_seq;
    },
  };
}

} // namespace

caf::actor spawn_store_actor(caf::actor_system& sys, node_context_ptr ctx) {
  if (ctx->detached_io)
    return sys.spawn<caf::detached>(store_actor, std::move(ctx));
  return sys.spawn(store_actor, std::move(ctx));
}

} // namespace syncmesh::actors
