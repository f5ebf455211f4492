// setdiag-store-sim against a real PostgreSQL: the registry it writes, the
// tills' last activity, the control API, probe listeners and UDP heartbeats;
// the goods side: ERP packages and their status, the inbox, the WSDL port and
// the transport of product files to tills.

#include <arpa/inet.h>
#include <gtest/gtest.h>
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

Rows Query(const std::string& conninfo, const std::string& sql) { return PgQuery(conninfo, sql); }

// The same, but a failure (a table not created yet) is no rows.
Rows QueryOr(const std::string& conninfo, const std::string& sql) {
  try {
    return Query(conninfo, sql);
  } catch (const std::exception&) {
    return {};
  }
}

struct HttpAnswer {
  int status = -1;  // -1: could not connect
  std::string content_type;
  std::string body;
};

// One GET over a fresh connection to 127.0.0.1:port.
HttpAnswer HttpGet(int port, const std::string& target) {
  HttpAnswer out;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return out;
  }
  std::string req = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
    close(fd);
    return out;
  }
  std::string raw;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof buf, 0)) > 0) raw.append(buf, static_cast<size_t>(n));
  close(fd);
  auto head_end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.1 ", 0) != 0 || head_end == std::string::npos) return out;
  out.status = std::stoi(raw.substr(9, 3));
  std::string head = raw.substr(0, head_end);
  for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto ct = head.find("\r\ncontent-type: ");
  if (ct != std::string::npos) {
    ct += 16;
    out.content_type = head.substr(ct, head.find("\r\n", ct) - ct);
  }
  out.body = raw.substr(head_end + 4);
  return out;
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
    std::vector<std::string> argv{SETDIAG_STORE_SIM_BIN,
                                  "run",
                                  "--pg",
                                  pg_->ServerConnString(),
                                  "--store",
                                  "1042",
                                  "--tills",
                                  "5",
                                  "--interval",
                                  std::to_string(kIntervalMs) + "ms",
                                  "--control",
                                  Control(),
                                  "--probe-port",
                                  std::to_string(probe_port_),
                                  "--log-level",
                                  "debug"};
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
    for (const auto& row :
         Query(pg_->ConnString("set_operday"),
               "SELECT cashnum, COALESCE(EXTRACT(EPOCH FROM lastactivity)::float8, 0) "
               "FROM od_cash_status WHERE shopnum = 1042")) {
      out[std::stoi(row[0])] = std::stod(row[1]);
    }
    return out;
  }

  std::map<int, std::string> Statuses() {
    std::map<int, std::string> out;
    for (const auto& row : Query(pg_->ConnString("set"),
                                 "SELECT number, status FROM cash_cash WHERE shop_number = 1042")) {
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

  // set.erp_transport_package: ti -> {statusid, statusname, importtype}.
  // SET keeps no rejection message there (domain.md): the simulator neither.
  struct Package {
    int statusid = 0;
    std::string statusname, importtype;
    double timedate = 0;  // EXTRACT(EPOCH FROM timedate): local time as if UTC
  };
  std::map<std::string, Package> Packages() {
    std::map<std::string, Package> out;
    for (const auto& row : QueryOr(
             pg_->ConnString("set"),
             "SELECT ti, statusid, COALESCE(statusname, '<null>'), COALESCE(importtype, '<null>'), "
             "EXTRACT(EPOCH FROM timedate)::float8 "
             "FROM erp_transport_package")) {
      out[row[0]] = {std::stoi(row[1]), row[2], row[3], std::stod(row[4])};
    }
    return out;
  }
  // Packages by status.
  std::map<int, int> PackageCounts() {
    std::map<int, int> out;
    for (const auto& [ti, p] : Packages()) out[p.statusid]++;
    return out;
  }

  // set.cash_activity of store 1042, by till.
  struct Activity {
    int64_t notloaded = 0;
    double lastload = 0;  // EXTRACT(EPOCH FROM lastproductsloaddate), 0 when NULL
    int64_t lastprocessedid = 0;
  };
  std::map<int, Activity> CashActivity() {
    std::map<int, Activity> out;
    for (const auto& row :
         QueryOr(pg_->ConnString("set"),
                 "SELECT cashnumber, notloadedproductscount, "
                 "COALESCE(EXTRACT(EPOCH FROM lastproductsloaddate)::float8, 0), lastprocessedid "
                 "FROM cash_activity WHERE shopnumber = 1042")) {
      out[std::stoi(row[0])] = {std::stoll(row[1]), std::stod(row[2]), std::stoll(row[3])};
    }
    return out;
  }
  // Product files per till, and the newest file id per till.
  std::map<int, int64_t> ProductFiles() {
    std::map<int, int64_t> out;
    for (const auto& row :
         QueryOr(pg_->ConnString("set"),
                 "SELECT cash_number, count(*) FROM un_cg_product_file_for_cashes "
                 "WHERE shop_number = 1042 GROUP BY cash_number")) {
      out[std::stoi(row[0])] = std::stoll(row[1]);
    }
    return out;
  }
  int64_t NewestFile(int till) {
    auto rows = QueryOr(pg_->ConnString("set"),
                        "SELECT COALESCE(max(id), 0) FROM un_cg_product_file_for_cashes WHERE "
                        "shop_number = 1042 AND "
                        "cash_number = " +
                            std::to_string(till));
    return rows.empty() ? 0 : std::stoll(rows[0][0]);
  }

  // catalog-goods_*.xml file names in a folder.
  static std::set<std::string> InboxFiles(const std::string& dir) {
    std::set<std::string> out;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
      std::string name = e.path().filename().string();
      if (name.rfind("catalog-goods_", 0) == 0 && name.size() > 4 &&
          name.substr(name.size() - 4) == ".xml") {
        out.insert(name);
      }
    }
    return out;
  }

  std::unique_ptr<PgServer> pg_;
  std::unique_ptr<Process> sim_;
  std::string dir_;
  int control_port_ = 0;
  int probe_port_ = 0;
};

