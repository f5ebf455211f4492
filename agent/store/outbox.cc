#include "agent/store/outbox.h"

#include <sqlite3.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>

#include "common/files.h"
#include "common/log.h"
#include "common/schema.h"
#include "common/status.h"
#include "common/strings.h"

namespace setdiag::agent {
namespace {

// Version 1: the first release (0.1.0).
constexpr const char* kVersion1 = R"sql(
CREATE TABLE IF NOT EXISTS outbox(
  seq INTEGER PRIMARY KEY,
  kind TEXT NOT NULL,
  severity INTEGER NOT NULL,
  detected_at_ms INTEGER NOT NULL,
  enqueued_at_ms INTEGER NOT NULL,
  payload BLOB NOT NULL,
  size INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS outbox_by_eviction_order ON outbox(severity, seq);
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, ivalue INTEGER, tvalue TEXT);
INSERT OR IGNORE INTO meta(key, ivalue) VALUES ('next_seq', 1), ('bytes', 0), ('gaps_total', 0),
  ('fresh', 1);
)sql";

const std::array<sql::Migration, 1> kSteps = {{
    {1, "outbox and meta (0.1.0)", [](sql::Db& db) { return db.Exec(kVersion1); }},
}};

// Per-row overhead counted towards the byte limit besides kind and payload.
constexpr int64_t kRowOverhead = 64;
// Room kept for the gap record an eviction writes (its ranges list is capped).
constexpr int64_t kGapReserve = 4096;
constexpr size_t kMaxGapRanges = 64;

int64_t RowSize(const NewEvent& e) {
  return static_cast<int64_t>(e.kind.size() + e.payload.size()) + kRowOverhead;
}

absl::Status MoveAside(const std::string& path, const std::string& suffix) {
  for (const char* ext : {"", "-wal", "-shm"}) {
    std::string from = path + ext;
    std::string to = path + suffix + ext;
    if (std::rename(from.c_str(), to.c_str()) != 0 && errno != ENOENT) {
      return absl::UnavailableError(Cat("cannot move ", from, " aside"));
    }
  }
  return absl::OkStatus();
}

// [[a,b],...] ranges of consecutive sequences.
nlohmann::json Ranges(const std::vector<uint64_t>& seqs, size_t max_ranges, bool* truncated) {
  nlohmann::json out = nlohmann::json::array();
  *truncated = false;
  size_t i = 0;
  while (i < seqs.size()) {
    size_t j = i;
    while (j + 1 < seqs.size() && seqs[j + 1] == seqs[j] + 1) ++j;
    if (out.size() == max_ranges) {
      *truncated = true;
      break;
    }
    out.push_back({seqs[i], seqs[j]});
    i = j + 1;
  }
  return out;
}

}  // namespace

// What could be read from an outbox file that failed its integrity check.
struct Outbox::Salvage {
  std::string outbox_id;
  int64_t next_seq = 0;  // 0: unreadable
  std::vector<StoredEvent> events;
  int64_t unreadable = 0;  // sequences below next_seq that could not be read
  std::string error;       // why nothing could be read, if so
};

// Reads the file read-only, row by row: a scan in sequence order, and where
// it stops at a damaged page, one lookup per sequence up to next_seq (at most
// kMaxProbes), so rows on intact pages are found past the damage.
Outbox::Salvage Outbox::ReadDamaged(const std::string& path) {
  constexpr int64_t kMaxProbes = 100'000;
  Salvage out;
  sqlite3* db = nullptr;
  std::string uri = Cat("file:", path, "?mode=ro");
  if (sqlite3_open_v2(uri.c_str(), &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, nullptr) !=
      SQLITE_OK) {
    out.error = db ? sqlite3_errmsg(db) : "cannot open";
    sqlite3_close(db);
    return out;
  }
  auto text_meta = [&](const char* sql) -> std::string {
    sqlite3_stmt* st = nullptr;
    std::string v;
    if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
      const auto* t = sqlite3_column_text(st, 0);
      if (t) v = reinterpret_cast<const char*>(t);
    }
    sqlite3_finalize(st);
    return v;
  };
  out.outbox_id = text_meta("SELECT tvalue FROM meta WHERE key='outbox_id'");
  std::string next = text_meta("SELECT ivalue FROM meta WHERE key='next_seq'");
  if (!next.empty()) out.next_seq = std::atoll(next.c_str());
  auto row = [](sqlite3_stmt* st) {
    StoredEvent e;
    e.sequence = static_cast<uint64_t>(sqlite3_column_int64(st, 0));
    const auto* k = sqlite3_column_text(st, 1);
    e.kind = k ? reinterpret_cast<const char*>(k) : "";
    e.severity = static_cast<Severity>(sqlite3_column_int(st, 2));
    e.detected_at_ms = sqlite3_column_int64(st, 3);
    const auto* p = static_cast<const char*>(sqlite3_column_blob(st, 4));
    e.payload.assign(p ? p : "", static_cast<size_t>(sqlite3_column_bytes(st, 4)));
    return e;
  };
  constexpr const char* kCols = "SELECT seq, kind, severity, detected_at_ms, payload FROM outbox ";
  sqlite3_stmt* scan = nullptr;
  int64_t last = 0;
  bool damaged = false;
  if (sqlite3_prepare_v2(db, Cat(kCols, "ORDER BY seq").c_str(), -1, &scan, nullptr) == SQLITE_OK) {
    int rc;
    while ((rc = sqlite3_step(scan)) == SQLITE_ROW) {
      out.events.push_back(row(scan));
      last = static_cast<int64_t>(out.events.back().sequence);
    }
    damaged = rc != SQLITE_DONE;
    if (damaged) out.error = sqlite3_errmsg(db);
  } else {
    out.error = sqlite3_errmsg(db);
  }
  sqlite3_finalize(scan);
  if (damaged && out.next_seq > last + 1) {
    sqlite3_stmt* one = nullptr;
    if (sqlite3_prepare_v2(db, Cat(kCols, "WHERE seq=?").c_str(), -1, &one, nullptr) == SQLITE_OK) {
      int64_t probes = 0;
      for (int64_t seq = last + 1; seq < out.next_seq && probes < kMaxProbes; ++seq, ++probes) {
        sqlite3_reset(one);
        sqlite3_bind_int64(one, 1, seq);
        int rc = sqlite3_step(one);
        if (rc == SQLITE_ROW) {
          out.events.push_back(row(one));
        } else if (rc != SQLITE_DONE) {
          ++out.unreadable;  // a damaged page: this sequence may have been waiting
        }
      }
    }
    sqlite3_finalize(one);
  }
  sqlite3_close(db);
  return out;
}

