#include "actors/view_actor.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <vector>

#include <caf/all.hpp>

#include "actors/backoff.hpp"
#include "actors/client_key.hpp"
#include "actors/errors.hpp"
#include "actors/messages.hpp"
#include "actors/row_json.hpp"
#include "connectors/postgres/id_lease.hpp"
#include "store/key_codec.hpp"
#include "store/record_codec.hpp"
#include "store/row_encoder.hpp"

namespace syncmesh::actors {

namespace {

using nlohmann::json;

/// How long one step of a run (snapshot, push, store apply) may take before
/// the run counts as failed.
constexpr auto step_timeout = std::chrono::seconds(60);
/// A snapshot copies a whole table; it may take much longer than a step.
constexpr auto snapshot_timeout = std::chrono::minutes(30);
/// Staged batches of a snapshot the store may hold unanswered at once. With
/// the piece the connector is reading and the one arriving, a view holds at
/// most this many + 2 pieces of rows (remote_config::snapshot_batch_rows
/// each), whatever the table's size.
constexpr std::size_t snapshot_batches_in_flight_max = 2;
/// Outbox entries pushed in one request (one remote transaction); a longer
/// queue drains in several, in order.
constexpr std::size_t push_batch_entries_max = 8192;

/// A snapshot being staged into the store: the run's copy of the table,
/// written in bounded batches into a generation readers do not see, and
/// swapped in by one batch when the last of them is durable.
struct snapshot_progress {
  std::uint64_t id = 0;  // answers for another snapshot are stale
  store::schema shape;   // the local table's
  std::uint64_t position = 0;
  std::uint64_t generation = 0;  // of the staged copy
  std::uint64_t rows_done = 0;   // staged and acknowledged by the store
  std::uint64_t rows_estimated = 0;
  std::deque<store::staged_rows> waiting;  // not yet sent to the store (table, generation set)
  std::size_t in_flight = 0;  // staged batches the store has not answered
  bool fetching = false;      // a snapshot_next request is out
  bool more = false;          // the connector has further pieces
};

struct view_state {
  node_context_ptr ctx;
  view_config cfg;
  std::uint64_t relation_id = 0;
  caf::actor connector;
  caf::actor store;
  store::job_state job;
  std::unique_ptr<backoff> retry;
  std::optional<store::schema> shape;  // the local table, once known

  bool running = false;
  std::uint64_t runs = 0;                    // runs started since spawn
  std::vector<caf::response_promise> current;  // answered by the run in flight
  std::vector<caf::response_promise> next;     // answered by the follow-up run
  std::uint64_t timer_gen = 0;  // pending retry timers with another gen are void
  bool subscribed = false;
  /// Open while the connector's stream thread applies this view's change
  /// sets itself (see open_gate).
  std::shared_ptr<stream_gate> gate;
  bool remote_up = true;
  bool pushing = false;
  /// Push requests sent and not answered yet (a long queue keeps two
  /// batches at the remote: one at work, the next waiting behind it).
  std::size_t pushes_in_air = 0;
  /// A push was asked for while one was going (push_pending found
  /// `pushing`): it starts once the last answer is in (push_ended).
  bool push_wanted = false;
  std::uint64_t position = 0;  // last source position applied locally
  /// The next run may follow the stream from `position` without a new
  /// snapshot, if the remote can: after a restart, a `stop`, or a lost
  /// stream, the slot kept what came since and `position` is on disk (or on
  /// its way there, in order).
  bool may_resume = false;
  std::uint64_t run_pulled = 0;
  std::uint64_t run_pushed = 0;
  std::optional<snapshot_progress> snap;  // while a snapshot is staged
  std::uint64_t snapshots = 0;            // snapshot ids handed out
  std::size_t snapshot_batch_rows = 4096;  // from the remote's config
  nlohmann::json last_run;  // null until a run ended since spawn
  // This view's outbox entries by state (sync views), counted once at spawn
  // and kept current by exec and push.
  std::uint64_t outbox_pending = 0;
  std::uint64_t outbox_applied = 0;
  std::uint64_t outbox_failed = 0;
  std::uint64_t outbox_conflicted = 0;
  /// Wall-clock ms the oldest pending entry was written at; 0: none pending.
  std::uint64_t oldest_pending_ms = 0;
  /// Every outbox entry of this view below this seq is settled: reads of
  /// the queue start here, so pushing a long queue reads each entry once.
  std::uint64_t outbox_from = 0;
  /// Every entry of this view up to this seq that the outbox still holds as
  /// pending was applied: a settlement that leaves nothing of its batch
  /// pending moves this mark (one record, applied_mark_key) instead of
  /// rewriting each applied entry. See state_of.
  std::uint64_t applied_through = 0;
  /// Applied entries of this view deleted from the outbox (kept in the
  /// store as outbox_pruned/<view>; counted in outbox_applied too), and
  /// where the next pruning step reads from (see prune_outbox).
  std::uint64_t outbox_pruned = 0;
  std::uint64_t prune_from = 0;
  std::uint64_t prune_gen = 0;  // the latest drain's; an older prune timer is stale
  bool pruning = false;         // a pruning batch is at the store
  /// Keys (store::encode_key) with pending outbox entries, and how many:
  /// their local rows are staged, and the change stream does not overwrite
  /// them (the push settles them: applied, or the conflict's resolution).
  std::map<std::string, std::uint32_t> staged;
  /// Keys of pushed writes whose echo the stream has not brought yet: a
  /// stream change for such a key committed before the push and is older
  /// than the local row, so it is skipped too.
  std::map<std::string, std::uint32_t> unechoed;
  /// Sync views of PostgreSQL tables whose one-column key a sequence feeds:
  /// ids leased from it for inserts that leave the key out (kept in the
  /// store with every batch that takes one; see
  /// connectors/postgres/id_lease.hpp). `ids_checked`: the connector said
  /// whether the key has a sequence (`id_column` empty: it has none).
  connectors::postgres::id_pool ids;
  std::string id_column;
  std::string id_sequence;
  bool ids_checked = false;
  bool leasing = false;
  std::string lease_error;  // why the last lease failed; empty when it did not
  /// origin_first execs waiting for the remote's verdict on their writes
  /// (by mutation id), answered as their outbox entries settle.
  struct origin_waiter {
    std::vector<std::string> mutation_ids;
    caf::response_promise rp;
    std::uint64_t from = 0;  // its entries' seqs are at least this
  };
  std::vector<origin_waiter> origin_waiters;
  /// Draws the random bits of client_key = "uuid" keys.
  std::mt19937_64 key_rng = entropy_seeded_engine();
  /// Execs waiting for a lease to give their inserts ids.
  std::vector<std::pair<json, caf::response_promise>> waiting_for_ids;
  /// The connector's last report on this view's replication slot
  /// (wal_status, retained bytes, ...), with when it arrived; null if none.
  nlohmann::json slot;
  /// slot:invalidated was published for the current slot; a new snapshot
  /// (a new slot) clears it.
  bool slot_lost_said = false;

  /// A view that ends (a crash its supervisor restarts it from, a
  /// shutdown) stops its stream thread's applies with it: the next view
  /// starts from the cursor on disk, which must not move after it loads it.
  ~view_state() {
    if (gate) {
      std::lock_guard<std::mutex> guard(gate->lock);
      gate->open = false;
    }
  }

