// `setdiag-agent check` against a real store: PostgreSQL with SET's tables
// filled by the simulator, a real collector. Each case breaks one thing the
// engineer on site could get wrong and expects that line to fail with its
// hint, and the exit code to say so.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <regex>

#include "tests/integration/harness.h"
#include "tests/integration/pg_server.h"

namespace setdiag::testing {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

class AgentCheck : public ::testing::Test {
 protected:
  void SetUp() override {
    PgServer::Options o;
    o.password_encryption = "scram-sha-256";
    // The agent's role needs its password; the simulator keeps trust.
    o.hba_lines = {"host all setdiag_ro 127.0.0.1/32 scram-sha-256"};
    pg_ = PgServer::Start(o);
    PgQuery(pg_->ConnString(), "CREATE ROLE setdiag_ro LOGIN PASSWORD 'ro-Secret'");
    d_ = std::make_unique<Deployment>("check");
    control_port_ = FreePort();
    sim_ = std::make_unique<Process>(
        std::vector<std::string>{SETDIAG_STORE_SIM_BIN, "run", "--pg", pg_->ServerConnString(),
                                 "--store", "1042", "--tills", "20", "--interval", "500ms",
                                 "--control", "127.0.0.1:" + std::to_string(control_port_),
                                 "--probe-port", std::to_string(FreePort())},
        d_->dir() + "/sim.log");
    ASSERT_TRUE(WaitFor(
        [&] {
          try {
            return PgQuery(pg_->ConnString("set"),
                           "SELECT count(*) FROM cash_cash WHERE status = 'ACTIVE'")[0][0] == "20";
          } catch (const std::exception&) {
            return false;
          }
        },
        30s))
        << sim_->Log();
    PgQuery(pg_->ConnString("set"), "GRANT SELECT ON ALL TABLES IN SCHEMA public TO setdiag_ro");
    PgQuery(pg_->ConnString("set_operday"),
            "GRANT SELECT ON ALL TABLES IN SCHEMA public TO setdiag_ro");
    d_->StartCollector();
    password_file_ = d_->dir() + "/pg.password";
    WriteFile(password_file_, "ro-Secret\n");
    chmod(password_file_.c_str(), 0600);  // the agent refuses a password file others can read
    agent_ = &d_->AddAgent("1042", d_->CreateStoreToken("1042", "acme"), DbConfig());
  }

  std::string DbConfig() const {
    return "[tills]\nprobe_timeout = \"300ms\"\n"
           "[set_db]\nenabled = true\nhost = \"127.0.0.1\"\nport = " +
           std::to_string(pg_->port()) + "\nuser = \"setdiag_ro\"\npassword_file = \"" +
           password_file_ +
           "\"\nconnect_timeout = \"2s\"\n"
           "[server]\ncheck = false\n";
  }

  CommandResult Check(const std::string& lang = "en") {
    return RunCommand({SETDIAG_AGENT_BIN, "--config", agent_->config_path, "check", "--timeout",
                       AgentCheckTimeout(), "--lang", lang});
  }
  json CheckJson() {
    CommandResult r = RunCommand({SETDIAG_AGENT_BIN, "--config", agent_->config_path, "check",
                                  "--timeout", AgentCheckTimeout(), "--json"});
    return json::parse(r.out);
  }
  static const json* Line(const json& report, const std::string& id) {
    for (const auto& c : report["checks"])
      if (c["id"] == id) return &c;
    return nullptr;
  }
  void EditConfig(const std::string& from, const std::string& to) {
    std::string cfg = ReadFile(agent_->config_path);
    cfg = std::regex_replace(cfg, std::regex(from), to);
    WriteFile(agent_->config_path, cfg);
  }