namespace {
bool IsDiskFull(const absl::Status& st) {
  return st.code() == absl::StatusCode::kResourceExhausted;
}
}  // namespace

Outbox::Outbox(sql::Db db, OutboxLimits limits, Clock& clock, bool in_memory)
    : db_(std::move(db)), limits_(limits), clock_(clock), in_memory_(in_memory) {}

absl::StatusOr<std::unique_ptr<Outbox>> Outbox::OpenWithoutRepair(const std::string& path,
                                                                  OutboxLimits limits,
                                                                  Clock& clock) {
  ASSIGN_OR_RETURN(auto db, sql::Db::Open(path));
  ASSIGN_OR_RETURN(auto check, db.QueryText("PRAGMA quick_check"));
  if (check != "ok") return absl::DataLossError(Cat("integrity check failed: ", check));
  std::unique_ptr<Outbox> box(new Outbox(std::move(db), limits, clock, path == ":memory:"));
  {
    MutexLock lock(&box->mu_);  // not shared yet; the lock states what guards db_
    RETURN_IF_ERROR(box->InitSchema(path));
  }
  return box;
}

std::unique_ptr<Outbox> Outbox::Open(const std::string& path, OutboxLimits limits, Clock& clock) {
  auto try_open = [&](const std::string& p) { return OpenWithoutRepair(p, limits, clock); };

  auto box = try_open(path);
  if (box.ok()) {
    if (path != ":memory:") {
      (*box)->path_ = path;
      (*box)->LoadHeldSidecar();
    }
    return std::move(*box);
  }
  std::string reason;
  if (box.status().code() == absl::StatusCode::kDataLoss) {
    std::string suffix = Cat(".corrupt-", clock.NowMs());
    reason = Cat("outbox ", path, " was unreadable (", box.status().message(), "); moved aside to ",
                 path, suffix, " and started a fresh one");
    if (MoveAside(path, suffix).ok()) {
      // Before the file is given up: what can still be read of it.
      Salvage salvage = ReadDamaged(path + suffix);
      auto fresh = try_open(path);
      if (fresh.ok()) {
        Outbox& renewed = **fresh;
        renewed.path_ = path;
        renewed.reset_reason_ = reason;
        renewed.RecoverFrom(salvage, path + suffix);
        log::Error("outbox", Cat(reason, "; ", renewed.reset_details_));
        renewed.LoadHeldSidecar();
        return std::move(*fresh);
      }
      reason = Cat(reason, "; the fresh one failed too: ", fresh.status().message());
    }
  } else {
    reason = Cat("cannot open outbox ", path, ": ", box.status().message());
  }
  reason += "; running with an in-memory outbox (events survive only while the agent runs)";
  log::Error("outbox", reason);
  auto mem = try_open(":memory:");
  if (!mem.ok()) std::abort();  // SQLite in memory failing means no heap left
  (*mem)->reset_reason_ = reason;
  return std::move(*mem);
}

absl::Status Outbox::InitSchema(const std::string& path) {
  RETURN_IF_ERROR(db_.Exec("PRAGMA synchronous=NORMAL"));
  if (auto r = sql::Migrate(db_, "outbox", path, kSteps); !r.ok()) return r.status();
  auto id = db_.QueryText("SELECT tvalue FROM meta WHERE key='outbox_id'");
  if (!id.ok()) return id.status();
  if (id->empty()) {
    std::string fresh_id = RandomHex(16);
    ASSIGN_OR_RETURN(
        auto stmt, db_.Prepare("INSERT OR IGNORE INTO meta(key, tvalue) VALUES ('outbox_id', ?)"));
    RETURN_IF_ERROR(stmt.Bind(1, fresh_id).Run());
    id = db_.QueryText("SELECT tvalue FROM meta WHERE key='outbox_id'");
    if (!id.ok()) return id.status();
  }
  outbox_id_ = *id;
  return absl::OkStatus();
}

absl::StatusOr<int64_t> Outbox::Meta(sql::Db& db, const char* key) {
  ASSIGN_OR_RETURN(auto stmt, db.Prepare("SELECT ivalue FROM meta WHERE key=?"));
  stmt.Bind(1, std::string_view(key));
  ASSIGN_OR_RETURN(auto row, stmt.Step());
  if (!row) return absl::DataLossError(Cat("outbox meta key ", key, " missing"));
  return stmt.Int(0);
}

absl::Status Outbox::SetMeta(const char* key, int64_t value) {
  ASSIGN_OR_RETURN(auto stmt, db_.Prepare("UPDATE meta SET ivalue=? WHERE key=?"));
  return stmt.Bind(1, value).Bind(2, std::string_view(key)).Run();
}

