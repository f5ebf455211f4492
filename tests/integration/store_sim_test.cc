// setdiag-store-sim against a real PostgreSQL: the registry it writes, the
// tills' last activity, the control API, probe listeners and UDP heartbeats.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/harness.h"
#include "tests/integration/pg_server.h"

namespace setdiag::testing {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr int kIntervalMs = 250;
constexpr auto kInterval = std::chrono::milliseconds(kIntervalMs);

using Rows = std::vector<std::vector<std::string>>;

// Runs a query over a fresh connection; NULL comes back as "<null>".
Rows Query(const std::string& conninfo, const std::string& sql) {
  PGconn* c = PQconnectdb(conninfo.c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    std::string err = PQerrorMessage(c);
    PQfinish(c);
    throw std::runtime_error("connect: " + err);
  }
  PGresult* r = PQexec(c, sql.c_str());
  if (PQresultStatus(r) != PGRES_TUPLES_OK) {
    std::string err = PQresultErrorMessage(r);
    PQclear(r);
    PQfinish(c);
    throw std::runtime_error(sql + ": " + err);
  }
  Rows rows;
  for (int i = 0; i < PQntuples(r); ++i) {
    std::vector<std::string> row;
    for (int j = 0; j < PQnfields(r); ++j) row.push_back(PQgetisnull(r, i, j) ? "<null>" : PQgetvalue(r, i, j));
    rows.push_back(std::move(row));
  }
  PQclear(r);
  PQfinish(c);
  return rows;
}

bool TcpConnects(const std::string& ip, int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, ip.c_str(), &addr.sin_addr);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

class StoreSimTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pg_ = PgServer::Start();
    dir_ = MakeTempDir("storesim");
    control_port_ = FreePort();
    probe_port_ = FreePort();
  }

  void TearDown() override {
    sim_.reset();
    pg_.reset();
    if (std::getenv("SETDIAG_KEEP_TEST_DIRS") == nullptr) std::filesystem::remove_all(dir_);
  }

  std::string Control() const { return "127.0.0.1:" + std::to_string(control_port_); }

  void StartSim(std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{SETDIAG_STORE_SIM_BIN, "run",
                                  "--pg", pg_->ServerConnString(),
                                  "--store", "1042",
                                  "--tills", "5",
                                  "--interval", std::to_string(kIntervalMs) + "ms",
                                  "--control", Control(),
                                  "--probe-port", std::to_string(probe_port_),
                                  "--log-level", "debug"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    sim_ = std::make_unique<Process>(argv, dir_ + "/sim.log");
    // Up when the control API answers and every till has pinged once.
    bool up = WaitFor(
        [&] {
          auto r = Ctl({"status"});
          if (r.exit_code != 0) return false;
          json status = json::parse(r.out);
          for (const auto& t : status["tills"]) {
            if (t["state"] == "running" && t["last_activity_ms"].is_null()) return false;
          }
          return true;
        },
        20s, 100ms);
    ASSERT_TRUE(up) << sim_->Log();
  }

  CommandResult Ctl(std::vector<std::string> args) {
    std::vector<std::string> argv{SETDIAG_STORE_SIM_BIN, "ctl", "--control", Control()};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  }

  json CtlJson(std::vector<std::string> args) {
    auto r = Ctl(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return json::parse(r.out);
  }

  // Till number -> lastactivity as Unix-ish seconds (0 when NULL).
  std::map<int, double> LastActivity() {
    std::map<int, double> out;
    for (const auto& row : Query(pg_->ConnString("set_operday"),
                                 "SELECT cashnum, COALESCE(EXTRACT(EPOCH FROM lastactivity)::float8, 0) "
                                 "FROM od_cash_status WHERE shopnum = 1042")) {
      out[std::stoi(row[0])] = std::stod(row[1]);
    }
    return out;
  }

  std::map<int, std::string> Statuses() {
    std::map<int, std::string> out;
    for (const auto& row :
         Query(pg_->ConnString("set"), "SELECT number, status FROM cash_cash WHERE shop_number = 1042")) {
      out[std::stoi(row[0])] = row[1];
    }
    return out;
  }

  // Which tills' lastactivity moved over a few intervals, after letting a
  // tick in flight finish.
  std::set<int> Advancing() {
    std::this_thread::sleep_for(3 * kInterval);
    auto before = LastActivity();
    std::this_thread::sleep_for(4 * kInterval);
    auto after = LastActivity();
    std::set<int> moved;
    for (const auto& [n, t] : after) {
      if (t > before[n]) moved.insert(n);
    }
    return moved;
  }

  std::string TillIp(int n) const { return "127.0.1." + std::to_string(10 + n); }

  std::unique_ptr<PgServer> pg_;
  std::unique_ptr<Process> sim_;
  std::string dir_;
  int control_port_ = 0;
  int probe_port_ = 0;
};

TEST_F(StoreSimTest, CreatesRegistryAndTillsPing) {
  StartSim();
  auto rows = Query(pg_->ConnString("set"),
                    "SELECT number, shop_number, status, cash_ip, fwversion, hardwarename FROM cash_cash ORDER BY number");
  ASSERT_EQ(rows.size(), 5u);
  for (int n = 1; n <= 5; ++n) {
    const auto& row = rows[static_cast<size_t>(n - 1)];
    EXPECT_EQ(row[0], std::to_string(n));
    EXPECT_EQ(row[1], "1042");
    EXPECT_EQ(row[2], "ACTIVE");
    EXPECT_EQ(row[3], TillIp(n));
    EXPECT_FALSE(row[4].empty());
    EXPECT_FALSE(row[5].empty());
  }
  EXPECT_EQ(Advancing(), (std::set<int>{1, 2, 3, 4, 5}));

  // lastactivity is the server's local time without zone: it matches
  // localtimestamp in a session with the cluster's TimeZone, not UTC.
  auto tz = Query(pg_->ConnString("set_operday"), "SHOW TimeZone");
  EXPECT_EQ(tz[0][0], "Europe/Moscow");
  auto lag = Query(pg_->ConnString("set_operday"),
                   "SELECT EXTRACT(EPOCH FROM localtimestamp - max(lastactivity))::float8 FROM od_cash_status");
  EXPECT_LT(std::abs(std::stod(lag[0][0])), 5.0) << "lastactivity should be local time within a few seconds";

  EXPECT_EQ(sim_->Stop(), 0) << sim_->Log();
  EXPECT_NE(sim_->Log().find("signal 15: stopping"), std::string::npos);
}

TEST_F(StoreSimTest, StopMothballUnplugAndStart) {
  StartSim();
  json reply = CtlJson({"stop", "1-2"});
  EXPECT_EQ(reply["changed"], json({1, 2}));
  EXPECT_EQ(reply["tills"][0]["state"], "stopped");
  EXPECT_EQ(Advancing(), (std::set<int>{3, 4, 5}));
  // Software stopped, machine still answers.
  EXPECT_TRUE(TcpConnects(TillIp(1), probe_port_));

  CtlJson({"mothball", "3"});
  EXPECT_TRUE(WaitFor([&] { return Statuses()[3] == "CLOSED_DOWN"; }, 5s)) << sim_->Log();
  EXPECT_EQ(Statuses()[4], "ACTIVE");

  EXPECT_TRUE(TcpConnects(TillIp(4), probe_port_));
  CtlJson({"unplug", "4"});
  EXPECT_FALSE(TcpConnects(TillIp(4), probe_port_));
  EXPECT_TRUE(TcpConnects(TillIp(2), probe_port_));
  EXPECT_EQ(Advancing(), (std::set<int>{5}));

  json status = CtlJson({"status"});
  EXPECT_EQ(status["store"], "1042");
  std::vector<std::string> states;
  for (const auto& t : status["tills"]) states.push_back(t["state"]);
  EXPECT_EQ(states, (std::vector<std::string>{"stopped", "stopped", "mothballed", "unplugged", "running"}));
  EXPECT_EQ(status["tills"][2]["status"], "CLOSED_DOWN");
  EXPECT_EQ(status["tills"][3]["probe"], "closed");

  // Everything back: ACTIVE, pinging, answering.
  CtlJson({"start", "all"});
  EXPECT_TRUE(WaitFor([&] { return Statuses()[3] == "ACTIVE"; }, 5s));
  EXPECT_TRUE(TcpConnects(TillIp(4), probe_port_));
  EXPECT_EQ(Advancing(), (std::set<int>{1, 2, 3, 4, 5}));

  std::string log = sim_->Log();
  EXPECT_NE(log.find("stop 1-2: -> stopped"), std::string::npos) << log;
  EXPECT_NE(log.find("unplug 4: -> unplugged"), std::string::npos) << log;
}

TEST_F(StoreSimTest, StartsWithMothballedTills) {
  StartSim({"--mothballed", "4,5"});
  auto st = Statuses();
  EXPECT_EQ(st[1], "ACTIVE");
  EXPECT_EQ(st[4], "CLOSED_DOWN");
  EXPECT_EQ(st[5], "CLOSED_DOWN");
  EXPECT_EQ(Advancing(), (std::set<int>{1, 2, 3}));
  // Never pinged: a row with NULL lastactivity.
  EXPECT_EQ(LastActivity()[4], 0.0);
}

TEST_F(StoreSimTest, PushesUdpHeartbeatsForPingingTillsOnly) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  timeval tv{0, 100'000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

  // Every datagram received over `d`: till -> count; checks the format.
  auto receive = [&](std::chrono::milliseconds d) {
    std::map<int, int> seen;
    auto end = std::chrono::steady_clock::now() + d;
    char buf[2048];
    while (std::chrono::steady_clock::now() < end) {
      ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n <= 0) continue;
      json hb = json::parse(std::string(buf, static_cast<size_t>(n)));
      EXPECT_EQ(hb.size(), 3u) << hb;
      EXPECT_EQ(hb["store"], "1042");
      EXPECT_TRUE(hb["till"].is_number_integer());
      auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
      EXPECT_LT(std::abs(hb["ts_ms"].get<int64_t>() - now_ms), 5000) << hb;
      seen[hb["till"].get<int>()]++;
    }
    return seen;
  };

  StartSim({"--push-udp", "127.0.0.1:" + std::to_string(ntohs(addr.sin_port)), "--mothballed", "5"});
  auto seen = receive(5 * kInterval);
  EXPECT_EQ(seen.size(), 4u);
  for (int n = 1; n <= 4; ++n) EXPECT_GE(seen[n], 3) << "till " << n;
  EXPECT_EQ(seen.count(5), 0u) << "a mothballed till does not ping";

  CtlJson({"stop", "1"});
  CtlJson({"unplug", "2"});
  receive(2 * kInterval);  // drain what was in flight
  seen = receive(5 * kInterval);
  EXPECT_EQ(seen.count(1), 0u);
  EXPECT_EQ(seen.count(2), 0u);
  EXPECT_GE(seen[3], 3);
  EXPECT_GE(seen[4], 3);
  close(fd);
}

