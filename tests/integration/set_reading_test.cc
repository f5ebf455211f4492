// How the agent reads SET's data, end to end (agent/sources/set_db.h,
// agent/sources/set_checks.h): a database whose TimeZone is not the store's, a SET
// version whose columns differ from the defaults, several shops in one
// database. Real PostgreSQL, simulator, agent, collector and CLI.

#include <gtest/gtest.h>

#include <thread>

#include "tests/integration/harness.h"
#include "tests/integration/pg_server.h"

namespace setdiag::testing {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

constexpr const char* kFastTills =
    "[tills]\n"
    "poll_interval = \"500ms\"\nheartbeat_timeout = \"3s\"\nconfirm_window = \"3s\"\n"
    "clear_window = \"3s\"\nunreachable_confirm = \"2s\"\nprobe_timeout = \"300ms\"\nprobe_port = "
    "1\n";

std::string SetDb(int port, const std::string& more = "") {
  return "[set_db]\nenabled = true\nhost = \"127.0.0.1\"\nport = " + std::to_string(port) +
         "\nconnect_timeout = \"1s\"\nfailure_confirm = \"1s\"\n" + more +
         "[server]\ncheck = false\n";
}

// `setdiag-agent check --json` with the agent's config.
CommandResult Check(const AgentSetup& a) {
  return RunCommand({SETDIAG_AGENT_BIN, "--config", a.config_path, "check", "--timeout",
                     AgentCheckTimeout(), "--json", "--lang", "en"});
}

// The line `id` of a check's JSON output (null if absent or not JSON).
json CheckLine(const CommandResult& r, const std::string& id) {
  json body = json::parse(r.out, nullptr, false);
  if (!body.is_object() || !body.contains("checks")) return json();
  for (const auto& c : body["checks"]) {
    if (c.value("id", "") == id) return c;
  }
  return json();
}

bool WaitForEvent(Deployment& d, const std::string& store, const std::string& kind,
                  const std::string& state, std::chrono::seconds timeout) {
  return WaitFor([&] { return !FindEvents(d.Events(store), kind, state).empty(); }, timeout, 200ms);
}

// A cluster initialised as UTC on a Moscow store: SET (the simulator, as
// SET's JVM) writes Moscow local time without zone.
TEST(SetTimeZone, AUtcClusterOnAMoscowStoreStillRaisesAStoppedMajority) {
  PgServer::Options o;
  o.timezone = "UTC";
  auto pg = PgServer::Start(o);
  Deployment d("set-tz");
  int control = FreePort();
  Process sim(
      {SETDIAG_STORE_SIM_BIN, "run", "--pg", pg->ServerConnString(), "--store", "1042", "--tills",
       "20", "--interval", "500ms", "--control", "127.0.0.1:" + std::to_string(control),
       "--probe-port", "0", "--time-zone", "Europe/Moscow"},
      d.dir() + "/sim.log");
  ASSERT_TRUE(WaitFor([&] { return SimCtl(control, {"status"}).exit_code == 0; }, 30s))
      << sim.Log();
  d.StartCollector();
  // The store's calendar says Moscow: SET's timestamps are read there.
  AgentSetup& msk = d.AddAgent(
      "msk", d.CreateStoreToken("msk", "acme"),
      std::string(kFastTills) + SetDb(pg->port()) + "[calendar]\ntime_zone = \"Europe/Moscow\"\n");
  // No zone configured: the session's (UTC) is used, and every heartbeat is
  // three hours in the future: the agent says so.
  AgentSetup& utc = d.AddAgent("utc", d.CreateStoreToken("utc", "acme"),
                               std::string(kFastTills) + SetDb(pg->port()));
  d.StartAgent(msk);
  d.StartAgent(utc);

  ASSERT_TRUE(WaitForEvent(d, "utc", "set.clock_skew", "raised", 30s)) << utc.process->Log();
  json skew = FindEvents(d.Events("utc"), "set.clock_skew", "raised")[0];
  EXPECT_EQ(skew["severity"], "important");
  EXPECT_EQ(skew["payload"]["likely_cause"]["code"], "time_zone") << skew.dump(2);
  EXPECT_EQ(skew["payload"]["session_time_zone"], "UTC");
  EXPECT_GT(skew["payload"]["heartbeat_lead_ms"].get<int64_t>(), 3 * 3'600'000 - 60'000);
  EXPECT_NE(skew["payload"]["fix_en"].get<std::string>().find("set_db.time_zone"),
            std::string::npos);
  EXPECT_TRUE(FindEvents(d.Events("msk"), "set.clock_skew", "raised").empty())
      << msk.process->Log();

  ASSERT_EQ(SimCtl(control, {"stop", "1-11"}).exit_code, 0);
  ASSERT_TRUE(WaitForEvent(d, "msk", "tills.majority_stopped", "raised", 30s))
      << msk.process->Log();
  json critical = FindEvents(d.Events("msk"), "tills.majority_stopped", "raised")[0];
  EXPECT_EQ(critical["payload"]["stopped"], 11) << critical.dump(2);
  // The misread store sees nothing stop (its heartbeats are "in the future").
  EXPECT_TRUE(FindEvents(d.Events("utc"), "tills.majority_stopped", "raised").empty());

  auto list = d.Cli({"stores", "list"});
  EXPECT_EQ(list.exit_code, 0) << list.err;
  EXPECT_NE(list.out.find("set.clock_skew important"), std::string::npos) << list.out;
}

// An older SET: cash_activity spelled cashnum/shopnum, and a replacement
// activity query naming a column that is not there. Each source that does
// not fit raises agent.source_failed with its key; what still fits is read.
TEST(SetSources, QueriesThatDoNotFitRaiseSourceFailedShownInStoresList) {
  auto pg = PgServer::Start();
  const std::string db = pg->ConnString();
  PgQuery(db, "CREATE DATABASE set");
  PgQuery(db, "CREATE DATABASE set_operday");
  PgQuery(
      pg->ConnString("set"),
      "CREATE TABLE cash_cash (number int, shop_number int, status text, cash_ip text);"
      "INSERT INTO cash_cash VALUES (1, 1042, 'ACTIVE', NULL), (2, 1042, 'ACTIVE', NULL);"
      "CREATE TABLE erp_transport_package (ti text, timedate timestamp, statusid int, statusname "
      "text, "
      "importtype text);"
      "INSERT INTO erp_transport_package VALUES ('TI-1', localtimestamp - interval '1 hour', 2, "
      "'in process', "
      "'GOODS');"
      "CREATE TABLE cash_activity (cashnum int, shopnum int, lastproductsloaddate timestamp, "
      "notloadedproductscount int, lastprocessedid bigint);"
      "CREATE TABLE un_cg_product_file_for_cashes (id bigint, cash_number int, shop_number int, "
      "import_date timestamp)");
  PgQuery(pg->ConnString("set_operday"),
          "CREATE TABLE od_cash_status (cashnum int, shopnum int, lastactivity timestamp);"
          "INSERT INTO od_cash_status VALUES (1, 1042, localtimestamp), (2, 1042, localtimestamp)");
  Deployment d("set-sources");
  d.StartCollector();
  AgentSetup& a = d.AddAgent(
      "1042", d.CreateStoreToken("1042", "acme"),
      std::string(kFastTills) +
          SetDb(pg->port(), "activity_query = \"SELECT cashnum, lastping FROM od_cash_status\"\n") +
          "[loading]\npoll_interval = \"500ms\"\nstuck_threshold = \"2s\"\nserver_confirm = "
          "\"1s\"\n");
  // The preflight shows the same: the activity query fails naming its key.
  auto checked = Check(a);
  EXPECT_EQ(checked.exit_code, 1) << checked.out;
  json act = CheckLine(checked, "set_db.activity");
  EXPECT_EQ(act["verdict"], "fail") << checked.out;
  EXPECT_NE(act.value("fix_en", "").find("set_db.activity_query"), std::string::npos)
      << checked.out;
  EXPECT_NE(act.value("text_en", "").find("lastping"), std::string::npos) << checked.out;
  json transport_line = CheckLine(checked, "set_db.transport");
  EXPECT_EQ(transport_line["verdict"], "fail") << checked.out;
  EXPECT_NE(transport_line.value("text_en", "").find("cash_activity.cashnumber"), std::string::npos)
      << checked.out;
  EXPECT_EQ(CheckLine(checked, "set_db.roster")["verdict"], "ok") << checked.out;
  d.StartAgent(a);

  auto failed = [&](const std::string& source) {
    for (const auto& e : FindEvents(d.Events("1042"), "agent.source_failed", "raised")) {
      if (e["payload"]["source"] == source) return e;
    }
    return json();
  };
  ASSERT_TRUE(WaitFor(
      [&] { return !failed("tills.activity").is_null() && !failed("loading.transport").is_null(); },
      30s, 200ms))
      << a.process->Log();
  json activity = failed("tills.activity");
  EXPECT_EQ(activity["severity"], "important");
  EXPECT_EQ(activity["payload"]["config_key"], "set_db.activity_query");
  EXPECT_NE(activity["payload"]["error"].get<std::string>().find("lastping"), std::string::npos)
      << activity.dump(2);
  EXPECT_NE(activity["payload"]["fix_en"].get<std::string>().find("set_db.activity_query"),
            std::string::npos);
  // The default transport query is not sent at all: the schema says why.
  json transport = failed("loading.transport");
  EXPECT_EQ(transport["payload"]["config_key"], "set_db.transport_query");
  const std::string error = transport["payload"]["error"];
  EXPECT_NE(error.find("cash_activity.cashnumber"), std::string::npos) << error;
  EXPECT_NE(error.find("set_db.transport_query"), std::string::npos) << error;
  EXPECT_TRUE(failed("loading.packages").is_null()) << "erp_transport_package has SET's columns";
  // Packages are still watched: the stuck one halts loading.
  ASSERT_TRUE(WaitForEvent(d, "1042", "loading.halted", "raised", 30s)) << a.process->Log();
  EXPECT_NE(a.process->Log().find("cash_activity.cashnumber"), std::string::npos);

  // Support sees it on the store: an important ticket per store, one part
  // per failing source.
  ASSERT_TRUE(WaitFor(
      [&] {
        auto list = d.Cli({"stores", "list"});
        return list.out.find("agent.source_failed important") != std::string::npos;
      },
      10s, 200ms))
      << d.Cli({"stores", "list"}).out;
  // A query that does not fit is not an unreachable database.
  EXPECT_TRUE(FindEvents(d.Events("1042"), "set.db_unreachable", "raised").empty())
      << a.process->Log();
}

// Two shops in one database and no set_db.shop_number: the till numbers of
// both would merge; the agent refuses to guess and says which key to set.
TEST(SetShops, TwoShopsWithoutAShopNumberAreAFindingAndNoTillCounts) {
  auto pg = PgServer::Start();
  Deployment d("set-shops");
  int control = FreePort();
  Process sim({SETDIAG_STORE_SIM_BIN, "run", "--pg", pg->ServerConnString(), "--store", "1042",
               "--tills", "20", "--interval", "500ms", "--control",
               "127.0.0.1:" + std::to_string(control), "--probe-port", "0"},
              d.dir() + "/sim.log");
  ASSERT_TRUE(WaitFor([&] { return SimCtl(control, {"status"}).exit_code == 0; }, 30s))
      << sim.Log();
  d.StartCollector();
  AgentSetup& a = d.AddAgent("1042", d.CreateStoreToken("1042", "acme"),
                             std::string(kFastTills) + SetDb(pg->port()));
  // The preflight on the one-shop store: every check passes.
  ASSERT_TRUE(WaitFor([&] { return Check(a).exit_code == 0; }, 20s, 200ms)) << Check(a).out;
  // The neighbouring shop's tills 1..5 in the same registry.
  ASSERT_TRUE(WaitFor(
      [&] {
        try {
          return PgQuery(pg->ConnString("set"), "SELECT count(*) FROM cash_cash")[0][0] == "20";
        } catch (const std::exception&) {
          return false;
        }
      },
      20s, 100ms))
      << sim.Log();
  PgQuery(pg->ConnString("set"),
          "INSERT INTO cash_cash (number, shop_number, status, cash_ip) "
          "SELECT n, 1043, 'ACTIVE', '127.0.2.' || n FROM generate_series(1, 5) AS n");
  // The preflight names the key (item 7: a finding and a check failure).
  auto checked = Check(a);
  EXPECT_EQ(checked.exit_code, 1) << checked.out;
  json shop = CheckLine(checked, "set_db.shop_number");
  EXPECT_EQ(shop["verdict"], "fail") << checked.out;
  EXPECT_NE(shop.value("fix_en", "").find("set_db.shop_number"), std::string::npos) << checked.out;
  d.StartAgent(a);

  ASSERT_TRUE(WaitForEvent(d, "1042", "set.shop_ambiguous", "raised", 30s)) << a.process->Log();
  json e = FindEvents(d.Events("1042"), "set.shop_ambiguous", "raised")[0];
  EXPECT_EQ(e["severity"], "important");
  EXPECT_EQ(e["payload"]["config_key"], "set_db.shop_number");
  EXPECT_EQ(e["payload"]["shops"], json({1042, 1043}));
  EXPECT_NE(e["payload"]["summary_ru"].get<std::string>().find("set_db.shop_number"),
            std::string::npos);

  // Tills stop: with the shops unknown nothing is counted, nothing raised.
  ASSERT_EQ(SimCtl(control, {"stop", "1-15"}).exit_code, 0);
  std::this_thread::sleep_for(8s);  // heartbeat timeout 3 s + confirm 3 s, with room
  EXPECT_TRUE(FindEvents(d.Events("1042"), "tills.majority_stopped", "raised").empty())
      << a.process->Log();
  auto list = d.Cli({"stores", "list"});
  EXPECT_NE(list.out.find("set.shop_ambiguous important"), std::string::npos) << list.out;
  // The database answers: it is not "unreachable" (the finding says what is wrong).
  EXPECT_TRUE(FindEvents(d.Events("1042"), "set.db_unreachable", "raised").empty())
      << a.process->Log();
}

}  // namespace
}  // namespace setdiag::testing
