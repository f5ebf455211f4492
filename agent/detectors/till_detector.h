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
// Grace: a till counts as stopped only once it has had one full heartbeat
// timeout to report while it could: after an opening (or the end of
// maintenance), after this detector starts (for tills whose heartbeat is
// already overdue then), and after the heartbeat source comes back from
// being unreadable (for tills that were not yet overdue when it went away:
// nobody can report into a database that is down). During the grace such a
// till is "unknown": it neither raises a condition nor clears one.
//
// Restarts: ExportState() is what must survive the process (active
// conditions, episodes, onsets); RestoreState() on a new detector makes it
// clear them with the same episode when they no longer hold, and keep them
// (not raise a new episode) while they still hold.
//
// Not thread-safe: owned by the till watch loop.

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "agent/core/event.h"
#include "agent/core/finding.h"
#include "agent/core/observations.h"

namespace setdiag::agent {

enum class TillState { kUp, kStopped, kMothballed, kNotExpected, kUnknown };

const char* TillStateName(TillState s);

struct TillObservation {
  int number = 0;
  RosterStatus roster = RosterStatus::kActive;
  std::string address;                       // cash_ip or configured
  std::optional<int64_t> last_heartbeat_ms;  // newest from any source
  std::string heartbeat_source;              // "set_db", "push"
  ProbeResult probe = ProbeResult::kNotProbed;
};

struct TillSnapshot {
  int64_t now_ms = 0;
  bool source_ok = true;  // the heartbeat source (SET's database) was read
  // With !source_ok: the database answered, but what it said cannot be used
  // (a query that does not fit this SET version, several shops and no
  // set_db.shop_number). Tills are unknown as when it is down, but
  // set.db_unreachable is not raised (and an active one clears):
  // agent.source_failed or set.shop_ambiguous says what is wrong.
  bool source_answered = false;
  std::string source_error;
  bool expected = true;  // store calendar: open and not in maintenance
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

  // The durable state (docs/till-watch.md): a JSON object with "version",
  // the active conditions and their episodes, and "held" (the condition
  // episodes raised and not cleared, see agent/store/detector_state.h). Changes
  // only when a condition is raised, escalated or cleared.
  nlohmann::json ExportState() const;
  // Takes over the conditions of a previous process's ExportState(). Only
  // before the first Evaluate. InvalidArgument (and nothing restored) when
  // the object is not a state this version understands.
  absl::Status RestoreState(const nlohmann::json& state);

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
  void ClearDbUnreachable(int64_t now_ms, std::vector<Finding>& out);
  // The steps of an evaluation with a readable source, in Evaluate's order:
  // SourceBack: the source is usable again; records the outage whose tills
  // are owed a grace.
  void SourceBack(int64_t now_ms);
  // The store expects its tills (again): notes an opening.
  void NoteExpected(int64_t now_ms);
  // Rebuilds views_ from the roster; returns the numbers of the tills seen.
  std::vector<int> UpdateViews(const TillSnapshot& s);
  // One till's state; queues the instant a till in its grace counts as stopped.
  TillView ViewOf(const TillObservation& t, const TillMemory& mem, int64_t now_ms);
  // Forgets the tills not in `seen`, clearing their tills.till_stopped.
  void ForgetLeftTills(const std::vector<int>& seen, int64_t now_ms, std::vector<Finding>& out);
  // tills.majority_stopped: confirms a stopped majority (`stopped` earliest
  // first, `need` of them make it) or clears an active one.
  void StepMajority(const TillSnapshot& s, std::vector<Finding>& out);
  void ConfirmMajority(const TillSnapshot& s, const std::vector<const TillView*>& stopped,
                       size_t need, std::vector<Finding>& out);
  void ClearMajority(const TillSnapshot& s, const std::vector<const TillView*>& stopped,
                     std::vector<Finding>& out);
  // tills.till_stopped per till, while no majority condition covers them.
  void StepSingleTills(const TillSnapshot& s, std::vector<Finding>& out);
  nlohmann::json Evidence(const TillSnapshot& s, const std::vector<const TillView*>& stopped) const;
  std::string EnsureEpisode(int64_t now_ms);
  void MaybeEndEpisode();
  // When a till whose heartbeat falls overdue at `overdue_at` counts as
  // stopped, after every grace it is owed.
  int64_t StoppedSince(int64_t overdue_at) const;
  void AddOutage(int64_t from_ms, int64_t until_ms);

  TillWatchPolicy policy_;
  std::string prefix_;
  std::map<int, TillMemory> memory_;
  std::vector<TillView> views_;
  std::optional<int64_t> expected_since_;
  std::optional<int64_t> opened_at_;  // last not-expected -> expected transition seen
  // The first evaluation with a readable source: tills already overdue then
  // get one heartbeat timeout from here.
  std::optional<int64_t> started_at_;
  bool evaluated_ = false;
  // Recent periods [from, until) in which the heartbeat source could not be
  // read; periods closer than one timeout are merged. Bounded.
  std::vector<std::pair<int64_t, int64_t>> outages_;
  bool was_unexpected_ = false;
  bool majority_active_ = false;
  int64_t majority_onset_ms_ = 0;
  // When this agent first saw the (unconfirmed) majority. Windows count from
  // the later of this and the onset, so heartbeats that all look old at once
  // (a forward clock step, one stale read) are still confirmed, not believed.
  std::optional<int64_t> majority_seen_since_;
  std::optional<int64_t> clear_pending_since_;
  std::string episode_;
  // Since when the till data is unusable (down or not fitting): the grace
  // after it returns counts from here.
  std::optional<int64_t> source_down_since_;
  // Since when the database is unreachable (set.db_unreachable's since_ms,
  // which also names its episode at the collector).
  std::optional<int64_t> db_down_since_;
  bool db_active_ = false;
  std::vector<int64_t> pending_deadlines_;
};

}  // namespace setdiag::agent