absl::StatusOr<uint64_t> Outbox::InsertLocked(const NewEvent& event, int64_t now_ms) {
  ASSIGN_OR_RETURN(auto next, Meta(db_, "next_seq"));
  ASSIGN_OR_RETURN(auto bytes, Meta(db_, "bytes"));
  int64_t size = RowSize(event);
  auto stmt = db_.Prepare(
      "INSERT INTO outbox(seq, kind, severity, detected_at_ms, enqueued_at_ms, payload, size) "
      "VALUES (?,?,?,?,?,?,?)");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, next)
      .Bind(2, event.kind)
      .Bind(3, static_cast<int64_t>(event.severity))
      .Bind(4, event.detected_at_ms)
      .Bind(5, now_ms)
      .BindBlob(6, event.payload)
      .Bind(7, size);
  RETURN_IF_ERROR(stmt->Run());
  RETURN_IF_ERROR(SetMeta("next_seq", next + 1));
  RETURN_IF_ERROR(SetMeta("bytes", bytes + size));
  return static_cast<uint64_t>(next);
}

absl::Status Outbox::EvictAndRecord(const std::vector<uint64_t>& sequences, const char* reason) {
  if (sequences.empty()) return absl::OkStatus();
  std::map<std::string, int64_t> by_severity;
  std::map<std::string, int64_t> by_kind;
  int64_t freed = 0, oldest = INT64_MAX, newest = 0;
  auto sel = db_.Prepare("SELECT severity, size, detected_at_ms, kind FROM outbox WHERE seq=?");
  auto del = db_.Prepare("DELETE FROM outbox WHERE seq=?");
  if (!sel.ok()) return sel.status();
  if (!del.ok()) return del.status();
  for (uint64_t seq : sequences) {
    sel->Reset();
    sel->Bind(1, static_cast<int64_t>(seq));
    ASSIGN_OR_RETURN(auto row, sel->Step());
    if (!row) continue;
    by_severity[SeverityName(static_cast<Severity>(sel->Int(0)))]++;
    freed += sel->Int(1);
    oldest = std::min(oldest, sel->Int(2));
    newest = std::max(newest, sel->Int(2));
    by_kind[sel->Text(3)]++;
    sel->Reset();
    del->Reset();
    RETURN_IF_ERROR(del->Bind(1, static_cast<int64_t>(seq)).Run());
  }
  ASSIGN_OR_RETURN(auto bytes, Meta(db_, "bytes"));
  ASSIGN_OR_RETURN(auto gaps, Meta(db_, "gaps_total"));
  RETURN_IF_ERROR(SetMeta("bytes", bytes - freed));
  auto count = static_cast<int64_t>(sequences.size());
  RETURN_IF_ERROR(SetMeta("gaps_total", gaps + count));

  bool truncated = false;
  nlohmann::json payload = {
      {"reason", reason},
      {"count", count},
      {"bytes", freed},
      {"sequences", Ranges(sequences, kMaxGapRanges, &truncated)},
      {"sequences_truncated", truncated},
      {"by_severity", by_severity},
      {"by_kind", by_kind},
      {"oldest_detected_ms", oldest == INT64_MAX ? 0 : oldest},
      {"newest_detected_ms", newest},
  };
  NewEvent gap{kGapKind, Severity::kImportant, clock_.NowMs(), payload.dump()};
  ASSIGN_OR_RETURN(auto seq, InsertLocked(gap, clock_.NowMs()));
  log::Warn("outbox", Cat("evicted ", count, " events (", reason, "); gap record ", seq,
                          " will tell the collector"));
  return absl::OkStatus();
}

absl::StatusOr<bool> Outbox::MakeRoom(int64_t incoming, Severity severity) {
  ASSIGN_OR_RETURN(auto bytes, Meta(db_, "bytes"));
  if (bytes + incoming <= limits_.max_bytes) return true;
  // Only events no more important than the newcomer may make room for it:
  // a full outbox of critical events never loses one to an info event.
  auto stmt = db_.Prepare(
      "SELECT seq, size FROM outbox WHERE severity <= ? ORDER BY severity ASC, seq ASC");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, static_cast<int64_t>(severity));
  std::vector<std::pair<uint64_t, int64_t>> candidates;
  while (true) {
    ASSIGN_OR_RETURN(auto row, stmt->Step());
    if (!row) break;
    candidates.emplace_back(static_cast<uint64_t>(stmt->Int(0)), stmt->Int(1));
  }
  stmt->Reset();
  int64_t evictable = 0;
  for (const auto& c : candidates) evictable += c.second;
  if (bytes - evictable + incoming + kGapReserve > limits_.max_bytes) return false;
  // Free down to the low watermark (room for the gap record included), so a
  // full outbox does not evict and report a gap on every append.
  auto target =
      static_cast<int64_t>(static_cast<double>(limits_.max_bytes) * limits_.low_watermark) -
      incoming - kGapReserve;
  std::vector<uint64_t> victims;
  int64_t remaining = bytes;
  for (const auto& [seq, size] : candidates) {
    if (remaining <= target) break;
    victims.push_back(seq);
    remaining -= size;
  }
  std::sort(victims.begin(), victims.end());
  RETURN_IF_ERROR(EvictAndRecord(victims, "outbox_full"));
  return true;
}

