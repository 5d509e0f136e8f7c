#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "store/filter_op.hpp"
#include "connectors/peer/committer.hpp"
#include "connectors/peer/merge.hpp"
#include "messaging/peer_protocol.hpp"
#include "messaging/scheduler.hpp"
#include "messaging/transport.hpp"
#include "store/store.hpp"

namespace syncmesh::peer {

namespace wire = messaging::peer;

/// A row filter of a link: the rows of `table` whose `column` compares to
/// `values` by `op` (one value; any of them for `in`). NULL never matches.
/// Ranges compare integers and reals by number, text by bytes, booleans
/// false before true; values of other kinds (bytes, numeric, timestamp,
/// json) compare with = and in only, by their exact text.
using store::filter_op;

struct row_filter {
  std::string table;   // ns.table
  std::string column;
  filter_op op = filter_op::eq;
  std::vector<store::value> values;  // of the column's kind

  /// Whether a row whose `column` holds `v` is inside the filter.
  bool admits(const store::value& v) const;
};

/// One link as this node sees it. Everything here is this node's own
/// policy: nothing the other side says about its rights is trusted.
struct link_config {
  std::string peer;  // the other node's id
  /// What this node does on the link: push (only sends its changes), pull
  /// (only takes the peer's), bidirectional.
  wire::link_mode mode = wire::link_mode::bidirectional;
  bool connects = false;            // this side dials (the client role)
  std::vector<std::string> tables;  // carried tables; empty: every peer table
  /// Origins whose changes this node accepts over the link; empty: any.
  std::set<std::string> trusted_origins;
  /// A custom trust policy, asked after every other check about each new
  /// change (not one already held) received over the link, in order: a
  /// sentence refuses the change — nacked as policy_refused with it and
  /// counted as nacked — and nullopt takes it. Called synchronously on the
  /// replicator's thread; empty: no policy.
  std::function<std::optional<std::string>(const wire::change&)> trust;
  /// Columns ("ns.table.column") whose values never cross the link: this
  /// node sends them as not set, and ignores them in what it receives. Not
  /// key columns; nullable ones only (a peer holds NULL where it never got
  /// a value).
  std::vector<std::string> excluded;
  /// Rows that cross the link: of a table with filters, only rows inside
  /// all of them are sent, and a peer's insert or update of a row outside
  /// them is refused. Judged on the change's new row; removes always cross.
  std::vector<row_filter> filters;
};

struct replicator_config {
  std::vector<store::schema> tables;  // the tables kept in sync with peers
  std::vector<link_config> links;
  std::size_t batch_max = 128;         // changes per delta
  std::size_t in_flight_max = 32;      // unacknowledged deltas per link
  /// Flow control, as the receiver of a link: the batches (deltas) the
  /// peer may send beyond the last one this node acknowledged. Granted with
  /// `resume` when the link goes live and again as received batches become
  /// durable; a peer that sends more gets an `over_credit` error and its
  /// batch is dropped (it is sent again once there is credit).
  std::size_t credits = 64;
  /// The same window in bytes: the frames of the batches the peer may have
  /// sent and not yet had acknowledged, at most, so that what this node
  /// queues per link stays bounded however big the rows. A peer keeps a
  /// batch back until its frame, at its largest (frame_bytes_max), would
  /// fit; a batch sent when none is unacknowledged goes whatever its size.
  /// REQUIRES: >= 1
  std::uint64_t credit_bytes = 32ULL << 20;
  /// Batches received from one peer and not yet durable at which this node
  /// sends it `pause`; it sends `resume` once they are committed.
  /// REQUIRES: 1 <= pause_at <= credits
  std::size_t pause_at = 48;
  /// How long received batches wait to be committed together, in one store
  /// write (one sync); 0: as soon as the frames that arrived meanwhile are
  /// taken. Acknowledgements and credit follow the commit.
  std::uint64_t commit_delay_ms = 0;
  /// Commits given to the committer and not yet durable: while one is
  /// written (and synced), the next is merged. 1: no overlap.
  /// REQUIRES: >= 1
  std::size_t commits_in_flight_max = 8;
  std::uint64_t retransmit_ms = 400;   // resend unacknowledged deltas after
  std::uint64_t heartbeat_ms = 200;    // ping an idle link this often
  std::uint64_t dead_after_ms = 1000;  // silence that ends a link
  std::uint64_t reconnect_initial_ms = 50;
  std::uint64_t reconnect_max_ms = 2000;
  std::uint64_t seed = 1;              // reconnect jitter
  /// How long the merge state of a deleted row (its tombstone) is kept.
  /// A write older than the delete that arrives later than this — from a
  /// peer offline for longer — can bring the row back; such a peer should
  /// be resynced instead.
  std::uint64_t tombstone_retention_ms = 7ULL * 24 * 3600 * 1000;
  /// How long a change stays in the peer log. Older entries are dropped
  /// (compaction, in the tombstone rounds) once every live link's peer has
  /// been sent them; a peer that comes back lacking a dropped change gets a
  /// full sync (sync_batch) of the rows instead of deltas. 0: keep the log
  /// whole. A full sync carries deletes as long as their tombstones are
  /// kept, so only a peer away for longer than both this and
  /// tombstone_retention_ms can miss a delete.
  std::uint64_t log_retention_ms = 7ULL * 24 * 3600 * 1000;
  std::uint64_t gc_interval_ms = 60'000;  // how often tombstones are looked for
  std::size_t gc_batch = 1000;            // row states looked at per round
  /// Between writes with equal HLCs, the one made on this node wins (then
  /// the larger node id). Must be the same on every node of the cluster.
  std::string tie_winner;
  wire::limits limits;
};

/// `paused`: live, and this side sends nothing now because the peer asked it
/// to pause or granted no credit for its next batch.
enum class link_state { down, connecting, syncing, live, paused };
const char* to_string(link_state s) noexcept;

struct link_stats {
  link_state state = link_state::down;
  std::uint64_t sent_changes = 0;
  std::uint64_t applied_changes = 0;   // received and new here
  std::uint64_t duplicate_changes = 0; // received, already held
  std::uint64_t nacked = 0;            // changes this node refused
  std::uint64_t nacks_received = 0;    // changes the peer refused
  std::uint64_t frames_refused = 0;    // frames that did not decode
  std::uint64_t dropped_changes = 0;   // received updates of excluded columns only
  std::uint64_t unacked = 0;           // deltas in flight
  std::uint64_t over_credit = 0;       // deltas refused: the peer sent beyond its credit
  std::uint64_t pauses_sent = 0;       // times this node asked the peer to pause
  std::uint64_t pauses_received = 0;   // times the peer asked this node to pause
  std::uint64_t full_syncs_sent = 0;   // full syncs this node sent the peer (completed)
  std::uint64_t full_syncs_received = 0;  // full syncs the peer sent this node (completed)
  /// How far the peer is behind this node: changes sent and not yet
  /// acknowledged plus changes not yet sent (0 when the peer does not ask
  /// for changes), and how long the oldest unacknowledged delta has waited.
  std::uint64_t lag_changes = 0;
  std::uint64_t lag_ms = 0;
  std::string last_refusal;
  /// Why the link sends nothing more: a change that no frame the peer takes
  /// can hold (see frame_bytes_max); empty while it sends.
  std::string held;
};

/// Keeps a node's peer tables in step with its peers: applies local writes
/// and peers' changes through the merge (merge.hpp) into the store, logs
/// every change it holds, and sends each link the changes its peer lacks.
///
/// Single-threaded: every call, transport callback and scheduler callback
/// must come from one thread (an actor, or a test's scheduler loop). Only
/// the store writes of received changes may happen elsewhere, in the
/// committer given (see committer.hpp): the replicator merges the next
/// deltas against the merge states of the commits still in flight, and
/// counts a commit's changes as held (acknowledges them, sends them on,
/// raises its version vector) only once the committer reports it durable.
///
/// What it keeps in the store, in the same batch as the rows
/// (extension records):
///   peer/log/<seq:u64be>      every change held, in the order applied, in
///                             pages of up to 128 changes applied together,
///                             each named by the seq of its last change
///   peer/v/<table>\0<key>     the merge state (row_state) of a row that
///                             is not visible (a tombstone); a visible
///                             row's stamps are kept in its own record
///                             instead (store::change::meta), its values
///                             being the row's
///   peer/vv                   the version vector: newest stamp per origin
///   peer/floor                the log's floor: newest stamp per origin of
///                             the changes held here but not in the log
///                             (dropped by compaction, or taken in a full
///                             sync)
/// Changes of each origin are applied in that origin's order (links deliver
/// in order and a sender sends its log in order), so a change at or below
/// the version vector's entry for its origin is one already held.
///
/// A peer whose version vector covers the floor lacks nothing the log does
/// not hold, and is sent deltas from the log. Any other peer (or one that
/// asks for a full sync) gets a full sync: every row it is allowed, read
/// from the merge states and sent as the changes that rebuild each state
/// exactly (sync_batch, acknowledged and credited like deltas), then
/// sync_complete with this node's version vector from when the full sync
/// began, and deltas from the log position of that moment on. Merging is
/// idempotent and commutative, so rows that changed during the full sync
/// and come again as deltas are harmless. The receiver neither logs those
/// changes (they are not in any origin's order) nor counts them in its
/// version vector until sync_complete; it raises its own floor instead, so
/// that its peers that lack them get a full sync from it in turn.
class replicator {
public:
  /// Without a committer, commits are written inline (inline_committer).
  replicator(store::store& db, messaging::transport& net, messaging::scheduler& clock,
             replicator_config cfg, std::unique_ptr<committer> writes = nullptr);
  ~replicator();
  replicator(const replicator&) = delete;
  replicator& operator=(const replicator&) = delete;

