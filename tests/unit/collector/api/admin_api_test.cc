// The admin API (collector/api/admin_api.h) against a real SQLite file: tickets
// are opened by feeding events through a real TicketEngine, people act
// through an ActFn that runs TicketEngine::Act on the writer connection, and
// the API reads through its own query-only connection, as in production.

#include "collector/api/admin_api.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <future>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "collector/notify/notifications.h"
#include "collector/store/storage.h"
#include "collector/tickets/production_calendar.h"
#include "collector/tickets/sla.h"
#include "collector/tickets/tickets.h"
#include "common/clock.h"
#include "common/http_server.h"
#include "common/sqlite.h"
#include "common/strings.h"
#include "temp_dir.h"

namespace setdiag::collector {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;

constexpr int64_t kNow = 1'764'000'000'000;  // 2025-11-24 16:00 UTC, a Monday

BusinessHours MoscowHours() {
  BusinessHours h;
  EXPECT_TRUE(absl::LoadTimeZone("Europe/Moscow", &h.zone));
  return h;
}

TicketPolicy Policy() {
  TicketPolicy p;
  p.tariffs = {{"expert", ExpertPolicy()}, {"free", FreePolicy()}};
  return p;
}

json Body(const HttpResponse& r) {
  json j = json::parse(r.body, nullptr, false);
  EXPECT_FALSE(j.is_discarded()) << r.body;
  return j;
}

std::string ErrorOf(const HttpResponse& r) {
  json j = Body(r);
  return j.is_object() && j.contains("error") && j["error"].is_string()
             ? j["error"].get<std::string>()
             : "";
}

std::set<int64_t> IdsOf(const json& tickets) {
  std::set<int64_t> out;
  for (const auto& t : tickets) out.insert(t.at("id").get<int64_t>());
  return out;
}

// Every row of every table, as text: "nothing changed" means this is equal.
std::string DumpDatabase(sql::Db& db) {
  std::string out;
  std::vector<std::string> tables;
  {
    auto st = db.Prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
    EXPECT_TRUE(st.ok());
    if (!st.ok()) return out;
    while (true) {
      auto row = st->Step();
      EXPECT_TRUE(row.ok());
      if (!row.ok() || !*row) break;
      tables.push_back(st->Text(0));
    }
  }
  for (const auto& table : tables) {
    Append(&out, "== ", table, "\n");
    sqlite3_stmt* raw = nullptr;
    std::string sql = Cat("SELECT * FROM \"", table, "\" ORDER BY rowid");
    if (sqlite3_prepare_v2(db.raw(), sql.c_str(), -1, &raw, nullptr) != SQLITE_OK) {
      sqlite3_finalize(raw);
      sql = Cat("SELECT * FROM \"", table, "\"");  // WITHOUT ROWID tables
      EXPECT_EQ(sqlite3_prepare_v2(db.raw(), sql.c_str(), -1, &raw, nullptr), SQLITE_OK) << table;
    }
    while (raw != nullptr && sqlite3_step(raw) == SQLITE_ROW) {
      for (int c = 0; c < sqlite3_column_count(raw); ++c) {
        const unsigned char* v = sqlite3_column_text(raw, c);
        Append(&out, v ? reinterpret_cast<const char*>(v) : "NULL", "|");
      }
      out += "\n";
    }
    sqlite3_finalize(raw);
  }
  return out;
}

class AdminApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = sql::Db::Open(path_);
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    writer_ = std::move(*db);
    ASSERT_TRUE(InitSchema(writer_).ok());
    ASSERT_TRUE(InitTicketSchema(writer_).ok());
    ASSERT_TRUE(InitNotificationSchema(writer_).ok());

    support_token_ = MustCreateUser("sam", Role::kSupport, "", &support_);
    partner_a_token_ = MustCreateUser("alice", Role::kPartner, "acme", &partner_a_);
    partner_b_token_ = MustCreateUser("bob", Role::kPartner, "bolt", &partner_b_);
    for (auto [store, partner] :
         {std::pair{"0042", "acme"}, std::pair{"0043", "acme"}, std::pair{"0077", "bolt"}}) {
      auto t = CreateStoreToken(writer_, store, partner, kNow - 3'600'000);
      ASSERT_TRUE(t.ok()) << t.status().ToString();
    }
    RaiseTills("agent-0042", "0042", "e42");
    RaiseTills("agent-0043", "0043", "e43");
    RaiseTills("agent-0077", "0077", "e77");
    auto all = ListTickets(writer_, support_, TicketQuery{});
    ASSERT_TRUE(all.ok()) << all.status().ToString();
    for (const auto& t : *all) ticket_of_store_[t.store_id] = t.id;
    ASSERT_EQ(ticket_of_store_.size(), 3u) << "the engine should open one ticket per store";
    a_ticket_ = ticket_of_store_["0042"];
    b_ticket_ = ticket_of_store_["0077"];

    auto reader = sql::Db::Open(path_);
    ASSERT_TRUE(reader.ok()) << reader.status().ToString();
    ASSERT_TRUE(reader->Exec("PRAGMA query_only=ON").ok());
    clock_.Set(kNow + 60'000);
    api_ = std::make_unique<AdminApi>(std::move(*reader), clock_,
                                      [this](const User& user, const ActionRequest& request) {
                                        return engine_.Act(writer_, user, request, clock_.NowMs());
                                      });
  }

  std::string MustCreateUser(const std::string& name, Role role, const std::string& partner,
                             User* user) {
    auto t = CreateUser(writer_, name, role, partner, kNow - 3'600'000);
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    if (!t.ok()) return "";
    auto u = LookupUser(writer_, t->secret);
    EXPECT_TRUE(u.ok() && u->has_value());
    if (u.ok() && u->has_value()) *user = **u;
    return t->secret;
  }