TEST_F(StoreSimTest, CreatesRegistryAndTillsPing) {
  StartSim();
  auto rows = Query(pg_->ConnString("set"),
                    "SELECT number, shop_number, status, cash_ip, fwversion, hardwarename FROM "
                    "cash_cash ORDER BY number");
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
  auto lag = Query(
      pg_->ConnString("set_operday"),
      "SELECT EXTRACT(EPOCH FROM localtimestamp - max(lastactivity))::float8 FROM od_cash_status");
  EXPECT_LT(std::abs(std::stod(lag[0][0])), 5.0)
      << "lastactivity should be local time within a few seconds";

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
  EXPECT_EQ(states,
            (std::vector<std::string>{"stopped", "stopped", "mothballed", "unplugged", "running"}));
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

  StartSim(
      {"--push-udp", "127.0.0.1:" + std::to_string(ntohs(addr.sin_port)), "--mothballed", "5"});
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
  EXPECT_TRUE(WaitFor([&] { return CtlJson({"status"})["db"] == "connected"; }, 10s))
      << sim_->Log();
  EXPECT_EQ(Advancing(), (std::set<int>{2, 3, 4, 5}));

  std::string log = sim_->Log();
  size_t first = log.find("PostgreSQL unavailable");
  ASSERT_NE(first, std::string::npos) << log;
  EXPECT_EQ(log.find("PostgreSQL unavailable", first + 1), std::string::npos)
      << "logged once per outage:\n"
      << log;
  EXPECT_NE(log.find("PostgreSQL is back"), std::string::npos) << log;
}

// --- Goods and prices ---------------------------------------------------

