#include "agent/core/observations.h"

#include "common/strings.h"

namespace setdiag::agent {

const char* ProbeResultName(ProbeResult p) {
  switch (p) {
    case ProbeResult::kNotProbed:
      return "not_probed";
    case ProbeResult::kAnswers:
      return "answers";
    case ProbeResult::kRefused:
      return "refused";
    case ProbeResult::kNoAnswer:
      return "no_answer";
  }
  return "unknown";
}

RosterStatus ParseRosterStatus(std::string_view status) {
  std::string_view s = Trim(status);
  if (s == "CLOSED_DOWN") return RosterStatus::kMothballed;
  if (s == "DELETED") return RosterStatus::kDeleted;
  return RosterStatus::kActive;
}

}  // namespace setdiag::agent