  // An agent says more than half of the store's tills stopped; the engine
  // opens a critical ticket.
  void RaiseTills(const std::string& agent, const std::string& store, const std::string& episode) {
    auto seq =
        RecordHello(writer_, AgentHello{agent, store, "0.2.0", "ob-" + agent}, 1, kNow - 60'000);
    ASSERT_TRUE(seq.ok()) << seq.status().ToString();
    json payload = {{"state", "raised"},
                    {"episode", episode},
                    {"summary_en", Cat("7 of 12 tills stopped in ", store)},
                    {"summary_ru", Cat("Остановлено 7 касс из 12 в магазине ", store)}};
    // Severity 4 is critical (SeverityText); the ticket's priority follows it.
    IncomingEvent ev{*seq + 1, "tills.majority_stopped", 4, kNow - 30'000, payload.dump()};
    auto n = InsertEvents(writer_, agent, store, {ev}, kNow);
    ASSERT_TRUE(n.ok()) << n.status().ToString();
    ASSERT_EQ(*n, 1);
    EventQuery q;
    q.store_id = store;
    auto rows = ListEvents(writer_, support_, q);
    ASSERT_TRUE(rows.ok()) << rows.status().ToString();
    ASSERT_EQ(rows->size(), 1u);
    ASSERT_GT(rows->front().id, 0);
    auto st = engine_.OnEvents(writer_, agent, store, *rows, kNow);
    ASSERT_TRUE(st.ok()) << st.ToString();
  }

  HttpResponse Call(const std::string& method, const std::string& target, const std::string& token,
                    const std::string& body = "") {
    HttpRequest r;
    r.method = method;
    r.target = target;
    if (!token.empty()) r.authorization = "Bearer " + token;
    r.body = body;
    return api_->Handle(r);
  }
  HttpResponse Get(const std::string& target, const std::string& token) {
    return Call("GET", target, token);
  }
  HttpResponse Post(const std::string& target, const std::string& token,
                    const std::string& body = "") {
    return Call("POST", target, token, body);
  }

  Ticket MustGetTicket(int64_t id) {
    auto t = GetTicket(writer_, support_, id);
    EXPECT_TRUE(t.ok() && t->has_value()) << id;
    return t.ok() && t->has_value() ? **t : Ticket{};
  }
  size_t TimelineLength(int64_t id) {
    auto tl = GetTimeline(writer_, id);
    EXPECT_TRUE(tl.ok());
    return tl.ok() ? tl->size() : 0;
  }

  testutil::TempDir dir_;
  std::string path_ = dir_.File("collector.db");
  sql::Db writer_;
  FakeClock clock_{kNow};
  BusinessClock business_{ProductionCalendar(), MoscowHours()};
  TicketEngine engine_{Policy(), business_, NotifyConfig{}};
  std::unique_ptr<AdminApi> api_;

  User support_, partner_a_, partner_b_;
  std::string support_token_, partner_a_token_, partner_b_token_;
  std::map<std::string, int64_t> ticket_of_store_;
  int64_t a_ticket_ = 0, b_ticket_ = 0;
};

// ---- visibility ----

struct Endpoint {
  std::string method;
  std::string target;  // {T}: partner A's ticket id
  std::string body;
  std::string expected_error;  // what a nonexistent resource would also get
};

TEST_F(AdminApiTest, PartnerCannotReadOrChangeAnotherPartnersTicketOrStoreOnAnyEndpoint) {
  const std::string t = Cat(a_ticket_);
  const std::string no_ticket = Cat("no ticket ", t, " visible to you");
  const std::string no_store = "no store 0042 visible to you";
  const std::vector<Endpoint> endpoints = {
      {"GET", "/api/v1/tickets/" + t, "", no_ticket},
      {"POST", "/api/v1/tickets/" + t + "/ack", "", no_ticket},
      {"POST", "/api/v1/tickets/" + t + "/ack", R"({"text":"on it"})", no_ticket},
      {"POST", "/api/v1/tickets/" + t + "/notes", R"({"text":"peek"})", no_ticket},
      {"POST", "/api/v1/tickets/" + t + "/error", R"({"text":"bug"})", no_ticket},
      {"POST", "/api/v1/tickets/" + t + "/workaround", R"({"text":"restart"})", no_ticket},
      {"POST", "/api/v1/tickets/" + t + "/resolve", R"({"text":"done"})", no_ticket},
      {"GET", "/api/v1/tickets?store=0042", "", no_store},
      {"GET", "/api/v1/tickets?store=0042&state=all", "", no_store},
      {"GET", "/api/v1/stores/0042", "", no_store},
      {"GET", "/api/v1/stores?store=0042", "", no_store},
      {"GET", "/api/v1/events?store=0042", "", no_store},
      {"GET", "/api/v1/agents?store=0042", "", no_store},
  };
  const Ticket before = MustGetTicket(a_ticket_);
  const size_t timeline_before = TimelineLength(a_ticket_);
  const std::string db_before = DumpDatabase(writer_);
  for (const auto& e : endpoints) {
    SCOPED_TRACE(Cat(e.method, " ", e.target, " ", e.body));
    HttpResponse r = Call(e.method, e.target, partner_b_token_, e.body);
    EXPECT_EQ(r.status, 404) << r.body;
    EXPECT_EQ(ErrorOf(r), e.expected_error);
    EXPECT_THAT(r.body, ::testing::Not(HasSubstr("acme")));
    // The owner gets an answer on the same endpoint (reads only, so that the
    // loop leaves partner A's ticket as it was).
    if (e.method == "GET") {
      EXPECT_EQ(Call(e.method, e.target, partner_a_token_).status, 200);
    }
  }
  const Ticket after = MustGetTicket(a_ticket_);
  EXPECT_EQ(after.state, before.state);
  EXPECT_EQ(after.acknowledged_at_ms, before.acknowledged_at_ms);
  EXPECT_EQ(after.error_registered_at_ms, before.error_registered_at_ms);
  EXPECT_EQ(after.resolved_at_ms, before.resolved_at_ms);
  EXPECT_EQ(TicketJson(after), TicketJson(before));
  EXPECT_EQ(TimelineLength(a_ticket_), timeline_before);
  EXPECT_EQ(DumpDatabase(writer_), db_before);
}

TEST_F(AdminApiTest, AnotherPartnersTicketLooksExactlyLikeANonexistentOne) {
  constexpr int64_t kMissing = 987'654'321;
  for (const char* suffix : {"", "/ack", "/notes", "/error", "/workaround", "/resolve"}) {
    SCOPED_TRACE(suffix);
    std::string method = *suffix ? "POST" : "GET";
    std::string body = *suffix ? R"({"text":"x"})" : "";
    HttpResponse theirs =
        Call(method, Cat("/api/v1/tickets/", a_ticket_, suffix), partner_b_token_, body);
    HttpResponse missing =
        Call(method, Cat("/api/v1/tickets/", kMissing, suffix), partner_b_token_, body);
    EXPECT_EQ(theirs.status, 404);
    EXPECT_EQ(missing.status, 404);
    EXPECT_EQ(ErrorOf(theirs), Cat("no ticket ", a_ticket_, " visible to you"));
    EXPECT_EQ(ErrorOf(missing), Cat("no ticket ", kMissing, " visible to you"));
  }
  HttpResponse theirs = Get("/api/v1/stores/0042", partner_b_token_);
  HttpResponse missing = Get("/api/v1/stores/9999", partner_b_token_);
  EXPECT_EQ(theirs.status, 404);
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(ErrorOf(missing), "no store 9999 visible to you");
}

TEST_F(AdminApiTest, SupportSeesEveryTicketAndStore) {
  HttpResponse r = Get("/api/v1/tickets", support_token_);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(IdsOf(Body(r)["tickets"]),
            (std::set<int64_t>{a_ticket_, ticket_of_store_["0043"], b_ticket_}));
  for (const auto& [store, id] : ticket_of_store_) {
    SCOPED_TRACE(store);
    HttpResponse one = Get(Cat("/api/v1/tickets/", id), support_token_);
    ASSERT_EQ(one.status, 200) << one.body;
    EXPECT_EQ(Body(one)["ticket"], TicketJson(MustGetTicket(id)));
    EXPECT_EQ(Get(Cat("/api/v1/stores/", store), support_token_).status, 200);
  }
  HttpResponse stores = Get("/api/v1/stores", support_token_);
  ASSERT_EQ(stores.status, 200) << stores.body;
  std::set<std::string> ids;
  const json listed = Body(stores)["stores"];
  for (const auto& s : listed) ids.insert(s["store_id"].get<std::string>());
  EXPECT_EQ(ids, (std::set<std::string>{"0042", "0043", "0077"}));
}

TEST_F(AdminApiTest, PartnerSeesOnlyItsOwnTicketsAndStores) {
  HttpResponse r = Get("/api/v1/tickets", partner_a_token_);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(IdsOf(Body(r)["tickets"]), (std::set<int64_t>{a_ticket_, ticket_of_store_["0043"]}));
  r = Get("/api/v1/tickets", partner_b_token_);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(IdsOf(Body(r)["tickets"]), (std::set<int64_t>{b_ticket_}));

  HttpResponse stores = Get("/api/v1/stores", partner_a_token_);
  ASSERT_EQ(stores.status, 200) << stores.body;
  std::set<std::string> ids;
  const json listed = Body(stores)["stores"];
  for (const auto& s : listed) {
    ids.insert(s["store_id"].get<std::string>());
    EXPECT_EQ(s["partner"], "acme");
  }
  EXPECT_EQ(ids, (std::set<std::string>{"0042", "0043"}));

  HttpResponse events = Get("/api/v1/events", partner_b_token_);
  ASSERT_EQ(events.status, 200) << events.body;
  json ev = Body(events)["events"];
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0]["store_id"], "0077");
  HttpResponse agents = Get("/api/v1/agents", partner_b_token_);
  ASSERT_EQ(agents.status, 200) << agents.body;
  json ag = Body(agents)["agents"];
  ASSERT_EQ(ag.size(), 1u);
  EXPECT_EQ(ag[0]["agent_id"], "agent-0077");
}

