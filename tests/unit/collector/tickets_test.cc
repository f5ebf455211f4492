// The ticket engine (collector/tickets.h) on a real SQLite database and a
// fake clock: conditions become tickets, replays change nothing, clears,
// reopening, escalation, silent stores, late conditions, SLA clocks and what
// people do.

#include "collector/tickets.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "collector/notifications.h"
#include "collector/storage.h"
#include "common/clock.h"
#include "common/sqlite.h"
#include "common/strings.h"
#include "temp_dir.h"

namespace setdiag::collector {
namespace {

using json = nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int64_t kMinute = 60'000;
constexpr int64_t kHour = 60 * kMinute;

absl::TimeZone Moscow() {
  absl::TimeZone tz;
  EXPECT_TRUE(absl::LoadTimeZone("Europe/Moscow", &tz));
  return tz;
}

int64_t Msk(int y, int mo, int d, int h, int mi) {
  return absl::ToUnixMillis(absl::FromCivil(absl::CivilMinute(y, mo, d, h, mi), Moscow()));
}

class TicketsTest : public ::testing::Test {
 protected:
  TicketsTest() : business_(ProductionCalendar(), Hours()) {}

  static BusinessHours Hours() {
    BusinessHours h;
    h.zone = Moscow();
    return h;
  }

  void SetUp() override {
    auto db = sql::Db::Open(dir_.File("collector.db"));
    ASSERT_TRUE(db.ok()) << db.status();
    db_ = std::move(*db);
    ASSERT_TRUE(InitSchema(db_).ok());
    ASSERT_TRUE(InitTicketSchema(db_).ok());
    ASSERT_TRUE(InitNotificationSchema(db_).ok());
    ASSERT_TRUE(CreateStoreToken(db_, "1042", "acme", clock_.NowMs()).ok());
    ASSERT_TRUE(CreateStoreToken(db_, "2001", "globex", clock_.NowMs()).ok());
    ASSERT_TRUE(SetPartnerTariff(db_, "globex", "free", clock_.NowMs()).ok());
    auto support = CreateUser(db_, "anna", Role::kSupport, "", clock_.NowMs());
    auto partner = CreateUser(db_, "boris", Role::kPartner, "globex", clock_.NowMs());
    ASSERT_TRUE(support.ok() && partner.ok());
    support_ = **LookupUser(db_, support->secret);
    globex_user_ = **LookupUser(db_, partner->secret);
    policy_.auto_resolve_after_ms = 15 * kMinute;
    policy_.reopen_within_ms = kHour;
    policy_.unreachable_after_ms = 5 * kMinute;
    policy_.late_after_ms = 2 * kMinute;
    policy_.late_settle_ms = kMinute;
    NotificationTarget hook;
    hook.name = "webhook:helpdesk";
    hook.url = "http://127.0.0.1:9/hook";
    hook.secret = "s3cret";
    notify_.targets.push_back(hook);
    engine_ = std::make_unique<TicketEngine>(policy_, business_, notify_);
  }

  // Feeds one event as if it had just been stored.
  void Feed(const std::string& store, const std::string& kind, int severity, json payload,
            int64_t detected_ms, const std::string& agent = "agent-1") {
    EventRow e;
    e.id = ++next_event_id_;
    e.store_id = store;
    e.agent_id = agent;
    e.kind = kind;
    e.sequence = static_cast<uint64_t>(e.id);
    e.severity = severity;
    e.detected_at_ms = detected_ms;
    e.received_at_ms = clock_.NowMs();
    e.payload = payload.dump();
    auto st = engine_->OnEvents(db_, agent, store, {e}, clock_.NowMs());
    ASSERT_TRUE(st.ok()) << st;
  }

  void Tick() { ASSERT_TRUE(engine_->Tick(db_, clock_.NowMs()).ok()); }

  std::vector<Ticket> All() {
    TicketQuery q;
    q.limit = 1000;
    auto t = ListTickets(db_, support_, q);
    EXPECT_TRUE(t.ok());
    return t.ok() ? *t : std::vector<Ticket>{};
  }

  Ticket Only() {
    auto all = All();
    EXPECT_EQ(all.size(), 1u);
    return all.empty() ? Ticket{} : all.front();
  }

  // The notification types enqueued so far, in order.
  std::vector<std::string> Notices() {
    auto s = db_.Prepare("SELECT type FROM notifications ORDER BY id");
    EXPECT_TRUE(s.ok());
    std::vector<std::string> out;
    while (*s->Step()) out.push_back(s->Text(0));
    return out;
  }

