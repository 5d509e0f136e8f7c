#pragma once

#include <string>
#include <utility>

#include "store/status.hpp"

namespace syncmesh::benchmarks {

/// A fresh, empty directory for one measurement's database, removed with
/// everything in it when the scratch_dir is destroyed. Movable, not copyable.
class scratch_dir {
public:
  /// Creates "<base>/syncmesh-bench-XXXXXX" in the existing directory `base`
  /// (invalid_argument if it is not one). An empty `base` means
  /// $SYNCMESH_BENCH_DIR if set, else the system temporary directory unless
  /// it is memory-backed (tmpfs, where fsync costs nothing and the fsync
  /// figures would be meaningless), else the current directory.
  static store::result<scratch_dir> create(const std::string& base = "");

  /// The directory that create("") would use as `base`.
  static std::string default_base();

  /// The file-system type holding `path`: "ext4", "xfs", "tmpfs", ... or the
  /// statfs magic number in hex.
  static std::string filesystem_of(const std::string& path);

  scratch_dir(scratch_dir&& other) noexcept;
  scratch_dir& operator=(scratch_dir&& other) noexcept;
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;
  ~scratch_dir();

  const std::string& path() const { return path_; }

private:
  explicit scratch_dir(std::string path) : path_(std::move(path)) {}
  void remove() noexcept;

  std::string path_;  // empty once moved from
};

} // namespace syncmesh::benchmarks