// ---- reads ----

TEST_F(AdminApiTest, TicketDetailHasTheTicketAndItsTimeline) {
  HttpResponse r = Get(Cat("/api/v1/tickets/", a_ticket_), partner_a_token_);
  ASSERT_EQ(r.status, 200) << r.body;
  json body = Body(r);
  EXPECT_EQ(body["ticket"], TicketJson(MustGetTicket(a_ticket_)));
  auto timeline = GetTimeline(writer_, a_ticket_);
  ASSERT_TRUE(timeline.ok());
  ASSERT_FALSE(timeline->empty()) << "opening a ticket should leave a timeline entry";
  json expected = json::array();
  for (const auto& e : *timeline) expected.push_back(TimelineJson(e));
  EXPECT_EQ(body["timeline"], expected);
}

TEST_F(AdminApiTest, ListFiltersByStoreStatePriorityConditionAndPages) {
  auto ids = [this](const std::string& query) {
    HttpResponse r = Get("/api/v1/tickets" + query, support_token_);
    EXPECT_EQ(r.status, 200) << query << ": " << r.body;
    return IdsOf(Body(r)["tickets"]);
  };
  const int64_t t43 = ticket_of_store_["0043"];
  EXPECT_EQ(ids("?store=0043"), (std::set<int64_t>{t43}));
  EXPECT_EQ(ids("?store=0077"), (std::set<int64_t>{b_ticket_}));
  EXPECT_EQ(ids("?store=5555"), (std::set<int64_t>{}))
      << "support: an unknown store is an empty list";
  EXPECT_EQ(ids("?priority=critical").size(), 3u);
  EXPECT_EQ(ids("?priority=normal"), (std::set<int64_t>{}));
  const std::string condition = MustGetTicket(a_ticket_).condition;
  EXPECT_EQ(ids("?condition=" + condition).size(), 3u);
  EXPECT_EQ(ids("?condition=no.such.condition"), (std::set<int64_t>{}));

  // States: acknowledge one, resolve another.
  ASSERT_EQ(Post(Cat("/api/v1/tickets/", a_ticket_, "/ack"), partner_a_token_).status, 200);
  ASSERT_EQ(
      Post(Cat("/api/v1/tickets/", b_ticket_, "/resolve"), partner_b_token_, R"({"text":"fixed"})")
          .status,
      200);
  EXPECT_EQ(ids("?state=open"), (std::set<int64_t>{t43}));
  EXPECT_EQ(ids("?state=acknowledged"), (std::set<int64_t>{a_ticket_}));
  EXPECT_EQ(ids("?state=resolved"), (std::set<int64_t>{b_ticket_}));
  EXPECT_EQ(ids("?state=active"), (std::set<int64_t>{a_ticket_, t43}));
  EXPECT_EQ(ids("?state=all").size(), 3u);
  EXPECT_EQ(ids("").size(), 3u);
  EXPECT_EQ(ids("?state=active&store=0042"), (std::set<int64_t>{a_ticket_}));

  // Paging: ascending ids, next_after is the last id returned.
  std::vector<int64_t> seen;
  int64_t after = 0;
  for (int page = 0; page < 5; ++page) {
    HttpResponse r = Get(Cat("/api/v1/tickets?limit=1&after=", after), support_token_);
    ASSERT_EQ(r.status, 200) << r.body;
    json body = Body(r);
    if (body["tickets"].empty()) {
      EXPECT_EQ(body["next_after"], after);
      break;
    }
    ASSERT_EQ(body["tickets"].size(), 1u);
    seen.push_back(body["tickets"][0]["id"].get<int64_t>());
    EXPECT_EQ(body["next_after"], seen.back());
    after = seen.back();
  }
  EXPECT_EQ(seen, (std::vector<int64_t>{a_ticket_, t43, b_ticket_}));
}

