// The till watch's decisions as tables of (observations, now) -> findings,
// on explicit timestamps: no clock, no sleeps.

#include "agent/detectors/till_detector.h"

#include <gtest/gtest.h>

#include <ostream>
#include <set>

#include "agent/store/detector_state.h"

namespace setdiag::agent {

inline void PrintTo(const HeldEpisode& h, std::ostream* os) { *os << h.kind << " " << h.episode; }

namespace {

constexpr int64_t kT0 = 1'795'000'000'000;  // an arbitrary instant
constexpr int64_t kSec = 1000;

TillWatchPolicy Policy() {
  TillWatchPolicy p;
  p.heartbeat_timeout_ms = 10 * kSec;
  p.confirm_ms = 30 * kSec;
  p.clear_ms = 30 * kSec;
  p.single_till_ms = 600 * kSec;
  p.unreachable_confirm_ms = 15 * kSec;
  return p;
}

// A store of `n` tills; each till's last heartbeat is set per test.
struct Store {
  explicit Store(int n) {
    for (int i = 1; i <= n; ++i) {
      TillObservation t;
      t.number = i;
      t.address = "10.0.0." + std::to_string(10 + i);
      tills.push_back(t);
    }
  }
  // Every till heartbeats at `ms`.
  void AllBeatAt(int64_t ms) {
    for (auto& t : tills) t.last_heartbeat_ms = ms;
  }
  void Beat(std::initializer_list<int> numbers, int64_t ms) {
    for (int n : numbers) tills[static_cast<size_t>(n - 1)].last_heartbeat_ms = ms;
  }
  void BeatRange(int first, int last, int64_t ms) {
    for (int n = first; n <= last; ++n) tills[static_cast<size_t>(n - 1)].last_heartbeat_ms = ms;
  }
  void Mothball(int first, int last) {
    for (int n = first; n <= last; ++n)
      tills[static_cast<size_t>(n - 1)].roster = RosterStatus::kMothballed;
  }
  TillSnapshot At(int64_t now, bool expected = true, bool source_ok = true) const {
    TillSnapshot s;
    s.now_ms = now;
    s.tills = tills;
    s.expected = expected;
    s.expected_reason = expected ? "open" : "outside opening hours";
    s.source_ok = source_ok;
    if (!source_ok) s.source_error = "connection refused";
    return s;
  }
  std::vector<TillObservation> tills;
};

std::vector<std::string> Kinds(const std::vector<Finding>& f) {
  std::vector<std::string> out;
  for (const auto& x : f) out.push_back(x.kind + ":" + x.payload.value("state", ""));
  return out;
}

// Runs the detector at each second from `from` to `to` (inclusive), keeping
// the store as it is, and returns every finding with its time.
std::vector<Finding> RunSeconds(TillDetector& d, const Store& store, int64_t from, int64_t to) {
  std::vector<Finding> all;
  for (int64_t t = from; t <= to; t += kSec) {
    auto f = d.Evaluate(store.At(t));
    all.insert(all.end(), f.begin(), f.end());
  }
  return all;
}

// The same with the heartbeat source unreadable.
std::vector<Finding> RunSecondsDown(TillDetector& d, const Store& store, int64_t from, int64_t to) {
  std::vector<Finding> all;
  for (int64_t t = from; t <= to; t += kSec) {
    auto f = d.Evaluate(store.At(t, true, /*source_ok=*/false));
    all.insert(all.end(), f.begin(), f.end());
  }
  return all;
}

TEST(TillDetector, TenOfTwentyStoppedIsNotAMajority) {
  TillDetector d(Policy(), "a");
  Store store(20);
  store.AllBeatAt(kT0);
  EXPECT_TRUE(d.Evaluate(store.At(kT0)).empty());
  // Tills 11..20 keep beating; 1..10 went silent at kT0.
  for (int64_t t = kT0 + kSec; t <= kT0 + 300 * kSec; t += kSec) {
    store.BeatRange(11, 20, t);
    auto f = d.Evaluate(store.At(t));
    EXPECT_TRUE(f.empty()) << "at +" << (t - kT0) / kSec << "s: " << Kinds(f).size();
  }
  EXPECT_FALSE(d.majority_active());
}

TEST(TillDetector, ElevenOfTwentyAfterTheConfirmWindowIsCritical) {
  TillDetector d(Policy(), "agent-1");
  Store store(20);
  store.AllBeatAt(kT0);
  d.Evaluate(store.At(kT0));
  // Tills 1..11 fall silent at kT0; overdue (and so stopped) from kT0 + 10 s.
  // Onset = kT0 + 10 s; critical exactly when 30 s have passed since then.
  const int64_t onset = kT0 + 10 * kSec;
  std::vector<Finding> found;
  int64_t raised_at = 0;
  for (int64_t t = kT0 + kSec; t <= kT0 + 60 * kSec; t += 500) {
    store.BeatRange(12, 20, t);
    auto f = d.Evaluate(store.At(t));
    if (!f.empty() && raised_at == 0) raised_at = t;
    found.insert(found.end(), f.begin(), f.end());
  }
  ASSERT_EQ(found.size(), 1u) << "one critical, nothing else";
  const Finding& c = found[0];
  EXPECT_EQ(c.kind, "tills.majority_stopped");
  EXPECT_EQ(c.severity, Severity::kCritical);
  EXPECT_EQ(c.payload["state"], "raised");
  EXPECT_EQ(c.payload["onset_ms"], onset);
  // Confirmed 30 s after the agent first saw the majority: the first
  // evaluation after the onset, at +10.5 s.
  EXPECT_EQ(raised_at, onset + 500 + 30 * kSec);
  EXPECT_EQ(c.detected_at_ms, raised_at);
  EXPECT_EQ(c.payload["stopped"], 11);
  EXPECT_EQ(c.payload["expected"], 20);
  // Evidence: every stopped till with its address and last heartbeat.
  ASSERT_EQ(c.payload["stopped_tills"].size(), 11u);
  std::set<int> numbers;
  for (const auto& t : c.payload["stopped_tills"]) {
    numbers.insert(t["number"].get<int>());
    EXPECT_EQ(t["last_heartbeat_ms"], kT0);
    EXPECT_FALSE(t["address"].get<std::string>().empty());
  }
  EXPECT_EQ(numbers, (std::set<int>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}));
  EXPECT_TRUE(c.payload.contains("likely_cause"));
  EXPECT_TRUE(c.payload.contains("summary_ru"));
}

TEST(TillDetector, NextDeadlineIsTheInstantAHeartbeatFallsOverdue) {
  TillDetector d(Policy(), "a");
  Store store(4);
  store.AllBeatAt(kT0);
  d.Evaluate(store.At(kT0 + kSec));
  auto next = d.NextDeadline(kT0 + kSec);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(*next, kT0 + 10 * kSec + 1);  // strictly more than the timeout
}

TEST(TillDetector, FlappingInsideTheConfirmWindowRaisesNothing) {
  TillDetector d(Policy(), "a");
  Store store(20);
  store.AllBeatAt(kT0);
  // Tills 1..11 stop at kT0 (stopped from +10 s). Till 11 comes back for a
  // moment at +25 s and +50 s: the majority never lasts 30 s.
  std::vector<Finding> found;
  for (int64_t t = kT0 + kSec; t <= kT0 + 75 * kSec; t += kSec) {
    store.BeatRange(12, 20, t);
    if (t == kT0 + 25 * kSec || t == kT0 + 50 * kSec) store.Beat({11}, t);
    auto f = d.Evaluate(store.At(t));
    found.insert(found.end(), f.begin(), f.end());
  }
  EXPECT_TRUE(found.empty()) << Kinds(found).front();
  // Left alone, the majority is confirmed 30 s after it was seen again (till
  // 11 overdue from +60 s, seen at +61 s): at +91 s.
  for (int64_t t = kT0 + 76 * kSec; t <= kT0 + 90 * kSec; t += kSec) {
    store.BeatRange(12, 20, t);
    EXPECT_TRUE(d.Evaluate(store.At(t)).empty());
  }
  store.BeatRange(12, 20, kT0 + 91 * kSec);
  auto f = d.Evaluate(store.At(kT0 + 91 * kSec));
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].payload["onset_ms"], kT0 + 60 * kSec);
}

