#pragma once
// The agent's configuration file (TOML), documented in docs/config.md.

#include <string>

#include "absl/status/statusor.h"
#include "agent/config/bundle_config.h"
#include "agent/core/calendar.h"
#include "agent/store/outbox.h"
#include "agent/watches/loading_watch.h"
#include "agent/watches/till_watch.h"
#include "common/backoff.h"

namespace setdiag::agent {

struct AgentConfig {
  std::string config_path;  // the file this was loaded from (bundles include it, redacted)
  std::string store_id;
  std::string agent_id;  // empty: generated once and kept in state_dir/agent-id
  std::string state_dir = "/var/lib/setdiag";
  std::string log_level = "info";

  std::string collector_address;
  std::string token;       // from collector.token_file (preferred) or collector.token
  std::string token_file;  // collector.token_file; empty when the token is inline
  std::string ca_file;     // TLS root; empty means plaintext
  std::string ca_pem;      // ca_file's content, read and checked at load (holds a certificate)
  std::string server_name;
  bool allow_insecure = false;
  int64_t status_interval_ms = 30'000;

  OutboxLimits outbox;
  BackoffPolicy backoff;

  // Opening hours, closed and special dates; open 24/7 in UTC if absent.
  std::shared_ptr<const StoreCalendar> calendar;

  bool tills_enabled = true;
  TillWatchOptions tills;
  bool loading_enabled = false;
  LoadingWatchOptions loading;

  std::string push_udp_listen;   // "host:port"; empty: no UDP heartbeats
  std::string push_http_listen;  // "host:port"; empty: no HTTP heartbeats

  BundleConfig bundle;  // [bundle]: diagnostic bundles (docs/bundles.md)

  std::string OutboxPath() const { return state_dir + "/outbox.db"; }
  // Maintenance windows and other local state that is not the outbox.
  std::string StatePath() const { return state_dir + "/state.db"; }
  // Findings kept after the outbox let them go (agent/store/history.h).
  std::string HistoryPath() const { return state_dir + "/history.db"; }
};

// Reads and validates the file. Errors name the file, line and key.
absl::StatusOr<AgentConfig> LoadAgentConfig(const std::string& path);
// OK when `pem` holds at least one PEM certificate and no damaged one;
// otherwise says what is wrong ("holds no PEM certificate ...; it holds a
// private key ..."), to follow the file's name.
absl::Status CheckCaPem(const std::string& pem);
// True when host:port names this machine (plaintext is allowed there).
bool IsLoopbackTarget(const std::string& host_port);

}  // namespace setdiag::agent
