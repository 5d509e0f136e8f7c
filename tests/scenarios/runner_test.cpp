// The scenario runner as users run it: `syncmesh scenario run` on scripts
// that fail in each way a script can, checking what it reports and that it
// leaves no process or directory behind.

#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <boost/test/unit_test.hpp>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

extern char** environ;

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct outcome {
  int exit_code = -1;
  std::string output;
};

std::vector<std::string> scenario_dirs() {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator("/tmp"))
    if (e.path().filename().string().rfind("syncmesh-scenario-", 0) == 0)
      out.push_back(e.path().string());
  return out;
}

// Processes whose command line mentions `needle`.
std::vector<int> processes_mentioning(const std::string& needle) {
  std::vector<int> out;
  for (const auto& e : fs::directory_iterator("/proc")) {
    auto name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos)
      continue;
    std::ifstream in(e.path() / "cmdline");
    std::string cmd((std::istreambuf_iterator<char>(in)), {});
    if (cmd.find(needle) != std::string::npos)
      out.push_back(std::stoi(name));
  }
  return out;
}

// Runs `syncmesh scenario run SCRIPT ARGS...`; when `interrupt_on` appears
// in its output, sends it SIGINT. Waits at most `deadline_ms`.
outcome run_scenario(const std::string& script, std::vector<std::string> extra = {},
                     const std::string& interrupt_on = "", int deadline_ms = 120'000) {
  int pipefd[2];
  BOOST_REQUIRE(::pipe(pipefd) == 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipefd[1], 1);
  posix_spawn_file_actions_adddup2(&actions, pipefd[1], 2);
  posix_spawn_file_actions_addclose(&actions, pipefd[0]);
  std::vector<std::string> args = {SYNCMESH_BINARY, "scenario", "run",
                                   std::string(SYNCMESH_TEST_SCRIPTS) + "/" + script};
  args.insert(args.end(), extra.begin(), extra.end());
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  BOOST_REQUIRE(::posix_spawn(&pid, SYNCMESH_BINARY, &actions, nullptr, argv.data(), environ) == 0);
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipefd[1]);
  outcome out;
  bool signalled = false;
  auto start = std::chrono::steady_clock::now();
  char buf[4096];
  while (true) {
    pollfd pfd{pipefd[0], POLLIN, 0};
    auto left = deadline_ms - std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::steady_clock::now() - start)
                                .count();
    if (left <= 0) {
      ::kill(pid, SIGKILL);
      BOOST_FAIL("the scenario did not finish within " << deadline_ms << " ms:\n" << out.output);
    }
    if (::poll(&pfd, 1, static_cast<int>(left)) <= 0)
      continue;
    auto n = ::read(pipefd[0], buf, sizeof buf);
    if (n <= 0)
      break;
    out.output.append(buf, static_cast<std::size_t>(n));
    if (!signalled && !interrupt_on.empty() && out.output.find(interrupt_on) != std::string::npos) {
      ::kill(pid, SIGINT);
      signalled = true;
    }
  }
  ::close(pipefd[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  out.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return out;
}

struct temp_report {
  std::string path = fs::temp_directory_path() / ("runner-report-" + std::to_string(::getpid()) + ".json");
  ~temp_report() { std::remove(path.c_str()); }
  json read() const {
    std::ifstream in(path);
    return json::parse(in, nullptr, false);
  }
};

} // namespace

BOOST_AUTO_TEST_SUITE(scenario_runner)

BOOST_AUTO_TEST_CASE(a_check_that_cannot_hold_fails_with_a_clear_report) {
  auto dirs_before = scenario_dirs();
  temp_report report;
  auto out = run_scenario("broken_convergence.lua", {"--report", report.path, "--seed", "5"});
  BOOST_TEST(out.exit_code == 1, out.output);
  BOOST_TEST(out.output.find("FAIL broken_convergence (seed 5)") != std::string::npos, out.output);
  BOOST_TEST(out.output.find("failed check: shop.live converged with its remote") != std::string::npos,
             out.output);
  BOOST_TEST(out.output.find("last events") != std::string::npos, out.output);
  BOOST_TEST(out.output.find("node.log") != std::string::npos, out.output);
  auto r = report.read();
  BOOST_REQUIRE(r.is_object());
  BOOST_TEST(r["ok"] == false);
  BOOST_TEST(r["seed"] == 5);
  BOOST_TEST(r["failed_check"].get<std::string>().find("converged") != std::string::npos);
  BOOST_TEST(r["steps"][0]["ok"] == false);
  BOOST_TEST(scenario_dirs() == dirs_before, boost::test_tools::per_element());
  BOOST_TEST(processes_mentioning("syncmesh-scenario-").empty());
}