TEST(TillDetector, MothballedTillsAreNotExpected) {
  struct Case {
    int mothballed;  // tills 1..mothballed are CLOSED_DOWN
    int stopped;     // the next `stopped` active tills go silent
    bool critical;
  };
  const Case cases[] = {
      {10, 5, false},  // 5 of 10 expected
      {10, 6, true},   // 6 of 10 expected
      {11, 0, false},  // a mothballed majority, all silent: nothing
      {19, 1, true},   // 1 of 1 expected
      {20, 0, false},  // nothing expected at all
  };
  for (const auto& c : cases) {
    TillDetector d(Policy(), "a");
    Store store(20);
    store.AllBeatAt(kT0);
    store.Mothball(1, c.mothballed);
    std::vector<Finding> found;
    for (int64_t t = kT0 + kSec; t <= kT0 + 120 * kSec; t += kSec) {
      // Mothballed tills are silent; active ones after the stopped block beat.
      store.BeatRange(c.mothballed + c.stopped + 1, 20, t);
      auto f = d.Evaluate(store.At(t));
      found.insert(found.end(), f.begin(), f.end());
    }
    EXPECT_EQ(!found.empty(), c.critical)
        << "mothballed " << c.mothballed << ", stopped " << c.stopped;
    if (c.critical) {
      EXPECT_EQ(found[0].payload["expected"], 20 - c.mothballed);
      EXPECT_EQ(found[0].payload["mothballed"], c.mothballed);
    }
  }
}

