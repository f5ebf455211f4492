#pragma once
// The agent's durable outbox: every event is committed to SQLite before it is
// sent and deleted only when the collector acknowledged a durable commit.
//
// Bounded by bytes and by age. When full, only events no more important than
// the newcomer are evicted, least important and oldest first; every eviction
// appends a "setdiag.gap" event that tells the collector exactly which
// sequences were lost and why. If only more important events are left, the
// newcomer is refused, counted, and reported by one gap record later. Critical events are committed with
// synchronous=FULL (survive power loss); others with NORMAL (survive a crash).
//
// A corrupt file is moved aside and a fresh outbox started (reset_reason()
// says why); if even that fails the outbox runs in memory. It never refuses
// to open. Thread-safe: one mutex around one connection. Several processes
// may append to the same file (SQLite locking); sequences stay unique.

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/event.h"
#include "common/clock.h"
#include "common/sqlite.h"

namespace setdiag::agent {

struct OutboxLimits {
  int64_t max_bytes = int64_t{256} * 1024 * 1024;
  int64_t max_age_ms = int64_t{30} * 86'400'000;
  // Kind plus payload at most 64 KiB (the collector's default payload limit),
  // plus the per-row overhead counted here.
  int64_t max_event_bytes = 64 * 1024 + 64;
  // Eviction frees space down to this fraction of max_bytes, so that a full
  // outbox does not evict (and report a gap) on every single append.
  double low_watermark = 0.9;
};

struct OutboxStats {
  uint64_t depth = 0;
  int64_t bytes = 0;
  int64_t oldest_enqueued_ms = 0;  // 0 when empty
  uint64_t gaps_total = 0;         // events evicted over the outbox's life
  uint64_t next_sequence = 1;
};

// The rules every event must meet before it enters the outbox (the same the
// collector applies): kind [A-Za-z0-9._-]{1,128}, a known severity, a JSON
// object payload, at most max_event_bytes.
absl::Status ValidateNewEvent(const NewEvent& event, int64_t max_event_bytes);

class Outbox {
 public:
  // Opens or creates the outbox at `path` (":memory:" for a volatile one).
  static std::unique_ptr<Outbox> Open(const std::string& path, OutboxLimits limits, Clock& clock);
  // For tools beside a running agent ('emit', 'status'): never moves a file
  // aside (that is the daemon's job, and it reports it); fails instead.
  static absl::StatusOr<std::unique_ptr<Outbox>> OpenWithoutRepair(const std::string& path,
                                                                    OutboxLimits limits, Clock& clock);

  // Non-empty when the file on disk was unusable and a fresh one was started.
  const std::string& reset_reason() const { return reset_reason_; }
  const std::string& outbox_id() const { return outbox_id_; }
  bool in_memory() const { return in_memory_; }

  // Commits the event, evicting older, less important ones first if the
  // outbox is full. Returns its sequence number; InvalidArgument for an event
  // the collector would reject; ResourceExhausted when the outbox is full of
  // more important events (the event is dropped and a gap record says so).
  absl::StatusOr<uint64_t> Append(const NewEvent& event);
  // Events with sequence > after, ascending, at most max_events / ~max_bytes.
  absl::StatusOr<std::vector<StoredEvent>> ReadAfter(uint64_t after, size_t max_events,
                                                     size_t max_bytes);
  // The collector durably stored everything up to `sequence`.
  absl::Status AckUpTo(uint64_t sequence);
  // Drops events older than max_age, recording a gap, and reports events
  // that were dropped on arrival while the outbox was full. Call periodically.
  absl::Status ExpireOld();
  // A fresh outbox learns it must not reuse sequences the collector already
  // has: shifts waiting events so the first one becomes `from`.
  absl::Status Renumber(uint64_t from);
  // True until the first completed handshake with a collector.
  bool fresh();
  absl::Status MarkSynced();
  // Lowest waiting sequence, or 0 when empty.
  uint64_t FirstUnacked();
  OutboxStats Stats();

 private:
  Outbox(sql::Db db, OutboxLimits limits, Clock& clock, bool in_memory);
  absl::Status InitSchema();
  absl::StatusOr<int64_t> Meta(sql::Db& db, const char* key);
  absl::Status SetMeta(const char* key, int64_t value);
  // Inside a transaction: evicts events no more important than the newcomer
  // until `incoming` bytes fit, and appends the gap record. False when even
  // that would not make room (the newcomer must be dropped).
  absl::StatusOr<bool> MakeRoom(int64_t incoming, Severity severity);
  absl::Status RecordDroppedArrival(const NewEvent& event);
  absl::Status FlushDroppedLocked();
  absl::StatusOr<uint64_t> InsertLocked(const NewEvent& event, int64_t now_ms);
  absl::Status EvictAndRecord(const std::vector<uint64_t>& sequences, const char* reason);

  std::mutex mu_;
  sql::Db db_;
  OutboxLimits limits_;
  Clock& clock_;
  bool in_memory_;
  std::string outbox_id_;
  std::string reset_reason_;
};

}  // namespace setdiag::agent
