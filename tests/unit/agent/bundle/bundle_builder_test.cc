// The bundle builder end to end on real files: a hanging step is cut by its
// timeout and the bundle still arrives (acceptance 3); logs come newest
// first, capped, redacted, with manifest hashes that match the archive; a
// dead SET database fails its step fast while the others succeed.

#include <fcntl.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "agent/bundle/bundle.h"
#include "agent/store/history.h"
#include "agent/store/outbox.h"
#include "common/clock.h"
#include "common/files.h"
#include "common/strings.h"
#include "tar_reader.h"
#include "temp_dir.h"

namespace setdiag::agent::bundle {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

constexpr int64_t kNow = 1'795'000'000'000;  // 2026-11-18
constexpr int64_t kHour = 3'600'000;

struct Entry {
  std::string name;  // without the bundle's root directory
  std::string data;
};

std::vector<Entry> ReadTarGz(const std::string& path, std::string* root = nullptr) {
  std::vector<Entry> out;
  for (auto& e : setdiag::testing::ReadTarGz(path)) {
    auto slash = e.name.find('/');
    if (root) *root = e.name.substr(0, slash);
    out.push_back({e.name.substr(slash + 1), std::move(e.data)});
  }
  return out;
}

std::map<std::string, std::string> ByName(const std::vector<Entry>& entries) {
  std::map<std::string, std::string> m;
  for (const auto& e : entries) m[e.name] = e.data;
  return m;
}

nlohmann::json StepOf(const nlohmann::json& manifest, const std::string& name) {
  for (const auto& s : manifest["steps"]) {
    if (s["name"] == name) return s;
  }
  return nullptr;
}

void SetMtime(const std::string& path, int64_t ms) {
  timespec times[2];
  times[0].tv_sec = times[1].tv_sec = static_cast<time_t>(ms / 1000);
  times[0].tv_nsec = times[1].tv_nsec =
      static_cast<long>((ms % 1000) * 1'000'000);  // NOLINT(runtime/int)
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
}

// Every manifest entry matches the archive: size and SHA-256; the manifest
// is the last entry; the bundle's own hash and size are right.
void ExpectConsistent(const BundleResult& r) {
  std::vector<Entry> entries = ReadTarGz(r.path);
  ASSERT_FALSE(entries.empty());
  EXPECT_EQ(entries.back().name, "manifest.json");
  auto manifest = nlohmann::json::parse(entries.back().data);
  EXPECT_EQ(manifest, r.manifest);
  auto files = ByName(entries);
  EXPECT_EQ(files.size(), manifest["files"].size() + 1);
  for (const auto& f : manifest["files"]) {
    std::string path = f["path"];
    ASSERT_TRUE(files.count(path)) << path;
    EXPECT_EQ(f["size"].get<uint64_t>(), files[path].size()) << path;
    EXPECT_EQ(f["sha256"], Sha256Hex(files[path])) << path;
  }
  std::string whole = testutil::ReadBytes(r.path);
  EXPECT_EQ(r.size, whole.size());
  EXPECT_EQ(r.sha256, Sha256Hex(whole));
}

// No .part file and no scratch directory left beside the output.
void ExpectNoLeftovers(const std::string& dir) {
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    std::string name = e.path().filename().string();
    EXPECT_THAT(name, Not(HasSubstr(".part"))) << name;
    EXPECT_THAT(name, Not(HasSubstr(".tmp-"))) << name;
  }
}

class BundleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::mkdir(state_dir_.c_str(), 0750);
    ::mkdir(out_dir_.c_str(), 0750);
    cfg_.store_id = "1042";
    cfg_.agent_id = "store-1042-test";
    cfg_.state_dir = state_dir_;
    cfg_.token = "sdst_00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    cfg_.collector_address = "127.0.0.1:7443";
    cfg_.tills.server.deployed_marker = dir_.File("deployments/Set10.ear.deployed");
    cfg_.tills.server.failed_marker = dir_.File("deployments/Set10.ear.failed");
    cfg_.bundle.config_files = {};
    cfg_.bundle.log_globs = {};
  }

  // Only what a test asks for, so that it does not depend on this machine.
  BundleOptions Nothing() {
    BundleOptions o = BundleOptions::FromConfig(cfg_);
    o.include_config = o.include_logs = o.include_history = o.include_set = o.include_host =
        o.include_agent = false;
    return o;
  }

  absl::StatusOr<BundleResult> Build(const BundleOptions& o) {
    return BuildBundle(cfg_, o, out_, clock_);
  }

  testutil::TempDir dir_;
  std::string state_dir_ = dir_.File("state");
  std::string out_dir_ = dir_.File("out");
  std::string out_ = out_dir_ + "/bundle.tar.gz";
  AgentConfig cfg_;
  FakeClock clock_{kNow};
};

