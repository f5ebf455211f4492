#pragma once
// Integration test harness: real setdiag processes on loopback, real files.
// Polling with a deadline is fine here (real processes, real time); unit
// tests never sleep.

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace setdiag::testing {

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs a command to completion, capturing stdout and stderr.
CommandResult RunCommand(const std::vector<std::string>& argv);

class Process {
 public:
  Process(std::vector<std::string> argv, std::string log_path);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  void Signal(int sig);
  // Sends SIGKILL and reaps.
  void Kill();
  // SIGTERM, then waits; returns the exit code.
  int Stop();
  bool Running();
  std::string Log() const;
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  std::string log_path_;
  bool reaped_ = false;
  int status_ = 0;
};

int FreePort();
// `setdiag-store-sim ctl --control 127.0.0.1:PORT args...`
CommandResult SimCtl(int control_port, const std::vector<std::string>& args);
// Events of `kind` whose payload "state" is `state` (raised, cleared, ...).
std::vector<nlohmann::json> FindEvents(const nlohmann::json& events, const std::string& kind,
                                       const std::string& state);
std::string MakeTempDir(const std::string& name);
// Whether a Hello the agent logged ("hello: holding ...") listed `held`
// ("kind episode").
bool HelloHeld(const std::string& agent_log, const std::string& held);
// A throwaway CA and a server certificate for `dns_name` signed by it, made
// with the openssl command in `dir`: dir/ca.pem, dir/server.pem, dir/server.key.
void MakeTestPki(const std::string& dir, const std::string& dns_name);
// A log file of about `bytes` that gzip cannot shrink much (random base64
// lines), so a bundle of it is about as large.
void WriteIncompressibleLog(const std::string& path, size_t bytes, uint64_t seed = 42);

// What /proc says of a process: CPU time used so far, resident and peak
// resident memory (0 if the process is gone).
struct ProcSample {
  double cpu_s = 0;
  long rss_kib = 0;
  long hwm_kib = 0;
};
ProcSample SampleProcess(pid_t pid);
void WriteFile(const std::string& path, const std::string& content);
std::string ReadFile(const std::string& path);
// How much slower processes run in this build: 1, or 4 in a sanitizer build
// (scripts/test --sanitize=...), where TSan's and ASan's instrumentation make
// the collector and the agent several times slower. Deadlines for failure
// (WaitFor's timeout, `check --timeout`) are multiplied by it; nothing that
// must happen promptly is.
int SlowBuildFactor();
// Polls `pred` until it holds or `timeout` (times SlowBuildFactor()) passes.
bool WaitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
             std::chrono::milliseconds every = std::chrono::milliseconds(50));
// `setdiag-agent check --timeout` for tests: 5 s, scaled by SlowBuildFactor().
std::string AgentCheckTimeout();

struct AgentSetup {
  std::string store_id;
  std::string config_path;
  std::string state_dir;
  std::string log_path;
  std::unique_ptr<Process> process;
};

// One collector with its data directory and a support user, plus agents.
class Deployment {
 public:
  explicit Deployment(const std::string& name, std::string extra_collector_config = "");
  ~Deployment();

  void StartCollector();
  void KillCollector();
  void StopCollector();
  bool CollectorHealthy();
  Process& collector() { return *collector_; }

  // Creates a store token through `setdiag-collector token create`.
  std::string CreateStoreToken(const std::string& store, const std::string& partner);
  std::string CreateUser(const std::string& name, const std::string& role,
                         const std::string& partner = "");

  AgentSetup& AddAgent(const std::string& store, const std::string& token,
                       const std::string& extra = "",
                       std::optional<std::string> claimed_store = std::nullopt);
  void StartAgent(AgentSetup& a);
  // Records events the way a script on the store server would.
  void Emit(AgentSetup& a, const std::string& kind, const std::string& severity, int count,
            const std::string& payload = "{}");
  nlohmann::json AgentStatus(AgentSetup& a);

  // All events of a store through the `setdiag` CLI (--json --all).
  nlohmann::json Events(const std::string& store, const std::string& token = "");
  size_t EventCount(const std::string& store);
  CommandResult Cli(std::vector<std::string> args, const std::string& token = "");

  const std::string& dir() const { return dir_; }
  int grpc_port() const { return grpc_port_; }
  int http_port() const { return http_port_; }
  const std::string& support_token() const { return support_token_; }
  // After the collector's database was replaced (the upgrade test): the
  // support user to act as from now on.
  void UseSupportToken(std::string token) { support_token_ = std::move(token); }
  std::string collector_config() const { return dir_ + "/collector.toml"; }

 private:
  std::string dir_;
  int grpc_port_;
  int http_port_;
  std::string support_token_;
  std::unique_ptr<Process> collector_;
  std::vector<std::unique_ptr<AgentSetup>> agents_;
};

}  // namespace setdiag::testing