TEST(TillDetector, ClosedHoursAndMaintenanceExpectNothing) {
  TillDetector d(Policy(), "a");
  Store store(20);
  store.AllBeatAt(kT0);
  // Closed: every till silent for an hour, nothing raised.
  for (int64_t t = kT0; t <= kT0 + 3600 * kSec; t += 10 * kSec) {
    EXPECT_TRUE(d.Evaluate(store.At(t, /*expected=*/false)).empty());
  }
  for (const auto& v : d.tills()) EXPECT_EQ(v.state, TillState::kNotExpected);
  // Opening: the tills get one heartbeat timeout of grace, then the confirm
  // window; those that switched on in time are fine.
  const int64_t open = kT0 + 3601 * kSec;
  std::vector<Finding> found;
  int64_t raised_at = 0;
  for (int64_t t = open; t <= open + 60 * kSec; t += kSec) {
    store.BeatRange(12, 20, t);  // 9 tills switched on
    auto f = d.Evaluate(store.At(t));
    if (!f.empty() && raised_at == 0) raised_at = t;
    found.insert(found.end(), f.begin(), f.end());
  }
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].payload["onset_ms"], open + 10 * kSec);
  EXPECT_EQ(raised_at, open + 41 * kSec);  // seen at +11 s, confirmed 30 s later
  // Maintenance opened by an engineer clears the condition and silences it.
  auto f = d.Evaluate(store.At(open + 61 * kSec, /*expected=*/false));
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].payload["state"], "cleared");
  for (int64_t t = open + 62 * kSec; t <= open + 600 * kSec; t += 10 * kSec) {
    EXPECT_TRUE(d.Evaluate(store.At(t, false)).empty());
  }
}

TEST(TillDetector, UnreadableSourceIsUnknownNotStopped) {
  TillDetector d(Policy(), "a");
  Store store(20);
  store.AllBeatAt(kT0);
  d.Evaluate(store.At(kT0));
  // The database goes away: heartbeats look ancient, yet no till condition.
  std::vector<Finding> found;
  for (int64_t t = kT0 + kSec; t <= kT0 + 600 * kSec; t += kSec) {
    auto f = d.Evaluate(store.At(t, true, /*source_ok=*/false));
    found.insert(found.end(), f.begin(), f.end());
  }
  ASSERT_EQ(found.size(), 1u) << "only the database condition";
  EXPECT_EQ(found[0].kind, "set.db_unreachable");
  EXPECT_EQ(found[0].severity, Severity::kImportant);
  EXPECT_EQ(found[0].detected_at_ms, kT0 + 16 * kSec);  // failing since +1 s, confirmed 15 s later
  for (const auto& v : d.tills()) EXPECT_EQ(v.state, TillState::kUnknown);
  // Back with fresh heartbeats: the database condition clears, nothing else.
  store.AllBeatAt(kT0 + 601 * kSec);
  auto back = d.Evaluate(store.At(kT0 + 601 * kSec));
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].kind, "set.db_unreachable");
  EXPECT_EQ(back[0].payload["state"], "cleared");
}

// A database that answers but whose data cannot be used (a query that does
// not fit this SET version, several shops) leaves the tills unknown without
// calling the database unreachable: agent.source_failed / set.shop_ambiguous
// say what is wrong. An unreachable condition already raised clears.
TEST(TillDetector, ADatabaseThatAnswersWithUnusableDataIsNotUnreachable) {
  TillDetector d(Policy(), "a");
  Store store(20);
  store.AllBeatAt(kT0);
  d.Evaluate(store.At(kT0));
  std::vector<Finding> found;
  for (int64_t t = kT0 + kSec; t <= kT0 + 120 * kSec; t += kSec) {
    TillSnapshot s = store.At(t, true, /*source_ok=*/false);
    s.source_answered = true;
    s.source_error = "SET database 'set_operday': od_cash_status.lastactivity is missing";
    auto f = d.Evaluate(s);
    found.insert(found.end(), f.begin(), f.end());
  }
  EXPECT_TRUE(found.empty()) << ::testing::PrintToString(Kinds(found));
  for (const auto& v : d.tills()) EXPECT_EQ(v.state, TillState::kUnknown);

  // Really unreachable: raised after its confirm window...
  auto down = RunSecondsDown(d, store, kT0 + 121 * kSec, kT0 + 140 * kSec);
  ASSERT_EQ(Kinds(down), std::vector<std::string>{"set.db_unreachable:raised"});
  EXPECT_EQ(down[0].payload["since_ms"], kT0 + 121 * kSec);
  // ...and cleared once the database answers again, even with unusable data.
  TillSnapshot misfit = store.At(kT0 + 141 * kSec, true, /*source_ok=*/false);
  misfit.source_answered = true;
  auto back = d.Evaluate(misfit);
  ASSERT_EQ(Kinds(back), std::vector<std::string>{"set.db_unreachable:cleared"});
  EXPECT_EQ(back[0].payload["since_ms"], kT0 + 121 * kSec);
}

