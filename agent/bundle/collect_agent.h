#pragma once
// Bundle steps about the agent itself:
//   "history"  history/history.jsonl: the findings the watches recorded in
//              <state_dir>/history.db within the bundle's window, oldest
//              first, one JSON object per line (payload strings redacted).
//   "agent"    agent/health.json (version, ids, outbox depth, bytes, oldest
//              unsent event, gaps, whether a daemon runs, the state files)
//              and agent/maintenance.json (maintenance windows touching the
//              window). Opens the outbox like `setdiag-agent status`: never
//              repairs or moves a file, works beside a running daemon.

#include <string>

#include "agent/bundle/step.h"
#include "agent/store/outbox.h"

namespace setdiag::agent::bundle {

struct AgentFiles {
  std::string store_id;
  std::string agent_id;  // configured; empty: read from state_dir/agent-id (never generated here)
  std::string state_dir;
  std::string outbox_path;
  std::string state_path;  // maintenance windows
  std::string history_path;
  OutboxLimits outbox_limits;
};

BundleStep MakeHistoryStep(std::string history_path);
BundleStep MakeAgentStep(AgentFiles files);

// The agent id as the daemon uses it: configured, else state_dir/agent-id;
// empty when neither exists.
std::string KnownAgentId(const std::string& configured, const std::string& state_dir);

}  // namespace setdiag::agent::bundle
