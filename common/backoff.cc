#include "common/backoff.h"

#include <algorithm>
#include <cmath>

namespace setdiag {

Backoff::Backoff(BackoffPolicy policy, Clock& clock, uint64_t seed)
    : policy_(policy), clock_(clock), rng_(seed) {}

int64_t Backoff::Schedule(int64_t base_delay_ms) {
  base_delay_ms = std::clamp<int64_t>(base_delay_ms, 0, policy_.max_ms);
  std::uniform_real_distribution<double> dist(1.0 - policy_.jitter, 1.0);
  auto delay = static_cast<int64_t>(static_cast<double>(base_delay_ms) * dist(rng_));
  next_attempt_ms_ = clock_.MonotonicMs() + delay;
  return delay;
}

int64_t Backoff::Failed() {
  double exp = std::pow(policy_.multiplier, std::min(attempts_, 62));
  double base = static_cast<double>(policy_.initial_ms) * exp;
  ++attempts_;
  return Schedule(base >= static_cast<double>(policy_.max_ms) ? policy_.max_ms
                                                              : static_cast<int64_t>(base));
}

int64_t Backoff::Overloaded(int64_t retry_after_ms, int64_t spread_ms) {
  if (spread_ms > 0) {
    // The server's schedule: it knows how fast it drains and whom it
    // turned away before us. A later failure still backs off harder.
    ++attempts_;
    const int64_t floor =
        std::clamp(retry_after_ms, kMinScheduledMs, std::max(kMinScheduledMs, policy_.max_ms));
    const int64_t delay = floor + std::uniform_int_distribution<int64_t>(0, spread_ms)(rng_);
    next_attempt_ms_ = clock_.MonotonicMs() + delay;
    return delay;
  }
  attempts_ += 2;
  double exp = std::pow(policy_.multiplier, std::min(attempts_, 62));
  double grown = static_cast<double>(policy_.initial_ms) * exp;
  int64_t base =
      grown >= static_cast<double>(policy_.max_ms) ? policy_.max_ms : static_cast<int64_t>(grown);
  // Never before the server's retry-after or our own overloaded minimum;
  // above that floor, spread over a window so that the agents the server
  // turned away together do not all come back at the same instant.
  const int64_t floor = std::max({base, policy_.overloaded_min_ms, retry_after_ms});
  const int64_t spread =
      spread_ms > 0 ? spread_ms
                    : static_cast<int64_t>(static_cast<double>(floor) * policy_.overloaded_spread);
  int64_t delay = floor;
  if (spread > 0) delay += std::uniform_int_distribution<int64_t>(0, spread)(rng_);
  next_attempt_ms_ = clock_.MonotonicMs() + delay;
  return delay;
}

void Backoff::Succeeded() {
  attempts_ = 0;
  next_attempt_ms_ = 0;
}

void Backoff::SessionStarted() { session_started_ms_ = clock_.MonotonicMs(); }

bool Backoff::SessionEnded(bool acknowledged) {
  const bool healthy =
      acknowledged || (session_started_ms_ >= 0 &&
                       clock_.MonotonicMs() - session_started_ms_ >= policy_.healthy_after_ms);
  session_started_ms_ = -1;
  if (healthy) Succeeded();
  return healthy;
}

int64_t Backoff::MsUntilReady() const {
  return std::max<int64_t>(0, next_attempt_ms_ - clock_.MonotonicMs());
}

}  // namespace setdiag
