#include "actors/view_actor.hpp"

#include <algorithm>
#include <chrono>
#include <deque>
#include <functional>
#include <optional>
#include <vector>

#include <caf/all.hpp>

#include "actors/backoff.hpp"
#include "actors/errors.hpp"
#include "actors/messages.hpp"
#include "actors/row_json.hpp"
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
  bool remote_up = true;
  bool pushing = false;
  std::uint64_t position = 0;  // last source position applied locally
  /// The first run after a restart may follow the stream from `position`
  /// without a new snapshot, if the remote can.
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
  /// The connector's last report on this view's replication slot
  /// (wal_status, retained bytes, ...), with when it arrived; null if none.
  nlohmann::json slot;
  /// slot:invalidated was published for the current slot; a new snapshot
  /// (a new slot) clears it.
  bool slot_lost_said = false;

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
  if (st.cfg.persistence == "sync")
    out["outbox"] = {{"pending", st.outbox_pending}, {"applied", st.outbox_applied}};
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

// Pushes this view's pending outbox entries in one batch; calls `done` with
// an empty string on success or the reason on failure.
template <class Done>
void push_pending(view_actor* self, Done done) {
  auto& st = self->state;
  if (st.cfg.persistence != "sync" || st.pushing) {
    done(std::string{});
    return;
  }
  auto ob = st.ctx->db->outbox();
  if (!ob) {
    done("could not read the outbox: " + ob.error().to_string());
    return;
  }
  std::vector<store::outbox_entry> pending;
  for (const auto& e : *ob)
    if (e.view == st.cfg.full_name() && e.state == store::outbox_state::pending)
      pending.push_back(e);
  if (pending.empty()) {
    done(std::string{});
    return;
  }
  auto cs = std::make_shared<change_set>();
  cs->table = st.cfg.source;
  for (const auto& e : pending) {
    store::change c;
    c.table = st.cfg.source;
    c.op = e.op;
    c.key = e.key;
    c.new_row = e.new_row;
    cs->changes.push_back(std::move(c));
    cs->mutation_ids.push_back(e.mutation_id);
  }
  st.pushing = true;
  self->request(st.connector, step_timeout, push_atom::value, st.cfg.source, changes_ref{cs},
                caf::actor{self})
    .then(
      [self, pending, done](std::uint64_t) mutable {
        auto b = std::make_shared<store::batch>();
        for (auto e : pending) {
          e.state = store::outbox_state::applied;
          e.attempts += 1;
          b->outbox_put.push_back(std::move(e));
        }
        self->request(self->state.store, step_timeout, apply_atom::value, batch_ref{b})
          .then(
            [self, n = pending.size(), done](std::uint64_t) mutable {
              auto& st = self->state;
              st.pushing = false;
              st.run_pushed += n;
              st.outbox_pending -= std::min<std::uint64_t>(st.outbox_pending, n);
              st.outbox_applied += n;
              refresh_status(self);
              done(std::string{});
            },
            [self, done](const caf::error& err) mutable {
              self->state.pushing = false;
              done(describe(err));
            });
      },
      [self, done](const caf::error& err) mutable {
        self->state.pushing = false;
        done("push to remote '" + self->state.cfg.remote + "' failed: " + describe(err));
      });
}

