// Tickets end to end: a real agent and a real collector process, conditions
// recorded on the store the way the watches record them (setdiag-agent
// emit), a real HTTP receiver for the helpdesk webhook, and the tickets read
// back through the `setdiag` CLI.

#include <gtest/gtest.h>

#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "common/http_server.h"
#include "tests/integration/harness.h"

namespace setdiag::testing {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

// The helpdesk: records every webhook it accepts. Delivery is at least once
// (a collector killed between delivering and recording it delivers again
// after restart, with the same key), so, like a real helpdesk, it counts
// notifications by their idempotency key ("id" in the body).
class Receiver {
 public:
  Receiver()
      : server_([this](const HttpRequest& r) {
          std::lock_guard lock(mu_);
          bodies_.push_back(json::parse(r.body, nullptr, false));
          return HttpResponse{200, "{}"};
        }) {
    auto st = server_.Start("127.0.0.1", 0);
    if (!st.ok()) throw std::runtime_error(st.ToString());
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(server_.port()) + "/hook"; }
  // Distinct notifications of `type` (e.g. "ticket.opened") about ticket
  // `id` (0: any).
  size_t Count(const std::string& type, int64_t id = 0) {
    std::lock_guard lock(mu_);
    std::set<std::string> keys;
    for (const auto& b : bodies_) {
      if (b.is_object() && b.value("type", "") == type &&
          (id == 0 || (b.contains("ticket") && b["ticket"].value("id", int64_t{0}) == id))) {
        keys.insert(b.value("id", ""));
      }
    }
    return keys.size();
  }
  size_t Total() {
    std::lock_guard lock(mu_);
    return bodies_.size();
  }

 private:
  std::mutex mu_;
  std::vector<json> bodies_;
  HttpServer server_;
};

std::string CollectorExtra(const std::string& dir, const std::string& receiver_url) {
  WriteFile(dir + "/hook.secret", "integration-secret\n");
  return "[tickets]\n"
         "auto_resolve_after = \"2s\"\n"
         "reopen_within = \"1h\"\n"
         "unreachable_after = \"3s\"\n"
         "late_after = \"2s\"\n"
         "late_settle = \"3s\"\n"
         "tick_interval = \"200ms\"\n"
         "[notify]\n"
         "initial_backoff = \"50ms\"\n"
         "[notify.webhook.helpdesk]\n"
         "url = \"" +
         receiver_url +
         "\"\n"
         "secret_file = \"" +
         dir + "/hook.secret\"\n";
}

class TicketTest : public ::testing::Test {
 protected:
  TicketTest()
      : dir_(MakeTempDir("tickets-extra")), d_("tickets", CollectorExtra(dir_, receiver_.url())) {}

  void SetUp() override {
    d_.StartCollector();
    token_ = d_.CreateStoreToken("1042", "acme");
    agent_ = &d_.AddAgent("1042", token_);
    d_.StartAgent(*agent_);
  }

  json Tickets(const std::string& state = "all") {
    auto r = d_.Cli({"--json", "tickets", "list", "--state", state});
    if (r.exit_code != 0) return json::array();
    auto j = json::parse(r.out, nullptr, false);
    return j.is_object() && j.contains("tickets") ? j["tickets"] : json::array();
  }

  // The one ticket of `condition`, once `pred` holds for it.
  json WaitTicket(const std::string& condition, const std::function<bool(const json&)>& pred,
                  std::chrono::milliseconds timeout = 20s) {
    json found;
    WaitFor(
        [&] {
          for (const auto& t : Tickets()) {
            if (t["condition"] == condition && pred(t)) {
              found = t;
              return true;
            }
          }
          return false;
        },
        timeout, 100ms);
    return found;
  }

  void Emit(const std::string& kind, const std::string& severity, const json& payload) {
    d_.Emit(*agent_, kind, severity, 1, payload.dump());
  }

  // Waits until the agent's outbox is empty (everything acknowledged).
  bool Drained() {
    return WaitFor(
        [&] {
          try {
            return d_.AgentStatus(*agent_).value("depth", int64_t{-1}) == 0;
          } catch (const std::exception&) {
            return false;  // the agent has not created its outbox yet
          }
        },
        20s, 100ms);
  }