BOOST_AUTO_TEST_CASE(a_write_applied_twice_is_caught_by_its_check) {
  temp_report report;
  auto out = run_scenario("applied_twice.lua", {"--report", report.path});
  BOOST_TEST(out.exit_code == 1, out.output);
  BOOST_TEST(out.output.find("failed check: no write applied twice at careless:inventory")
               != std::string::npos,
             out.output);
  BOOST_TEST(report.read()["failed_check"].get<std::string>().find("mutations applied twice")
               != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_lua_syntax_error_names_file_and_line) {
  auto out = run_scenario("syntax_error.lua");
  BOOST_TEST(out.exit_code == 2);
  BOOST_TEST(out.output.find("syntax_error.lua:2:") != std::string::npos, out.output);
}

BOOST_AUTO_TEST_CASE(a_runtime_error_names_file_and_line_and_cleans_up) {
  auto dirs_before = scenario_dirs();
  auto out = run_scenario("runtime_error.lua");
  BOOST_TEST(out.exit_code == 1);
  BOOST_TEST(out.output.find("runtime_error.lua:5:") != std::string::npos, out.output);
  BOOST_TEST(out.output.find("attempt to index") != std::string::npos, out.output);
  BOOST_TEST(scenario_dirs() == dirs_before, boost::test_tools::per_element());
  BOOST_TEST(processes_mentioning("syncmesh-scenario-").empty());
}

BOOST_AUTO_TEST_CASE(calling_the_api_wrongly_gives_a_sentence_not_a_crash) {
  auto out = run_scenario("unknown_node_call.lua");
  BOOST_TEST(out.exit_code == 1);
  BOOST_TEST(out.output.find("unknown_node_call.lua:3:") != std::string::npos, out.output);
  BOOST_TEST(out.output.find("no view is named 'no.such_view'") != std::string::npos, out.output);
  auto bad = run_scenario("bad_config.lua");
  BOOST_TEST(bad.exit_code == 1);
  BOOST_TEST(bad.output.find("bad_config.lua:2:") != std::string::npos, bad.output);
  BOOST_TEST(bad.output.find("unknown key") != std::string::npos, bad.output);
  BOOST_TEST(bad.output.find("retyr") != std::string::npos, bad.output);
}

BOOST_AUTO_TEST_CASE(an_interrupted_run_leaves_no_process_or_directory_behind) {
  auto dirs_before = scenario_dirs();
  temp_report report;
  auto out = run_scenario("wait_forever.lua", {"--report", report.path}, "ready for SIGINT", 60'000);
  BOOST_TEST(out.exit_code == 130, out.output);
  BOOST_TEST(out.output.find("interrupted by SIGINT") != std::string::npos, out.output);
  BOOST_TEST(report.read()["ok"] == false);
  BOOST_TEST(scenario_dirs() == dirs_before, boost::test_tools::per_element());
  BOOST_TEST(processes_mentioning("syncmesh-scenario-").empty());
}

BOOST_AUTO_TEST_CASE(the_same_seed_replays_the_same_random_choices) {
  auto draws = [](const outcome& o) {
    auto at = o.output.find("draws ");
    return at == std::string::npos ? std::string() : o.output.substr(at, o.output.find('\n', at) - at);
  };
  auto a = run_scenario("draws.lua", {"--seed", "77"});
  auto b = run_scenario("draws.lua", {"--seed", "77"});
  auto c = run_scenario("draws.lua", {"--seed", "78"});
  BOOST_TEST(a.exit_code == 0, a.output);
  BOOST_TEST(!draws(a).empty());
  BOOST_TEST(draws(a) == draws(b));
  BOOST_TEST(draws(a) != draws(c));
}

BOOST_AUTO_TEST_SUITE_END()
