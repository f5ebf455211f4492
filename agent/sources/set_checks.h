#pragma once
// Findings about how the agent reads SET's data rather than about what the
// data says. Pure logic over results and "now" (no I/O, no clock of its
// own), owned by a watch loop, table-tested on a fake clock.
//
//  - "agent.source_failed" (important): a source the agent reads (a query of
//    SET's database, an inbox folder) keeps failing although the database
//    answers: a column missing in this SET version, a broken replacement
//    query, an unreadable folder. Raised once the source has failed at least
//    three times in a row over `confirm_ms`; cleared at its first success.
//    One episode per source and outbreak; the payload names the source, the
//    config key that replaces its query, the error and the fix. Failures to
//    reach the database (Unavailable) do not count: set.db_unreachable says
//    that, and the watch is not misconfigured.
//  - "set.clock_skew" (important): SET's heartbeats lie ahead of the agent's
//    clock, or the database's clock differs from it, by more than the
//    tolerance, for the confirm window. A lead of whole hours with the
//    clocks in step is a time zone mismatch (SET writes local time without
//    zone); otherwise a clock that needs NTP. Cleared after the clear window
//    within tolerance.
//  - "set.shop_ambiguous" (important): the roster holds tills of several
//    shops and set_db.shop_number is not set. The till watch then refuses to
//    judge the tills (their numbers repeat across shops); cleared when one
//    shop remains.

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "agent/core/finding.h"
#include "agent/sources/set_db.h"

namespace setdiag::agent {

inline constexpr const char* kSourceFailedKind = "agent.source_failed";
inline constexpr const char* kClockSkewKind = "set.clock_skew";
inline constexpr const char* kShopAmbiguousKind = "set.shop_ambiguous";

struct SourceSpec {
  std::string id;          // unique per agent: "tills.activity", "loading.inbox:/var/..."
  std::string config_key;  // what replaces or fixes it: "set_db.activity_query"
  std::string what_en;     // "the till watch's heartbeats"
  std::string what_ru;
  std::string fix_en;  // what to do, naming config_key
  std::string fix_ru;
};

// The spec of a SET database query read by `watch` ("tills", "loading").
SourceSpec QuerySource(const std::string& watch, SetSource source);
// The spec of an inbox folder of the loading watch (loading.inboxes).
SourceSpec InboxSource(const std::string& path);

class SourceHealth {
 public:
  SourceHealth(std::string episode_prefix, int64_t confirm_ms, int min_failures = 3);

  // One attempt at reading `source` at `now_ms`; OK or its error. Returns
  // the findings (raised / cleared) it causes.
  std::vector<Finding> Observe(const SourceSpec& source, const absl::Status& result,
                               int64_t now_ms);
  bool active(const std::string& id) const;
  // Durable state: {"id": {"episode", "since_ms"}} of the active sources.
  nlohmann::json ExportState() const;
  void RestoreState(const nlohmann::json& state);
  void AppendHeld(nlohmann::json* held) const;

 private:
  struct State {
    int failures = 0;
    int64_t first_failure_ms = 0;
    bool active = false;
    std::string episode;
    std::string error;
  };
  std::string prefix_;
  int64_t confirm_ms_;
  int min_failures_;
  std::map<std::string, State> states_;
};

struct ClockSkewPolicy {
  int64_t tolerance_ms = 120'000;
  int64_t confirm_ms = 30'000;
  int64_t clear_ms = 30'000;
};

struct ClockObservation {
  int64_t now_ms = 0;  // the agent's clock
  std::optional<int64_t>
      db_offset_ms;  // the database's clock minus the agent's; nullopt: not measured
  std::vector<int64_t> heartbeats_ms;  // last activity per till, from SET's database
  std::string reading_zone;            // where naive timestamps are read: "Europe/Moscow"
  std::string session_time_zone;       // the database session's TimeZone
};

class ClockSkewDetector {
 public:
  ClockSkewDetector(ClockSkewPolicy policy, std::string episode_prefix);
  std::vector<Finding> Evaluate(const ClockObservation& o);
  bool active() const { return active_; }
  nlohmann::json ExportState() const;  // {} or {"episode", "since_ms"}
  void RestoreState(const nlohmann::json& state);
  void AppendHeld(nlohmann::json* held) const;

 private:
  ClockSkewPolicy policy_;
  std::string prefix_;
  bool active_ = false;
  std::string episode_;
  int64_t since_ms_ = 0;
  std::optional<int64_t> skew_seen_since_;
  std::optional<int64_t> ok_seen_since_;
};

// The shops of a roster (rows without a shop number are not counted).
std::set<int> ShopsIn(const std::vector<RosterRow>& roster);
// What a preflight says: OK, or FailedPrecondition naming set_db.shop_number
// and the shops seen when several are and none is configured.
absl::Status CheckShops(const std::set<int>& shops, bool shop_configured);

class ShopCheck {
 public:
  explicit ShopCheck(std::string episode_prefix);
  std::vector<Finding> Evaluate(const std::set<int>& shops, bool shop_configured, int64_t now_ms);
  bool ambiguous() const { return active_; }
  nlohmann::json ExportState() const;  // {} or {"episode", "since_ms", "shops"}
  void RestoreState(const nlohmann::json& state);
  void AppendHeld(nlohmann::json* held) const;

 private:
  std::string prefix_;
  bool active_ = false;
  std::string episode_;
  int64_t since_ms_ = 0;
  std::set<int> shops_;
};

// The durable state of a watch's checks for agent/store/detector_state.h (row
// "<watch>.checks"): {"version": 1, "sources", "clock", "shops", "held"}.
// Restored checks clear with their own episode when they no longer hold and
// are not raised again while they still hold. Null pointers are skipped;
// malformed parts are ignored (the check starts afresh).
nlohmann::json ExportChecksState(const SourceHealth* sources, const ClockSkewDetector* clock,
                                 const ShopCheck* shops);
void RestoreChecksState(const nlohmann::json& state, SourceHealth* sources,
                        ClockSkewDetector* clock, ShopCheck* shops);

}  // namespace setdiag::agent
