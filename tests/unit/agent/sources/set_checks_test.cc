// How the agent reads SET's data: failing sources, clocks and time zones,
// several shops in one database (agent/sources/set_checks.h). Pure logic on a fake
// clock.

#include "agent/sources/set_checks.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "common/clock.h"

namespace setdiag::agent {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;
constexpr int64_t kHour = 3'600'000;

std::string State(const Finding& f) { return f.payload.value("state", ""); }

class SourceHealthTest : public ::testing::Test {
 protected:
  FakeClock clock_;
  SourceHealth health_{"agent-1", 10'000};
  SourceSpec activity_ = QuerySource("tills", SetSource::kActivity);
  absl::Status missing_ = absl::FailedPreconditionError(
      "SET database 'set_operday': set_db.activity_query failed: ERROR: column \"lastping\" does "
      "not exist");

  std::vector<Finding> Observe(const SourceSpec& s, const absl::Status& st) {
    return health_.Observe(s, st, clock_.NowMs());
  }
};

TEST_F(SourceHealthTest, RepeatedFailuresRaiseOnceWithKeyErrorAndFixThenClear) {
  // Three failures are not enough before the confirm window has passed.
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(Observe(activity_, missing_).empty()) << i;
    clock_.Advance(std::chrono::milliseconds(2000));
  }
  // 10 s after the first failure, with more than three in a row: raised.
  auto raised = Observe(activity_, missing_);
  ASSERT_EQ(raised.size(), 1u);
  const Finding& f = raised[0];
  EXPECT_EQ(f.kind, "agent.source_failed");
  EXPECT_EQ(f.severity, Severity::kImportant);
  EXPECT_EQ(State(f), "raised");
  EXPECT_EQ(f.payload["source"], "tills.activity");
  EXPECT_EQ(f.payload["config_key"], "set_db.activity_query");
  EXPECT_THAT(f.payload["error"].get<std::string>(), HasSubstr("lastping"));
  EXPECT_THAT(f.payload["fix_en"].get<std::string>(), HasSubstr("set_db.activity_query"));
  EXPECT_THAT(f.payload["fix_ru"].get<std::string>(), HasSubstr("set_db.activity_query"));
  EXPECT_FALSE(f.payload["summary_ru"].get<std::string>().empty());
  EXPECT_EQ(f.payload["since_ms"], clock_.NowMs() - 10'000);
  const std::string episode = f.payload["episode"];
  EXPECT_TRUE(health_.active("tills.activity"));

  // Further failures: nothing new.
  clock_.Advance(std::chrono::milliseconds(1000));
  EXPECT_TRUE(Observe(activity_, missing_).empty());
  // The first success clears it with the same episode.
  clock_.Advance(std::chrono::milliseconds(1000));
  auto cleared = Observe(activity_, absl::OkStatus());
  ASSERT_EQ(cleared.size(), 1u);
  EXPECT_EQ(State(cleared[0]), "cleared");
  EXPECT_EQ(cleared[0].payload["episode"], episode);
  EXPECT_EQ(cleared[0].payload["source"], "tills.activity");
  EXPECT_FALSE(health_.active("tills.activity"));
  EXPECT_TRUE(Observe(activity_, absl::OkStatus()).empty());
}

TEST_F(SourceHealthTest, AnUnreachableDatabaseIsNotASourceFailure) {
  for (int i = 0; i < 20; ++i) {
    EXPECT_TRUE(Observe(activity_, absl::UnavailableError("connection refused")).empty());
    clock_.Advance(std::chrono::milliseconds(2000));
  }
  EXPECT_FALSE(health_.active("tills.activity"));
}

TEST_F(SourceHealthTest, ASuccessInBetweenStartsTheCountAgain) {
  Observe(activity_, missing_);
  clock_.Advance(std::chrono::milliseconds(6000));
  Observe(activity_, missing_);
  clock_.Advance(std::chrono::milliseconds(1000));
  Observe(activity_, absl::OkStatus());
  clock_.Advance(std::chrono::milliseconds(6000));
  // 13 s after the first failure, but only the first of a new streak.
  EXPECT_TRUE(Observe(activity_, missing_).empty());
}

TEST_F(SourceHealthTest, EachSourceHasItsOwnEpisode) {
  SourceSpec transport = QuerySource("loading", SetSource::kTransport);
  SourceSpec inbox = InboxSource("/var/lib/jboss/products/source");
  std::vector<Finding> all;
  for (int i = 0; i < 4; ++i) {
    for (const auto* s : {&transport, &inbox}) {
      auto f = Observe(*s, absl::FailedPreconditionError("broken"));
      all.insert(all.end(), f.begin(), f.end());
    }
    clock_.Advance(std::chrono::milliseconds(5000));
  }
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].payload["config_key"], "set_db.transport_query");
  EXPECT_EQ(all[1].payload["config_key"], "loading.inboxes");
  EXPECT_NE(all[0].payload["episode"], all[1].payload["episode"]);
  // Only the folder comes back.
  auto cleared = Observe(inbox, absl::OkStatus());
  ASSERT_EQ(cleared.size(), 1u);
  EXPECT_EQ(cleared[0].payload["source"], "loading.inbox:/var/lib/jboss/products/source");
  EXPECT_TRUE(health_.active("loading.transport"));
}

