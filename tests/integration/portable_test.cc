// The portable agent (docs/portability.md): one static executable that
// starts on every x86-64 Linux store server. What we cannot boot here is
// simulated at its limits:
//  - CentOS 7's kernel 3.10: a seccomp filter answers ENOSYS for every
//    system call added after it (setdiag-test-confine --kernel-3.10);
//  - a host whose libraries are not ours (glibc 2.17's NSS modules, no
//    libstdc++ at all): an empty root holding only the binary, its config,
//    /etc/hosts and /etc/resolv.conf (setdiag-test-confine --root).
// In both, the agent watches a real PostgreSQL with the store simulator's
// tills and streams over TLS to a real collector; a critical condition must
// arrive.

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <regex>
#include <thread>

#include "tests/integration/harness.h"
#include "tests/integration/pg_server.h"

namespace setdiag::testing {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
namespace fs = std::filesystem;

TEST(Portable, TheAgentHasNoInterpreterNoSharedLibraryAndNoVersionedSymbol) {
  if (!SETDIAG_AGENT_IS_STATIC) {
    GTEST_SKIP() << "this build links the agent dynamically (SETDIAG_STATIC_AGENT=OFF, as "
                    "sanitizer builds must)";
  }
  CommandResult r =
      RunCommand({"/usr/bin/readelf", "-W", "-h", "-l", "-d", "--dyn-syms", SETDIAG_AGENT_BIN});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("DYN (Position-Independent Executable file)"), std::string::npos)
      << "still a PIE";
  EXPECT_EQ(r.out.find("INTERP"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("(NEEDED)"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("@GLIBC"), std::string::npos) << r.out;
}

TEST(Portable, TheKernel310FilterReallyAnswersEnosys) {
  // The confinement must bite, or the tests below prove nothing: getrandom
  // (Linux 3.17) fails under it and works without it.
  const std::string probe =
      "import os\ntry:\n  os.getrandom(1)\n  print('ok')\nexcept OSError as e:\n  print(e.errno)\n";
  CommandResult plain = RunCommand({SETDIAG_CONFINE_BIN, "--", "/usr/bin/python3", "-c", probe});
  EXPECT_EQ(plain.out, "ok\n") << plain.err;
  CommandResult old =
      RunCommand({SETDIAG_CONFINE_BIN, "--kernel-3.10", "--", "/usr/bin/python3", "-c", probe});
  EXPECT_EQ(old.out, std::to_string(ENOSYS) + "\n") << old.err;
  CommandResult uname =
      RunCommand({SETDIAG_CONFINE_BIN, "--kernel-3.10", "--", "/usr/bin/uname", "-r"});
  EXPECT_EQ(uname.out.rfind("2.6.", 0), 0u) << uname.out;
}

// A store: PostgreSQL with SET's tables, the simulator's 20 tills, a TLS
// collector known as collector.test.
class PortableStore : public ::testing::Test {
 protected:
  void SetUp() override {
    pg_ = PgServer::Start();
    pki_ = MakeTempDir("portable-pki");
    MakeTestPki(pki_, "collector.test");
    d_ = std::make_unique<Deployment>("portable", "tls_cert_file = \"" + pki_ +
                                                      "/server.pem\"\ntls_key_file = \"" + pki_ +
                                                      "/server.key\"\n");
    control_port_ = FreePort();
    probe_port_ = FreePort();
    sim_ = std::make_unique<Process>(
        std::vector<std::string>{SETDIAG_STORE_SIM_BIN, "run", "--pg", pg_->ServerConnString(),
                                 "--store", "1042", "--tills", "20", "--interval", "500ms",
                                 "--control", "127.0.0.1:" + std::to_string(control_port_),
                                 "--probe-port", std::to_string(probe_port_)},
        d_->dir() + "/sim.log");
    ASSERT_TRUE(WaitFor([&] { return SimCtl(control_port_, {"status"}).exit_code == 0; }, 30s))
        << sim_->Log();
    // The simulator fills SET's tables after it starts answering.
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
    d_->StartCollector();
    token_ = d_->CreateStoreToken("1042", "acme");
  }
  void TearDown() override {
    if (!pki_.empty()) fs::remove_all(pki_);
  }

  // The agent's config; `root` is the path prefix the agent sees its files under.
  std::string AgentConfig(const std::string& root, const std::string& extra = "") const {
    return "[agent]\nstore_id = \"1042\"\nstate_dir = \"" + root +
           "/var/lib/setdiag\"\nlog_level = \"debug\"\n"
           "status_interval = \"1s\"\n"
           "[collector]\naddress = \"collector.test:" +
           std::to_string(d_->grpc_port()) +
           "\"\n"
           "token_file = \"" +
           root + "/etc/setdiag/token\"\nca_file = \"" + root +
           "/etc/setdiag/ca.pem\"\n"
           "[backoff]\ninitial = \"100ms\"\nmax = \"500ms\"\n"
           "[tills]\npoll_interval = \"500ms\"\nheartbeat_timeout = \"3s\"\nconfirm_window = "
           "\"3s\"\n"
           "clear_window = \"3s\"\nunreachable_confirm = \"2s\"\nprobe_timeout = \"300ms\"\n"
           "probe_port = " +
           std::to_string(probe_port_) +
           "\n"
           // A name, not an address: resolved from /etc/hosts without NSS.
           "[set_db]\nenabled = true\nhost = \"setdb.test\"\nport = " +
           std::to_string(pg_->port()) +
           "\nuser = \"postgres\"\nconnect_timeout = \"2s\"\n"
           "[server]\ncheck = false\n" +
           extra;
  }

  // Lays out `dir` as the agent's file system: under it, the files the
  // config names. /etc/hosts gives both names; nothing else is there.
  void WriteAgentFiles(const std::string& dir, const std::string& root_in_config,
                       const std::string& extra = "") {
    fs::create_directories(dir + "/etc/setdiag");
    WriteFile(dir + "/etc/setdiag/agent.toml", AgentConfig(root_in_config, extra));
    WriteFile(dir + "/etc/setdiag/token", token_ + "\n");
    fs::permissions(dir + "/etc/setdiag/token", fs::perms::owner_read | fs::perms::owner_write);
    fs::copy_file(pki_ + "/ca.pem", dir + "/etc/setdiag/ca.pem");
    WriteFile(dir + "/etc/hosts", "127.0.0.1 localhost collector.test setdb.test\n");
    WriteFile(dir + "/etc/resolv.conf", "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n");
  }

  bool WaitForCritical(std::chrono::seconds timeout) {
    return WaitFor(
        [&] { return !FindEvents(d_->Events("1042"), "tills.majority_stopped", "raised").empty(); },
        timeout, 200ms);
  }

  std::unique_ptr<PgServer> pg_;
  std::string pki_;
  std::unique_ptr<Deployment> d_;
  std::unique_ptr<Process> sim_;
  std::string token_;
  int control_port_ = 0;
  int probe_port_ = 0;
};

TEST_F(PortableStore, RunsInAnEmptyRootWithOnlyItsBinaryConfigHostsAndResolvConf) {
  if (!SETDIAG_AGENT_IS_STATIC) {
    GTEST_SKIP() << "this build links the agent dynamically (SETDIAG_STATIC_AGENT=OFF, as "
                    "sanitizer builds must)";
  }
  const std::string root = d_->dir() + "/root";
  WriteAgentFiles(root, "");
  fs::create_directories(root + "/var/lib/setdiag");  // as the package makes it (empty)
  fs::copy_file(SETDIAG_AGENT_BIN, root + "/setdiag-agent");
  std::vector<std::string> confine{SETDIAG_CONFINE_BIN, "--root", root, "--", "/setdiag-agent"};
  auto in_root = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = confine;
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  };
  // Nothing else in the root: no loader, no libraries, no /proc, no /dev.
  for (const char* absent :
       {"/lib", "/lib64", "/usr", "/proc", "/dev", "/tmp", "/etc/nsswitch.conf"})
    ASSERT_FALSE(fs::exists(root + absent)) << absent;

  CommandResult version = RunCommand(in_root({"--version"}));
  EXPECT_EQ(version.exit_code, 0) << version.err;
  EXPECT_NE(version.out.find("setdiag-agent "), std::string::npos) << version.out;

  CommandResult check =
      RunCommand(in_root({"--config", "/etc/setdiag/agent.toml", "check", "--lang", "en"}));
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  // Both names resolved inside the root: the collector answered the
  // handshake and SET's database its queries.
  EXPECT_NE(check.out.find("token accepted for store 1042"), std::string::npos) << check.out;
  EXPECT_NE(check.out.find("SET's till registry: 20 ACTIVE"), std::string::npos) << check.out;

  Process agent(in_root({"--config", "/etc/setdiag/agent.toml"}), d_->dir() + "/agent.log");
  ASSERT_TRUE(WaitFor([&] { return agent.Log().find("(TLS)") != std::string::npos; }, 30s))
      << agent.Log();
  ASSERT_EQ(SimCtl(control_port_, {"stop", "1-11"}).exit_code, 0);
  ASSERT_TRUE(WaitForCritical(40s)) << agent.Log();
  json critical = FindEvents(d_->Events("1042"), "tills.majority_stopped", "raised")[0];
  EXPECT_EQ(critical["severity"], "critical");
  EXPECT_EQ(critical["payload"]["stopped"], 11);
  EXPECT_EQ(agent.Stop(), 0) << agent.Log();
  // What it kept, it kept inside the root.
  EXPECT_TRUE(fs::exists(root + "/var/lib/setdiag/outbox.db"));
}

TEST_F(PortableStore, StartsWatchesSendsBuildsABundleAndStopsOnAKernel310) {
  const std::string dir = d_->dir() + "/files";
  const std::string logs = d_->dir() + "/set-logs";
  fs::create_directories(logs);
  WriteFile(logs + "/set.log", "2026-12-02 10:00:00 INFO till 3 online\n");
  fs::create_directories(dir + "/var/lib/setdiag");
  WriteAgentFiles(dir, dir,
                  "[bundle]\nlog_globs = [\"" + logs + "/*.log\"]\nstep_timeout = \"30s\"\n");
  // The names come from the test's own /etc/hosts here: use addresses.
  std::string cfg = ReadFile(dir + "/etc/setdiag/agent.toml");
  cfg = std::regex_replace(cfg, std::regex("setdb\\.test"), "127.0.0.1");
  cfg = std::regex_replace(cfg, std::regex("address = \"collector\\.test:"),
                           "server_name = \"collector.test\"\naddress = \"127.0.0.1:");
  WriteFile(dir + "/etc/setdiag/agent.toml", cfg);
  const std::string config = dir + "/etc/setdiag/agent.toml";

  CommandResult check = RunCommand({SETDIAG_CONFINE_BIN, "--kernel-3.10", "--", SETDIAG_AGENT_BIN,
                                    "--config", config, "check", "--lang", "en"});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;

  Process agent({SETDIAG_CONFINE_BIN, "--kernel-3.10", "--", SETDIAG_AGENT_BIN, "--config", config},
                d_->dir() + "/agent.log");
  ASSERT_TRUE(WaitFor([&] { return agent.Log().find("(TLS)") != std::string::npos; }, 30s))
      << agent.Log();
  ASSERT_EQ(SimCtl(control_port_, {"stop", "1-11"}).exit_code, 0);
  ASSERT_TRUE(WaitForCritical(40s)) << agent.Log();

  const std::string out = d_->dir() + "/bundle.tar.gz";
  CommandResult pull = d_->Cli({"bundle", "pull", "--store", "1042", "-o", out, "--timeout", "2m"});
  ASSERT_EQ(pull.exit_code, 0) << pull.out << pull.err << agent.Log();
  ASSERT_TRUE(fs::exists(out));
  CommandResult list = RunCommand({"/usr/bin/tar", "-tzf", out});
  EXPECT_NE(list.out.find("set.log"), std::string::npos) << list.out;
  EXPECT_EQ(agent.Stop(), 0) << agent.Log();
}

}  // namespace
}  // namespace setdiag::testing