absl::Status Outbox::RecordDroppedArrival(const NewEvent& event) {
  // Counted, not stored: a gap record per dropped event could itself fill
  // the outbox. The count reaches the collector in every status report
  // (gaps_total) and as one gap record when there is room (FlushDropped).
  ASSIGN_OR_RETURN(auto stmt, db_.Prepare("SELECT tvalue FROM meta WHERE key='dropped'"));
  ASSIGN_OR_RETURN(auto row, stmt.Step());
  auto dropped = nlohmann::json::parse(row ? stmt.Text(0) : std::string("{}"), nullptr, false);
  stmt.Reset();
  if (!dropped.is_object()) dropped = nlohmann::json::object();
  if (!dropped["by_kind"].is_object()) dropped["by_kind"] = nlohmann::json::object();
  if (!dropped["by_severity"].is_object()) dropped["by_severity"] = nlohmann::json::object();
  dropped["count"] = dropped.value("count", 0) + 1;
  dropped["by_kind"][event.kind] = dropped["by_kind"].value(event.kind, 0) + 1;
  std::string sev = SeverityName(event.severity);
  dropped["by_severity"][sev] = dropped["by_severity"].value(sev, 0) + 1;
  if (!dropped.contains("oldest_detected_ms")) dropped["oldest_detected_ms"] = event.detected_at_ms;
  dropped["newest_detected_ms"] = event.detected_at_ms;
  auto up = db_.Prepare(
      "INSERT INTO meta(key, tvalue) VALUES ('dropped', ?1) "
      "ON CONFLICT(key) DO UPDATE SET tvalue=?1");
  if (!up.ok()) return up.status();
  RETURN_IF_ERROR(up->Bind(1, dropped.dump()).Run());
  ASSIGN_OR_RETURN(auto gaps, Meta(db_, "gaps_total"));
  return SetMeta("gaps_total", gaps + 1);
}

absl::Status Outbox::FlushDroppedLocked() {
  ASSIGN_OR_RETURN(auto text, db_.QueryText("SELECT tvalue FROM meta WHERE key='dropped'"));
  if (text.empty()) return absl::OkStatus();
  auto dropped = nlohmann::json::parse(text, nullptr, false);
  if (dropped.is_discarded() || dropped.value("count", 0) == 0) return absl::OkStatus();
  nlohmann::json payload = dropped;
  payload["reason"] = "outbox_full_dropped_on_arrival";
  payload["sequences"] = nlohmann::json::array();  // never got sequences
  payload["sequences_truncated"] = false;
  NewEvent gap{kGapKind, Severity::kImportant, clock_.NowMs(), payload.dump()};
  ASSIGN_OR_RETURN(auto fits, MakeRoom(RowSize(gap), gap.severity));
  if (!fits) return absl::OkStatus();  // still full of critical events; try later
  ASSIGN_OR_RETURN(auto seq, InsertLocked(gap, clock_.NowMs()));
  log::Warn("outbox",
            Cat("reported ", dropped.value("count", 0),
                " events dropped on arrival while the outbox was full; gap record ", seq));
  return db_.Exec("DELETE FROM meta WHERE key='dropped'");
}

