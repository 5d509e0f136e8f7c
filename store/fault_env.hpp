#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace leveldb {
class Env;
}

namespace syncmesh::store {

/// The file-system fault seam: a leveldb::Env that forwards to a real one
/// (Env::Default() or NewMemEnv) and fails writes or syncs on command, the
/// way a full or dying disk would. Hand env() to options::env.
///
/// Thread-safe: the switches may be flipped while a store uses the Env.
class fault_injection {
public:
  /// `base` is not owned and must outlive this object.
  explicit fault_injection(leveldb::Env* base);
  ~fault_injection();
  fault_injection(const fault_injection&) = delete;
  fault_injection& operator=(const fault_injection&) = delete;

  /// The Env to give LevelDB. Owned by this object.
  leveldb::Env* env();

  /// While set, every Append to a file opened for writing fails.
  void fail_writes(bool on) { fail_writes_ = on; }
  /// While set, every Sync fails (after the data reached the base file).
  void fail_syncs(bool on) { fail_syncs_ = on; }
  /// While set, creating new files fails.
  void fail_creates(bool on) { fail_creates_ = on; }

  /// How many operations failed on purpose so far.
  std::uint64_t injected() const { return injected_; }

private:
  friend class faulty_env;
  friend class faulty_file;

  std::atomic<bool> fail_writes_{false};
  std::atomic<bool> fail_syncs_{false};
  std::atomic<bool> fail_creates_{false};
  std::atomic<std::uint64_t> injected_{0};
  std::unique_ptr<leveldb::Env> env_;
};

} // namespace syncmesh::store
