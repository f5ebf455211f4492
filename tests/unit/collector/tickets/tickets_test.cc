// The ticket engine (collector/tickets/tickets.h) on a real SQLite database and a
// fake clock: conditions become tickets, replays change nothing, clears,
// reopening, escalation, silent stores, late conditions, SLA clocks and what
// people do.

#include "collector/tickets/tickets.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "collector/bundles/bundle_store.h"
#include "collector/notify/notifications.h"
#include "collector/store/storage.h"
#include "collector/tickets/ticket_evidence.h"
#include "common/clock.h"
#include "common/sqlite.h"
#include "common/strings.h"
#include "temp_dir.h"

namespace setdiag::collector {
namespace {

using json = nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

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

  // One column of the notifications enqueued so far, in order.
  std::vector<std::string> NoticeColumn(const char* column) {
    auto s = db_.Prepare(Cat("SELECT ", column, " FROM notifications ORDER BY id"));
    EXPECT_TRUE(s.ok());
    std::vector<std::string> out;
    while (*s->Step()) out.push_back(s->Text(0));
    return out;
  }

  void Hello(const std::string& agent, const std::string& store,
             std::optional<std::vector<HeldCondition>> held) {
    auto st = engine_->OnHello(db_, agent, store, held, clock_.NowMs());
    ASSERT_TRUE(st.ok()) << st;
  }