absl::Status ValidateNewEvent(const NewEvent& event, int64_t max_event_bytes) {
  if (!IsValidIdentifier(event.kind)) {
    return absl::InvalidArgumentError(
        Cat("event kind '", event.kind, "' must be 1..128 characters of [A-Za-z0-9._-]"));
  }
  if (event.severity < Severity::kInfo || event.severity > Severity::kCritical) {
    return absl::InvalidArgumentError("event severity must be info, normal, important or critical");
  }
  if (RowSize(event) > max_event_bytes) {
    return absl::InvalidArgumentError(Cat("event ", event.kind, " is ", RowSize(event),
                                          " bytes; the limit is ", max_event_bytes));
  }
  auto json = nlohmann::json::parse(event.payload, nullptr, false);
  if (json.is_discarded() || !json.is_object()) {
    return absl::InvalidArgumentError(Cat("event ", event.kind, ": payload must be a JSON object"));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> Outbox::AppendLocked(const NewEvent& event, bool* by_disk) {
  *by_disk = false;
  int64_t size = RowSize(event);
  const bool critical = event.severity == Severity::kCritical;
  if (critical) {
    if (auto st = db_.Exec("PRAGMA synchronous=FULL"); !st.ok()) {
      *by_disk = true;
      return st;
    }
  }
  bool deliberate = false;
  absl::StatusOr<uint64_t> result =
      [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) -> absl::StatusOr<uint64_t> {
    ASSIGN_OR_RETURN(auto txn, sql::Transaction::Begin(db_));
    ASSIGN_OR_RETURN(auto fits, MakeRoom(size, event.severity));
    if (!fits) {
      RETURN_IF_ERROR(RecordDroppedArrival(event));
      RETURN_IF_ERROR(txn.Commit());
      deliberate = true;
      return absl::ResourceExhaustedError(
          Cat("outbox is full of more important events; dropped this ", event.kind, " event"));
    }
    ASSIGN_OR_RETURN(auto seq, InsertLocked(event, clock_.NowMs()));
    RETURN_IF_ERROR(txn.Commit());
    return seq;
  }();
  if (critical) (void)db_.Exec("PRAGMA synchronous=NORMAL");
  *by_disk = !result.ok() && !deliberate;
  return result;
}

absl::StatusOr<uint64_t> Outbox::Append(const NewEvent& event) {
  // The collector enforces the same rules; an event it would reject must not
  // enter the outbox, or it would block the stream until it expires.
  RETURN_IF_ERROR(ValidateNewEvent(event, limits_.max_event_bytes));
  MutexLock lock(&mu_);
  if (!held_.empty()) {
    // Order is kept: nothing newer is committed before what is held.
    absl::Status st = CommitHeldLocked(nullptr);
    if (!held_.empty()) {
      HoldLocked(event, st);
      return absl::UnavailableError(Cat("the disk refuses the outbox (", st.message(), "); ",
                                        event.kind, " is held in memory with ", held_.size() - 1,
                                        " other event(s)"));
    }
  }
  bool by_disk = false;
  auto seq = AppendLocked(event, &by_disk);
  if (seq.ok() || !by_disk || path_.empty()) return seq;
  HoldLocked(event, seq.status());
  return absl::UnavailableError(Cat("the disk refused the outbox (", seq.status().message(), "); ",
                                    event.kind, " is held in memory until it can be committed"));
}

std::string Outbox::DirectoryOfFile() const {
  auto slash = path_.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path_.substr(0, slash);
}

void Outbox::LoseLocked(const NewEvent& event) {
  auto lost =
      nlohmann::json::parse(lost_json_.empty() ? std::string("{}") : lost_json_, nullptr, false);
  if (!lost.is_object()) lost = nlohmann::json::object();
  if (!lost["by_kind"].is_object()) lost["by_kind"] = nlohmann::json::object();
  if (!lost["by_severity"].is_object()) lost["by_severity"] = nlohmann::json::object();
  lost["by_kind"][event.kind] = lost["by_kind"].value(event.kind, 0) + 1;
  std::string sev = SeverityName(event.severity);
  lost["by_severity"][sev] = lost["by_severity"].value(sev, 0) + 1;
  if (!lost.contains("oldest_detected_ms")) lost["oldest_detected_ms"] = event.detected_at_ms;
  lost["newest_detected_ms"] = event.detected_at_ms;
  lost_json_ = lost.dump();
  ++lost_count_;
  log::Error("outbox",
             Cat("lost ", event.kind, " (", sev, "): the disk refuses writes and ", held_.size(),
                 " more important events fill the memory kept for them; a gap record will say so"));
}

void Outbox::HoldLocked(const NewEvent& event, const absl::Status& error) {
  if (disk_episode_.empty()) {
    // The first refusal: the agent says so itself, held with the rest and
    // committed first when the disk takes writes again.
    const std::string dir = DirectoryOfFile();
    struct statvfs fs {};
    int64_t free_bytes = -1;
    if (::statvfs(dir.c_str(), &fs) == 0)
      free_bytes = static_cast<int64_t>(fs.f_bavail) * static_cast<int64_t>(fs.f_frsize);
    const bool full = IsDiskFull(error) || (free_bytes >= 0 && free_bytes < 1024 * 1024);
    disk_kind_ = full ? "agent.disk_full" : "agent.outbox_write_failed";
    disk_since_ms_ = clock_.NowMs();
    disk_episode_ = Cat(outbox_id_, "-", disk_kind_, "-", disk_since_ms_);
    const std::string what_en =
        full ? Cat("The agent's state directory ", dir, " is full (", free_bytes, " bytes free)")
             : Cat("The agent cannot write its outbox in ", dir, ": ", error.message());
    const std::string what_ru =
        full ? Cat("Каталог состояния агента ", dir, " переполнен (свободно ", free_bytes, " байт)")
             : Cat("Агент не может записать очередь событий в ", dir, ": ", error.message());
    nlohmann::json payload = {
        {"state", "raised"},
        {"episode", disk_episode_},
        {"path", dir},
        {"outbox", path_},
        {"free_bytes", free_bytes},
        {"error", std::string(error.message())},
        {"summary_en",
         Cat(what_en, "; findings are held in memory and sent once they can be written")},
        {"summary_ru",
         Cat(what_ru,
             "; события хранятся в памяти и будут отправлены, как только их можно будет записать")},
        {"fix_en", Cat("Free space on the file system of ", dir,
                       " (or fix its permissions); the agent commits and sends the held findings "
                       "within seconds. "
                       "Findings held in memory are lost if the agent stops before that.")},
        {"fix_ru", Cat("Освободите место в файловой системе ", dir,
                       " (или исправьте права доступа); агент запишет и отправит события в течение "
                       "нескольких секунд. "
                       "Если агент остановится раньше, события из памяти будут потеряны.")},
    };
    NewEvent notice{disk_kind_, Severity::kImportant, disk_since_ms_, payload.dump()};
    held_.push_back({notice, RowSize(notice)});
    held_bytes_ += RowSize(notice);
    log::Error("outbox", Cat("cannot commit ", event.kind, " to ", path_, ": ", error.ToString(),
                             "; ", what_en, ". Holding events in memory (at most ",
                             limits_.max_held_events, ") and retrying every few seconds"));
  }
  const int64_t bytes = RowSize(event);
  while (!held_.empty() && (held_.size() + 1 > limits_.max_held_events ||
                            held_bytes_ + bytes > limits_.max_held_bytes)) {
    // Least important first, oldest first; never one more important than the newcomer.
    size_t victim = held_.size();
    for (size_t i = 0; i < held_.size(); ++i) {
      if (held_[i].event.severity > event.severity) continue;
      if (victim == held_.size() || held_[i].event.severity < held_[victim].event.severity)
        victim = i;
    }
    if (victim == held_.size()) return LoseLocked(event);
    LoseLocked(held_[victim].event);
    held_bytes_ -= held_[victim].bytes;
    held_.erase(held_.begin() + static_cast<std::ptrdiff_t>(victim));
  }
  held_.push_back({event, bytes});
  held_bytes_ += bytes;
}

absl::Status Outbox::RecordLostLocked() {
  auto lost = nlohmann::json::parse(lost_json_, nullptr, false);
  if (!lost.is_object()) lost = nlohmann::json::object();
  lost["reason"] = "disk_full";
  lost["count"] = lost_count_;
  lost["sequences"] = nlohmann::json::array();  // never got sequences
  lost["sequences_truncated"] = false;
  lost["path"] = path_;
  NewEvent gap{kGapKind, Severity::kImportant, clock_.NowMs(), lost.dump()};
  ASSIGN_OR_RETURN(auto txn, sql::Transaction::Begin(db_));
  ASSIGN_OR_RETURN(auto fits, MakeRoom(RowSize(gap), gap.severity));
  if (fits) {
    RETURN_IF_ERROR(InsertLocked(gap, clock_.NowMs()));
  }
  ASSIGN_OR_RETURN(auto gaps, Meta(db_, "gaps_total"));
  RETURN_IF_ERROR(SetMeta("gaps_total", gaps + static_cast<int64_t>(lost_count_)));
  RETURN_IF_ERROR(txn.Commit());
  log::Warn("outbox",
            Cat("recorded the loss of ", lost_count_, " events the disk refused: ", lost.dump()));
  lost_json_.clear();
  lost_count_ = 0;
  return absl::OkStatus();
}

absl::Status Outbox::CommitHeldLocked(size_t* committed) {
  size_t n = 0;
  auto done = [&](absl::Status st) {
    if (committed) *committed = n;
    return st;
  };
  while (!held_.empty()) {
    bool by_disk = false;
    auto seq = AppendLocked(held_.front().event, &by_disk);
    if (!seq.ok() && by_disk) return done(seq.status());
    if (seq.ok()) {
      ++n;
      log::Info("outbox", Cat("committed held ", held_.front().event.kind, " -> outbox #", *seq));
    }
    held_bytes_ -= held_.front().bytes;
    held_.erase(held_.begin());
  }
  if (lost_count_ > 0) {
    if (auto st = RecordLostLocked(); !st.ok()) return done(st);
  }
  if (!disk_episode_.empty()) {
    const std::string dir = DirectoryOfFile();
    struct statvfs fs {};
    int64_t free_bytes = -1;
    if (::statvfs(dir.c_str(), &fs) == 0)
      free_bytes = static_cast<int64_t>(fs.f_bavail) * static_cast<int64_t>(fs.f_frsize);
    nlohmann::json payload = {
        {"state", "cleared"},
        {"episode", disk_episode_},
        {"path", dir},
        {"outbox", path_},
        {"free_bytes", free_bytes},
        {"since_ms", disk_since_ms_},
        {"summary_en", Cat("The agent writes to ", dir, " again; the held findings are committed")},
        {"summary_ru", Cat("Агент снова записывает в ", dir, "; отложенные события записаны")},
    };
    bool by_disk = false;
    auto seq =
        AppendLocked({disk_kind_, Severity::kImportant, clock_.NowMs(), payload.dump()}, &by_disk);
    if (!seq.ok() && by_disk) return done(seq.status());
    log::Info("outbox", Cat("the disk takes writes again (", free_bytes, " bytes free in ", dir,
                            "); ", disk_kind_, " cleared"));
    disk_episode_.clear();
  }
  return done(absl::OkStatus());
}

absl::Status Outbox::CommitHeld(size_t* committed) {
  MutexLock lock(&mu_);
  if (committed) *committed = 0;
  if (held_.empty() && lost_count_ == 0 && disk_episode_.empty()) return absl::OkStatus();
  return CommitHeldLocked(committed);
}

size_t Outbox::held() {
  MutexLock lock(&mu_);
  return held_.size();
}

absl::Status Outbox::LimitPagesForTest(int64_t pages) {
  MutexLock lock(&mu_);
  auto v = db_.QueryInt(Cat("PRAGMA max_page_count=", pages));
  return v.ok() ? absl::OkStatus() : v.status();
}

void Outbox::WriteHeldSidecar() {
  nlohmann::json held = nlohmann::json::array();
  for (const auto& h : held_) {
    held.push_back({{"kind", h.event.kind},
                    {"severity", static_cast<int>(h.event.severity)},
                    {"detected_at_ms", h.event.detected_at_ms},
                    {"payload", h.event.payload}});
  }
  nlohmann::json j = {{"held", held},
                      {"lost", lost_json_},
                      {"lost_count", lost_count_},
                      {"disk_episode", disk_episode_},
                      {"disk_kind", disk_kind_},
                      {"disk_since_ms", disk_since_ms_}};
  const std::string sidecar = path_ + ".held.json";
  auto st = WriteFileAtomically(
      sidecar, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), 0640);
  if (st.ok()) {
    log::Warn("outbox", Cat(held_.size(), " event(s) the disk refused are kept in ", sidecar,
                            " and appended at the next start"));
    return;
  }
  std::map<std::string, int> by_kind;
  for (const auto& h : held_) by_kind[h.event.kind]++;
  std::string kinds;
  for (const auto& [k, n] : by_kind) kinds += Cat(kinds.empty() ? "" : ", ", k, " x", n);
  log::Error("outbox", Cat("stopping with ", held_.size(), " event(s) the disk refused (", kinds,
                           ") and ", lost_count_, " already lost; they cannot be kept either (",
                           st.message(), "): lost"));
}

void Outbox::LoadHeldSidecar() {
  const std::string sidecar = path_ + ".held.json";
  auto text = ReadWholeFile(sidecar);
  if (!text.ok()) return;
  auto j = nlohmann::json::parse(*text, nullptr, false);
  ::unlink(sidecar.c_str());
  if (!j.is_object()) {
    log::Error("outbox", Cat(sidecar, " is unreadable; the events it held are lost"));
    return;
  }
  MutexLock lock(&mu_);
  if (j["lost"].is_string() && j.value("lost_count", uint64_t{0}) > 0) {
    lost_json_ = j["lost"].get<std::string>();
    lost_count_ = j.value("lost_count", uint64_t{0});
  }
  disk_episode_ = j.value("disk_episode", "");
  disk_kind_ = j.value("disk_kind", "");
  disk_since_ms_ = j.value("disk_since_ms", int64_t{0});
  if (j["held"].is_array()) {
    for (const auto& e : j["held"]) {
      NewEvent ev{e.value("kind", ""), static_cast<Severity>(e.value("severity", 2)),
                  e.value("detected_at_ms", int64_t{0}), e.value("payload", "{}")};
      if (!ValidateNewEvent(ev, limits_.max_event_bytes).ok()) continue;
      held_.push_back({ev, RowSize(ev)});
      held_bytes_ += RowSize(ev);
    }
  }
  log::Info("outbox",
            Cat("appending ", held_.size(), " event(s) kept in ", sidecar, " at the last stop"));
  if (disk_kind_.empty()) disk_episode_.clear();
  (void)CommitHeldLocked(nullptr);
}

Outbox::~Outbox() {
  MutexLock lock(&mu_);
  // A raised agent.disk_full whose `cleared` could not be stored yet is kept
  // too, so the next process clears it.
  if (path_.empty() || (held_.empty() && lost_count_ == 0 && disk_episode_.empty())) return;
  (void)CommitHeldLocked(nullptr);
  if (held_.empty() && lost_count_ == 0 && disk_episode_.empty()) return;
  WriteHeldSidecar();
}

void Outbox::RecoverFrom(const Salvage& salvage, const std::string& moved_to) {
  nlohmann::json d = nlohmann::json::object();
  d["moved_to"] = moved_to;
  d["previous_outbox_id"] = salvage.outbox_id;
  d["previous_next_sequence"] = salvage.next_seq;
  std::map<std::string, int64_t> by_kind, by_severity;
  std::vector<uint64_t> seqs;
  int64_t reappended = 0, not_reappended = 0;
  MutexLock lock(&mu_);
  for (const auto& e : salvage.events) {
    by_kind[e.kind]++;
    by_severity[SeverityName(e.severity)]++;
    seqs.push_back(e.sequence);
    // Marked, so that a reader can tell a recovered event from a new one.
    // Gap records keep their ranges under another key: they name sequences
    // of the old numbering, which a renumbering must not shift.
    auto p = nlohmann::json::parse(e.payload, nullptr, false);
    NewEvent ev{e.kind, e.severity, e.detected_at_ms, e.payload};
    if (p.is_object()) {
      if (e.kind == kGapKind && p.contains("sequences")) {
        p["previous_outbox_sequences"] = p["sequences"];
        p.erase("sequences");
      }
      p["recovered_from"] = {{"outbox_id", salvage.outbox_id}, {"sequence", e.sequence}};
      NewEvent marked{e.kind, e.severity, e.detected_at_ms, p.dump()};
      if (ValidateNewEvent(marked, limits_.max_event_bytes).ok()) ev = std::move(marked);
    }
    bool by_disk = false;
    if (ValidateNewEvent(ev, limits_.max_event_bytes).ok() && AppendLocked(ev, &by_disk).ok()) {
      ++reappended;
    } else {
      ++not_reappended;
    }
  }
  bool truncated = false;
  // Bounded, so that agent.outbox_reset always fits an event.
  constexpr size_t kMaxKinds = 50;
  const bool kinds_truncated = by_kind.size() > kMaxKinds;
  while (by_kind.size() > kMaxKinds) by_kind.erase(std::prev(by_kind.end()));
  d["recovered"] = {{"count", salvage.events.size()},
                    {"by_kind", by_kind},
                    {"by_kind_truncated", kinds_truncated},
                    {"by_severity", by_severity},
                    {"sequences", Ranges(seqs, kMaxGapRanges, &truncated)},
                    {"sequences_truncated", truncated}};
  d["unreadable_rows"] = salvage.unreadable;
  d["reappended"] = reappended;
  d["not_reappended"] = not_reappended;
  if (!salvage.error.empty()) d["read_error"] = salvage.error;
  reset_details_ = d.dump();
  if (reappended > 0) {
    log::Warn("outbox", Cat("recovered ", reappended, " waiting event(s) from ", moved_to,
                            " into the fresh outbox (marked recovered_from)"));
  }
}

absl::StatusOr<std::vector<StoredEvent>> Outbox::ReadAfter(uint64_t after, size_t max_events,
                                                           size_t max_bytes) {
  MutexLock lock(&mu_);
  auto stmt = db_.Prepare(
      "SELECT seq, kind, severity, detected_at_ms, payload FROM outbox WHERE seq > ? "
      "ORDER BY seq LIMIT ?");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, static_cast<int64_t>(after)).Bind(2, static_cast<int64_t>(max_events));
  std::vector<StoredEvent> out;
  size_t bytes = 0;
  while (true) {
    ASSIGN_OR_RETURN(auto row, stmt->Step());
    if (!row) break;
    StoredEvent e;
    e.sequence = static_cast<uint64_t>(stmt->Int(0));
    e.kind = stmt->Text(1);
    e.severity = static_cast<Severity>(stmt->Int(2));
    e.detected_at_ms = stmt->Int(3);
    e.payload = stmt->Text(4);
    bytes += e.kind.size() + e.payload.size();
    out.push_back(std::move(e));
    if (bytes >= max_bytes) break;
  }
  return out;
}

