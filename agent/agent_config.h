#pragma once
// The agent's configuration file (TOML), documented in docs/config.md.

#include <string>

#include "absl/status/statusor.h"
#include "agent/outbox.h"
#include "common/backoff.h"

namespace setdiag::agent {

struct AgentConfig {
  std::string store_id;
  std::string agent_id;  // empty: generated once and kept in state_dir/agent-id
  std::string state_dir = "/var/lib/setdiag-agent";
  std::string log_level = "info";

  std::string collector_address;
  std::string token;      // from collector.token_file (preferred) or collector.token
  std::string ca_file;    // TLS root; empty means plaintext
  std::string server_name;
  bool allow_insecure = false;
  int64_t status_interval_ms = 30'000;

  OutboxLimits outbox;
  BackoffPolicy backoff;

  std::string OutboxPath() const { return state_dir + "/outbox.db"; }
};

// Reads and validates the file. Errors name the file, line and key.
absl::StatusOr<AgentConfig> LoadAgentConfig(const std::string& path);
// True when host:port names this machine (plaintext is allowed there).
bool IsLoopbackTarget(const std::string& host_port);

}  // namespace setdiag::agent