TEST(TillDetector, ClearsAfterTheClearWindowWithTheSameEpisode) {
  TillDetector d(Policy(), "a");
  Store store(20);
  store.AllBeatAt(kT0);
  auto raised = RunSeconds(d, store, kT0, kT0 + 45 * kSec);  // all 20 silent
  ASSERT_EQ(raised.size(), 1u);
  std::string episode = raised[0].payload["episode"];
  // All come back at +50 s and keep beating.
  std::vector<Finding> found;
  int64_t cleared_at = 0;
  for (int64_t t = kT0 + 50 * kSec; t <= kT0 + 100 * kSec; t += kSec) {
    store.AllBeatAt(t);
    auto f = d.Evaluate(store.At(t));
    if (!f.empty()) cleared_at = t;
    found.insert(found.end(), f.begin(), f.end());
  }
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].payload["state"], "cleared");
  EXPECT_EQ(found[0].payload["episode"], episode);
  EXPECT_EQ(cleared_at, kT0 + 80 * kSec);
}

TEST(TillDetector, ASingleStoppedTillIsNormalAndEscalatesInTheSameEpisode) {
  TillDetector d(Policy(), "a");
  Store store(20);
  store.AllBeatAt(kT0);
  // Till 1 stops at kT0 (stopped from +10 s); normal after 10 minutes.
  std::vector<Finding> found;
  for (int64_t t = kT0 + kSec; t <= kT0 + 700 * kSec; t += kSec) {
    store.BeatRange(2, 20, t);
    auto f = d.Evaluate(store.At(t));
    found.insert(found.end(), f.begin(), f.end());
  }
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].kind, "tills.till_stopped");
  EXPECT_EQ(found[0].severity, Severity::kNormal);
  EXPECT_EQ(found[0].detected_at_ms, kT0 + 611 * kSec);  // seen stopped at +11 s, 10 min later
  EXPECT_EQ(found[0].payload["till"], 1);
  std::string episode = found[0].payload["episode"];
  // Ten more stop: the same episode escalates to critical.
  found.clear();
  for (int64_t t = kT0 + 701 * kSec; t <= kT0 + 800 * kSec; t += kSec) {
    store.BeatRange(12, 20, t);
    auto f = d.Evaluate(store.At(t));
    found.insert(found.end(), f.begin(), f.end());
  }
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].kind, "tills.majority_stopped");
  EXPECT_EQ(found[0].payload["state"], "escalated");
  EXPECT_EQ(found[0].payload["episode"], episode);
}

TEST(TillDetector, HeartbeatsThatAllLookOldAtOnceAreConfirmedNotBelieved) {
  // A forward step of the clock (or one stale read) makes every heartbeat
  // look an hour old in a single evaluation: no instant critical.
  TillDetector d(Policy(), "a");
  Store store(20);
  store.AllBeatAt(kT0);
  EXPECT_TRUE(d.Evaluate(store.At(kT0 + kSec)).empty());
  EXPECT_TRUE(d.Evaluate(store.At(kT0 + 3600 * kSec)).empty());
  // The tills keep beating on the new clock: nothing is ever raised.
  for (int64_t t = kT0 + 3601 * kSec; t <= kT0 + 3700 * kSec; t += kSec) {
    store.AllBeatAt(t);
    EXPECT_TRUE(d.Evaluate(store.At(t)).empty());
  }
}

TEST(TillDetector, NeverReportingTillsCountAsStoppedAfterTheirGrace) {
  TillDetector d(Policy(), "a");
  Store store(3);  // nobody ever reports
  std::vector<Finding> found = RunSeconds(d, store, kT0, kT0 + 39 * kSec);
  EXPECT_TRUE(found.empty());
  auto f = d.Evaluate(store.At(kT0 + 41 * kSec));
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].payload["stopped"], 3);
}

TEST(TillDetector, LikelyCauseFollowsTheEvidence) {
  struct Case {
    bool server_down;
    ProbeResult probe;
    const char* cause;
  };
  const Case cases[] = {
      {true, ProbeResult::kAnswers, "server"},
      {false, ProbeResult::kNoAnswer, "network_or_power"},
      {false, ProbeResult::kRefused, "network_or_power"},
      {false, ProbeResult::kAnswers, "tills"},
      {false, ProbeResult::kNotProbed, "unknown"},
  };
  for (const auto& c : cases) {
    TillDetector d(Policy(), "a");
    Store store(4);
    store.AllBeatAt(kT0);
    for (auto& t : store.tills) t.probe = c.probe;
    std::vector<Finding> found;
    for (int64_t t = kT0; t <= kT0 + 45 * kSec; t += kSec) {
      TillSnapshot s = store.At(t);
      s.server.known = true;
      s.server.deployed = !c.server_down;
      s.server.port_8090 = !c.server_down;
      auto f = d.Evaluate(s);
      found.insert(found.end(), f.begin(), f.end());
    }
    ASSERT_EQ(found.size(), 1u);
    EXPECT_EQ(found[0].payload["likely_cause"]["code"], c.cause);
    EXPECT_FALSE(found[0].payload["likely_cause"]["ru"].get<std::string>().empty());
  }
}

