#pragma once
// Schema versions of setdiag's SQLite databases: outbox.db, state.db and
// history.db on the store, collector.db at support. The version is SQLite's
// PRAGMA user_version; version 1 is the schema of the first release (0.1.0),
// whose files say 0 because it did not set the pragma. At every open the
// database is brought forward, one step per version, each step in one
// transaction together with its version bump, so a crash leaves either the
// old or the new version, never a half-migrated file. A step that rewrites
// rows (not only adds tables, columns or indexes) first copies the file to
// <path>.v<old>.bak. A database newer than the binary (a downgrade) is
// refused with FailedPrecondition and left exactly as it was.
// docs/storage.md lists the versions of each database.

#include <functional>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "common/sqlite.h"

namespace setdiag::sql {

struct Migration {
  int to_version = 0;     // 1, 2, 3 ... in order
  std::string_view what;  // for the log: "add bundles.agent_request_id"
  std::function<absl::Status(Db&)> apply;
  bool rewrites_data = false;  // back the file up before this step
};

struct MigrationResult {
  int from_version = 0;
  int to_version = 0;
  std::string backup_path;  // set when a step backed the file up
};

// Brings `db`, opened from `path` (":memory:" is never backed up), to the
// last version of `steps`. `name` names the database in messages
// ("outbox", "collector database").
absl::StatusOr<MigrationResult> Migrate(Db& db, std::string_view name, const std::string& path,
                                        std::span<const Migration> steps);

// The version a database file says it has (0 for the first release's).
absl::StatusOr<int> SchemaVersion(Db& db);

}  // namespace setdiag::sql
