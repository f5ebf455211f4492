#pragma once
// The two steps every watch loop shares: committing findings to the outbox,
// and how long to sleep until the next evaluation.

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "agent/core/finding.h"
#include "agent/store/outbox.h"
#include "common/clock.h"

namespace setdiag::agent {

class HistoryStore;

// Appends each finding to the outbox and logs it under `component`. Returns
// how many were committed. A finding the disk refuses is held by the outbox
// and committed later (Outbox::CommitHeld); it does not count here. With a `history`, each
// committed finding is also recorded there (failures are logged, never returned: the outbox comes
// first).
size_t CommitFindings(Outbox& outbox, const std::vector<Finding>& findings,
                      std::string_view component, HistoryStore* history = nullptr);

// Milliseconds to sleep: until the next poll (monotonic) or the detector's
// next deadline (wall clock), whichever is first, within [1, poll_interval].
// Capping at the poll interval keeps a wall-clock step from stalling a loop.
int64_t WaitBeforeNextEvaluation(Clock& clock, int64_t next_poll_mono_ms,
                                 std::optional<int64_t> deadline_ms, int64_t poll_interval_ms);

}  // namespace setdiag::agent
