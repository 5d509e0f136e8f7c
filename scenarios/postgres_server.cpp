#include "scenarios/postgres_server.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libpq-fe.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace syncmesh::scenarios {

namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;
using store::result;
using store::status;

/// The pause between two looks at a child process or the server's socket.
constexpr milliseconds poll_interval{10};
/// Tries at starting the server when another process takes the free port
/// between our look and the server's bind.
constexpr int port_attempts_max = 5;
/// How long stop() lets a fast shutdown take before it escalates.
constexpr milliseconds stop_fast_max{30'000};
/// How long the destructor lets a fast shutdown take before it escalates.
constexpr milliseconds destroy_fast_max{10'000};
/// How long an immediate shutdown may take before the postmaster is killed.
constexpr milliseconds stop_immediate_max{5'000};
/// libpq's connect_timeout for sql(), in seconds.
constexpr int connect_timeout_s = 10;
/// Log lines quoted in an error.
constexpr std::size_t log_tail_lines_max = 15;
/// Characters of a statement quoted in an error.
constexpr std::size_t statement_snippet_chars_max = 60;

constexpr const char* packages_root = "/usr/lib/postgresql";
constexpr const char* install_hint =
    "install the `postgresql` package (`apt-get install postgresql`; ./dev test and ./dev demo "
    "do) or point postgres_options::bin_dir at a directory holding initdb and postgres";

std::string errno_text(int err) { return std::strerror(err); }

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
    s.pop_back();
  std::size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i])))
    ++i;
  return s.substr(i);
}

/// `s` with every run of white space, line breaks included, as one space.
std::string one_line(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::isspace(static_cast<unsigned char>(c))) {
      if (!out.empty() && out.back() != ' ')
        out += ' ';
    } else {
      out += c;
    }
  }
  return trim(out);
}

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

std::string seconds_text(milliseconds d) {
  std::ostringstream s;
  s << static_cast<double>(d.count()) / 1000.0 << " s";
  return s.str();
}

/// The statement as it appears in an error: one line, cut short.
std::string snippet(const std::string& statement) {
  std::string s = trim(statement);
  std::replace_if(s.begin(), s.end(), [](char c) { return c == '\n' || c == '\r' || c == '\t'; }, ' ');
  if (s.size() > statement_snippet_chars_max)
    s = s.substr(0, statement_snippet_chars_max) + "...";
  return s;
}

/// A postgresql.conf string literal.
std::string conf_quote(const std::string& value) {
  std::string out = "'";
  for (char c : value) {
    if (c == '\'')
      out += "''";
    else if (c == '\\')
      out += "\\\\";
    else
      out += c;
  }
  return out + "'";
}

/// A libpq conninfo value, quoted when it has to be.
std::string conninfo_value(const std::string& value) {
  bool plain = !value.empty() && value.find_first_of(" \t\n'\\") == std::string::npos;
  if (plain)
    return value;
  std::string out = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\')
      out += '\\';
    out += c;
  }
  return out + "'";
}

bool executable(const fs::path& p) { return ::access(p.c_str(), X_OK) == 0; }

bool has_server(const fs::path& bin) {
  return executable(bin / "initdb") && executable(bin / "postgres");
}