  std::vector<std::string> TimelineTypes(int64_t id) {
    auto tl = GetTimeline(db_, id);
    EXPECT_TRUE(tl.ok());
    std::vector<std::string> out;
    for (const auto& e : *tl) out.push_back(e.type);
    return out;
  }

  absl::StatusOr<Ticket> Act(const User& who, int64_t id, TicketAction a, std::string text = "") {
    return engine_->Act(db_, who, {id, a, std::move(text)}, clock_.NowMs());
  }

  static json Raised(const std::string& episode) {
    return {{"state", "raised"}, {"episode", episode}, {"summary_en", "12 of 20 tills stopped"},
            {"summary_ru", "Остановлено 12 касс из 20"}};
  }
  static json Cleared(const std::string& episode) { return {{"state", "cleared"}, {"episode", episode}}; }

  testutil::TempDir dir_;
  sql::Db db_;
  FakeClock clock_{Msk(2026, 11, 20, 12, 0)};  // a Friday
  BusinessClock business_;
  TicketPolicy policy_;
  NotifyConfig notify_;
  std::unique_ptr<TicketEngine> engine_;
  User support_, globex_user_;
  int64_t next_event_id_ = 0;
};

TEST_F(TicketsTest, CriticalConditionOpensOneTicketWithTariffClocks) {
  const int64_t detected = clock_.NowMs() - 5'000;
  Feed("1042", "tills.majority_stopped", 4, Raised("e1"), detected);
  Ticket t = Only();
  EXPECT_EQ(t.condition, "tills");
  EXPECT_EQ(t.priority, Priority::kCritical);
  EXPECT_EQ(t.state, TicketState::kOpen);
  EXPECT_EQ(t.tariff, "expert");
  EXPECT_EQ(t.partner, "acme");
  EXPECT_TRUE(t.condition_active);
  EXPECT_EQ(t.detected_at_ms, detected);
  EXPECT_EQ(t.registered_at_ms, clock_.NowMs());
  EXPECT_EQ(t.registration.due_ms, detected + 15 * kMinute);
  EXPECT_EQ(t.registration.met_at_ms, clock_.NowMs());
  EXPECT_EQ(t.first_response.due_ms, detected + 2 * kHour);
  EXPECT_THAT(t.title_ru, HasSubstr("остановлено более 50% касс"));
  EXPECT_THAT(t.title_en, HasSubstr("more than 50% of tills stopped"));
  EXPECT_EQ(t.summary_ru, "Остановлено 12 касс из 20");
  EXPECT_THAT(Notices(), ElementsAre("opened"));
}

TEST_F(TicketsTest, ReplayedAndRenumberedEventsChangeNothing) {
  const int64_t detected = clock_.NowMs() - 5'000;
  Feed("1042", "tills.majority_stopped", 4, Raised("e1"), detected);
  clock_.Advance(std::chrono::seconds(30));
  // The same raise again under a new sequence (an outbox renumbered after loss).
  Feed("1042", "tills.majority_stopped", 4, Raised("e1"), detected);
  EXPECT_EQ(All().size(), 1u);
  EXPECT_THAT(Notices(), ElementsAre("opened"));
  // A later "updated" of the same condition is recorded on the same ticket.
  Feed("1042", "loading.import_errors", 2, {{"state", "raised"}, {"episode", "imp1"}}, clock_.NowMs());
  Feed("1042", "loading.import_errors", 2, {{"state", "updated"}, {"episode", "imp1"}}, clock_.NowMs() + 1);
  EXPECT_EQ(All().size(), 2u);
}

TEST_F(TicketsTest, ClearsThenResolvesAutomaticallyUnlessAcknowledged) {
  Feed("1042", "loading.halted", 4, Raised("h1"), clock_.NowMs());
  Feed("1042", "loading.transport_halted", 4, Raised("tr1"), clock_.NowMs());
  auto all = All();
  ASSERT_EQ(all.size(), 2u);
  ASSERT_TRUE(Act(support_, all[1].id, TicketAction::kAcknowledge).ok());
  clock_.Advance(std::chrono::minutes(1));
  Feed("1042", "loading.halted", 4, Cleared("h1"), clock_.NowMs());
  Feed("1042", "loading.transport_halted", 4, Cleared("tr1"), clock_.NowMs());
  all = All();
  EXPECT_FALSE(all[0].condition_active);
  EXPECT_EQ(all[0].cleared_at_ms, clock_.NowMs());
  clock_.Advance(std::chrono::minutes(14));
  Tick();
  EXPECT_EQ(All()[0].state, TicketState::kOpen) << "quiet period not over yet";
  clock_.Advance(std::chrono::minutes(1));
  Tick();
  all = All();
  EXPECT_EQ(all[0].state, TicketState::kResolved);
  EXPECT_EQ(all[0].resolved_by, "collector");
  EXPECT_EQ(all[1].state, TicketState::kAcknowledged) << "a person has taken it";
  EXPECT_THAT(TimelineTypes(all[0].id), ElementsAre("opened", "cleared", "resolved"));
  EXPECT_THAT(Notices(), ElementsAre("opened", "opened", "cleared", "cleared", "resolved"));
}

TEST_F(TicketsTest, RecurrenceWithinCoolDownReopensTheSameTicket) {
  Feed("1042", "loading.halted", 4, Raised("h1"), clock_.NowMs());
  Feed("1042", "loading.halted", 4, Cleared("h1"), clock_.NowMs() + 1000);
  clock_.Advance(std::chrono::minutes(16));
  Tick();
  ASSERT_EQ(Only().state, TicketState::kResolved);
  clock_.Advance(std::chrono::minutes(30));
  Feed("1042", "loading.halted", 4, Raised("h2"), clock_.NowMs());
  Ticket t = Only();
  EXPECT_EQ(t.state, TicketState::kOpen);
  EXPECT_EQ(t.reopen_count, 1);
  EXPECT_TRUE(t.condition_active);
  EXPECT_EQ(t.last_episode, "h2");
  EXPECT_THAT(Notices(), ElementsAre("opened", "cleared", "resolved", "reopened"));

  // Past the cool-down a recurrence is a new incident.
  Feed("1042", "loading.halted", 4, Cleared("h2"), clock_.NowMs());
  clock_.Advance(std::chrono::minutes(16));
  Tick();
  clock_.Advance(std::chrono::minutes(61));
  Feed("1042", "loading.halted", 4, Raised("h3"), clock_.NowMs());
  auto all = All();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].state, TicketState::kResolved);
  EXPECT_EQ(all[1].state, TicketState::kOpen);
}

