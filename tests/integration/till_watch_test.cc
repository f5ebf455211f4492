// The till watch end to end: a real PostgreSQL holding a SET-like schema, the
// store simulator playing 20 tills, real agent and collector processes.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <random>
#include <sstream>
#include <thread>

#include "tests/integration/harness.h"
#include "tests/integration/pg_server.h"

namespace setdiag::testing {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

class StoreFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    pg_ = PgServer::Start();
    d_ = std::make_unique<Deployment>("tills");
    control_port_ = FreePort();
    probe_port_ = FreePort();
    sim_ = std::make_unique<Process>(
        std::vector<std::string>{SETDIAG_STORE_SIM_BIN, "run", "--pg", pg_->ServerConnString(),
                                 "--store", "1042", "--tills", "20", "--interval", "500ms",
                                 "--control", "127.0.0.1:" + std::to_string(control_port_),
                                 "--probe-port", std::to_string(probe_port_)},
        d_->dir() + "/sim.log");
    ASSERT_TRUE(WaitFor([&] { return Ctl({"status"}).exit_code == 0; }, 30s)) << sim_->Log();
    d_->StartCollector();
    std::string extra =
        "[tills]\n"
        "poll_interval = \"500ms\"\nheartbeat_timeout = \"3s\"\nconfirm_window = \"3s\"\n"
        "clear_window = \"3s\"\nunreachable_confirm = \"2s\"\nprobe_timeout = \"300ms\"\n"
        "probe_port = " +
        std::to_string(probe_port_) +
        "\n"
        "[set_db]\nenabled = true\nhost = \"127.0.0.1\"\nport = " +
        std::to_string(pg_->port()) +
        "\nuser = \"postgres\"\nconnect_timeout = \"1s\"\n"
        "[server]\ncheck = false\n";
    agent_ = &d_->AddAgent("1042", d_->CreateStoreToken("1042", "acme"), extra);
    d_->StartAgent(*agent_);
  }

  CommandResult Ctl(const std::vector<std::string>& args) { return SimCtl(control_port_, args); }

  bool WaitForEvent(const std::string& kind, const std::string& state,
                    std::chrono::seconds timeout) {
    return WaitFor([&] { return !FindEvents(d_->Events("1042"), kind, state).empty(); }, timeout,
                   200ms);
  }

  std::unique_ptr<PgServer> pg_;
  std::unique_ptr<Deployment> d_;
  std::unique_ptr<Process> sim_;
  AgentSetup* agent_ = nullptr;
  int control_port_ = 0;
  int probe_port_ = 0;
};

TEST_F(StoreFixture, ElevenOfTwentyStopRaisesCriticalWithEvidenceAndClears) {
  // A healthy store first: nothing is raised.
  std::this_thread::sleep_for(5s);
  EXPECT_TRUE(FindEvents(d_->Events("1042"), "tills.majority_stopped", "raised").empty())
      << agent_->process->Log();

  ASSERT_EQ(Ctl({"stop", "1-11"}).exit_code, 0);
  ASSERT_TRUE(WaitForEvent("tills.majority_stopped", "raised", 30s)) << agent_->process->Log();
  json critical = FindEvents(d_->Events("1042"), "tills.majority_stopped", "raised")[0];
  EXPECT_EQ(critical["severity"], "critical");
  const json& p = critical["payload"];
  EXPECT_EQ(p["stopped"], 11);
  EXPECT_EQ(p["expected"], 20);
  ASSERT_EQ(p["stopped_tills"].size(), 11u);
  for (const auto& t : p["stopped_tills"]) {
    EXPECT_LE(t["number"].get<int>(), 11);
    EXPECT_TRUE(t["last_heartbeat_ms"].is_number()) << t;
    EXPECT_EQ(t["address"], "127.0.1." + std::to_string(10 + t["number"].get<int>()));
  }
  // Stopped software on machines that still answer on the network.
  EXPECT_EQ(p["likely_cause"]["code"], "tills") << p.dump(2);
  EXPECT_LE(critical["detected_at_ms"].get<int64_t>() - p["onset_ms"].get<int64_t>(), 4500);

  ASSERT_EQ(Ctl({"start", "1-11"}).exit_code, 0);
  ASSERT_TRUE(WaitForEvent("tills.majority_stopped", "cleared", 30s)) << agent_->process->Log();
  json cleared = FindEvents(d_->Events("1042"), "tills.majority_stopped", "cleared")[0];
  EXPECT_EQ(cleared["payload"]["episode"], p["episode"]);
}