absl::Status Outbox::AckUpTo(uint64_t sequence) {
  MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(auto txn, sql::Transaction::Begin(db_));
  ASSIGN_OR_RETURN(auto sum,
                   db_.Prepare("SELECT COALESCE(SUM(size), 0) FROM outbox WHERE seq <= ?"));
  sum.Bind(1, static_cast<int64_t>(sequence));
  RETURN_IF_ERROR(sum.Step());
  int64_t freed = sum.Int(0);
  sum.Reset();
  if (freed == 0) return absl::OkStatus();
  ASSIGN_OR_RETURN(auto del, db_.Prepare("DELETE FROM outbox WHERE seq <= ?"));
  RETURN_IF_ERROR(del.Bind(1, static_cast<int64_t>(sequence)).Run());
  ASSIGN_OR_RETURN(auto bytes, Meta(db_, "bytes"));
  RETURN_IF_ERROR(SetMeta("bytes", bytes - freed));
  return txn.Commit();
}

absl::Status Outbox::ExpireOld() {
  MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(auto txn, sql::Transaction::Begin(db_));
  ASSIGN_OR_RETURN(auto stmt,
                   db_.Prepare("SELECT seq FROM outbox WHERE enqueued_at_ms < ? ORDER BY seq"));
  stmt.Bind(1, clock_.NowMs() - limits_.max_age_ms);
  std::vector<uint64_t> victims;
  while (true) {
    ASSIGN_OR_RETURN(auto row, stmt.Step());
    if (!row) break;
    victims.push_back(static_cast<uint64_t>(stmt.Int(0)));
  }
  stmt.Reset();
  if (!victims.empty()) {
    RETURN_IF_ERROR(EvictAndRecord(victims, "expired"));
  }
  RETURN_IF_ERROR(FlushDroppedLocked());
  return txn.Commit();
}

