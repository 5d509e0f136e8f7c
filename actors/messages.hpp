#pragma once

// The messages actors exchange inside one node process: atoms and the few
// payload types, registered in one CAF type-ID block. Rows and batches travel
// as shared, immutable references: they never cross a process boundary (peers
// and the control protocol use MessagePack frames in messaging/), so their
// inspect() overloads name the type and carry no fields.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <caf/fwd.hpp>
#include <caf/atom.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/type_id.hpp>

#include "store/records.hpp"
#include "store/schema.hpp"

namespace syncmesh::actors {

/// A source table's rows at one position of its change stream: applying the
/// stream from `position` + 1 onwards to these rows loses and repeats nothing.
///
/// A large snapshot arrives in pieces: the answer to a snapshot request
/// carries the shape, the position, an estimate and maybe the first rows;
/// while `more` is set, (snapshot_next_atom, view) answers with the next
/// piece (its `rows` and `more`; the other fields repeat the first answer's).
struct snapshot {
  store::schema shape;
  std::vector<store::row> rows;
  /// Further rows of the piece already in their stored form, encoded for the
  /// view's local table (`shape` named after the view); null if none. A
  /// connector that reads large sources sends these instead of `rows`.
  std::shared_ptr<const store::encoded_rows> encoded;
  std::uint64_t position = 0;
  /// Rows the whole snapshot is expected to hold; 0 when unknown. An
  /// estimate (PostgreSQL: the planner's), not a promise.
  std::uint64_t rows_estimated = 0;
  bool more = false;
};

/// Changes of one source table, in order, ending at `position`.
struct change_set {
  std::string table;
  std::vector<store::change> changes;
  std::uint64_t position = 0;
  /// For pushed local writes: the outbox mutation id of each change (same
  /// order), so a remote can apply each mutation once however often it is
  /// retransmitted. Empty for changes from a remote.
  std::vector<std::string> mutation_ids;
  /// For pushed local writes: the outbox seq of each change (same order,
  /// ascending); a PostgreSQL remote records runs of them upstream.
  std::vector<std::uint64_t> outbox_seqs;
  /// For pushed local writes: the row each write was based on
  /// (store::encode_row of the local row before it), or "" when the key
  /// held no row; same order as `changes`. A remote checks it before it
  /// writes (compare-and-set): a mismatch is a conflict.
  std::vector<std::string> base_versions;
  /// For pushed local writes: the view that wrote them.
  std::string view;
  /// For pushed local writes: sent before the answer to the view's push
  /// ahead of it (so that the remote works on it at once, not after a round
  /// trip to the view); the remote pushes it only if that push went through
  /// clean, every write taken as written (see push_chain), and refuses it
  /// otherwise.
  bool after_previous = false;
  /// For pushed local writes: no key is written twice (the view checked,
  /// off the remote's path; a remote need not check again).
  bool distinct_keys = false;
  /// From a PostgreSQL stream: keys that this view's own pushes wrote in
  /// this transaction (the transaction ran under the view's replication
  /// origin). Their changes are not in `changes`: the view holds them.
  std::vector<store::row> echoes;
  /// The connector's stream thread applied this change set to the store
  /// itself, through the view's stream_gate: `changes` is empty, and the
  /// view only learns that it is current at `position`.
  bool applied = false;
};

/// Lets a connector's stream thread apply a view's change sets to the store
/// itself, one thread hop less between an upstream commit and the row being
/// readable: a realtime view (no local writes to keep in order with) under
/// `buffered` durability (no disk wait on the stream thread) opens one when
/// it subscribes. Each apply happens under `lock` while `open`; the view
/// closes the gate under the same lock when it stops following, so nothing
/// is applied after that, however late the connector hears of it.
struct stream_gate {
  std::mutex lock;
  bool open = true;
  /// The cursor the view's position is kept under (written in every batch).
  std::string cursor;
  /// The local table the changes go to.
  std::string table;
  /// Applied up to here; older change sets are stale.
  std::uint64_t position = 0;
};

/// What became of one pushed write.
struct push_outcome {
  /// applied, failed (the remote refused it: `error`), conflicted (the row
  /// was not the base the write expected), or pending (not tried: an
  /// earlier write of the batch blocked the queue).
  store::outbox_state state = store::outbox_state::pending;
  /// The remote holds the write now (applied, or a conflict the write won).
  bool written = false;
  /// Applied earlier: the remote had already recorded the mutation id.
  bool duplicate = false;
  std::string error;
  /// Conflicted or failed: the remote's row under the key when it decided
  /// (nullopt: no row), and whether it was read at all.
  bool remote_known = false;
  std::optional<store::row> remote_row;
  /// Conflicted: "remote" or "local", the side whose row both hold now, or
  /// "merged" (a custom resolver's row, `merged_row`; nullopt: deleted).
  std::string winner;
  std::optional<store::row> merged_row;
};

/// The answer to a push: one outcome per change, in order.
struct push_report {
  std::uint64_t position = 0;
  std::vector<push_outcome> outcomes;
  /// The remote's change stream will carry each written write back to the
  /// view as an echo (change_set::echoes).
  bool echoes = false;
};

/// What a connector remembers of each view's last push: whether it went
/// through clean (every write applied as written). A push sent
/// after_previous goes only if it did. Otherwise the writes ahead of it
/// wait (a blocked queue), or may be pushed again (the view missed the
/// answer): a failed or conflicted write is not in the push bookkeeping,
/// so it would be tried again after the later ones.
class push_chain {
public:
  /// Why `cs` may not be pushed now; empty when it may.
  std::string refusal(const change_set& cs) const;
  /// The push of `view` ended: with `report`, or with none (an error).
  void ended(const std::string& view, const push_report* report);

private:
  std::map<std::string, bool> whole_;
};

struct snapshot_ref {
  std::shared_ptr<const snapshot> ptr;
};
struct changes_ref {
  std::shared_ptr<const change_set> ptr;
};
struct batch_ref {
  std::shared_ptr<const store::batch> ptr;
};
struct push_report_ref {
  std::shared_ptr<const push_report> ptr;
};
/// Null: the view applies its change sets itself (they come as messages).
struct stream_gate_ref {
  std::shared_ptr<stream_gate> ptr;
};

/// A custom trust policy's question (actors/trust_policy.hpp): may these
/// changes, received in one delta from `peer`, be taken? Keys and rows are
/// JSON arrays of the values in column order (actors/row_json.hpp).
struct trust_change {
  std::string origin;  // the node the change was made on
  std::string table;   // ns.table
  std::string op;      // insert, update, delete or truncate
  std::string key;     // JSON array
  std::string row;     // JSON array of the new row; empty for delete and truncate
};
struct trust_request {
  std::string peer;
  std::vector<trust_change> changes;
};
/// The answer: one entry per change of the request, in its order; an empty
/// entry takes the change, a sentence refuses it and says why.
struct trust_verdicts {
  std::vector<std::string> refusals;
};

/// A custom conflict resolver's question (actors/conflict_resolver.hpp): a
/// sync view's write met a row someone else changed. Rows are JSON objects
/// of column: value (actors/row_json.hpp); "null" where there is no row (a
/// delete, or a row gone upstream).
struct conflict_request {
  std::string view;
  std::string key;     // JSON object of the key columns
  std::string base;    // the row the write was based on
  std::string local;   // the write's row; null: a delete
  std::string remote;  // the row upstream now; null: gone
};
/// The answer: winner "local" (the write is forced), "remote" (the
/// upstream row stands) or "merged" with `row` (JSON object, or "null" to
/// delete) written instead.
struct conflict_decision {
  std::string winner;
  std::string row;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, snapshot_ref&) {
  return f(caf::meta::type_name("snapshot_ref"));
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, changes_ref&) {
  return f(caf::meta::type_name("changes_ref"));
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, batch_ref&) {
  return f(caf::meta::type_name("batch_ref"));
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, conflict_request&) {
  return f(caf::meta::type_name("conflict_request"));
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, conflict_decision&) {
  return f(caf::meta::type_name("conflict_decision"));
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, trust_request&) {
  return f(caf::meta::type_name("trust_request"));
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, trust_verdicts&) {
  return f(caf::meta::type_name("trust_verdicts"));
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, push_report_ref&) {
  return f(caf::meta::type_name("push_report_ref"));
}
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, stream_gate_ref&) {
  return f(caf::meta::type_name("stream_gate_ref"));
}

} // namespace syncmesh::actors