/// "15" -> {15}, "9.6" -> {9, 6}; empty when `name` is not a version.
std::vector<int> version_of(const std::string& name) {
  std::vector<int> parts;
  std::istringstream in(name);
  std::string part;
  while (std::getline(in, part, '.')) {
    if (part.empty() || part.size() > 6
        || !std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return {};
    parts.push_back(std::stoi(part));
  }
  return parts;
}

result<std::string> find_bin_dir(const std::string& configured) {
  if (!configured.empty()) {
    if (has_server(configured))
      return configured;
    return status::not_found("there is no PostgreSQL server in " + configured
                             + " (initdb or postgres is missing or not executable); "
                             + install_hint);
  }
  std::vector<int> best_version;
  std::string best;
  std::error_code ec;
  for (fs::directory_iterator it(packages_root, ec), end; !ec && it != end; it.increment(ec)) {
    auto version = version_of(it->path().filename().string());
    if (version.empty() || !has_server(it->path() / "bin"))
      continue;
    if (best.empty() || version > best_version) {
      best_version = version;
      best = (it->path() / "bin").string();
    }
  }
  if (best.empty())
    return status::not_found(std::string("PostgreSQL's server is not installed: no ") + packages_root
                             + "/<version>/bin holds initdb and postgres; " + install_hint);
  return best;
}

/// Who the server's processes run as when this process is root.
struct identity {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
};

result<identity> postgres_identity() {
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  int err = ::getpwnam_r("postgres", &pw, buf.data(), buf.size(), &found);
  if (err != 0 || found == nullptr)
    return status::not_found(
        "this process runs as root, which PostgreSQL refuses, and there is no `postgres` user "
        "to run the server as; install the `postgresql` package, which creates that user, or "
        "run as an ordinary user");
  identity who;
  who.uid = pw.pw_uid;
  who.gid = pw.pw_gid;
  int count = 32;
  for (;;) {
    who.groups.assign(static_cast<std::size_t>(count), 0);
    int n = count;
    if (::getgrouplist(pw.pw_name, pw.pw_gid, who.groups.data(), &n) >= 0) {
      who.groups.resize(static_cast<std::size_t>(n));
      break;
    }
    if (n <= count)
      n = count * 2;
    count = n;
  }
  return who;
}

/// What the child of spawn() reports when it fails before exec.
struct spawn_failure {
  int stage = 0;
  int err = 0;
};
enum spawn_stage : int { stage_fds = 1, stage_user, stage_chdir, stage_exec };

/// Starts `args` (args[0] an absolute path) in a new process group, as
/// `who` when set, in `cwd`, with stdin from /dev/null and stdout and stderr
/// on `out_fd`; no other descriptor of ours leaks into it. It is SIGKILLed
/// when the calling thread exits.
result<pid_t> spawn(const std::vector<std::string>& args, const identity* who,
                    const std::string& cwd, int out_fd) {
  std::vector<char*> argv;
  for (const auto& a : args)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);

  // Everything the child needs is made here: after fork() it may only make
  // async-signal-safe calls.
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0)
    return status::io_error("cannot open /dev/null (" + errno_text(errno)
                            + "); the system is misconfigured");
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) {
    int e = errno;
    ::close(null_fd);
    return status::io_error("cannot make a pipe to start " + args[0] + " (" + errno_text(e)
                            + "); the process may be out of file descriptors");
  }
  const long open_max = std::max(::sysconf(_SC_OPEN_MAX), 1024L);
  const pid_t parent = ::getpid();

  const pid_t pid = ::fork();
  if (pid < 0) {
    int e = errno;
    ::close(null_fd);
    ::close(report[0]);
    ::close(report[1]);
    return status::io_error("cannot fork to start " + args[0] + " (" + errno_text(e)
                            + "); the system is out of processes or memory");
  }
  if (pid == 0) {
    auto fail = [&](int stage) {
      spawn_failure f{stage, errno};
      ssize_t ignored = ::write(report[1], &f, sizeof f);
      (void)ignored;
      ::_exit(127);
    };
    ::setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; ++s)
      if (s != SIGKILL && s != SIGSTOP)
        ::sigaction(s, &dfl, nullptr);
    if (::dup2(null_fd, 0) < 0 || ::dup2(out_fd, 1) < 0 || ::dup2(out_fd, 2) < 0)
      fail(stage_fds);
    if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0)
      for (int fd = 3; fd < open_max; ++fd)
        ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    if (who != nullptr) {
      if (::setgroups(who->groups.size(), who->groups.data()) != 0 || ::setgid(who->gid) != 0
          || ::setuid(who->uid) != 0)
        fail(stage_user);
    }
    // After the identity switch, which clears it, and checked against a
    // parent that died before it took effect.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent)
      ::_exit(127);
    if (::chdir(cwd.c_str()) != 0)
      fail(stage_chdir);
    ::execve(argv[0], argv.data(), environ);
    fail(stage_exec);
  }

  ::close(null_fd);
  ::close(report[1]);
  spawn_failure f;
  ssize_t n;
  do
    n = ::read(report[0], &f, sizeof f);
  while (n < 0 && errno == EINTR);
  ::close(report[0]);
  if (n != static_cast<ssize_t>(sizeof f))
    return pid;  // exec closed the pipe: the program runs

  int ignored = 0;
  while (::waitpid(pid, &ignored, 0) < 0 && errno == EINTR) {
  }
  const std::string why = errno_text(f.err);
  switch (f.stage) {
  case stage_user:
    return status::io_error("cannot switch to the `postgres` user to run " + args[0] + " (" + why
                            + "); run the tests as an ordinary user instead");
  case stage_chdir:
    return status::io_error("the user running PostgreSQL cannot enter " + cwd + " (" + why
                            + "); make every parent directory traversable (chmod o+x)");
  case stage_exec:
    return status::not_found("cannot run " + args[0] + " (" + why + "); " + install_hint);
  default:
    return status::io_error("cannot set up the standard streams of " + args[0] + " (" + why
                            + "); the process may be out of file descriptors");
  }
}

