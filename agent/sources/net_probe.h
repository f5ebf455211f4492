#pragma once
// Network probes for evidence: does a till answer on the store network, and
// is the SET server's own software listening. Non-blocking connects, all at
// once, bounded by one timeout.

#include <cstdint>
#include <string>
#include <vector>

#include "agent/core/observations.h"

namespace setdiag::agent {

// One result per host: answers (connected), refused (host up, port closed),
// no_answer (timeout, unreachable, bad address).
std::vector<ProbeResult> ProbeTcp(const std::vector<std::string>& hosts, uint16_t port,
                                  int timeout_ms);

struct ServerCheckConfig {
  bool enabled = true;
  std::string host = "127.0.0.1";
  uint16_t port_soap = 8090;
  uint16_t port_transport = 8091;
  uint16_t port_db = 5432;
  std::string deployed_marker = "/var/lib/jboss/standalone/deployments/Set10.ear.deployed";
  std::string failed_marker = "/var/lib/jboss/standalone/deployments/Set10.ear.failed";
};

ServerState CheckServer(const ServerCheckConfig& config, int timeout_ms);

}  // namespace setdiag::agent
