// Upgrades lose nothing: the databases the first release (0.1.0) wrote,
// checked in under tests/fixtures/release-0.1.0 (made by its make.sh from
// that release's scripts/demo), are opened by this build's binaries. Every
// row of every table must still be there unchanged, the collector must show
// the old tickets and events, and the events 0.1.0 left unsent in the
// agent's outbox must reach the collector, once each.

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "common/sqlite.h"
#include "tests/integration/harness.h"

namespace setdiag::testing {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const std::string kFixtures = std::string(SETDIAG_FIXTURES_DIR) + "/release-0.1.0";

// Every row of every table, as SQL literals, by table.
std::map<std::string, std::multiset<std::string>> Rows(const std::string& path) {
  std::map<std::string, std::multiset<std::string>> out;
  auto db = sql::Db::Open(path);
  if (!db.ok()) throw std::runtime_error(db.status().ToString());
  auto tables = db->Prepare(
      "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY "
      "name");
  if (!tables.ok()) throw std::runtime_error(tables.status().ToString());
  std::vector<std::string> names;
  while (*tables->Step()) names.push_back(tables->Text(0));
  for (const auto& t : names) {
    auto cols = db->Prepare("SELECT name FROM pragma_table_info(?) ORDER BY cid");
    cols->Bind(1, t);
    std::string expr;
    while (*cols->Step())
      expr += (expr.empty() ? "" : " || ',' || ") + ("quote(\"" + cols->Text(0) + "\")");
    auto rows = db->Prepare("SELECT " + expr + " FROM \"" + t + "\"");
    if (!rows.ok()) throw std::runtime_error(rows.status().ToString());
    auto& set = out[t];
    while (*rows->Step()) set.insert(rows->Text(0));
  }
  return out;
}

int64_t Count(const std::string& path, const std::string& query) {
  auto db = sql::Db::Open(path);
  auto v = db->QueryInt(query);
  if (!v.ok()) throw std::runtime_error(v.status().ToString());
  return *v;
}

std::string Text(const std::string& path, const std::string& query) {
  auto db = sql::Db::Open(path);
  auto v = db->QueryText(query);
  if (!v.ok()) throw std::runtime_error(v.status().ToString());
  return *v;
}

// What is missing or changed: rows of `before` not in `after`.
std::string Lost(const std::map<std::string, std::multiset<std::string>>& before,
                 const std::map<std::string, std::multiset<std::string>>& after) {
  std::string lost;
  for (const auto& [table, rows] : before) {
    auto it = after.find(table);
    if (it == after.end()) {
      lost += "table " + table + " is gone\n";
      continue;
    }
    for (const auto& row : rows) {
      if (it->second.count(row) < rows.count(row)) lost += table + ": " + row.substr(0, 200) + "\n";
    }
  }
  return lost;
}

void CopyFixture(const std::string& name, const std::string& to) {
  fs::create_directories(fs::path(to).parent_path());
  fs::copy_file(kFixtures + "/" + name, to, fs::copy_options::overwrite_existing);
}

class UpgradeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(kFixtures + "/collector/collector.db")) << kFixtures;
    db_ = d_.dir() + "/collector/collector.db";
    for (const char* ext : {"", "-wal", "-shm"}) fs::remove(db_ + ext);
    CopyFixture("collector/collector.db", db_);
    before_ = Rows(db_);
    ASSERT_EQ(Count(db_, "PRAGMA user_version"), 0) << "0.1.0 did not set a schema version";
  }

  Deployment d_{"upgrade"};
  std::string db_;
  std::map<std::string, std::multiset<std::string>> before_;
};

