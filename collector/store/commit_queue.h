#pragma once
// The collector's single writer: every change to its SQLite database runs on
// one thread, in group transactions (one fsync for many agents' batches).
// gRPC reactors never touch the database: they Submit() work and get a
// completion callback on this thread after the commit (or the failure).
//
// Each job runs inside a SAVEPOINT, so a failing job rolls back alone; if the
// COMMIT itself fails every job of the group is told so and nothing is acked.

#include <atomic>
#include <cstddef>
#include <deque>
#include <functional>
#include <thread>

#include "absl/status/status.h"
#include "common/mutex.h"
#include "common/sqlite.h"

namespace setdiag::collector {

class CommitQueue {
 public:
  using Work = std::function<absl::Status(sql::Db&)>;
  using Done = std::function<void(absl::Status)>;

  // `max_pending_events` bounds the weight waiting; beyond it Submit refuses
  // weighted work (the caller tells the agent it is overloaded). A job's
  // weight counts from Submit until its transaction has committed or
  // failed, not while its Done callback runs.
  CommitQueue(sql::Db db, size_t max_pending_events, size_t max_jobs_per_commit = 512);
  ~CommitQueue();

  void Start();
  // Runs what is queued, then stops.
  void Stop();
  // Thread-safe. Returns false (and does not queue) when weight > 0 and the
  // queue is over its bound. Handshake work (a token look-up, a Hello's
  // registration: small, and what lets an agent be told when to come back)
  // may also use a reserve above the bound, max_pending_events / 8.
  enum class Kind { kWork, kHandshake };
  bool Submit(Work work, Done done, size_t weight = 0, Kind kind = Kind::kWork);
  size_t pending_weight();
  size_t max_pending() const { return max_pending_; }
  // Weight committed per second while the writer was busy (a moving
  // average over groups of at least kRateMinWeight), what Overloaded
  // answers schedule returning agents by; kInitialRate until measured.
  double drain_rate();
  static constexpr double kInitialRate = 50'000;
  static constexpr size_t kRateMinWeight = 500;
  uint64_t commits() const { return commits_.load(); }
  // Called on the writer thread after every successful COMMIT, before the
  // jobs' Done callbacks (e.g. to wake the notifier). Set before Start().
  void SetAfterCommit(std::function<void()> after_commit) {
    after_commit_ = std::move(after_commit);
  }

 private:
  struct Job {
    Work work;
    Done done;
    size_t weight;
  };
  void Loop();
  void RunGroup(std::deque<Job>& group);

  sql::Db db_;
  size_t max_pending_;
  size_t max_jobs_;
  Mutex mu_;
  CondVar cv_;  // jobs_ or stopping_ changed
  std::deque<Job> jobs_ ABSL_GUARDED_BY(mu_);
  size_t weight_ ABSL_GUARDED_BY(mu_) = 0;
  double rate_ ABSL_GUARDED_BY(mu_) = kInitialRate;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<uint64_t> commits_{0};  // written by the writer thread, read by anyone
  std::function<void()> after_commit_;
  std::thread thread_;
};

}  // namespace setdiag::collector
