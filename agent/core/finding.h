#pragma once
// What a detector decides: a condition seen or cleared, to be committed to
// the outbox (agent/watches/findings.h).

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "agent/core/event.h"

namespace setdiag::agent {

struct Finding {
  std::string kind;
  Severity severity = Severity::kNormal;
  int64_t detected_at_ms = 0;
  nlohmann::json payload;
};

}  // namespace setdiag::agent
