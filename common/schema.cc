#include "common/schema.h"

#include <cstdio>

#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"

namespace setdiag::sql {

absl::StatusOr<int> SchemaVersion(Db& db) {
  ASSIGN_OR_RETURN(auto v, db.QueryInt("PRAGMA user_version"));
  return static_cast<int>(v);
}

namespace {

absl::Status Newer(std::string_view name, const std::string& path, int found, int latest) {
  return absl::FailedPreconditionError(Cat(name, " ", path, " has schema version ", found,
                                           ", newer than this build knows (", latest,
                                           "): it was written by a newer setdiag, which a "
                                           "downgrade cannot read; install that version again. "
                                           "The file was left unchanged"));
}

}  // namespace

absl::StatusOr<MigrationResult> Migrate(Db& db, std::string_view name, const std::string& path,
                                        std::span<const Migration> steps) {
  const int latest = steps.empty() ? 0 : steps.back().to_version;
  for (size_t i = 0; i < steps.size(); ++i) {
    if (steps[i].to_version != static_cast<int>(i) + 1) {
      return absl::InternalError(
          Cat(name, ": migration ", i, " goes to version ", steps[i].to_version));
    }
  }
  MigrationResult result;
  ASSIGN_OR_RETURN(auto before, SchemaVersion(db));
  result.from_version = result.to_version = before;
  // Before any write: a newer file is never touched.
  if (before > latest) return Newer(name, path, before, latest);
  ASSIGN_OR_RETURN(auto tables, db.QueryInt("SELECT count(*) FROM sqlite_master"));
  const bool fresh = tables == 0;
  while (result.to_version < latest) {
    const Migration& step = steps[static_cast<size_t>(result.to_version)];
    // VACUUM INTO cannot run inside a transaction: the copy is taken first.
    if (step.rewrites_data && path != ":memory:" && result.backup_path.empty()) {
      std::string backup = Cat(path, ".v", result.to_version, ".bak");
      std::remove(backup.c_str());
      ASSIGN_OR_RETURN(auto into, db.Prepare("VACUUM INTO ?"));
      if (auto st = into.Bind(1, backup).Run(); !st.ok()) {
        return absl::Status(st.code(), Cat(name, " ", path, ": backing up to ", backup,
                                           " before migrating: ", st.message()));
      }
      result.backup_path = backup;
    }
    ASSIGN_OR_RETURN(auto tx, Transaction::Begin(db, /*immediate=*/true));
    // Another process (the CLI beside the daemon) may have migrated meanwhile.
    ASSIGN_OR_RETURN(auto now, SchemaVersion(db));
    if (now > latest) return Newer(name, path, now, latest);
    if (now != result.to_version) {
      result.to_version = now;
      continue;  // rolls back the empty transaction and looks again
    }
    if (auto st = step.apply(db); !st.ok()) {
      return absl::Status(st.code(), Cat(name, " ", path, ": migrating to schema version ",
                                         step.to_version, " (", step.what, "): ", st.message()));
    }
    RETURN_IF_ERROR(db.Exec(Cat("PRAGMA user_version = ", step.to_version)));
    RETURN_IF_ERROR(tx.Commit());
    result.to_version = step.to_version;
  }
  if (!fresh && result.to_version != result.from_version) {
    log::Info("schema", Cat(name, " ", path, ": schema version ", result.from_version, " -> ",
                            result.to_version,
                            result.backup_path.empty()
                                ? ""
                                : Cat(" (the old file is kept as ", result.backup_path, ")")));
  }
  return result;
}

}  // namespace setdiag::sql