TEST_F(StoreSimTest, ErpPackagesGoInProcessThenCorrectAtTheCadence) {
  StartSim({"--erp-every", "1s", "--process-delay", "400ms", "--load-delay", "300ms"});
  // Each package is seen in status 2 first, then 3.
  std::set<std::string> seen_in_process, seen_correct;
  WaitFor(
      [&] {
        for (const auto& [ti, p] : Packages()) {
          if (p.statusid == 2) seen_in_process.insert(ti);
          if (p.statusid == 3) seen_correct.insert(ti);
        }
        return seen_correct.size() >= 4;
      },
      15s, 50ms);
  ASSERT_GE(seen_correct.size(), 4u) << sim_->Log();
  // (The first may have been processed before the simulator was up.)
  for (const char* ti : {"TI-1042-2", "TI-1042-3", "TI-1042-4"}) {
    EXPECT_TRUE(seen_in_process.count(ti)) << ti << " was never seen in process";
    EXPECT_TRUE(seen_correct.count(ti)) << ti;
  }
  auto packages = Packages();
  for (int n = 1; n <= 4; ++n) {
    const Package& p = packages["TI-1042-" + std::to_string(n)];
    EXPECT_EQ(p.statusname, "correct");
    EXPECT_EQ(p.importtype, "GOODS");
  }
  // Arrivals one cadence apart.
  for (int n = 2; n <= 4; ++n) {
    double gap = packages["TI-1042-" + std::to_string(n)].timedate -
                 packages["TI-1042-" + std::to_string(n - 1)].timedate;
    EXPECT_GT(gap, 0.6) << "TI-1042-" << n;
    EXPECT_LT(gap, 1.6) << "TI-1042-" << n;
  }
  // timedate is local time without zone, like lastactivity.
  auto lag = Query(pg_->ConnString("set"),
                   "SELECT EXTRACT(EPOCH FROM localtimestamp - max(timedate))::float8 FROM "
                   "erp_transport_package");
  EXPECT_LT(std::abs(std::stod(lag[0][0])), 5.0) << "timedate should be local time";

  json status = CtlJson({"status"});
  EXPECT_EQ(status["erp"]["state"], "sending");
  EXPECT_EQ(status["erp"]["every_ms"], 1000);
  EXPECT_EQ(status["erp"]["type"], "GOODS");
  EXPECT_TRUE(status["erp"]["last_ti"].is_string());
  EXPECT_EQ(status["server"]["state"], "processing");
  EXPECT_EQ(status["soap"]["state"], "disabled");
  EXPECT_TRUE(status["inbox"].is_null());

  // ERP quiet: nothing new; started again: a package at once.
  json reply = CtlJson({"erp", "stop"});
  EXPECT_EQ(reply["erp"]["state"], "stopped");
  std::this_thread::sleep_for(300ms);
  size_t count = Packages().size();
  std::this_thread::sleep_for(2500ms);
  EXPECT_EQ(Packages().size(), count) << "a stopped ERP sends nothing";
  CtlJson({"erp", "start"});
  EXPECT_TRUE(WaitFor([&] { return Packages().size() == count + 1; }, 900ms)) << sim_->Log();
  // A new cadence.
  reply = CtlJson({"erp", "start", "500ms"});
  EXPECT_EQ(reply["erp"]["every_ms"], 500);

  std::string log = sim_->Log();
  EXPECT_NE(log.find("erp: -> stopped"), std::string::npos) << log;
  EXPECT_NE(log.find("erp: -> sending GOODS every 1s"), std::string::npos) << log;
}

TEST_F(StoreSimTest, ErpStartsStoppedWithoutCadence) {
  StartSim();
  std::this_thread::sleep_for(1s);
  EXPECT_TRUE(Packages().empty());
  json status = CtlJson({"status"});
  EXPECT_EQ(status["erp"]["state"], "stopped");
  EXPECT_TRUE(status["erp"]["every_ms"].is_null());
  EXPECT_TRUE(status["erp"]["last_ti"].is_null());
  // The tables are there for a watcher even so.
  EXPECT_EQ(CashActivity().size(), 5u);
  EXPECT_EQ(Ctl({"erp", "start"}).exit_code, 2) << "no cadence known";
  json reply = CtlJson({"erp", "start", "1s"});
  EXPECT_EQ(reply["erp"]["state"], "sending");
  EXPECT_EQ(reply["erp"]["every_ms"], 1000);
  EXPECT_TRUE(WaitFor([&] { return Packages()["TI-1042-1"].statusid == 3; }, 5s)) << sim_->Log();
}

