#include "collector/commands/collector_schema.h"

#include <sys/stat.h>

#include <array>
#include <cerrno>

#include "collector/bundles/bundle_store.h"
#include "collector/notify/notifications.h"
#include "collector/store/storage.h"
#include "collector/tickets/tickets.h"
#include "common/schema.h"
#include "common/status.h"

namespace setdiag::collector {
namespace {

// Version 1: the first release (0.1.0), whose files say 0.
absl::Status Version1(sql::Db& db) {
  RETURN_IF_ERROR(InitSchema(db));
  RETURN_IF_ERROR(InitTicketSchema(db));
  RETURN_IF_ERROR(InitNotificationSchema(db));
  return InitBundleSchema(db);
}

// Version 2: indexes for the lists, so that each page costs O(page), not
// O(stores x agents) (10,000 stores took a minute without agents_by_store).
absl::Status Version2(sql::Db& db) {
  return db.Exec(
      "CREATE INDEX IF NOT EXISTS agents_by_store ON agents(store_id, last_seen_ms);"
      "CREATE INDEX IF NOT EXISTS stores_by_partner ON stores(partner, store_id);"
      "CREATE INDEX IF NOT EXISTS tickets_by_partner ON tickets(partner, id);");
}

const std::array<sql::Migration, 2> kSteps = {{
    {1, "stores, tokens, users, agents, events, tickets, notifications, bundles (0.1.0)", Version1},
    {2, "indexes for the store and ticket lists", Version2},
}};

}  // namespace

int CollectorSchemaVersion() { return kSteps.back().to_version; }

absl::Status MigrateCollectorDb(sql::Db& db, const std::string& path) {
  auto r = sql::Migrate(db, "collector database", path, kSteps);
  return r.ok() ? absl::OkStatus() : r.status();
}

absl::StatusOr<sql::Db> OpenCollectorDb(const CollectorConfig& cfg) {
  if (::mkdir(cfg.data_dir.c_str(), 0750) != 0 && errno != EEXIST)
    return ErrnoStatus(errno, "cannot create", cfg.data_dir);
  ASSIGN_OR_RETURN(auto db, sql::Db::Open(cfg.DatabasePath()));
  // Acknowledged means on disk: FULL fsyncs each (group) commit.
  RETURN_IF_ERROR(db.Exec("PRAGMA synchronous=FULL"));
  RETURN_IF_ERROR(MigrateCollectorDb(db, cfg.DatabasePath()));
  return db;
}

}  // namespace setdiag::collector