TEST_F(AdminApiTest, StoredTextWithInvalidUtf8IsStillAnswered) {
  // Text that reached the database by another way than the API (which
  // refuses it) must not turn every read of the ticket into a 500.
  ActionRequest note{a_ticket_, TicketAction::kNote, "broken \xff\xfe byte"};
  ASSERT_TRUE(engine_.Act(writer_, support_, note, clock_.NowMs()).ok());
  HttpResponse r = Get(Cat("/api/v1/tickets/", a_ticket_), support_token_);
  ASSERT_EQ(r.status, 200) << r.body;
  auto j = json::parse(r.body);
  EXPECT_THAT(j["timeline"].back()["text"].get<std::string>(), HasSubstr("broken"));
}

TEST_F(AdminApiTest, StoresShowAgentsAndCurrentConditions) {
  HttpResponse r = Get("/api/v1/stores/0042", partner_a_token_);
  ASSERT_EQ(r.status, 200) << r.body;
  json s = Body(r)["store"];
  EXPECT_EQ(s["store_id"], "0042");
  EXPECT_EQ(s["partner"], "acme");
  EXPECT_EQ(s["agents"], json::array({"agent-0042"}));
  EXPECT_EQ(s["agent_version"], "0.2.0");
  EXPECT_GT(s["last_seen_ms"].get<int64_t>(), 0);
  ASSERT_EQ(s["conditions"].size(), 1u);
  EXPECT_EQ(s["conditions"][0]["ticket_id"], a_ticket_);
  EXPECT_EQ(s["conditions"][0]["priority"], "critical");
  EXPECT_EQ(s["conditions"][0]["active"], true);
  EXPECT_EQ(s["conditions"][0]["condition"], MustGetTicket(a_ticket_).condition);

  r = Get("/api/v1/stores?store=0043", partner_a_token_);
  ASSERT_EQ(r.status, 200) << r.body;
  ASSERT_EQ(Body(r)["stores"].size(), 1u);
  EXPECT_EQ(Body(r)["stores"][0]["store_id"], "0043");

  EXPECT_EQ(Get("/api/v1/stores/nosuch", support_token_).status, 404);
}