TEST_F(StoreSimTest, StalledServerKeepsPackagesInProcessAndInboxFiles) {
  std::string inbox = dir_ + "/products/source";
  StartSim({"--erp-every", "500ms", "--process-delay", "200ms", "--inbox", inbox});
  // Files appear and are consumed once their package is processed.
  ASSERT_TRUE(WaitFor([&] { return Packages()["TI-1042-2"].statusid == 3; }, 10s)) << sim_->Log();
  EXPECT_TRUE(WaitFor([&] { return InboxFiles(inbox).count("catalog-goods_2.xml") == 0; }, 2s));

  json reply = CtlJson({"server", "stall"});
  EXPECT_EQ(reply["server"]["state"], "stalled");
  std::this_thread::sleep_for(200ms);  // a package being processed right now ends
  auto files_before = ProductFiles();
  int64_t files_total = 0;
  for (const auto& [n, c] : files_before) files_total += c;
  // New packages arrive and stay in process; their files stay.
  ASSERT_TRUE(WaitFor([&] { return PackageCounts()[2] >= 3; }, 5s)) << sim_->Log();
  std::set<std::string> waiting;
  for (const auto& [ti, p] : Packages()) {
    if (p.statusid == 2) waiting.insert(ti);
  }
  std::this_thread::sleep_for(1s);  // five process delays
  for (const auto& ti : waiting)
    EXPECT_EQ(Packages()[ti].statusid, 2) << ti << " left status 2 while stalled";
  auto files = InboxFiles(inbox);
  for (const auto& ti : waiting) {
    std::string name = "catalog-goods_" + ti.substr(std::string("TI-1042-").size()) + ".xml";
    ASSERT_TRUE(files.count(name)) << name;
    std::string xml = ReadFile(inbox + "/" + name);
    EXPECT_EQ(xml.rfind("<?xml version=\"1.0\" encoding=\"UTF-8\"?>", 0), 0u) << xml;
    EXPECT_NE(xml.find("<goods-catalog ti=\"" + ti + "\""), std::string::npos) << xml;
    EXPECT_NE(xml.find("</goods-catalog>"), std::string::npos) << xml;
  }
  int64_t files_now = 0;
  for (const auto& [n, c] : ProductFiles()) files_now += c;
  EXPECT_EQ(files_now, files_total) << "no product files while stalled";
  json status = CtlJson({"status"});
  EXPECT_GE(status["inbox"]["count"].get<int>(), 3);
  EXPECT_GE(status["inbox"]["oldest_age_ms"].get<int64_t>(), 1000);
  EXPECT_EQ(status["inbox"]["dir"], inbox);
  EXPECT_GE(status["server"]["in_process"].get<int>(), 3);

  // Resumed: everything goes through, the inbox empties.
  CtlJson({"server", "resume"});
  EXPECT_TRUE(WaitFor(
      [&] {
        for (const auto& ti : waiting) {
          if (Packages()[ti].statusid != 3) return false;
        }
        return true;
      },
      3s))
      << sim_->Log();
  CtlJson({"erp", "stop"});
  EXPECT_TRUE(WaitFor([&] { return InboxFiles(inbox).empty() && PackageCounts()[2] == 0; }, 3s))
      << sim_->Log();
  EXPECT_EQ(CtlJson({"status"})["inbox"]["count"], 0);
  EXPECT_NE(sim_->Log().find("server: -> stalled"), std::string::npos);
  EXPECT_NE(sim_->Log().find("server: -> processing (was stalled)"), std::string::npos);
}