/// The wait status of `pid` when it has exited (reaping it); nothing while
/// it runs.
std::optional<int> reap(pid_t pid) {
  int wstatus = 0;
  pid_t r;
  do
    r = ::waitpid(pid, &wstatus, WNOHANG);
  while (r < 0 && errno == EINTR);
  if (r == pid)
    return wstatus;
  if (r < 0 && errno == ECHILD && ::kill(pid, 0) != 0 && errno == ESRCH)
    return 0;  // reaped by someone else, e.g. SIGCHLD set to SIG_IGN
  return std::nullopt;
}

/// Polls reap() until `pid` exits or `deadline` passes.
std::optional<int> await_exit(pid_t pid, steady::time_point deadline) {
  for (;;) {
    if (auto wstatus = reap(pid))
      return wstatus;
    if (steady::now() >= deadline)
      return std::nullopt;
    std::this_thread::sleep_for(poll_interval);
  }
}

/// SIGKILLs `pid` and waits for it; SIGKILL cannot be refused.
void kill_and_reap(pid_t target, pid_t pid) {
  ::kill(target, SIGKILL);
  int wstatus = 0;
  while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }
}

std::string describe_exit(int wstatus) {
  if (WIFEXITED(wstatus))
    return "exit code " + std::to_string(WEXITSTATUS(wstatus));
  if (WIFSIGNALED(wstatus))
    return "killed by signal " + std::to_string(WTERMSIG(wstatus));
  return "wait status " + std::to_string(wstatus);
}

bool exited_cleanly(int wstatus) { return WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0; }

result<int> free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return status::io_error("cannot open a socket to find a free port (" + errno_text(errno)
                            + "); the process may be out of file descriptors");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0
      || ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    int e = errno;
    ::close(fd);
    return status::io_error("cannot bind 127.0.0.1 to find a free port (" + errno_text(e)
                            + "); check that the loopback interface is up");
  }
  ::close(fd);
  return static_cast<int>(ntohs(addr.sin_port));
}

result<std::string> read_whole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return status::io_error("cannot read " + path + "; the cluster directory is damaged");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// Replaces the contents of an existing file, keeping its owner and mode.
status overwrite(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out)
    return status::io_error("cannot write " + path + "; check the free space in /tmp");
  return status::ok();
}

/// The last lines of `path` from byte `from` on, indented, for an error.
std::string tail_of(const std::string& path, std::size_t from) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return "  (no log)";
  in.seekg(static_cast<std::streamoff>(from));
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);)
    if (!trim(line).empty())
      lines.push_back(line);
  if (lines.empty())
    return "  (the log is empty)";
  std::string out;
  std::size_t first = lines.size() > log_tail_lines_max ? lines.size() - log_tail_lines_max : 0;
  for (std::size_t i = first; i < lines.size(); ++i)
    out += (i == first ? "  " : "\n  ") + lines[i];
  return out;
}

std::size_t file_size_or_zero(const std::string& path) {
  std::error_code ec;
  auto size = fs::file_size(path, ec);
  return ec ? 0 : static_cast<std::size_t>(size);
}

/// PostgreSQL's error from a failed result, without the localized framing.
std::string postgres_error(const PGresult* res) {
  auto field = [&](int code) {
    const char* v = PQresultErrorField(res, code);
    return v ? std::string(v) : std::string();
  };
  std::string primary = field(PG_DIAG_MESSAGE_PRIMARY);
  if (primary.empty())
    return one_line(PQresultErrorMessage(res));
  std::string severity = field(PG_DIAG_SEVERITY_NONLOCALIZED);
  std::string s = (severity.empty() ? std::string("ERROR") : severity) + ": " + primary;
  if (auto detail = field(PG_DIAG_MESSAGE_DETAIL); !detail.empty())
    s += " (detail: " + detail + ")";
  if (auto hint = field(PG_DIAG_MESSAGE_HINT); !hint.empty())
    s += " (hint: " + hint + ")";
  if (auto state = field(PG_DIAG_SQLSTATE); !state.empty())
    s += " [SQLSTATE " + state + "]";
  return s;
}

