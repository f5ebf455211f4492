#include "agent/store/maintenance.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "agent/core/calendar.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/strings.h"
#include "temp_dir.h"

namespace setdiag::agent {
namespace {

using std::chrono::minutes;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr int64_t kMinute = 60'000;
constexpr int64_t kDay = 86'400'000;

std::vector<int64_t> Ids(const absl::StatusOr<std::vector<MaintenanceWindow>>& windows) {
  EXPECT_TRUE(windows.ok()) << windows.status().ToString();
  std::vector<int64_t> out;
  if (windows.ok()) {
    for (const auto& w : *windows) out.push_back(w.id);
  }
  return out;
}

class MaintenanceStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = MaintenanceStore::Open(path_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::make_unique<MaintenanceStore>(std::move(*s));
  }

  MaintenanceWindow MustAdd(int64_t start, int64_t duration, const std::string& reason = "work",
                            const std::string& by = "ivanov") {
    auto w = store_->Add(start, duration, reason, by);
    EXPECT_TRUE(w.ok()) << w.status().ToString();
    return w.ok() ? *w : MaintenanceWindow{};
  }

  testutil::TempDir dir_;
  std::string path_ = dir_.File("state.db");
  FakeClock clock_{1'795'000'000'000};
  std::unique_ptr<MaintenanceStore> store_;
};

TEST_F(MaintenanceStoreTest, AddedWindowIsListedThenActiveThenExpiresAtItsEnd) {
  int64_t start = clock_.NowMs() + 10 * kMinute;
  MaintenanceWindow w = MustAdd(start, 30 * kMinute, "  replacing the switch ", " ivanov ");
  EXPECT_GT(w.id, 0);
  EXPECT_EQ(w.start_ms, start);
  EXPECT_EQ(w.end_ms, start + 30 * kMinute);
  EXPECT_EQ(w.reason, "replacing the switch");
  EXPECT_EQ(w.opened_by, "ivanov");
  EXPECT_EQ(w.cancelled_ms, std::nullopt);

  // Future: listed, not active.
  EXPECT_THAT(Ids(store_->List(clock_.NowMs())), ElementsAre(w.id));
  EXPECT_THAT(Ids(store_->ActiveAt(clock_.NowMs())), IsEmpty());

  clock_.Advance(minutes(10));
  auto active = store_->ActiveAt(clock_.NowMs());
  ASSERT_TRUE(active.ok());
  ASSERT_EQ(active->size(), 1u);
  EXPECT_EQ((*active)[0].reason, "replacing the switch");
  EXPECT_EQ((*active)[0].opened_by, "ivanov");
  EXPECT_EQ((*active)[0].end_ms, w.end_ms);

  clock_.Advance(minutes(30) - std::chrono::milliseconds(1));
  EXPECT_THAT(Ids(store_->ActiveAt(clock_.NowMs())), ElementsAre(w.id));
  clock_.Advance(std::chrono::milliseconds(1));  // exactly the end
  EXPECT_THAT(Ids(store_->ActiveAt(clock_.NowMs())), IsEmpty());
  EXPECT_THAT(Ids(store_->List(clock_.NowMs())), IsEmpty());
  EXPECT_THAT(Ids(store_->List(clock_.NowMs(), /*include_past=*/true)), ElementsAre(w.id));
}

TEST_F(MaintenanceStoreTest, ListIsOrderedByStartAndIdsAreUnique) {
  int64_t now = clock_.NowMs();
  MaintenanceWindow late = MustAdd(now + 2 * kDay, 60 * kMinute);
  MaintenanceWindow now_w = MustAdd(now, 60 * kMinute);
  MaintenanceWindow past = MustAdd(now - kDay, 60 * kMinute);
  MaintenanceWindow soon = MustAdd(now + kMinute, 60 * kMinute);
  EXPECT_NE(late.id, now_w.id);
  EXPECT_THAT(Ids(store_->List(now)), ElementsAre(now_w.id, soon.id, late.id));
  EXPECT_THAT(Ids(store_->List(now, true)), ElementsAre(past.id, now_w.id, soon.id, late.id));
  EXPECT_THAT(Ids(store_->ActiveAt(now)), ElementsAre(now_w.id));
  EXPECT_THAT(Ids(store_->ActiveAt(now + kMinute)), ElementsAre(now_w.id, soon.id));
}

TEST_F(MaintenanceStoreTest, AddRejectsBadInput) {
  struct Bad {
    const char* what;
    int64_t duration;
    std::string reason;
    std::string by;
    const char* message;
  };
  const std::vector<Bad> cases = {
      {"no reason", 60 * kMinute, "", "ivanov", "reason is required"},
      {"blank reason", 60 * kMinute, "   ", "ivanov", "reason is required"},
      {"no engineer", 60 * kMinute, "work", "", "opened_by is required"},
      {"59 s", 59'000, "work", "ivanov", "between 1 minute and 7 days"},
      {"zero", 0, "work", "ivanov", "between 1 minute and 7 days"},
      {"negative", -kMinute, "work", "ivanov", "between 1 minute and 7 days"},
      {"7 days + 1 ms", 7 * kDay + 1, "work", "ivanov", "between 1 minute and 7 days"},
      {"newline", 60 * kMinute, "line one\nline two", "ivanov", "one line of UTF-8"},
      {"broken UTF-8", 60 * kMinute, "bad \xd0", "ivanov", "one line of UTF-8"},
      {"overlong UTF-8", 60 * kMinute, "bad \xc0\xaf", "ivanov", "one line of UTF-8"},
      {"long reason", 60 * kMinute, std::string(501, 'x'), "ivanov", "too long"},
      {"long name", 60 * kMinute, "work", std::string(65, 'x'), "too long"},
  };
  for (const Bad& b : cases) {
    SCOPED_TRACE(b.what);
    auto w = store_->Add(clock_.NowMs(), b.duration, b.reason, b.by);
    ASSERT_FALSE(w.ok());
    EXPECT_EQ(w.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(w.status().message()), HasSubstr(b.message));
  }
  EXPECT_THAT(Ids(store_->List(0, true)), IsEmpty());
}

TEST_F(MaintenanceStoreTest, AddAcceptsTheLimitsAndCyrillic) {
  MustAdd(clock_.NowMs(), MaintenanceStore::kMinDurationMs);
  MustAdd(clock_.NowMs(), MaintenanceStore::kMaxDurationMs);
  MaintenanceWindow w = MustAdd(clock_.NowMs(), 60 * kMinute, "замена коммутатора", "Иванов");
  auto listed = store_->List(clock_.NowMs());
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 3u);
  EXPECT_EQ(listed->back().id, w.id);
  EXPECT_EQ(listed->back().reason, "замена коммутатора");
  EXPECT_EQ(listed->back().opened_by, "Иванов");
}

TEST_F(MaintenanceStoreTest, CancelEndsAnActiveWindowNow) {
  MaintenanceWindow w = MustAdd(clock_.NowMs(), 2 * 60 * kMinute);
  clock_.Advance(minutes(15));
  auto cancelled = store_->Cancel(w.id, clock_.NowMs());
  ASSERT_TRUE(cancelled.ok()) << cancelled.status().ToString();
  EXPECT_EQ(cancelled->cancelled_ms, clock_.NowMs());
  EXPECT_EQ(cancelled->EffectiveEndMs(), clock_.NowMs());
  EXPECT_FALSE(cancelled->ActiveAt(clock_.NowMs()));

  EXPECT_THAT(Ids(store_->ActiveAt(clock_.NowMs())), IsEmpty());
  EXPECT_THAT(Ids(store_->List(clock_.NowMs())), IsEmpty());
  auto history = store_->List(clock_.NowMs(), true);
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 1u);
  EXPECT_EQ((*history)[0].cancelled_ms, clock_.NowMs());
  // Still active a moment before the cancellation, as history.
  EXPECT_THAT(Ids(store_->ActiveAt(clock_.NowMs() - 1)), ElementsAre(w.id));

