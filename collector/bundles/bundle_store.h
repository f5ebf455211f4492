#pragma once
// Diagnostic bundles at the collector (docs/bundles.md, "Remote pull and
// flight recorder"): the `bundles` table and the files under
// <data_dir>/bundles/.
//
// Two halves with two owners:
//  - the table functions run on the caller's connection: changes on the
//    CommitQueue's writer thread, reads on the API's read-only connection;
//  - BundleFiles owns the files: one thread appends the chunks an agent
//    streams to <id>.part at the offset held on disk, hashes them as they
//    come, fsyncs and renames the part to <id>.tar.gz when the SHA-256 of
//    the whole matches. gRPC reactors only post work to it; its callbacks run
//    on its thread.

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "collector/store/storage.h"
#include "common/mutex.h"
#include "common/sqlite.h"

namespace setdiag::collector {

// ---- the table ----

absl::Status InitBundleSchema(sql::Db& db);

// requested: waiting for the store's agent; building: the request reached
// the agent; transferring: bytes are arriving; complete: stored and
// verified; failed: the agent could not build it, or it never verified;
// expired: deleted by retention (the row stays as a record).
struct BundleRow {
  std::string id, store_id, partner;
  int64_t ticket_id = 0;     // 0: none
  std::string origin;        // "request" or "flight_recorder"
  std::string requested_by;  // user name, or "flight recorder"
  std::string reason, episode, event_kind;
  int64_t window_ms = 0;
  bool exclude_logs = false;
  std::string state;
  uint64_t size = 0, bytes_received = 0;
  std::string sha256, error, manifest;
  int64_t attempts = 0;
  int64_t created_at_ms = 0, updated_at_ms = 0, completed_at_ms = 0;
  bool terminal() const { return state == "complete" || state == "failed" || state == "expired"; }
};

struct NewBundleRequest {
  std::string store_id;
  int64_t ticket_id = 0;
  int64_t window_ms = 0;
  bool exclude_logs = false;
  std::string reason;
};

// The new row's id is "b<now_ms>-<8 hex>": it never starts with "fr-", so
// BundleIdForOffer keeps it as it is.
absl::StatusOr<BundleRow> CreateBundleRequest(sql::Db& db, const NewBundleRequest& req,
                                              const std::string& requested_by, int64_t now_ms);
absl::StatusOr<std::optional<BundleRow>> GetBundle(sql::Db& db, const std::string& id);
// Scoped like everything else: a partner sees its own stores' bundles only.
struct BundleQuery {
  std::string store_id;   // empty: all visible
  int64_t ticket_id = 0;  // 0: any
  int64_t after_ms = 0;   // created after
  int64_t limit = 100;
};
absl::StatusOr<std::vector<BundleRow>> ListBundles(sql::Db& db, const User& user,
                                                   const BundleQuery& q);
// Requests of a store that are not finished (requested, building, transferring).
absl::StatusOr<std::vector<BundleRow>> PendingBundles(sql::Db& db, const std::string& store_id);
absl::StatusOr<bool> StoreExists(sql::Db& db, const std::string& store_id);

absl::Status MarkBundleDelivered(sql::Db& db, const std::string& id, int64_t now_ms);
// The agent's file for this bundle: size and checksum; a new checksum means
// the held bytes are void (the caller resets the part file).
absl::Status MarkBundleTransferring(sql::Db& db, const std::string& id, uint64_t size,
                                    const std::string& sha256, uint64_t held, int64_t now_ms);
absl::Status MarkBundleFailed(sql::Db& db, const std::string& id, const std::string& error,
                              int64_t now_ms);
// Verified and renamed: complete, attached to its ticket (a flight recorder
// bundle finds its ticket by episode), with a timeline entry on the ticket.
absl::Status MarkBundleComplete(sql::Db& db, const std::string& id, uint64_t size,
                                const std::string& sha256, const std::string& manifest,
                                int64_t now_ms);
// A checksum mismatch: the transfer starts over, or fails after 3 attempts.
// Returns true when it failed for good.
absl::StatusOr<bool> RecordBundleMismatch(sql::Db& db, const std::string& id, int64_t now_ms);

// Bundle ids at the collector. A request's id is the collector's own and
// unique (CreateBundleRequest); a flight recorder bundle's is chosen by the
// agent ("fr-<episode>-<state>"), so two stores may send the same one. Inside
// the collector (the `bundles` row, the files, the admin API, the logs) a
// flight recorder id is therefore namespaced by the store that sent it:
//  - an id not starting with "fr-" is returned unchanged;
//  - "fr-<rest>" becomes "fr-<store_id>-<rest>" when the store id has no
//    '-' and the result is a valid identifier (IsValidIdentifier, at most
//    kMaxBundleIdBytes);
//  - otherwise "fr-" + the first 40 hex digits of the SHA-256 of
//    "<store_id>\n<request_id>".
// Pure, deterministic, thread-safe. Two different (store, "fr-" id) pairs
// never give the same id: a store id without '-' ends at the first '-'
// after "fr-", a hashed id has no '-' after "fr-", and two hashed ids are
// equal only by a SHA-256 collision. So no store can take another's id,
// whatever it sends, and an id stays the same across offers. The agent keeps
// its own id on the wire: the link maps each message's request_id through
// this and answers with the agent's id. Rows written by 0.1.0, which used
// the agent's id as it was, keep their ids.
inline constexpr std::string_view kFlightRecorderIdPrefix = "fr-";
inline constexpr size_t kMaxBundleIdBytes = 128;
std::string BundleIdForOffer(std::string_view store_id, std::string_view request_id);

// What the collector does with an agent's BundleOffer.
struct OfferDecision {
  enum Kind { kRequest, kComplete, kCancel } kind = kCancel;
  BundleRow row;       // for kRequest: the row as it is now
  bool reset = false;  // the held bytes belong to another file: start over
  std::string why;     // for kCancel, logged
};
struct IncomingOffer {
  std::string request_id, sha256, origin, episode, event_kind;  // request_id: the agent's
  uint64_t size = 0;
};
// Finds (or, for a flight recorder offer, creates) the row
// BundleIdForOffer(store_id, offer.request_id); the decision's row carries
// that id.
absl::StatusOr<OfferDecision> DecideOffer(sql::Db& db, const std::string& store_id,
                                          const IncomingOffer& offer, uint64_t max_bundle_bytes,
                                          int64_t now_ms);

struct BundleRetention {
  int64_t keep_for_ms = 14LL * 24 * 3'600'000;
  uint64_t max_total_bytes = 10ULL << 30;
  uint64_t max_bundle_bytes = 1ULL << 30;
  int64_t sweep_interval_ms = 60'000;
};
struct SweepPlan {
  std::vector<std::string> remove;  // now expired: delete their files
  std::set<std::string> keep;       // every id whose file must stay
};
// Expires complete bundles older than keep_for, then the oldest complete ones
// until the total is under max_total_bytes, and requests that never finished
// within keep_for (failed).
absl::StatusOr<SweepPlan> ExpireBundles(sql::Db& db, const BundleRetention& policy, int64_t now_ms);

nlohmann::json BundleJson(const BundleRow& b, std::optional<uint64_t> live_bytes = std::nullopt,
                          bool with_manifest = false);

// ---- the files ----

class BundleFiles {
 public:
  struct AppendResult {
    absl::Status status;    // an I/O error
    uint64_t held = 0;      // bytes on disk afterwards
    bool gap = false;       // the chunk starts beyond `held`: nothing written
    bool finished = false;  // held == total: verified and renamed
    bool mismatch = false;  // held == total but the checksum differs: the part was emptied
  };
  using AppendDone = std::function<void(const AppendResult&)>;

