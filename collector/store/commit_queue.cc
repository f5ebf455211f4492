#include "collector/store/commit_queue.h"

#include <chrono>

#include "common/log.h"
#include "common/strings.h"

namespace setdiag::collector {

CommitQueue::CommitQueue(sql::Db db, size_t max_pending_events, size_t max_jobs_per_commit)
    : db_(std::move(db)), max_pending_(max_pending_events), max_jobs_(max_jobs_per_commit) {}

CommitQueue::~CommitQueue() { Stop(); }

void CommitQueue::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void CommitQueue::Stop() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  cv_.SignalAll();
  if (thread_.joinable()) thread_.join();
}

bool CommitQueue::Submit(Work work, Done done, size_t weight, Kind kind) {
  {
    MutexLock lock(&mu_);
    if (stopping_) return false;
    const size_t bound = kind == Kind::kHandshake ? max_pending_ + max_pending_ / 8 : max_pending_;
    if (weight > 0 && weight_ + weight > bound) return false;
    weight_ += weight;
    jobs_.push_back({std::move(work), std::move(done), weight});
  }
  cv_.Signal();
  return true;
}

size_t CommitQueue::pending_weight() {
  MutexLock lock(&mu_);
  return weight_;
}

double CommitQueue::drain_rate() {
  MutexLock lock(&mu_);
  return rate_;
}

void CommitQueue::Loop() {
  while (true) {
    std::deque<Job> group;
    {
      MutexLock lock(&mu_);
      while (!stopping_ && jobs_.empty()) cv_.Wait(&mu_);
      if (jobs_.empty() && stopping_) return;
      while (!jobs_.empty() && group.size() < max_jobs_) {
        group.push_back(std::move(jobs_.front()));
        jobs_.pop_front();
      }
    }
    RunGroup(group);
  }
}

void CommitQueue::RunGroup(std::deque<Job>& group) {
  const auto started = std::chrono::steady_clock::now();
  std::vector<absl::Status> results(group.size());
  absl::Status begin = db_.Exec("BEGIN IMMEDIATE");
  if (begin.ok()) {
    absl::Status group_failure;
    for (size_t i = 0; i < group.size(); ++i) {
      if (!group_failure.ok()) {
        results[i] = group_failure;
        continue;
      }
      results[i] = db_.Exec("SAVEPOINT job");
      if (results[i].ok()) results[i] = group[i].work(db_);
      if (!results[i].ok()) {
        // Some errors (disk full, I/O) make SQLite roll back the whole
        // transaction: then nothing in this group may be reported as stored.
        if (sqlite3_get_autocommit(db_.raw()) != 0) {
          group_failure = results[i];
          for (size_t j = 0; j < i; ++j) results[j] = group_failure;
          continue;
        }
        (void)db_.Exec("ROLLBACK TO job");
      }
      (void)db_.Exec("RELEASE job");
    }
    absl::Status commit = group_failure.ok() ? db_.Exec("COMMIT") : group_failure;
    if (!commit.ok()) {
      if (sqlite3_get_autocommit(db_.raw()) == 0) (void)db_.Exec("ROLLBACK");
      log::Error("store", Cat("commit failed, nothing acknowledged: ", commit.ToString()));
      for (auto& r : results) r = commit;
    } else {
      ++commits_;
      if (after_commit_) after_commit_();
    }
  } else {
    log::Error("store", Cat("cannot begin a transaction: ", begin.ToString()));
    for (auto& r : results) r = begin;
  }
  // Committed (or failed): no longer pending. Released before the Done
  // callbacks, which send the acks and may take a while with many streams,
  // so that Submit does not answer Overloaded for work already stored.
  size_t done_weight = 0;
  for (const auto& j : group) done_weight += j.weight;
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  {
    MutexLock lock(&mu_);
    weight_ -= done_weight;
    // Only busy groups say what the writer can do; a lone event's fsync
    // would make it look slow.
    if (done_weight >= kRateMinWeight && seconds > 0) {
      rate_ = 0.8 * rate_ + 0.2 * (static_cast<double>(done_weight) / seconds);
    }
  }
  for (size_t i = 0; i < group.size(); ++i) {
    if (group[i].done) group[i].done(results[i]);
  }
}

}  // namespace setdiag::collector