CAF_BEGIN_TYPE_ID_BLOCK(syncmesh, caf::first_custom_type_id)
  CAF_ADD_TYPE_ID(syncmesh, (syncmesh::actors::snapshot_ref))
  CAF_ADD_TYPE_ID(syncmesh, (syncmesh::actors::changes_ref))
  CAF_ADD_TYPE_ID(syncmesh, (syncmesh::actors::batch_ref))
  CAF_ADD_TYPE_ID(syncmesh, (syncmesh::actors::push_report_ref))
  CAF_ADD_TYPE_ID(syncmesh, (syncmesh::actors::stream_gate_ref))

  // Control surface (view actors, control actor).
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, sync_atom, "sync")
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, status_atom, "status")
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, stop_atom, "stop")
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, resume_atom, "resume")
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, exec_atom, "exec")
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, control_atom, "control")
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, retry_atom, "retry")
  // Connector contract.
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, snapshot_atom, "snapshot")
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, snapshot_next_atom, "snapnext")
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, snapshot_cancel_atom, "snapcancel")
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, subscribe_atom, "subscribe")
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, unsubscribe_atom, "unsubscr")
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, push_atom, "push")
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, health_atom, "health")
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, changes_atom, "changes")
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, up_atom, "up")
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, down_atom, "down")
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, reconnect_atom, "reconnect")
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, outage_atom, "outage")
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, connector_atom, "connector")
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, ack_atom, "ack")
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, stream_lost_atom, "streamlost")
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, stats_atom, "stats")
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, deliver_atom, "deliver")
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, slot_atom, "slot")
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, heartbeat_atom, "heartbeat")
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, forget_atom, "forget")
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, lease_atom, "lease")
  // Peer actor.
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, link_up_atom, "linkup")
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, link_down_atom, "linkdown")
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, frame_atom, "frame")
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, timer_atom, "timer")
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, committed_atom, "committed")
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, links_atom, "links")
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, endpoint_atom, "endpoint")
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, wait_atom, "wait")
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, wait_over_atom, "waitover")
  // Store actor.
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, apply_atom, "apply")
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, collect_atom, "collect")
  // Supervisor.
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, restart_atom, "restart")
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, children_atom, "children")
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, shutdown_atom, "shutdown")
  // Custom trust policies of peer links.
  CAF_ADD_TYPE_ID(syncmesh, (syncmesh::actors::trust_request))
  CAF_ADD_TYPE_ID(syncmesh, (syncmesh::actors::trust_verdicts))
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, trust_atom, "trust")
  // Custom conflict resolvers of sync views.
  CAF_ADD_TYPE_ID(syncmesh, (syncmesh::actors::conflict_request))
  CAF_ADD_TYPE_ID(syncmesh, (syncmesh::actors::conflict_decision))
  CAF_ADD_ATOM(syncmesh, syncmesh::actors, resolve_atom, "resolve")
CAF_END_TYPE_ID_BLOCK(syncmesh)

namespace syncmesh::actors {

/// Registers this module's message types with an actor system config.
void register_message_types(caf::actor_system_config& cfg);

} // namespace syncmesh::actors
