#include "collector/bundles/bundle_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "collector/store/storage.h"
#include "common/digest.h"
#include "common/files.h"
#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"

namespace setdiag::collector {

using json = nlohmann::json;

namespace {

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS bundles(
  id TEXT PRIMARY KEY,
  store_id TEXT NOT NULL,
  ticket_id INTEGER NOT NULL DEFAULT 0,
  origin TEXT NOT NULL,
  requested_by TEXT NOT NULL,
  reason TEXT NOT NULL DEFAULT '',
  episode TEXT NOT NULL DEFAULT '',
  event_kind TEXT NOT NULL DEFAULT '',
  window_ms INTEGER NOT NULL DEFAULT 0,
  exclude_logs INTEGER NOT NULL DEFAULT 0,
  state TEXT NOT NULL CHECK (state IN ('requested', 'building', 'transferring', 'complete', 'failed', 'expired')),
  size INTEGER NOT NULL DEFAULT 0,
  bytes_received INTEGER NOT NULL DEFAULT 0,
  sha256 TEXT NOT NULL DEFAULT '',
  attempts INTEGER NOT NULL DEFAULT 0,
  error TEXT NOT NULL DEFAULT '',
  manifest TEXT NOT NULL DEFAULT '',
  created_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL,
  completed_at_ms INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS bundles_by_store ON bundles(store_id, created_at_ms);
CREATE INDEX IF NOT EXISTS bundles_by_ticket ON bundles(ticket_id) WHERE ticket_id != 0;
CREATE INDEX IF NOT EXISTS bundles_unfinished ON bundles(store_id) WHERE state IN ('requested', 'building', 'transferring');
)sql";

constexpr char kColumns[] =
    "b.id, b.store_id, COALESCE(s.partner, ''), b.ticket_id, b.origin, b.requested_by, b.reason, "
    "b.episode, "
    "b.event_kind, b.window_ms, b.exclude_logs, b.state, b.size, b.bytes_received, b.sha256, "
    "b.error, "
    "b.manifest, b.attempts, b.created_at_ms, b.updated_at_ms, b.completed_at_ms";
constexpr char kFrom[] = " FROM bundles b LEFT JOIN stores s ON s.store_id = b.store_id ";

BundleRow ReadRow(const sql::Stmt& s) {
  BundleRow b;
  b.id = s.Text(0);
  b.store_id = s.Text(1);
  b.partner = s.Text(2);
  b.ticket_id = s.Int(3);
  b.origin = s.Text(4);
  b.requested_by = s.Text(5);
  b.reason = s.Text(6);
  b.episode = s.Text(7);
  b.event_kind = s.Text(8);
  b.window_ms = s.Int(9);
  b.exclude_logs = s.Int(10) != 0;
  b.state = s.Text(11);
  b.size = static_cast<uint64_t>(s.Int(12));
  b.bytes_received = static_cast<uint64_t>(s.Int(13));
  b.sha256 = s.Text(14);
  b.error = s.Text(15);
  b.manifest = s.Text(16);
  b.attempts = s.Int(17);
  b.created_at_ms = s.Int(18);
  b.updated_at_ms = s.Int(19);
  b.completed_at_ms = s.Int(20);
  return b;
}

absl::StatusOr<std::vector<BundleRow>> Query(sql::Db& db, const std::string& where,
                                             const std::function<void(sql::Stmt&)>& bind) {
  ASSIGN_OR_RETURN(auto s, db.Prepare(Cat("SELECT ", kColumns, kFrom, where)));
  bind(s);
  std::vector<BundleRow> out;
  while (true) {
    ASSIGN_OR_RETURN(auto row, s.Step());
    if (!row) break;
    out.push_back(ReadRow(s));
  }
  return out;
}

// A size for a timeline entry: "0.4 MiB" would hide a 10 KiB bundle.
std::string Megabytes(uint64_t bytes) {
  constexpr uint64_t kKiB = 1024, kMiB = 1024 * 1024;
  if (bytes < kKiB) return Cat(bytes, " B");
  const uint64_t unit = bytes < kMiB ? kKiB : kMiB;
  uint64_t tenths = (bytes * 10 + unit / 2) / unit;
  if (unit == kKiB && tenths >= 10240) return "1.0 MiB";  // 1023.96 KiB rounds up
  return Cat(tenths / 10, ".", tenths % 10, unit == kKiB ? " KiB" : " MiB");
}

absl::StatusOr<int64_t> TicketOfEpisode(sql::Db& db, const std::string& store_id,
                                        const std::string& episode) {
  if (episode.empty()) return 0;
  ASSIGN_OR_RETURN(
      auto s, db.Prepare("SELECT ticket_id FROM ticket_episodes WHERE store_id=? AND episode=?"));
  s.Bind(1, store_id).Bind(2, episode);
  ASSIGN_OR_RETURN(auto row, s.Step());
  return row ? s.Int(0) : 0;
}

}  // namespace

absl::Status InitBundleSchema(sql::Db& db) { return db.Exec(kSchema); }

absl::StatusOr<bool> StoreExists(sql::Db& db, const std::string& store_id) {
  ASSIGN_OR_RETURN(auto s, db.Prepare("SELECT 1 FROM stores WHERE store_id=?"));
  s.Bind(1, store_id);
  return s.Step();
}

absl::StatusOr<BundleRow> CreateBundleRequest(sql::Db& db, const NewBundleRequest& req,
                                              const std::string& requested_by, int64_t now_ms) {
  std::string id = Cat("b", now_ms, "-", RandomHex(4));
  auto s = db.Prepare(
      "INSERT INTO bundles(id, store_id, ticket_id, origin, requested_by, reason, window_ms, "
      "exclude_logs, state, "
      "created_at_ms, updated_at_ms) VALUES (?,?,?,'request',?,?,?,?,'requested',?,?)");
  if (!s.ok()) return s.status();
  s->Bind(1, id)
      .Bind(2, req.store_id)
      .Bind(3, req.ticket_id)
      .Bind(4, requested_by)
      .Bind(5, req.reason);
  s->Bind(6, req.window_ms)
      .Bind(7, int64_t{req.exclude_logs ? 1 : 0})
      .Bind(8, now_ms)
      .Bind(9, now_ms);
  RETURN_IF_ERROR(s->Run());
  if (req.ticket_id > 0) {
    RETURN_IF_ERROR(AddTimeline(db, req.ticket_id, now_ms, Cat("user ", requested_by), "bundle",
                                Cat("diagnostic bundle ", id, " requested from the store")));
  }
  ASSIGN_OR_RETURN(auto row, GetBundle(db, id));
  if (!row) return absl::InternalError("the new bundle row is missing");
  return *row;
}

absl::StatusOr<std::optional<BundleRow>> GetBundle(sql::Db& db, const std::string& id) {
  ASSIGN_OR_RETURN(auto rows, Query(db, "WHERE b.id=?", [&](sql::Stmt& s) { s.Bind(1, id); }));
  if (rows.empty()) return std::optional<BundleRow>();
  return std::optional<BundleRow>(std::move(rows.front()));
}

absl::StatusOr<std::vector<BundleRow>> ListBundles(sql::Db& db, const User& user,
                                                   const BundleQuery& q) {
  return Query(
      db,
      "WHERE (?1 = 'support' OR s.partner = ?2) AND (?3 = '' OR b.store_id = ?3) AND "
      "(?4 = 0 OR b.ticket_id = ?4) AND b.created_at_ms > ?5 ORDER BY b.created_at_ms, b.id LIMIT "
      "?6",
      [&](sql::Stmt& s) {
        s.Bind(1, user.role == Role::kSupport ? "support" : "partner").Bind(2, user.partner);
        s.Bind(3, q.store_id).Bind(4, q.ticket_id).Bind(5, q.after_ms).Bind(6, q.limit);
      });
}

absl::StatusOr<std::vector<BundleRow>> PendingBundles(sql::Db& db, const std::string& store_id) {
  return Query(db,
               "WHERE b.store_id=? AND b.state IN ('requested', 'building', 'transferring') ORDER "
               "BY b.created_at_ms",
               [&](sql::Stmt& s) { s.Bind(1, store_id); });
}

absl::Status MarkBundleDelivered(sql::Db& db, const std::string& id, int64_t now_ms) {
  auto s = db.Prepare(
      "UPDATE bundles SET state='building', updated_at_ms=? WHERE id=? AND state='requested'");
  if (!s.ok()) return s.status();
  return s->Bind(1, now_ms).Bind(2, id).Run();
}

absl::Status MarkBundleTransferring(sql::Db& db, const std::string& id, uint64_t size,
                                    const std::string& sha256, uint64_t held, int64_t now_ms) {
  auto s = db.Prepare(
      "UPDATE bundles SET state='transferring', size=?, sha256=?, bytes_received=?, "
      "updated_at_ms=? "
      "WHERE id=? AND state IN ('requested', 'building', 'transferring')");
  if (!s.ok()) return s.status();
  return s->Bind(1, static_cast<int64_t>(size))
      .Bind(2, sha256)
      .Bind(3, static_cast<int64_t>(held))
      .Bind(4, now_ms)
      .Bind(5, id)
      .Run();
}

absl::Status MarkBundleFailed(sql::Db& db, const std::string& id, const std::string& error,
                              int64_t now_ms) {
  auto s = db.Prepare(
      "UPDATE bundles SET state='failed', error=?, updated_at_ms=? WHERE id=? AND state IN "
      "('requested', 'building', 'transferring')");
  if (!s.ok()) return s.status();
  RETURN_IF_ERROR(s->Bind(1, error).Bind(2, now_ms).Bind(3, id).Run());
  if (db.Changes() == 0) return absl::OkStatus();
  ASSIGN_OR_RETURN(auto row, GetBundle(db, id));
  if (row && (row)->ticket_id > 0) {
    return AddTimeline(db, (row)->ticket_id, now_ms, "collector", "bundle",
                       Cat("diagnostic bundle ", id, " failed: ", error));
  }
  return absl::OkStatus();
}

absl::Status MarkBundleComplete(sql::Db& db, const std::string& id, uint64_t size,
                                const std::string& sha256, const std::string& manifest,
                                int64_t now_ms) {
  ASSIGN_OR_RETURN(auto row, GetBundle(db, id));
  if (!row) return absl::NotFoundError(Cat("no bundle ", id));
  BundleRow b = *row;
  if (b.state == "complete") return absl::OkStatus();
  int64_t ticket = b.ticket_id;
  if (ticket == 0 && !b.episode.empty()) {
    ASSIGN_OR_RETURN(auto t, TicketOfEpisode(db, b.store_id, b.episode));
    ticket = t;
  }
  auto s = db.Prepare(
      "UPDATE bundles SET state='complete', size=?, bytes_received=?, sha256=?, manifest=?, "
      "ticket_id=?, error='', "
      "updated_at_ms=?, completed_at_ms=? WHERE id=?");
  if (!s.ok()) return s.status();
  s->Bind(1, static_cast<int64_t>(size))
      .Bind(2, static_cast<int64_t>(size))
      .Bind(3, sha256)
      .Bind(4, manifest);
  s->Bind(5, ticket).Bind(6, now_ms).Bind(7, now_ms).Bind(8, id);
  RETURN_IF_ERROR(s->Run());
  if (ticket > 0) {
    std::string actor = b.origin == "flight_recorder" ? Cat("store ", b.store_id) : "collector";
    std::string what = b.origin == "flight_recorder"
                           ? Cat("flight recorder bundle ", id, " (", b.event_kind, ") attached, ",
                                 Megabytes(size))
                           : Cat("diagnostic bundle ", id, " attached, ", Megabytes(size));
    return AddTimeline(db, ticket, now_ms, actor, "bundle", what);
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> RecordBundleMismatch(sql::Db& db, const std::string& id, int64_t now_ms) {
  auto s = db.Prepare(
      "UPDATE bundles SET attempts=attempts+1, bytes_received=0, updated_at_ms=? WHERE id=?");
  if (!s.ok()) return s.status();
  RETURN_IF_ERROR(s->Bind(1, now_ms).Bind(2, id).Run());
  ASSIGN_OR_RETURN(auto row, GetBundle(db, id));
  if (row && (row)->attempts >= 3) {
    RETURN_IF_ERROR(
        MarkBundleFailed(db, id, "the checksum did not match after 3 transfers", now_ms));
    return true;
  }
  return false;
}

std::string BundleIdForOffer(std::string_view store_id, std::string_view request_id) {
  if (!request_id.starts_with(kFlightRecorderIdPrefix)) return std::string(request_id);
  // A '-' in the store id would make "fr-<store>-<rest>" ambiguous (store
  // "a" with "fr-b-x", store "a-b" with "fr-x"): such stores get the hash.
  if (store_id.find('-') == std::string_view::npos) {
    std::string id = Cat(kFlightRecorderIdPrefix, store_id, "-",
                         request_id.substr(kFlightRecorderIdPrefix.size()));
    if (IsValidIdentifier(id, kMaxBundleIdBytes)) return id;
  }
  return Cat(kFlightRecorderIdPrefix, Sha256Hex(Cat(store_id, "\n", request_id)).substr(0, 40));
}

absl::StatusOr<OfferDecision> DecideOffer(sql::Db& db, const std::string& store_id,
                                          const IncomingOffer& offer, uint64_t max_bundle_bytes,
                                          int64_t now_ms) {
  OfferDecision d;
  const std::string id = BundleIdForOffer(store_id, offer.request_id);
  auto row = GetBundle(db, id);
  if (!row.ok()) return row.status();
  if (!*row) {
    if (offer.origin != "flight_recorder" ||
        !std::string_view(offer.request_id).starts_with(kFlightRecorderIdPrefix)) {
      d.why = "no such request (deleted or expired)";
      return d;
    }
    ASSIGN_OR_RETURN(auto ticket, TicketOfEpisode(db, store_id, offer.episode));
    auto s = db.Prepare(
        "INSERT INTO bundles(id, store_id, ticket_id, origin, requested_by, reason, episode, "
        "event_kind, state, "
        "size, sha256, created_at_ms, updated_at_ms) "
        "VALUES (?,?,?,'flight_recorder','flight recorder',?,?,?,'transferring',?,?,?,?)");
    if (!s.ok()) return s.status();
    s->Bind(1, id)
        .Bind(2, store_id)
        .Bind(3, ticket)
        .Bind(4, Cat("critical ", offer.event_kind, " raised"))
        .Bind(5, offer.episode)
        .Bind(6, offer.event_kind);
    s->Bind(7, static_cast<int64_t>(offer.size))
        .Bind(8, offer.sha256)
        .Bind(9, now_ms)
        .Bind(10, now_ms);
    RETURN_IF_ERROR(s->Run());
    row = GetBundle(db, id);
    if (!row.ok()) return row.status();
    if (!*row) return absl::InternalError("the new bundle row is missing");
  }
  BundleRow& b = **row;
  if (b.store_id != store_id) {
    d.why = Cat("bundle ", b.id, " belongs to another store");
    return d;
  }
  if (b.state == "complete") {
    d.kind = b.sha256 == offer.sha256 ? OfferDecision::kComplete : OfferDecision::kCancel;
    d.why = "already complete with another checksum";
    d.row = b;
    return d;
  }
  if (b.terminal()) {
    d.why = Cat("bundle ", b.id, " is ", b.state);
    return d;
  }
  if (offer.size > max_bundle_bytes) {
    std::string why =
        Cat("the bundle is ", offer.size, " bytes; bundles.max_bundle_bytes is ", max_bundle_bytes);
    RETURN_IF_ERROR(MarkBundleFailed(db, b.id, why, now_ms));
    d.why = why;
    return d;
  }
  d.reset = !b.sha256.empty() && b.sha256 != offer.sha256;
  RETURN_IF_ERROR(MarkBundleTransferring(db, b.id, offer.size, offer.sha256,
                                         d.reset ? 0 : b.bytes_received, now_ms));
  b.size = offer.size;
  b.sha256 = offer.sha256;
  b.state = "transferring";
  d.kind = OfferDecision::kRequest;
  d.row = b;
  return d;
}

absl::StatusOr<SweepPlan> ExpireBundles(sql::Db& db, const BundleRetention& policy,
                                        int64_t now_ms) {
  SweepPlan plan;
  auto old_requests = db.Prepare(
      "UPDATE bundles SET state='failed', error='the store did not deliver it within "
      "bundles.keep_for', "
      "updated_at_ms=?1 WHERE state IN ('requested', 'building', 'transferring') AND created_at_ms "
      "< ?2");
  if (!old_requests.ok()) return old_requests.status();
  RETURN_IF_ERROR(old_requests->Bind(1, now_ms).Bind(2, now_ms - policy.keep_for_ms).Run());

  auto complete = db.Prepare(
      "SELECT id, size, completed_at_ms FROM bundles WHERE state='complete' ORDER BY "
      "completed_at_ms DESC, id DESC");
  if (!complete.ok()) return complete.status();
  uint64_t total = 0;
  while (true) {
    ASSIGN_OR_RETURN(auto row, complete->Step());
    if (!row) break;
    std::string id = complete->Text(0);
    auto size = static_cast<uint64_t>(complete->Int(1));
    // Newest first: what no longer fits, or is too old, goes.
    if (complete->Int(2) < now_ms - policy.keep_for_ms || total + size > policy.max_total_bytes) {
      plan.remove.push_back(id);
    } else {
      total += size;
      plan.keep.insert(id);
    }
  }
  complete->Reset();
  for (const auto& id : plan.remove) {
    ASSIGN_OR_RETURN(auto s,
                     db.Prepare("UPDATE bundles SET state='expired', updated_at_ms=? WHERE id=?"));
    RETURN_IF_ERROR(s.Bind(1, now_ms).Bind(2, id).Run());
  }
  auto open =
      db.Prepare("SELECT id FROM bundles WHERE state IN ('requested', 'building', 'transferring')");
  if (!open.ok()) return open.status();
  while (true) {
    ASSIGN_OR_RETURN(auto row, open->Step());
    if (!row) break;
    plan.keep.insert(open->Text(0));
  }
  return plan;
}

json BundleJson(const BundleRow& b, std::optional<uint64_t> live_bytes, bool with_manifest) {
  uint64_t received = b.bytes_received;
  if (b.state == "transferring" && live_bytes) received = *live_bytes;
  if (b.state == "complete") received = b.size;
  json out = {
      {"id", b.id},
      {"store_id", b.store_id},
      {"ticket_id", b.ticket_id > 0 ? json(b.ticket_id) : json(nullptr)},
      {"origin", b.origin},
      {"requested_by", b.requested_by},
      {"reason", b.reason},
      {"state", b.state},
      {"size", b.size},
      {"bytes_received", received},
      {"progress", b.size > 0 ? static_cast<double>(received) / static_cast<double>(b.size) : 0.0},
      {"sha256", b.sha256},
      {"error", b.error},
      {"window_ms", b.window_ms},
      {"created_at_ms", b.created_at_ms},
      {"updated_at_ms", b.updated_at_ms},
      {"completed_at_ms", b.completed_at_ms}};
  if (!b.episode.empty()) out["episode"] = b.episode;
  if (!b.event_kind.empty()) out["event_kind"] = b.event_kind;
  if (b.state == "complete") out["content_url"] = Cat("/api/v1/bundles/", b.id, "/content");
  if (with_manifest) {
    auto m = json::parse(b.manifest, nullptr, false);
    out["manifest"] = m.is_discarded() ? json(nullptr) : m;
  }
  return out;
}

// ---- BundleFiles ----

struct BundleFiles::Part {
  int fd = -1;
  uint64_t size = 0;
  Sha256 sha;  // of bytes [0, size)
  ~Part() {
    if (fd >= 0) ::close(fd);
  }
};

BundleFiles::BundleFiles(std::string dir) : dir_(std::move(dir)) {}

BundleFiles::~BundleFiles() { Stop(); }

absl::Status BundleFiles::Start() {
  if (::mkdir(dir_.c_str(), 0750) != 0 && errno != EEXIST) {
    return ErrnoStatus(errno, "cannot create", dir_);
  }
  thread_ = std::thread([this] { Loop(); });
  return absl::OkStatus();
}

void BundleFiles::Stop() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  cv_.SignalAll();
  if (thread_.joinable()) thread_.join();
  parts_.clear();
}

void BundleFiles::Post(std::function<void()> task) {
  {
    MutexLock lock(&mu_);
    tasks_.push_back(std::move(task));
  }
  cv_.Signal();
}

void BundleFiles::Loop() {
  while (true) {
    std::function<void()> task;
    {
      MutexLock lock(&mu_);
      while (!stopping_ && tasks_.empty()) cv_.Wait(&mu_);
      if (tasks_.empty()) return;  // stopping and drained
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

std::optional<uint64_t> BundleFiles::LiveBytes(const std::string& id) {
  MutexLock lock(&mu_);
  auto it = live_.find(id);
  if (it == live_.end()) return std::nullopt;
  return it->second;
}

uint64_t BundleFiles::bytes_written() const {
  MutexLock lock(&mu_);
  return bytes_written_;
}

absl::StatusOr<BundleFiles::Part*> BundleFiles::OpenPart(const std::string& id) {
  if (auto it = parts_.find(id); it != parts_.end()) return it->second.get();
  auto p = std::make_unique<Part>();
  std::string path = PartPath(id);
  p->fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (p->fd < 0) return ErrnoStatus(errno, "cannot open", path);
  struct stat st {};
  if (::fstat(p->fd, &st) != 0) return ErrnoStatus(errno, "cannot stat", path);
  p->size = static_cast<uint64_t>(st.st_size);
  // Bytes held from before (a resumed transfer, a restart): hash them once.
  std::string buf(1 << 20, '\0');
  for (uint64_t off = 0; off < p->size;) {
    ssize_t n = ::pread(p->fd, buf.data(), buf.size(), static_cast<off_t>(off));
    if (n <= 0) return ErrnoStatus(errno, "cannot read", path);
    p->sha.Update(std::string_view(buf.data(), static_cast<size_t>(n)));
    off += static_cast<uint64_t>(n);
  }
  // Few transfers run at once; keep at most 64 files open.
  open_order_.push_back(id);
  if (open_order_.size() > 64) {
    std::string oldest = open_order_.front();
    open_order_.pop_front();
    parts_.erase(oldest);
  }
  Part* raw = p.get();
  parts_[id] = std::move(p);
  return raw;
}

void BundleFiles::ClosePart(const std::string& id) {
  parts_.erase(id);
  for (auto it = open_order_.begin(); it != open_order_.end(); ++it) {
    if (*it == id) {
      open_order_.erase(it);
      break;
    }
  }
}

BundleFiles::AppendResult BundleFiles::DoAppend(const std::string& id, uint64_t offset,
                                                const std::string& data, uint64_t total,
                                                const std::string& sha256) {
  AppendResult r;
  struct stat fst {};
  const std::string final_path = FinalPath(id);
  if (::stat(final_path.c_str(), &fst) == 0 && ::access(PartPath(id).c_str(), F_OK) != 0) {
    // Verified and renamed before (the acknowledgement was lost).
    r.held = static_cast<uint64_t>(fst.st_size);
    r.finished = r.held == total;
    return r;
  }
  auto part = OpenPart(id);
  if (!part.ok()) {
    r.status = part.status();
    return r;
  }
  Part& p = **part;
  if (offset > p.size) {
    r.held = p.size;
    r.gap = true;
    return r;
  }
  uint64_t skip = p.size - offset;
  if (skip < data.size()) {
    const char* from = data.data() + skip;
    size_t left = data.size() - static_cast<size_t>(skip);
    uint64_t at = p.size;
    while (left > 0) {
      ssize_t n = ::pwrite(p.fd, from, left, static_cast<off_t>(at));
      if (n < 0) {
        if (errno == EINTR) continue;
        r.status =
            absl::UnavailableError(Cat("cannot write ", PartPath(id), ": ", std::strerror(errno)));
        ClosePart(id);  // the size on disk is the truth; reopen re-reads it
        r.held = at;
        return r;
      }
      p.sha.Update(std::string_view(from, static_cast<size_t>(n)));
      from += n;
      left -= static_cast<size_t>(n);
      at += static_cast<uint64_t>(n);
    }
    MutexLock lock(&mu_);
    bytes_written_ += at - p.size;
    p.size = at;
  }
  r.held = p.size;
  {
    MutexLock lock(&mu_);
    live_[id] = p.size;
  }
  if (p.size < total) return r;
  if (p.size > total) {
    // The agent claims less than we hold: start over.
    r.mismatch = true;
  } else {
    r.mismatch = p.sha.HexDigest() != sha256;
  }
  if (r.mismatch) {
    log::Warn("bundles",
              Cat("bundle ", id, ": checksum mismatch over ", p.size, " bytes; starting over"));
    if (::ftruncate(p.fd, 0) != 0) log::Warn("bundles", Cat("cannot truncate ", PartPath(id)));
    ClosePart(id);
    r.held = 0;
    MutexLock lock(&mu_);
    live_[id] = 0;
    return r;
  }
  if (::fsync(p.fd) != 0) {
    r.status =
        absl::UnavailableError(Cat("cannot fsync ", PartPath(id), ": ", std::strerror(errno)));
    return r;
  }
  ClosePart(id);
  if (::rename(PartPath(id).c_str(), final_path.c_str()) != 0) {
    r.status =
        absl::UnavailableError(Cat("cannot rename to ", final_path, ": ", std::strerror(errno)));
    return r;
  }
  // The bundle is complete either way; a directory that cannot be synced
  // is a disk problem the operator should hear about.
  if (absl::Status st = SyncDirectory(dir_); !st.ok()) log::Warn("bundles", st.ToString());
  r.finished = true;
  return r;
}

void BundleFiles::Append(std::string id, uint64_t offset, std::string data, uint64_t total,
                         std::string sha256, AppendDone done) {
  Post([this, id = std::move(id), offset, data = std::move(data), total, sha256 = std::move(sha256),
        done = std::move(done)] {
    AppendResult r = DoAppend(id, offset, data, total, sha256);
    if (done) done(r);
  });
}

void BundleFiles::Held(std::string id, std::function<void(uint64_t)> done) {
  Post([this, id = std::move(id), done = std::move(done)] {
    uint64_t held = 0;
    struct stat st {};
    if (auto it = parts_.find(id); it != parts_.end()) {
      held = it->second->size;
    } else if (::stat(PartPath(id).c_str(), &st) == 0) {
      held = static_cast<uint64_t>(st.st_size);
    } else if (::stat(FinalPath(id).c_str(), &st) == 0) {
      held = static_cast<uint64_t>(st.st_size);
    }
    {
      MutexLock lock(&mu_);
      live_[id] = held;
    }
    done(held);
  });
}

void BundleFiles::Reset(std::string id, std::function<void()> done) {
  Post([this, id = std::move(id), done = std::move(done)] {
    ClosePart(id);
    ::unlink(PartPath(id).c_str());
    // A finished file left by an earlier attempt (renamed, but the crash
    // came before its row was committed complete) is not this transfer's.
    ::unlink(FinalPath(id).c_str());
    {
      MutexLock lock(&mu_);
      live_[id] = 0;
    }
    if (done) done();
  });
}

void BundleFiles::Sweep(std::vector<std::string> remove, std::optional<std::set<std::string>> keep,
                        std::function<void(uint64_t)> done) {
  Post([this, remove = std::move(remove), keep = std::move(keep), done = std::move(done)] {
    uint64_t freed = 0;
    auto drop = [&](const std::string& path) {
      struct stat st {};
      if (::stat(path.c_str(), &st) == 0 && ::unlink(path.c_str()) == 0)
        freed += static_cast<uint64_t>(st.st_size);
    };
    for (const auto& id : remove) {
      ClosePart(id);
      drop(FinalPath(id));
      drop(PartPath(id));
      MutexLock lock(&mu_);
      live_.erase(id);
    }
    if (keep) {
      if (DIR* d = ::opendir(dir_.c_str())) {
        const int64_t now_s = static_cast<int64_t>(::time(nullptr));
        std::vector<std::string> orphans;
        while (dirent* e = ::readdir(d)) {
          std::string name = e->d_name;
          std::string id;
          if (name.ends_with(".tar.gz"))
            id = name.substr(0, name.size() - 7);
          else if (name.ends_with(".part"))
            id = name.substr(0, name.size() - 5);
          else
            continue;
          if (keep->contains(id) || parts_.contains(id)) continue;
          struct stat st {};
          std::string path = Cat(dir_, "/", name);
          if (::stat(path.c_str(), &st) == 0 && now_s - static_cast<int64_t>(st.st_mtime) > 3600) {
            orphans.push_back(path);
          }
        }
        ::closedir(d);
        for (const auto& path : orphans) drop(path);
      }
    }
    if (freed > 0) log::Info("bundles", Cat("retention freed ", freed, " bytes"));
    if (done) done(freed);
  });
}

}  // namespace setdiag::collector
