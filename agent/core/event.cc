#include "agent/core/event.h"

namespace setdiag::agent {

bool ParseSeverity(std::string_view text, Severity* out) {
  if (text == "info")
    *out = Severity::kInfo;
  else if (text == "normal")
    *out = Severity::kNormal;
  else if (text == "important")
    *out = Severity::kImportant;
  else if (text == "critical")
    *out = Severity::kCritical;
  else
    return false;
  return true;
}

const char* SeverityName(Severity s) {
  switch (s) {
    case Severity::kInfo:
      return "info";
    case Severity::kNormal:
      return "normal";
    case Severity::kImportant:
      return "important";
    case Severity::kCritical:
      return "critical";
  }
  return "unknown";
}

}  // namespace setdiag::agent