  /// Checks the links' excluded columns and filters against the tables,
  /// creates the tables if missing, loads the log position and version
  /// vector, and dials the links this side connects.
  store::status start();

  /// A local write: upserts (full rows) and removes (by key) on one table,
  /// stamped now, merged, applied and logged in one batch, then sent to the
  /// links. Returns the stamp of the last change.
  ///
  /// A link whose peer asked for this node's changes gets them from the log
  /// in order. A live link whose peer announced mode push (it takes
  /// nothing, so it never asks) while this side's mode sends is offered
  /// each new local write anyway, once: the peer decides from its own
  /// config, and its refusal comes back as a delta_nack that both sides
  /// count (nacked there, nacks_received here) instead of the write being
  /// held back in silence.
  store::result<store::hlc_timestamp> write(const std::string& table,
                                            const std::vector<store::row>& upserts,
                                            const std::vector<store::row>& removes);

  /// Takes the results of the commits the committer has finished: what
  /// the owner calls, on the replicator's thread, when the committer says
  /// it has written something (thread_committer's `done`).
  void commits_done();

  /// The version vector: newest stamp held per origin (durably).
  const wire::watermark& held() const { return vv_; }
  /// A row's merge state, if the key was ever seen here (as the commits
  /// still in flight leave it).
  store::result<std::optional<row_state>> state_of(const std::string& table,
                                                   const store::row& key) const;
  std::map<std::string, link_stats> stats() const;
  /// Tombstones this replicator dropped: deleted rows whose delete stamp
  /// (its HLC wall time) is older than tombstone_retention_ms.
  std::uint64_t tombstones_collected() const { return tombstones_collected_; }
  /// Rows taken in at start as local writes: rows a table held without
  /// merge states before it was a peer table (see adopt_rows).
  std::uint64_t rows_adopted() const { return rows_adopted_; }
  /// Log entries dropped by compaction since start.
  std::uint64_t log_entries_dropped() const { return log_dropped_; }
  /// The log's floor (see above): empty while nothing was dropped or taken
  /// in a full sync.
  const wire::watermark& log_floor() const { return floor_; }
  const std::string& node_id() const;

private:
  struct link;
  link* find_link(const std::string& peer);
  void on_connected(const std::string& peer);
  void on_disconnected(const std::string& peer, const std::string& reason);
  void on_received(const std::string& peer, std::string frame);
  /// `frame_bytes`: the size of the frame `m` came in.
  void handle(link& l, wire::message m, std::size_t frame_bytes);
  /// Sends `m` on the link; the size of its frame.
  std::size_t send(link& l, const wire::message& m);
  void send_delta(link& l, std::vector<wire::change> changes, bool full_sync = false);
  void end_link(link& l, const std::string& reason);
  void close_after(link& l, const std::string& reason);
  void schedule_reconnect(link& l);
  void schedule_heartbeat(link& l, std::uint64_t session);
  void schedule_retransmit(link& l, std::uint64_t session);
  void pump(link& l);
  /// Sends the next batches of the link's full sync, then its
  /// sync_complete once every batch is acknowledged; returns whether the
  /// full sync is over (deltas may follow).
  bool pump_full_sync(link& l);
  /// Starts a full sync to the link's peer (see the class comment).
  void begin_full_sync(link& l);
  /// Drops log entries older than log_retention_ms that every live link has
  /// been sent, raising the floor; one bounded round.
  void compact_log();
  void pump_all();
  void schedule_gc();
  void collect_tombstones();
  /// Offers `changes` (just written here) to live links whose peer takes
  /// nothing; see write().
  void offer(const std::vector<wire::change>& changes);
  /// Takes the accepted changes out of a delta or (`full_sync`) a
  /// sync_batch with id `id`.
  void on_batch(link& l, std::uint64_t id, std::vector<wire::change>& changes, bool full_sync,
                std::size_t frame_bytes);
  /// Whether the peer's windows (batches, bytes) and in_flight_max let
  /// this side send it another batch.
  bool window_open(const link& l) const;
  /// Whether the peer's byte window leaves no room for another batch.
  bool bytes_full(const link& l) const;
  /// The largest frame this side sends on the link: the lesser of its own
  /// frame_bytes_max and the one the peer's greeting states.
  std::size_t frame_max(const link& l) const;
  /// Whether `row` (one row's changes), alone in a batch, takes a frame
  /// larger than the peer takes; if so the link holds (sends nothing more
  /// this session) and its status says why: the row can reach the peer
  /// only once the peer's frame_bytes_max is raised, and the changes after
  /// it wait behind it. It encodes `row`: callers ask only when its
  /// approx_bytes() estimate (never below the encoded size) passes the bound.
  bool holds_for(link& l, const std::vector<wire::change>& row);
  /// The window this side grants a peer: credits batches, credit_bytes.
  wire::resume grant() const;
  void on_sync_complete(link& l, const wire::watermark& through);
  bool carries(const link& l, const std::string& table) const;
  /// Whether the row `c` writes is inside the link's filters (removes are).
  bool admits(const link& l, const wire::change& c) const;
  /// `c` without the link's excluded columns: listed as not set, their
  /// values NULL. Nothing, for an update that sets excluded columns only.
  std::optional<wire::change> without_excluded(const link& l, const wire::change& c) const;
  /// What of `c` may go out on `l`: nothing if its row is outside the
  /// filters or nothing is left of it, else without excluded columns.
  std::optional<wire::change> outgoing(const link& l, wire::change c) const;
  std::vector<std::string> offered(const link& l) const;
  const store::schema* schema_of(const std::string& table) const;