void collect_notice(void* notices, const PGresult* res) {
  try {
    static_cast<std::vector<std::string>*>(notices)->push_back(trim(PQresultErrorMessage(res)));
  } catch (...) {
    // Out of memory inside libpq's callback: the notice is dropped.
  }
}

bool valid_setting_name(const std::string& name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.';
  });
}

} // namespace

struct postgres_server::run_as : identity {
  explicit run_as(identity who) : identity(std::move(who)) {}
};

postgres_server::postgres_server(postgres_options options, std::string bin_dir)
    : options_(std::move(options)), bin_dir_(std::move(bin_dir)) {}

result<std::unique_ptr<postgres_server>> postgres_server::start(postgres_options options) {
  const auto deadline = steady::now() + options.start_timeout;
  for (const auto& [name, value] : options.settings) {
    if (!valid_setting_name(name))
      return status::invalid_argument("`" + name
                                      + "` is not a PostgreSQL setting name; use letters, "
                                        "digits, `_` and `.` in postgres_options::settings");
    std::string lower = name;
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (lower == "port" || lower == "listen_addresses" || lower == "unix_socket_directories")
      return status::invalid_argument("`" + name
                                      + "` is chosen by postgres_server; drop it from "
                                        "postgres_options::settings and use port() and "
                                        "conninfo() instead");
    if (value.find_first_of("\r\n") != std::string::npos)
      return status::invalid_argument("the value of setting `" + name
                                      + "` has a line break, which postgresql.conf cannot hold; "
                                        "give it on one line");
  }
  auto bin_dir = find_bin_dir(options.bin_dir);
  if (!bin_dir)
    return bin_dir.error();

  // From here on the object owns what exists, so an early return cleans up.
  std::unique_ptr<postgres_server> server(new postgres_server(std::move(options), *bin_dir));
  if (::geteuid() == 0) {
    auto who = postgres_identity();
    if (!who)
      return who.error();
    server->run_as_ = std::make_unique<run_as>(std::move(*who));
  }
  if (auto st = server->make_directory(); !st)
    return st;
  if (auto st = server->init_cluster(deadline); !st)
    return st;
  for (int attempt = 1;; ++attempt) {
    auto port = free_port();
    if (!port)
      return port.error();
    server->port_ = *port;
    if (auto st = server->write_config(); !st)
      return st;
    bool port_taken = false;
    status st = server->launch(deadline, port_taken);
    if (st.is_ok()) {
      server->started_ = true;
      return result<std::unique_ptr<postgres_server>>(std::move(server));
    }
    if (!port_taken || attempt == port_attempts_max)
      return st;
  }
}

postgres_server::~postgres_server() {
  (void)shut_down(destroy_fast_max);
  if (!options_.keep_dir && !root_dir_.empty()) {
    std::error_code ec;
    fs::remove_all(root_dir_, ec);
  }
}

status postgres_server::make_directory() {
  std::string pattern = "/tmp/syncmesh-pg-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr)
    return status::io_error("cannot make a temporary directory under /tmp (" + errno_text(errno)
                            + "); check that /tmp exists and is writable");
  root_dir_ = pattern;
  data_dir_ = root_dir_ + "/data";
  log_path_ = root_dir_ + "/postgres.log";
  // mkdtemp made it 0700 and ours; initdb, running as `postgres`, creates
  // the data directory inside it, and the server puts its socket there.
  if (run_as_ && ::chown(root_dir_.c_str(), run_as_->uid, run_as_->gid) != 0)
    return status::io_error("cannot hand " + root_dir_ + " to the `postgres` user ("
                            + errno_text(errno) + "); check that /tmp allows chown");
  return status::ok();
}