// Stores come a page at a time, by store id: `after` the previous page's
// next_after, `limit` 1..1000; a partner's pages hold only its stores.
TEST_F(AdminApiTest, StoresArePagedByStoreId) {
  auto ids = [](const HttpResponse& r) {
    std::vector<std::string> out;
    const json body = Body(r);  // not a temporary's member in the range-for
    for (const auto& s : body["stores"]) out.push_back(s["store_id"].get<std::string>());
    return out;
  };
  HttpResponse r = Get("/api/v1/stores?limit=2", support_token_);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(ids(r), (std::vector<std::string>{"0042", "0043"}));
  EXPECT_EQ(Body(r)["next_after"], "0043");
  r = Get("/api/v1/stores?limit=2&after=0043", support_token_);
  EXPECT_EQ(ids(r), (std::vector<std::string>{"0077"}));
  ASSERT_EQ(Body(r)["stores"][0]["conditions"].size(), 1u)
      << "a later page has its stores' conditions";
  EXPECT_EQ(Body(r)["stores"][0]["conditions"][0]["ticket_id"], b_ticket_);
  r = Get("/api/v1/stores?after=0077", support_token_);
  EXPECT_EQ(ids(r), std::vector<std::string>{});
  EXPECT_EQ(Body(r)["next_after"], "0077");
  // A partner pages through its own stores only.
  r = Get("/api/v1/stores?limit=1&after=0042", partner_a_token_);
  EXPECT_EQ(ids(r), (std::vector<std::string>{"0043"}));
  r = Get("/api/v1/stores?after=0043", partner_a_token_);
  EXPECT_EQ(ids(r), std::vector<std::string>{}) << "bolt's 0077 sorts after, but is not acme's";
  for (const char* bad :
       {"/api/v1/stores?limit=0", "/api/v1/stores?limit=1001", "/api/v1/stores?after=a%20b"}) {
    EXPECT_EQ(Get(bad, support_token_).status, 400) << bad;
  }
}

// ---- actions ----

