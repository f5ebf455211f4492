#pragma once
// The agent's durable outbox: every event is committed to SQLite before it is
// sent and deleted only when the collector acknowledged a durable commit.
//
// Bounded by bytes and by age. When full, only events no more important than
// the newcomer are evicted, least important and oldest first; every eviction
// appends a "setdiag.gap" event that tells the collector exactly which
// sequences were lost and why. If only more important events are left, the
// newcomer is refused, counted, and reported by one gap record later. Critical events are committed
// with synchronous=FULL (survive power loss); others with NORMAL (survive a crash).
//
// A corrupt file is moved aside and a fresh outbox started (reset_reason()
// says why); before it is given up the moved file is read (read-only, row by
// row) and what is readable is appended again to the fresh outbox;
// reset_details() says what was known and recovered. If even that fails the
// outbox runs in memory. It never refuses to open.
//
// A write the disk refuses (full, I/O error, locked) does not lose the event
// in an outbox opened with Open() (the daemon's): it is held in memory,
// bounded, most important kept first, and committed before anything newer
// by the next Append() or CommitHeld() (call it every few seconds). The
// first refusal also holds an "agent.disk_full" (or
// "agent.outbox_write_failed") event, raised, that is cleared once
// everything held is committed. Events the memory bound pushes out are
// reported by one setdiag.gap (reason "disk_full") as soon as a write
// succeeds; events still held when the outbox is destroyed are written to
// <path>.held.json if the disk allows and appended again at the next Open(). Thread-safe: one mutex
// around one connection. Several processes may append to the same file (SQLite locking); sequences
// stay unique.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/core/event.h"
#include "common/clock.h"
#include "common/mutex.h"
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
  // Events held in memory while the disk refuses writes.
  size_t max_held_events = 1000;
  int64_t max_held_bytes = int64_t{8} * 1024 * 1024;
};

struct OutboxStats {
  uint64_t depth = 0;
  int64_t bytes = 0;
  int64_t oldest_enqueued_ms = 0;  // 0 when empty
  uint64_t gaps_total = 0;         // events evicted over the outbox's life (and lost from memory)
  uint64_t next_sequence = 1;
  uint64_t held = 0;  // waiting in memory for the disk
};

// The rules every event must meet before it enters the outbox (the same the
// collector applies): kind [A-Za-z0-9._-]{1,128}, a known severity, a JSON
// object payload, at most max_event_bytes.
absl::Status ValidateNewEvent(const NewEvent& event, int64_t max_event_bytes);

class Outbox {
 public:
  // Opens or creates the outbox at `path` (":memory:" for a volatile one).
  static std::unique_ptr<Outbox> Open(const std::string& path, OutboxLimits limits, Clock& clock);
  ~Outbox();
  // For tools beside a running agent ('emit', 'status'): never moves a file
  // aside (that is the daemon's job, and it reports it); fails instead.
  static absl::StatusOr<std::unique_ptr<Outbox>> OpenWithoutRepair(const std::string& path,
                                                                   OutboxLimits limits,
                                                                   Clock& clock);

  // Non-empty when the file on disk was unusable and a fresh one was started.
  const std::string& reset_reason() const { return reset_reason_; }
  // With a reset: what is known of the replaced outbox, as a JSON object for
  // agent.outbox_reset's payload (docs/protocol.md): previous_outbox_id,
  // previous_next_sequence (0: unreadable), recovered (count, by_kind,
  // by_severity, sequences of the old numbering), unreadable_rows,
  // reappended, moved_to. Empty object without a reset.
  const std::string& reset_details() const { return reset_details_; }
  const std::string& outbox_id() const { return outbox_id_; }
  bool in_memory() const { return in_memory_; }

  // Commits the event, evicting older, less important ones first if the
  // outbox is full. Returns its sequence number; InvalidArgument for an event
  // the collector would reject; ResourceExhausted when the outbox is full of
  // more important events (the event is dropped and a gap record says so);
  // Unavailable when the disk refused it and it is held in memory (see
  // above; only in an outbox from Open(), elsewhere it is the disk's error).
  absl::StatusOr<uint64_t> Append(const NewEvent& event);
  // Commits what is held in memory, in order. OK when nothing is held any
  // more; `*committed` (optional) gets how many events were written.
  absl::Status CommitHeld(size_t* committed = nullptr);
  size_t held();
  // Tests: makes the database refuse to grow beyond `pages` pages (SQLite's
  // max_page_count), as a full disk would; a large value lifts it.
  absl::Status LimitPagesForTest(int64_t pages);
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
  absl::Status InitSchema(const std::string& path) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<int64_t> Meta(sql::Db& db, const char* key);
  absl::Status SetMeta(const char* key, int64_t value) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Inside a transaction: evicts events no more important than the newcomer
  // until `incoming` bytes fit, and appends the gap record. False when even
  // that would not make room (the newcomer must be dropped).
  absl::StatusOr<bool> MakeRoom(int64_t incoming, Severity severity)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status RecordDroppedArrival(const NewEvent& event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status FlushDroppedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<uint64_t> InsertLocked(const NewEvent& event, int64_t now_ms)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status EvictAndRecord(const std::vector<uint64_t>& sequences, const char* reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `*by_disk` tells a refusal of the disk from a deliberate drop.
  absl::StatusOr<uint64_t> AppendLocked(const NewEvent& event, bool* by_disk)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status RecordLostLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The disk refused `event` with `error`: keep it in memory.
  void HoldLocked(const NewEvent& event, const absl::Status& error)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CommitHeldLocked(size_t* committed) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void LoseLocked(const NewEvent& event) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WriteHeldSidecar() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void LoadHeldSidecar();
  std::string DirectoryOfFile() const;

  struct Held {
    NewEvent event;
    int64_t bytes = 0;
  };
  struct Salvage;
  static Salvage ReadDamaged(const std::string& path);
  // A fresh outbox appends what `salvage` read of the replaced file and
  // fills reset_details_.
  void RecoverFrom(const Salvage& salvage, const std::string& moved_to);

  // Guards the database connection and what is held in memory; set once
  // before the outbox is shared: limits_, in_memory_, outbox_id_, the reset
  // fields, path_.
  Mutex mu_;
  sql::Db db_ ABSL_GUARDED_BY(mu_);
  OutboxLimits limits_;
  Clock& clock_;
  bool in_memory_;
  std::string outbox_id_;
  std::string reset_reason_;
  std::string reset_details_ = "{}";
  std::string path_;                             // the file; empty for tools (no holding)
  std::vector<Held> held_ ABSL_GUARDED_BY(mu_);  // in arrival order
  int64_t held_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // Summary of events given up from memory, not yet recorded.
  std::string lost_json_ ABSL_GUARDED_BY(mu_);
  uint64_t lost_count_ ABSL_GUARDED_BY(mu_) = 0;
  // The raised agent.disk_full episode, empty when none.
  std::string disk_episode_ ABSL_GUARDED_BY(mu_);
  std::string disk_kind_ ABSL_GUARDED_BY(mu_);
  int64_t disk_since_ms_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace setdiag::agent