// A latch the test releases at the end, so the abandoned thread can finish.
struct Latch {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  bool finished = false;
  bool late_add_taken = true;
};

TEST_F(BundleTest, HangingStepIsCutByItsTimeoutAndTheBundleStillArrives) {
  auto latch = std::make_shared<Latch>();
  BundleOptions o = Nothing();
  o.extra_steps.push_back(MakeStep("quick", 0, [](StepContext& ctx) {
    ctx.AddText("quick/hello.txt", "hello\n", "test");
    return absl::OkStatus();
  }));
  o.extra_steps.push_back(MakeStep("wedged", 200, [latch](StepContext& ctx) {
    ctx.AddText("wedged/before.txt", "handed over before hanging\n", "test");
    std::unique_lock lock(latch->mu);
    latch->cv.wait(lock, [&] { return latch->open; });
    // A late hand-over is refused, and harmless.
    latch->late_add_taken = ctx.AddText("wedged/late.txt", "too late\n", "test");
    latch->finished = true;
    latch->cv.notify_all();
    return absl::OkStatus();
  }));
  auto started = std::chrono::steady_clock::now();
  auto r = Build(o);
  auto took = std::chrono::steady_clock::now() - started;
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_LT(took, std::chrono::milliseconds(200 + 1500));
  EXPECT_GE(took, std::chrono::milliseconds(190));

  EXPECT_EQ(r->steps_timed_out, 1);
  EXPECT_EQ(r->steps_ok, 1);
  auto wedged = StepOf(r->manifest, "wedged");
  EXPECT_EQ(wedged["status"], "timed_out");
  EXPECT_EQ(wedged["timeout_ms"], 200);
  EXPECT_THAT(wedged["error"].get<std::string>(), HasSubstr("did not finish within 200 ms"));
  EXPECT_EQ(StepOf(r->manifest, "quick")["status"], "ok");
  auto files = ByName(ReadTarGz(out_));
  EXPECT_EQ(files["quick/hello.txt"], "hello\n");
  EXPECT_EQ(files["wedged/before.txt"], "handed over before hanging\n");
  EXPECT_FALSE(files.count("wedged/late.txt"));
  ExpectConsistent(*r);
  ExpectNoLeftovers(out_dir_);

  // Let the abandoned thread finish: its late output goes nowhere.
  std::unique_lock lock(latch->mu);
  latch->open = true;
  latch->cv.notify_all();
  ASSERT_TRUE(latch->cv.wait_for(lock, std::chrono::seconds(10), [&] { return latch->finished; }));
  EXPECT_FALSE(latch->late_add_taken);
}

TEST_F(BundleTest, FailingAndThrowingStepsAreReportedNotFatal) {
  BundleOptions o = Nothing();
  o.extra_steps.push_back(MakeStep("broken", 0, [](StepContext& ctx) {
    ctx.Skip("/var/lib/jboss/x", "permission denied");
    return absl::UnavailableError(
        "the thing is down; password=LeakMe1 must not reach the manifest");
  }));
  o.extra_steps.push_back(MakeStep(
      "throws", 0, [](StepContext&) -> absl::Status { throw std::runtime_error("boom"); }));
  BundleStep skipped = MakeStep("unconfigured", 0, nullptr);
  skipped.skip_reason = "not configured";
  o.extra_steps.push_back(skipped);
  auto r = Build(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->steps_failed, 2);
  EXPECT_EQ(r->steps_skipped, 1);
  EXPECT_EQ(StepOf(r->manifest, "broken")["status"], "failed");
  EXPECT_THAT(StepOf(r->manifest, "throws")["error"].get<std::string>(), HasSubstr("boom"));
  EXPECT_EQ(StepOf(r->manifest, "unconfigured")["error"], "not configured");
  EXPECT_THAT(r->manifest.dump(), Not(HasSubstr("LeakMe1")));
  ASSERT_EQ(r->manifest["not_collected"].size(), 1u);
  EXPECT_EQ(r->manifest["not_collected"][0]["reason"], "permission denied");
  ExpectConsistent(*r);
}