TEST_F(SourceHealthTest, ARestoredFailureClearsWithItsEpisodeAndIsNotRaisedAgain) {
  for (int i = 0; i < 4; ++i) {
    Observe(activity_, missing_);
    clock_.Advance(std::chrono::milliseconds(5000));
  }
  ASSERT_TRUE(health_.active("tills.activity"));
  json state = ExportChecksState(&health_, nullptr, nullptr);
  ASSERT_EQ(state["held"].size(), 1u);
  EXPECT_EQ(state["held"][0]["kind"], "agent.source_failed");
  const std::string episode = state["held"][0]["episode"];

  SourceHealth next("agent-1", 10'000);
  RestoreChecksState(state, &next, nullptr, nullptr);
  EXPECT_TRUE(next.Observe(activity_, missing_, clock_.NowMs()).empty())
      << "still failing: nothing new";
  auto cleared = next.Observe(activity_, absl::OkStatus(), clock_.NowMs());
  ASSERT_EQ(cleared.size(), 1u);
  EXPECT_EQ(cleared[0].payload["episode"], episode);
  EXPECT_TRUE(ExportChecksState(&next, nullptr, nullptr)["held"].empty());
}

class ClockSkewTest : public ::testing::Test {
 protected:
  FakeClock clock_;
  ClockSkewDetector detector_{ClockSkewPolicy{120'000, 30'000, 30'000}, "agent-1"};

  ClockObservation Obs(std::optional<int64_t> db_offset, std::vector<int64_t> leads_ms) {
    ClockObservation o;
    o.now_ms = clock_.NowMs();
    o.db_offset_ms = db_offset;
    for (int64_t l : leads_ms) o.heartbeats_ms.push_back(o.now_ms + l);
    o.reading_zone = "the session's TimeZone (UTC)";
    o.session_time_zone = "UTC";
    return o;
  }
  // Evaluates every 5 s for `ms`, returning all findings.
  std::vector<Finding> Run(int64_t ms, std::optional<int64_t> db_offset,
                           std::vector<int64_t> leads) {
    std::vector<Finding> out;
    for (int64_t t = 0; t <= ms; t += 5000) {
      auto f = detector_.Evaluate(Obs(db_offset, leads));
      out.insert(out.end(), f.begin(), f.end());
      if (t < ms) clock_.Advance(std::chrono::milliseconds(5000));
    }
    return out;
  }
};

TEST_F(ClockSkewTest, MoscowTimeReadAsUtcIsATimeZoneMismatch) {
  // Naive Moscow time read as UTC: every heartbeat 3 h (minus a few seconds)
  // in the future while the clocks agree.
  const int64_t lead = 3 * kHour - 4000;
  EXPECT_TRUE(Run(25'000, 10, {lead, lead - 500, -60'000}).empty())
      << "not before the confirm window";
  auto raised = Run(5000, 10, {lead, lead - 500, -60'000});
  ASSERT_EQ(raised.size(), 1u);
  const Finding& f = raised[0];
  EXPECT_EQ(f.kind, "set.clock_skew");
  EXPECT_EQ(f.severity, Severity::kImportant);
  EXPECT_EQ(State(f), "raised");
  EXPECT_EQ(f.payload["likely_cause"]["code"], "time_zone");
  EXPECT_EQ(f.payload["tills_ahead"], 2);
  EXPECT_EQ(f.payload["heartbeat_lead_ms"], lead);
  EXPECT_THAT(f.payload["fix_en"].get<std::string>(), HasSubstr("set_db.time_zone"));
  EXPECT_THAT(f.payload["fix_ru"].get<std::string>(), HasSubstr("set_db.time_zone"));
  EXPECT_THAT(f.payload["summary_en"].get<std::string>(), HasSubstr("future"));
  const std::string episode = f.payload["episode"];

  // Fixed (heartbeats in the past again): cleared after the clear window.
  EXPECT_TRUE(Run(25'000, 10, {-1000, -2000}).empty());
  auto cleared = Run(5000, 10, {-1000});
  ASSERT_EQ(cleared.size(), 1u);
  EXPECT_EQ(State(cleared[0]), "cleared");
  EXPECT_EQ(cleared[0].payload["episode"], episode);
}

TEST_F(ClockSkewTest, ADatabaseClockOffBeyondToleranceIsAClockProblem) {
  auto f = Run(30'000, -300'000, {-1000});
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].payload["likely_cause"]["code"], "clock");
  EXPECT_EQ(f[0].payload["db_offset_ms"], -300'000);
  EXPECT_THAT(f[0].payload["fix_en"].get<std::string>(), HasSubstr("NTP"));
  EXPECT_THAT(f[0].payload["summary_en"].get<std::string>(), HasSubstr("behind"));
}

TEST_F(ClockSkewTest, SetsClockAheadByMinutesIsNotATimeZone) {
  auto f = Run(30'000, 0, {7 * 60'000});
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].payload["likely_cause"]["code"], "set_clock");
}

TEST_F(ClockSkewTest, WithinToleranceOrWithoutEvidenceNothingHappens) {
  EXPECT_TRUE(Run(120'000, 90'000, {100'000, -5000}).empty());
  EXPECT_TRUE(Run(120'000, std::nullopt, {}).empty());
  EXPECT_FALSE(detector_.active());
}

TEST_F(ClockSkewTest, ASkewThatDoesNotLastTheConfirmWindowIsNotRaised) {
  EXPECT_TRUE(Run(20'000, 0, {3 * kHour}).empty());
  EXPECT_TRUE(Run(5000, 0, {-1000}).empty());
  EXPECT_TRUE(Run(20'000, 0, {3 * kHour}).empty());
}

TEST(ShopCheckTest, SeveralShopsWithoutAShopNumberAreAFindingNamingTheKey) {
  ShopCheck check("agent-1");
  auto raised = check.Evaluate({1042, 1043}, false, 1000);
  ASSERT_EQ(raised.size(), 1u);
  const Finding& f = raised[0];
  EXPECT_EQ(f.kind, "set.shop_ambiguous");
  EXPECT_EQ(f.severity, Severity::kImportant);
  EXPECT_EQ(State(f), "raised");
  EXPECT_EQ(f.payload["config_key"], "set_db.shop_number");
  EXPECT_EQ(f.payload["shops"], json({1042, 1043}));
  EXPECT_THAT(f.payload["fix_en"].get<std::string>(), HasSubstr("set_db.shop_number"));
  EXPECT_THAT(f.payload["summary_ru"].get<std::string>(), HasSubstr("1042, 1043"));
  EXPECT_TRUE(check.ambiguous());
  // The same shops again: nothing new; a third shop: updated.
  EXPECT_TRUE(check.Evaluate({1042, 1043}, false, 2000).empty());
  auto updated = check.Evaluate({1042, 1043, 7}, false, 3000);
  ASSERT_EQ(updated.size(), 1u);
  EXPECT_EQ(State(updated[0]), "updated");
  EXPECT_EQ(updated[0].payload["episode"], f.payload["episode"]);
  // One shop left: cleared.
  auto cleared = check.Evaluate({1042}, false, 4000);
  ASSERT_EQ(cleared.size(), 1u);
  EXPECT_EQ(State(cleared[0]), "cleared");
  EXPECT_FALSE(check.ambiguous());
}

TEST(ShopCheckTest, OneShopOrAConfiguredShopIsFine) {
  ShopCheck check("agent-1");
  EXPECT_TRUE(check.Evaluate({1042}, false, 1000).empty());
  EXPECT_TRUE(check.Evaluate({}, false, 1000).empty());
  EXPECT_TRUE(check.Evaluate({1042, 1043}, true, 1000).empty());
  EXPECT_TRUE(CheckShops({1042}, false).ok());
  absl::Status st = CheckShops({1042, 1043}, false);
  EXPECT_TRUE(absl::IsFailedPrecondition(st));
  EXPECT_THAT(std::string(st.message()), HasSubstr("set_db.shop_number"));
  EXPECT_THAT(std::string(st.message()), HasSubstr("1042, 1043"));
}

TEST(ShopCheckTest, ShopsOfARosterSkipRowsWithoutOne) {
  std::vector<RosterRow> roster = {
      {1, "ACTIVE", "", 1042}, {1, "ACTIVE", "", 1043}, {2, "ACTIVE", "", std::nullopt}};
  EXPECT_EQ(ShopsIn(roster), (std::set<int>{1042, 1043}));
}

}  // namespace
}  // namespace setdiag::agent
