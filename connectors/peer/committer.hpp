#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "store/store.hpp"

namespace syncmesh::peer {

/// Where the replicator's commits are written: store batches, one after
/// another in the order given. The replicator merges the next received
/// deltas while a committer writes (and, under fsync, syncs) the last ones.
///
/// Failure: once a batch fails, every batch given after it fails too
/// without being written (each was merged on top of the failed one), until
/// resume(). So what is in the store is always a prefix of what was given.
/// A committer may write batches given one after another as one (one
/// write, one sync); they then succeed or fail together.
///
/// Called from the replicator's thread only; the notice a committer gives
/// when batches are done (see thread_committer) may come from any thread.
class committer {
public:
  virtual ~committer() = default;

  /// Queues `b`, to be written after every batch given before it. An empty
  /// batch (a commit of duplicates only) is reported done, unwritten.
  virtual void submit(store::batch b) = 0;

  /// Blocks until every batch given so far is written or failed.
  virtual void wait() = 0;

  /// The results of the batches done since the last call, oldest first.
  virtual std::vector<store::status> take_done() = 0;

  /// After a failure was taken (and wait() returned): writes again.
  virtual void resume() = 0;
};

/// Writes each batch inside submit(): the replicator without a pipeline.
std::unique_ptr<committer> inline_committer(store::store& db);

/// Writes on a thread of its own — the batches given while it wrote the
/// last ones as one write, when they hold only changes and extension
/// records — and calls `done` on that thread after each write (the owner then has the replicator take the results:
/// replicator::commits_done on the replicator's thread). Joins its thread
/// on destruction, once every batch given is written.
std::unique_ptr<committer> thread_committer(store::store& db, std::function<void()> done);

} // namespace syncmesh::peer