// --- Restarts: the state a new process restores (agent/store/detector_state.h) ---

// What a restart carries: the exported state, through its stored text.
nlohmann::json Persisted(const TillDetector& d) {
  return nlohmann::json::parse(d.ExportState().dump());
}

std::vector<HeldEpisode> Held(const TillDetector& d) { return HeldEpisodesOf(d.ExportState()); }

TEST(TillDetectorRestart, ARestoredMajorityClearsWithItsEpisodeAfterTheClearWindow) {
  TillDetector d1(Policy(), "agent-1");
  Store store(20);
  store.AllBeatAt(kT0);
  auto raised = RunSeconds(d1, store, kT0, kT0 + 45 * kSec);  // all 20 silent: raised at +41 s
  ASSERT_EQ(Kinds(raised), std::vector<std::string>{"tills.majority_stopped:raised"});
  const std::string episode = raised[0].payload["episode"];
  const int64_t onset = raised[0].payload["onset_ms"];
  EXPECT_EQ(Held(d1), (std::vector<HeldEpisode>{{"tills.majority_stopped", episode}}));
  // The tills recover at +50 s; the agent restarts at +55 s, before its
  // clear window (30 s) has passed.
  for (int64_t t = kT0 + 50 * kSec; t <= kT0 + 55 * kSec; t += kSec) {
    store.AllBeatAt(t);
    ASSERT_TRUE(d1.Evaluate(store.At(t)).empty());
  }
  nlohmann::json state = Persisted(d1);

  TillDetector d2(Policy(), "agent-1");
  ASSERT_TRUE(d2.RestoreState(state).ok());
  EXPECT_TRUE(d2.majority_active());
  EXPECT_EQ(Held(d2), Held(d1));
  std::vector<Finding> found;
  int64_t cleared_at = 0;
  for (int64_t t = kT0 + 56 * kSec; t <= kT0 + 120 * kSec; t += kSec) {
    store.AllBeatAt(t);
    auto f = d2.Evaluate(store.At(t));
    if (!f.empty()) cleared_at = t;
    found.insert(found.end(), f.begin(), f.end());
  }
  ASSERT_EQ(Kinds(found), std::vector<std::string>{"tills.majority_stopped:cleared"});
  EXPECT_EQ(found[0].payload["episode"], episode);
  EXPECT_EQ(found[0].payload["onset_ms"], onset);
  EXPECT_EQ(cleared_at, kT0 + 86 * kSec);  // the new process's own clear window, from +56 s
  EXPECT_TRUE(Held(d2).empty());
}

TEST(TillDetectorRestart, ARestoredMajorityThatStillHoldsIsNotRaisedAgain) {
  TillDetector d1(Policy(), "agent-1");
  Store store(20);
  store.AllBeatAt(kT0);
  auto raised = RunSeconds(d1, store, kT0, kT0 + 45 * kSec);
  ASSERT_EQ(raised.size(), 1u);
  const std::string episode = raised[0].payload["episode"];

  TillDetector d2(Policy(), "agent-1");
  ASSERT_TRUE(d2.RestoreState(Persisted(d1)).ok());
  // Still silent after the restart at +60 s: nothing new, ever.
  auto quiet = RunSeconds(d2, store, kT0 + 60 * kSec, kT0 + 300 * kSec);
  EXPECT_TRUE(quiet.empty()) << Kinds(quiet).front();
  EXPECT_TRUE(d2.majority_active());
  // They come back: the same episode clears.
  std::vector<Finding> found;
  for (int64_t t = kT0 + 301 * kSec; t <= kT0 + 340 * kSec; t += kSec) {
    store.AllBeatAt(t);
    auto f = d2.Evaluate(store.At(t));
    found.insert(found.end(), f.begin(), f.end());
  }
  ASSERT_EQ(Kinds(found), std::vector<std::string>{"tills.majority_stopped:cleared"});
  EXPECT_EQ(found[0].payload["episode"], episode);
}

