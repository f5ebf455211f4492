#include "agent/watches/findings.h"

#include <algorithm>

#include "agent/core/redact.h"
#include "agent/store/history.h"
#include "common/log.h"
#include "common/strings.h"

namespace setdiag::agent {
namespace {

// What a watch read from SET (error messages, file names, cashier names) may
// hold a password or a card number: redacted like a bundle before it is
// committed (docs/security.md). Logged by rule, never the values.
Finding RedactedForOutbox(const Finding& f, std::string_view component) {
  Finding out = f;
  bundle::RedactionCounts counts;
  bundle::RedactJsonStrings(&out.payload, &counts);
  if (!counts.empty()) {
    std::string rules;
    for (const auto& [rule, n] : counts) Append(&rules, rules.empty() ? "" : ", ", rule, " ", n);
    log::Info(component,
              Cat(f.kind, ": ", bundle::TotalCount(counts), " value(s) redacted (", rules, ")"));
  }
  return out;
}

}  // namespace

size_t CommitFindings(Outbox& outbox, const std::vector<Finding>& findings,
                      std::string_view component, HistoryStore* history) {
  size_t committed = 0;
  for (const auto& detected : findings) {
    const Finding f = RedactedForOutbox(detected, component);
    auto seq = outbox.Append({f.kind, f.severity, f.detected_at_ms, f.payload.dump()});
    if (!seq.ok()) {
      if (seq.status().code() == absl::StatusCode::kUnavailable) {
        // Held in memory by the outbox: committed and sent once the disk
        // takes writes again (the outbox logs the cause once).
        log::Warn(component,
                  Cat(f.kind, " ", f.payload.value("state", ""), " (", SeverityName(f.severity),
                      ") not yet committed: ", seq.status().message()));
      } else {
        log::Error(component, Cat("cannot record ", f.kind, ": ", seq.status().ToString()));
      }
      continue;
    }
    ++committed;
    if (history) {
      // Recorded at its detection time: that is when the watch saw it, and
      // pruning by it keeps the history a window of the store's life.
      HistoryRecord record{0,
                           *seq,
                           f.kind,
                           f.severity,
                           f.detected_at_ms,
                           0,
                           std::string(component),
                           f.payload.dump()};
      history->AppendOrLog(record, f.detected_at_ms);
    }
    log::Info(component,
              Cat(f.kind, " ", f.payload.value("state", ""), " (", SeverityName(f.severity),
                  "): ", f.payload.value("summary_en", ""), " -> outbox #", *seq));
  }
  return committed;
}

int64_t WaitBeforeNextEvaluation(Clock& clock, int64_t next_poll_mono_ms,
                                 std::optional<int64_t> deadline_ms, int64_t poll_interval_ms) {
  int64_t wait_ms = next_poll_mono_ms - clock.MonotonicMs();
  if (deadline_ms) wait_ms = std::min(wait_ms, *deadline_ms - clock.NowMs());
  return std::clamp<int64_t>(wait_ms, 1, poll_interval_ms);
}

}  // namespace setdiag::agent