TEST_F(AdminApiTest, OwnerActsOnItsTicketThroughEveryAction) {
  const std::string base = Cat("/api/v1/tickets/", a_ticket_);
  size_t length = TimelineLength(a_ticket_);

  HttpResponse r = Post(base + "/ack", partner_a_token_, R"({"text":"looking"})");
  ASSERT_EQ(r.status, 200) << r.body;
  Ticket t = MustGetTicket(a_ticket_);
  EXPECT_EQ(t.state, TicketState::kAcknowledged);
  EXPECT_EQ(t.acknowledged_by, "alice");
  EXPECT_EQ(Body(r)["ticket"], TicketJson(t));
  EXPECT_GT(TimelineLength(a_ticket_), length);
  length = TimelineLength(a_ticket_);

  r = Post(base + "/notes", partner_a_token_, R"({"text":"Позвонили в магазин"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(TimelineLength(a_ticket_), length + 1);
  auto timeline = GetTimeline(writer_, a_ticket_);
  ASSERT_TRUE(timeline.ok());
  EXPECT_EQ(timeline->back().text, "Позвонили в магазин");
  EXPECT_EQ(timeline->back().type, "note");

  clock_.Advance(std::chrono::minutes(5));
  r = Post(base + "/error", partner_a_token_, R"({"text":"import service leaks connections"})");
  ASSERT_EQ(r.status, 200) << r.body;
  t = MustGetTicket(a_ticket_);
  EXPECT_EQ(t.error_registered_at_ms, clock_.NowMs());
  EXPECT_GT(t.workaround.due_ms, 0);
  EXPECT_EQ(t.workaround.met_at_ms, 0);

  clock_.Advance(std::chrono::minutes(5));
  r = Post(base + "/workaround", partner_a_token_, R"({"text":"restart the import nightly"})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(MustGetTicket(a_ticket_).workaround.met_at_ms, clock_.NowMs());

  r = Post(base + "/resolve", partner_a_token_, R"({"text":"tills back"})");
  ASSERT_EQ(r.status, 200) << r.body;
  t = MustGetTicket(a_ticket_);
  EXPECT_EQ(t.state, TicketState::kResolved);
  EXPECT_EQ(t.resolution, "tills back");
  EXPECT_EQ(t.resolved_by, "alice");
}

TEST_F(AdminApiTest, SupportActsOnAnyTicket) {
  HttpResponse r = Post(Cat("/api/v1/tickets/", b_ticket_, "/ack"), support_token_);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(MustGetTicket(b_ticket_).state, TicketState::kAcknowledged);
  EXPECT_EQ(MustGetTicket(b_ticket_).acknowledged_by, "sam");
}

// ---- validation ----

TEST_F(AdminApiTest, BadTicketIdsAre400) {
  for (const char* id : {"abc", "0", "-1", "+1", "1.5", "99999999999999999999", "1e3", "%31x"}) {
    SCOPED_TRACE(id);
    HttpResponse r = Get(Cat("/api/v1/tickets/", id), support_token_);
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_THAT(ErrorOf(r), HasSubstr("must be a positive integer"));
    r = Post(Cat("/api/v1/tickets/", id, "/notes"), support_token_, R"({"text":"x"})");
    EXPECT_EQ(r.status, 400) << r.body;
  }
  HttpResponse r = Get("/api/v1/stores/bad%20id", support_token_);
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_THAT(ErrorOf(r), HasSubstr("store id 'bad id'"));
}

TEST_F(AdminApiTest, BadBodiesAre400AndNameTheField) {
  const std::string base = Cat("/api/v1/tickets/", a_ticket_);
  const std::string db_before = DumpDatabase(writer_);
  struct Case {
    std::string endpoint, body, error_part;
  };
  const std::vector<Case> cases = {
      {"/notes", "", "missing field 'text'"},
      {"/notes", "{}", "missing field 'text'"},
      {"/notes", R"({"text":null})", "missing field 'text'"},
      {"/error", "not json", "JSON object"},
      {"/workaround", "[\"text\"]", "JSON object"},
      {"/notes", R"({"text":5})", "field 'text' must be a string"},
      {"/notes", R"({"text":""})", "field 'text' must not be empty"},
      {"/error", R"({"text":"   \n"})", "field 'text' must not be empty"},
      {"/ack", R"({"note":"x"})", "unknown field 'note'"},
      {"/ack", "{\"text\": \"x\"", "JSON object"},
      {"/notes", json{{"text", std::string(AdminApi::kMaxTextChars + 1, 'x')}}.dump(),
       "at most 10000"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(Cat(c.endpoint, " ", c.body.substr(0, 40)));
    HttpResponse r = Post(base + c.endpoint, partner_a_token_, c.body);
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_THAT(ErrorOf(r), HasSubstr(c.error_part));
  }
  EXPECT_EQ(DumpDatabase(writer_), db_before);

  // The cap counts characters, not bytes: 10,000 Cyrillic letters pass.
  std::string cyrillic;
  for (size_t i = 0; i < AdminApi::kMaxTextChars; ++i) cyrillic += "ж";
  HttpResponse r = Post(base + "/notes", partner_a_token_, json{{"text", cyrillic}}.dump());
  EXPECT_EQ(r.status, 200) << r.body.substr(0, 200);
  // Acknowledge and resolve take no text at all.
  EXPECT_EQ(Post(base + "/ack", partner_a_token_, "").status, 200);
  EXPECT_EQ(Post(base + "/resolve", partner_a_token_, "{}").status, 200);
}

TEST_F(AdminApiTest, BadQueryParametersAre400) {
  for (const char* q :
       {"/api/v1/tickets?state=closed", "/api/v1/tickets?priority=urgent",
        "/api/v1/tickets?limit=0", "/api/v1/tickets?limit=1001", "/api/v1/tickets?after=-1",
        "/api/v1/tickets?after=x", "/api/v1/tickets?store=bad%20store",
        "/api/v1/tickets?condition=a%20b", "/api/v1/stores?store=%2F"}) {
    SCOPED_TRACE(q);
    HttpResponse r = Get(q, support_token_);
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_FALSE(ErrorOf(r).empty());
  }
}

TEST_F(AdminApiTest, EveryEndpointNeedsAValidToken) {
  const std::string t = Cat(a_ticket_);
  const std::vector<std::pair<std::string, std::string>> endpoints = {
      {"GET", "/api/v1/tickets"},
      {"GET", "/api/v1/tickets/" + t},
      {"POST", "/api/v1/tickets/" + t + "/ack"},
      {"POST", "/api/v1/tickets/" + t + "/notes"},
      {"POST", "/api/v1/tickets/" + t + "/error"},
      {"POST", "/api/v1/tickets/" + t + "/workaround"},
      {"POST", "/api/v1/tickets/" + t + "/resolve"},
      {"GET", "/api/v1/stores"},
      {"GET", "/api/v1/stores/0042"},
      {"GET", "/api/v1/events"},
      {"GET", "/api/v1/agents"},
  };
  const std::string db_before = DumpDatabase(writer_);
  for (const auto& [method, target] : endpoints) {
    SCOPED_TRACE(Cat(method, " ", target));
    HttpResponse r = Call(method, target, "", R"({"text":"x"})");
    EXPECT_EQ(r.status, 401) << r.body;
    EXPECT_THAT(ErrorOf(r), HasSubstr("Authorization: Bearer"));
    r = Call(method, target, "sdu_not_a_real_token", R"({"text":"x"})");
    EXPECT_EQ(r.status, 401) << r.body;
    EXPECT_EQ(ErrorOf(r), "unknown or revoked token");
  }
  EXPECT_EQ(DumpDatabase(writer_), db_before);
}

TEST_F(AdminApiTest, ARevokedOrDeletedUsersTokenIsRefusedAtItsNextRequest) {
  // `setdiag-collector user revoke` writes through its own connection; the
  // API's connection reads the change at the very next request.
  ASSERT_EQ(Get("/api/v1/tickets", partner_a_token_).status, 200);
  ASSERT_EQ(Get("/api/v1/tickets", partner_b_token_).status, 200);
  auto revoked = RevokeUser(writer_, "", "alice", kNow);
  ASSERT_TRUE(revoked.ok()) << revoked.status().ToString();
  ASSERT_EQ(*revoked, 1);
  for (const char* target : {"/api/v1/tickets", "/api/v1/stores", "/api/v1/events"}) {
    HttpResponse r = Get(target, partner_a_token_);
    EXPECT_EQ(r.status, 401) << target << ": " << r.body;
    EXPECT_EQ(ErrorOf(r), "unknown or revoked token");
  }
  HttpResponse ack = Post(Cat("/api/v1/tickets/", a_ticket_, "/ack"), partner_a_token_);
  EXPECT_EQ(ack.status, 401) << ack.body;
  EXPECT_EQ(MustGetTicket(a_ticket_).state, TicketState::kOpen) << "a revoked user changes nothing";

  auto deleted = DeleteUser(writer_, partner_b_.id, "");
  ASSERT_TRUE(deleted.ok());
  ASSERT_EQ(*deleted, 1);
  EXPECT_EQ(Get("/api/v1/tickets", partner_b_token_).status, 401);
  EXPECT_EQ(Get("/api/v1/tickets", support_token_).status, 200) << "the others keep working";
}

TEST_F(AdminApiTest, WrongMethodOnAKnownPathIs405UnknownPathIs404) {
  const std::string t = Cat(a_ticket_);
  for (const auto& [method, target] :
       std::vector<std::pair<std::string, std::string>>{{"POST", "/api/v1/tickets"},
                                                        {"DELETE", "/api/v1/tickets/" + t},
                                                        {"GET", "/api/v1/tickets/" + t + "/ack"},
                                                        {"PUT", "/api/v1/tickets/" + t + "/notes"},
                                                        {"POST", "/api/v1/stores"},
                                                        {"POST", "/api/v1/stores/0042"},
                                                        {"POST", "/api/v1/events"},
                                                        {"POST", "/api/v1/agents"}}) {
    SCOPED_TRACE(Cat(method, " ", target));
    HttpResponse r = Call(method, target, support_token_);
    EXPECT_EQ(r.status, 405) << r.body;
    EXPECT_THAT(ErrorOf(r), HasSubstr("not allowed"));
  }
  for (const char* target : {"/api/v1/tickets/1/frobnicate", "/api/v1/tickets/", "/api/v1/nothing",
                             "/api/v1/tickets/1/ack/more"}) {
    SCOPED_TRACE(target);
    EXPECT_EQ(Post(target, support_token_).status, 404);
  }
}

// The API maps what the writer answers, whatever the engine decides.
// Sends raw request bytes to 127.0.0.1:`port` and reads the answer until
// the server closes (requests say Connection: close). The status (-1 when
// nothing came within 10 s) and the body.
std::pair<int, std::string> RawHttp(uint16_t port, const std::string& request) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval timeout{10, 0};  // a hung server fails the test instead of blocking it
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return {-1, "connect failed"};
  }
  for (size_t sent = 0; sent < request.size();) {
    ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may answer and stop reading early
    sent += static_cast<size_t>(n);
  }
  std::string answer;
  char buf[4096];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;)
    answer.append(buf, static_cast<size_t>(n));
  ::close(fd);
  int status = -1;
  std::sscanf(answer.c_str(), "HTTP/1.1 %d", &status);
  const size_t body = answer.find("\r\n\r\n");
  return {status, body == std::string::npos ? answer : answer.substr(body + 4)};
}

