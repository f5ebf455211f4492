// Diagnostic bundles pulled remotely, end to end: a real collector and a
// real agent process on loopback, requests through the `setdiag` CLI, the
// bundle built by the agent from real files and streamed over the agent's
// own link. Covers a pull, a link cut halfway (the collector killed with
// SIGKILL mid-transfer and restarted: the transfer resumes and the checksum
// matches), a pull requested while the store is offline, partner scoping,
// and the flight recorder leaving a bundle on the ticket of a critical
// condition.

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "common/files.h"
#include "tests/integration/harness.h"

namespace setdiag::testing {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;


class BundleTest : public ::testing::Test {
 protected:
  BundleTest() : d_("bundles", "[bundles]\nsweep_interval = \"1s\"\n") {}

  void SetUp() override {
    d_.StartCollector();
    logs_ = d_.dir() + "/store-logs";
    std::filesystem::create_directories(logs_);
    WriteFile(logs_ + "/server.log", "2026-11-27 10:00:00 INFO started\n2026-11-27 10:00:01 ERROR import failed\n");
    token_ = d_.CreateStoreToken("1042", "acme");
  }

  AgentSetup& AddAgent() {
    std::string extra = "[bundle]\nlog_globs = [\"" + logs_ + "/*.log\"]\nstep_timeout = \"5s\"\n"
                        "log_file_cap = \"200MiB\"\nlog_total_cap = \"200MiB\"\n";
    return d_.AddAgent("1042", token_, extra);
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
  std::string PullNoWait(const std::vector<std::string>& extra = {}, const std::string& token = "") {
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
  for (const auto& f : manifest["files"]) has_log |= f["path"].get<std::string>().ends_with("server.log");
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
  ASSERT_TRUE(WaitFor([&] { return part_size() > 8 * 1024 * 1024; }, 120s, 2ms)) << ReadFile(a.log_path);
  d_.KillCollector();
  int64_t held = part_size();
  ASSERT_GT(held, 0);
  ASSERT_LT(held, 120 * 1024 * 1024) << "the transfer finished before the cut";
  d_.StartCollector();

  ASSERT_TRUE(WaitFor([&] { return State(id) == "complete"; }, 120s, 200ms))
      << State(id) << "\n" << ReadFile(a.log_path) << d_.collector().Log();
  // It resumed from what the collector held, not from zero.
  EXPECT_NE(d_.collector().Log().find("bundle " + id + " requested, resume_offset"), std::string::npos)
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
  json ticket;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = d_.Cli({"--json", "tickets", "list", "--store", "1042"});
        if (r.exit_code != 0) return false;
        json tickets = json::parse(r.out)["tickets"];
        if (tickets.empty()) return false;
        auto show = d_.Cli({"--json", "tickets", "show", std::to_string(tickets[0]["id"].get<int64_t>())});
        if (show.exit_code != 0) return false;
        ticket = json::parse(show.out);
        for (const auto& b : ticket["bundles"]) {
          if (b["origin"] == "flight_recorder" && b["state"] == "complete") return true;
        }
        return false;
      },
      60s, 300ms))
      << ticket.dump(2) << ReadFile(a.log_path);
  json b = ticket["bundles"][0];
  EXPECT_EQ(b["episode"], "store-1042-it-tills-1");
  EXPECT_EQ(b["event_kind"], "tills.majority_stopped");
  EXPECT_EQ(b["sha256"], BuiltSha(a, b["id"]));
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

}  // namespace
}  // namespace setdiag::testing
