#pragma once
// The schema of collector.db as a whole: stores and tokens, agents and
// events (storage), tickets, notifications and bundles share one file and
// one version (common/schema.h); docs/storage.md lists the versions.

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "collector/config/collector_config.h"
#include "common/sqlite.h"

namespace setdiag::collector {

// The version this build writes.
int CollectorSchemaVersion();

// Brings collector.db at `path` to CollectorSchemaVersion(); refuses a
// newer one (FailedPrecondition) without touching it.
absl::Status MigrateCollectorDb(sql::Db& db, const std::string& path);

// collector.db of `cfg` opened for writing, its data_dir created if need
// be, synchronous=FULL (acknowledged means on disk) and migrated. What
// `serve` and the admin subcommands open.
absl::StatusOr<sql::Db> OpenCollectorDb(const CollectorConfig& cfg);

}  // namespace setdiag::collector
