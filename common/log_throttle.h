#pragma once
// Collapses repeated identical log lines. The first line of a key is written;
// repeats within the window are only counted, and the first one after the
// window is written with how many were skipped. Pure over the time it is
// given (tests pass fake times); thread-safe.

#include <cstdint>
#include <map>
#include <string>

#include "common/mutex.h"

namespace setdiag {

class LogThrottle {
 public:
  explicit LogThrottle(int64_t window_ms, size_t max_keys = 1000)
      : window_ms_(window_ms), max_keys_(max_keys) {}

  // True when the line of `key` should be written at `now_ms`; then
  // `*suppressed` says how many identical lines were skipped before it.
  bool Allow(const std::string& key, int64_t now_ms, uint64_t* suppressed) {
    MutexLock lock(&mu_);
    *suppressed = 0;
    auto it = entries_.find(key);
    if (it == entries_.end()) {
      if (entries_.size() >= max_keys_) entries_.clear();  // bounded: forgets, never grows
      entries_[key] = Entry{now_ms, 0};
      return true;
    }
    if (now_ms - it->second.written_ms < window_ms_) {
      ++it->second.skipped;
      return false;
    }
    *suppressed = it->second.skipped;
    it->second = Entry{now_ms, 0};
    return true;
  }

 private:
  struct Entry {
    int64_t written_ms = 0;
    uint64_t skipped = 0;
  };
  Mutex mu_;
  const int64_t window_ms_;
  const size_t max_keys_;
  std::map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace setdiag