  static inline const char* name = "view";
};

using view_actor = caf::stateful_actor<view_state>;

std::uint64_t now_ms(view_actor* self) {
  auto t = std::chrono::duration_cast<std::chrono::milliseconds>(
             self->clock().now().time_since_epoch())
             .count();
  return static_cast<std::uint64_t>(t + self->state.ctx->wall_offset_ms);
}

bool follows_stream(const view_config& cfg) {
  return cfg.persistence == "realtime" || cfg.persistence == "sync";
}

std::string mode_of(const view_config& cfg) {
  if (cfg.persistence == "sync")
    return cfg.write_policy;
  return cfg.persistence == "realtime" ? "stream" : "snapshot";
}

json status_json(view_actor* self) {
  auto& st = self->state;
  const auto& j = st.job;
  json out = {
    {"relation_id", st.relation_id},
    {"namespace", st.cfg.ns},
    {"name", st.cfg.name},
    {"persistence", st.cfg.persistence},
    {"mode", mode_of(st.cfg)},
    {"enabled", j.enabled},
    {"state", j.state},
    {"slot_id", j.slot_id},
    {"last_seen_commit", j.last_seen_commit},
    {"retry_count", j.retry_count},
    {"last_error", j.last_error},
    {"next_retry_at", j.next_retry_at_ms ? json(j.next_retry_at_ms) : json(nullptr)},
    {"updated_at", j.updated_at_ms},
    {"remote", st.cfg.remote},
    {"remote_up", st.remote_up},
    {"streaming", st.subscribed},  // following the remote's change stream now
    {"runs", st.runs},
    // The last run that ended since the node started: what it moved.
    {"last_run", st.last_run},
    // What the remote keeps for this view's stream (PostgreSQL: the slot's
    // wal_status and the WAL bytes it retains), as last reported.
    {"slot", st.slot},
    // While a snapshot is staged: rows copied so far, of about how many.
    {"progress", st.snap ? json{{"rows_done", st.snap->rows_done},
                                {"rows_estimated", std::max(st.snap->rows_estimated,
                                                            st.snap->rows_done)}}
                         : json(nullptr)},
  };
  if (st.cfg.persistence == "sync" && st.ids_checked && !st.id_column.empty())
    out["ids"] = {{"column", st.id_column},
                  {"sequence", st.id_sequence},
                  {"in_hand", st.ids.size()},
                  {"block", st.cfg.id_block},
                  {"last_error", st.lease_error.empty() ? json(nullptr) : json(st.lease_error)}};
  if (st.cfg.persistence == "sync") {
    auto now = now_ms(self);
    out["outbox"] = {{"pending", st.outbox_pending},
                     {"applied", st.outbox_applied},
                     // Of the applied: entries deleted from the outbox.
                     {"pruned", st.outbox_pruned},
                     {"failed", st.outbox_failed},
                     {"conflicted", st.outbox_conflicted},
                     // Rows whose local value the remote has not confirmed yet.
                     {"staged_rows", st.staged.size()},
                     {"oldest_pending_age_ms",
                      st.oldest_pending_ms == 0 ? json(nullptr)
                      : json(now > st.oldest_pending_ms ? now - st.oldest_pending_ms : 0)}};
  }
  return out;
}

// Puts the current status where the control server reads it. Called after
// every change of what status_json shows, before any reply that follows it.
void refresh_status(view_actor* self) {
  if (auto& board = self->state.ctx->board)
    board->publish(self->state.cfg.full_name(), status_json(self));
}

void publish(view_actor* self, json event) {
  event["view"] = self->state.cfg.full_name();
  event["at"] = now_ms(self);
  self->state.ctx->publish(event);
}

// Writes the job state through the store actor (after anything queued
// before it, so the store sees states in order).
// `done` runs once the store has answered, either way.
void persist_job(view_actor* self, std::function<void()> done = {}) {
  refresh_status(self);
  auto b = std::make_shared<store::batch>();
  b->jobs.push_back(self->state.job);
  self->request(self->state.store, step_timeout, apply_atom::value, batch_ref{b})
    .then(
      [done](std::uint64_t) {
        if (done)
          done();
      },
      [self, done](const caf::error& err) {
        publish(self, {{"type", "error"},
                       {"message", "could not persist the job state: " + describe(err)}});
        if (done)
          done();
      });
}

void set_state(view_actor* self, const std::string& next, std::function<void()> done = {}) {
  auto& job = self->state.job;
  auto old = job.state;
  job.state = next;
  job.updated_at_ms = now_ms(self);
  persist_job(self, std::move(done));
  if (old != next)
    publish(self, {{"type", "state"}, {"from", old}, {"to", next}});
}

json run_result(view_actor* self, std::uint64_t run, const std::string& error) {
  auto& st = self->state;
  json r = {{"view", st.cfg.full_name()}, {"run", run},      {"state", st.job.state},
            {"pulled", st.run_pulled},   {"pushed", st.run_pushed}};
  if (!error.empty())
    r["error"] = error;
  return r;
}

void start_run(view_actor* self);
void stop_stream(view_actor* self);
void close_gate(view_actor* self);
void push_now(view_actor* self);
void top_up_ids(view_actor* self);
void restage(view_actor* self);

void finish_run(view_actor* self, const std::string& error) {
  auto& st = self->state;
  st.running = false;
  if (error.empty()) {
    st.remote_up = true;  // a run that succeeded reached its remote
    st.job.retry_count = 0;
    st.job.last_error.clear();
    st.job.next_retry_at_ms = 0;
    // A view that now follows its change stream keeps running; a copy that
    // is done is synced (FlashQL's states for realtime and materialized jobs).
    set_state(self, !st.job.enabled ? "idle" : st.subscribed ? "running" : "synced");
    publish(self, {{"type", "sync:end"}, {"run", st.runs}, {"pulled", st.run_pulled},
                   {"pushed", st.run_pushed}});
    if (st.outbox_pending > 0 && st.next.empty())
      self->send(self, push_atom::value);  // written during the run
    top_up_ids(self);
  } else {
    st.job.retry_count += 1;
    st.job.last_error = error;
    ++st.timer_gen;
    if (st.job.enabled) {
      auto delay = st.retry->delay(st.job.retry_count);
      st.job.next_retry_at_ms = now_ms(self) + static_cast<std::uint64_t>(delay.count());
      self->delayed_send(self, delay, retry_atom::value, st.timer_gen);
    }
    set_state(self, "failed");
    publish(self, {{"type", "error"}, {"run", st.runs}, {"message", error},
                   {"retry_count", st.job.retry_count},
                   {"next_retry_at", st.job.next_retry_at_ms}});
  }
  st.last_run = run_result(self, st.runs, error);
  refresh_status(self);
  auto result = st.last_run.dump();
  for (auto& rp : st.current)
    rp.deliver(result);
  st.current.clear();
  if (!st.next.empty()) {
    st.current.swap(st.next);
    if (st.job.enabled) {
      start_run(self);
    } else {
      auto skipped = stopped_sync_reply(st.cfg.full_name(), st.job.state).dump();
      for (auto& rp : st.current)
        rp.deliver(skipped);
      st.current.clear();
    }
  }
}

void count_down(std::map<std::string, std::uint32_t>& counts, const std::string& key) {
  auto it = counts.find(key);
  if (it != counts.end() && --it->second == 0)
    counts.erase(it);
}

std::string applied_mark_key(const std::string& view) { return "outbox_applied/" + view; }
std::string pruned_count_key(const std::string& view) { return "outbox_pruned/" + view; }

/// Once a view's queue has drained and stayed quiet this long, the applied
/// entries under its applied mark are deleted from the outbox, a batch of
/// prune_batch_entries entries read at a time (the store's other work goes
/// between them).
constexpr auto prune_delay = std::chrono::seconds(5);
constexpr std::size_t prune_batch_entries = 1024;

// An outbox entry's state: as written, except that entries the applied
// mark covers were applied (their settlement wrote the mark, not them).
store::outbox_state state_of(const view_state& st, const store::outbox_entry& e) {
  return e.state == store::outbox_state::pending && e.seq <= st.applied_through
           ? store::outbox_state::applied
           : e.state;
}

// Visits this view's pending outbox entries in queue order, reading the
// outbox in chunks from st.outbox_from, until `visit` returns false; then
// moves outbox_from to the first pending entry seen (past the end when there
// was none). With `ahead` it reads from there instead (entries below it are
// in flight, pending until they settle) and leaves outbox_from alone.
// Returns why the outbox could not be read, or nothing.
template <class Visit>
std::string each_pending(view_state& st, Visit visit,
                         std::optional<std::uint64_t> ahead = std::nullopt) {
  // The first chunk is small: most callers stop at the first pending entry
  // (the oldest's age), and each entry read is decoded whole.
  constexpr std::size_t chunk_first = 16;
  constexpr std::size_t chunk_max = 1024;
  std::size_t chunk = chunk_first;
  std::uint64_t from = ahead ? *ahead : st.outbox_from;
  std::optional<std::uint64_t> first;
  bool stopped = false;
  while (!stopped) {
    auto ob = st.ctx->db->outbox(from, chunk);
    if (!ob)
      return "could not read the outbox: " + ob.error().to_string();
    for (auto& e : *ob) {  // a visitor may keep (move) the entry
      from = e.seq + 1;
      if (e.view != st.cfg.full_name() || state_of(st, e) != store::outbox_state::pending)
        continue;
      if (!first)
        first = e.seq;
      if (!visit(e)) {
        stopped = true;
        break;
      }
    }
    if (ob->size() < chunk)
      break;
    chunk = std::min(chunk * 4, chunk_max);
  }
  if (!ahead)
    st.outbox_from = first ? *first : from;
  return {};
}

// The oldest pending entry's age comes from the outbox itself.
void recount_oldest_pending(view_actor* self) {
  auto& st = self->state;
  st.oldest_pending_ms = 0;
  if (st.outbox_pending == 0)
    return;
  (void) each_pending(st, [&](const store::outbox_entry& e) {
    st.oldest_pending_ms = e.created.wall_ms();
    return false;
  });
}

json row_or_null(const std::optional<store::schema>& shape, const std::optional<store::row>& r) {
  return shape && r ? row_to_json(*shape, *r) : json(nullptr);
}

// The durable record of one conflict (or failure): both versions, and who won.
json conflict_record(view_actor* self, const store::outbox_entry& e, const push_outcome& o) {
  auto& st = self->state;
  std::optional<store::row> base;
  if (!e.base_version.empty())
    if (auto b = store::decode_row(e.base_version, "base of " + e.mutation_id); b)
      base = std::move(b).value();
  json key = json::object();
  for (std::size_t i = 0; st.shape && i < st.shape->primary_key.size() && i < e.key.size(); ++i)
    key[st.shape->columns[st.shape->primary_key[i]].name] = to_json(e.key[i]);
  return {{"view", st.cfg.full_name()},
          {"seq", e.seq},
          {"mutation_id", e.mutation_id},
          {"state", store::to_string(o.state)},
          {"op", e.op == store::change_op::remove ? "delete" : "upsert"},
          {"key", key},
          {"base", row_or_null(st.shape, base)},
          {"local", row_or_null(st.shape, e.new_row)},
          {"remote", o.remote_known ? row_or_null(st.shape, o.remote_row) : json(nullptr)},
          {"winner", o.winner},
          {"merged", o.winner == "merged" ? row_or_null(st.shape, o.merged_row) : json(nullptr)},
          {"error", o.error},
          {"policy", st.cfg.conflict},
          {"at", now_ms(self)}};
}

std::string conflict_key(const std::string& view, std::uint64_t seq) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%020llu", static_cast<unsigned long long>(seq));
  return "conflict/" + view + "/" + buf;
}

template <class Done>
void push_pending(view_actor* self, Done done);
void answer_origin_waiters(view_actor* self, const std::string& error);

/// One batch of outbox entries handed to the connector. A long queue keeps
/// the next batch at the remote behind the one at work (sent
/// after_previous, so the remote takes it only if this one leaves nothing
/// untried): the remote goes on with it at once, while the view settles
/// this one. A batch settles only after the one before it.
struct push_flight;
using push_flight_ptr = std::shared_ptr<push_flight>;
struct push_flight {
  std::vector<store::outbox_entry> entries;
  /// The batch sent behind this one, if any.
  push_flight_ptr next;
  /// Sent before the answer to the batch ahead of it.
  bool after_previous = false;
  std::optional<push_report_ref> report;  // the connector's answer, once here
  std::optional<caf::error> error;        // or why the push failed
  /// The batch before it has settled (or there was none): this one may.
  bool ready = true;
  /// The batch before it failed, did not go through clean or could not
  /// settle: this one's answer is dropped and its entries stay pending,
  /// pushed again later (the push bookkeeping keeps any the remote took
  /// from being applied twice).
  bool abandoned = false;
};

template <class Done>
void send_push(view_actor* self, push_flight_ptr flight, Done done);

// Until its echo (or its outcome) arrives, a pushed key is not overwritten
// by the stream with something older; an abandoned batch gives that up.
void forget_pushed(view_state& st, const push_flight& f) {
  for (const auto& e : f.entries)
    count_down(st.unechoed, store::encode_key(e.key));
}

// Drops the answers of `f` and every batch behind it; their entries stay
// pending. Those answered already let go of their keys now, the others
// when their answer comes.
void abandon(view_actor* self, push_flight_ptr f) {
  for (; f; f = f->next) {
    if (f->abandoned)
      continue;
    f->abandoned = true;
    f->ready = true;
    if (f->report || f->error)
      forget_pushed(self->state, *f);
  }
}

// A push chain let go of: `pushing` clears once no batch is at the remote
// any more, and a push asked for meanwhile starts then (nothing else would
// start it before the next exec or run).
void push_ended(view_actor* self) {
  auto& st = self->state;
  st.pushing = st.pushes_in_air > 0;
  if (!st.pushing && st.push_wanted) {
    st.push_wanted = false;
    push_now(self);
  }
}

// Sends the batch after a full `flight` behind it, when the queue holds
// more: the pending entries after it (they stay pending until pushed, and
// only this view's pushes settle them).
template <class Done>
void send_behind(view_actor* self, const push_flight_ptr& flight, Done done) {
  if (flight->next || flight->abandoned || flight->entries.size() != push_batch_entries_max)
    return;
  auto behind = std::make_shared<push_flight>();
  // A failed read is no error here: the queue is read again once this settles.
  (void) each_pending(
    self->state,
    [&](store::outbox_entry& e) {
      behind->entries.push_back(std::move(e));
      return behind->entries.size() < push_batch_entries_max;
    },
    flight->entries.back().seq + 1);
  if (behind->entries.empty())
    return;
  behind->after_previous = true;
  behind->ready = false;
  flight->next = behind;
  send_push(self, behind, done);
}

// The local change a write makes (an origin_first write, once taken).
store::change written_change(const store::schema& shape, const store::outbox_entry& e) {
  store::change c;
  c.table = shape.table;
  c.op = e.op;
  c.key = e.key;
  c.new_row = e.new_row;
  return c;
}

// Records what the remote made of `pushed`: outbox states, conflict
// records, and for writes that lost (or failed) the remote's row locally,
// all in one store batch; then pushes the rest of the queue. `next` is the
// batch sent behind it, if any: settled after it when the remote took it,
// dropped (its entries pending) when not.
//
// A batch goes behind another only if that one went through clean, every
// write applied as written (push_chain): a write left untried (a blocked
// queue) holds back the writes behind it, and a failed or conflicted one,
// which the push bookkeeping does not record, must never be tried again
// after them (as it would be, were its answer missed).
template <class Done>
void settle_push(view_actor* self, std::vector<store::outbox_entry> pushed, push_flight_ptr next,
                 const push_report& report, Done done) {
  auto& st = self->state;
  const std::uint64_t settled_to = pushed.empty() ? 0 : pushed.back().seq + 1;
  // Nothing of the batch stays pending: every pending entry of this view up
  // to its last is settled now (a batch is the queue's next entries, in
  // order), so the applied mark moves there and applied entries are not
  // rewritten; the others are, with their state.
  const bool whole = !pushed.empty() && report.outcomes.size() == pushed.size()
                     && std::none_of(report.outcomes.begin(), report.outcomes.end(),
                                     [](const push_outcome& o) {
                                       return o.state == store::outbox_state::pending;
                                     });
  // The remote took the batch sent behind this one only if this one went
  // through clean (push_chain), and then the one after goes behind it now;
  // otherwise it refused it, and the queue goes on from here once this one
  // has settled.
  const bool clean = whole && std::all_of(report.outcomes.begin(), report.outcomes.end(),
                                          [](const push_outcome& o) {
                                            return o.state == store::outbox_state::applied
                                                   && o.written;
                                          });
  if (next && !clean) {
    abandon(self, next);
    next = nullptr;
  }
  if (next)
    send_behind(self, next, done);
  const std::uint64_t applied_through =
    whole ? std::max(st.applied_through, pushed.back().seq) : st.applied_through;
  auto b = std::make_shared<store::batch>();
  if (applied_through != st.applied_through)
    b->ext.emplace_back(applied_mark_key(st.cfg.full_name()), std::to_string(applied_through));
  std::string blocked;
  std::uint64_t applied = 0, failed = 0, conflicted = 0, settled = 0;
  std::vector<json> events;
  // The local row of a key follows the last settled write of that key that
  // the remote did not take as written (nullopt: it took it).
  std::map<std::string, std::optional<store::change>> local_fix;
  for (std::size_t i = 0; i < pushed.size(); ++i) {
    auto& e = pushed[i];
    const push_outcome o = i < report.outcomes.size() ? report.outcomes[i] : push_outcome{};
    const auto key = store::encode_key(e.key);
    if (!report.echoes || !o.written)
      count_down(st.unechoed, key);
    e.attempts += 1;
    e.last_error = o.error;
    if (o.state == store::outbox_state::pending) {
      if (blocked.empty())
        blocked = o.error.empty() ? "the remote left a write untried" : o.error;
      b->outbox_put.push_back(std::move(e));
      continue;
    }
    ++settled;
    e.state = o.state;
    count_down(st.staged, key);
    if (o.state == store::outbox_state::applied) {
      ++applied;
      local_fix.erase(key);  // no entry and an empty one both mean: no fix
      if (st.cfg.write_policy == "origin_first" && st.shape)
        local_fix[key] = written_change(*st.shape, e);
      if (whole)
        continue;  // the applied mark says so
    } else {
      (o.state == store::outbox_state::failed ? failed : conflicted) += 1;
      auto rec = conflict_record(self, e, o);
      b->ext.emplace_back(conflict_key(st.cfg.full_name(), e.seq), rec.dump());
      rec["type"] = o.state == store::outbox_state::failed ? "write:failed" : "conflict";
      events.push_back(std::move(rec));
      if (o.winner == "merged" && st.shape) {
        // A custom resolver's row: both sides hold it now.
        store::change c;
        c.table = st.shape->table;
        c.op = o.merged_row ? store::change_op::insert : store::change_op::remove;
        c.key = e.key;
        c.new_row = o.merged_row;
        local_fix[key] = std::move(c);
      } else if (o.written && st.cfg.write_policy == "origin_first" && st.shape) {
        local_fix[key] = written_change(*st.shape, e);  // it won: the remote holds it
      } else if (o.written || !o.remote_known || !st.shape) {
        local_fix[key].reset();
      } else {
        store::change c;
        c.table = st.shape->table;
        if (o.remote_row) {
          c.op = store::change_op::insert;
          c.new_row = o.remote_row;
        } else {
          c.op = store::change_op::remove;
          c.key = e.key;
        }
        local_fix[key] = std::move(c);
      }
    }
    // Settled for good: the row and its base went upstream (and into the
    // conflict record); what reads a settled entry — status counts and
    // origin_first waiters — wants its key, mutation id, state and error.
    // So a settlement that rewrites entries writes them small. (Applied
    // entries under the applied mark are not rewritten: they keep their
    // row and base.)
    e.new_row.reset();
    e.base_version.clear();
    b->outbox_put.push_back(std::move(e));
  }
  for (auto& [key, fix] : local_fix)
    if (fix && !st.staged.count(key))  // a later write of the key is still queued
      b->changes.push_back(std::move(*fix));
  self->request(st.store, step_timeout, apply_atom::value, batch_ref{b})
    .then(
      [self, applied, failed, conflicted, settled, events, blocked, full = pushed.size(),
       done, whole, settled_to, applied_through, next](std::uint64_t) mutable {
        auto& st = self->state;
        if (!next) {
          // The queue goes on below (push_pending) or is drained; a batch
          // dropped and still in the air lets go of `pushing` when answered.
          st.pushing = st.pushes_in_air > 0;
          st.push_wanted = false;
        }
        st.applied_through = applied_through;
        // Every entry of this view below settled_to is settled now: this
        // batch took each pending one from the cursor on.
        if (whole)
          st.outbox_from = std::max(st.outbox_from, settled_to);
        st.run_pushed += applied;
        st.outbox_pending -= std::min<std::uint64_t>(st.outbox_pending, settled);
        st.outbox_applied += applied;
        st.outbox_failed += failed;
        st.outbox_conflicted += conflicted;
        if (next && !next->entries.empty() && blocked.empty())
          st.oldest_pending_ms = next->entries.front().created.wall_ms();  // no read needed
        else
          recount_oldest_pending(self);
        refresh_status(self);
        for (auto& ev : events)
          publish(self, std::move(ev));
        answer_origin_waiters(self, blocked);
        if (!blocked.empty()) {
          done("the write queue of view " + st.cfg.full_name()
               + " is blocked (on_error = \"block\"): " + blocked);
          return;
        }
        if (next) {
          next->ready = true;
          if (next->report || next->error)
            send_push(self, next, done);  // answered already: settles now
          return;
        }
        if (full == push_batch_entries_max || st.outbox_pending > 0) {
          push_pending(self, done);  // more waited, or were written meanwhile
        } else {
          // Drained: the applied entries go once it stays quiet.
          self->delayed_send(self, prune_delay, collect_atom::value, ++st.prune_gen);
          done(std::string{});
        }
      },
      [self, done, next](const caf::error& err) mutable {
        abandon(self, next);
        // With batches behind it in the air, `pushing` clears when their
        // answers are here.
        self->state.pushing = self->state.pushes_in_air > 0;
        done(describe(err));
        push_ended(self);
      });
}

// Pushes this view's pending outbox entries, in order, a bounded batch per
// request; calls `done` with an empty string once the queue is drained or
// with the reason it stopped.
template <class Done>
void push_pending(view_actor* self, Done done) {
  auto& st = self->state;
  if (st.cfg.persistence != "sync") {
    done(std::string{});
    return;
  }
  if (st.pushing) {
    // The push going on takes what it finds; what it does not, a push
    // started when it ends does (push_ended).
    st.push_wanted = true;
    done(std::string{});
    return;
  }
  std::vector<store::outbox_entry> pending;
  if (auto err = each_pending(st,
                              [&](store::outbox_entry& e) {
                                pending.push_back(std::move(e));
                                return pending.size() < push_batch_entries_max;
                              });
      !err.empty()) {
    done(err);
    return;
  }
  if (pending.empty()) {
    done(std::string{});
    return;
  }
  auto flight = std::make_shared<push_flight>();
  flight->entries = std::move(pending);
  send_push(self, flight, done);
  send_behind(self, flight, done);
}

// Sends `flight` to the connector; settles it when both its answer is here
// and it is ready (the batch before it settled). Called again with the
// answer already in when it arrived before that.
template <class Done>
void send_push(view_actor* self, push_flight_ptr flight, Done done) {
  auto& st = self->state;
  auto answered = [self, done](push_flight_ptr f) mutable {
    auto& st = self->state;
    if (f->abandoned) {
      forget_pushed(st, *f);
      push_ended(self);
      return;
    }
    if (!f->ready)
      return;  // settled once the batch before it has
    if (f->error || !f->report->ptr) {
      forget_pushed(st, *f);
      abandon(self, f->next);
      st.pushing = st.pushes_in_air > 0;
      auto why = f->error ? "push to remote '" + st.cfg.remote + "' failed: " + describe(*f->error)
                          : std::string("the remote answered a push with nothing");
      if (f->error)
        answer_origin_waiters(self, why);
      done(why);
      push_ended(self);
      return;
    }
    auto report = f->report->ptr;
    settle_push(self, std::move(f->entries), f->next, *report, done);
  };
  if (flight->report || flight->error) {
    answered(std::move(flight));
    return;
  }
  auto cs = std::make_shared<change_set>();
  cs->table = st.cfg.source;
  cs->view = st.cfg.full_name();
  cs->after_previous = flight->after_previous;
  cs->changes.reserve(flight->entries.size());
  std::vector<std::string> keys;
  keys.reserve(flight->entries.size());
  for (const auto& e : flight->entries) {
    store::change c;
    c.table = st.cfg.source;
    c.op = e.op;
    c.key = e.key;
    c.new_row = e.new_row;
    cs->changes.push_back(std::move(c));
    cs->mutation_ids.push_back(e.mutation_id);
    cs->outbox_seqs.push_back(e.seq);
    cs->base_versions.push_back(e.base_version);
    // Until its echo (or its outcome) arrives, the stream does not
    // overwrite the key with something older.
    keys.push_back(store::encode_key(e.key));
    st.unechoed[keys.back()] += 1;
  }
  std::sort(keys.begin(), keys.end());
  cs->distinct_keys = std::adjacent_find(keys.begin(), keys.end()) == keys.end();
  st.pushing = true;
  st.pushes_in_air += 1;
  // A batch sent behind another waits for it at the remote first.
  const auto timeout = flight->after_previous ? 2 * step_timeout : step_timeout;
  self->request(st.connector, timeout, push_atom::value, st.cfg.source, changes_ref{cs},
                caf::actor{self})
    .then(
      [self, flight, answered](const push_report_ref& report) mutable {
        self->state.pushes_in_air -= 1;
        flight->report = report;
        answered(flight);
      },
      [self, flight, answered](const caf::error& err) mutable {
        self->state.pushes_in_air -= 1;
        flight->error = err;
        answered(flight);
      });
}

// A realtime view under `buffered` durability lets the connector's stream
// thread apply its change sets (one thread hop less from an upstream commit
// to a readable row): nothing waits on a disk there, and with no local
// writes there is no push settlement to keep in order with. A sync view's
// batches go through the store actor; under `fsync` so do a realtime
// view's, so that no stream thread waits on a disk. Returns the gate to
// send with the subscription, null for none.
stream_gate_ref open_gate(view_actor* self) {
  auto& st = self->state;
  close_gate(self);
  if (st.cfg.persistence != "realtime" || !st.shape
      || st.ctx->config.durability != store::durability_mode::buffered)
    return {};
  st.gate = std::make_shared<stream_gate>();
  st.gate->cursor = "view:" + st.cfg.full_name();
  st.gate->table = st.shape->table;
  st.gate->position = st.position;
  return {st.gate};
}

// Nothing is applied through the gate once this returns.
void close_gate(view_actor* self) {
  auto& st = self->state;
  if (!st.gate)
    return;
  std::uint64_t applied = 0;
  {
    std::lock_guard<std::mutex> guard(st.gate->lock);
    st.gate->open = false;
    applied = st.gate->position;
  }
  st.gate.reset();
  // Its notices of the last change sets may still be on their way; a
  // later subscription starts after what is on disk.
  if (applied > st.position) {
    st.position = applied;
    st.job.last_seen_commit = std::to_string(applied);
  }
}

// Follows the change stream from st.position; `refused` gets the error
// when the remote will not. Subscribed from the request on: the stream may
// deliver its first change sets before the answer.
template <class Refused>
void subscribe(view_actor* self, Refused refused) {
  auto& st = self->state;
  self->request(st.connector, step_timeout, subscribe_atom::value, st.cfg.source,
                st.cfg.full_name(), caf::actor{self}, st.position, open_gate(self))
    .then(
      [self](std::uint64_t) {
        auto& st = self->state;
        // The stream may have ended before its answer came (down_atom,
        // stream_lost_atom): the run then fails and retries, not "running"
        // on a stream that is gone. A stop meanwhile is no failure.
        if (!st.subscribed && st.job.enabled)
          finish_run(self, "the change stream of '" + st.cfg.source + "' ended as it started");
        else
          finish_run(self, {});
      },
      [self, refused](const caf::error& err) mutable {
        close_gate(self);
        self->state.subscribed = false;
        refused(err);
      });
  st.subscribed = true;
  refresh_status(self);
}

void subscribe(view_actor* self) {
  subscribe(self, [self](const caf::error& err) {
    finish_run(self, "could not follow the change stream of '" + self->state.cfg.source
                       + "': " + describe(err));
  });
}

// Ends the staged snapshot as failed: the staged rows become garbage, the
// connector drops its half-read copy, and the run fails (and retries).
void fail_snapshot(view_actor* self, const std::string& error) {
  auto& st = self->state;
  if (st.snap) {
    if (st.snap->generation != 0)
      st.ctx->db->abort_staging(st.snap->shape.table, st.snap->generation);
    self->send(st.connector, snapshot_cancel_atom::value, st.cfg.full_name());
    st.snap.reset();
  }
  finish_run(self, error);
}

// The last staged batch is durable: one batch makes the staged copy live,
// with the cursor and the job state, so the copy and the position it is
// current at land together.
void swap_in(view_actor* self) {
  auto& st = self->state;
  auto& sp = *st.snap;
  auto b = std::make_shared<store::batch>();
  b->swaps.push_back({sp.shape.table, sp.generation});
  b->cursors.emplace_back("view:" + st.cfg.full_name(), std::to_string(sp.position));
  // The job moves to the new position with the swap, not before: a swap
  // that fails leaves the job where the table is.
  auto job = st.job;
  job.last_seen_commit = std::to_string(sp.position);
  job.updated_at_ms = now_ms(self);
  b->jobs.push_back(job);
  self->request(st.store, step_timeout, apply_atom::value, batch_ref{b})
    .then(
      [self, id = sp.id, job](std::uint64_t) {
        auto& st = self->state;
        if (!st.snap || st.snap->id != id)
          return;
        st.job.last_seen_commit = job.last_seen_commit;
        st.job.updated_at_ms = job.updated_at_ms;
        st.shape = st.snap->shape;
        st.position = st.snap->position;
        st.unechoed.clear();  // the copy holds every push before it
        restage(self);
        st.slot_lost_said = false;  // a followed view's snapshot came with a new slot
        st.run_pulled += st.snap->rows_done;
        st.snap.reset();
        refresh_status(self);
        if (follows_stream(st.cfg) && st.job.enabled)
          subscribe(self);
        else
          finish_run(self, {});
      },
      [self, id = sp.id](const caf::error& err) {
        if (self->state.snap && self->state.snap->id == id)
          fail_snapshot(self, describe(err));
      });
}

void fetch_piece(view_actor* self);

// A fresh copy of the source does not hold the writes still queued: write
// them over it again, in order, so the local rows stay the staged ones.
void restage(view_actor* self) {
  auto& st = self->state;
  if (st.outbox_pending == 0 || !st.shape)
    return;
  std::vector<store::outbox_entry> queued;
  if (!each_pending(st, [&](const store::outbox_entry& e) {
        queued.push_back(e);
        return true;
      }).empty())
    return;
  auto b = std::make_shared<store::batch>();
  for (const auto& e : queued) {
    store::change c;
    c.table = st.shape->table;
    c.op = e.op;
    c.key = e.key;
    c.new_row = e.new_row;
    b->changes.push_back(std::move(c));
  }
  if (b->changes.empty())
    return;
  self->request(st.store, step_timeout, apply_atom::value, batch_ref{b})
    .then([](std::uint64_t) {},
          [self](const caf::error& err) {
            publish(self, {{"type", "error"},
                           {"message", "could not write the queued writes over the new copy: "
                                         + describe(err)}});
          });
}

// Moves the snapshot along: stages waiting pieces while the store has room,
// asks for the next piece when nothing waits, swaps when all is staged.
void pump(view_actor* self) {
  auto& st = self->state;
  auto& sp = *st.snap;
  while (!sp.waiting.empty() && sp.in_flight < snapshot_batches_in_flight_max) {
    auto rows = std::move(sp.waiting.front());
    sp.waiting.pop_front();
    auto n = (rows.rows ? rows.rows->size() : 0) + (rows.encoded ? rows.encoded->size() : 0);
    auto b = std::make_shared<store::batch>();
    b->stage.push_back(std::move(rows));
    ++sp.in_flight;
    self->request(st.store, step_timeout, apply_atom::value, batch_ref{b})
      .then(
        [self, id = sp.id, n](std::uint64_t) {
          auto& st = self->state;
          if (!st.snap || st.snap->id != id)
            return;
          --st.snap->in_flight;
          st.snap->rows_done += n;
          refresh_status(self);  // progress
          pump(self);
        },
        [self, id = sp.id](const caf::error& err) {
          if (self->state.snap && self->state.snap->id == id)
            fail_snapshot(self, "could not stage the snapshot of '" + self->state.cfg.source
                                  + "': " + describe(err));
        });
  }
  if (!sp.more && !sp.fetching && sp.waiting.empty() && sp.in_flight == 0)
    swap_in(self);
  else if (sp.more && !sp.fetching && sp.waiting.empty())
    fetch_piece(self);
}

// Queues a piece's rows in store batches of at most snapshot_batch_rows,
// sharing them with the piece when it is small enough (the usual case).
void take_piece(view_actor* self, const snapshot_ref& piece) {
  auto& st = self->state;
  auto& sp = *st.snap;
  sp.more = piece.ptr->more;
  auto waiting = [&](std::shared_ptr<const std::vector<store::row>> rows,
                     std::shared_ptr<const store::encoded_rows> encoded) {
    store::staged_rows sr;
    sr.table = sp.shape.table;
    sr.generation = sp.generation;
    sr.rows = std::move(rows);
    sr.encoded = std::move(encoded);
    sp.waiting.push_back(std::move(sr));
  };
  // Encoded rows come in pieces of the connector's bound already.
  if (piece.ptr->encoded && !piece.ptr->encoded->empty())
    waiting(nullptr, piece.ptr->encoded);
  const auto& rows = piece.ptr->rows;
  if (rows.empty())
    return;
  if (rows.size() <= st.snapshot_batch_rows) {
    waiting({piece.ptr, &rows}, nullptr);  // aliases the piece: no copy
    return;
  }
  for (std::size_t i = 0; i < rows.size(); i += st.snapshot_batch_rows) {
    auto end = std::min(rows.size(), i + st.snapshot_batch_rows);
    waiting(std::make_shared<const std::vector<store::row>>(
              rows.begin() + static_cast<std::ptrdiff_t>(i),
              rows.begin() + static_cast<std::ptrdiff_t>(end)),
            nullptr);
  }
}

void fetch_piece(view_actor* self) {
  auto& st = self->state;
  st.snap->fetching = true;
  self->request(st.connector, step_timeout, snapshot_next_atom::value, st.cfg.full_name())
    .then(
      [self, id = st.snap->id](const snapshot_ref& piece) {
        auto& st = self->state;
        if (!st.snap || st.snap->id != id)
          return;
        st.snap->fetching = false;
        take_piece(self, piece);
        pump(self);
      },
      [self, id = st.snap->id](const caf::error& err) {
        if (self->state.snap && self->state.snap->id == id)
          fail_snapshot(self, describe(err));
      });
}

// The first answer to a snapshot request: stage the copy it starts.
void begin_snapshot(view_actor* self, const snapshot_ref& first) {
  auto& st = self->state;
  snapshot_progress sp;
  sp.id = ++st.snapshots;
  sp.shape = first.ptr->shape;
  sp.shape.table = st.cfg.full_name();
  sp.position = first.ptr->position;
  sp.rows_estimated = first.ptr->rows_estimated;
  st.snap = std::move(sp);
  refresh_status(self);
  // Beginning (and abandoning) a staging writes nothing to disk, so it need
  // not queue behind the store actor's applies; the staged rows do.
  auto generation = st.ctx->db->begin_staging(st.snap->shape);
  if (!generation) {
    fail_snapshot(self, "cannot stage a copy of '" + st.cfg.source
                          + "': " + generation.error().to_string());
    return;
  }
  st.snap->generation = *generation;
  take_piece(self, first);
  pump(self);
}

void snapshot_and_follow(view_actor* self) {
  auto& st = self->state;
  // A new snapshot replaces the stream being followed (a PostgreSQL remote
  // recreates the slot that stream reads); end it first.
  stop_stream(self);
  self->request(st.connector, snapshot_timeout, snapshot_atom::value, st.cfg.source,
                st.cfg.full_name(), follows_stream(st.cfg))
    .then([self](const snapshot_ref& snap) { begin_snapshot(self, snap); },
          [self](const caf::error& err) { finish_run(self, describe(err)); });
}

void start_run(view_actor* self) {
  auto& st = self->state;
  st.running = true;
  st.run_pulled = 0;
  st.run_pushed = 0;
  ++st.runs;
  ++st.timer_gen;  // this run supersedes any pending retry
  st.job.next_retry_at_ms = 0;
  set_state(self, "running");
  publish(self, {{"type", "sync:start"}, {"run", st.runs}});
  push_pending(self, [self](const std::string& err) {
    if (!err.empty()) {
      finish_run(self, err);
      return;
    }
    auto& st = self->state;
    if (st.may_resume) {
      // Follow the stream from the position the local copy is durable at;
      // a remote that cannot resume there (slot gone or invalidated) gets a
      // fresh snapshot instead, and one that is down is tried again later.
      st.may_resume = false;
      subscribe(self, [self](const caf::error& err) {
        auto code = err.category() == error_category() ? static_cast<errc>(err.code())
                                                       : errc::invalid_request;
        if (code == errc::remote_down) {
          self->state.may_resume = true;  // the slot may well be there
          finish_run(self, describe(err));
          return;
        }
        if (code == errc::slot_invalidated) {
          self->state.slot_lost_said = true;
          publish(self, {{"type", "slot:invalidated"}, {"message", describe(err)}});
        }
        snapshot_and_follow(self);
      });
      return;
    }
    snapshot_and_follow(self);
  });
}

// Answers `rp` with a run that starts after now.
void request_run(view_actor* self, caf::response_promise rp) {
  auto& st = self->state;
  if (st.running) {
    st.next.push_back(std::move(rp));
    return;
  }
  st.current.push_back(std::move(rp));
  start_run(self);
}

void stop_stream(view_actor* self) {
  auto& st = self->state;
  close_gate(self);
  if (st.subscribed)
    self->send(st.connector, unsubscribe_atom::value, st.cfg.source, caf::actor{self});
  st.subscribed = false;
  refresh_status(self);
}

// Deletes the next applied entries of this view under the applied mark
// from the outbox (they went upstream for good; the count stays, in
// outbox_pruned), then goes on while there are more. Not while a push is
// going (its settlement could not matter, but the queue comes first), nor
// while origin_first execs wait (they look for their entries).
void prune_outbox(view_actor* self) {
  auto& st = self->state;
  if (st.pushing || st.pruning || !st.origin_waiters.empty() || st.prune_from > st.applied_through)
    return;  // the next drain tries again
  auto ob = st.ctx->db->outbox(st.prune_from, prune_batch_entries);
  if (!ob)
    return;
  auto b = std::make_shared<store::batch>();
  std::uint64_t next_from = st.prune_from;
  bool more = ob->size() == prune_batch_entries;
  for (const auto& e : *ob) {
    if (e.seq > st.applied_through) {
      more = false;
      break;
    }
    next_from = e.seq + 1;
    if (e.view == st.cfg.full_name() && state_of(st, e) == store::outbox_state::applied)
      b->outbox_remove.push_back(e.seq);
  }
  if (ob->empty())
    more = false;
  const std::uint64_t n = b->outbox_remove.size();
  auto go_on = [self, more, gen = st.prune_gen] {
    if (more)
      self->send(self, collect_atom::value, gen);
  };
  if (n == 0) {
    st.prune_from = next_from;
    go_on();
    return;
  }
  b->ext.emplace_back(pruned_count_key(st.cfg.full_name()), std::to_string(st.outbox_pruned + n));
  st.pruning = true;
  self->request(st.store, step_timeout, apply_atom::value, batch_ref{b})
    .then(
      [self, n, next_from, go_on](std::uint64_t) {
        auto& st = self->state;
        st.pruning = false;
        st.outbox_pruned += n;
        st.prune_from = std::max(st.prune_from, next_from);
        go_on();
      },
      [self](const caf::error&) { self->state.pruning = false; });  // the next drain tries again
}

// Pushes queued writes outside a run, while the remote is up: after an exec,
// and after a run that ended while writes were made.
void push_now(view_actor* self) {
  auto& st = self->state;
  if (!st.remote_up || !st.job.enabled || st.running || st.outbox_pending == 0)
    return;
  st.run_pushed = 0;
  push_pending(self, [self](const std::string& err) {
    auto& st = self->state;
    if (!err.empty() && !st.running) {
      // The writes stay queued; fail like a run so the retry timer
      // pushes them again (a lost acknowledgement is retransmitted).
      st.running = true;
      finish_run(self, err);
      return;
    }
    if (!err.empty())
      publish(self, {{"type", "error"}, {"message", err}});
    else if (self->state.run_pushed > 0)
      publish(self, {{"type", "sync:end"}, {"pulled", 0}, {"pushed", self->state.run_pushed}});
    self->state.run_pushed = 0;
  });
}

// --- origin_first: the remote takes a write before the local copy does -----
//
// The writes' outbox entries are made durable first (state pending, the
// local rows untouched), then pushed like any others, in queue order; when
// the remote has taken them, settle_push writes the rows locally from the
// outcome, and the exec is answered. A write whose outcome is unknown (the
// remote went away mid-push) stays queued — its mutation id keeps a retry
// from applying it twice — and the exec is answered with a sentence saying
// so. While the remote is down (or the view stopped) a write is refused
// before anything is written, unless origin_first_offline = "local_first".

// Answers the origin_first execs whose writes all settled; with `error`
// (a push that failed), every waiting exec.
void answer_origin_waiters(view_actor* self, const std::string& error) {
  auto& st = self->state;
  if (st.origin_waiters.empty())
    return;
  // Only the waiters' part of the outbox: it keeps every settled entry.
  auto from = st.origin_waiters.front().from;
  for (const auto& w : st.origin_waiters)
    from = std::min(from, w.from);
  auto ob = st.ctx->db->outbox(from, 0);
  std::map<std::string, const store::outbox_entry*> by_id;
  if (ob)
    for (const auto& e : *ob)
      if (e.view == st.cfg.full_name())
        by_id[e.mutation_id] = &e;
  std::vector<view_state::origin_waiter> still;
  for (auto& w : st.origin_waiters) {
    std::size_t applied = 0, pending = 0;
    std::string why;
    for (const auto& id : w.mutation_ids) {
      auto it = by_id.find(id);
      const auto state = it == by_id.end() ? store::outbox_state::pending
                                           : state_of(st, *it->second);
      if (state == store::outbox_state::pending) {
        ++pending;
        continue;
      }
      if (state == store::outbox_state::applied)
        ++applied;
      else if (why.empty())
        why = std::string(store::to_string(state))
              + (it->second->last_error.empty() ? "" : ": " + it->second->last_error);
    }
    auto n = w.mutation_ids.size();
    if (pending > 0 && error.empty() && ob) {
      still.push_back(std::move(w));
      continue;
    }
    if (pending > 0) {
      w.rp.deliver(make_error(
        errc::invalid_request,
        "view " + st.cfg.full_name() + " writes origin_first, but its remote could not confirm "
          + std::to_string(pending) + " of " + std::to_string(n) + " writes ("
          + (error.empty() ? "the outbox could not be read" : error)
          + "); they stay queued and are pushed, once each, when the remote is reachable — "
            "`ctl status` shows the outbox"));
    } else if (applied < n) {
      w.rp.deliver(make_error(errc::invalid_request,
                              "view " + st.cfg.full_name() + ": the remote did not take "
                                + std::to_string(n - applied) + " of " + std::to_string(n)
                                + " writes (" + why + "); the remote's rows stand — `ctl "
                                  "conflicts "
                                + st.cfg.full_name() + "` shows each"));
    } else {
      w.rp.deliver(json{{"view", st.cfg.full_name()}, {"applied", n}, {"queued", 0}}.dump());
    }
  }
  st.origin_waiters = std::move(still);
}

void exec_origin_first(view_actor* self, std::shared_ptr<store::batch> b,
                       caf::response_promise rp) {
  auto& st = self->state;
  if (!st.remote_up || !st.job.enabled)
    return rp.deliver(make_error(
      errc::invalid_request,
      "view " + st.cfg.full_name() + " writes origin_first and "
        + (st.job.enabled ? "its remote '" + st.cfg.remote + "' is down"
                          : std::string("is stopped"))
        + ", so the write was not made; write again once "
        + (st.job.enabled ? "the remote is back" : "the view is resumed")
        + ", or set origin_first_offline = \"local_first\" to queue writes meanwhile"));
  // The local copy changes when the remote has taken the writes.
  b->changes.clear();
  std::vector<std::string> ids;
  for (auto& e : b->outbox_put) {
    // An HLC reading never repeats, not even across restarts.
    e.mutation_id = st.ctx->config.node_id + ":o"
                    + std::to_string(st.ctx->db->clock().now().packed());
    ids.push_back(e.mutation_id);
  }
  auto n = b->outbox_put.size();
  self->request(st.store, step_timeout, apply_atom::value, batch_ref{b})
    .then(
      [self, rp, n, ids](std::uint64_t) mutable {
        auto& st = self->state;
        st.outbox_pending += n;
        if (st.oldest_pending_ms == 0)
          recount_oldest_pending(self);
        refresh_status(self);
        // outbox_from is at most the first pending seq, or past every entry
        // read before these: never above the seqs these entries got.
        st.origin_waiters.push_back({std::move(ids), std::move(rp), st.outbox_from});
        push_now(self);
      },
      [rp](const caf::error& err) mutable { rp.deliver(err); });
}

// Applies local writes with their outbox entries in one batch and answers
// `rp`; `ids_record` (the view's leased id pool after this exec took from
// it) lands in the same batch.
void exec_local(view_actor* self, const json& ops, caf::response_promise rp,
                std::optional<std::string> ids_record = std::nullopt) {
  auto& st = self->state;
  if (st.cfg.persistence != "sync")
    return rp.deliver(make_error(errc::read_only,
                                 "view " + st.cfg.full_name() + " is " + st.cfg.persistence
                                   + " and takes no local writes; write to its remote instead, "
                                     "or make it a sync view"));
  if (!st.shape)
    return rp.deliver(make_error(errc::invalid_request,
                                 "view " + st.cfg.full_name()
                                   + " has not synced yet, so its columns are unknown; run "
                                     "`ctl sync` first"));
  auto changes = changes_from_json(*st.shape, ops);
  if (!changes)
    return rp.deliver(make_error(errc::invalid_request, changes.error().message()));
  auto b = std::make_shared<store::batch>();
  // Each write is based on the row its key holds locally before it (an
  // earlier write of the same exec included): the remote checks that base.
  std::map<std::string, std::optional<store::row>> rows_now;
  std::vector<std::string> keys;
  for (auto& c : *changes) {
    store::outbox_entry e;
    e.view = st.cfg.full_name();
    e.table = st.cfg.source;
    e.op = c.op;
    e.key = c.new_row ? st.shape->key_of(*c.new_row) : c.key;
    e.new_row = c.new_row;
    auto key = store::encode_key(e.key);
    auto it = rows_now.find(key);
    if (it == rows_now.end()) {
      auto got = st.ctx->db->get(st.shape->table, e.key);
      if (!got)
        return rp.deliver(make_error(errc::invalid_request,
                                     "could not read the row a write replaces: "
                                       + got.error().message()));
      it = rows_now.emplace(key, *got).first;
    }
    if (it->second)
      e.base_version = store::encode_row(*it->second);
    it->second = e.new_row;
    keys.push_back(key);
    b->outbox_put.push_back(std::move(e));
    b->changes.push_back(std::move(c));
  }
  if (st.cfg.write_policy == "origin_first") {
    bool reachable = st.remote_up && st.job.enabled;
    if (reachable || st.cfg.origin_first_offline != "local_first") {
      if (ids_record)
        b->ext.emplace_back(connectors::postgres::id_pool_record(st.cfg.full_name()),
                            std::move(*ids_record));
      return exec_origin_first(self, std::move(b), std::move(rp));
    }
    // Down, and configured to fall back: queued as a local_first write.
  }
  // Staged from now on: a stream change applied after this write must not
  // overwrite it.
  for (const auto& k : keys)
    st.staged[k] += 1;
  if (ids_record)
    b->ext.emplace_back(connectors::postgres::id_pool_record(st.cfg.full_name()),
                        std::move(*ids_record));
  auto n = b->changes.size();
  self->request(st.store, step_timeout, apply_atom::value, batch_ref{b})
    .then(
      [self, rp, n](std::uint64_t) mutable {
        auto& st = self->state;
        st.outbox_pending += n;
        if (st.oldest_pending_ms == 0)
          recount_oldest_pending(self);
        refresh_status(self);
        rp.deliver(json{{"view", st.cfg.full_name()}, {"applied", n}, {"queued", n}}.dump());
        push_now(self);
      },
      [self, rp, keys](const caf::error& err) mutable {
        for (const auto& k : keys)
          count_down(self->state.staged, k);
        rp.deliver(err);
      });
}

// --- ids for inserts that leave a sequence-fed key out --------------------

namespace pgl = connectors::postgres;

bool leases_ids(const view_state& st) {
  if (st.cfg.persistence != "sync" || st.cfg.id_block == 0 || !st.cfg.client_key.empty())
    return false;
  for (const auto& r : st.ctx->config.remotes)
    if (r.name == st.cfg.remote)
      return r.kind == "postgres";
  return false;
}

// The pool as kept in the store: with the column and sequence it is for, so
// that a node restarted while the remote is down still knows them.
std::string ids_record_of(const view_state& st) {
  return json{{"column", st.id_column}, {"sequence", st.id_sequence}, {"ids", st.ids.encode()}}
    .dump();
}

void load_ids(view_actor* self) {
  auto& st = self->state;
  auto name = pgl::id_pool_record(st.cfg.full_name());
  auto rec = st.ctx->db->ext(name);
  if (!rec || !*rec)
    return;
  auto j = json::parse(**rec, nullptr, false);
  auto pool = j.is_object() && j.value("ids", json()).is_string()
                ? pgl::id_pool::decode(j["ids"].get<std::string>(), name)
                : store::result<pgl::id_pool>(store::status::invalid_argument(
                  name + " is damaged: " + **rec
                  + "; its ids are not used, and the view leases a fresh block when the remote "
                    "is next reachable"));
  if (!pool) {
    // Never hand out an id twice: with a damaged record, lease anew.
    st.lease_error = pool.error().message();
    publish(self, {{"type", "error"}, {"message", st.lease_error}});
    return;
  }
  st.ids = std::move(pool).value();
  st.id_column = j.value("column", "");
  st.id_sequence = j.value("sequence", "");
  st.ids_checked = !st.id_column.empty();
}

// Upsert rows of `ops` that leave the key column out (or give it null).
std::vector<json*> rows_without_id(view_state& st, json& ops) {
  std::vector<json*> out;
  if (!st.shape || st.shape->primary_key.size() != 1 || !ops.is_object())
    return out;
  const auto& col = st.shape->columns[st.shape->primary_key[0]].name;
  if (st.ids_checked && st.id_column != col)
    return out;  // the key has no sequence: such rows are refused as they are
  auto it = ops.find("upsert");
  if (it == ops.end() || !it->is_array())
    return out;
  for (auto& row : *it)
    if (row.is_object() && (!row.contains(col) || row[col].is_null()))
      out.push_back(&row);
  return out;
}

void lease_ids(view_actor* self, std::uint64_t at_least);

// An exec whose inserts may need leased ids: gives them ids from the pool,
// waits for a lease while the remote is up, or refuses with a sentence.
// client_key = "uuid": an upsert row that leaves the one-column key out (or
// gives it null) gets a UUID made here. "" when done, else why not.
std::string give_client_keys(view_actor* self, json& ops) {
  auto& st = self->state;
  auto upserts = ops.is_object() ? ops.find("upsert") : ops.end();
  if (!ops.is_object() || upserts == ops.end() || !upserts->is_array() || !st.shape)
    return {};
  const auto& key = st.shape->primary_key;
  const auto* col = key.size() == 1 ? &st.shape->columns[key[0]] : nullptr;
  bool fits = col
              && (col->kind == store::value_kind::text
                  || (col->kind == store::value_kind::exact && col->type_name == "uuid"));
  for (auto& row : *upserts) {
    if (!row.is_object() || (col && row.contains(col->name) && !row[col->name].is_null()))
      continue;
    if (!fits)
      return "view " + st.cfg.full_name() + " has client_key = \"uuid\", which needs a "
             "one-column text or uuid key; its key is "
             + (col ? "'" + col->name + "' of another type" : std::string("of several columns"))
             + ": give the key in the row, or drop client_key";
    row[col->name] = uuid_v7(static_cast<std::int64_t>(now_ms(self)), st.key_rng);
  }
  return {};
}

void exec_with_ids(view_actor* self, json ops, caf::response_promise rp, bool may_wait) {
  auto& st = self->state;
  if (!st.cfg.client_key.empty())
    if (auto why = give_client_keys(self, ops); !why.empty()) {
      rp.deliver(make_error(errc::invalid_request, why));
      return;
    }
  if (!leases_ids(st))
    return exec_local(self, ops, std::move(rp));
  auto need = rows_without_id(st, ops);
  if (need.empty())
    return exec_local(self, ops, std::move(rp));
  if (st.ids.size() >= need.size()) {
    const auto& col = st.shape->columns[st.shape->primary_key[0]].name;
    for (auto* row : need)
      (*row)[col] = *st.ids.take();
    auto record = ids_record_of(st);
    exec_local(self, ops, std::move(rp), std::move(record));
    top_up_ids(self);
    return;
  }
  if (may_wait && st.remote_up) {
    st.waiting_for_ids.emplace_back(std::move(ops), std::move(rp));
    lease_ids(self, need.size() - st.ids.size());
    return;
  }
  if (st.ids_checked && st.id_column.empty())
    return exec_local(self, ops, std::move(rp));  // no sequence: the missing key is refused
  auto col = st.shape ? st.shape->columns[st.shape->primary_key[0]].name : "the key";
  auto sentence = pgl::no_id_sentence(st.cfg.full_name(), col,
                                      st.id_sequence.empty() ? "its sequence" : st.id_sequence,
                                      st.cfg.id_block);
  if (!st.lease_error.empty())
    sentence += " (the last lease failed: " + st.lease_error + ")";
  rp.deliver(make_error(errc::invalid_request, sentence));
}

void settle_waiting_for_ids(view_actor* self) {
  auto waiting = std::move(self->state.waiting_for_ids);
  self->state.waiting_for_ids.clear();
  for (auto& [ops, rp] : waiting)
    exec_with_ids(self, std::move(ops), std::move(rp), false);
}

// Leases a block (at least `at_least` ids) from the key's sequence; the
// first lease also learns whether the key has one.
void lease_ids(view_actor* self, std::uint64_t at_least) {
  auto& st = self->state;
  if (st.leasing || !leases_ids(st))
    return;
  st.leasing = true;
  auto n = std::max<std::uint64_t>(st.cfg.id_block, at_least);
  self->request(st.connector, step_timeout, lease_atom::value, st.cfg.full_name(), n)
    .then(
      [self](const std::string& text) {
        auto& st = self->state;
        auto j = json::parse(text, nullptr, false);
        st.ids_checked = true;
        st.lease_error.clear();
        st.id_column = j.is_object() && j["column"].is_string() ? j["column"].get<std::string>()
                                                                 : std::string{};
        st.id_sequence = j.is_object() && j["sequence"].is_string()
                           ? j["sequence"].get<std::string>()
                           : std::string{};
        std::vector<std::int64_t> got;
        if (j.is_object() && j["ids"].is_array())
          for (const auto& id : j["ids"])
            if (id.is_number_integer())
              got.push_back(id.get<std::int64_t>());
        st.ids.add(got);
        // Execs applied after this batch carry the pool too; the store
        // applies this view's batches in the order they were sent.
        auto b = std::make_shared<store::batch>();
        b->ext.emplace_back(pgl::id_pool_record(st.cfg.full_name()), ids_record_of(st));
        self->request(st.store, step_timeout, apply_atom::value, batch_ref{b})
          .then(
            [self](std::uint64_t) {
              self->state.leasing = false;
              refresh_status(self);
            },
            [self](const caf::error& err) {
              self->state.leasing = false;
              self->state.lease_error = describe(err);
            });
        settle_waiting_for_ids(self);
      },
      [self](const caf::error& err) {
        auto& st = self->state;
        st.leasing = false;
        st.lease_error = describe(err);
        settle_waiting_for_ids(self);
      });
}

// Keeps at least half a block in hand while the remote is up.
void top_up_ids(view_actor* self) {
  auto& st = self->state;
  if (!leases_ids(st) || !st.remote_up || st.leasing)
    return;
  if (st.ids_checked && (st.id_column.empty() || st.ids.size() > st.cfg.id_block / 2))
    return;
  lease_ids(self, 0);
}

void apply_stream(view_actor* self, const change_set& cs) {
  auto& st = self->state;
  if (!st.subscribed || !st.job.enabled || !st.shape || cs.position <= st.position)
    return;  // stale: covered by the snapshot or by an earlier change set
  if (cs.applied) {
    // The stream thread applied it through the gate, and the connector
    // knows it is durable: only the view's own record moves.
    st.position = cs.position;
    st.job.last_seen_commit = std::to_string(cs.position);
    st.job.updated_at_ms = now_ms(self);
    refresh_status(self);
    return;
  }
  // This view's own pushes come back as echoes: the local rows already hold them.
  for (const auto& key : cs.echoes)
    count_down(st.unechoed, store::encode_key(key));
  auto b = std::make_shared<store::batch>();
  for (auto c : cs.changes) {
    // A staged row, or one pushed but not echoed yet, is newer than this
    // change (committed upstream before the push): keep the local row.
    if ((!st.staged.empty() || !st.unechoed.empty()) && c.op != store::change_op::truncate) {
      auto key = store::encode_key(c.new_row ? st.shape->key_of(*c.new_row) : c.key);
      if (st.staged.count(key) || st.unechoed.count(key))
        continue;
    }
    c.table = st.shape->table;
    b->changes.push_back(std::move(c));
  }
  b->cursors.emplace_back("view:" + st.cfg.full_name(), std::to_string(cs.position));
  st.position = cs.position;
  st.job.last_seen_commit = std::to_string(cs.position);
  st.job.updated_at_ms = now_ms(self);
  b->jobs.push_back(st.job);
  auto position = cs.position;
  self->request(st.store, step_timeout, apply_atom::value, batch_ref{b})
    .then(
      [self, position](std::uint64_t) {
        // Durable locally: the remote may forget everything up to here.
        self->send(self->state.connector, ack_atom::value, self->state.cfg.source, position);
      },
      [self](const caf::error& err) {
        // The local copy may now miss a change: end the stream and
        // re-snapshot through the retry path.
        stop_stream(self);
        self->state.may_resume = false;
        if (!self->state.running) {
          self->state.running = true;
          finish_run(self, describe(err));
        }
      });
  // The status record is rebuilt after the batch is on its way: it is not
  // on the path from commit to readable.
  refresh_status(self);
}

// The followed stream ended under the view: the live stream fails as if it
// were a run, and the retry follows on from the slot when `resumable`, or
// copies the source again.
void stream_ended(view_actor* self, const std::string& reason, bool resumable) {
  auto& st = self->state;
  close_gate(self);
  if (st.subscribed)
    st.may_resume = resumable;
  if (st.subscribed && !st.running) {
    st.subscribed = false;
    st.running = true;
    finish_run(self, reason);
  } else {
    st.subscribed = false;
    refresh_status(self);
  }
}

caf::behavior view_impl(view_actor* self, node_context_ptr ctx, view_config cfg,
                        std::uint64_t relation_id, caf::actor connector, caf::actor store) {
  auto& st = self->state;
  st.ctx = ctx;
  st.cfg = cfg;
  st.relation_id = relation_id;
  st.connector = connector;
  st.store = store;
  st.retry = std::make_unique<backoff>(ctx->config.retry,
                                       ctx->config.seed ^ (relation_id * 0x9e3779b97f4a7c15ULL));
  // Pick up where the last process left off.
  if (auto saved = ctx->db->job(cfg.full_name()); saved && *saved) {
    st.job = **saved;
    if (st.job.state == "running")
      st.job.state = "idle";  // that run died with the process
  } else {
    st.job.view = cfg.full_name();
    st.job.enabled = cfg.enabled;
  }
  st.job.persistence = cfg.persistence;
  st.job.mode = mode_of(cfg);
  st.job.slot_id = cfg.remote + "/" + cfg.source;
  for (const auto& r : ctx->config.remotes)
    if (r.name == cfg.remote)
      st.snapshot_batch_rows = std::max<std::size_t>(r.snapshot_batch_rows, 1);
  st.job.next_retry_at_ms = 0;
  if (auto shape = ctx->db->table(cfg.full_name()); shape && *shape)
    st.shape = **shape;
  if (auto cur = ctx->db->cursor("view:" + cfg.full_name()); cur && *cur) {
    st.position = std::stoull(**cur);
    // Change sets applied through a gate move the cursor, not the job
    // record: the cursor is where the local copy stands.
    st.job.last_seen_commit = std::to_string(st.position);
  }
  if (cfg.persistence == "sync") {
    auto mark = ctx->db->ext(applied_mark_key(cfg.full_name()));
    if (!mark)
      publish(self, {{"type", "error"},
                     {"message", "could not read " + applied_mark_key(cfg.full_name()) + " ("
                                   + mark.error().to_string()
                                   + "); the writes it covers count as pending and are pushed "
                                     "again, each still applied once"}});
    if (auto pruned = ctx->db->ext(pruned_count_key(cfg.full_name())); pruned && *pruned) {
      auto& text = **pruned;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), st.outbox_pruned);
      if (ec != std::errc{} || end != text.data() + text.size())
        st.outbox_pruned = 0;  // a count only: the entries are gone either way
    }
    st.outbox_applied = st.outbox_pruned;
    if (mark && *mark) {
      // Written only by settle_push, as a decimal seq.
      auto& text = **mark;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), st.applied_through);
      if (ec != std::errc{} || end != text.data() + text.size()) {
        st.applied_through = 0;
        publish(self, {{"type", "error"},
                       {"message", applied_mark_key(cfg.full_name()) + " is damaged (" + text
                                     + "); the writes it covered count as pending and are "
                                       "pushed again, each still applied once (the remote's "
                                       "push bookkeeping knows them)"}});
      }
    }
    if (auto ob = ctx->db->outbox(); ob)
      for (const auto& e : *ob) {
        if (e.view != cfg.full_name())
          continue;
        switch (state_of(st, e)) {
          case store::outbox_state::pending:
            if (st.outbox_pending++ == 0) {
              st.oldest_pending_ms = e.created.wall_ms();
              st.outbox_from = e.seq;
            }
            st.staged[store::encode_key(e.key)] += 1;
            break;
          case store::outbox_state::applied: ++st.outbox_applied; break;
          case store::outbox_state::failed: ++st.outbox_failed; break;
          case store::outbox_state::conflicted: ++st.outbox_conflicted; break;
        }
      }
  }
  load_ids(self);
  if (st.applied_through > 0)  // applied entries a run before left in the outbox
    self->delayed_send(self, prune_delay, collect_atom::value, ++st.prune_gen);
  st.may_resume = follows_stream(cfg) && st.shape && st.position > 0
                  && (st.job.state == "synced" || st.job.state == "idle");

  self->send(connector, health_atom::value, caf::actor{self});
  // A realtime or sync view follows its stream from start-up; a materialized
  // view waits for a sync unless it never completed one.
  bool never_synced = st.job.state == "idle" && st.job.last_seen_commit.empty();
  if (st.job.enabled && (follows_stream(cfg) || never_synced || st.job.state == "failed"))
    start_run(self);
  else
    persist_job(self);

  return {
    [self](sync_atom) -> caf::result<std::string> {
      auto& st = self->state;
      if (!st.job.enabled)
        return stopped_sync_reply(st.cfg.full_name(), st.job.state).dump();
      auto rp = self->make_response_promise<std::string>();
      request_run(self, rp);
      return rp;
    },
    [self](stop_atom) -> caf::result<std::string> {
      auto& st = self->state;
      st.job.enabled = false;
      ++st.timer_gen;  // any pending retry is void from now on
      st.job.next_retry_at_ms = 0;
      if (st.subscribed)
        st.may_resume = true;  // resume follows on from here
      stop_stream(self);
      answer_origin_waiters(self, "the view was stopped");
      // Answer once the disabled job is durable: a crash right after a stop
      // must not resurrect the job.
      auto rp = self->make_response_promise<std::string>();
      auto answer = [self, rp]() mutable { rp.deliver(status_json(self).dump()); };
      if (!st.running)
        set_state(self, "idle", answer);
      else
        persist_job(self, answer);
      return rp;
    },
    [self](resume_atom) -> caf::result<std::string> {
      auto& st = self->state;
      st.job.enabled = true;
      refresh_status(self);
      auto rp = self->make_response_promise<std::string>();
      request_run(self, rp);
      return rp;
    },
    [self](status_atom) { return status_json(self).dump(); },
    [self](push_atom) { push_now(self); },
    [self](exec_atom, const std::string& text) -> caf::result<std::string> {
      auto ops = json::parse(text, nullptr, false);
      if (ops.is_discarded())
        return make_error(errc::invalid_request, "exec's argument is not JSON");
      auto rp = self->make_response_promise<std::string>();
      exec_with_ids(self, std::move(ops), rp, true);
      return rp;
    },
    [self](retry_atom, std::uint64_t gen) {
      auto& st = self->state;
      if (gen != st.timer_gen || !st.job.enabled || st.running)
        return;
      start_run(self);
    },
    [self](collect_atom, std::uint64_t gen) {
      if (gen == self->state.prune_gen)
        prune_outbox(self);
    },
    [self](changes_atom, const changes_ref& cs) {
      if (cs.ptr)
        apply_stream(self, *cs.ptr);
    },
    [self](up_atom, const std::string&) {
      auto& st = self->state;
      st.remote_up = true;
      refresh_status(self);
      if (st.job.enabled && !st.running && (st.job.state == "failed" || follows_stream(st.cfg)))
        start_run(self);
    },
    [self](down_atom, const std::string&, const std::string& reason) {
      self->state.remote_up = false;
      answer_origin_waiters(self, "the remote went down: " + reason);
      stream_ended(self, reason, true);  // nothing was lost: the slot kept it
    },
    [self](stream_lost_atom, const std::string& reason) {
      // The stream cannot get past where it stands: copy the source again.
      answer_origin_waiters(self, reason);
      stream_ended(self, reason, false);
    },
    [self](connector_atom, const caf::actor& connector) {
      auto& st = self->state;
      st.connector = connector;
      close_gate(self);
      st.subscribed = false;
      refresh_status(self);
      self->send(connector, health_atom::value, caf::actor{self});
    },
    [self](bool up, const std::string&) {
      self->state.remote_up = up;
      refresh_status(self);
    },
    [self](slot_atom, const std::string& text) {
      auto& st = self->state;
      auto report = json::parse(text, nullptr, false);
      if (report.is_discarded() || !report.is_object()
          || (report.contains("view") && report["view"] != st.cfg.full_name()))
        return;  // not about this view's slot
      report["checked_at"] = now_ms(self);
      st.slot = report;
      refresh_status(self);
      // Said once per slot: until a new snapshot replaces the slot, later
      // reports still say lost. A stopped view only shows it (resume
      // copies afresh anyway).
      const bool lost = report.contains("wal_status") && report["wal_status"] == "lost";
      if (!lost || !st.job.enabled || st.slot_lost_said)
        return;
      st.slot_lost_said = true;
      // The slot cannot serve the stream any more: copy the source again
      // from a new slot, and say so.
      const std::string slot = report.contains("slot") && report["slot"].is_string()
                                 ? report["slot"].get<std::string>()
                                 : std::string("?");
      publish(self, {{"type", "slot:invalidated"},
                     {"slot", slot},
                     {"message", "replication slot " + slot
                                   + " of view " + st.cfg.full_name()
                                   + " was invalidated (wal_status lost: PostgreSQL removed WAL "
                                     "the slot still needed, see max_slot_wal_keep_size); the "
                                     "view copies its source again from a new slot"}});
      stop_stream(self);
      st.may_resume = false;
      if (!st.running)
        start_run(self);
    },
    [self](forget_atom) -> caf::result<std::string> {
      auto& st = self->state;
      st.job.enabled = false;
      ++st.timer_gen;
      st.job.next_retry_at_ms = 0;
      st.may_resume = false;
      st.slot = nullptr;
      if (st.ids_checked || !st.ids.empty()) {
        // Leased ids go with the rest of what the view kept for its remote.
        st.ids = {};
        st.ids_checked = false;
        auto b = std::make_shared<store::batch>();
        b->ext.emplace_back(connectors::postgres::id_pool_record(st.cfg.full_name()),
                            std::nullopt);
        self->send(st.store, apply_atom::value, batch_ref{b});
      }
      stop_stream(self);  // refreshes the status
      refresh_status(self);
      auto rp = self->make_response_promise<std::string>();
      self->request(st.connector, step_timeout, forget_atom::value, st.cfg.source,
                    st.cfg.full_name())
        .then(
          [self, rp](const std::string& dropped) mutable {
            auto answer = [self, rp, dropped]() mutable {
              auto out = status_json(self);
              auto d = json::parse(dropped, nullptr, false);
              out["dropped"] = d.is_object() && d.contains("dropped") ? d["dropped"]
                                                                      : json::array();
              rp.deliver(out.dump());
            };
            if (!self->state.running)
              set_state(self, "idle", answer);
            else
              persist_job(self, answer);
          },
          [self, rp](const caf::error& err) mutable {
            // Stopped either way; what stays upstream is named in the error.
            auto sentence = "view " + self->state.cfg.full_name()
                            + " is stopped, but its slot and publication could not be dropped: "
                            + describe(err);
            persist_job(self, [rp, sentence]() mutable {
              rp.deliver(make_error(errc::invalid_request, sentence));
            });
          });
      return rp;
    },
    [self](restart_atom, const caf::actor& store) { self->state.store = store; },
  };
}

} // namespace

caf::actor spawn_view(caf::actor_system& sys, node_context_ptr ctx, view_config cfg,
                      std::uint64_t relation_id, caf::actor connector, caf::actor store) {
  return sys.spawn(view_impl, std::move(ctx), std::move(cfg), relation_id, std::move(connector),
                   std::move(store));
}

} // namespace syncmesh::actors
