#include "agent/store/maintenance.h"

#include <algorithm>

#include "absl/time/time.h"
#include "agent/store/state_schema.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/time_format.h"
#include "common/utf8.h"

namespace setdiag::agent {
namespace {

constexpr const char* kColumns = "id, start_ms, end_ms, reason, opened_by, cancelled_ms";

MaintenanceWindow FromRow(const sql::Stmt& s) {
  MaintenanceWindow w;
  w.id = s.Int(0);
  w.start_ms = s.Int(1);
  w.end_ms = s.Int(2);
  w.reason = s.Text(3);
  w.opened_by = s.Text(4);
  if (!s.IsNull(5)) w.cancelled_ms = s.Int(5);
  return w;
}

std::string Utc(int64_t unix_ms) { return FormatUnixMs(unix_ms, "%Y-%m-%d %H:%M:%S UTC"); }

absl::Status CheckText(std::string_view what, std::string_view value, size_t max_bytes) {
  if (value.empty()) return absl::InvalidArgumentError(Cat(what, " is required"));
  if (value.size() > max_bytes) {
    return absl::InvalidArgumentError(
        Cat(what, " is too long (", value.size(), " bytes, at most ", max_bytes, ")"));
  }
  if (!IsPrintableUtf8(value)) {
    return absl::InvalidArgumentError(
        Cat(what, " must be one line of UTF-8 text without control characters"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<MaintenanceStore> MaintenanceStore::Open(const std::string& path) {
  ASSIGN_OR_RETURN(auto db, sql::Db::Open(path));
  RETURN_IF_ERROR(MigrateStateDb(db, path));
  return MaintenanceStore(std::move(db));
}

absl::StatusOr<MaintenanceWindow> MaintenanceStore::Add(int64_t start_ms, int64_t duration_ms,
                                                        std::string_view reason,
                                                        std::string_view opened_by) {
  reason = Trim(reason);
  opened_by = Trim(opened_by);
  RETURN_IF_ERROR(CheckText("maintenance reason", reason, kMaxReasonBytes));
  RETURN_IF_ERROR(CheckText("maintenance opened_by", opened_by, kMaxOpenedByBytes));
  if (duration_ms < kMinDurationMs || duration_ms > kMaxDurationMs) {
    return absl::InvalidArgumentError(
        Cat("maintenance duration must be between 1 minute and 7 days, got ", duration_ms / 1000,
            " s"));
  }
  if (start_ms < 0 || start_ms > INT64_MAX - duration_ms) {
    return absl::InvalidArgumentError(Cat("maintenance start ", start_ms, " is out of range"));
  }
  MaintenanceWindow w;
  w.start_ms = start_ms;
  w.end_ms = start_ms + duration_ms;
  w.reason = std::string(reason);
  w.opened_by = std::string(opened_by);

  auto stmt = db_.Prepare(
      "INSERT INTO maintenance(start_ms, end_ms, reason, opened_by) VALUES (?1, ?2, ?3, ?4)");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, w.start_ms).Bind(2, w.end_ms).Bind(3, w.reason).Bind(4, w.opened_by);
  RETURN_IF_ERROR(stmt->Run());
  w.id = sqlite3_last_insert_rowid(db_.raw());
  return w;
}

absl::StatusOr<std::vector<MaintenanceWindow>> MaintenanceStore::Query(
    std::string_view where, std::optional<int64_t> now_ms) {
  auto stmt = db_.Prepare(
      Cat("SELECT ", kColumns, " FROM maintenance WHERE ", where, " ORDER BY start_ms, id"));
  if (!stmt.ok()) return stmt.status();
  if (now_ms) stmt->Bind(1, *now_ms);
  std::vector<MaintenanceWindow> out;
  while (true) {
    ASSIGN_OR_RETURN(auto row, stmt->Step());
    if (!row) break;
    out.push_back(FromRow(*stmt));
  }
  return out;
}

absl::StatusOr<std::vector<MaintenanceWindow>> MaintenanceStore::List(int64_t now_ms,
                                                                      bool include_past) {
  if (include_past) return Query("1", std::nullopt);
  return Query("end_ms > ?1 AND (cancelled_ms IS NULL OR cancelled_ms > ?1)", now_ms);
}

absl::StatusOr<std::vector<MaintenanceWindow>> MaintenanceStore::ActiveAt(int64_t now_ms) {
  return Query("start_ms <= ?1 AND end_ms > ?1 AND (cancelled_ms IS NULL OR cancelled_ms > ?1)",
               now_ms);
}

absl::StatusOr<MaintenanceWindow> MaintenanceStore::Cancel(int64_t id, int64_t now_ms) {
  // Read and update under one write lock, so a concurrent cancel or a window
  // ending meanwhile cannot be reported as a success twice.
  ASSIGN_OR_RETURN(auto tx, sql::Transaction::Begin(db_));
  ASSIGN_OR_RETURN(auto stmt,
                   db_.Prepare(Cat("SELECT ", kColumns, " FROM maintenance WHERE id = ?1")));
  stmt.Bind(1, id);
  ASSIGN_OR_RETURN(auto row, stmt.Step());
  if (!row) return absl::NotFoundError(Cat("maintenance window ", id, " does not exist"));
  MaintenanceWindow w = FromRow(stmt);
  stmt.Reset();
  if (w.cancelled_ms && *w.cancelled_ms <= now_ms) {
    return absl::NotFoundError(
        Cat("maintenance window ", id, " was already cancelled at ", Utc(*w.cancelled_ms)));
  }
  if (w.end_ms <= now_ms) {
    return absl::NotFoundError(Cat("maintenance window ", id, " already ended at ", Utc(w.end_ms)));
  }
  ASSIGN_OR_RETURN(auto update,
                   db_.Prepare("UPDATE maintenance SET cancelled_ms = ?2 WHERE id = ?1"));
  update.Bind(1, id).Bind(2, now_ms);
  RETURN_IF_ERROR(update.Run());
  RETURN_IF_ERROR(tx.Commit());
  w.cancelled_ms = now_ms;
  return w;
}

}  // namespace setdiag::agent
