#pragma once
// The collector's single writer: every change to its SQLite database runs on
// one thread, in group transactions (one fsync for many agents' batches).
// gRPC reactors never touch the database: they Submit() work and get a
// completion callback on this thread after the commit (or the failure).
//
// Each job runs inside a SAVEPOINT, so a failing job rolls back alone; if the
// COMMIT itself fails every job of the group is told so and nothing is acked.

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "absl/status/status.h"
#include "common/sqlite.h"

namespace setdiag::collector {

class CommitQueue {
 public:
  using Work = std::function<absl::Status(sql::Db&)>;
  using Done = std::function<void(absl::Status)>;

  // `max_pending_events` bounds the weight waiting; beyond it Submit refuses
  // weighted work (the caller tells the agent it is overloaded).
  CommitQueue(sql::Db db, size_t max_pending_events, size_t max_jobs_per_commit = 512);
  ~CommitQueue();

  void Start();
  // Runs what is queued, then stops.
  void Stop();
  // Thread-safe. Returns false (and does not queue) when weight > 0 and the
  // queue is over its bound.
  bool Submit(Work work, Done done, size_t weight = 0);
  size_t pending_weight();
  uint64_t commits() const { return commits_; }
  // Called on the writer thread after every successful COMMIT, before the
  // jobs' Done callbacks (e.g. to wake the notifier). Set before Start().
  void SetAfterCommit(std::function<void()> after_commit) { after_commit_ = std::move(after_commit); }

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
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;
  size_t weight_ = 0;
  bool stopping_ = false;
  uint64_t commits_ = 0;
  std::function<void()> after_commit_;
  std::thread thread_;
};

}  // namespace setdiag::collector