TEST_F(TicketsTest, SingleTillGrowingIntoMajorityUpgradesTheSameTicket) {
  // Friday 18:30: a single till, normal: 4 business hours -> Monday 13:30.
  clock_.Set(Msk(2026, 11, 20, 18, 30));
  Feed("1042", "tills.till_stopped", 2, {{"state", "raised"}, {"episode", "t1"}, {"till", 3}}, clock_.NowMs());
  Ticket t = Only();
  EXPECT_EQ(t.priority, Priority::kNormal);
  EXPECT_EQ(t.first_response.due_ms, Msk(2026, 11, 23, 13, 30));
  // Saturday 03:00: the majority stops, same episode: critical, due 05:00.
  clock_.Set(Msk(2026, 11, 21, 3, 0));
  Feed("1042", "tills.majority_stopped", 4, {{"state", "escalated"}, {"episode", "t1"}}, clock_.NowMs());
  t = Only();
  EXPECT_EQ(t.priority, Priority::kCritical);
  EXPECT_EQ(t.first_response.due_ms, Msk(2026, 11, 21, 5, 0));
  EXPECT_THAT(t.title_en, HasSubstr("more than 50%"));
  EXPECT_THAT(Notices(), ElementsAre("opened", "escalated"));
  // The till part clearing does not clear the ticket while the majority holds.
  Feed("1042", "tills.till_stopped", 2, {{"state", "cleared"}, {"episode", "t1"}, {"till", 3}}, clock_.NowMs() + 1);
  EXPECT_TRUE(Only().condition_active);
  Feed("1042", "tills.majority_stopped", 4, Cleared("t1"), clock_.NowMs() + 2);
  EXPECT_FALSE(Only().condition_active);
}