// ---- the request limits, over a real socket (common/http_server.h) ----

class AdminApiHttpTest : public AdminApiTest {
 protected:
  void SetUp() override {
    AdminApiTest::SetUp();
    server_ =
        std::make_unique<HttpServer>([this](const HttpRequest& r) { return api_->Handle(r); });
    ASSERT_TRUE(server_->Start("127.0.0.1", 0).ok());
  }
  void TearDown() override { server_->Stop(); }

  // Sends `target` and header `fields` (each "Name: value"), then reads the
  // answer to the end (the server closes: Connection: close). Returns the
  // status and the body.
  std::pair<int, std::string> Send(const std::string& target,
                                   const std::vector<std::string>& fields) {
    std::string request = Cat("GET ", target, " HTTP/1.1\r\n");
    for (const auto& f : fields) Append(&request, f, "\r\n");
    request += "\r\n";
    return RawHttp(server_->port(), request);
  }

  std::unique_ptr<HttpServer> server_;
};

TEST_F(AdminApiHttpTest, AUrlOverTheLimitIs414WithTheLimit) {
  const std::vector<std::string> fields = {"Host: t", "Connection: close"};
  // Exactly at the limit it reaches the API (no such endpoint).
  EXPECT_EQ(Send("/" + std::string(kMaxRequestTargetBytes - 1, 'a'), fields).first, 404);
  for (size_t size : {kMaxRequestTargetBytes + 1, size_t{10'000}, size_t{100'000}}) {
    SCOPED_TRACE(size);
    auto [status, body] = Send("/" + std::string(size - 1, 'a'), fields);
    EXPECT_EQ(status, 414) << body;
    EXPECT_EQ(json::parse(body, nullptr, false).value("error", ""),
              "request target (URL) over 4096 bytes")
        << body;
  }
  // With a large header block too, the URL is what is named.
  auto [status, body] =
      Send("/" + std::string(9'999, 'a'), {"Host: t", "X-Pad: " + std::string(20'000, 'p')});
  EXPECT_EQ(status, 414) << body;
  // The API still answers afterwards.
  EXPECT_EQ(Send("/healthz", fields).first, 200);
}

TEST_F(AdminApiHttpTest, HeaderFieldsOverTheLimitAre431WithTheLimit) {
  // "Host: t\r\n" and "Connection: close\r\n" take 28 bytes, "X-Pad: ...\r\n" 9 more than its
  // value.
  const size_t pad_at_limit = kMaxHeaderFieldsBytes - 28 - 9;
  auto with_pad = [](size_t n) {
    return std::vector<std::string>{"Host: t", "Connection: close",
                                    "X-Pad: " + std::string(n, 'p')};
  };
  EXPECT_EQ(Send("/healthz", with_pad(pad_at_limit)).first, 200);
  std::vector<std::string> many = {"Host: t", "Connection: close"};
  for (int i = 0; i < 400; ++i) many.push_back(Cat("X-Field-", i, ": ", std::string(20, 'v')));
  for (const auto& fields :
       {with_pad(pad_at_limit + 1), with_pad(20'000), with_pad(100'000), many}) {
    SCOPED_TRACE(fields.size());
    auto [status, body] = Send("/healthz", fields);
    EXPECT_EQ(status, 431) << body;
    EXPECT_EQ(json::parse(body, nullptr, false).value("error", ""),
              "request header fields over 8192 bytes")
        << body;
  }
  // A long URL within its limit does not make the header block's fault a 414.
  auto [status, body] = Send("/healthz?" + std::string(4'000, 'q'), with_pad(20'000));
  EXPECT_EQ(status, 431) << body;
  EXPECT_EQ(Send("/healthz", with_pad(10)).first, 200);
}