  Receiver receiver_;
  std::string dir_;
  Deployment d_;
  std::string token_;
  AgentSetup* agent_ = nullptr;
};

TEST_F(TicketTest, CriticalConditionBecomesOneTicketAndAReplayChangesNothing) {
  Emit("tills.majority_stopped", "critical",
       {{"state", "raised"},
        {"episode", "ep-1"},
        {"summary_en", "12 of 20 tills stopped"},
        {"summary_ru", "Остановлено 12 касс из 20"}});
  json t = WaitTicket("tills", [](const json& x) { return x["state"] == "open"; });
  ASSERT_FALSE(t.is_null()) << d_.collector().Log();
  EXPECT_EQ(t["priority"], "critical");
  EXPECT_EQ(t["tariff"], "expert");
  EXPECT_EQ(t["store_id"], "1042");
  const int64_t detected = t["detected_at_ms"].get<int64_t>();
  EXPECT_EQ(t["sla"]["registration"]["due_ms"].get<int64_t>(), detected + 15 * 60'000);
  EXPECT_EQ(t["sla"]["first_response"]["due_ms"].get<int64_t>(), detected + 2 * 3'600'000);
  EXPECT_GE(t["registered_at_ms"].get<int64_t>(), detected);
  EXPECT_EQ(t["summary_ru"], "Остановлено 12 касс из 20");
  const int64_t id = t["id"].get<int64_t>();
  ASSERT_TRUE(WaitFor([&] { return receiver_.Count("ticket.opened", id) == 1; }, 10s));

  // The collector goes down; the agent records the same condition again
  // (as after an outbox loss) plus an update, and replays on reconnect.
  d_.KillCollector();
  Emit("tills.majority_stopped", "critical", {{"state", "raised"}, {"episode", "ep-1"}});
  Emit("tills.majority_stopped", "critical", {{"state", "updated"}, {"episode", "ep-1"}});
  d_.StartCollector();
  ASSERT_TRUE(Drained());
  // Several ticks of the collector later, still one ticket and one page.
  std::this_thread::sleep_for(1s);
  json all = Tickets();
  ASSERT_EQ(all.size(), 1u) << all.dump(2);
  EXPECT_EQ(all[0]["id"], id);
  EXPECT_EQ(receiver_.Count("ticket.opened"), 1u);

  auto show = d_.Cli({"--json", "tickets", "show", std::to_string(id)});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  auto shown = json::parse(show.out);
  EXPECT_GE(shown["timeline"].size(), 3u) << "opened + the replayed events on record";
}

TEST_F(TicketTest, RecurrenceReopensAndEscalationUpgradesTheSameTicket) {
  Emit("tills.till_stopped", "normal", {{"state", "raised"}, {"episode", "t-1"}, {"till", 3}});
  json t = WaitTicket("tills", [](const json& x) { return x["priority"] == "normal"; });
  ASSERT_FALSE(t.is_null()) << d_.collector().Log();
  const int64_t id = t["id"].get<int64_t>();
  Emit("tills.majority_stopped", "critical", {{"state", "escalated"}, {"episode", "t-1"}});
  t = WaitTicket("tills", [](const json& x) { return x["priority"] == "critical"; });
  ASSERT_FALSE(t.is_null());
  EXPECT_EQ(t["id"], id);
  EXPECT_LT(t["sla"]["first_response"]["due_ms"].get<int64_t>(),
            t["detected_at_ms"].get<int64_t>() + 3 * 3'600'000)
      << "re-targeted to the critical clock";
  ASSERT_TRUE(WaitFor([&] { return receiver_.Count("ticket.escalated", id) == 1; }, 10s));

  // Clears, resolves automatically after the quiet period, comes back: reopened.
  Emit("tills.majority_stopped", "critical", {{"state", "cleared"}, {"episode", "t-1"}});
  Emit("tills.till_stopped", "normal", {{"state", "cleared"}, {"episode", "t-1"}, {"till", 3}});
  t = WaitTicket("tills", [](const json& x) { return x["state"] == "resolved"; });
  ASSERT_FALSE(t.is_null()) << d_.collector().Log();
  ASSERT_TRUE(WaitFor([&] { return receiver_.Count("ticket.resolved", id) == 1; }, 10s));
  Emit("tills.majority_stopped", "critical", {{"state", "raised"}, {"episode", "t-2"}});
  t = WaitTicket("tills",
                 [](const json& x) { return x["state"] == "open" && x["reopen_count"] == 1; });
  ASSERT_FALSE(t.is_null());
  EXPECT_EQ(t["id"], id);
  EXPECT_EQ(Tickets().size(), 1u);
  ASSERT_TRUE(WaitFor([&] { return receiver_.Count("ticket.reopened", id) == 1; }, 10s));
  EXPECT_EQ(receiver_.Count("ticket.opened"), 1u);

  // A person acknowledges and resolves it through the CLI.
  auto ack = d_.Cli({"tickets", "ack", std::to_string(id), "--note", "on it"});
  EXPECT_EQ(ack.exit_code, 0) << ack.err;
  t = WaitTicket(
      "tills", [](const json& x) { return x["state"] == "acknowledged"; }, 5s);
  ASSERT_FALSE(t.is_null());
  EXPECT_GT(t["sla"]["first_response"]["met_at_ms"].get<int64_t>(), 0);
  EXPECT_EQ(
      d_.Cli({"tickets", "resolve", std::to_string(id), "--note", "tills restarted"}).exit_code, 0);
  t = WaitTicket(
      "tills", [](const json& x) { return x["state"] == "resolved"; }, 5s);
  ASSERT_FALSE(t.is_null());
  EXPECT_EQ(t["resolved_by"], "support-desk");
}

TEST_F(TicketTest, SilentStoreOpensUnreachableAndItsStaleConditionsAreNotPaged) {
  ASSERT_TRUE(Drained());
  // A fresh outbox is drained before the agent ever connected: a store the
  // collector has never heard from is not "unreachable". Under load (CI's
  // parallel run) the agent was stopped before its first Hello.
  ASSERT_TRUE(WaitFor(
      [&] { return ReadFile(agent_->log_path).find("uplink: connected to") != std::string::npos; },
      20s))
      << ReadFile(agent_->log_path);
  agent_->process->Stop();
  json t =
      WaitTicket("store.unreachable", [](const json& x) { return x["condition_active"] == true; });
  ASSERT_FALSE(t.is_null()) << d_.collector().Log();
  EXPECT_EQ(t["priority"], "important");
  const int64_t unreachable_id = t["id"].get<int64_t>();
  ASSERT_TRUE(WaitFor([&] { return receiver_.Count("ticket.opened", unreachable_id) == 1; }, 10s));

  // While out of reach the store had loading halt and recover.
  Emit("loading.halted", "critical", {{"state", "raised"}, {"episode", "h-1"}});
  Emit("loading.halted", "critical", {{"state", "cleared"}, {"episode", "h-1"}});
  std::this_thread::sleep_for(2500ms);  // older than tickets.late_after when it arrives
  d_.StartAgent(*agent_);
  t = WaitTicket("store.unreachable", [](const json& x) { return x["condition_active"] == false; });
  ASSERT_FALSE(t.is_null());
  json halted = WaitTicket("loading.halted", [](const json&) { return true; });
  ASSERT_FALSE(halted.is_null()) << "kept for the record";
  EXPECT_EQ(halted["state"], "resolved");
  EXPECT_EQ(halted["paged"], false);
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(receiver_.Count("ticket.opened", halted["id"].get<int64_t>()), 0u);
  EXPECT_EQ(receiver_.Count("ticket.cleared", halted["id"].get<int64_t>()), 0u);
}

TEST_F(TicketTest, PartnerSeesOnlyItsOwnStoresTickets) {
  std::string other_token = d_.CreateStoreToken("2001", "globex");
  AgentSetup& other = d_.AddAgent("2001", other_token);
  d_.StartAgent(other);
  d_.Emit(other, "loading.halted", "critical", 1,
          json{{"state", "raised"}, {"episode", "g-1"}}.dump());
  Emit("loading.halted", "critical", {{"state", "raised"}, {"episode", "a-1"}});
  ASSERT_TRUE(WaitFor([&] { return Tickets().size() == 2; }, 20s)) << d_.collector().Log();
  std::string acme = d_.CreateUser("acme-engineer", "partner", "acme");
  auto r = d_.Cli({"--json", "tickets", "list", "--state", "all"}, acme);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto mine = json::parse(r.out)["tickets"];
  ASSERT_EQ(mine.size(), 1u);
  EXPECT_EQ(mine[0]["store_id"], "1042");
  int64_t globex_ticket = 0;
  for (const auto& t : Tickets()) {
    if (t["store_id"] == "2001") globex_ticket = t["id"].get<int64_t>();
  }
  auto show = d_.Cli({"tickets", "show", std::to_string(globex_ticket)}, acme);
  EXPECT_EQ(show.exit_code, 4) << show.out << show.err;
  auto ack = d_.Cli({"tickets", "ack", std::to_string(globex_ticket)}, acme);
  EXPECT_EQ(ack.exit_code, 4);
  auto stores = d_.Cli({"--json", "stores", "list"}, acme);
  ASSERT_EQ(stores.exit_code, 0) << stores.err;
  auto s = json::parse(stores.out)["stores"];
  ASSERT_EQ(s.size(), 1u);
  EXPECT_EQ(s[0]["store_id"], "1042");
}

// Issue 11, item 1: the restarted agent no longer holds the condition (its
// till watch is off here, so it holds nothing) and says so in its Hello; the
// collector clears the ticket, which then resolves. A script's condition of
// another kind stays.
TEST_F(TicketTest, AnAgentRestartedWithoutTheConditionGetsItsTicketResolved) {
  Emit("tills.majority_stopped", "critical",
       {{"state", "raised"}, {"episode", "agent-ep-1"}, {"summary_en", "11 of 20 tills stopped"}});
  Emit("script.ups_on_battery", "important", {{"state", "raised"}, {"episode", "ups-1"}});
  json t = WaitTicket("tills", [](const json& x) { return x["condition_active"] == true; });
  ASSERT_FALSE(t.is_null()) << d_.collector().Log();
  const int64_t id = t["id"].get<int64_t>();
  ASSERT_TRUE(WaitTicket("script.ups_on_battery", [](const json&) { return true; }).is_object());
  ASSERT_TRUE(Drained());
  ASSERT_TRUE(WaitFor([&] { return receiver_.Count("ticket.opened", id) == 1; }, 10s));

  agent_->process->Stop();
  d_.StartAgent(*agent_);
  t = WaitTicket("tills", [](const json& x) { return x["state"] == "resolved"; });
  ASSERT_FALSE(t.is_null()) << d_.collector().Log() << agent_->process->Log();
  EXPECT_EQ(t["resolved_by"], "collector");
  ASSERT_TRUE(WaitFor([&] { return receiver_.Count("ticket.cleared", id) == 1; }, 10s));
  ASSERT_TRUE(WaitFor([&] { return receiver_.Count("ticket.resolved", id) == 1; }, 10s));
  auto show = d_.Cli({"--json", "tickets", "show", std::to_string(id)});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  bool said = false;
  const json shown = json::parse(show.out);
  for (const auto& e : shown["timeline"]) {
    if (e["type"] == "cleared" && e["text"].get<std::string>().find(
                                      "cleared while the agent restarted") != std::string::npos) {
      said = true;
    }
  }
  EXPECT_TRUE(said) << show.out;
  json ups = WaitTicket("script.ups_on_battery", [](const json&) { return true; });
  EXPECT_EQ(ups["condition_active"], true) << "a script's condition is not the watches'";

  // The old process's `cleared`, recorded late, changes nothing.
  Emit("tills.majority_stopped", "critical", {{"state", "cleared"}, {"episode", "agent-ep-1"}});
  ASSERT_TRUE(Drained());
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(receiver_.Count("ticket.cleared", id), 1u);
  EXPECT_EQ(Tickets().size(), 2u);
}

// Issue 11, item 2: a condition back before its ticket auto-resolved is paged
// as ticket.recurred, once.
TEST_F(TicketTest, AConditionBackBeforeAutoResolveIsNotifiedAsRecurred) {
  Emit("loading.halted", "critical", {{"state", "raised"}, {"episode", "r-1"}});
  json t =
      WaitTicket("loading.halted", [](const json& x) { return x["condition_active"] == true; });
  ASSERT_FALSE(t.is_null()) << d_.collector().Log();
  const int64_t id = t["id"].get<int64_t>();
  Emit("loading.halted", "critical", {{"state", "cleared"}, {"episode", "r-1"}});
  Emit("loading.halted", "critical", {{"state", "raised"}, {"episode", "r-2"}});
  ASSERT_TRUE(WaitFor([&] { return receiver_.Count("ticket.recurred", id) == 1; }, 10s))
      << d_.collector().Log();
  EXPECT_EQ(receiver_.Count("ticket.cleared", id), 1u);
  t = WaitTicket("loading.halted", [](const json& x) { return x["condition_active"] == true; });
  EXPECT_EQ(t["id"], id);
  EXPECT_EQ(t["state"], "open");
  EXPECT_EQ(Tickets().size(), 1u);
}

// Issue 11, item 13: `setdiag tickets show` lists the stopped tills with
// their last heartbeat and probe, "and M more", and the likely cause.
TEST_F(TicketTest, TicketsShowListsTheStoppedTillsAndTheLikelyCause) {
  json tills = json::array();
  for (int i = 1; i <= 11; ++i) {
    tills.push_back({{"number", 100 + i},
                     {"probe", i == 1 ? "answers" : "no_answer"},
                     {"last_heartbeat_ms", 1'764'000'000'000 + i * 60'000}});
  }
  Emit("tills.majority_stopped", "critical",
       {{"state", "raised"},
        {"episode", "ev-1"},
        {"expected", 20},
        {"stopped", 11},
        {"stopped_tills", tills},
        {"likely_cause",
         {{"code", "network_or_power"},
          {"en", "Power or network failure."},
          {"ru", "Нет питания."}}},
        {"summary_en", "11 of 20 tills stopped"},
        {"summary_ru", "Остановлено касс: 11 из 20"}});
  json t = WaitTicket("tills", [](const json& x) { return x["condition_active"] == true; });
  ASSERT_FALSE(t.is_null()) << d_.collector().Log();
  const std::string id = std::to_string(t["id"].get<int64_t>());
  // The API.
  auto api = d_.Cli({"--json", "tickets", "show", id});
  ASSERT_EQ(api.exit_code, 0) << api.err;
  json ev = json::parse(api.out)["ticket"]["evidence"];
  ASSERT_TRUE(ev.is_object()) << api.out;
  EXPECT_EQ(ev["stopped"], 11);
  EXPECT_EQ(ev["tills"].size(), 10u);
  EXPECT_EQ(ev["tills_more"], 1);
  // The CLI's text, in English and in Russian.
  auto en = d_.Cli({"--lang", "en", "tickets", "show", id});
  ASSERT_EQ(en.exit_code, 0) << en.err;
  EXPECT_NE(en.out.find("Evidence\n"), std::string::npos) << en.out;
  EXPECT_NE(en.out.find("Stopped tills (11 of 20):"), std::string::npos) << en.out;
  EXPECT_NE(en.out.find("- till 101: last heartbeat 2025-11-24 19:01 MSK; answers on the network"),
            std::string::npos)
      << en.out;
  EXPECT_NE(
      en.out.find("- till 102: last heartbeat 2025-11-24 19:02 MSK; no answer on the network"),
      std::string::npos)
      << en.out;
  EXPECT_EQ(en.out.find("- till 111:"), std::string::npos) << en.out;
  EXPECT_NE(en.out.find("- and 1 more"), std::string::npos) << en.out;
  EXPECT_NE(en.out.find("Likely cause: Power or network failure."), std::string::npos) << en.out;
  auto ru = d_.Cli({"--lang", "ru", "tickets", "show", id});
  ASSERT_EQ(ru.exit_code, 0) << ru.err;
  EXPECT_NE(ru.out.find("- касса 102: последний сигнал 2025-11-24 19:02 MSK; не отвечает по сети"),
            std::string::npos)
      << ru.out;
  EXPECT_NE(ru.out.find("- и ещё 1"), std::string::npos) << ru.out;
  EXPECT_NE(ru.out.find("Вероятная причина: Нет питания."), std::string::npos) << ru.out;
}

}  // namespace
}  // namespace setdiag::testing