  explicit BundleFiles(std::string dir);
  ~BundleFiles();
  BundleFiles(const BundleFiles&) = delete;
  BundleFiles& operator=(const BundleFiles&) = delete;

  absl::Status Start();  // creates the directory, starts the thread
  void Stop();           // runs what is queued, then stops

  // Thread-safe; `done` runs on the files thread. A chunk overlapping what
  // is held writes only its new tail; one wholly held is skipped.
  void Append(std::string id, uint64_t offset, std::string data, uint64_t total, std::string sha256,
              AppendDone done);
  // Bytes held for `id` (the final file's size once complete).
  void Held(std::string id, std::function<void(uint64_t)> done);
  // Empties the part file and removes a finished file of the same id.
  void Reset(std::string id, std::function<void()> done = nullptr);
  // Deletes the files of these ids, and (when `keep` is given) any file in
  // the directory not named in it that is older than an hour.
  void Sweep(std::vector<std::string> remove, std::optional<std::set<std::string>> keep,
             std::function<void(uint64_t freed)> done = nullptr);

  std::string FinalPath(const std::string& id) const { return dir_ + "/" + id + ".tar.gz"; }
  std::string PartPath(const std::string& id) const { return dir_ + "/" + id + ".part"; }
  // Bytes held of transfers seen since start (for progress); nullopt if none.
  std::optional<uint64_t> LiveBytes(const std::string& id);
  uint64_t bytes_written() const;

 private:
  struct Part;
  void Loop();
  void Post(std::function<void()> task);
  absl::StatusOr<Part*> OpenPart(const std::string& id);
  void ClosePart(const std::string& id);
  AppendResult DoAppend(const std::string& id, uint64_t offset, const std::string& data,
                        uint64_t total, const std::string& sha256);

  const std::string dir_;
  mutable Mutex mu_;
  CondVar cv_;  // tasks_ or stopping_ changed
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
  std::map<std::string, uint64_t> live_ ABSL_GUARDED_BY(mu_);
  uint64_t bytes_written_ ABSL_GUARDED_BY(mu_) = 0;
  // Only on the files thread.
  std::map<std::string, std::unique_ptr<Part>> parts_;
  std::deque<std::string> open_order_;
};

}  // namespace setdiag::collector