TEST_F(StoreSimTest, FailingServerEndsPackagesWithTheFailure) {
  StartSim({"--erp-every", "500ms", "--process-delay", "200ms"});
  ASSERT_TRUE(WaitFor([&] { return PackageCounts()[3] >= 1; }, 10s)) << sim_->Log();
  const std::string message = "Ошибка сервера: нет связи с БД & повтор";
  json reply = CtlJson({"server", "fail", "5", message});
  EXPECT_EQ(reply["server"]["state"], "failing");
  EXPECT_EQ(reply["server"]["fail_status"], 5);
  EXPECT_EQ(reply["server"]["fail_message"], message);
  std::this_thread::sleep_for(300ms);  // packages in flight end either way
  auto before = Packages();
  ASSERT_TRUE(WaitFor([&] { return PackageCounts()[5] >= 2; }, 5s)) << sim_->Log();
  int64_t files = 0;
  for (const auto& [n, c] : ProductFiles()) files += c;
  for (const auto& [ti, p] : Packages()) {
    if (before.count(ti) || p.statusid == 2) continue;
    EXPECT_EQ(p.statusid, 5) << ti;
    EXPECT_EQ(p.statusname, "internal error") << ti;
    // The message is FeedbackWS's answer, not a column: in the log only.
    // (The row is committed just before the line is logged.)
    EXPECT_TRUE(WaitFor(
        [&] {
          return sim_->Log().find(ti + " -> 5 internal error: " + message) != std::string::npos;
        },
        2s))
        << ti;
  }
  std::this_thread::sleep_for(600ms);
  int64_t files_after = 0;
  for (const auto& [n, c] : ProductFiles()) files_after += c;
  EXPECT_EQ(files_after, files) << "a failed package produces no product files";

  // Another failure, with the default message.
  CtlJson({"server", "fail", "1"});
  EXPECT_TRUE(WaitFor([&] { return PackageCounts()[1] >= 1; }, 5s)) << sim_->Log();
  for (const auto& [ti, p] : Packages()) {
    if (p.statusid == 1) {
      EXPECT_EQ(p.statusname, "XML error");
      EXPECT_TRUE(WaitFor(
          [&] {
            return sim_->Log().find(ti + " -> 1 XML error: simulated XML error") !=
                   std::string::npos;
          },
          2s))
          << ti;
    }
  }
  EXPECT_EQ(Ctl({"server", "fail", "3"}).exit_code, 2) << "3 is not a failure";
  // The same with flags.
  reply = CtlJson({"server", "fail", "--status", "4", "--message", "item 4711: negative price"});
  EXPECT_EQ(reply["server"]["fail_status"], 4);
  EXPECT_EQ(reply["server"]["fail_message"], "item 4711: negative price");
  EXPECT_TRUE(WaitFor(
      [&] {
        for (const auto& [ti, p] : Packages()) {
          if (p.statusid == 4 && p.statusname == "invalid item" &&
              sim_->Log().find(ti + " -> 4 invalid item: item 4711: negative price") !=
                  std::string::npos) {
            return true;
          }
        }
        return false;
      },
      5s))
      << sim_->Log();
  EXPECT_EQ(Ctl({"erp", "stop", "--status", "4"}).exit_code, 2);

  CtlJson({"server", "resume"});
  std::this_thread::sleep_for(300ms);
  size_t known = Packages().size();
  EXPECT_TRUE(WaitFor(
      [&] {
        auto p = Packages();
        return p.size() > known + 1 && p["TI-1042-" + std::to_string(known + 1)].statusid == 3;
      },
      5s))
      << sim_->Log();
  EXPECT_NE(sim_->Log().find("server: -> failing with status 5"), std::string::npos);
}