status postgres_server::init_cluster(steady::time_point deadline) {
  const std::string log = root_dir_ + "/initdb.log";
  const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return status::io_error("cannot create " + log + " (" + errno_text(errno)
                            + "); check the free space in /tmp");
  auto pid = spawn({bin_dir_ + "/initdb", "-D", data_dir_, "-A", "trust", "-U", "postgres",
                    "--no-sync", "-E", "UTF8", "--locale=C"},
                   run_as_.get(), root_dir_, fd);
  ::close(fd);
  if (!pid)
    return pid.error();
  auto wstatus = await_exit(*pid, deadline);
  if (!wstatus) {
    kill_and_reap(-*pid, *pid);  // its process group: initdb and its bootstrap backend
    return status::io_error("initdb did not finish within "
                            + seconds_text(options_.start_timeout)
                            + "; raise postgres_options::start_timeout, or " + log_advice(log)
                            + "; its last lines:\n" + tail_of(log, 0));
  }
  if (!exited_cleanly(*wstatus))
    return status::io_error("initdb failed (" + describe_exit(*wstatus) + "); "
                            + log_advice(log) + "; its last lines:\n" + tail_of(log, 0));

  auto conf = read_whole(data_dir_ + "/postgresql.conf");
  if (!conf)
    return conf.error();
  base_config_ = std::move(*conf);
  // Trust for everyone on the socket and on 127.0.0.1, replication included.
  return overwrite(data_dir_ + "/pg_hba.conf",
                   "# written by syncmesh::scenarios::postgres_server\n"
                   "local   all          all                 trust\n"
                   "local   replication  all                 trust\n"
                   "host    all          all   127.0.0.1/32  trust\n"
                   "host    replication  all   127.0.0.1/32  trust\n");
}

status postgres_server::write_config() {
  std::string conf = base_config_;
  conf += "\n# written by syncmesh::scenarios::postgres_server\n";
  conf += "listen_addresses = '127.0.0.1'\n";
  conf += "port = " + std::to_string(port_) + "\n";
  conf += "unix_socket_directories = " + conf_quote(root_dir_) + "\n";
  conf += "wal_level = logical\n";
  conf += "max_replication_slots = 10\n";
  conf += "max_wal_senders = 10\n";
  conf += "fsync = off\n";
  if (!options_.settings.empty())
    conf += "# postgres_options::settings\n";
  for (const auto& [name, value] : options_.settings)
    conf += name + " = " + conf_quote(value) + "\n";
  return overwrite(data_dir_ + "/postgresql.conf", conf);
}

status postgres_server::launch(steady::time_point deadline, bool& port_taken) {
  port_taken = false;
  const std::size_t log_from = file_size_or_zero(log_path_);
  const int fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0)
    return status::io_error("cannot open " + log_path_ + " (" + errno_text(errno)
                            + "); check the free space in /tmp");
  auto pid = spawn({bin_dir_ + "/postgres", "-D", data_dir_}, run_as_.get(), data_dir_, fd);
  ::close(fd);
  if (!pid)
    return pid.error();
  postmaster_pid_ = *pid;

  // Readiness is asked of the Unix socket in our own directory: on a port
  // clash a TCP ping could be answered by whoever holds the port.
  const std::string ping = "host=" + conninfo_value(root_dir_) + " port=" + std::to_string(port_)
                           + " user=postgres dbname=postgres connect_timeout=2";
  for (;;) {
    if (auto wstatus = reap(postmaster_pid_)) {
      postmaster_pid_ = 0;
      const std::string tail = tail_of(log_path_, log_from);
      port_taken = tail.find("Address already in use") != std::string::npos
                   || tail.find("could not create any TCP/IP sockets") != std::string::npos;
      return status::io_error("PostgreSQL exited while starting on port " + std::to_string(port_)
                              + " (" + describe_exit(*wstatus) + ")"
                              + (port_taken ? "; another process holds that port" : "")
                              + "; " + log_advice(log_path_) + "; its last lines:\n" + tail);
    }
    if (PQping(ping.c_str()) == PQPING_OK)
      return status::ok();
    if (steady::now() >= deadline) {
      (void)shut_down(milliseconds{0});
      return status::io_error("PostgreSQL did not accept connections within "
                              + seconds_text(options_.start_timeout)
                              + " and was stopped; raise postgres_options::start_timeout, or "
                              + log_advice(log_path_) + "; its last lines:\n"
                              + tail_of(log_path_, log_from));
    }
    std::this_thread::sleep_for(poll_interval);
  }
}

status postgres_server::shut_down(milliseconds fast_max) {
  if (!running())
    return status::ok();
  const pid_t pid = postmaster_pid_;
  ::kill(pid, SIGINT);  // fast shutdown, as `pg_ctl stop -m fast` sends
  if (fast_max > milliseconds::zero() && await_exit(pid, steady::now() + fast_max)) {
    postmaster_pid_ = 0;
    return status::ok();
  }
  ::kill(pid, SIGQUIT);  // immediate shutdown
  const bool immediate = await_exit(pid, steady::now() + stop_immediate_max).has_value();
  if (!immediate)
    kill_and_reap(pid, pid);
  postmaster_pid_ = 0;
  return status::io_error("PostgreSQL did not finish a fast shutdown within "
                          + seconds_text(fast_max) + " and was "
                          + (immediate ? "shut down immediately" : "killed")
                          + "; its next start recovers from the WAL; read " + log_path_
                          + " for why it was slow");
}