  auto again = store_->Cancel(w.id, clock_.NowMs() + 1);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(again.status().message()), HasSubstr("already cancelled"));
}

TEST_F(MaintenanceStoreTest, CancelDropsAFutureWindow) {
  MaintenanceWindow w = MustAdd(clock_.NowMs() + kDay, 60 * kMinute);
  ASSERT_TRUE(store_->Cancel(w.id, clock_.NowMs()).ok());
  EXPECT_THAT(Ids(store_->List(clock_.NowMs())), IsEmpty());
  EXPECT_THAT(Ids(store_->ActiveAt(w.start_ms)), IsEmpty());
}

TEST_F(MaintenanceStoreTest, CancelUnknownOrEndedIsNotFound) {
  auto unknown = store_->Cancel(42, clock_.NowMs());
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(unknown.status().message()),
              HasSubstr("maintenance window 42 does not exist"));

  MaintenanceWindow w = MustAdd(clock_.NowMs(), 10 * kMinute);
  clock_.Advance(minutes(10));
  auto ended = store_->Cancel(w.id, clock_.NowMs());
  EXPECT_EQ(ended.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(ended.status().message()), HasSubstr("already ended at"));
  auto history = store_->List(0, true);
  ASSERT_TRUE(history.ok());
  ASSERT_EQ(history->size(), 1u);
  EXPECT_EQ((*history)[0].cancelled_ms, std::nullopt);
}