TEST_F(StoreFixture, AnAgentRestartedWithinTheClearWindowStillClearsWhatItRaised) {
  ASSERT_EQ(Ctl({"stop", "1-11"}).exit_code, 0);
  ASSERT_TRUE(WaitForEvent("tills.majority_stopped", "raised", 30s)) << agent_->process->Log();
  const std::string episode =
      FindEvents(d_->Events("1042"), "tills.majority_stopped", "raised")[0]["payload"]["episode"];
  // The tills recover while the agent restarts (an upgrade, a reboot): the
  // old process never sees them up, the new one must clear its episode.
  ASSERT_EQ(agent_->process->Stop(), 0) << agent_->process->Log();
  ASSERT_EQ(Ctl({"start", "1-11"}).exit_code, 0);
  std::this_thread::sleep_for(1s);
  d_->StartAgent(*agent_);
  ASSERT_TRUE(WaitForEvent("tills.majority_stopped", "cleared", 30s)) << agent_->process->Log();
  json events = d_->Events("1042");
  json cleared = FindEvents(events, "tills.majority_stopped", "cleared")[0];
  EXPECT_EQ(cleared["payload"]["episode"], episode);
  EXPECT_EQ(FindEvents(events, "tills.majority_stopped", "raised").size(), 1u)
      << "not raised again";
  // The new process restored the condition and announced it in its Hello.
  std::string log = agent_->process->Log();
  EXPECT_NE(log.find("restored tills.majority_stopped (episode " + episode + ")"),
            std::string::npos)
      << log;
  EXPECT_TRUE(HelloHeld(log, "tills.majority_stopped " + episode)) << log;
}

TEST_F(StoreFixture, UnpluggedTillsPointAtNetworkOrPower) {
  ASSERT_EQ(Ctl({"unplug", "1-15"}).exit_code, 0);
  ASSERT_TRUE(WaitForEvent("tills.majority_stopped", "raised", 30s)) << agent_->process->Log();
  json critical = FindEvents(d_->Events("1042"), "tills.majority_stopped", "raised")[0];
  EXPECT_EQ(critical["payload"]["likely_cause"]["code"], "network_or_power") << critical.dump(2);
}

TEST_F(StoreFixture, DatabaseDownIsUnreachableNeverCritical) {
  std::this_thread::sleep_for(3s);
  pg_->Stop();
  ASSERT_TRUE(WaitForEvent("set.db_unreachable", "raised", 30s)) << agent_->process->Log();
  // Heartbeats can no longer be read; wait past timeout + confirm window.
  std::this_thread::sleep_for(8s);
  json events = d_->Events("1042");
  EXPECT_TRUE(FindEvents(events, "tills.majority_stopped", "raised").empty())
      << "unknown is not stopped";
  EXPECT_EQ(FindEvents(events, "set.db_unreachable", "raised")[0]["severity"], "important");
  pg_->StartAgain();
  ASSERT_TRUE(WaitForEvent("set.db_unreachable", "cleared", 30s)) << agent_->process->Log();
  EXPECT_TRUE(FindEvents(d_->Events("1042"), "tills.majority_stopped", "raised").empty());
}

TEST_F(StoreFixture, AMothballedMajorityRaisesNothing) {
  ASSERT_EQ(Ctl({"mothball", "1-11"}).exit_code, 0);
  std::this_thread::sleep_for(12s);  // timeout 3 s + confirm 3 s, twice over
  json events = d_->Events("1042");
  EXPECT_TRUE(FindEvents(events, "tills.majority_stopped", "raised").empty())
      << agent_->process->Log();
  EXPECT_TRUE(FindEvents(events, "tills.till_stopped", "raised").empty());
}

