#include "actors/store_actor.hpp"

#include <caf/all.hpp>

#include "actors/errors.hpp"
#include "actors/messages.hpp"

namespace syncmesh::actors {

namespace {

/// Garbage keys (retired and abandoned table copies) deleted per step; the
/// steps interleave with applies, so no writer waits behind a large copy's
/// deletion for longer than one step.
constexpr std::size_t collect_keys_per_step = 4096;

struct store_actor_state {
  bool collecting = false;  // a collect_atom is in the mailbox

  static inline const char* name = "store";
};

using store_actor_type = caf::stateful_actor<store_actor_state>;

void schedule_collection(store_actor_type* self, const node_context& ctx) {
  if (!self->state.collecting && ctx.db->has_garbage()) {
    self->state.collecting = true;
    self->send(self, collect_atom::value);
  }
}

caf::behavior store_actor(store_actor_type* self, node_context_ptr ctx) {
  schedule_collection(self, *ctx);  // what a crash left behind
  return {
    [self, ctx](apply_atom, const batch_ref& b) -> caf::result<std::uint64_t> {
      if (!b.ptr)
        return make_error(errc::invalid_request, "an apply carries no batch");
      auto r = ctx->db->apply(*b.ptr);
      schedule_collection(self, *ctx);
      if (!r)
        return make_error(errc::store_failed, "the local store refused a write: "
                                                + r.error().to_string());
      return r->last_seq;
    },
    [self, ctx](collect_atom) {
      self->state.collecting = false;
      auto more = ctx->db->collect_garbage(collect_keys_per_step);
      if (!more) {
        if (ctx->publish)
            ctx->publish({{"type", "error"},
                        {"message", "could not delete a retired table copy: "
                                      + more.error().to_string()
                                      + "; it is deleted again at the next start"}});
        return;
      }
      if (*more) {
        self->state.collecting = true;
        self->send(self, collect_atom::value);
      }
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