TEST(TillDetectorRestart, ARestoredMajorityStaysActiveThroughTheStartGrace) {
  // A clear window shorter than the heartbeat timeout: tills in their grace
  // after the restart are not "up", so they must not clear the condition.
  TillWatchPolicy p = Policy();
  p.heartbeat_timeout_ms = 60 * kSec;
  p.confirm_ms = 5 * kSec;
  p.clear_ms = 5 * kSec;
  TillDetector d1(p, "agent-1");
  Store store(20);
  store.AllBeatAt(kT0);
  auto raised = RunSeconds(d1, store, kT0, kT0 + 70 * kSec);  // stopped from +60 s, raised at +66 s
  ASSERT_EQ(raised.size(), 1u);
  const std::string episode = raised[0].payload["episode"];

  TillDetector d2(p, "agent-1");
  ASSERT_TRUE(d2.RestoreState(Persisted(d1)).ok());
  // Restarted at +80 s, tills still silent: unknown until +140 s, then
  // stopped again. Neither clears nor raises.
  auto quiet = RunSeconds(d2, store, kT0 + 80 * kSec, kT0 + 200 * kSec);
  EXPECT_TRUE(quiet.empty()) << Kinds(quiet).front();
  EXPECT_TRUE(d2.majority_active());
  // Seen up again: cleared after the clear window.
  std::vector<Finding> found;
  for (int64_t t = kT0 + 201 * kSec; t <= kT0 + 210 * kSec; t += kSec) {
    store.AllBeatAt(t);
    auto f = d2.Evaluate(store.At(t));
    found.insert(found.end(), f.begin(), f.end());
  }
  ASSERT_EQ(Kinds(found), std::vector<std::string>{"tills.majority_stopped:cleared"});
  EXPECT_EQ(found[0].payload["episode"], episode);
}

TEST(TillDetectorRestart, ARestoredSingleTillAndDatabaseConditionClearWithTheirEpisodes) {
  TillDetector d1(Policy(), "agent-1");
  Store store(20);
  store.AllBeatAt(kT0);
  std::vector<Finding> found;
  for (int64_t t = kT0 + kSec; t <= kT0 + 620 * kSec;
       t += kSec) {  // till 1 silent: normal at +611 s
    store.BeatRange(2, 20, t);
    auto f = d1.Evaluate(store.At(t));
    found.insert(found.end(), f.begin(), f.end());
  }
  ASSERT_EQ(Kinds(found), std::vector<std::string>{"tills.till_stopped:raised"});
  const std::string episode = found[0].payload["episode"];
  EXPECT_EQ(Held(d1), (std::vector<HeldEpisode>{{"tills.till_stopped", episode}}));
  const nlohmann::json state = Persisted(d1);

  {  // Still silent after the restart: not raised again.
    TillDetector d2(Policy(), "agent-1");
    ASSERT_TRUE(d2.RestoreState(state).ok());
    std::vector<Finding> again;
    for (int64_t t = kT0 + 630 * kSec; t <= kT0 + 1400 * kSec; t += kSec) {
      store.BeatRange(2, 20, t);
      auto f = d2.Evaluate(store.At(t));
      again.insert(again.end(), f.begin(), f.end());
    }
    EXPECT_TRUE(again.empty()) << Kinds(again).front();
    EXPECT_EQ(Held(d2), Held(d1));
  }
  {  // Back: cleared at once, in the same episode.
    TillDetector d2(Policy(), "agent-1");
    ASSERT_TRUE(d2.RestoreState(state).ok());
    store.AllBeatAt(kT0 + 630 * kSec);
    auto f = d2.Evaluate(store.At(kT0 + 630 * kSec));
    ASSERT_EQ(Kinds(f), std::vector<std::string>{"tills.till_stopped:cleared"});
    EXPECT_EQ(f[0].payload["episode"], episode);
    EXPECT_EQ(f[0].payload["till"], 1);
  }

  // The database condition: the collector names it by agent, kind and since.
  TillDetector d3(Policy(), "agent-1");
  store.AllBeatAt(kT0);
  d3.Evaluate(store.At(kT0));
  std::vector<Finding> db;
  for (int64_t t = kT0 + kSec; t <= kT0 + 20 * kSec; t += kSec) {
    auto f = d3.Evaluate(store.At(t, true, /*source_ok=*/false));
    db.insert(db.end(), f.begin(), f.end());
  }
  ASSERT_EQ(Kinds(db), std::vector<std::string>{"set.db_unreachable:raised"});
  EXPECT_EQ(Held(d3),
            (std::vector<HeldEpisode>{{"set.db_unreachable", "agent-1-set.db_unreachable-" +
                                                                 std::to_string(kT0 + kSec)}}));
  {
    TillDetector d4(Policy(), "agent-1");
    ASSERT_TRUE(d4.RestoreState(Persisted(d3)).ok());
    auto down = RunSecondsDown(d4, store, kT0 + 30 * kSec, kT0 + 100 * kSec);
    EXPECT_TRUE(down.empty()) << "still down: not raised again";
    store.AllBeatAt(kT0 + 101 * kSec);
    auto f = d4.Evaluate(store.At(kT0 + 101 * kSec));
    ASSERT_EQ(Kinds(f), std::vector<std::string>{"set.db_unreachable:cleared"});
    EXPECT_EQ(f[0].payload["since_ms"], kT0 + kSec);
  }
}