TEST_F(MaintenanceStoreTest, TwoStoresOnOneFileSeeEachOthersWrites) {
  // The CLI and the daemon each open their own store on state.db.
  auto other = MaintenanceStore::Open(path_);
  ASSERT_TRUE(other.ok()) << other.status().ToString();

  MaintenanceWindow w = MustAdd(clock_.NowMs(), 60 * kMinute, "replacing the switch");
  EXPECT_THAT(Ids(other->ActiveAt(clock_.NowMs())), ElementsAre(w.id));

  MaintenanceWindow from_other = *other->Add(clock_.NowMs() + kDay, kMinute, "later", "petrov");
  EXPECT_THAT(Ids(store_->List(clock_.NowMs())), ElementsAre(w.id, from_other.id));

  clock_.Advance(minutes(5));
  ASSERT_TRUE(other->Cancel(w.id, clock_.NowMs()).ok());
  EXPECT_THAT(Ids(store_->ActiveAt(clock_.NowMs())), IsEmpty());
  // And one cannot cancel what the other already cancelled.
  EXPECT_EQ(store_->Cancel(w.id, clock_.NowMs()).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(MaintenanceStoreTest, ReopeningKeepsWindows) {
  MaintenanceWindow w = MustAdd(clock_.NowMs(), 60 * kMinute);
  store_.reset();
  auto reopened = MaintenanceStore::Open(path_);
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  EXPECT_THAT(Ids(reopened->ActiveAt(clock_.NowMs())), ElementsAre(w.id));
}

TEST_F(MaintenanceStoreTest, OpenFailsOnAFileThatIsNotADatabase) {
  std::string junk = dir_.File("junk.db");
  testutil::WriteBytes(junk, std::string(4096, 'j'));
  auto s = MaintenanceStore::Open(junk);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss) << s.status().ToString();

  auto missing_dir = MaintenanceStore::Open(dir_.File("no/such/dir/state.db"));
  EXPECT_FALSE(missing_dir.ok());
}

TEST_F(MaintenanceStoreTest, CalendarNamesTheStoredMaintenance) {
  std::unique_ptr<ConfigReader> r;
  ASSERT_TRUE(ConfigReader::Parse("[calendar]\n"
                                  "time_zone = \"Europe/Moscow\"\n"
                                  "default = \"08:00-22:00\"\n",
                                  "agent.toml", &r)
                  .ok());
  auto cal = StoreCalendar::FromConfig(*r);
  ASSERT_TRUE(r->Finish().ok());
  ASSERT_TRUE(cal.ok()) << cal.status().ToString();

  absl::TimeZone moscow;
  ASSERT_TRUE(absl::LoadTimeZone("Europe/Moscow", &moscow));
  auto msk = [&](int h, int m) {
    return absl::ToUnixMillis(absl::FromCivil(absl::CivilSecond(2026, 11, 26, h, m, 0), moscow));
  };
  clock_.Set(msk(12, 0));
  MustAdd(msk(13, 0), 90 * kMinute, "replacing the switch", "ivanov");

  auto windows = store_->ActiveAt(clock_.NowMs());
  ASSERT_TRUE(windows.ok());
  EXPECT_TRUE(cal->ExpectedAt(clock_.NowMs(), *windows).expected);

  clock_.Advance(minutes(60));
  windows = store_->ActiveAt(clock_.NowMs());
  ASSERT_TRUE(windows.ok());
  StoreCalendar::Expectation e = cal->ExpectedAt(clock_.NowMs(), *windows);
  EXPECT_FALSE(e.expected);
  EXPECT_EQ(e.reason, "maintenance until 14:30 by ivanov: replacing the switch");

  clock_.Advance(minutes(90));  // 14:30, the end
  windows = store_->ActiveAt(clock_.NowMs());
  ASSERT_TRUE(windows.ok());
  EXPECT_EQ(cal->ExpectedAt(clock_.NowMs(), *windows).reason, "open");
}

}  // namespace
}  // namespace setdiag::agent