TEST_F(StoreSimTest, WsdlAnswersUntilSoapStop) {
  int soap_port = FreePort();
  StartSim({"--soap", "127.0.0.1:" + std::to_string(soap_port)});
  const std::string import = "/SET-ERPIntegration/SET/WSGoodsCatalogImport?wsdl";
  const std::string feedback = "/SET-ERPIntegration/SET/FeedbackWS?wsdl";
  for (const auto& target : {import, feedback}) {
    HttpAnswer a = HttpGet(soap_port, target);
    EXPECT_EQ(a.status, 200) << target;
    EXPECT_EQ(a.content_type.rfind("text/xml", 0), 0u) << a.content_type;
    EXPECT_NE(a.body.find("<definitions "), std::string::npos) << a.body;
    EXPECT_NE(a.body.find("</definitions>"), std::string::npos) << a.body;
  }
  EXPECT_NE(HttpGet(soap_port, import).body.find("getGoodsCatalogWithTi"), std::string::npos);
  EXPECT_NE(HttpGet(soap_port, feedback).body.find("getPackageStatus"), std::string::npos);
  EXPECT_EQ(HttpGet(soap_port, "/SET-ERPIntegration/SET/WSGoodsCatalogImport").status, 404);
  EXPECT_EQ(HttpGet(soap_port, "/status").status, 404);
  EXPECT_EQ(CtlJson({"status"})["soap"]["state"], "up");

  json reply = CtlJson({"soap", "stop"});
  EXPECT_EQ(reply["soap"]["state"], "down");
  EXPECT_EQ(HttpGet(soap_port, import).status, -1) << "the port is closed";
  EXPECT_EQ(HttpGet(soap_port, feedback).status, -1);

  reply = CtlJson({"soap", "start"});
  EXPECT_EQ(reply["soap"]["state"], "up");
  EXPECT_EQ(reply["soap"]["address"], "127.0.0.1:" + std::to_string(soap_port));
  EXPECT_EQ(HttpGet(soap_port, import).status, 200);
  std::string log = sim_->Log();
  EXPECT_NE(log.find("soap: -> down"), std::string::npos) << log;
  EXPECT_NE(log.find("soap: -> up"), std::string::npos) << log;
}