TEST_F(TicketsTest, SilentStoreOpensUnreachableAndClearsWhenBack) {
  AgentHello hello{"agent-1", "1042", "0.1.0", "ob1"};
  ASSERT_TRUE(RecordHello(db_, hello, 1, clock_.NowMs()).ok());
  ASSERT_TRUE(RecordDisconnect(db_, "agent-1", 1, clock_.NowMs()).ok());
  const int64_t last_seen = clock_.NowMs();
  Tick();  // the collector has been running all along
  clock_.Advance(std::chrono::minutes(4));
  Tick();
  EXPECT_TRUE(All().empty());
  clock_.Advance(std::chrono::minutes(1));
  Tick();
  Ticket t = Only();
  EXPECT_EQ(t.condition, "store.unreachable");
  EXPECT_EQ(t.priority, Priority::kImportant);
  EXPECT_EQ(t.detected_at_ms, last_seen + 5 * kMinute);
  Tick();
  EXPECT_EQ(All().size(), 1u);
  EXPECT_THAT(Notices(), ElementsAre("opened"));

  // While it was away the store had a critical condition that began and
  // ended: it arrives late, is recorded, and is never paged.
  clock_.Advance(std::chrono::minutes(20));
  ASSERT_TRUE(RecordHello(db_, hello, 2, clock_.NowMs()).ok());
  Feed("1042", "loading.halted", 4, Raised("h-old"), clock_.NowMs() - 15 * kMinute);
  Feed("1042", "loading.halted", 4, Cleared("h-old"), clock_.NowMs() - 10 * kMinute);
  Tick();
  auto all = All();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_FALSE(all[0].condition_active) << "the store is back";
  EXPECT_EQ(all[1].condition, "loading.halted");
  EXPECT_EQ(all[1].state, TicketState::kResolved);
  EXPECT_FALSE(all[1].paged);
  EXPECT_THAT(TimelineTypes(all[1].id), ElementsAre("recorded_late", "cleared", "resolved"));
  EXPECT_THAT(Notices(), ElementsAre("opened", "cleared")) << "nothing paged for the stale condition";
}

TEST_F(TicketsTest, AfterTheCollectorsOwnOutageAgentsGetTheThresholdToReconnect) {
  // Agents last heard from 10 min ago because the collector itself was down.
  AgentHello hello{"agent-1", "1042", "0.1.0", "ob1"};
  ASSERT_TRUE(RecordHello(db_, hello, 1, clock_.NowMs() - 10 * kMinute).ok());
  ASSERT_TRUE(ResetConnections(db_).ok());
  Tick();  // the collector's first tick after its start
  clock_.Advance(std::chrono::seconds(299));
  Tick();
  EXPECT_TRUE(All().empty()) << "no false 'unreachable' while agents reconnect";
  const int64_t started = clock_.NowMs() - 299'000;
  clock_.Advance(std::chrono::seconds(1));
  Tick();
  Ticket t = Only();
  EXPECT_EQ(t.condition, "store.unreachable");
  EXPECT_EQ(t.detected_at_ms, started + 5 * kMinute);
}

TEST_F(TicketsTest, EveryResolutionOfAReopenedTicketIsNotified) {
  Feed("1042", "loading.halted", 4, Raised("h1"), clock_.NowMs());
  Feed("1042", "loading.halted", 4, Cleared("h1"), clock_.NowMs() + 1000);
  clock_.Advance(std::chrono::minutes(16));
  Tick();
  Feed("1042", "loading.halted", 4, Raised("h2"), clock_.NowMs());
  Feed("1042", "loading.halted", 4, Cleared("h2"), clock_.NowMs() + 1000);
  clock_.Advance(std::chrono::minutes(16));
  Tick();
  EXPECT_THAT(Notices(), ElementsAre("opened", "cleared", "resolved", "reopened", "cleared", "resolved"));
}

TEST_F(TicketsTest, LateConditionStillHoldingIsPagedAfterSettling) {
  Feed("1042", "loading.halted", 4, Raised("h1"), clock_.NowMs() - 10 * kMinute);
  EXPECT_FALSE(Only().paged);
  EXPECT_TRUE(Notices().empty());
  clock_.Advance(std::chrono::seconds(59));
  Tick();
  EXPECT_TRUE(Notices().empty());
  clock_.Advance(std::chrono::seconds(1));
  Tick();
  EXPECT_TRUE(Only().paged);
  EXPECT_THAT(Notices(), ElementsAre("opened"));
}

TEST_F(TicketsTest, SlaWarningThenBreachAreEventsAndNotifications) {
  const int64_t detected = clock_.NowMs();
  Feed("1042", "loading.halted", 4, Raised("h1"), detected);
  const int64_t id = Only().id;
  clock_.Set(detected + 90 * kMinute - 1);
  Tick();
  EXPECT_THAT(Notices(), ElementsAre("opened"));
  clock_.Set(detected + 90 * kMinute);  // 75% of 2 h
  Tick();
  Tick();
  EXPECT_THAT(Notices(), ElementsAre("opened", "sla_warning"));
  clock_.Set(detected + 2 * kHour);
  Tick();
  EXPECT_TRUE(Only().first_response.breached);
  EXPECT_THAT(Notices(), ElementsAre("opened", "sla_warning", "sla_breached"));
  EXPECT_THAT(TimelineTypes(id), ElementsAre("opened", "sla_warning", "sla_breached"));
}