TEST_F(StoreSimTest, KeepsPlayingThroughADatabaseOutage) {
  StartSim();
  pg_->Stop();
  std::this_thread::sleep_for(6 * kInterval);
  ASSERT_TRUE(sim_->Running()) << sim_->Log();
  EXPECT_EQ(CtlJson({"status"})["db"], "down");
  // State changes still work while the database is down.
  CtlJson({"stop", "1"});

  pg_->StartAgain();
  EXPECT_TRUE(WaitFor([&] { return CtlJson({"status"})["db"] == "connected"; }, 10s)) << sim_->Log();
  EXPECT_EQ(Advancing(), (std::set<int>{2, 3, 4, 5}));

  std::string log = sim_->Log();
  size_t first = log.find("PostgreSQL unavailable");
  ASSERT_NE(first, std::string::npos) << log;
  EXPECT_EQ(log.find("PostgreSQL unavailable", first + 1), std::string::npos) << "logged once per outage:\n" << log;
  EXPECT_NE(log.find("PostgreSQL is back"), std::string::npos) << log;
}

TEST_F(StoreSimTest, CommandLineErrors) {
  auto run = [](std::vector<std::string> args) {
    args.insert(args.begin(), SETDIAG_STORE_SIM_BIN);
    return RunCommand(args);
  };
  EXPECT_EQ(run({"--help"}).exit_code, 0);
  EXPECT_EQ(run({"--version"}).exit_code, 0);
  EXPECT_EQ(run({}).exit_code, 2);
  EXPECT_EQ(run({"run", "--store", "1042"}).exit_code, 2);  // no --control
  EXPECT_EQ(run({"run", "--store", "1042", "--control", "127.0.0.1:1", "--tills", "0"}).exit_code, 2);
  EXPECT_EQ(run({"run", "--store", "1042", "--control", "127.0.0.1:1", "--interval", "soon"}).exit_code, 2);
  auto r = run({"run", "--store", "1042", "--control", "127.0.0.1:1", "--mothballed", "21"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("outside 1-20"), std::string::npos) << r.err;

  // Nobody listens on the control port yet.
  EXPECT_EQ(Ctl({"status"}).exit_code, 1);
  EXPECT_EQ(Ctl({"stop", "x-y"}).exit_code, 2);
  EXPECT_EQ(Ctl({"reboot", "1"}).exit_code, 2);

  StartSim();
  r = Ctl({"stop", "6"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("outside 1-5"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace setdiag::testing
