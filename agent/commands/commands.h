#pragma once
// The subcommands of setdiag-agent (agent/main.cc parses the command line
// and calls one of these):
//   run          the daemon: watches, uplink, heartbeat receivers (run.cc)
//   emit         record an event in the outbox, for scripts (emit.cc)
//   status       the outbox's state as JSON (emit.cc)
//   maintenance  open, list or cancel maintenance windows (maintenance.cc)
//   bundle       build a diagnostic bundle here and now (bundle.cc)
//   check        the preflight (check.h)
// Each returns the process exit code: 0 done, 1 failed, 2 a usage or
// configuration error.

#include <cstdint>
#include <string>

#include "agent/config/agent_config.h"

namespace setdiag::agent {

inline constexpr int kExitConfig = 2;

// Runs until SIGINT or SIGTERM.
int RunAgent(const AgentConfig& cfg);

struct EmitArgs {
  std::string kind;
  std::string severity = "normal";
  std::string payload = "{}";
  int count = 1;
};
int EmitCommand(const AgentConfig& cfg, const EmitArgs& args);

int StatusCommand(const AgentConfig& cfg);

struct MaintenanceArgs {
  std::string action = "open";  // open, list or cancel
  std::string duration, reason, by;
  int64_t id = 0;  // for cancel
  bool json = false;
};
int MaintenanceCommand(const AgentConfig& cfg, const MaintenanceArgs& args);

struct BundleArgs {
  std::string output;
  std::string window;
  std::string step_timeout;
  bool no_logs = false;
  bool json = false;
  std::string manifest_out;  // also write the full manifest.json here (the daemon's child)
  int64_t parent_pid = 0;    // die with this process (the daemon's child)
};
// Works without the daemon and without the collector. A config that cannot
// be loaded does not stop it: the bundle is built from defaults and says why.
int BundleCommand(const std::string& config_path, const BundleArgs& args);

// What the subcommands share.
absl::Status EnsureDir(const std::string& dir);
// A duration argument ("30m", "2h") in milliseconds; -1 when it is not one.
int64_t ParseDurationArg(const std::string& text);
// "2026-11-23 13:30" in the store server's local time.
std::string FormatLocal(int64_t ms);

}  // namespace setdiag::agent
