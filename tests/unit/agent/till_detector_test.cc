// The till watch's decisions as tables of (observations, now) -> findings,
// on explicit timestamps: no clock, no sleeps.

#include "agent/till_detector.h"

#include <gtest/gtest.h>

#include <set>

namespace setdiag::agent {
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
    for (int n = first; n <= last; ++n) tills[static_cast<size_t>(n - 1)].roster = RosterStatus::kMothballed;
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
    EXPECT_EQ(!found.empty(), c.critical) << "mothballed " << c.mothballed << ", stopped " << c.stopped;
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

}  // namespace
}  // namespace setdiag::agent