absl::Status Outbox::Renumber(uint64_t from) {
  MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(auto txn, sql::Transaction::Begin(db_));
  ASSIGN_OR_RETURN(auto first, db_.QueryInt("SELECT COALESCE(MIN(seq), 0) FROM outbox"));
  ASSIGN_OR_RETURN(auto next, Meta(db_, "next_seq"));
  int64_t base = first != 0 ? first : next;
  auto delta = static_cast<int64_t>(from) - base;
  if (delta <= 0) return absl::OkStatus();
  // Two passes through negative numbers keep the primary key unique.
  RETURN_IF_ERROR(db_.Exec(Cat("UPDATE outbox SET seq = -(seq + ", delta, ")")));
  RETURN_IF_ERROR(db_.Exec("UPDATE outbox SET seq = -seq"));
  RETURN_IF_ERROR(SetMeta("next_seq", next + delta));
  // Gap records name sequences: shift them with the events they describe.
  ASSIGN_OR_RETURN(auto gaps, db_.Prepare("SELECT seq, payload FROM outbox WHERE kind = ?"));
  gaps.Bind(1, std::string_view(kGapKind));
  std::vector<std::pair<int64_t, std::string>> rewritten;
  while (true) {
    ASSIGN_OR_RETURN(auto row, gaps.Step());
    if (!row) break;
    auto json = nlohmann::json::parse(gaps.Text(1), nullptr, false);
    if (json.is_discarded() || !json.contains("sequences")) continue;
    for (auto& range : json["sequences"]) {
      range[0] = range[0].get<int64_t>() + delta;
      range[1] = range[1].get<int64_t>() + delta;
    }
    rewritten.emplace_back(gaps.Int(0), json.dump());
  }
  gaps.Reset();
  for (const auto& [seq, payload] : rewritten) {
    ASSIGN_OR_RETURN(auto upd, db_.Prepare("UPDATE outbox SET payload=? WHERE seq=?"));
    RETURN_IF_ERROR(upd.BindBlob(1, payload).Bind(2, seq).Run());
  }
  log::Info("outbox", Cat("fresh outbox renumbered to start at ", from));
  return txn.Commit();
}

