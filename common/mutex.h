#pragma once
// A mutex, its scoped lock and a condition variable that clang's thread
// safety analysis understands (-Wthread-safety, scripts/thread-safety):
// members a mutex protects are declared ABSL_GUARDED_BY(mu_), functions
// that expect it held ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_), and the build
// checks every access.
//
// Why not absl::Mutex: Debian's Abseil is not built with ThreadSanitizer,
// so TSan could not see its locking and would report every guarded access
// (scripts/test --sanitize=thread). This wraps std::mutex, whose pthread
// calls TSan intercepts.
//
//   Mutex mu_;
//   CondVar changed_;
//   bool stopping_ ABSL_GUARDED_BY(mu_) = false;
//   ...
//   MutexLock lock(&mu_);
//   while (!stopping_) changed_.Wait(&mu_);

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "absl/base/thread_annotations.h"

namespace setdiag {

class ABSL_LOCKABLE Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }
  // For code that knows the lock is held where the analysis cannot see it.
  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK() {}

  // BasicLockable, for std::condition_variable_any (CondVar).
  void lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { mu_.lock(); }
  void unlock() ABSL_UNLOCK_FUNCTION() { mu_.unlock(); }

 private:
  std::mutex mu_;
};

// Holds `mu` for its scope.
class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) { mu_->Lock(); }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

// Waits release `mu` while waiting and hold it again when they return;
// wake-ups may be spurious, so wait in a loop on the condition.
class CondVar {
 public:
  void Wait(Mutex* mu) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { cv_.wait(*mu); }
  // False when `timeout` passed without a signal.
  bool WaitFor(Mutex* mu, std::chrono::milliseconds timeout) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return cv_.wait_for(*mu, timeout) == std::cv_status::no_timeout;
  }
  // Until `deadline` (steady clock); false when it passed.
  bool WaitUntil(Mutex* mu, std::chrono::steady_clock::time_point deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return cv_.wait_until(*mu, deadline) == std::cv_status::no_timeout;
  }
  void Signal() { cv_.notify_one(); }
  void SignalAll() { cv_.notify_all(); }

 private:
  std::condition_variable_any cv_;
};

}  // namespace setdiag
