#pragma once
// Maintenance windows an engineer opens on site ("we are replacing the
// switch, tills will be down until 14:30"). While a window is active the till
// watch expects no tills, so no till condition is raised.
//
// Windows live in the table `maintenance` of the agent's state database
// (state.db): the CLI writes them, the daemon reads them, each process with
// its own MaintenanceStore on the same file (SQLite locking, WAL, 5 s busy
// timeout). Rows are never deleted here: a cancelled window keeps its row
// with cancelled_ms set, so List(include_past) is the site's history.
//
// Times are Unix milliseconds supplied by the caller (from a Clock); the store
// never reads the clock itself. A MaintenanceStore belongs to one thread at a
// time; MaintenanceWindow is a plain value.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/core/maintenance_window.h"
#include "common/sqlite.h"

namespace setdiag::agent {

class MaintenanceStore {
 public:
  static constexpr int64_t kMinDurationMs = 60'000;            // 1 minute
  static constexpr int64_t kMaxDurationMs = 7 * 86'400'000LL;  // 7 days
  static constexpr size_t kMaxReasonBytes = 500;
  static constexpr size_t kMaxOpenedByBytes = 64;

  // Opens (creating if needed) the database at `path` and creates the table
  // if it is missing; safe to call from several processes at once.
  // Unavailable when the file cannot be opened or is locked for longer than
  // the busy timeout; DataLoss when it is not a usable SQLite database.
  static absl::StatusOr<MaintenanceStore> Open(const std::string& path);

  MaintenanceStore(MaintenanceStore&&) = default;
  MaintenanceStore& operator=(MaintenanceStore&&) = default;

  // Records a window [start_ms, start_ms + duration_ms). InvalidArgument when
  // the reason or opened_by is empty, too long, or not one line of valid
  // UTF-8 (both end up in JSON events), or the duration is outside
  // 1 min..7 days. Both strings are stored trimmed.
  absl::StatusOr<MaintenanceWindow> Add(int64_t start_ms, int64_t duration_ms,
                                        std::string_view reason, std::string_view opened_by);

  // Windows that are active at now_ms or start later (not cancelled, not
  // ended), or every window ever recorded when include_past; ordered by start,
  // then id.
  absl::StatusOr<std::vector<MaintenanceWindow>> List(int64_t now_ms, bool include_past = false);

  // Ends a window now (or drops a future one). Returns the window as it is
  // after the change. NotFound when no window has this id, or it already
  // ended or was cancelled.
  absl::StatusOr<MaintenanceWindow> Cancel(int64_t id, int64_t now_ms);

  // Windows active at now_ms, ordered by start, then id.
  absl::StatusOr<std::vector<MaintenanceWindow>> ActiveAt(int64_t now_ms);

 private:
  explicit MaintenanceStore(sql::Db db) : db_(std::move(db)) {}
  // Rows matching `where` (which may use ?1 for now_ms), ordered by start, id.
  absl::StatusOr<std::vector<MaintenanceWindow>> Query(std::string_view where,
                                                       std::optional<int64_t> now_ms);

  sql::Db db_;
};

}  // namespace setdiag::agent
