#pragma once
// The till watch's decision: pure logic over observations and "now" (no I/O,
// no clock of its own), so tests are tables on a fake clock.
//
// Conditions (thresholds in TillWatchPolicy):
//  - "tills.majority_stopped" (critical): stopped tills are strictly more
//    than half of the expected tills, sustained for the confirm window. Onset
//    is the instant the majority first became stopped. Cleared when at most
//    half are stopped for the clear window.
//  - "tills.till_stopped" (normal): one till stopped longer than
//    single_till_ms; raised per till, not while the majority condition stands
//    (its evidence already lists every stopped till).
//  - "set.db_unreachable" (important): the heartbeat source cannot be read.
//    Then tills are unknown, and no till condition is raised or cleared.
// All till conditions of one outbreak share an episode id, so the collector
// keeps one ticket that escalates from normal to critical.
// Outside opening hours or in maintenance nothing is expected and active till
// conditions clear.
//
// Not thread-safe: owned by the till watch loop.

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "agent/event.h"
#include "agent/finding.h"

namespace setdiag::agent {

enum class RosterStatus { kActive, kMothballed, kDeleted };
enum class ProbeResult { kNotProbed, kAnswers, kRefused, kNoAnswer };
enum class TillState { kUp, kStopped, kMothballed, kNotExpected, kUnknown };

const char* ProbeResultName(ProbeResult p);
const char* TillStateName(TillState s);
// "ACTIVE" / "CLOSED_DOWN" / "DELETED" as SET stores them; unknown -> active.
RosterStatus ParseRosterStatus(std::string_view status);

struct TillObservation {
  int number = 0;
  RosterStatus roster = RosterStatus::kActive;
  std::string address;                     // cash_ip or configured
  std::optional<int64_t> last_heartbeat_ms;  // newest from any source
  std::string heartbeat_source;            // "set_db", "push"
  ProbeResult probe = ProbeResult::kNotProbed;
};

struct ServerState {
  bool known = false;
  bool port_8090 = false;  // SOAP services, admin UI, till calls
  bool port_8091 = false;  // nginx file transport
  bool port_5432 = false;  // PostgreSQL
  bool deployed = false;   // Set10.ear.deployed present
  bool deploy_failed = false;
};

struct TillSnapshot {
  int64_t now_ms = 0;
  bool source_ok = true;       // the heartbeat source (SET's database) was read
  std::string source_error;
  bool expected = true;        // store calendar: open and not in maintenance
  std::string expected_reason;
  std::vector<TillObservation> tills;
  ServerState server;
};

struct TillWatchPolicy {
  int64_t heartbeat_timeout_ms = 60'000;
  int64_t confirm_ms = 30'000;
  int64_t clear_ms = 30'000;
  int64_t single_till_ms = 600'000;
  int64_t unreachable_confirm_ms = 15'000;
};

struct TillView {
  int number = 0;
  TillState state = TillState::kUnknown;
  std::optional<int64_t> last_heartbeat_ms;
  std::optional<int64_t> stopped_since_ms;
  std::string address;
  ProbeResult probe = ProbeResult::kNotProbed;
};

class TillDetector {
 public:
  // `episode_prefix` makes episode ids unique per agent (e.g. the agent id).
  TillDetector(TillWatchPolicy policy, std::string episode_prefix);

  std::vector<Finding> Evaluate(const TillSnapshot& snapshot);

  // The earliest instant after `now` at which Evaluate could decide
  // something new without new observations (a heartbeat falling overdue, a
  // window closing); nullopt if nothing is pending. Lets the watch loop wake
  // exactly then instead of waiting for the next poll.
  std::optional<int64_t> NextDeadline(int64_t now_ms) const;

  const std::vector<TillView>& tills() const { return views_; }
  bool majority_active() const { return majority_active_; }
  bool db_unreachable_active() const { return db_active_; }

 private:
  struct TillMemory {
    int64_t first_seen_ms = 0;
    std::optional<int64_t> stopped_seen_ms;  // when this agent first saw it stopped
    bool normal_raised = false;
  };
  std::vector<Finding> Unexpected(const TillSnapshot& s);
  void SourceDown(const TillSnapshot& s, std::vector<Finding>& out);
  nlohmann::json Evidence(const TillSnapshot& s, const std::vector<const TillView*>& stopped) const;
  std::string EnsureEpisode(int64_t now_ms);
  void MaybeEndEpisode();

  TillWatchPolicy policy_;
  std::string prefix_;
  std::map<int, TillMemory> memory_;
  std::vector<TillView> views_;
  std::optional<int64_t> expected_since_;
  std::optional<int64_t> opened_at_;  // last not-expected -> expected transition seen
  bool was_unexpected_ = false;
  bool majority_active_ = false;
  int64_t majority_onset_ms_ = 0;
  // When this agent first saw the (unconfirmed) majority. Windows count from
  // the later of this and the onset, so heartbeats that all look old at once
  // (a forward clock step, one stale read) are still confirmed, not believed.
  std::optional<int64_t> majority_seen_since_;
  std::optional<int64_t> clear_pending_since_;
  std::string episode_;
  std::optional<int64_t> source_down_since_;
  bool db_active_ = false;
  std::vector<int64_t> pending_deadlines_;
};

}  // namespace setdiag::agent