TEST_F(TicketsTest, AcknowledgingMeetsFirstResponseAndStopsItsClock) {
  Feed("1042", "loading.halted", 4, Raised("h1"), clock_.NowMs());
  const int64_t id = Only().id;
  clock_.Advance(std::chrono::minutes(10));
  auto t = Act(support_, id, TicketAction::kAcknowledge, "looking");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->state, TicketState::kAcknowledged);
  EXPECT_EQ(t->acknowledged_by, "anna");
  EXPECT_EQ(t->first_response.met_at_ms, clock_.NowMs());
  EXPECT_EQ(Act(support_, id, TicketAction::kAcknowledge).status().code(), absl::StatusCode::kFailedPrecondition);
  clock_.Advance(std::chrono::hours(3));
  Tick();
  EXPECT_FALSE(Only().first_response.breached);
  EXPECT_THAT(Notices(), ElementsAre("opened"));
}

TEST_F(TicketsTest, RegisteredErrorStartsTheWorkaroundClockInWorkingDays) {
  clock_.Set(Msk(2026, 11, 23, 11, 0));  // Monday
  Feed("1042", "loading.halted", 4, Raised("h1"), clock_.NowMs());
  const int64_t id = Only().id;
  EXPECT_EQ(Act(support_, id, TicketAction::kWorkaround, "x").status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Act(support_, id, TicketAction::kRegisterError, "").status().code(),
            absl::StatusCode::kInvalidArgument);
  auto t = Act(support_, id, TicketAction::kRegisterError, "SR-123: import hangs on a big package");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->workaround.due_ms, Msk(2026, 11, 26, 19, 0));  // Thursday end of business
  EXPECT_EQ(t->state, TicketState::kAcknowledged);
  t = Act(support_, id, TicketAction::kWorkaround, "restart the import service");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->workaround.met_at_ms, clock_.NowMs());
  clock_.Set(Msk(2026, 11, 27, 10, 0));
  Tick();
  EXPECT_FALSE(Only().workaround.breached);
}

TEST_F(TicketsTest, FreeTariffAnswersWithin24Hours) {
  const int64_t detected = clock_.NowMs();
  Feed("2001", "set.server_down", 3, Raised("s1"), detected);
  Ticket t = Only();
  EXPECT_EQ(t.tariff, "free");
  EXPECT_EQ(t.priority, Priority::kImportant);
  EXPECT_EQ(t.registration.due_ms, detected + 30 * kMinute);
  EXPECT_EQ(t.first_response.due_ms, detected + 24 * kHour);
}

TEST_F(TicketsTest, PartnersSeeAndActOnlyOnTheirOwnStores) {
  Feed("1042", "loading.halted", 4, Raised("h1"), clock_.NowMs());
  Feed("2001", "loading.halted", 4, Raised("h2"), clock_.NowMs());
  auto all = All();
  ASSERT_EQ(all.size(), 2u);
  auto mine = ListTickets(db_, globex_user_, TicketQuery{});
  ASSERT_TRUE(mine.ok());
  ASSERT_EQ(mine->size(), 1u);
  EXPECT_EQ((*mine)[0].store_id, "2001");
  auto other = GetTicket(db_, globex_user_, all[0].id);
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(other->has_value());
  for (auto a : {TicketAction::kAcknowledge, TicketAction::kNote, TicketAction::kRegisterError,
                 TicketAction::kWorkaround, TicketAction::kResolve}) {
    EXPECT_EQ(Act(globex_user_, all[0].id, a, "x").status().code(), absl::StatusCode::kNotFound);
  }
  EXPECT_THAT(TimelineTypes(all[0].id), ElementsAre("opened"));
  EXPECT_TRUE(Act(globex_user_, all[1].id, TicketAction::kNote, "on my way").ok());
  auto stores = ListStores(db_, globex_user_, "");
  ASSERT_TRUE(stores.ok());
  ASSERT_EQ(stores->size(), 1u);
  EXPECT_EQ((*stores)[0].tariff, "free");
  ASSERT_EQ((*stores)[0].open_tickets.size(), 1u);
}

TEST_F(TicketsTest, InfoEventsAndEventsWithoutStateOpenNothing) {
  Feed("1042", "script.heartbeat", 1, {{"state", "raised"}}, clock_.NowMs());
  Feed("1042", "setdiag.gap", 3, {{"reason", "expired"}}, clock_.NowMs());
  Feed("1042", "custom", 3, json::array({1, 2}), clock_.NowMs());
  EXPECT_TRUE(All().empty());
}

}  // namespace
}  // namespace setdiag::collector
