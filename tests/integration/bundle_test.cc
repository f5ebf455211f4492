// Diagnostic bundles pulled remotely, end to end: a real collector and a
// real agent process on loopback, requests through the `setdiag` CLI, the
// bundle built by the agent from real files and streamed over the agent's
// own link. Covers a pull, a link cut halfway (the collector killed with
// SIGKILL mid-transfer and restarted: the transfer resumes and the checksum
// matches), a pull requested while the store is offline, partner scoping,
// and the flight recorder leaving a bundle on the ticket of a critical
// condition (under an id of its store's own, which another store sending
// the same flight recorder id cannot take), and that the daemon builds in a
// child process that a stop ends at once.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/files.h"
#include "tests/integration/harness.h"

namespace setdiag::testing {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// Processes whose parent is `parent`, from /proc/*/stat.
std::vector<pid_t> ChildrenOf(pid_t parent) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename().string();
    if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(e.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    size_t close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream rest(stat.substr(close + 1));
    std::string state;
    long ppid = 0;
    if (rest >> state >> ppid && ppid == parent) out.push_back(static_cast<pid_t>(std::stol(name)));
  }
  return out;
}

// /proc/<pid>/cmdline with blanks between the arguments.
std::string Cmdline(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline");
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::replace(s.begin(), s.end(), '\0', ' ');
  return s;
}

bool ProcessGone(pid_t pid) {
  if (::kill(pid, 0) != 0) return errno == ESRCH;
  // Still there: only a zombie nobody reaps would count as gone, and that is a failure too.
  return false;
}

class BundleTest : public ::testing::Test {
 protected:
  BundleTest() : d_("bundles", "[bundles]\nsweep_interval = \"1s\"\n") {}

  void SetUp() override {
    d_.StartCollector();
    logs_ = d_.dir() + "/store-logs";
    std::filesystem::create_directories(logs_);
    WriteFile(logs_ + "/server.log",
              "2026-11-27 10:00:00 INFO started\n2026-11-27 10:00:01 ERROR import failed\n");
    token_ = d_.CreateStoreToken("1042", "acme");
  }

  // An agent whose bundles take about 6 s to build: `chronyc` and
  // `timedatectl` on its PATH never answer, so the host step waits out two
  // 3 s command timeouts (the step timeout is 30 s).
  AgentSetup& StartAgentWithSlowBuilds(const std::string& stop_grace) {
    const std::string bin = d_.dir() + "/slow-bin";
    std::filesystem::create_directories(bin);
    for (const char* name : {"chronyc", "timedatectl"}) {
      std::string path = bin + "/" + name;
      WriteFile(path, "#!/bin/sh\nexec sleep 8\n");
      ::chmod(path.c_str(), 0755);
    }
    AgentSetup& a = d_.AddAgent("1042", token_,
                                "[bundle]\nlog_globs = [\"" + logs_ +
                                    "/*.log\"]\nstep_timeout = \"30s\"\n"
                                    "stop_grace = \"" +
                                    stop_grace + "\"\n");
    const char* old_path = std::getenv("PATH");
    const std::string saved = old_path ? old_path : "/usr/bin:/bin";
    ::setenv("PATH", (bin + ":" + saved).c_str(), 1);
    d_.StartAgent(a);  // the agent inherits the PATH
    ::setenv("PATH", saved.c_str(), 1);
    return a;
  }

  AgentSetup& AddAgent() { return AddAgent("1042", token_); }
  AgentSetup& AddAgent(const std::string& store, const std::string& token) {
    std::string extra = "[bundle]\nlog_globs = [\"" + logs_ +
                        "/*.log\"]\nstep_timeout = \"5s\"\n"
                        "log_file_cap = \"200MiB\"\nlog_total_cap = \"200MiB\"\n";
    return d_.AddAgent(store, token, extra);
  }

  // `tickets show` of the store's first ticket once a flight recorder
  // bundle on it is complete; null if none within a minute.
  json TicketWithFlightRecorderBundle(const std::string& store, const AgentSetup& a) {
    json ticket;
    bool done = WaitFor(
        [&] {
          auto r = d_.Cli({"--json", "tickets", "list", "--store", store});
          if (r.exit_code != 0) return false;
          json tickets = json::parse(r.out)["tickets"];
          if (tickets.empty()) return false;
          auto show = d_.Cli(
              {"--json", "tickets", "show", std::to_string(tickets[0]["id"].get<int64_t>())});
          if (show.exit_code != 0) return false;
          ticket = json::parse(show.out);
          for (const auto& b : ticket["bundles"]) {
            if (b["origin"] == "flight_recorder" && b["state"] == "complete") return true;
          }
          return false;
        },
        60s, 300ms);
    EXPECT_TRUE(done) << "store " << store << ": " << ticket.dump(2) << ReadFile(a.log_path);
    return done ? ticket : json();
  }