TEST_F(UpgradeTest, TheFirstReleasesCollectorDatabaseKeepsEveryRowAndShowsItsTickets) {
  ASSERT_GT(before_["tickets"].size(), 1u) << "the fixture holds the demo's two tickets";
  ASSERT_GE(before_["events"].size(), 4u);
  ASSERT_FALSE(before_["bundles"].empty());
  ASSERT_FALSE(before_["notifications"].empty());

  // The first command of the new build opens (and migrates) the database.
  const std::string token = d_.CreateUser("upgrade-desk", "support");
  d_.UseSupportToken(token);
  EXPECT_EQ(Count(db_, "PRAGMA user_version"), 2) << "0.1.0 (0, schema 1) -> 2: the list indexes";
  EXPECT_EQ(Lost(before_, Rows(db_)), "") << "rows of 0.1.0 lost or changed by the upgrade";
  EXPECT_EQ(Count(db_,
                  "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN "
                  "('agents_by_store', 'stores_by_partner', 'tickets_by_partner')"),
            3);

  d_.StartCollector();
  auto tickets = d_.Cli({"--json", "tickets", "list", "--state", "all"}, token);
  ASSERT_EQ(tickets.exit_code, 0) << tickets.err;
  auto listed = json::parse(tickets.out)["tickets"];
  std::set<int64_t> ids;
  for (const auto& t : listed) ids.insert(t["id"].get<int64_t>());
  EXPECT_EQ(static_cast<int64_t>(ids.size()), Count(db_, "SELECT count(*) FROM tickets"));
  for (int64_t id : ids) {
    auto shown = d_.Cli({"--json", "tickets", "show", std::to_string(id)}, token);
    ASSERT_EQ(shown.exit_code, 0) << shown.err;
    auto t = json::parse(shown.out);
    ASSERT_TRUE(t.contains("timeline")) << shown.out.substr(0, 500);
    EXPECT_GE(
        static_cast<int64_t>(t["timeline"].size()),
        Count(db_, "SELECT count(*) FROM ticket_timeline WHERE ticket_id = " + std::to_string(id)))
        << "ticket " << id;
  }
  auto events = d_.Events("1042", token);
  EXPECT_EQ(static_cast<int64_t>(events.size()),
            Count(db_, "SELECT count(*) FROM events WHERE store_id = '1042'"));
}

TEST_F(UpgradeTest, EventsTheFirstReleaseLeftInTheOutboxAreSentOnceByTheNewAgent) {
  const std::string token = d_.CreateUser("upgrade-desk", "support");
  d_.UseSupportToken(token);
  const std::string partner = Text(db_, "SELECT partner FROM stores WHERE store_id = '1042'");
  ASSERT_FALSE(partner.empty());
  d_.StartCollector();
  const size_t stored_before = d_.Events("1042", token).size();

  auto& agent = d_.AddAgent("1042", d_.CreateStoreToken("1042", partner));
  fs::create_directories(agent.state_dir);
  for (const char* f : {"outbox.db", "state.db", "history.db", "agent-id"}) {
    CopyFixture(std::string("agent/") + f, agent.state_dir + "/" + f);
  }
  const std::string outbox = agent.state_dir + "/outbox.db";
  const std::string state = agent.state_dir + "/state.db";
  const std::string history = agent.state_dir + "/history.db";
  ASSERT_EQ(Count(outbox, "SELECT count(*) FROM outbox WHERE kind = 'upgrade.unsent'"), 3);
  ASSERT_EQ(Count(outbox, "PRAGMA user_version"), 0);
  const auto outbox_before = Rows(outbox);
  const auto state_before = Rows(state);
  ASSERT_EQ(state_before.at("maintenance").size(), 2u) << "the fixture's two maintenance windows";
  const auto history_before = Rows(history);

  // The engineer's first commands after the upgrade open (and migrate) the files.
  auto windows =
      RunCommand({SETDIAG_AGENT_BIN, "--config", agent.config_path, "maintenance", "list"});
  ASSERT_EQ(windows.exit_code, 0) << windows.err;
  auto status = RunCommand({SETDIAG_AGENT_BIN, "--config", agent.config_path, "status"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_EQ(json::parse(status.out)["depth"].get<int64_t>(),
            Count(outbox, "SELECT count(*) FROM outbox"))
      << status.out;
  EXPECT_EQ(Count(state, "PRAGMA user_version"), 1);
  EXPECT_EQ(Lost(state_before, Rows(state)), "");
  EXPECT_EQ(Lost(outbox_before, Rows(outbox)), "");

  d_.StartAgent(agent);
  auto unsent = [&] {
    json found = json::array();
    for (const auto& e : d_.Events("1042", token)) {
      if (e["kind"] == "upgrade.unsent") found.push_back(e);
    }
    return found;
  };
  ASSERT_TRUE(WaitFor([&] { return unsent().size() >= 3; }, std::chrono::seconds(30)))
      << agent.process->Log();
  auto got = unsent();
  std::set<int> ns;
  for (const auto& e : got) ns.insert(e["payload"]["n"].get<int>());
  EXPECT_EQ(got.size(), 3u) << "each once";
  EXPECT_EQ(ns, (std::set<int>{1, 2, 3}));
  EXPECT_EQ(d_.Events("1042", token).size(), stored_before + 3)
      << "nothing stored before is sent again";
  EXPECT_EQ(agent.process->Stop(), 0) << agent.process->Log();
  EXPECT_EQ(Count(outbox, "PRAGMA user_version"), 1);
  EXPECT_EQ(Count(history, "PRAGMA user_version"), 1);
  EXPECT_EQ(Lost(history_before, Rows(history)), "") << "the findings 0.1.0 recorded are kept";
}

}  // namespace
}  // namespace setdiag::testing
