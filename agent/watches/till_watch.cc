#include "agent/watches/till_watch.h"

#include <algorithm>

#include "agent/watches/findings.h"
#include "common/log.h"
#include "common/strings.h"

namespace setdiag::agent {

TillWatch::TillWatch(TillWatchOptions options, std::string agent_id, ExpectationFn expectation,
                     HeartbeatBoard& board, Outbox& outbox, std::function<void()> on_committed,
                     Clock& clock)
    : options_(std::move(options)),
      expectation_(std::move(expectation)),
      board_(board),
      outbox_(outbox),
      on_committed_(std::move(on_committed)),
      clock_(clock),
      detector_(options_.policy, agent_id),
      sources_(agent_id, options_.set_db ? options_.set_db->failure_confirm_ms : 30'000),
      clock_skew_(ClockSkewPolicy{options_.set_db ? options_.set_db->clock_tolerance_ms : 120'000,
                                  options_.policy.confirm_ms, options_.policy.clear_ms},
                  agent_id),
      shops_(agent_id) {
  if (options_.set_db) db_ = std::make_unique<SetDatabase>(*options_.set_db);
}

TillWatch::~TillWatch() { Stop(); }

void TillWatch::Start() {
  if (options_.state) {
    state_.emplace(options_.state, "tills", "tills");
    if (auto previous = state_->Load()) {
      if (auto st = detector_.RestoreState(*previous); !st.ok()) {
        log::Warn("tills",
                  Cat("the conditions raised before the restart are not restored: ", st.message()));
      } else {
        for (const auto& h : HeldEpisodesOf(*previous)) {
          log::Info("tills", Cat("restored ", h.kind, " (episode ", h.episode,
                                 ") raised before the restart: cleared once it no longer holds"));
        }
      }
    }
    state_->Update(detector_.ExportState(), clock_.NowMs(), clock_.MonotonicMs());
  }
  if (options_.state && db_) {
    checks_state_.emplace(options_.state, "tills.checks", "tills");
    if (auto previous = checks_state_->Load())
      RestoreChecksState(*previous, &sources_, &clock_skew_, &shops_);
    checks_state_->Update(ExportChecksState(&sources_, &clock_skew_, &shops_), clock_.NowMs(),
                          clock_.MonotonicMs());
  }
  loop_thread_ = std::thread([this] { Loop(); });
  probe_thread_ = std::thread([this] { ProbeLoop(); });
}

void TillWatch::Stop() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  cv_.SignalAll();
  if (loop_thread_.joinable()) loop_thread_.join();
  if (probe_thread_.joinable()) probe_thread_.join();
}

TillWatchStats TillWatch::stats() const {
  MutexLock lock(&mu_);
  return stats_;
}

std::vector<TillView> TillWatch::tills() const {
  MutexLock lock(&mu_);
  return views_;
}

void TillWatch::ReadSetDb(int64_t now_ms) {
  auto note = [this](std::vector<Finding> f) {
    check_findings_.insert(check_findings_.end(), f.begin(), f.end());
  };
  auto roster = db_->ReadRoster();
  note(sources_.Observe(QuerySource("tills", SetSource::kRoster), roster.status(), now_ms));
  absl::StatusOr<std::map<int, int64_t>> activity = std::map<int, int64_t>();
  if (roster.ok()) {
    activity = db_->ReadActivity();
    note(sources_.Observe(QuerySource("tills", SetSource::kActivity), activity.status(), now_ms));
  }
  absl::Status st = roster.ok() ? activity.status() : roster.status();
  if (st.ok()) {
    // Till numbers repeat across shops: with several in the roster and none
    // configured, which tills are this store's is unknown, not guessed.
    std::set<int> shops = ShopsIn(*roster);
    const bool configured = options_.set_db->shop_number.has_value();
    note(shops_.Evaluate(shops, configured, now_ms));
    st = CheckShops(shops, configured);
  }
  if (st.ok()) {
    if (!source_ok_) log::Info("tills", "SET database readable again");
    source_ok_ = true;
    source_error_.clear();
    roster_ = std::move(*roster);
    db_activity_ = std::move(*activity);
    // Clocks: the database's against the agent's, and heartbeats from the
    // future (SET's naive local time read in the wrong zone).
    ClockObservation o;
    o.now_ms = now_ms;
    int64_t before = clock_.NowMs();
    auto db_clock = db_->ReadServerClock();
    int64_t after = clock_.NowMs();
    if (db_clock.ok() && after - before < 1000) o.db_offset_ms = *db_clock - (before + after) / 2;
    for (const auto& [n, ms] : db_activity_) o.heartbeats_ms.push_back(ms);
    o.reading_zone = db_->reading_zone();
    o.session_time_zone = db_->session_time_zone();
    auto skew = clock_skew_.Evaluate(o);
    for (const auto& f : skew) {
      if (f.payload.value("state", "") == "raised") {
        log::Warn("tills", Cat(f.payload.value("summary_en", ""), ": ",
                               f.payload["fix_en"].get<std::string>()));
      }
    }
    note(std::move(skew));
  } else {
    std::string err(st.message());
    if (source_ok_ || err != source_error_)
      log::Warn("tills", Cat("cannot read SET's database: ", err));
    source_ok_ = false;
    // Unavailable: down or timed out. Anything else (FailedPrecondition: a
    // query that does not fit, several shops) came from a database that
    // answered.
    source_answered_ = !absl::IsUnavailable(st) && !absl::IsDeadlineExceeded(st);
    source_error_ = err;
  }
}

TillSnapshot TillWatch::Gather(int64_t now_ms, bool poll_source) {
  if (db_ && poll_source) ReadSetDb(now_ms);
  TillSnapshot s;
  s.now_ms = now_ms;
  s.source_ok = source_ok_;
  s.source_answered = !source_ok_ && source_answered_;
  s.source_error = source_error_;
  auto [expected, reason] =
      expectation_ ? expectation_(now_ms) : std::make_pair(true, std::string("open"));
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
  MutexLock lock(&mu_);
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
    findings.insert(findings.begin(), check_findings_.begin(), check_findings_.end());
    check_findings_.clear();
    if (CommitFindings(outbox_, findings, "tills", options_.history.get()) > 0 && on_committed_)
      on_committed_();
    if (checks_state_ && outbox_.held() == 0) {
      checks_state_->Update(ExportChecksState(&sources_, &clock_skew_, &shops_), now,
                            clock_.MonotonicMs());
    }
    // After the commit: a crash in between may forget a raise, never invent
    // one. Not while the outbox holds findings in memory (full disk): a
    // restart would then restore a raise that was never stored or sent.
    if (state_ && outbox_.held() == 0)
      state_->Update(detector_.ExportState(), now, clock_.MonotonicMs());
    std::vector<std::string> stopped_addresses;
    for (const auto& v : detector_.tills()) {
      if (v.state == TillState::kStopped && !v.address.empty())
        stopped_addresses.push_back(v.address);
    }
    int64_t wait_ms = WaitBeforeNextEvaluation(clock_, next_poll_mono, detector_.NextDeadline(now),
                                               options_.poll_interval_ms);
    MutexLock lock(&mu_);
    stats_.evaluations++;
    stats_.findings += findings.size();
    stats_.last_source_error = source_error_;
    views_ = detector_.tills();
    bool new_stopped = false;
    for (const auto& a : stopped_addresses) {
      if (!probes_.contains(a)) new_stopped = true;
    }
    to_probe_ = std::move(stopped_addresses);
    if (new_stopped) cv_.SignalAll();  // the prober looks at new ones at once
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
    while (!stopping_ && cv_.WaitUntil(&mu_, until)) {
    }
    if (stopping_) return;
  }
}