std::string postgres_server::log_advice(const std::string& path) const {
  // A failed start() removes the directory, log included.
  if (started_ || options_.keep_dir)
    return "read " + path;
  return "set postgres_options::keep_dir to keep " + path;
}

status postgres_server::stop() { return shut_down(stop_fast_max); }

status postgres_server::start_again() {
  if (running())
    return status::ok();
  bool port_taken = false;
  return launch(steady::now() + options_.start_timeout, port_taken);
}

status postgres_server::restart() {
  if (auto st = stop(); !st)
    return st;
  return start_again();
}

bool postgres_server::running() {
  if (postmaster_pid_ == 0)
    return false;
  if (reap(postmaster_pid_)) {
    postmaster_pid_ = 0;
    return false;
  }
  return true;
}

std::string postgres_server::conninfo(const std::string& db) const {
  return "host=127.0.0.1 port=" + std::to_string(port_) + " user=postgres dbname="
         + conninfo_value(db);
}

result<sql_result> postgres_server::sql(const std::string& statement, const std::string& db) {
  sql_result out;  // before the connection: its notice receiver writes here
  const std::string info = conninfo(db) + " connect_timeout=" + std::to_string(connect_timeout_s);
  std::unique_ptr<PGconn, decltype(&PQfinish)> conn(PQconnectdb(info.c_str()), &PQfinish);
  if (!conn)
    return status::io_error("libpq could not allocate a connection; the process is out of memory");
  const std::string where = "PostgreSQL at 127.0.0.1:" + std::to_string(port_) + " (database \""
                            + db + "\")";
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    // libpq's second line is a generic "Is the server running...?" hint.
    const std::string sentence = "cannot connect to " + where + ": "
                                 + one_line(first_line(PQerrorMessage(conn.get())));
    if (!running())
      return status::closed(sentence + "; the server is stopped — call start_again() first");
    return status::io_error(sentence + "; check that the database exists, or read " + log_path_);
  }
  PQsetNoticeReceiver(conn.get(), &collect_notice, &out.notices);

  std::unique_ptr<PGresult, decltype(&PQclear)> res(PQexec(conn.get(), statement.c_str()),
                                                    &PQclear);
  if (!res)
    return status::io_error(where + " did not answer `" + snippet(statement)
                            + "`: " + one_line(PQerrorMessage(conn.get())) + "; read " + log_path_);
  switch (PQresultStatus(res.get())) {
  case PGRES_COMMAND_OK:
  case PGRES_TUPLES_OK:
  case PGRES_EMPTY_QUERY:
    break;
  case PGRES_COPY_IN:
  case PGRES_COPY_OUT:
  case PGRES_COPY_BOTH:
    return status::invalid_argument("`" + snippet(statement)
                                    + "` copies data to or from the client, which sql() does "
                                      "not support; use INSERT, or COPY to or from a server file");
  default:
    if (PQstatus(conn.get()) != CONNECTION_OK)
      return status::io_error("lost the connection to " + where + " while running `"
                              + snippet(statement) + "`: " + postgres_error(res.get())
                              + "; check that the server is running, or read " + log_path_);
    return status::invalid_argument(where + " refused `" + snippet(statement)
                                    + "`: " + postgres_error(res.get())
                                    + "; fix the statement and run it again");
  }

  const int columns = PQnfields(res.get());
  const int rows = PQntuples(res.get());
  out.columns.reserve(static_cast<std::size_t>(columns));
  for (int c = 0; c < columns; ++c)
    out.columns.emplace_back(PQfname(res.get(), c));
  out.rows.reserve(static_cast<std::size_t>(rows));
  for (int r = 0; r < rows; ++r) {
    auto& row = out.rows.emplace_back();
    row.reserve(static_cast<std::size_t>(columns));
    for (int c = 0; c < columns; ++c) {
      if (PQgetisnull(res.get(), r, c))
        row.emplace_back(std::nullopt);
      else
        row.emplace_back(std::string(PQgetvalue(res.get(), r, c),
                                     static_cast<std::size_t>(PQgetlength(res.get(), r, c))));
    }
  }
  out.command_tag = PQcmdStatus(res.get());
  return out;
}

} // namespace syncmesh::scenarios