TEST_F(BundleTest, BadStepNamesAreRefused) {
  BundleOptions o = Nothing();
  o.extra_steps.push_back(MakeStep("twice", 0, [](StepContext&) { return absl::OkStatus(); }));
  o.extra_steps.push_back(MakeStep("twice", 0, [](StepContext&) { return absl::OkStatus(); }));
  EXPECT_EQ(Build(o).status().code(), absl::StatusCode::kInvalidArgument);
  o.extra_steps.pop_back();
  o.extra_steps.push_back(MakeStep("../escape", 0, [](StepContext&) { return absl::OkStatus(); }));
  EXPECT_EQ(Build(o).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(out_));
  ExpectNoLeftovers(out_dir_);
}

TEST_F(BundleTest, LogsNewestFirstCappedRedactedAndHashed) {
  std::string logs = dir_.File("log");
  ::mkdir(logs.c_str(), 0750);
  // server.log: 300 KiB, newest; only its last 64 KiB, from a line start.
  std::string big;
  for (int i = 0; big.size() < 300 * 1024; ++i) {
    big += Cat("2026-11-18 09:59:", i % 60,
               ",000 INFO [ru.crystals.setretailx] savePingMessage cashNum=", i % 12, " line ", i,
               "\n");
  }
  testutil::WriteBytes(logs + "/server.log", big);
  SetMtime(logs + "/server.log", kNow - kHour);
  // erp.log: older, with secrets.
  testutil::WriteBytes(
      logs + "/erp.log",
      "2026-11-18 08:00:00 INFO connect jdbc:postgresql://db/set?user=postgres&password=ErpDbPw1\n"
      "2026-11-18 08:00:01 INFO paid with 4276 3800 1234 5679\n");
  SetMtime(logs + "/erp.log", kNow - 2 * kHour);
  // Outside the window: left out.
  testutil::WriteBytes(logs + "/old.log", "old\n");
  SetMtime(logs + "/old.log", kNow - 30 * kHour);
  // Rotated and compressed: cannot be redacted, so not collected.
  testutil::WriteBytes(logs + "/server.log.1.gz", std::string("\x1f\x8b\x08\x00rest", 8));
  SetMtime(logs + "/server.log.1.gz", kNow - 3 * kHour);

  BundleOptions o = Nothing();
  o.include_logs = true;
  o.config.log_globs = {logs + "/*.log", logs + "/*.gz", logs + "/none-*.log"};
  o.config.log_file_cap_bytes = 64 * 1024;
  auto r = Build(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(StepOf(r->manifest, "logs")["status"], "ok");
  std::vector<Entry> entries = ReadTarGz(out_);
  std::vector<std::string> names;
  for (const auto& e : entries) names.push_back(e.name);
  EXPECT_THAT(names, ElementsAre("logs" + logs + "/server.log", "logs" + logs + "/erp.log",
                                 "manifest.json"));

  const std::string& tail = entries[0].data;
  EXPECT_LE(tail.size(), 64u * 1024);
  EXPECT_GT(tail.size(), 60u * 1024);
  ASSERT_GE(big.size(), tail.size());
  EXPECT_EQ(big.substr(big.size() - tail.size()), tail);  // a suffix of the file...
  EXPECT_EQ(big[big.size() - tail.size() - 1], '\n');     // ...starting at a line
  auto server = r->manifest["files"][0];
  EXPECT_EQ(server["method"], "redacted_tail");
  EXPECT_EQ(server["details"]["truncated"], true);
  EXPECT_EQ(server["details"]["source_size"], big.size());

  EXPECT_THAT(entries[1].data, Not(HasSubstr("ErpDbPw1")));
  EXPECT_THAT(entries[1].data, Not(HasSubstr("4276 3800 1234 5679")));
  EXPECT_THAT(entries[1].data, HasSubstr("password=[REDACTED]"));
  EXPECT_THAT(entries[1].data, HasSubstr("**** **** **** 5679"));
  EXPECT_EQ(r->manifest["redactions"]["total"], 2);
  EXPECT_EQ(r->manifest["redactions"]["by_rule"]["key_value"], 1);
  EXPECT_EQ(r->manifest["redactions"]["by_rule"]["card_number"], 1);
  ASSERT_EQ(r->manifest["redactions"]["files"].size(), 1u);
  EXPECT_EQ(r->manifest["redactions"]["files"][0]["path"], "logs" + logs + "/erp.log");

  ASSERT_EQ(r->manifest["not_collected"].size(), 1u);
  EXPECT_EQ(r->manifest["not_collected"][0]["source"], logs + "/server.log.1.gz");
  EXPECT_THAT(r->manifest["not_collected"][0]["reason"].get<std::string>(), HasSubstr("gzip"));
  EXPECT_THAT(StepOf(r->manifest, "logs")["notes"][0].get<std::string>(),
              HasSubstr("1 matching file"));
  ExpectConsistent(*r);
  ExpectNoLeftovers(out_dir_);
}

TEST_F(BundleTest, TotalLogCapLeavesOutOlderFiles) {
  std::string logs = dir_.File("log");
  ::mkdir(logs.c_str(), 0750);
  for (int i = 0; i < 3; ++i) {
    std::string text;
    for (int line = 0; line < 40; ++line) text += std::string(1023, 'a') + "\n";
    testutil::WriteBytes(Cat(logs, "/f", i, ".log"), text);
    SetMtime(Cat(logs, "/f", i, ".log"), kNow - (i + 1) * kHour);
  }
  BundleOptions o = Nothing();
  o.include_logs = true;
  o.config.log_globs = {logs + "/*.log"};
  o.config.log_total_cap_bytes = 64 * 1024;
  auto r = Build(o);
  ASSERT_TRUE(r.ok()) << r.status();
  auto files = ByName(ReadTarGz(out_));
  EXPECT_EQ(files["logs" + logs + "/f0.log"].size(), 40u * 1024);
  EXPECT_EQ(files["logs" + logs + "/f1.log"].size(),
            24u * 1024);  // the whole lines left of the budget
  EXPECT_FALSE(files.count("logs" + logs + "/f2.log"));
  ASSERT_EQ(r->manifest["not_collected"].size(), 1u);
  EXPECT_THAT(r->manifest["not_collected"][0]["reason"].get<std::string>(),
              HasSubstr("log_total_cap"));
  ExpectConsistent(*r);
}

// A glob or a config path with '..' in it (bundle.log_globs and glob()'s
// ".*" both allow it) is archived under its resolved path: no member of a
// bundle can point outside the directory it is extracted into.
TEST_F(BundleTest, DotDotInCollectedPathsNeverReachesTheArchive) {
  std::string logs = dir_.File("log");
  ::mkdir(logs.c_str(), 0750);
  ::mkdir((logs + "/sub").c_str(), 0750);
  testutil::WriteBytes(logs + "/a.log", "line\n");
  testutil::WriteBytes(logs + "/x.conf", "key = 1\n");
  BundleOptions o = Nothing();
  o.include_logs = o.include_config = true;
  o.config.log_globs = {logs + "/sub/../*.log"};
  o.config.config_files = {logs + "/sub/../x.conf"};
  auto r = Build(o);
  ASSERT_TRUE(r.ok()) << r.status();
  auto entries = ReadTarGz(out_);
  for (const auto& e : entries) EXPECT_THAT(e.name, Not(HasSubstr(".."))) << e.name;
  auto files = ByName(entries);
  EXPECT_EQ(files["logs" + logs + "/a.log"], "line\n");
  EXPECT_EQ(files["config/files" + logs + "/x.conf"], "key = 1\n");
  ExpectConsistent(*r);
}

TEST_F(BundleTest, ConfigIsRedactedAndSecretsNeverReachTheManifest) {
  std::string path = dir_.File("agent.toml");
  testutil::WriteBytes(path, R"([agent]
store_id = "1042"
[collector]
address = "127.0.0.1:7443"
token = "sdst_00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
[set_db]
enabled = true
password = "SetDbPw#1"
)");
  std::string standalone = dir_.File("standalone.xml");
  testutil::WriteBytes(
      standalone,
      "<security><user-name>postgres</user-name><password>JbossPw2</password></security>\n");
  cfg_.tills.set_db = SetDbConfig{};
  cfg_.tills.set_db->password = "SetDbPw#1";
  BundleOptions o = Nothing();
  o.include_config = true;
  o.agent_config_path = path;
  o.config.config_files = {standalone, dir_.File("missing.xml")};
  auto r = Build(o);
  ASSERT_TRUE(r.ok()) << r.status();
  auto files = ByName(ReadTarGz(out_));
  std::string everything;
  for (const auto& [name, data] : files) everything += data;
  for (const char* secret : {"00112233445566778899aabbccddeeff", "SetDbPw#1", "JbossPw2"}) {
    EXPECT_THAT(everything, Not(HasSubstr(secret)));
  }
  EXPECT_THAT(files["config/agent.toml"], HasSubstr("password = \"[REDACTED]\""));
  EXPECT_THAT(files["config/files" + standalone],
              HasSubstr("<user-name>postgres</user-name><password>[REDACTED]<"));
  auto effective = nlohmann::json::parse(files["config/effective.json"]);
  EXPECT_EQ(effective["collector"]["token"], "[REDACTED]");
  EXPECT_EQ(effective["set_db"]["password"], "[REDACTED]");
  EXPECT_EQ(effective["agent"]["store_id"], "1042");
  EXPECT_EQ(StepOf(r->manifest, "config")["status"], "ok");
  ASSERT_EQ(r->manifest["not_collected"].size(), 1u);
  EXPECT_EQ(r->manifest["not_collected"][0]["source"], dir_.File("missing.xml"));
  EXPECT_EQ(r->manifest["redactions"]["by_rule"]["key_value"], 3);
  ExpectConsistent(*r);
}

// A port nobody listens on: connecting is refused at once.
int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

TEST_F(BundleTest, DeadSetDatabaseFailsFastWhileOtherStepsSucceed) {
  SetDbConfig db;
  db.host = "127.0.0.1";
  db.port = FreePort();
  db.password = "NeverShown9";
  cfg_.tills.set_db = db;
  cfg_.tills.server.host = "127.0.0.1";
  cfg_.tills.server.port_soap = static_cast<uint16_t>(FreePort());
  cfg_.loading.inboxes = {dir_.File("inbox")};
  ::mkdir(dir_.File("inbox").c_str(), 0750);
  testutil::WriteBytes(dir_.File("inbox/catalog-goods_1.xml"), "<goods/>");
  SetMtime(dir_.File("inbox/catalog-goods_1.xml"), kNow - kHour);
  BundleOptions o = Nothing();
  o.include_set = true;
  o.extra_steps.push_back(MakeStep("other", 0, [](StepContext& ctx) {
    ctx.AddText("other.txt", "fine\n", "test");
    return absl::OkStatus();
  }));
  auto started = std::chrono::steady_clock::now();
  auto r = Build(o);
  auto took = std::chrono::steady_clock::now() - started;
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_LT(took, std::chrono::seconds(5));
  auto set_db = StepOf(r->manifest, "set_db");
  EXPECT_EQ(set_db["status"], "failed");
  std::string error = set_db["error"];
  EXPECT_THAT(error, HasSubstr(Cat("127.0.0.1:", db.port)));
  EXPECT_THAT(error, HasSubstr("roster"));
  EXPECT_THAT(error, HasSubstr("refused"));
  EXPECT_LT(set_db["duration_ms"].get<int64_t>(), 3000);
  EXPECT_EQ(StepOf(r->manifest, "set_server")["status"], "ok");
  EXPECT_EQ(StepOf(r->manifest, "other")["status"], "ok");
  EXPECT_EQ(r->steps_failed, 1);
  EXPECT_THAT(r->manifest.dump(), Not(HasSubstr("NeverShown9")));

  auto files = ByName(ReadTarGz(out_));
  EXPECT_FALSE(files.count("set/tills.json"));
  auto server = nlohmann::json::parse(files["set/server.json"]);
  EXPECT_EQ(server["deployed_marker"]["exists"], false);
  EXPECT_EQ(server["ports"]["soap"]["result"], "refused");
  auto inboxes = nlohmann::json::parse(files["set/inboxes.json"]);
  ASSERT_EQ(inboxes.size(), 1u);
  EXPECT_EQ(inboxes[0]["files_matching"], 1);
  EXPECT_EQ(inboxes[0]["entries_oldest_first"][0]["name"], "catalog-goods_1.xml");
  EXPECT_EQ(inboxes[0]["entries_oldest_first"][0]["age_s"], 3600);
  ExpectConsistent(*r);
}

TEST_F(BundleTest, HistoryOfTheWindowAsJsonLines) {
  {
    auto h = HistoryStore::Open(cfg_.HistoryPath());
    ASSERT_TRUE(h.ok()) << h.status();
    auto add = [&](const std::string& kind, int64_t at, const std::string& payload) {
      ASSERT_TRUE(
          (*h)->Append({0, 7, kind, Severity::kCritical, at, 0, "tills", payload}, at).ok());
    };
    add("tills.majority_stopped", kNow - 30 * kHour, R"({"state":"raised"})");  // before the window
    add("tills.majority_stopped", kNow - 2 * kHour, R"({"state":"raised","stopped":[1,2,3]})");
    add("loading.halted", kNow - kHour,
        R"({"state":"raised","error":"password=HistPw3 rejected"})");
  }
  BundleOptions o = Nothing();
  o.include_history = true;
  auto r = Build(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(StepOf(r->manifest, "history")["status"], "ok");
  auto files = ByName(ReadTarGz(out_));
  std::vector<nlohmann::json> lines;
  for (std::string_view l : Split(files["history/history.jsonl"], '\n'))
    lines.push_back(nlohmann::json::parse(l));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["kind"], "tills.majority_stopped");
  EXPECT_EQ(lines[0]["payload"]["stopped"], nlohmann::json({1, 2, 3}));
  EXPECT_EQ(lines[0]["severity"], "critical");
  EXPECT_EQ(lines[1]["kind"], "loading.halted");
  EXPECT_EQ(lines[1]["payload"]["error"],
            "password=[REDACTED]");  // a string is a line: its key starts it
  ExpectConsistent(*r);
}

TEST_F(BundleTest, NoHistoryYetIsNotAFailure) {
  BundleOptions o = Nothing();
  o.include_history = true;
  auto r = Build(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(StepOf(r->manifest, "history")["status"], "ok");
  EXPECT_FALSE(std::filesystem::exists(cfg_.HistoryPath()));  // reading never creates it
}

TEST_F(BundleTest, AgentHealthFromTheOutbox) {
  {
    auto outbox = Outbox::Open(cfg_.OutboxPath(), cfg_.outbox, clock_);
    ASSERT_TRUE(outbox->Append({"tills.till_stopped", Severity::kNormal, kNow, "{}"}).ok());
    clock_.Advance(std::chrono::minutes(10));
    ASSERT_TRUE(outbox->Append({"loading.halted", Severity::kCritical, kNow, "{}"}).ok());
  }
  BundleOptions o = Nothing();
  o.include_agent = true;
  auto r = Build(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(StepOf(r->manifest, "agent")["status"], "ok");
  auto files = ByName(ReadTarGz(out_));
  auto health = nlohmann::json::parse(files["agent/health.json"]);
  EXPECT_EQ(health["outbox"]["depth"], 2);
  EXPECT_EQ(health["outbox"]["oldest_unsent_age_s"], 600);
  EXPECT_EQ(health["outbox"]["gaps_total"], 0);
  EXPECT_EQ(health["agent_id"], "store-1042-test");
  EXPECT_EQ(r->manifest["agent_id"], "store-1042-test");
  ExpectConsistent(*r);
}

TEST_F(BundleTest, HostStepsReadThisMachine) {
  BundleOptions o = Nothing();
  o.include_host = true;
  auto r = Build(o);
  ASSERT_TRUE(r.ok()) << r.status();
  for (const char* step : {"host", "disks", "clock"})
    EXPECT_EQ(StepOf(r->manifest, step)["status"], "ok") << step;
  auto files = ByName(ReadTarGz(out_));
  auto sys = nlohmann::json::parse(files["host/system.json"]);
  EXPECT_GT(sys["memory_kib"]["MemTotal"].get<int64_t>(), 0);
  EXPECT_TRUE(sys["load"].contains("load1"));
  auto clock = nlohmann::json::parse(files["host/clock.json"]);
  EXPECT_TRUE(clock["offset_s"].is_number() || clock["offset_s"] == "unknown");
  ExpectConsistent(*r);
}

TEST_F(BundleTest, UnwritableOutputIsAnError) {
  BundleOptions o = Nothing();
  auto r = BuildBundle(cfg_, o, dir_.File("no/such/dir/bundle.tar.gz"), clock_);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("no/such/dir"));
}

}  // namespace
}  // namespace setdiag::agent::bundle
