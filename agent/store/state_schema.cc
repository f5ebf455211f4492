#include "agent/store/state_schema.h"

#include <array>

#include "common/schema.h"
#include "common/status.h"

namespace setdiag::agent {
namespace {

// Version 1: the first release (0.1.0). CHECKs guard against another writer
// (an older CLI, a hand-made INSERT) leaving windows that would be active
// forever or never.
constexpr const char* kVersion1 = R"sql(
CREATE TABLE IF NOT EXISTS maintenance(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  start_ms INTEGER NOT NULL,
  end_ms INTEGER NOT NULL CHECK (end_ms > start_ms),
  reason TEXT NOT NULL CHECK (reason <> ''),
  opened_by TEXT NOT NULL,
  cancelled_ms INTEGER);
CREATE INDEX IF NOT EXISTS maintenance_by_end ON maintenance(end_ms);
CREATE TABLE IF NOT EXISTS detector_state(
  detector TEXT PRIMARY KEY,
  state TEXT NOT NULL,
  saved_ms INTEGER NOT NULL);
)sql";

const std::array<sql::Migration, 1> kSteps = {{
    {1, "maintenance windows and detector state (0.1.0)",
     [](sql::Db& db) { return db.Exec(kVersion1); }},
}};

}  // namespace

absl::Status MigrateStateDb(sql::Db& db, const std::string& path) {
  RETURN_IF_ERROR(sql::Migrate(db, "state database", path, kSteps));
  // The tables of the current version are made again if they went missing
  // (dropped by hand, another tool): the detectors' saves recover at the
  // next open instead of failing until the file is deleted. Keep this the
  // latest version's CREATE ... IF NOT EXISTS.
  return db.Exec(kVersion1);
}

}  // namespace setdiag::agent
