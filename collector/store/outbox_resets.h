#pragma once
// What an agent's corrupt outbox took with it. When an agent starts a fresh
// outbox (its file was unreadable), it sends agent.outbox_reset saying what
// it knew of the old one (docs/protocol.md). The collector knows what it
// stored of that outbox: the lost range is everything after its last stored
// sequence up to the old outbox's next sequence, minus what the agent could
// recover and sent again. It is recorded as a setdiag.gap event of the
// collector's own (agent id "(collector)") on the store, and as a timeline
// entry on the store's open tickets. Runs on the writer thread, in the
// transaction that stored the reset event.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "collector/store/storage.h"
#include "common/sqlite.h"

namespace setdiag::collector {

inline constexpr const char* kCollectorAgentId = "(collector)";

// A Hello with another outbox id than before: what the collector had
// stored of the replaced outbox (called by RecordHello).
absl::Status RememberReplacedOutbox(sql::Db& db, const std::string& agent_id,
                                    const std::string& outbox_id, uint64_t last_committed,
                                    int64_t now_ms);

// Pure: the gap payload for one reset. `collector_last` is the last
// sequence stored of the old outbox (-1 when the collector never saw it).
nlohmann::json OutboxResetGap(const std::string& agent_id, int64_t collector_last,
                              const nlohmann::json& reset_payload);

// For each agent.outbox_reset among `added`: the gap event and the ticket
// timeline entries. Idempotent: only newly stored reset events count.
absl::Status RecordOutboxResetGaps(sql::Db& db, const std::string& agent_id,
                                   const std::string& store_id, const std::vector<EventRow>& added,
                                   int64_t now_ms);

}  // namespace setdiag::collector
