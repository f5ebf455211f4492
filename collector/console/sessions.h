#pragma once
// The console's sign-in sessions. Signing in with a person's API token opens
// one: its id (32 random bytes, hex) lives only in the browser's cookie; the
// collector keeps its SHA-256, the user's id, a CSRF token and the expiry,
// so a copy of the collector's memory cannot be replayed as a cookie. Every
// request looks the user up again by id (a revoked user's session ends at
// its next request). Sessions live in memory: a restart signs everyone out.
// Time is the injected Clock; thread-safe.

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/mutex.h"

namespace setdiag::collector::console {

struct Session {
  std::string user_id;
  std::string csrf;  // sent back in forms (csrf) and by scripts (X-CSRF-Token)
  std::string lang;  // "ru" or "en"
  int64_t expires_ms = 0;
};

class Sessions {
 public:
  static constexpr int64_t kDefaultLifetimeMs = 12LL * 60 * 60 * 1000;
  static constexpr size_t kMaxSessions = 10'000;

  explicit Sessions(Clock& clock, int64_t lifetime_ms = kDefaultLifetimeMs)
      : clock_(clock), lifetime_ms_(lifetime_ms) {}

  struct Opened {
    std::string id;  // for the cookie; never stored
    Session session;
  };
  // A new session for `user_id`. At kMaxSessions, the one that expires
  // first makes room.
  Opened Open(const std::string& user_id, const std::string& lang);
  // The live session with this cookie value; an expired one is dropped.
  std::optional<Session> Find(std::string_view id);
  void Close(std::string_view id);
  void SetLang(std::string_view id, const std::string& lang);
  int64_t lifetime_ms() const { return lifetime_ms_; }
  size_t size();

 private:
  Clock& clock_;
  const int64_t lifetime_ms_;
  Mutex mu_;
  std::map<std::string, Session> by_hash_ ABSL_GUARDED_BY(mu_);  // SHA-256 hex of the id
};

}  // namespace setdiag::collector::console
