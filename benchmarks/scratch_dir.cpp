#include "benchmarks/scratch_dir.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>
#include <vector>

#include <sys/vfs.h>

namespace syncmesh::benchmarks {

namespace fs = std::filesystem;

namespace {

// statfs f_type values (linux/magic.h).
constexpr long ext4_magic = 0xEF53;
constexpr long tmpfs_magic = 0x01021994;
constexpr long ramfs_magic = static_cast<long>(0x858458f6);
constexpr long xfs_magic = 0x58465342;
constexpr long btrfs_magic = 0x9123683E;
constexpr long overlay_magic = 0x794c7630;

bool memory_backed(const std::string& path) {
  struct statfs sf {};
  if (statfs(path.c_str(), &sf) != 0)
    return false;
  auto type = static_cast<long>(sf.f_type);
  return type == tmpfs_magic || type == ramfs_magic;
}

} // namespace

std::string scratch_dir::filesystem_of(const std::string& path) {
  struct statfs sf {};
  if (statfs(path.c_str(), &sf) != 0)
    return "unknown";
  switch (static_cast<long>(sf.f_type)) {
    case ext4_magic: return "ext4";
    case tmpfs_magic: return "tmpfs";
    case ramfs_magic: return "ramfs";
    case xfs_magic: return "xfs";
    case btrfs_magic: return "btrfs";
    case overlay_magic: return "overlayfs";
    default: break;
  }
  char hex[32];
  std::snprintf(hex, sizeof hex, "0x%lx", static_cast<unsigned long>(sf.f_type));
  return hex;
}

std::string scratch_dir::default_base() {
  if (const char* env = std::getenv("SYNCMESH_BENCH_DIR"); env && *env)
    return env;
  std::error_code ec;
  auto tmp = fs::temp_directory_path(ec);
  if (!ec && !memory_backed(tmp.string()))
    return tmp.string();
  return fs::current_path().string();
}

store::result<scratch_dir> scratch_dir::create(const std::string& base) {
  auto dir = base.empty() ? default_base() : base;
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return store::status::invalid_argument("'" + dir
                                           + "' is not a directory; pass an existing "
                                             "directory on a real disk");
  auto tmpl = (fs::path(dir) / "syncmesh-bench-XXXXXX").string();
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data()))
    return store::status::io_error("cannot create a scratch directory under '" + dir + "': "
                                   + std::strerror(errno)
                                   + "; pass a writable directory on a real disk");
  return scratch_dir(std::string(buf.data()));
}

scratch_dir::scratch_dir(scratch_dir&& other) noexcept : path_(std::exchange(other.path_, {})) {}

scratch_dir& scratch_dir::operator=(scratch_dir&& other) noexcept {
  if (this != &other) {
    remove();
    path_ = std::exchange(other.path_, {});
  }
  return *this;
}

scratch_dir::~scratch_dir() { remove(); }

void scratch_dir::remove() noexcept {
  if (path_.empty())
    return;
  std::error_code ec;
  fs::remove_all(path_, ec);
  path_.clear();
}

} // namespace syncmesh::benchmarks
