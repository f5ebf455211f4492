#include "agent/till_watch.h"

#include <algorithm>

#include "common/log.h"
#include "common/strings.h"

namespace setdiag::agent {

TillWatch::TillWatch(TillWatchOptions options, std::string agent_id, ExpectationFn expectation,
                     HeartbeatBoard& board, Outbox& outbox, std::function<void()> on_committed, Clock& clock)
    : options_(std::move(options)),
      expectation_(std::move(expectation)),
      board_(board),
      outbox_(outbox),
      on_committed_(std::move(on_committed)),
      clock_(clock),
      detector_(options_.policy, std::move(agent_id)) {
  if (options_.set_db) db_ = std::make_unique<SetDatabase>(*options_.set_db);
}

TillWatch::~TillWatch() { Stop(); }

void TillWatch::Start() {
  loop_thread_ = std::thread([this] { Loop(); });
  probe_thread_ = std::thread([this] { ProbeLoop(); });
}

void TillWatch::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (loop_thread_.joinable()) loop_thread_.join();
  if (probe_thread_.joinable()) probe_thread_.join();
}

TillWatchStats TillWatch::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

std::vector<TillView> TillWatch::tills() const {
  std::lock_guard lock(mu_);
  return views_;
}

TillSnapshot TillWatch::Gather(int64_t now_ms, bool poll_source) {
  if (db_ && poll_source) {
    auto roster = db_->ReadRoster();
    auto activity = roster.ok() ? db_->ReadActivity() : roster.status();
    if (roster.ok() && activity.ok()) {
      if (!source_ok_) log::Info("tills", "SET database readable again");
      source_ok_ = true;
      source_error_.clear();
      roster_ = std::move(*roster);
      db_activity_ = std::move(*activity);
    } else {
      std::string err(roster.ok() ? activity.status().message() : roster.status().message());
      if (source_ok_ || err != source_error_) log::Warn("tills", Cat("cannot read SET's database: ", err));
      source_ok_ = false;
      source_error_ = err;
    }
  }
  TillSnapshot s;
  s.now_ms = now_ms;
  s.source_ok = source_ok_;
  s.source_error = source_error_;
  auto [expected, reason] = expectation_ ? expectation_(now_ms) : std::make_pair(true, std::string("open"));
  s.expected = expected;
  s.expected_reason = reason;

  std::map<int, TillObservation> tills;
  if (db_) {
    for (const auto& r : roster_) {
      auto& t = tills[r.number];
      t.number = r.number;
      t.roster = ParseRosterStatus(r.status);
      t.address = r.address;
    }
    for (const auto& [number, ms] : db_activity_) {
      auto it = tills.find(number);
      if (it == tills.end()) continue;  // activity of a till not in the roster
      it->second.last_heartbeat_ms = ms;
      it->second.heartbeat_source = "set_db";
    }
  }
  for (const auto& c : options_.roster) {
    auto& t = tills[c.number];
    t.number = c.number;
    if (!c.address.empty()) t.address = c.address;
    if (c.mothballed) t.roster = RosterStatus::kMothballed;
  }
  for (const auto& [number, ms] : board_.Snapshot()) {
    auto it = tills.find(number);
    if (it == tills.end()) continue;  // pushes never add tills to the roster
    if (!it->second.last_heartbeat_ms || ms > *it->second.last_heartbeat_ms) {
      it->second.last_heartbeat_ms = ms;
      it->second.heartbeat_source = "push";
    }
  }
  std::lock_guard lock(mu_);
  for (auto& [number, t] : tills) {
    if (auto p = probes_.find(t.address); p != probes_.end()) t.probe = p->second;
    s.tills.push_back(t);
  }
  s.server = server_;
  return s;
}

void TillWatch::Loop() {
  // Polls are scheduled on the monotonic clock: a step of the wall clock
  // (NTP) must neither stop the polling nor make the loop sleep for hours.
  int64_t next_poll_mono = 0;
  while (true) {
    int64_t now = clock_.NowMs();
    bool poll = clock_.MonotonicMs() >= next_poll_mono;
    if (poll) next_poll_mono = clock_.MonotonicMs() + options_.poll_interval_ms;
    TillSnapshot snapshot = Gather(now, poll);
    std::vector<Finding> findings = detector_.Evaluate(snapshot);
    if (CommitFindings(outbox_, findings, "tills", options_.history.get()) > 0 && on_committed_) on_committed_();
    std::vector<std::string> stopped_addresses;
    for (const auto& v : detector_.tills()) {
      if (v.state == TillState::kStopped && !v.address.empty()) stopped_addresses.push_back(v.address);
    }
    int64_t wait_ms =
        WaitBeforeNextEvaluation(clock_, next_poll_mono, detector_.NextDeadline(now), options_.poll_interval_ms);
    std::unique_lock lock(mu_);
    stats_.evaluations++;
    stats_.findings += findings.size();
    stats_.last_source_error = source_error_;
    views_ = detector_.tills();
    bool new_stopped = false;
    for (const auto& a : stopped_addresses) {
      if (!probes_.contains(a)) new_stopped = true;
    }
    to_probe_ = std::move(stopped_addresses);
    if (new_stopped) cv_.notify_all();  // the prober looks at new ones at once
    cv_.wait_for(lock, std::chrono::milliseconds(wait_ms), [&] { return stopping_; });
    if (stopping_) return;
  }
}

void TillWatch::ProbeLoop() {
  int64_t next_full = 0;
  while (true) {
    std::vector<std::string> addresses;
    {
      std::unique_lock lock(mu_);
      if (stopping_) return;
      addresses = to_probe_;
    }
    bool full = clock_.MonotonicMs() >= next_full;
    std::vector<std::string> targets;
    {
      std::lock_guard lock(mu_);
      for (const auto& a : addresses) {
        if (full || !probes_.contains(a)) targets.push_back(a);
      }
    }
    auto results = ProbeTcp(targets, options_.probe_port, options_.probe_timeout_ms);
    ServerState server = full ? CheckServer(options_.server, options_.probe_timeout_ms) : ServerState{};
    {
      std::unique_lock lock(mu_);
      for (size_t i = 0; i < targets.size(); ++i) probes_[targets[i]] = results[i];
      // Forget tills that are no longer stopped: a later stop probes afresh.
      for (auto it = probes_.begin(); it != probes_.end();) {
        if (std::find(to_probe_.begin(), to_probe_.end(), it->first) == to_probe_.end()) it = probes_.erase(it);
        else ++it;
      }
      if (full) {
        server_ = server;
        next_full = clock_.MonotonicMs() + options_.probe_every_ms;
      }
      cv_.wait_for(lock, std::chrono::milliseconds(500), [&] {
        if (stopping_) return true;
        for (const auto& a : to_probe_) {
          if (!probes_.contains(a)) return true;
        }
        return false;
      });
      if (stopping_) return;
    }
  }
}

}  // namespace setdiag::agent