bool Outbox::fresh() {
  MutexLock lock(&mu_);
  auto v = Meta(db_, "fresh");
  return v.ok() && *v != 0;
}

absl::Status Outbox::MarkSynced() {
  MutexLock lock(&mu_);
  return SetMeta("fresh", 0);
}

uint64_t Outbox::FirstUnacked() {
  MutexLock lock(&mu_);
  auto v = db_.QueryInt("SELECT COALESCE(MIN(seq), 0) FROM outbox");
  return v.ok() ? static_cast<uint64_t>(*v) : 0;
}

OutboxStats Outbox::Stats() {
  MutexLock lock(&mu_);
  OutboxStats s;
  if (auto v = db_.QueryInt("SELECT COUNT(*) FROM outbox"); v.ok())
    s.depth = static_cast<uint64_t>(*v);
  if (auto v = Meta(db_, "bytes"); v.ok()) s.bytes = *v;
  if (auto v = db_.QueryInt("SELECT COALESCE(MIN(enqueued_at_ms), 0) FROM outbox"); v.ok()) {
    s.oldest_enqueued_ms = *v;
  }
  if (auto v = Meta(db_, "gaps_total"); v.ok()) s.gaps_total = static_cast<uint64_t>(*v);
  s.gaps_total += lost_count_;
  if (auto v = Meta(db_, "next_seq"); v.ok()) s.next_sequence = static_cast<uint64_t>(*v);
  s.held = held_.size();
  return s;
}

}  // namespace setdiag::agent