// With workers (as the collector runs it, http.workers), a request that
// waits (here an action held until the test releases it) holds up neither
// /healthz nor other reads: each runs on its own worker with its own read
// connection. Without workers or without a reader pool, the GET below
// would wait for the action and the test would time out.
class AdminApiWorkersTest : public AdminApiTest {
 protected:
  void SetUp() override {
    AdminApiTest::SetUp();
    auto reader = sql::Db::Open(path_);
    ASSERT_TRUE(reader.ok());
    api_ = std::make_unique<AdminApi>(std::move(*reader), clock_,
                                      [this](const User& user, const ActionRequest& request) {
                                        entered_.set_value();
                                        release_.get_future().wait();
                                        return engine_.Act(writer_, user, request, clock_.NowMs());
                                      });
    api_->set_reader_pool([this]() { return sql::Db::Open(path_); }, 4);
    HttpServer::Options options;
    options.workers = 4;
    options.inline_handler = &AdminApi::HandleInline;
    server_ = std::make_unique<HttpServer>([this](const HttpRequest& r) { return api_->Handle(r); },
                                           options);
    ASSERT_TRUE(server_->Start("127.0.0.1", 0).ok());
  }
  void TearDown() override { server_->Stop(); }

  // One request over its own connection; the status, or -1 when no answer
  // came within 10 s.
  int Request(const std::string& method, const std::string& target, const std::string& token) {
    std::string request = Cat(method, " ", target, " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n");
    if (!token.empty()) Append(&request, "Authorization: Bearer ", token, "\r\n");
    request += "Content-Length: 0\r\n\r\n";
    return RawHttp(server_->port(), request).first;
  }

  std::promise<void> entered_, release_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(AdminApiWorkersTest, ARequestThatWaitsHoldsUpNeitherHealthzNorOtherReads) {
  std::thread ack([&] {
    EXPECT_EQ(Request("POST", Cat("/api/v1/tickets/", a_ticket_, "/ack"), support_token_), 200);
  });
  entered_.get_future().wait();  // the action holds a worker and a read connection now
  EXPECT_EQ(Request("GET", "/healthz", ""), 200);
  EXPECT_EQ(Request("GET", "/api/v1/stores", support_token_), 200);
  EXPECT_EQ(Request("GET", Cat("/api/v1/tickets/", b_ticket_), support_token_), 200);
  release_.set_value();
  ack.join();
  EXPECT_EQ(MustGetTicket(a_ticket_).state, TicketState::kAcknowledged);
}

TEST(AdminApiStatusTest, ActionStatusesMapToHttp) {
  testutil::TempDir dir;
  auto db = sql::Db::Open(dir.File("c.db"));
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE(InitSchema(*db).ok());
  auto token = CreateUser(*db, "sam", Role::kSupport, "", kNow);
  ASSERT_TRUE(token.ok());
  FakeClock clock(kNow);
  absl::Status next;
  ActionRequest seen;
  AdminApi api(std::move(*db), clock,
               [&](const User& user, const ActionRequest& request) -> absl::StatusOr<Ticket> {
                 EXPECT_EQ(user.name, "sam");
                 seen = request;
                 if (!next.ok()) return next;
                 Ticket t;
                 t.id = request.ticket_id;
                 return t;
               });
  auto post = [&](const std::string& target, const std::string& body) {
    return api.Handle(HttpRequest{"POST", target, "Bearer " + token->secret, body});
  };
  struct Case {
    absl::Status status;
    int http;
    std::string error;
  };
  const std::vector<Case> cases = {
      {absl::NotFoundError("ticket 7 belongs to partner acme"), 404, "no ticket 7 visible to you"},
      {absl::FailedPreconditionError("ticket 7 is resolved; reopen it first"), 409,
       "ticket 7 is resolved; reopen it first"},
      {absl::InvalidArgumentError("the note is too long"), 400, "the note is too long"},
      {absl::UnavailableError("database is locked"), 503,
       "the change was not recorded (database is locked); try again"},
      {absl::InternalError("boom"), 503, "the change was not recorded (boom); try again"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.status.ToString());
    next = c.status;
    HttpResponse r = post("/api/v1/tickets/7/notes", R"({"text":"hi"})");
    EXPECT_EQ(r.status, c.http);
    EXPECT_EQ(ErrorOf(r), c.error) << "the engine's own words must not leak through a 404";
  }
  next = absl::OkStatus();
  struct Route {
    const char* endpoint;
    TicketAction action;
  };
  for (const auto& [endpoint, action] :
       {Route{"ack", TicketAction::kAcknowledge}, Route{"notes", TicketAction::kNote},
        Route{"error", TicketAction::kRegisterError},
        Route{"workaround", TicketAction::kWorkaround}, Route{"resolve", TicketAction::kResolve}}) {
    SCOPED_TRACE(endpoint);
    HttpResponse r = post(Cat("/api/v1/tickets/9/", endpoint), R"({"text":"  why  "})");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(seen.ticket_id, 9);
    EXPECT_EQ(seen.action, action);
    EXPECT_EQ(seen.text, "why");
    EXPECT_TRUE(Body(r).contains("ticket"));
  }
}

TEST(AdminApiStatusTest, WithoutAnActionFunctionPostsAre503) {
  testutil::TempDir dir;
  auto db = sql::Db::Open(dir.File("c.db"));
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE(InitSchema(*db).ok());
  auto token = CreateUser(*db, "sam", Role::kSupport, "", kNow);
  ASSERT_TRUE(token.ok());
  FakeClock clock(kNow);
  AdminApi api(std::move(*db), clock);
  HttpResponse r =
      api.Handle(HttpRequest{"POST", "/api/v1/tickets/1/ack", "Bearer " + token->secret, ""});
  EXPECT_EQ(r.status, 503);
  EXPECT_THAT(ErrorOf(r), HasSubstr("read-only"));
}

}  // namespace
}  // namespace setdiag::collector
