#include "agent/core/maintenance_window.h"

#include <algorithm>

namespace setdiag::agent {

int64_t MaintenanceWindow::EffectiveEndMs() const {
  return cancelled_ms ? std::min(end_ms, *cancelled_ms) : end_ms;
}

}  // namespace setdiag::agent
