#include "agent/store/history.h"

#include <sys/stat.h>

#include <array>

#include "common/log.h"
#include "common/schema.h"
#include "common/status.h"
#include "common/strings.h"

namespace setdiag::agent {
namespace {

// Version 1: the first release (0.1.0).
constexpr const char* kVersion1 = R"sql(
CREATE TABLE IF NOT EXISTS findings(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  seq INTEGER NOT NULL DEFAULT 0,
  kind TEXT NOT NULL,
  severity INTEGER NOT NULL,
  detected_at_ms INTEGER NOT NULL,
  recorded_at_ms INTEGER NOT NULL,
  component TEXT NOT NULL DEFAULT '',
  payload TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS findings_by_detected ON findings(detected_at_ms);
CREATE INDEX IF NOT EXISTS findings_by_recorded ON findings(recorded_at_ms);
)sql";

const std::array<sql::Migration, 1> kSteps = {{
    {1, "findings (0.1.0)", [](sql::Db& db) { return db.Exec(kVersion1); }},
}};

}  // namespace

absl::StatusOr<std::unique_ptr<HistoryStore>> HistoryStore::Open(const std::string& path,
                                                                 bool read_only) {
  if (read_only) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      return absl::NotFoundError(
          Cat("no history at ", path, " (the agent has not recorded any finding yet)"));
    }
  }
  ASSIGN_OR_RETURN(auto db, sql::Db::Open(path, kBusyTimeoutMs));
  std::unique_ptr<HistoryStore> store(new HistoryStore(std::move(db)));
  {
    MutexLock lock(&store->mu_);  // not shared yet; the lock states what guards db_
    if (read_only) {
      RETURN_IF_ERROR(store->db_.Exec("PRAGMA query_only=ON"));
    } else {
      RETURN_IF_ERROR(store->InitSchema(path));
    }
  }
  return store;
}

absl::Status HistoryStore::InitSchema(const std::string& path) {
  RETURN_IF_ERROR(db_.Exec("PRAGMA synchronous=NORMAL"));
  auto r = sql::Migrate(db_, "history", path, kSteps);
  return r.ok() ? absl::OkStatus() : r.status();
}

absl::Status HistoryStore::Append(const HistoryRecord& r, int64_t now_ms) {
  MutexLock lock(&mu_);
  auto stmt = db_.Prepare(
      "INSERT INTO findings(seq, kind, severity, detected_at_ms, recorded_at_ms, component, "
      "payload) "
      "VALUES (?,?,?,?,?,?,?)");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, static_cast<int64_t>(r.seq))
      .Bind(2, r.kind)
      .Bind(3, static_cast<int64_t>(r.severity))
      .Bind(4, r.detected_at_ms)
      .Bind(5, now_ms)
      .Bind(6, r.component)
      .Bind(7, r.payload);
  RETURN_IF_ERROR(stmt->Run());
  if (now_ms - last_prune_ms_ >= kPruneEveryMs) {
    ASSIGN_OR_RETURN(auto del, db_.Prepare("DELETE FROM findings WHERE recorded_at_ms < ?"));
    RETURN_IF_ERROR(del.Bind(1, now_ms - kKeepMs).Run());
    last_prune_ms_ = now_ms;
  }
  return absl::OkStatus();
}

void HistoryStore::AppendOrLog(const HistoryRecord& record, int64_t now_ms) {
  absl::Status st = Append(record, now_ms);
  MutexLock lock(&mu_);
  if (!st.ok() && !failing_) {
    log::Warn("history", Cat("cannot record ", record.kind,
                             " in the local history (bundles will miss it): ", st.ToString()));
  } else if (st.ok() && failing_) {
    log::Info("history", "recording the local history again");
  }
  failing_ = !st.ok();
}

absl::StatusOr<int64_t> HistoryStore::Scan(int64_t from_ms, int64_t to_ms, int64_t limit,
                                           const std::function<bool(const HistoryRecord&)>& visit) {
  MutexLock lock(&mu_);
  auto stmt = db_.Prepare(
      "SELECT id, seq, kind, severity, detected_at_ms, recorded_at_ms, component, payload FROM "
      "findings "
      "WHERE detected_at_ms >= ? AND detected_at_ms <= ? ORDER BY detected_at_ms, id LIMIT ?");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, from_ms).Bind(2, to_ms).Bind(3, limit);
  int64_t n = 0;
  while (true) {
    ASSIGN_OR_RETURN(auto row, stmt->Step());
    if (!row) break;
    HistoryRecord r;
    r.id = stmt->Int(0);
    r.seq = static_cast<uint64_t>(stmt->Int(1));
    r.kind = stmt->Text(2);
    r.severity = static_cast<Severity>(stmt->Int(3));
    r.detected_at_ms = stmt->Int(4);
    r.recorded_at_ms = stmt->Int(5);
    r.component = stmt->Text(6);
    r.payload = stmt->Text(7);
    ++n;
    if (!visit(r)) break;
  }
  return n;
}

absl::StatusOr<int64_t> HistoryStore::Prune(int64_t now_ms) {
  MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(auto del, db_.Prepare("DELETE FROM findings WHERE recorded_at_ms < ?"));
  RETURN_IF_ERROR(del.Bind(1, now_ms - kKeepMs).Run());
  last_prune_ms_ = now_ms;
  return db_.Changes();
}

}  // namespace setdiag::agent