bool TillWatch::NewTillToProbe() const {
  for (const auto& a : to_probe_) {
    if (!probes_.contains(a)) return true;
  }
  return false;
}

void TillWatch::ProbeLoop() {
  int64_t next_full = 0;
  while (true) {
    std::vector<std::string> addresses;
    {
      MutexLock lock(&mu_);
      if (stopping_) return;
      addresses = to_probe_;
    }
    bool full = clock_.MonotonicMs() >= next_full;
    std::vector<std::string> targets;
    {
      MutexLock lock(&mu_);
      for (const auto& a : addresses) {
        if (full || !probes_.contains(a)) targets.push_back(a);
      }
    }
    auto results = ProbeTcp(targets, options_.probe_port, options_.probe_timeout_ms);
    ServerState server =
        full ? CheckServer(options_.server, options_.probe_timeout_ms) : ServerState{};
    {
      MutexLock lock(&mu_);
      for (size_t i = 0; i < targets.size(); ++i) probes_[targets[i]] = results[i];
      // Forget tills that are no longer stopped: a later stop probes afresh.
      for (auto it = probes_.begin(); it != probes_.end();) {
        if (std::find(to_probe_.begin(), to_probe_.end(), it->first) == to_probe_.end())
          it = probes_.erase(it);
        else
          ++it;
      }
      if (full) {
        server_ = server;
        next_full = clock_.MonotonicMs() + options_.probe_every_ms;
      }
      const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
      while (!stopping_ && !NewTillToProbe()) {
        if (!cv_.WaitUntil(&mu_, until)) break;
      }
      if (stopping_) return;
    }
  }
}

}  // namespace setdiag::agent
