#pragma once
// The agent's local history: every finding the watches committed to the
// outbox (till states, conditions, imports) is also appended here, because
// the outbox deletes events once the collector acknowledged them. Diagnostic
// bundles export the last day of it (history.jsonl).
//
// A SQLite table `findings` in <state_dir>/history.db, kept for kKeepMs
// (rows older than that are pruned on write, at most once an hour). History
// is evidence, not a guarantee: writers wait at most a short busy timeout and
// a failed write is logged (once per failure streak) and otherwise ignored,
// so it can never hold up the outbox.
//
// Thread-safe: one mutex around one connection, shared by the watches'
// loops. Other processes (the `bundle` command) read the same file with their
// own HistoryStore (WAL: readers never block the writer).

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "agent/core/event.h"
#include "common/mutex.h"
#include "common/sqlite.h"

namespace setdiag::agent {

struct HistoryRecord {
  int64_t id = 0;
  uint64_t seq = 0;  // outbox sequence, 0 if unknown
  std::string kind;
  Severity severity = Severity::kNormal;
  int64_t detected_at_ms = 0;
  int64_t recorded_at_ms = 0;
  std::string component;  // "tills", "loading"
  std::string payload;    // JSON object text
};

class HistoryStore {
 public:
  static constexpr int64_t kKeepMs = int64_t{7} * 86'400'000;
  static constexpr int64_t kPruneEveryMs = 3'600'000;
  static constexpr int kBusyTimeoutMs = 250;

  // Opens (creating if needed) the database; Unavailable or DataLoss if the
  // file cannot be used. `read_only` never creates or writes (for bundles).
  static absl::StatusOr<std::unique_ptr<HistoryStore>> Open(const std::string& path,
                                                            bool read_only = false);

  // Appends one record (its id and recorded_at_ms are assigned here from
  // `now_ms`) and prunes old rows when due.
  absl::Status Append(const HistoryRecord& record, int64_t now_ms);
  // Like Append, but a failure is logged (once until the next success) and
  // swallowed. For the watches.
  void AppendOrLog(const HistoryRecord& record, int64_t now_ms);

  // Records detected in [from_ms, to_ms], oldest first, at most `limit`.
  // Returns how many were visited; stops early when `visit` returns false.
  absl::StatusOr<int64_t> Scan(int64_t from_ms, int64_t to_ms, int64_t limit,
                               const std::function<bool(const HistoryRecord&)>& visit);

  // Deletes records recorded before now_ms - kKeepMs. Returns how many.
  absl::StatusOr<int64_t> Prune(int64_t now_ms);

 private:
  explicit HistoryStore(sql::Db db) : db_(std::move(db)) {}
  absl::Status InitSchema(const std::string& path) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Mutex mu_;
  sql::Db db_ ABSL_GUARDED_BY(mu_);
  int64_t last_prune_ms_ ABSL_GUARDED_BY(mu_) = 0;
  bool failing_ ABSL_GUARDED_BY(mu_) =
      false;  // a write failed and was logged; cleared by a success
};

}  // namespace setdiag::agent