void subscribe(view_actor* self) {
  auto& st = self->state;
  self->request(st.connector, step_timeout, subscribe_atom::value, st.cfg.source,
                st.cfg.full_name(), caf::actor{self}, st.position)
    .then([self](std::uint64_t) { finish_run(self, {}); },
          [self](const caf::error& err) {
            self->state.subscribed = false;
            finish_run(self, "could not follow the change stream of '" + self->state.cfg.source
                               + "': " + describe(err));
          });
  st.subscribed = true;
  refresh_status(self);
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
      // The first run after a restart: follow the stream from the position
      // the local copy is durable at; a remote that cannot resume there
      // (slot gone, position unknown) gets a fresh snapshot instead.
      st.may_resume = false;
      self->request(st.connector, step_timeout, subscribe_atom::value, st.cfg.source,
                    st.cfg.full_name(), caf::actor{self}, st.position)
        .then(
          [self](std::uint64_t) {
            self->state.subscribed = true;
            finish_run(self, {});  // refreshes the status
          },
          [self](const caf::error& err) {
            if (err.category() == error_category()
                && err.code() == static_cast<std::uint8_t>(errc::slot_invalidated)) {
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
  if (st.subscribed)
    self->send(st.connector, unsubscribe_atom::value, st.cfg.source, caf::actor{self});
  st.subscribed = false;
  refresh_status(self);
}

caf::result<std::string> exec_local(view_actor* self, const json& ops) {
  auto& st = self->state;
  if (st.cfg.persistence != "sync")
    return make_error(errc::read_only,
                      "view " + st.cfg.full_name() + " is " + st.cfg.persistence
                        + " and takes no local writes; write to its remote instead, or make it "
                          "a sync view");
  if (!st.shape)
    return make_error(errc::invalid_request, "view " + st.cfg.full_name()
                                               + " has not synced yet, so its columns are "
                                                 "unknown; run `ctl sync` first");
  auto changes = changes_from_json(*st.shape, ops);
  if (!changes)
    return make_error(errc::invalid_request, changes.error().message());
  auto b = std::make_shared<store::batch>();
  for (auto& c : *changes) {
    store::outbox_entry e;
    e.view = st.cfg.full_name();
    e.table = st.cfg.source;
    e.op = c.op;
    e.key = c.new_row ? st.shape->key_of(*c.new_row) : c.key;
    e.new_row = c.new_row;
    b->outbox_put.push_back(std::move(e));
    b->changes.push_back(std::move(c));
  }
  auto rp = self->make_response_promise<std::string>();
  auto n = b->changes.size();
  self->request(st.store, step_timeout, apply_atom::value, batch_ref{b})
    .then(
      [self, rp, n](std::uint64_t) mutable {
        auto& st = self->state;
        st.outbox_pending += n;
        refresh_status(self);
        rp.deliver(json{{"view", st.cfg.full_name()}, {"applied", n}, {"queued", n}}.dump());
        if (st.remote_up && st.job.enabled && !st.running)
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
              publish(self, {{"type", "sync:end"}, {"pulled", 0},
                             {"pushed", self->state.run_pushed}});
            self->state.run_pushed = 0;
          });
      },
      [rp](const caf::error& err) mutable { rp.deliver(err); });
  return rp;
}

void apply_stream(view_actor* self, const change_set& cs) {
  auto& st = self->state;
  if (!st.subscribed || !st.job.enabled || !st.shape || cs.position <= st.position)
    return;  // stale: covered by the snapshot or by an earlier change set
  auto b = std::make_shared<store::batch>();
  for (auto c : cs.changes) {
    c.table = st.shape->table;
    b->changes.push_back(std::move(c));
  }
  b->cursors.emplace_back("view:" + st.cfg.full_name(), std::to_string(cs.position));
  st.position = cs.position;
  st.job.last_seen_commit = std::to_string(cs.position);
  st.job.updated_at_ms = now_ms(self);
  b->jobs.push_back(st.job);
  refresh_status(self);
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
            if (!self->state.running) {
              self->state.running = true;
              finish_run(self, describe(err));
            }
          });
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
  if (auto cur = ctx->db->cursor("view:" + cfg.full_name()); cur && *cur)
    st.position = std::stoull(**cur);
  if (cfg.persistence == "sync")
    if (auto ob = ctx->db->outbox(); ob)
      for (const auto& e : *ob)
        if (e.view == cfg.full_name())
          (e.state == store::outbox_state::pending ? st.outbox_pending : st.outbox_applied) += 1;
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
      stop_stream(self);
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
    [self](exec_atom, const std::string& text) -> caf::result<std::string> {
      auto ops = json::parse(text, nullptr, false);
      if (ops.is_discarded())
        return make_error(errc::invalid_request, "exec's argument is not JSON");
      return exec_local(self, ops);
    },
    [self](retry_atom, std::uint64_t gen) {
      auto& st = self->state;
      if (gen != st.timer_gen || !st.job.enabled || st.running)
        return;
      start_run(self);
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
      auto& st = self->state;
      st.remote_up = false;
      if (st.subscribed && !st.running) {
        st.subscribed = false;
        st.running = true;  // fail the live stream as if it were a run
        finish_run(self, reason);
      } else {
        st.subscribed = false;
        refresh_status(self);
      }
    },
    [self](connector_atom, const caf::actor& connector) {
      auto& st = self->state;
      st.connector = connector;
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