TEST_F(StoreSimTest, TransportLoadsOnRunningTillsAndStallsOnRequest) {
  StartSim({"--erp-every", "500ms", "--process-delay", "100ms", "--load-delay", "300ms",
            "--mothballed", "5"});
  CtlJson({"stop", "4"});
  json reply = CtlJson({"transport", "stall", "1-2"});
  EXPECT_EQ(reply["changed"], json({1, 2}));
  EXPECT_EQ(reply["transport"]["stalled"], json({1, 2}));
  EXPECT_EQ(reply["tills"][0]["transport"], "stalled");
  EXPECT_EQ(reply["tills"][2]["transport"], "loading");
  std::this_thread::sleep_for(700ms);  // let anything in flight settle

  auto a1 = CashActivity();
  auto f1 = ProductFiles();
  std::this_thread::sleep_for(2500ms);
  auto a2 = CashActivity();
  auto f2 = ProductFiles();
  // Running, loading till: its load date moves.
  EXPECT_GT(a2[3].lastload, a1[3].lastload) << sim_->Log();
  EXPECT_GE(f2[3] - f1[3], 3);
  // Stalled tills: a growing count, no loads; they still ping.
  for (int n : {1, 2}) {
    EXPECT_GE(a2[n].notloaded - a1[n].notloaded, 3) << "till " << n;
    EXPECT_EQ(a2[n].lastload, a1[n].lastload) << "till " << n;
  }
  EXPECT_TRUE(Advancing().count(1));
  // Stopped and mothballed tills get no files and load nothing.
  EXPECT_EQ(f2[4], f1[4]);
  EXPECT_EQ(a2[4].lastload, a1[4].lastload);
  EXPECT_EQ(f2.count(5), 0u);
  EXPECT_EQ(a2[5].notloaded, 0);
  EXPECT_EQ(a2[5].lastload, 0.0);

  // ERP quiet: running tills get to zero, lastprocessedid = their newest file.
  CtlJson({"erp", "stop"});
  EXPECT_TRUE(WaitFor([&] { return PackageCounts()[2] == 0; }, 3s)) << sim_->Log();
  EXPECT_TRUE(WaitFor([&] { return CashActivity()[3].notloaded == 0; }, 3s)) << sim_->Log();
  auto a3 = CashActivity();
  EXPECT_EQ(a3[3].lastprocessedid, NewestFile(3));
  EXPECT_GT(a3[1].notloaded, 0);
  auto lag = Query(
      pg_->ConnString("set"),
      "SELECT EXTRACT(EPOCH FROM localtimestamp - lastproductsloaddate)::float8 FROM cash_activity "
      "WHERE shopnumber = 1042 AND cashnumber = 3");
  EXPECT_LT(std::abs(std::stod(lag[0][0])), 5.0) << "lastproductsloaddate should be local time";

  json status = CtlJson({"status"});
  EXPECT_EQ(status["tills"][0]["notloaded"].get<int64_t>(), a3[1].notloaded);
  EXPECT_EQ(status["tills"][2]["notloaded"], 0);
  EXPECT_TRUE(status["tills"][2]["lastproductsloaddate_ms"].is_number_integer());
  EXPECT_TRUE(status["tills"][4]["lastproductsloaddate_ms"].is_null());

  // Resumed: the stalled tills catch up.
  reply = CtlJson({"transport", "resume", "all"});
  EXPECT_EQ(reply["changed"], json({1, 2}));
  EXPECT_TRUE(WaitFor(
      [&] {
        auto a = CashActivity();
        return a[1].notloaded == 0 && a[2].notloaded == 0;
      },
      3s))
      << sim_->Log();
  auto a4 = CashActivity();
  EXPECT_EQ(a4[1].lastprocessedid, NewestFile(1));
  EXPECT_GT(a4[1].lastload, a3[1].lastload);
  EXPECT_NE(sim_->Log().find("transport: stall 1-2: tills 1-2 -> stalled"), std::string::npos);
}

// The goods tables carry exactly the columns SET's entity classes name
// (../shared/docs/domain.md), not guesses of our own: a watcher tested
// against the simulator then reads a real store's tables too.
TEST_F(StoreSimTest, GoodsTablesHaveTheColumnsSetHas) {
  StartSim({"--erp-every", "300ms", "--process-delay", "100ms", "--load-delay", "100ms"});
  auto columns = [&](const std::string& table) {
    std::set<std::string> out;
    for (const auto& row :
         Query(pg_->ConnString("set"),
               "SELECT column_name FROM information_schema.columns WHERE table_name = '" + table +
                   "'")) {
      out.insert(row[0]);
    }
    return out;
  };
  EXPECT_EQ(columns("erp_transport_package"),
            (std::set<std::string>{"ti", "timedate", "statusid", "statusname", "importtype"}));
  EXPECT_EQ(columns("cash_activity"),
            (std::set<std::string>{"shopnumber", "cashnumber", "lastproductsloaddate",
                                   "lastproductsloadcount", "notloadedproductscount",
                                   "lastprocessedid", "cashtemplatename"}));
  EXPECT_EQ(columns("un_cg_product_file_for_cashes"),
            (std::set<std::string>{"id", "file_name", "import_date", "cash_number", "shop_number",
                                   "objects_count"}));
  // Product files carry their goods, loads count them.
  ASSERT_TRUE(WaitFor([&] { return CashActivity()[1].lastprocessedid > 0; }, 10s)) << sim_->Log();
  auto files = Query(
      pg_->ConnString("set"),
      "SELECT file_name, objects_count FROM un_cg_product_file_for_cashes WHERE cash_number = 1 "
      "ORDER BY id LIMIT 1");
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0][0].rfind("products_TI-1042-", 0), 0u) << files[0][0];
  EXPECT_EQ(files[0][1], "2");
  auto loaded = Query(
      pg_->ConnString("set"),
      "SELECT lastproductsloadcount FROM cash_activity WHERE shopnumber = 1042 AND cashnumber = 1");
  EXPECT_GE(std::stoi(loaded[0][0]), 2);
}