  std::vector<TimelineEntry> Timeline(int64_t id) {
    auto tl = GetTimeline(db_, id);
    EXPECT_TRUE(tl.ok());
    return tl.ok() ? *tl : std::vector<TimelineEntry>{};
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
    return {{"state", "raised"},
            {"episode", episode},
            {"summary_en", "12 of 20 tills stopped"},
            {"summary_ru", "Остановлено 12 касс из 20"}};
  }
  static json Cleared(const std::string& episode) {
    return {{"state", "cleared"}, {"episode", episode}};
  }

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
  Feed("1042", "loading.import_errors", 2, {{"state", "raised"}, {"episode", "imp1"}},
       clock_.NowMs());
  Feed("1042", "loading.import_errors", 2, {{"state", "updated"}, {"episode", "imp1"}},
       clock_.NowMs() + 1);
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
  Feed("1042", "tills.till_stopped", 2, {{"state", "raised"}, {"episode", "t1"}, {"till", 3}},
       clock_.NowMs());
  Ticket t = Only();
  EXPECT_EQ(t.priority, Priority::kNormal);
  EXPECT_EQ(t.first_response.due_ms, Msk(2026, 11, 23, 13, 30));
  // Saturday 03:00: the majority stops, same episode: critical, due 05:00.
  clock_.Set(Msk(2026, 11, 21, 3, 0));
  Feed("1042", "tills.majority_stopped", 4, {{"state", "escalated"}, {"episode", "t1"}},
       clock_.NowMs());
  t = Only();
  EXPECT_EQ(t.priority, Priority::kCritical);
  EXPECT_EQ(t.first_response.due_ms, Msk(2026, 11, 21, 5, 0));
  EXPECT_THAT(t.title_en, HasSubstr("more than 50%"));
  EXPECT_THAT(Notices(), ElementsAre("opened", "escalated"));
  // The till part clearing does not clear the ticket while the majority holds.
  Feed("1042", "tills.till_stopped", 2, {{"state", "cleared"}, {"episode", "t1"}, {"till", 3}},
       clock_.NowMs() + 1);
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
  EXPECT_THAT(Notices(), ElementsAre("opened", "cleared"))
      << "nothing paged for the stale condition";
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
  EXPECT_THAT(Notices(),
              ElementsAre("opened", "cleared", "resolved", "reopened", "cleared", "resolved"));
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
  EXPECT_EQ(Act(support_, id, TicketAction::kAcknowledge).status().code(),
            absl::StatusCode::kFailedPrecondition);
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

// ---- an agent restart (issue 11, item 1) ----

TEST_F(TicketsTest, HelloWithoutAnEpisodeClearsWhatThatAgentNoLongerHolds) {
  const int64_t raised_at = clock_.NowMs();
  Feed("1042", "tills.majority_stopped", 4, Raised("a1-tills-1"), raised_at, "agent-1");
  Feed("1042", "loading.halted", 4, Raised("a1-halted-1"), raised_at, "agent-1");
  Feed("1042", "loading.erp_silent", 3, Raised("a2-erp-1"), raised_at,
       "agent-2");  // another agent of the store
  Feed("1042", "script.ups_on_battery", 3, Raised("ups-1"), raised_at,
       "agent-1");  // a script's: no watch holds it
  AgentHello hello{"agent-1", "1042", "0.1.0", "ob1"};
  ASSERT_TRUE(RecordHello(db_, hello, 1, clock_.NowMs()).ok());
  ASSERT_TRUE(RecordDisconnect(db_, "agent-1", 1, clock_.NowMs()).ok());
  Tick();
  clock_.Advance(std::chrono::minutes(6));
  Tick();  // the store counts as unreachable: a ticket the collector raised
  ASSERT_EQ(All().size(), 5u);
  EXPECT_THAT(Notices(), ElementsAre("opened", "opened", "opened", "opened", "opened"));

  // An old agent says nothing about what it holds: nothing changes.
  Hello("agent-1", "1042", std::nullopt);
  for (const auto& t : All()) EXPECT_TRUE(t.condition_active) << t.condition;

  // The restarted agent still holds the halted loading, not the tills.
  clock_.Advance(std::chrono::minutes(1));
  const int64_t hello_at = clock_.NowMs();
  Hello("agent-1", "1042", std::vector<HeldCondition>{{"loading.halted", "a1-halted-1"}});
  auto all = All();
  ASSERT_EQ(all.size(), 5u);
  const Ticket& tills = all[0];
  EXPECT_EQ(tills.condition, "tills");
  EXPECT_FALSE(tills.condition_active);
  EXPECT_EQ(tills.cleared_at_ms, hello_at);
  EXPECT_EQ(tills.state, TicketState::kOpen);
  ASSERT_FALSE(Timeline(tills.id).empty());
  EXPECT_EQ(Timeline(tills.id).back().type, "cleared");
  EXPECT_THAT(Timeline(tills.id).back().text, HasSubstr("cleared while the agent restarted"));
  EXPECT_THAT(Timeline(tills.id).back().text, HasSubstr("снято при перезапуске агента"));
  EXPECT_TRUE(all[1].condition_active) << "still held by the agent";
  EXPECT_TRUE(all[2].condition_active) << "raised by another agent";
  EXPECT_TRUE(all[3].condition_active) << "recorded by a script, not held by a watch";
  EXPECT_EQ(all[4].condition, "store.unreachable");
  EXPECT_TRUE(all[4].condition_active) << "raised by the collector itself";
  EXPECT_THAT(Notices(), ElementsAre("opened", "opened", "opened", "opened", "opened", "cleared"));
  EXPECT_THAT(NoticeColumn("subject").back(), HasSubstr("Cleared while the agent restarted"));

  // The same Hello again (a reconnect) changes nothing.
  Hello("agent-1", "1042", std::vector<HeldCondition>{{"loading.halted", "a1-halted-1"}});
  EXPECT_EQ(Notices().size(), 6u);

  // The `cleared` the old process had queued arrives from the outbox: a replay.
  Feed("1042", "tills.majority_stopped", 4, Cleared("a1-tills-1"), hello_at - 30'000, "agent-1");
  EXPECT_EQ(Notices().size(), 6u);
  EXPECT_FALSE(All()[0].condition_active);

  // Then it resolves like any cleared condition.
  clock_.Advance(std::chrono::minutes(15));
  Tick();
  EXPECT_EQ(All()[0].state, TicketState::kResolved);
  EXPECT_EQ(Notices().back(), "resolved");
}

TEST_F(TicketsTest, AfterAReconcileOutboxEventsOfTheOldEpisodeAreReplaysAndANewEpisodeComesBack) {
  const int64_t t0 = clock_.NowMs();
  Feed("1042", "tills.till_stopped", 2, {{"state", "raised"}, {"episode", "e1"}, {"till", 3}}, t0);
  clock_.Advance(std::chrono::minutes(2));
  // The agent escalated and raised a new loading episode before restarting;
  // those events are still in its outbox when the new process says Hello.
  const int64_t before_restart = clock_.NowMs() - 10'000;
  Hello("agent-1", "1042", std::vector<HeldCondition>{});
  Ticket t = Only();
  EXPECT_FALSE(t.condition_active);
  EXPECT_THAT(Notices(), ElementsAre("opened", "cleared"));
  Feed("1042", "tills.majority_stopped", 4, {{"state", "escalated"}, {"episode", "e1"}},
       before_restart);
  Feed("1042", "tills.till_stopped", 2, {{"state", "cleared"}, {"episode", "e1"}, {"till", 3}},
       before_restart + 1);
  t = Only();
  EXPECT_FALSE(t.condition_active) << "events of the episode the agent no longer holds are replays";
  EXPECT_EQ(t.priority, Priority::kNormal);
  EXPECT_THAT(Notices(), ElementsAre("opened", "cleared"));

  // A new episode, raised before the Hello and held: the condition is back.
  Feed("1042", "tills.till_stopped", 2, {{"state", "raised"}, {"episode", "e2"}, {"till", 3}},
       before_restart + 2);
  t = Only();
  EXPECT_TRUE(t.condition_active);
  EXPECT_EQ(t.last_episode, "e2");
  EXPECT_THAT(Notices(), ElementsAre("opened", "cleared", "recurred"));
  // Its agent restarts again and still holds it: nothing changes.
  Hello("agent-1", "1042", std::vector<HeldCondition>{{"tills.till_stopped", "e2"}});
  EXPECT_TRUE(Only().condition_active);
  EXPECT_EQ(Notices().size(), 3u);
}

TEST_F(TicketsTest, TicketsOpenedBeforeAnUpgradeAreReconciledByTheirTimeline) {
  Feed("1042", "loading.halted", 4, Raised("old-h1"), clock_.NowMs(), "agent-1");
  Feed("1042", "loading.erp_silent", 3, Raised("old-e1"), clock_.NowMs(), "agent-2");
  // A collector of the previous version did not record who raised what.
  ASSERT_TRUE(db_.Exec("DELETE FROM ticket_part_sources").ok());
  clock_.Advance(std::chrono::minutes(1));
  Hello("agent-1", "1042", std::vector<HeldCondition>{});
  auto all = All();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_FALSE(all[0].condition_active) << "raised by agent-1 as its timeline says";
  EXPECT_TRUE(all[1].condition_active) << "agent-2's";
}

// ---- a recurrence before resolution (item 2) ----

TEST_F(TicketsTest, AConditionBackBeforeItsTicketResolvedIsNotifiedOncePerRecurrence) {
  Feed("1042", "loading.halted", 4, Raised("h1"), clock_.NowMs());
  clock_.Advance(std::chrono::minutes(1));
  Feed("1042", "loading.halted", 4, Cleared("h1"), clock_.NowMs());
  clock_.Advance(std::chrono::minutes(5));
  Feed("1042", "loading.halted", 4, Raised("h2"), clock_.NowMs());
  const int64_t h2_at = clock_.NowMs();
  EXPECT_THAT(Notices(), ElementsAre("opened", "cleared", "recurred"));
  // A replay of the same recurrence (renumbered outbox) adds nothing.
  Feed("1042", "loading.halted", 4, Raised("h2"), h2_at);
  EXPECT_THAT(Notices(), ElementsAre("opened", "cleared", "recurred"));
  clock_.Advance(std::chrono::minutes(1));
  Feed("1042", "loading.halted", 4, Cleared("h2"), clock_.NowMs());
  clock_.Advance(std::chrono::minutes(1));
  Feed("1042", "loading.halted", 4, Raised("h3"), clock_.NowMs());
  EXPECT_THAT(Notices(), ElementsAre("opened", "cleared", "recurred", "cleared", "recurred"));
  const Ticket t = Only();
  EXPECT_TRUE(t.condition_active);
  EXPECT_EQ(t.reopen_count, 0);
  const auto keys = NoticeColumn("notice_key");
  ASSERT_EQ(keys.size(), 5u);
  EXPECT_EQ(keys[2], Cat("t", t.id, "-recurred-1"));
  EXPECT_EQ(keys[4], Cat("t", t.id, "-recurred-2"));
  EXPECT_THAT(NoticeColumn("subject")[2], HasSubstr("Condition came back"));
  EXPECT_THAT(NoticeColumn("subject")[2], HasSubstr("Условие возникло снова"));
  EXPECT_THAT(NoticeColumn("body")[2], HasSubstr(R"("type":"ticket.recurred")"));
}

// ---- reopen_within = 0 and a late backlog (item 12) ----

TEST_F(TicketsTest, ReopenWithinZeroNeverReopensAlsoForABacklogDetectedBeforeResolution) {
  policy_.reopen_within_ms = 0;
  engine_ = std::make_unique<TicketEngine>(policy_, business_, notify_);
  Feed("1042", "loading.halted", 4, Raised("h1"), clock_.NowMs());
  Feed("1042", "loading.halted", 4, Cleared("h1"), clock_.NowMs() + 1000);
  // The collector's disk was full for a while; once freed, the tick resolves
  // the ticket first, then the store's backlog arrives: a new raise detected
  // before the resolution.
  clock_.Advance(std::chrono::minutes(20));
  Tick();
  ASSERT_EQ(Only().state, TicketState::kResolved);
  const int64_t resolved_at = Only().resolved_at_ms;
  clock_.Advance(std::chrono::minutes(1));
  Feed("1042", "loading.halted", 4, Raised("h2"), resolved_at - 3 * kMinute);
  auto all = All();
  ASSERT_EQ(all.size(), 2u) << "a new ticket, not a reopen";
  EXPECT_EQ(all[0].state, TicketState::kResolved);
  EXPECT_EQ(all[0].reopen_count, 0);
  EXPECT_EQ(all[1].state, TicketState::kOpen);
  EXPECT_EQ(all[1].detected_at_ms, resolved_at - 3 * kMinute);
  EXPECT_THAT(Notices(), Not(::testing::Contains("reopened")));
}

// ---- evidence (item 13) ----

json StoppedTills(int n, int expected) {
  json tills = json::array();
  for (int i = 1; i <= n; ++i) {
    tills.push_back({{"number", i},
                     {"address", Cat("10.0.0.", i)},
                     {"probe", i % 2 ? "no_answer" : "answers"},
                     {"stopped_since_ms", Msk(2026, 11, 20, 11, 40)},
                     {"stopped_for_s", 1200},
                     {"last_heartbeat_ms", Msk(2026, 11, 20, 11, 0) + i * kMinute}});
  }
  return {{"state", "raised"},
          {"episode", "a1-tills-1"},
          {"expected", expected},
          {"stopped", n},
          {"stopped_tills", tills},
          {"likely_cause",
           {{"code", "network_or_power"},
            {"en", "Most stopped tills do not answer on the network."},
            {"ru", "Большинство остановленных касс не отвечают по сети."}}},
          {"summary_en", Cat(n, " of ", expected, " tills stopped")},
          {"summary_ru", Cat("Остановлено касс: ", n, " из ", expected)}};
}

TEST(TicketEvidenceTest, StoppedTillsListTheFirstTenWithHeartbeatProbeAndCause) {
  json ev = EvidenceOf("tills.majority_stopped", StoppedTills(12, 20));
  ASSERT_TRUE(ev.is_object());
  EXPECT_EQ(ev["stopped"], 12);
  EXPECT_EQ(ev["expected"], 20);
  EXPECT_EQ(ev["tills"].size(), 10u);
  EXPECT_EQ(ev["tills_more"], 2);
  EXPECT_EQ(ev["tills"][0]["number"], 1);
  EXPECT_EQ(ev["tills"][0]["probe"], "no_answer");
  EXPECT_EQ(ev["likely_cause"]["code"], "network_or_power");
  const std::string en = EvidenceText(ev, false), ru = EvidenceText(ev, true);
  EXPECT_THAT(en, HasSubstr("Stopped tills (12 of 20):\n"));
  EXPECT_THAT(
      en, HasSubstr("- till 1: last heartbeat 2026-11-20 11:01 MSK; no answer on the network\n"));
  EXPECT_THAT(en,
              HasSubstr("- till 2: last heartbeat 2026-11-20 11:02 MSK; answers on the network\n"));
  EXPECT_THAT(en, HasSubstr("- till 10:"));
  EXPECT_THAT(en, Not(HasSubstr("- till 11:")));
  EXPECT_THAT(en, HasSubstr("- and 2 more\n"));
  EXPECT_THAT(en, HasSubstr("Likely cause: Most stopped tills do not answer on the network."));
  EXPECT_THAT(ru, HasSubstr("Остановленные кассы (12 из 20):\n"));
  EXPECT_THAT(ru,
              HasSubstr("- касса 1: последний сигнал 2026-11-20 11:01 MSK; не отвечает по сети\n"));
  EXPECT_THAT(ru, HasSubstr("- и ещё 2\n"));
  EXPECT_THAT(ru,
              HasSubstr("Вероятная причина: Большинство остановленных касс не отвечают по сети."));
  // Ten or fewer: no "more" line.
  EXPECT_THAT(EvidenceText(EvidenceOf("tills.majority_stopped", StoppedTills(3, 5)), false),
              Not(HasSubstr("more")));
  // Nothing to show: null.
  EXPECT_TRUE(EvidenceOf("set.db_unreachable", {{"state", "raised"}, {"since_ms", 1}}).is_null());
}

TEST(TicketEvidenceTest, HaltedLoadingShowsTheStuckPackageTheOldestFileAndTheLastImport) {
  const int64_t since = Msk(2026, 11, 20, 10, 0);
  json payload = {
      {"state", "raised"},
      {"reasons", {"2 import package(s) stuck \"in process\""}},
      {"stuck_packages",
       {{{"ti", 5012},
         {"since_ms", since + 10 * kMinute},
         {"stuck_for_s", 3000},
         {"import_type", "goods"}},
        {{"ti", 5011}, {"since_ms", since}, {"stuck_for_s", 3600}, {"import_type", "prices"}}}},
      {"oldest_waiting_file",
       {{"path", "/home/set/import"},
        {"name", "goods_77.xml"},
        {"mtime_ms", since},
        {"age_s", 3600},
        {"files", 4}}},
      {"import_service", {{"checked", true}, {"ok", true}, {"error", ""}}},
      {"last_successful_import", {{"ti", 5009}, {"arrived_ms", since - 30 * kMinute}}}};
  json ev = EvidenceOf("loading.halted", payload);
  ASSERT_TRUE(ev.is_object());
  EXPECT_EQ(ev["stuck_package"]["ti"], 5011) << "the oldest one";
  EXPECT_EQ(ev["stuck_packages"], 2);
  EXPECT_EQ(ev["oldest_waiting_file"]["name"], "goods_77.xml");
  EXPECT_EQ(ev["last_successful_import"]["ti"], 5009);
  const std::string en = EvidenceText(ev, false), ru = EvidenceText(ev, true);
  EXPECT_THAT(
      en, HasSubstr(
              "Stuck package: 5011 (import type prices), \"in process\" since 2026-11-20 10:00 MSK "
              "(60 min); 2 stuck in all"));
  EXPECT_THAT(en, HasSubstr("Oldest waiting file: goods_77.xml in /home/set/import since "
                            "2026-11-20 10:00 MSK (60 min; "
                            "4 file(s) waiting)"));
  EXPECT_THAT(en, HasSubstr("Last successful import: package 5009 at 2026-11-20 09:30 MSK"));
  EXPECT_THAT(ru, HasSubstr("Зависший пакет: 5011 (тип импорта prices), «в обработке» с 2026-11-20 "
                            "10:00 MSK (60 мин); "
                            "всего зависших: 2"));
  EXPECT_THAT(ru, HasSubstr("Самый старый ожидающий файл: goods_77.xml в /home/set/import"));
  EXPECT_THAT(ru, HasSubstr("Последний успешный импорт: пакет 5009, 2026-11-20 09:30 MSK"));
  payload["last_successful_import"] = nullptr;
  EXPECT_THAT(EvidenceText(EvidenceOf("loading.halted", payload), true),
              HasSubstr("Последний успешный импорт: среди последних пакетов SET не найден"));
}

TEST_F(TicketsTest, TheTicketAndItsNotificationsCarryTheEvidence) {
  Feed("1042", "tills.till_stopped", 2,
       {{"state", "raised"},
        {"episode", "e1"},
        {"till", 7},
        {"expected", 20},
        {"stopped", 1},
        {"stopped_tills",
         {{{"number", 7}, {"probe", "answers"}, {"last_heartbeat_ms", clock_.NowMs() - kHour}}}}},
       clock_.NowMs());
  json majority = StoppedTills(11, 20);
  majority["state"] = "escalated";
  majority["episode"] = "e1";
  Feed("1042", "tills.majority_stopped", 4, majority, clock_.NowMs() + 1);
  // A single till's later event does not replace the majority's evidence.
  Feed("1042", "tills.till_stopped", 2,
       {{"state", "updated"}, {"episode", "e1"}, {"till", 7}, {"stopped_tills", json::array()}},
       clock_.NowMs() + 2);
  auto t = GetTicket(db_, support_, Only().id);
  ASSERT_TRUE(t.ok() && t->has_value());
  const json& ev = (*t)->evidence;
  ASSERT_TRUE(ev.is_object());
  EXPECT_EQ(ev["stopped"], 11);
  EXPECT_EQ(ev["tills_more"], 1);
  EXPECT_EQ(TicketJson(**t)["evidence"]["tills"].size(), 10u);
  // The escalation notice: the webhook's "evidence" and the e-mail's text.
  const json body = json::parse(NoticeColumn("body").back());
  EXPECT_EQ(body["type"], "ticket.escalated");
  EXPECT_EQ(body["evidence"]["stopped"], 11);
  EXPECT_EQ(body["evidence"]["tills"][0]["last_heartbeat_ms"], Msk(2026, 11, 20, 11, 1));
  EXPECT_EQ(body["ticket"]["evidence"]["likely_cause"]["code"], "network_or_power");
  const std::string mail = NoticeColumn("text").back();
  EXPECT_THAT(mail,
              HasSubstr("- till 1: last heartbeat 2026-11-20 11:01 MSK; no answer on the network"));
  EXPECT_THAT(mail, HasSubstr("- and 1 more"));
  EXPECT_THAT(mail,
              HasSubstr("- касса 1: последний сигнал 2026-11-20 11:01 MSK; не отвечает по сети"));
  EXPECT_THAT(mail, HasSubstr("- и ещё 1"));
}

// ---- bundle sizes on the timeline ----

TEST_F(TicketsTest, ASmallBundleOnTheTimelineIsCountedInKiB) {
  ASSERT_TRUE(InitBundleSchema(db_).ok());
  Feed("1042", "tills.majority_stopped", 4, Raised("ep-7"), clock_.NowMs());
  const int64_t id = Only().id;
  IncomingOffer offer{"fr-ep-7-raised", std::string(64, 'd'),     "flight_recorder",
                      "ep-7",           "tills.majority_stopped", 10 * 1024};
  auto decision = DecideOffer(db_, "1042", offer, 1 << 20, clock_.NowMs());
  ASSERT_TRUE(decision.ok());
  ASSERT_TRUE(
      MarkBundleComplete(db_, decision->row.id, 10 * 1024, offer.sha256, "{}", clock_.NowMs())
          .ok());
  ASSERT_EQ(Timeline(id).back().type, "bundle");
  EXPECT_THAT(Timeline(id).back().text, HasSubstr("attached, 10.0 KiB"));
}

}  // namespace
}  // namespace setdiag::collector