TEST(TillDetectorRestart, ExportedStateChangesOnlyWithTheConditions) {
  TillDetector d(Policy(), "a");
  Store store(20);
  store.AllBeatAt(kT0);
  const nlohmann::json idle = d.ExportState();
  RunSeconds(d, store, kT0, kT0 + 40 * kSec);
  EXPECT_EQ(d.ExportState(), idle) << "a majority not yet confirmed is not state to keep";
  RunSeconds(d, store, kT0 + 41 * kSec, kT0 + 41 * kSec);
  const nlohmann::json active = d.ExportState();
  EXPECT_NE(active, idle);
  RunSeconds(d, store, kT0 + 42 * kSec, kT0 + 100 * kSec);
  EXPECT_EQ(d.ExportState(), active);
}

TEST(TillDetectorRestart, AMalformedStateIsRefusedAndNothingRestored) {
  using nlohmann::json;
  const json bad[] = {
      json("text"),
      json{{"version", 2}, {"held", json::array()}},
      json{{"version", 1}, {"majority", {{"onset_ms", 5}}}},  // no episode
      json{{"version", 1}, {"episode", "e"}, {"majority", {{"onset_ms", "x"}}}},
      json{{"version", 1}, {"episode", "e"}, {"till_stopped", {1, "two"}}},
  };
  for (const auto& b : bad) {
    TillDetector d(Policy(), "a");
    auto st = d.RestoreState(b);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << b.dump();
    EXPECT_FALSE(d.majority_active());
    EXPECT_TRUE(Held(d).empty()) << b.dump();
  }
  TillDetector d(Policy(), "a");
  Store store(2);
  store.AllBeatAt(kT0);
  d.Evaluate(store.At(kT0));
  EXPECT_EQ(d.RestoreState(json{{"version", 1}}).code(), absl::StatusCode::kFailedPrecondition);
}

// --- Grace after SET's database comes back, and after the agent starts ---

TEST(TillDetectorGrace, HeartbeatsResumingAfterTheDatabaseReturnsRaiseNothing) {
  TillDetector d(Policy(), "a");
  Store store(20);
  for (int64_t t = kT0; t <= kT0 + 100 * kSec; t += kSec) {
    store.AllBeatAt(t);
    ASSERT_TRUE(d.Evaluate(store.At(t)).empty());
  }
  // Down from +101 s to +400 s: nobody can report.
  auto down = RunSecondsDown(d, store, kT0 + 101 * kSec, kT0 + 400 * kSec);
  ASSERT_EQ(Kinds(down), std::vector<std::string>{"set.db_unreachable:raised"});
  // Readable again at +401 s; the tills reconnect and report from +432 s,
  // a little later than the confirm window (30 s).
  std::vector<Finding> found;
  for (int64_t t = kT0 + 401 * kSec; t <= kT0 + 500 * kSec; t += kSec) {
    if (t >= kT0 + 432 * kSec) store.AllBeatAt(t);
    auto f = d.Evaluate(store.At(t));
    found.insert(found.end(), f.begin(), f.end());
  }
  EXPECT_EQ(Kinds(found), std::vector<std::string>{"set.db_unreachable:cleared"});
  EXPECT_FALSE(d.majority_active());
}

// A flaky database (one failed poll every 20 s, shorter than
// unreachable_confirm) gives no grace: 12 of 20 tills that stopped are
// still raised, as without the blips, within timeout + confirm + a blip.
TEST(TillDetectorGrace, BriefFailedPollsDoNotPostponeAStoppedMajority) {
  TillDetector d(Policy(), "a");
  Store store(20);
  for (int64_t t = kT0; t <= kT0 + 100 * kSec; t += kSec) {
    store.AllBeatAt(t);
    ASSERT_TRUE(d.Evaluate(store.At(t)).empty());
  }
  // Tills 1..12 stop at +100 s; the others keep beating.
  std::vector<Finding> found;
  for (int64_t t = kT0 + 101 * kSec; t <= kT0 + 400 * kSec; t += kSec) {
    store.BeatRange(13, 20, t);
    const bool blip = (t / kSec) % 20 == 0;
    auto f = d.Evaluate(store.At(t, true, /*source_ok=*/!blip));
    found.insert(found.end(), f.begin(), f.end());
  }
  ASSERT_EQ(Kinds(found), std::vector<std::string>{"tills.majority_stopped:raised"});
  // Overdue after +110 s, confirmed 30 s later (a blip at that instant
  // delays the decision by its one second).
  EXPECT_LE(found[0].detected_at_ms, kT0 + 142 * kSec);
  EXPECT_GE(found[0].payload["onset_ms"].get<int64_t>(), kT0 + 110 * kSec);
  EXPECT_LE(found[0].payload["onset_ms"].get<int64_t>(), kT0 + 111 * kSec);
}