// SET's JVM writes local time in its own zone whatever the database's
// TimeZone: --time-zone plays that on a cluster initialised as UTC.
TEST(StoreSimTimeZone, WritesNaiveTimestampsInTheGivenZone) {
  PgServer::Options o;
  o.timezone = "UTC";
  auto pg = PgServer::Start(o);
  std::string dir = MakeTempDir("storesim-tz");
  int control = FreePort();
  Process sim(
      {SETDIAG_STORE_SIM_BIN, "run", "--pg", pg->ServerConnString(), "--store", "1042", "--tills",
       "2", "--interval", "200ms", "--control", "127.0.0.1:" + std::to_string(control),
       "--probe-port", "0", "--time-zone", "Europe/Moscow"},
      dir + "/sim.log");
  auto lag = [&] {
    auto rows = QueryOr(pg->ConnString("set_operday"),
                        "SELECT EXTRACT(EPOCH FROM (now() AT TIME ZONE 'Europe/Moscow') - "
                        "max(lastactivity))::float8 "
                        "FROM od_cash_status");
    return rows.empty() || rows[0][0] == "<null>" ? 1e9 : std::stod(rows[0][0]);
  };
  ASSERT_TRUE(WaitFor([&] { return std::abs(lag()) < 5.0; }, 15s))
      << sim.Log() << "\nlag " << lag();
  EXPECT_EQ(PgQuery(pg->ConnString("set_operday"), "SHOW TimeZone")[0][0], "UTC");
  auto bad = RunCommand({SETDIAG_STORE_SIM_BIN, "run", "--pg", pg->ServerConnString(), "--store",
                         "1", "--control", "127.0.0.1:1", "--time-zone", "Mars/Olympus"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--time-zone"), std::string::npos) << bad.err;
  EXPECT_EQ(sim.Stop(), 0);
  std::filesystem::remove_all(dir);
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
  EXPECT_EQ(run({"run", "--store", "1042", "--control", "127.0.0.1:1", "--tills", "0"}).exit_code,
            2);
  EXPECT_EQ(
      run({"run", "--store", "1042", "--control", "127.0.0.1:1", "--interval", "soon"}).exit_code,
      2);
  auto r = run({"run", "--store", "1042", "--control", "127.0.0.1:1", "--mothballed", "21"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("outside 1-20"), std::string::npos) << r.err;

  // Nobody listens on the control port yet.
  EXPECT_EQ(Ctl({"status"}).exit_code, 1);
  EXPECT_EQ(Ctl({"stop", "x-y"}).exit_code, 2);
  EXPECT_EQ(Ctl({"reboot", "1"}).exit_code, 2);

  EXPECT_EQ(
      run({"run", "--store", "1042", "--control", "127.0.0.1:1", "--erp-every", "often"}).exit_code,
      2);
  EXPECT_EQ(
      run({"run", "--store", "1042", "--control", "127.0.0.1:1", "--process-delay", "x"}).exit_code,
      2);
  EXPECT_EQ(
      run({"run", "--store", "1042", "--control", "127.0.0.1:1", "--soap", "nowhere"}).exit_code,
      2);
  EXPECT_EQ(Ctl({"erp", "pause"}).exit_code, 2);
  EXPECT_EQ(Ctl({"transport", "stall"}).exit_code, 2);

  StartSim();
  r = Ctl({"stop", "6"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("outside 1-5"), std::string::npos) << r.err;
  EXPECT_EQ(Ctl({"transport", "stall", "6"}).exit_code, 2);
  r = Ctl({"soap", "stop"});
  EXPECT_EQ(r.exit_code, 2) << "no --soap given";
  EXPECT_NE(r.err.find("--soap"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace setdiag::testing