TEST_F(StoreFixture, MaintenanceOpenedOnSiteSilencesTheTillWatch) {
  auto r = RunCommand({SETDIAG_AGENT_BIN, "--config", agent_->config_path, "maintenance", "--for",
                       "10m", "--reason", "replacing the store switch", "--by", "petrov"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto list =
      RunCommand({SETDIAG_AGENT_BIN, "--config", agent_->config_path, "maintenance", "list"});
  EXPECT_NE(list.out.find("replacing the store switch"), std::string::npos) << list.out;
  ASSERT_EQ(Ctl({"stop", "1-15"}).exit_code, 0);
  std::this_thread::sleep_for(10s);  // timeout 3 s + confirm 3 s, with room
  EXPECT_TRUE(FindEvents(d_->Events("1042"), "tills.majority_stopped", "raised").empty())
      << agent_->process->Log();
  // Maintenance over: the same outage is now a critical condition.
  auto cancel = RunCommand(
      {SETDIAG_AGENT_BIN, "--config", agent_->config_path, "maintenance", "cancel", "1"});
  ASSERT_EQ(cancel.exit_code, 0) << cancel.err;
  ASSERT_TRUE(WaitForEvent("tills.majority_stopped", "raised", 30s)) << agent_->process->Log();
}

// Push-only store: a roster in the config, heartbeats over UDP.
TEST(PushHeartbeats, GarbageIsCountedAndIgnoredWhileRealHeartbeatsCount) {
  Deployment d("push");
  d.StartCollector();
  int udp_port = FreePort();
  int http_port = FreePort();
  std::string extra =
      "[tills]\npoll_interval = \"500ms\"\nheartbeat_timeout = \"2s\"\nconfirm_window = \"1s\"\n"
      "clear_window = \"1s\"\n[tills.roster]\n1 = \"127.0.0.1\"\n2 = \"127.0.0.1\"\n3 = "
      "\"127.0.0.1\"\n"
      "[push]\nudp_listen = \"127.0.0.1:" +
      std::to_string(udp_port) + "\"\nhttp_listen = \"127.0.0.1:" + std::to_string(http_port) +
      "\"\n[server]\ncheck = false\n";
  auto& agent = d.AddAgent("2042", d.CreateStoreToken("2042", "acme"), extra);
  d.StartAgent(agent);

  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(udp_port));
  inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  auto send = [&](const std::string& b) {
    sendto(fd, b.data(), b.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  };
  std::mt19937 rng(42);
  auto beat_all = [&] {
    for (int till = 1; till <= 3; ++till)
      send(R"({"store":"2042","till":)" + std::to_string(till) + "}");
  };
  // 8 seconds of real heartbeats drowned in garbage.
  for (int round = 0; round < 16; ++round) {
    beat_all();
    for (int i = 0; i < 200; ++i) {
      std::string junk(static_cast<size_t>(rng() % 2000), '\0');
      for (auto& c : junk) c = static_cast<char>(rng());
      send(junk);
    }
    send(std::string(60000, 'x'));             // huge datagram
    send(R"({"store":"2042","till":"one"})");  // bad field
    send(R"({"store":"9999","till":1})");      // another store
    send(R"({"store":"2042","till":-1})");     // out of range
    std::this_thread::sleep_for(500ms);
  }
  close(fd);
  // The same over HTTP: garbage gets 400 and counts; nothing breaks.
  std::string http = "127.0.0.1:" + std::to_string(http_port);
  auto post = [&](const std::string& body) {
    return RunCommand({"/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                       "-H", "Content-Type: application/json", "--data-binary", body,
                       "http://" + http + "/v1/heartbeat"});
  };
  EXPECT_EQ(post("not json").out, "400");
  EXPECT_EQ(post(R"({"store":"2042","till":"x"})").out, "400");
  EXPECT_EQ(post(std::string(5000, 'x')).out, "413");
  EXPECT_EQ(post(R"({"store":"2042","till":1})").out, "200");
  // The real heartbeats kept the tills up: no condition so far.
  EXPECT_TRUE(FindEvents(d.Events("2042"), "tills.majority_stopped", "raised").empty())
      << agent.process->Log();
  EXPECT_TRUE(agent.process->Running());
  // Silence: now the agent must notice, proving it still works.
  ASSERT_TRUE(WaitFor(
      [&] { return !FindEvents(d.Events("2042"), "tills.majority_stopped", "raised").empty(); },
      20s, 200ms))
      << agent.process->Log();
  agent.process->Stop();
  std::string log = agent.process->Log();
  EXPECT_NE(log.find("malformed"), std::string::npos) << log;
}

}  // namespace
}  // namespace setdiag::testing