  struct in_flight;
  struct pending_batch;
  /// Merges `changes` (already accepted) on top of the commits in flight
  /// into `b`, one store batch, and records in `c` what it leaves (the
  /// head_ values then move on to it). The first `unlogged` changes came
  /// in a full sync: they raise the floor instead of being logged and
  /// counted in the version vector; whether each of them changed a row
  /// state goes to c.changed.
  store::status prepare(std::vector<wire::change>& changes, std::size_t unlogged,
                        in_flight& c, store::batch& b);
  /// Merge states in name order from the name `from` on (inclusive), at
  /// most `max`: those kept with visible rows and the peer/v/ records,
  /// each by name, decoded or why it cannot be; `end`: there are no more.
  /// REQUIRES: no commit in flight (the two kinds are read apart, and a
  /// commit may move a state from one to the other).
  struct state_page {
    std::vector<std::pair<std::string, store::result<row_state>>> states;
    bool end = false;
  };
  store::result<state_page> states_from(const std::string& from, std::size_t max) const;
  /// Takes in the rows of table `s` that have no merge state, once (a
  /// marker records it); `created`: the table is new, so it has none.
  store::status adopt_rows(const store::schema& s, bool created);
  /// A local write's changes, merged and written before it returns.
  /// REQUIRES: nothing in flight (write() drains first).
  store::status apply_now(std::vector<wire::change>& changes);
  /// Gives the received batches waiting in queue_ to the committer as one
  /// commit (unless commits_in_flight_max are in flight already).
  void commit();
  void schedule_commit();
  /// Takes the committer's results, oldest first: finish() for each one
  /// written; at a failure, fail_commits().
  void collect();
  /// A commit is durable: the durable values move on to it, and its
  /// batches are acknowledged and their senders granted new credit.
  void finish(in_flight& c);
  /// The oldest commit in flight failed, so every later one did too, and
  /// nothing of them is stored: they and the batches queued behind them
  /// are dropped, and their senders go back to their first batch not
  /// acknowledged (go-back-N).
  void fail_commits(const store::status& why);
  /// Waits until no commit is in flight (before writing to the store
  /// directly, or reading merge states that commits in flight may change).
  void drain();
  /// Adds to `links` each link whose current session sent one of `batches`.
  void add_sender(std::vector<link*>& links, const std::vector<pending_batch>& batches);
  /// The head values (and head states) back to the durable ones (nothing
  /// in flight).
  void head_to_durable();

