#include "messaging/curve_keys.hpp"

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zmq.h>

namespace syncmesh::messaging {
namespace {

using store::status;

constexpr const char* secret_header =
    "# syncmesh CURVE key pair: keep this file secret (mode 0600)\n";
constexpr const char* public_header =
    "# syncmesh CURVE public key: put it on the allow-list of every node this one "
    "connects to\n";

std::string key_line(const char* name, const std::string& z85) {
  return std::string(name) + " = \"" + z85 + "\"\n";
}

std::string errno_text(int err) { return std::strerror(err); }

// Creates `path` with `mode` and writes `text`; O_EXCL unless `replace`.
status write_file(const std::string& path, const std::string& text, mode_t mode, bool replace) {
  if (replace && ::unlink(path.c_str()) != 0 && errno != ENOENT)
    return status::io_error("cannot replace " + path + ": " + errno_text(errno));
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0)
    return status::io_error("cannot create " + path + ": " + errno_text(errno));
  // The umask may have narrowed `mode`; the secret file must be exactly 0600.
  if (::fchmod(fd, mode) != 0) {
    const int err = errno;
    ::close(fd);
    return status::io_error("cannot set the mode of " + path + ": " + errno_text(err));
  }
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      return status::io_error("cannot write " + path + ": " + errno_text(err));
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0)
    return status::io_error("cannot write " + path + ": " + errno_text(errno));
  return status::ok();
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

// The `name = "value"` lines of a key file; comments and blank lines skipped.
store::result<std::map<std::string, std::string>> read_key_file(const std::string& path) {
  std::ifstream in(path);
  if (!in)
    return status::io_error("cannot read the key file " + path + ": " + errno_text(errno));
  std::map<std::string, std::string> out;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (line.empty() || line[0] == '#')
      continue;
    const auto eq = line.find(" = \"");
    if (eq == std::string::npos || line.size() < eq + 5 || line.back() != '"')
      return status::invalid_argument(path + ":" + std::to_string(number) +
                                      ": expected name = \"value\"; write key files with "
                                      "`syncmesh keygen`");
    out[line.substr(0, eq)] = line.substr(eq + 4, line.size() - eq - 5);
  }
  return out;
}

store::result<std::string> key_field(const std::map<std::string, std::string>& fields,
                                     const char* name, const std::string& path) {
  auto it = fields.find(name);
  if (it == fields.end())
    return status::invalid_argument(path + " has no " + name + " line; write key files with "
                                                                "`syncmesh keygen`");
  if (!is_z85_key(it->second))
    return status::invalid_argument(path + ": " + name + " is not " +
                                    std::to_string(curve_key_z85_chars) +
                                    " characters of Z85 text");
  return it->second;
}

} // namespace

bool curve_available() noexcept { return zmq_has("curve") != 0; }

bool is_z85_key(std::string_view key) noexcept {
  if (key.size() != curve_key_z85_chars)
    return false;
  std::array<char, curve_key_z85_chars + 1> text{};
  std::memcpy(text.data(), key.data(), key.size());
  std::array<std::uint8_t, 32> bytes{};
  return zmq_z85_decode(bytes.data(), text.data()) != nullptr;
}

store::result<curve_key_pair> generate_curve_key_pair() {
  if (!curve_available())
    return status::invalid_argument(
        "this libzmq was built without CURVE (libsodium); install a libzmq with CURVE "
        "support, such as Debian's libzmq5");
  std::array<char, curve_key_z85_chars + 1> pub{};
  std::array<char, curve_key_z85_chars + 1> sec{};
  if (zmq_curve_keypair(pub.data(), sec.data()) != 0)
    return status::io_error(std::string("cannot generate a CURVE key pair: ") +
                            zmq_strerror(zmq_errno()));
  return curve_key_pair{pub.data(), sec.data()};
}

status write_curve_key_files(const std::string& path, const curve_key_pair& keys, bool force) {
  if (path.empty())
    return status::invalid_argument("the key file path is empty; pass --out PATH");
  if (!is_z85_key(keys.public_key) || !is_z85_key(keys.secret_key))
    return status::invalid_argument("refusing to write a key pair that is not Z85 text");
  const std::string pub_path = path + ".pub";
  if (!force) {
    for (const auto& p : {path, pub_path})
      if (exists(p))
        return status::invalid_argument(p + " already exists; pass --force to replace it "
                                            "(nodes that trust its key will refuse the new one)");
  }
  status st = write_file(path,
                         std::string(secret_header) + key_line("public-key", keys.public_key) +
                             key_line("secret-key", keys.secret_key),
                         0600, force);
  if (!st)
    return st;
  return write_file(pub_path, std::string(public_header) + key_line("public-key", keys.public_key),
                    0644, force);
}

store::result<curve_key_pair> load_curve_key_pair(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return status::io_error("cannot read the key file " + path + ": " + errno_text(errno));
  if ((st.st_mode & 077) != 0)
    return status::invalid_argument(path + " holds a secret key and others may read it; "
                                           "run chmod 600 " + path);
  auto fields = read_key_file(path);
  if (!fields)
    return fields.error();
  auto pub = key_field(*fields, "public-key", path);
  if (!pub)
    return pub.error();
  auto sec = key_field(*fields, "secret-key", path);
  if (!sec)
    return sec.error();
  std::array<char, curve_key_z85_chars + 1> derived{};
  if (zmq_curve_public(derived.data(), sec->c_str()) != 0)
    return status::invalid_argument(path + ": cannot derive the public key from secret-key: " +
                                    zmq_strerror(zmq_errno()));
  if (*pub != derived.data())
    return status::invalid_argument(path + ": public-key does not belong to secret-key; "
                                           "write a new pair with `syncmesh keygen --force`");
  return curve_key_pair{std::move(*pub), std::move(*sec)};
}

store::result<std::string> load_curve_public_key(const std::string& path) {
  auto fields = read_key_file(path);
  if (!fields)
    return fields.error();
  return key_field(*fields, "public-key", path);
}

} // namespace syncmesh::messaging
