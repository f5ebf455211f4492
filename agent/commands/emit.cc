// `setdiag-agent emit` (record an event, for scripts and tests) and
// `setdiag-agent status` (the outbox as JSON). Both open the outbox beside
// a running daemon without repairing it: the daemon owns repairs.

#include <iostream>
#include <nlohmann/json.hpp>

#include "agent/commands/commands.h"
#include "agent/core/redact.h"
#include "agent/store/outbox.h"
#include "common/clock.h"

namespace setdiag::agent {

int EmitCommand(const AgentConfig& cfg, const EmitArgs& args) {
  const std::string& kind = args.kind;
  const std::string& raw_payload = args.payload;
  const int count = args.count;
  // A script may pass on what it read from SET: redacted like a finding.
  std::string payload = raw_payload;
  if (auto j = nlohmann::json::parse(raw_payload, nullptr, false); !j.is_discarded()) {
    bundle::RedactionCounts redacted;
    bundle::RedactJsonStrings(&j, &redacted);
    if (!redacted.empty()) payload = j.dump();
  }
  Severity severity;
  if (!ParseSeverity(args.severity, &severity)) {
    std::cerr << "setdiag-agent emit: --severity must be info, normal, important or critical\n";
    return kExitConfig;
  }
  if (auto st = EnsureDir(cfg.state_dir); !st.ok()) {
    std::cerr << st.message() << "\n";
    return 1;
  }
  SystemClock clock;
  auto opened = Outbox::OpenWithoutRepair(cfg.OutboxPath(), cfg.outbox, clock);
  if (!opened.ok()) {
    std::cerr << "setdiag-agent emit: cannot open the outbox: " << opened.status().message()
              << " (the running agent repairs it and reports it)\n";
    return 1;
  }
  auto& outbox = *opened;
  NewEvent probe{kind, severity, clock.NowMs(), payload};
  if (auto st = ValidateNewEvent(probe, cfg.outbox.max_event_bytes); !st.ok()) {
    std::cerr << "setdiag-agent emit: " << st.message() << "\n";
    return kExitConfig;
  }
  uint64_t first = 0, last = 0;
  for (int i = 0; i < count; ++i) {
    auto seq = outbox->Append({kind, severity, clock.NowMs(), payload});
    if (!seq.ok()) {
      std::cerr << "setdiag-agent emit: " << seq.status().message() << "\n";
      return 1;
    }
    if (first == 0) first = *seq;
    last = *seq;
  }
  std::cout << "recorded " << count << " event(s), sequences " << first << ".." << last << "\n";
  return 0;
}

int StatusCommand(const AgentConfig& cfg) {
  SystemClock clock;
  auto outbox = Outbox::OpenWithoutRepair(cfg.OutboxPath(), cfg.outbox, clock);
  if (!outbox.ok()) {
    std::cerr << "setdiag-agent status: cannot open the outbox: " << outbox.status().message()
              << "\n";
    return 1;
  }
  OutboxStats s = (*outbox)->Stats();
  nlohmann::json out = {
      {"store_id", cfg.store_id},
      {"outbox", cfg.OutboxPath()},
      {"depth", s.depth},
      {"bytes", s.bytes},
      {"oldest_unsent_age_s",
       s.oldest_enqueued_ms ? (clock.NowMs() - s.oldest_enqueued_ms) / 1000 : 0},
      {"gaps_total", s.gaps_total},
      {"next_sequence", s.next_sequence},
  };
  std::cout << out.dump(2) << "\n";
  return 0;
}

}  // namespace setdiag::agent
