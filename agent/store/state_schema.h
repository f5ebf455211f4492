#pragma once
// The schema of <state_dir>/state.db, which two stores share: the
// maintenance windows (MaintenanceStore) and what the detectors hold raised
// (DetectorStateStore). One file, one version (common/schema.h), so its
// migrations live here and both openers run them.

#include <string>

#include "absl/status/status.h"
#include "common/sqlite.h"

namespace setdiag::agent {

absl::Status MigrateStateDb(sql::Db& db, const std::string& path);

}  // namespace setdiag::agent