  json Bundle(const std::string& id, const std::string& token = "") {
    auto r = d_.Cli({"--json", "bundle", "show", id}, token);
    if (r.exit_code != 0) return json();
    return json::parse(r.out)["bundle"];
  }
  std::string State(const std::string& id) {
    json b = Bundle(id);
    return b.is_object() ? b.value("state", "") : "";
  }
  std::string PullNoWait(const std::vector<std::string>& extra = {},
                         const std::string& token = "") {
    std::vector<std::string> args{"bundle", "pull", "--store", "1042", "--no-wait"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = d_.Cli(args, token);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::string id = r.out;
    while (!id.empty() && id.back() == '\n') id.pop_back();
    return id;
  }
  // The sha256 the agent logged when it built `id`.
  static std::string BuiltSha(const AgentSetup& a, const std::string& id) {
    std::smatch m;
    std::string log = ReadFile(a.log_path);
    std::regex re("bundle " + id + " built in [0-9]+ ms: [0-9]+ bytes, sha256 ([0-9a-f]{64})");
    return std::regex_search(log, m, re) ? m[1].str() : "";
  }

  Deployment d_;
  std::string logs_;
  std::string token_;
};

TEST_F(BundleTest, PullThroughTheCollectorMatchesWhatTheAgentBuilt) {
  AgentSetup& a = AddAgent();
  d_.StartAgent(a);
  std::string out = d_.dir() + "/pulled.tar.gz";
  auto r = d_.Cli({"bundle", "pull", "--store", "1042", "-o", out, "--timeout", "2m"});
  ASSERT_EQ(r.exit_code, 0) << r.err << ReadFile(a.log_path);
  EXPECT_NE(r.err.find("verified"), std::string::npos) << r.err;

  auto list = d_.Cli({"--json", "bundle", "list", "--store", "1042"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  json bundles = json::parse(list.out)["bundles"];
  ASSERT_EQ(bundles.size(), 1u);
  std::string id = bundles[0]["id"];
  EXPECT_EQ(bundles[0]["state"], "complete");
  std::string sha = Sha256Hex(ReadFile(out));
  EXPECT_EQ(bundles[0]["sha256"], sha);
  EXPECT_EQ(BuiltSha(a, id), sha);

  // The manifest, from the file and from the collector's copy.
  auto m = d_.Cli({"--json", "bundle", "manifest", out});
  ASSERT_EQ(m.exit_code, 0) << m.err;
  json manifest = json::parse(m.out);
  EXPECT_EQ(manifest["store_id"], "1042");
  bool has_log = false;
  for (const auto& f : manifest["files"])
    has_log |= f["path"].get<std::string>().ends_with("server.log");
  EXPECT_TRUE(has_log) << m.out;
  auto m2 = d_.Cli({"--json", "bundle", "manifest", id});
  ASSERT_EQ(m2.exit_code, 0) << m2.err;
  EXPECT_EQ(json::parse(m2.out)["root"], manifest["root"]);

  // Acknowledged: the agent let its copy go.
  EXPECT_TRUE(WaitFor([&] { return std::filesystem::is_empty(a.state_dir + "/bundles"); }, 10s));
}

TEST_F(BundleTest, ALinkCutHalfwayResumesAndTheChecksumMatches) {
  WriteIncompressibleLog(logs_ + "/big.log", 120u * 1024 * 1024);
  AgentSetup& a = AddAgent();
  d_.StartAgent(a);
  std::string id = PullNoWait();
  ASSERT_FALSE(id.empty());
  std::string part = d_.dir() + "/collector/bundles/" + id + ".part";
  auto part_size = [&]() -> int64_t {
    struct stat st {};
    return ::stat(part.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : -1;
  };
  // Halfway (well before the end): cut the link the hard way.
  ASSERT_TRUE(WaitFor([&] { return part_size() > 8 * 1024 * 1024; }, 120s, 2ms))
      << ReadFile(a.log_path);
  d_.KillCollector();
  int64_t held = part_size();
  ASSERT_GT(held, 0);
  ASSERT_LT(held, 120 * 1024 * 1024) << "the transfer finished before the cut";
  d_.StartCollector();

  ASSERT_TRUE(WaitFor([&] { return State(id) == "complete"; }, 120s, 200ms))
      << State(id) << "\n"
      << ReadFile(a.log_path) << d_.collector().Log();
  // It resumed from what the collector held, not from zero.
  EXPECT_NE(d_.collector().Log().find("bundle " + id + " requested, resume_offset"),
            std::string::npos)
      << d_.collector().Log();
  EXPECT_NE(ReadFile(a.log_path).find("from resume_offset"), std::string::npos);

  std::string out = d_.dir() + "/resumed.tar.gz";
  auto get = d_.Cli({"bundle", "get", id, "-o", out});
  ASSERT_EQ(get.exit_code, 0) << get.err;
  std::string sha = Sha256Hex(ReadFile(out));
  EXPECT_EQ(sha, BuiltSha(a, id));
  EXPECT_EQ(Bundle(id)["sha256"], sha);
}

TEST_F(BundleTest, APullRequestedWhileTheStoreIsOfflineCompletesAfterReconnect) {
  AgentSetup& a = AddAgent();
  std::string id = PullNoWait({"--window", "2h"});
  ASSERT_FALSE(id.empty());
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(State(id), "requested");

  d_.StartAgent(a);
  ASSERT_TRUE(WaitFor([&] { return State(id) == "complete"; }, 60s, 200ms)) << ReadFile(a.log_path);
  std::string out = d_.dir() + "/late.tar.gz";
  auto get = d_.Cli({"bundle", "get", id, "-o", out});
  ASSERT_EQ(get.exit_code, 0) << get.err;
  EXPECT_EQ(Sha256Hex(ReadFile(out)), BuiltSha(a, id));
  EXPECT_EQ(Bundle(id)["window_ms"], 2 * 3'600'000);
}

TEST_F(BundleTest, APartnerCannotPullAnotherPartnersStore) {
  std::string acme = d_.CreateUser("acme-engineer", "partner", "acme");
  d_.CreateStoreToken("2001", "beta");  // partner beta and its own store
  std::string beta = d_.CreateUser("beta-engineer", "partner", "beta");
  AgentSetup& a = AddAgent();
  d_.StartAgent(a);

  auto denied = d_.Cli({"bundle", "pull", "--store", "1042", "--no-wait"}, beta);
  EXPECT_EQ(denied.exit_code, 4) << denied.err;
  EXPECT_NE(denied.err.find("no store 1042 visible to you"), std::string::npos) << denied.err;

  std::string out = d_.dir() + "/acme.tar.gz";
  auto own = d_.Cli({"bundle", "pull", "--store", "1042", "-o", out, "--timeout", "2m"}, acme);
  ASSERT_EQ(own.exit_code, 0) << own.err;
  auto list = d_.Cli({"--json", "bundle", "list"}, acme);
  ASSERT_EQ(list.exit_code, 0);
  json bundles = json::parse(list.out)["bundles"];
  ASSERT_EQ(bundles.size(), 1u);
  std::string id = bundles[0]["id"];

  EXPECT_EQ(d_.Cli({"bundle", "list", "--store", "1042"}, beta).exit_code, 4);
  EXPECT_EQ(json::parse(d_.Cli({"--json", "bundle", "list"}, beta).out)["bundles"].size(), 0u);
  EXPECT_EQ(d_.Cli({"bundle", "show", id}, beta).exit_code, 4);
  auto get = d_.Cli({"bundle", "get", id, "-o", d_.dir() + "/stolen.tar.gz"}, beta);
  EXPECT_EQ(get.exit_code, 4);
  EXPECT_FALSE(std::filesystem::exists(d_.dir() + "/stolen.tar.gz"));
  EXPECT_EQ(d_.Cli({"bundle", "manifest", id}, beta).exit_code, 4);
}

TEST_F(BundleTest, ACriticalConditionLeavesAFlightRecorderBundleOnItsTicket) {
  AgentSetup& a = AddAgent();
  d_.StartAgent(a);
  d_.Emit(a, "tills.majority_stopped", "critical", 1,
          R"({"state":"raised","episode":"store-1042-it-tills-1","expected":10,"stopped":7})");
  json ticket = TicketWithFlightRecorderBundle("1042", a);
  ASSERT_TRUE(ticket.is_object());
  json b = ticket["bundles"][0];
  EXPECT_EQ(b["episode"], "store-1042-it-tills-1");
  EXPECT_EQ(b["event_kind"], "tills.majority_stopped");
  // The agent's id is "fr-<episode>-<state>"; the collector lists it under
  // an id namespaced by the store.
  EXPECT_EQ(b["id"], "fr-1042-store-1042-it-tills-1-raised");
  EXPECT_EQ(b["sha256"], BuiltSha(a, "fr-store-1042-it-tills-1-raised"));
  bool on_timeline = false;
  for (const auto& e : ticket["timeline"]) on_timeline |= e["type"] == "bundle";
  EXPECT_TRUE(on_timeline) << ticket["timeline"].dump(2);

  // The same event sent again (a replay) captures nothing new.
  d_.Emit(a, "tills.majority_stopped", "critical", 1,
          R"({"state":"raised","episode":"store-1042-it-tills-1","expected":10,"stopped":7})");
  std::this_thread::sleep_for(2s);
  auto list = d_.Cli({"--json", "bundle", "list", "--store", "1042"});
  EXPECT_EQ(json::parse(list.out)["bundles"].size(), 1u);
}

// Issue 13: the flight recorder's id comes from the episode, which the
// agent chooses, so another store can send first the very id this store's
// agent will use. Each store's bundle still lands on its own ticket.
TEST_F(BundleTest, AnotherStoreSendingTheSameFlightRecorderIdFirstDoesNotTakeThisStoresBundle) {
  const std::string payload =
      R"({"state":"raised","episode":"store-1042-it-tills-1","expected":10,"stopped":7})";
  const std::string agents_id = "fr-store-1042-it-tills-1-raised";
  AgentSetup& other = AddAgent("2001", d_.CreateStoreToken("2001", "acme"));
  d_.StartAgent(other);
  d_.Emit(other, "tills.majority_stopped", "critical", 1, payload);
  json theirs = TicketWithFlightRecorderBundle("2001", other);
  ASSERT_TRUE(theirs.is_object());

  AgentSetup& a = AddAgent();
  d_.StartAgent(a);
  d_.Emit(a, "tills.majority_stopped", "critical", 1, payload);
  json ours = TicketWithFlightRecorderBundle("1042", a);
  ASSERT_TRUE(ours.is_object());
  EXPECT_NE(ours["ticket"]["id"], theirs["ticket"]["id"]);
  json mine = ours["bundles"][0], their = theirs["bundles"][0];
  EXPECT_EQ(mine["ticket_id"], ours["ticket"]["id"]);
  EXPECT_EQ(their["ticket_id"], theirs["ticket"]["id"]);
  EXPECT_EQ(mine["id"], "fr-1042-store-1042-it-tills-1-raised");
  EXPECT_EQ(mine["store_id"], "1042");
  EXPECT_EQ(mine["sha256"], BuiltSha(a, agents_id));
  EXPECT_EQ(their["id"], "fr-2001-store-1042-it-tills-1-raised");
  EXPECT_EQ(their["store_id"], "2001");
  EXPECT_EQ(their["sha256"], BuiltSha(other, agents_id));
  EXPECT_EQ(ReadFile(a.log_path).find("not wanted by the collector"), std::string::npos)
      << ReadFile(a.log_path);
  // Each downloads as what its own agent built.
  for (const auto& [id, agent] : {std::pair<std::string, const AgentSetup*>{mine["id"], &a},
                                  std::pair<std::string, const AgentSetup*>{their["id"], &other}}) {
    const std::string out = d_.dir() + "/" + id + ".tar.gz";
    auto get = d_.Cli({"bundle", "get", id, "-o", out});
    ASSERT_EQ(get.exit_code, 0) << get.err;
    EXPECT_EQ(Sha256Hex(ReadFile(out)), BuiltSha(*agent, agents_id));
  }
  auto list = d_.Cli({"--json", "bundle", "list", "--store", "1042"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  json listed = json::parse(list.out)["bundles"];
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_NE(listed[0]["id"].get<std::string>().find("1042"), std::string::npos);
}

// The daemon builds in a child process (its own binary's `bundle` command),
// and stopping the daemon mid-build ends the child instead of waiting for it.
// The build is made slow on purpose (StartAgentWithSlowBuilds).
TEST_F(BundleTest, TheDaemonBuildsInAChildProcessThatAStopEndsAtOnce) {
  AgentSetup& a = StartAgentWithSlowBuilds("0s");
  const pid_t agent = a.process->pid();

  std::string id = PullNoWait();
  ASSERT_FALSE(id.empty());
  pid_t child = 0;
  std::string cmdline;
  ASSERT_TRUE(WaitFor(
      [&] {
        for (pid_t c : ChildrenOf(agent)) {
          std::string cl = Cmdline(c);
          if (cl.find(" bundle ") != std::string::npos) {
            child = c;
            cmdline = cl;
            return true;
          }
        }
        return false;
      },
      30s, 10ms))
      << a.process->Log();
  EXPECT_NE(cmdline.find("--config " + a.config_path + " bundle -o " + a.state_dir + "/bundles/" +
                         id + ".tar.gz"),
            std::string::npos)
      << cmdline;
  EXPECT_NE(cmdline.find("--manifest-out"), std::string::npos) << cmdline;
  // Executed as /proc/self/fd/3, the child names itself first thing in main:
  // until then its comm is "3".
  const std::string comm = "/proc/" + std::to_string(child) + "/comm";
  EXPECT_TRUE(WaitFor([&] { return ReadFile(comm) == "setdiag-agent\n"; }, 5s, 5ms))
      << ReadFile(comm);
  EXPECT_TRUE(WaitFor(
      [&] {
        return a.process->Log().find("bundle " + id + ": building in child pid " +
                                     std::to_string(child)) != std::string::npos;
      },
      5s))
      << a.process->Log();

  // Well inside the ~6 s build: the child is still at it.
  std::this_thread::sleep_for(500ms);
  ASSERT_FALSE(ProcessGone(child)) << a.process->Log();
  ASSERT_NE(Cmdline(child).find(" bundle "), std::string::npos);
  const auto stop_at = std::chrono::steady_clock::now();
  a.process->Signal(SIGTERM);
  ASSERT_TRUE(WaitFor([&] { return !a.process->Running(); }, 15s, 20ms)) << a.process->Log();
  const auto took = std::chrono::steady_clock::now() - stop_at;
  // Waiting for the build would take about 5 s more.
  EXPECT_LT(took, 3500ms) << a.process->Log();
  // No child left behind (reaped by the agent, not orphaned and still running).
  EXPECT_TRUE(ProcessGone(child)) << Cmdline(child);
  EXPECT_NE(a.process->Log().find("bundle " + id + ": stopping child pid " + std::to_string(child)),
            std::string::npos)
      << a.process->Log();
  // Nothing half-built is left in the bundle directory.
  std::vector<std::string> left;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(a.state_dir + "/bundles", ec)) {
    left.push_back(e.path().filename().string());
  }
  EXPECT_TRUE(left.empty()) << ::testing::PrintToString(left);
}

// With bundle.stop_grace (10 s by default) a build that is nearly done when
// the daemon stops is allowed to finish, so a flight-recorder capture is not
// lost to a restart; the bundle stays in the directory the uplink offers
// from at the next connection.
TEST_F(BundleTest, AStoppingDaemonLetsABuildFinishWithinTheGrace) {
  AgentSetup& a = StartAgentWithSlowBuilds("30s");
  const pid_t agent = a.process->pid();

  std::string id = PullNoWait();
  ASSERT_FALSE(id.empty());
  pid_t child = 0;
  ASSERT_TRUE(WaitFor(
      [&] {
        for (pid_t c : ChildrenOf(agent)) {
          if (Cmdline(c).find(" bundle ") != std::string::npos) {
            child = c;
            return true;
          }
        }
        return false;
      },
      30s, 10ms))
      << a.process->Log();
  std::this_thread::sleep_for(500ms);
  ASSERT_FALSE(ProcessGone(child)) << a.process->Log();
  const auto stop_at = std::chrono::steady_clock::now();
  a.process->Signal(SIGTERM);
  ASSERT_TRUE(WaitFor([&] { return !a.process->Running(); }, 40s, 20ms)) << a.process->Log();
  const auto took = std::chrono::steady_clock::now() - stop_at;
  // It waited for the build (about 5 s more), not for the whole grace.
  EXPECT_GT(took, 3s) << a.process->Log();
  EXPECT_LT(took, 25s) << a.process->Log();
  EXPECT_TRUE(ProcessGone(child));
  EXPECT_NE(a.process->Log().find("may finish within 30000 ms"), std::string::npos)
      << a.process->Log();
  EXPECT_EQ(a.process->Log().find("stopping child pid"), std::string::npos) << a.process->Log();
  EXPECT_TRUE(std::filesystem::exists(a.state_dir + "/bundles/" + id + ".tar.gz"))
      << a.process->Log();
}

}  // namespace
}  // namespace setdiag::testing