TEST(TillDetectorGrace, TillsSilentAfterTheGraceAreCriticalWithAnOnsetAfterTheOutage) {
  TillDetector d(Policy(), "a");
  Store store(20);
  for (int64_t t = kT0; t <= kT0 + 100 * kSec; t += kSec) {
    store.AllBeatAt(t);
    d.Evaluate(store.At(t));
  }
  RunSecondsDown(d, store, kT0 + 101 * kSec, kT0 + 400 * kSec);
  // Back at +401 s; the tills stay silent. In their grace they are unknown.
  d.Evaluate(store.At(kT0 + 401 * kSec));
  for (const auto& v : d.tills()) EXPECT_EQ(v.state, TillState::kUnknown) << v.number;
  std::vector<Finding> found;
  int64_t raised_at = 0;
  for (int64_t t = kT0 + 402 * kSec; t <= kT0 + 500 * kSec; t += kSec) {
    auto f = d.Evaluate(store.At(t));
    for (const auto& x : f) {
      if (x.kind == "tills.majority_stopped") raised_at = t;
    }
    found.insert(found.end(), f.begin(), f.end());
  }
  ASSERT_EQ(Kinds(found), std::vector<std::string>{"tills.majority_stopped:raised"});
  // Stopped one timeout after the return (+411 s), seen at +412 s,
  // confirmed 30 s later.
  EXPECT_EQ(found[0].payload["onset_ms"], kT0 + 411 * kSec);
  EXPECT_GE(found[0].payload["onset_ms"].get<int64_t>(), kT0 + 401 * kSec)
      << "onset not inside the outage";
  EXPECT_EQ(raised_at, kT0 + 442 * kSec);
  EXPECT_EQ(found[0].payload["stopped"], 20);
}

TEST(TillDetectorGrace, TillsAlreadyStoppedBeforeTheOutageGetNoGrace) {
  TillDetector d(Policy(), "a");
  Store store(20);
  store.AllBeatAt(kT0);
  d.Evaluate(store.At(kT0));
  for (int64_t t = kT0 + kSec; t <= kT0 + 20 * kSec; t += kSec) {  // 1..11 silent from kT0
    store.BeatRange(12, 20, t);
    d.Evaluate(store.At(t));
  }
  RunSecondsDown(d, store, kT0 + 21 * kSec, kT0 + 25 * kSec);
  std::vector<Finding> found;
  int64_t raised_at = 0;
  for (int64_t t = kT0 + 26 * kSec; t <= kT0 + 70 * kSec; t += kSec) {
    store.BeatRange(12, 20, t);
    auto f = d.Evaluate(store.At(t));
    if (!f.empty() && raised_at == 0) raised_at = t;
    found.insert(found.end(), f.begin(), f.end());
    if (t == kT0 + 26 * kSec) {
      for (const auto& v : d.tills()) {
        EXPECT_EQ(v.state, v.number <= 11 ? TillState::kStopped : TillState::kUp) << v.number;
      }
    }
  }
  ASSERT_EQ(Kinds(found), std::vector<std::string>{"tills.majority_stopped:raised"});
  EXPECT_EQ(found[0].payload["onset_ms"], kT0 + 10 * kSec);
  // The 5 s outage is shorter than unreachable_confirm: it only paused the
  // confirm window, which runs from +11 s (the majority first seen).
  EXPECT_EQ(raised_at, kT0 + 41 * kSec);
}

TEST(TillDetectorGrace, AnAgentStartingWithStaleHeartbeatsGivesThemATimeout) {
  Store store(20);
  store.AllBeatAt(kT0 - 3600 * kSec);  // an hour old when the agent starts at kT0
  {
    TillDetector d(Policy(), "a");
    std::vector<Finding> found;
    for (int64_t t = kT0; t <= kT0 + 100 * kSec; t += kSec) {
      if (t >= kT0 + 31 * kSec) store.AllBeatAt(t);  // the tills report after the confirm window
      auto f = d.Evaluate(store.At(t));
      found.insert(found.end(), f.begin(), f.end());
    }
    EXPECT_TRUE(found.empty()) << Kinds(found).front();
  }
  store.AllBeatAt(kT0 - 3600 * kSec);
  {
    TillDetector d(Policy(), "a");
    std::vector<Finding> found;
    int64_t raised_at = 0;
    for (int64_t t = kT0; t <= kT0 + 100 * kSec; t += kSec) {
      auto f = d.Evaluate(store.At(t));
      if (!f.empty() && raised_at == 0) raised_at = t;
      found.insert(found.end(), f.begin(), f.end());
    }
    ASSERT_EQ(Kinds(found), std::vector<std::string>{"tills.majority_stopped:raised"});
    EXPECT_EQ(found[0].payload["onset_ms"], kT0 + 10 * kSec);
    EXPECT_EQ(raised_at, kT0 + 41 * kSec);
  }
}

}  // namespace
}  // namespace setdiag::agent
