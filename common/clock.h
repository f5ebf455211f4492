#pragma once
// Time is injected: everything that depends on "now" or waits takes a Clock&.
// Production code uses SystemClock; tests use FakeClock and never sleep.

#include <chrono>
#include <cstdint>

#include "common/mutex.h"

namespace setdiag {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time as Unix milliseconds (used for timestamps on the wire).
  virtual int64_t NowMs() = 0;
  // Monotonic time in milliseconds (used for intervals and deadlines).
  virtual int64_t MonotonicMs() = 0;
};

class SystemClock final : public Clock {
 public:
  int64_t NowMs() override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  int64_t MonotonicMs() override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
};

// A clock that moves only when told to. Thread-safe.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t now_ms = 1'700'000'000'000) : now_ms_(now_ms) {}
  int64_t NowMs() override {
    MutexLock lock(&mu_);
    return now_ms_;
  }
  int64_t MonotonicMs() override { return NowMs(); }
  void Advance(std::chrono::milliseconds d) {
    MutexLock lock(&mu_);
    now_ms_ += d.count();
  }
  void Set(int64_t now_ms) {
    MutexLock lock(&mu_);
    now_ms_ = now_ms;
  }

 private:
  Mutex mu_;
  int64_t now_ms_ ABSL_GUARDED_BY(mu_);
};

}  // namespace setdiag