  store::store& db_;
  messaging::transport& net_;
  messaging::scheduler& clock_;
  replicator_config cfg_;
  std::map<std::string, store::schema> tables_;
  std::map<std::string, std::unique_ptr<link>> links_;
  wire::watermark vv_;
  /// Batches received and accepted, not yet durable (see commit()), in the
  /// order received, and the version vector with them applied: what a new
  /// change is judged a duplicate against.
  struct pending_batch;
  std::vector<pending_batch> queue_;
  wire::watermark pending_vv_;
  bool commit_scheduled_ = false;
  std::unique_ptr<committer> committer_;
  /// Commits given to the committer, oldest first, not yet taken back.
  std::vector<in_flight> in_flight_;
  /// vv_, floor_ and log_end_ are what is durable; these, what the commits
  /// in flight leave (equal when none is).
  wire::watermark head_vv_;
  wire::watermark head_floor_;
  std::uint64_t head_end_ = 0;
  /// The merge states the commits in flight write, each as the newest of
  /// them leaves it, with that commit's id: what later merges and
  /// state_of() start from until it is durable. One lookup finds a state
  /// whichever commit holds it. Emptied with the commits in flight; a
  /// state is dropped once the commit that wrote it last is durable.
  struct head_state {
    std::optional<row_state> state;
    std::uint64_t commit = 0;  // 0: only being read by prepare()
    /// Where the state is kept: a peer/v/ record (a row not visible, or
    /// a state written before format 3), or with its row (else).
    bool in_ext = false;
    std::size_t slot = 0;  // prepare()'s own: its place among the states changed
  };
  std::unordered_map<std::string, head_state> head_states_;
  std::uint64_t commits_made_ = 0;  // the id of the newest commit
  int collecting_ = 0;  // collect() is taking results (finish() may pump the links)
  std::uint64_t log_end_ = 0;  // seq of the newest log entry; 0: empty
  std::uint64_t log_begin_ = 1;  // seq of the oldest log entry kept (compaction)
  wire::watermark floor_;        // see the class comment
  std::uint64_t log_dropped_ = 0;
  std::string gc_cursor_;      // the row state the next tombstone round starts at
  std::uint64_t tombstones_collected_ = 0;
  std::uint64_t rows_adopted_ = 0;
  bool adopting_ = false;  // write() is taking in rows without states
  std::shared_ptr<bool> alive_;
  stamp_order order_;
};

/// The rows of `table` as bytes, for comparing nodes: equal digests mean
/// byte-identical tables.
store::result<std::string> table_digest(const store::store& db, const std::string& table);

} // namespace syncmesh::peer
