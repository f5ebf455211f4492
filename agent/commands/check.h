#pragma once
// `setdiag-agent check`: the preflight an engineer runs on the store server.
// It reads the config and SET's database the way the watches do and prints
// one line per check, each ✓ (ok), ✗ (fails: with what to do) or ! (works,
// but look at it), in Russian or English, or JSON for scripts. It never
// changes anything: no outbox, no state database, no events; SET's database
// is read through read-only sessions.
//
// What it checks, in order: the config (it was loaded; the loader refuses
// unknown keys, a token or password file others can read and a CA file
// without a certificate), the token file, free
// space for the outbox, the opening hours (open or closed now and the next
// change, in the store's zone), the push ports (can they be bound), the
// inbox folders, the SET server's ports and deployment markers, SET's
// database (the roster with ACTIVE / CLOSED_DOWN / DELETED counts, several
// shops without set_db.shop_number, how many tills reported in the last 10
// minutes, the packages and transport queries when the loading watch runs,
// the database's clock), and the collector: reachable, TLS verified against
// collector.ca_file (or which side lacks TLS), the token accepted for this store id (a handshake
// with Hello.probe: no events, nothing stored) and the clock offset. Each failing query names its
// config key (SetDatabase's errors do).

#include <cstdint>
#include <string>
#include <vector>

#include "agent/config/agent_config.h"
#include "common/check_report.h"
#include "common/clock.h"

namespace setdiag::agent {

using setdiag::CheckLine;
using setdiag::CheckVerdict;
using setdiag::PrintChecks;

struct CheckOptions {
  // How long the collector probe waits for the handshake and the answer
  // (`check --timeout`): 5 s by default, more on a slow or lossy link.
  int64_t collector_timeout_ms = 5000;
};

// Runs every check against the configured sources, in order.
std::vector<CheckLine> RunChecks(const AgentConfig& cfg, Clock& clock,
                                 const CheckOptions& options = {});

}  // namespace setdiag::agent
