#pragma once
// What the agent records: one detected fact, waiting in the outbox.

#include <cstdint>
#include <string>
#include <string_view>

namespace setdiag::agent {

// Same numbering as setdiag.v1.Severity on the wire.
enum class Severity : int { kInfo = 1, kNormal = 2, kImportant = 3, kCritical = 4 };

bool ParseSeverity(std::string_view text, Severity* out);
const char* SeverityName(Severity s);

struct NewEvent {
  std::string kind;  // e.g. "tills.majority_stopped"
  Severity severity = Severity::kNormal;
  int64_t detected_at_ms = 0;  // wall clock, when the condition was seen
  std::string payload;         // JSON object
};

struct StoredEvent {
  uint64_t sequence = 0;
  std::string kind;
  Severity severity = Severity::kNormal;
  int64_t detected_at_ms = 0;
  std::string payload;
};

// Kinds the agent itself produces about its own buffer.
inline constexpr const char* kGapKind = "setdiag.gap";
inline constexpr const char* kOutboxResetKind = "agent.outbox_reset";

}  // namespace setdiag::agent
