// The console's pure parts: the live SLA clocks (what counts down, what is
// paused), sessions (hashed, expiring, revocable), form and cookie parsing,
// the redirect guard, the texts every template uses, and versioned assets.

#include <absl/time/time.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <regex>
#include <set>

#include "collector/console/assets.h"
#include "collector/console/pages.h"
#include "collector/console/render.h"
#include "collector/console/sessions.h"
#include "collector/console/sla_view.h"
#include "common/clock.h"
#include "common/files.h"

namespace setdiag::collector::console {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;

constexpr int64_t kMinute = 60'000;
constexpr int64_t kHour = 60 * kMinute;

absl::TimeZone Moscow() {
  absl::TimeZone tz;
  if (!absl::LoadTimeZone("Europe/Moscow", &tz)) ADD_FAILURE() << "no Europe/Moscow (tzdata)";
  return tz;
}

int64_t Msk(int y, int mo, int d, int h, int mi = 0) {
  return absl::ToUnixMillis(Moscow().At(absl::CivilSecond(y, mo, d, h, mi, 0)).pre);
}

BusinessClock Business() {
  BusinessHours h;
  h.zone = Moscow();
  return BusinessClock(ProductionCalendar(), h);  // Monday to Friday, 10:00-19:00
}

TicketPolicy Policy() {
  TicketPolicy p;
  p.tariffs["expert"] = ExpertPolicy();
  p.tariffs["free"] = FreePolicy();
  return p;
}

json Ticket(const std::string& priority, int64_t reg_due, int64_t fr_due, int64_t fr_met = 0) {
  return {{"tariff", "expert"},
          {"priority", priority},
          {"sla",
           {{"registration",
             {{"due_ms", reg_due},
              {"warn_ms", reg_due - 5 * kMinute},
              {"met_at_ms", reg_due - kMinute}}},
            {"first_response",
             {{"due_ms", fr_due}, {"warn_ms", fr_due - kHour}, {"met_at_ms", fr_met}}},
            {"workaround", nullptr}}}};
}

TEST(SlaViewTest, ABusinessClockIsPausedOutsideBusinessHoursAndCountsOnlyBusinessTime) {
  const BusinessClock business = Business();
  // Friday 20:00: first response of an important Expert ticket due Monday 12:00.
  const int64_t now = Msk(2026, 11, 20, 20, 0);
  json t = Ticket("important", now, Msk(2026, 11, 23, 12, 0));
  auto clocks = ClockViews(t, Policy(), business, now);
  ASSERT_EQ(clocks.size(), 2u) << "no workaround clock before an error";
  EXPECT_EQ(clocks[0].name, "registration");
  EXPECT_EQ(clocks[0].state, "met");
  const ClockView& fr = clocks[1];
  EXPECT_TRUE(fr.business);
  EXPECT_TRUE(fr.paused);
  EXPECT_EQ(fr.remaining_ms, 2 * kHour) << "Monday 10:00-12:00 is all that counts";
  EXPECT_EQ(fr.state, "ok");
  // Monday 11:30: running, half an hour left, inside the warning hour.
  auto monday = ClockViews(t, Policy(), business, Msk(2026, 11, 23, 11, 30));
  EXPECT_FALSE(monday[1].paused);
  EXPECT_EQ(monday[1].remaining_ms, 30 * kMinute);
  EXPECT_EQ(monday[1].state, "warning");
}

TEST(SlaViewTest, ACriticalClockRunsAroundTheClockAndGoesNegativeWhenBreached) {
  const int64_t now = Msk(2026, 11, 21, 3, 0);  // Saturday night
  json t = Ticket("critical", now, now + 90 * kMinute);
  auto clocks = ClockViews(t, Policy(), Business(), now);
  EXPECT_FALSE(clocks[1].business);
  EXPECT_FALSE(clocks[1].paused);
  EXPECT_EQ(clocks[1].remaining_ms, 90 * kMinute);
  EXPECT_EQ(NextDueMs(clocks), now + 90 * kMinute) << "the met registration is not counted";
  auto late = ClockViews(t, Policy(), Business(), now + 100 * kMinute);
  EXPECT_EQ(late[1].state, "breached");
  EXPECT_EQ(late[1].remaining_ms, -10 * kMinute);
  json met = Ticket("critical", now, now + 90 * kMinute, now + kMinute);
  EXPECT_EQ(NextDueMs(ClockViews(met, Policy(), Business(), now)),
            std::numeric_limits<int64_t>::max());
}

// Friday 18:30: a normal Expert ticket with 40 business minutes left is due
// Monday 10:10; a critical one with an hour left (due 19:30) breaches first
// and comes first, though its time left is longer.
TEST(SlaViewTest, TheQueueOrderIsWhatBreachesFirstNotTheTimeLeft) {
  const int64_t now = Msk(2026, 11, 20, 18, 30);
  json normal = Ticket("normal", now - kHour, Msk(2026, 11, 23, 10, 10));
  json critical = Ticket("critical", now - kHour, now + kHour);
  auto a = ClockViews(normal, Policy(), Business(), now);
  auto b = ClockViews(critical, Policy(), Business(), now);
  EXPECT_EQ(a[1].remaining_ms, 40 * kMinute) << "18:30-19:00 and 10:00-10:10";
  EXPECT_EQ(b[1].remaining_ms, 60 * kMinute);
  EXPECT_LT(NextDueMs(b), NextDueMs(a));
}

TEST(SlaViewTest, SpansReadInBothLanguages) {
  EXPECT_EQ(FormatSpan(65 * kMinute, false), "1 h 05 min");
  EXPECT_EQ(FormatSpan(-(12 * kMinute + 3000), true), "12 мин 03 с");
  EXPECT_EQ(FormatSpan(45'000, false), "45 s");
  EXPECT_EQ(FormatSpan(50 * kHour, true), "2 д 2 ч");
}

TEST(SessionsTest, AnIdIsKeptOnlyAsItsHashAndExpires) {
  FakeClock clock(1'000'000);
  Sessions sessions(clock, kHour);
  auto a = sessions.Open("user-1", "en");
  EXPECT_EQ(a.id.size(), 64u);
  EXPECT_EQ(a.session.csrf.size(), 64u);
  EXPECT_NE(a.id, a.session.csrf);
  auto found = sessions.Find(a.id);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->user_id, "user-1");
  EXPECT_EQ(found->lang, "en");
  EXPECT_FALSE(sessions.Find(Sha256Hex(a.id))) << "the stored hash is no cookie";
  EXPECT_FALSE(sessions.Find(""));
  sessions.SetLang(a.id, "ru");
  EXPECT_EQ(sessions.Find(a.id)->lang, "ru");
  clock.Advance(std::chrono::milliseconds(kHour));
  EXPECT_FALSE(sessions.Find(a.id)) << "expired";
  EXPECT_EQ(sessions.size(), 0u) << "an expired session is dropped";
  auto b = sessions.Open("user-2", "ru");
  sessions.Close(b.id);
  EXPECT_FALSE(sessions.Find(b.id));
}

TEST(RenderTest, FormsCookiesAndTheRedirectGuard) {
  auto form = ParseForm("csrf=ab%2Fc&id=4&id=7&text=%D0%BF%D1%80%D0%B8+%D0%B2%D0%B5%D1%82&empty=");
  ASSERT_EQ(form.size(), 5u);
  EXPECT_EQ(FormValue(form, "csrf"), "ab/c");
  EXPECT_EQ(form[1].second, "4");
  EXPECT_EQ(form[2].second, "7");
  EXPECT_EQ(FormValue(form, "text"), "при вет");
  EXPECT_EQ(FormValue(form, "missing"), "");
  EXPECT_EQ(CookieValue("a=1; setdiag_session=xyz; setdiag_lang=en", "setdiag_session"), "xyz");
  EXPECT_EQ(CookieValue("xsetdiag_session=1", "setdiag_session"), "");
  EXPECT_EQ(SafeBack("/console/queue?state=open"), "/console/queue?state=open");
  for (const char* evil : {"https://evil.example/", "//evil.example/console/", "/console//evil",
                           "/api/v1/tickets", "/console/\r\nSet-Cookie: x=1", "/console\\x"}) {
    EXPECT_EQ(SafeBack(evil), "/console/queue") << evil;
  }
}

TEST(RenderTest, TemplatesEscapeWhatTheyAreGiven) {
  json d = {{"t", Texts(false)}, {"status", 400}, {"message", "<script>alert('x')</script>"}};
  std::string html = RenderTemplate("error", d);
  EXPECT_THAT(html, HasSubstr("&lt;script&gt;alert(&apos;x&apos;)&lt;/script&gt;"));
  EXPECT_EQ(html.find("<script>"), std::string::npos);
}

TEST(RenderTest, AnEmptyValueHidesItsSection) {
  // signin.mustache: {{#error}}<p ... role="alert">{{error}}</p>{{/error}}
  json d = {{"t", Texts(true)}, {"ru", true}, {"lang", "ru"}, {"css", "/x.css"}, {"error", ""}};
  EXPECT_EQ(RenderTemplate("signin", d).find("role=\"alert\""), std::string::npos);
  d["error"] = "Токен не подходит";
  EXPECT_THAT(RenderTemplate("signin", d), HasSubstr("role=\"alert\" id=\"signin-error\">Токен"));
}

TEST(ConsoleTexts, EveryTemplateKeyIsInBothLanguages) {
  const std::regex key(R"(\{\{[#^/]?t\.([a-z_]+)\}\})");
  std::set<std::string> used;
  for (size_t i = 0; i < kEmbeddedAssetCount; ++i) {
    const std::string text(kEmbeddedAssets[i].content);
    for (auto it = std::sregex_iterator(text.begin(), text.end(), key);
         it != std::sregex_iterator(); ++it)
      used.insert((*it)[1]);
  }
  EXPECT_GT(used.size(), 50u);
  for (const std::string& k : used) {
    for (bool ru : {true, false}) {
      ASSERT_TRUE(Texts(ru).contains(k)) << k << (ru ? " (ru)" : " (en)");
      EXPECT_FALSE(Texts(ru)[k].get<std::string>().empty()) << k;
    }
  }
  EXPECT_EQ(Texts(true).size(), Texts(false).size());
}

TEST(AssetsTest, StaticFilesAreServedUnderNamesThatCarryTheirHash) {
  const std::string js = StaticUrl("console.js");
  EXPECT_TRUE(std::regex_match(js, std::regex(R"(/console/static/console\.[0-9a-f]{8}\.js)")))
      << js;
  const std::string css = StaticUrl("console.css");
  EXPECT_TRUE(std::regex_match(css, std::regex(R"(/console/static/console\.[0-9a-f]{8}\.css)")))
      << css;
  bool found = false;
  for (const StaticFile& f : StaticFiles()) {
    if (f.served_name + "" == js.substr(16)) {
      found = true;
      EXPECT_EQ(f.content_type, "text/javascript; charset=utf-8");
      EXPECT_EQ(Sha256Hex(f.content).substr(0, 8), js.substr(24, 8));
    }
  }
  EXPECT_TRUE(found);
  // No inline script or style in any template (the CSP forbids them).
  for (size_t i = 0; i < kEmbeddedAssetCount; ++i) {
    const std::string_view text = kEmbeddedAssets[i].content;
    if (!kEmbeddedAssets[i].name.ends_with(".mustache")) continue;
    EXPECT_EQ(text.find("<script>"), std::string_view::npos) << kEmbeddedAssets[i].name;
    EXPECT_EQ(text.find("style="), std::string_view::npos) << kEmbeddedAssets[i].name;
    EXPECT_FALSE(std::regex_search(std::string(text), std::regex(R"(\son[a-z]+=)")))
        << kEmbeddedAssets[i].name << ": an inline event handler";
  }
}

}  // namespace
}  // namespace setdiag::collector::console
