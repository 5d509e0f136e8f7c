#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace syncmesh::actors {

class selector;

/// The latest status record of every view, published by the view actors as
/// their state changes (and by the supervisor for a view that is not
/// running). `status` and a no-op `sync` read it on the control server's own
/// thread: a status request never queues behind a busy actor and costs no
/// actor hops, and it reads exactly what the view actor would answer, since
/// the actor publishes before it answers anything else.
class status_board {
public:
  /// Replaces `view`'s record. Thread-safe.
  void publish(const std::string& view, nlohmann::json record);

  /// Forgets `view`'s record: requests about it go to the actors again.
  void withdraw(const std::string& view);

  /// The records of `views`, in that order; nothing if any is missing.
  std::optional<std::vector<nlohmann::json>> read(const std::vector<std::string>& views) const;

private:
  mutable std::mutex mutex_;
  std::map<std::string, nlohmann::json> records_;
};

/// What `sync` answers for a stopped view: nothing ran, and why.
nlohmann::json stopped_sync_reply(const std::string& view, const std::string& state);

/// The configured views `sel` covers, in configuration order, or nothing if
/// it names a view that does not exist (the slow path says which).
std::optional<std::vector<std::string>> views_covered(const selector& sel,
                                                      const std::vector<std::string>& view_order);

/// Answers `status` or `sync` from the board when it can: every covered view
/// has a record and, for `sync`, every one of them is stopped (so the sync
/// is a no-op). Anything else — other verbs, bad arguments, unknown views, a
/// view that would run — returns nothing and takes the actor path, which
/// also produces every error sentence.
std::optional<nlohmann::json> answer_from_board(const status_board& board,
                                                const std::vector<std::string>& view_order,
                                                const std::string& verb,
                                                const nlohmann::json& args);

} // namespace syncmesh::actors