  std::unique_ptr<PgServer> pg_;
  std::unique_ptr<Deployment> d_;
  std::unique_ptr<Process> sim_;
  AgentSetup* agent_ = nullptr;
  std::string password_file_;
  int control_port_ = 0;
};

TEST_F(AgentCheck, AWorkingStorePassesEveryLineAndExitsZero) {
  CommandResult r = Check();
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("✓ SET's till registry: 20 ACTIVE"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("reported in the last 10 minutes"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("token accepted for store 1042"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("all checks passed"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("✗"), std::string::npos) << r.out;
  // In Russian too, from --lang.
  CommandResult ru = Check("ru");
  EXPECT_EQ(ru.exit_code, 0);
  EXPECT_NE(ru.out.find("токен принят для магазина 1042"), std::string::npos) << ru.out;
  // The handshake stored nothing: no event, and the store never connected.
  EXPECT_EQ(d_->EventCount("1042"), 0u);
  EXPECT_NE(d_->collector().Log().find("preflight check from agent"), std::string::npos);
  EXPECT_EQ(d_->collector().Log().find(" connected from "), std::string::npos)
      << d_->collector().Log();
  // Nor on the agent's side: no outbox, no state database.
  EXPECT_FALSE(std::filesystem::exists(agent_->state_dir + "/outbox.db"));
  EXPECT_FALSE(std::filesystem::exists(agent_->state_dir + "/state.db"));
}

TEST_F(AgentCheck, AWrongDatabasePasswordFailsTheDatabaseLineWithTheHint) {
  WriteFile(password_file_, "not-the-password\n");
  CommandResult r = Check();
  EXPECT_EQ(r.exit_code, 1) << r.out;
  json report = CheckJson();
  const json* roster = Line(report, "set_db.roster");
  ASSERT_NE(roster, nullptr) << report.dump(2);
  EXPECT_EQ((*roster)["verdict"], "fail");
  EXPECT_NE((*roster)["text_en"].get<std::string>().find("password authentication failed"),
            std::string::npos)
      << roster->dump(2);
  EXPECT_NE((*roster)["fix_en"].get<std::string>().find("set_db.password_file"), std::string::npos)
      << roster->dump(2);
  // The rest still runs: the collector line is there and passes.
  ASSERT_NE(Line(report, "collector"), nullptr);
  EXPECT_EQ((*Line(report, "collector"))["verdict"], "ok");
}

TEST_F(AgentCheck, AColumnUnderAnotherNameIsNamedWithTheKeyThatOverridesTheQuery) {
  // Another SET version: the till's status column is called cash_status.
  PgQuery(pg_->ConnString("set"), "ALTER TABLE cash_cash RENAME COLUMN status TO cash_status");
  CommandResult r = Check();
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("✗ SET's till registry"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("missing cash_cash.status"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("set_db.roster_query"), std::string::npos) << r.out;
  // With the query overridden as the hint says, the line passes again.
  std::string cfg = ReadFile(agent_->config_path);
  cfg.replace(cfg.find("[set_db]\n"), 9,
              "[set_db]\nroster_query = \"SELECT number, cash_status, cash_ip, shop_number FROM "
              "cash_cash\"\n");
  WriteFile(agent_->config_path, cfg);
  CommandResult fixed = Check();
  EXPECT_NE(fixed.out.find("✓ SET's till registry: 20 ACTIVE"), std::string::npos) << fixed.out;
}

TEST_F(AgentCheck, ACollectorDownFailsTheCollectorLineWithTheFirewallHint) {
  d_->StopCollector();
  CommandResult r = Check();
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(
      r.out.find("✗ collector 127.0.0.1:" + std::to_string(d_->grpc_port()) + ": not reachable"),
      std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("firewall"), std::string::npos) << r.out;
  // SET's side is unaffected.
  EXPECT_NE(r.out.find("✓ SET's till registry"), std::string::npos) << r.out;
}

// A port that takes connections and never answers (a collector hung, or a
// proxy holding them) waits `--timeout` seconds and says so, with the hint
// to wait longer on a slow link.
TEST_F(AgentCheck, ACollectorThatNeverAnswersTimesOutAfterTheGivenTimeout) {
  d_->StopCollector();
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(d_->grpc_port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << strerror(errno);
  ASSERT_EQ(listen(fd, 16), 0);  // the kernel completes the handshakes; nobody reads
  CommandResult r = RunCommand({SETDIAG_AGENT_BIN, "--config", agent_->config_path, "check",
                                "--timeout", "1.5", "--lang", "en"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("✗ collector 127.0.0.1:" + std::to_string(d_->grpc_port()) +
                       ": no answer within 1.5 s"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("longer --timeout"), std::string::npos) << r.out;
  CommandResult ru = RunCommand({SETDIAG_AGENT_BIN, "--config", agent_->config_path, "check",
                                 "--timeout", "0.5", "--lang", "ru"});
  close(fd);
  EXPECT_NE(ru.out.find("нет ответа за 0.5 с"), std::string::npos) << ru.out;
}

TEST_F(AgentCheck, AWrongTokenFailsTheTokenLineWithWhereToGetOne) {
  WriteFile(d_->dir() + "/agent0.token", "sdst_not-a-real-token\n");
  CommandResult r = Check();
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("✗ collector 127.0.0.1:" + std::to_string(d_->grpc_port()) +
                       ": the store token was refused"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("setdiag-collector token create --store 1042"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("sdst_not-a-real-token"), std::string::npos) << "the token is never printed";
}

TEST_F(AgentCheck, ATokenOfAnotherStoreIsNamedAsSuch) {
  WriteFile(d_->dir() + "/agent0.token", d_->CreateStoreToken("2077", "acme") + "\n");
  CommandResult r = Check();
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.out.find("the token is not for store 1042"), std::string::npos) << r.out;
}

TEST_F(AgentCheck, ATokenFileOthersCanReadIsRefusedBeforeAnythingRuns) {
  chmod((d_->dir() + "/agent0.token").c_str(), 0644);
  CommandResult r = Check();
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("chmod 600 " + d_->dir() + "/agent0.token"), std::string::npos) << r.err;
}

// Issue 13: the database password is a secret like the store token.
TEST_F(AgentCheck, APasswordFileOthersCanReadIsRefusedBeforeAnythingRuns) {
  chmod(password_file_.c_str(), 0640);
  CommandResult r = Check();
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.err.find("key 'set_db.password_file': " + password_file_ +
                       " is open to group or others (mode 0640)"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("chmod 600 " + password_file_), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("chown setdiag " + password_file_), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("ro-Secret"), std::string::npos) << "the password is never printed";
  EXPECT_EQ(r.out, "") << "no check ran";
  // Every subcommand loads the same config (run as well).
  CommandResult run = RunCommand({SETDIAG_AGENT_BIN, "--config", agent_->config_path, "status"});
  EXPECT_EQ(run.exit_code, 2) << run.err;
}

}  // namespace
}  // namespace setdiag::testing
