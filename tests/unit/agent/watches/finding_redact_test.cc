// What the agent takes from SET passes the bundle's redactor before it
// becomes an event (issue 11, item 14): CommitFindings, the one way a
// watch's finding reaches the outbox, stores and records it redacted.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "agent/store/history.h"
#include "agent/store/outbox.h"
#include "agent/watches/findings.h"
#include "common/clock.h"
#include "temp_dir.h"

namespace setdiag::agent {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using json = nlohmann::json;

const char* const kJwt =
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMDQyIiwicm9sZSI6ImVycCJ9.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gF";

TEST(CommitFindingsRedaction, SetTextInAFindingIsRedactedInTheOutboxAndTheHistory) {
  testutil::TempDir dir;
  FakeClock clock;
  auto outbox = Outbox::Open(dir.File("outbox.db"), {}, clock);
  ASSERT_NE(outbox, nullptr);
  auto history = HistoryStore::Open(dir.File("history.db"));
  ASSERT_TRUE(history.ok()) << history.status();

  // As the loading watch reports a package SET rejected, with SET's message.
  const std::string message =
      std::string(
          "import failed: ERROR: connection to jdbc:postgresql://10.0.0.5/set?user=erp&"
          "password=Erp$ecret9 refused; card 4276 3800 1234 5679; auth ") +
      kJwt;
  Finding f{"loading.import_errors", Severity::kNormal, 1'768'460'400'121,
            json{{"state", "raised"},
                 {"episode", "agent-1042-loading.import_errors-1768460400121"},
                 {"failed_packages",
                  {{{"ti", "TI-1042-77"},
                    {"arrived_ms", 1'768'460'400'121},
                    {"status", 5},
                    {"status_name", "internal error"},
                    {"import_type", "GOODS"},
                    {"message", message}}}},
                 {"oldest_waiting_file", {{"name", "catalog-goods_password=Kassa2024.xml"}}},
                 {"summary_en", "1 import package(s) rejected"},
                 {"summary_ru", "Отклонено пакетов загрузки: 1"}}};
  ASSERT_EQ(CommitFindings(*outbox, {f}, "loading", history->get()), 1u);

  auto events = outbox->ReadAfter(0, 10, 1 << 20);
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_EQ(events->size(), 1u);
  std::vector<std::string> stored = {(*events)[0].payload};
  ASSERT_TRUE((*history)
                  ->Scan(0, int64_t{1} << 62, 10,
                         [&](const HistoryRecord& r) {
                           stored.push_back(r.payload);
                           return true;
                         })
                  .ok());
  ASSERT_EQ(stored.size(), 2u);
  for (const auto& text : stored) {
    SCOPED_TRACE(text);
    for (const char* secret : {"Erp$ecret9", "4276 3800 1234", "Kassa2024", "dBjftJeZ4CVPmB92",
                               "eyJhbGciOiJIUzI1NiJ9"}) {
      EXPECT_THAT(text, Not(HasSubstr(secret)));
    }
    json p = json::parse(text);
    const auto& pkg = p["failed_packages"][0];
    EXPECT_EQ(pkg["message"],
              "import failed: ERROR: connection to jdbc:postgresql://10.0.0.5/set?user=erp&"
              "password=[REDACTED] refused; card **** **** **** 5679; auth [REDACTED]");
    EXPECT_EQ(p["oldest_waiting_file"]["name"], "catalog-goods_password=[REDACTED]");
    // The rest is as the detector made it.
    EXPECT_EQ(p["episode"], f.payload["episode"]);
    EXPECT_EQ(pkg["ti"], "TI-1042-77");
    EXPECT_EQ(pkg["arrived_ms"], 1'768'460'400'121);
    EXPECT_EQ(pkg["status"], 5);
    EXPECT_EQ(p["summary_ru"], f.payload["summary_ru"]);
  }
  EXPECT_EQ((*events)[0].kind, "loading.import_errors");
  EXPECT_EQ((*events)[0].detected_at_ms, 1'768'460'400'121);
}

TEST(CommitFindingsRedaction, AFindingWithoutSecretsIsStoredUnchanged) {
  testutil::TempDir dir;
  FakeClock clock;
  auto outbox = Outbox::Open(dir.File("outbox.db"), {}, clock);
  ASSERT_NE(outbox, nullptr);
  json payload = {{"state", "raised"},
                  {"episode", "agent-1042-tills.majority_stopped-1768460400121"},
                  {"stopped_tills", {{{"till", 3}, {"last_heartbeat_ms", 1'768'460'400'121}}}},
                  {"barcode", "4600000000060"},
                  {"summary_en", "11 of 20 tills stopped"}};
  ASSERT_EQ(CommitFindings(*outbox, {{"tills.majority_stopped", Severity::kCritical, 1, payload}},
                           "tills"),
            1u);
  auto events = outbox->ReadAfter(0, 10, 1 << 20);
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->size(), 1u);
  EXPECT_EQ((*events)[0].payload, payload.dump());
}

}  // namespace
}  // namespace setdiag::agent
