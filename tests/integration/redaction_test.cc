// No secret leaves the store (issue 11, item 14): texts the agent takes from
// SET (here an inbox file's name, and a message a script passes on with
// `setdiag-agent emit`) reach the collector redacted, as the bundle redacts
// them. Real agent, collector and CLI; GET /api/v1/events through the CLI.

#include <gtest/gtest.h>

#include <filesystem>

#include "tests/integration/harness.h"

namespace setdiag::testing {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

TEST(RedactionEndToEnd, SecretsInWhatTheAgentReadsNeverReachTheCollector) {
  Deployment d("redaction");
  const std::string inbox = d.dir() + "/products/source";
  std::filesystem::create_directories(inbox);
  // The ERP put a password into a package's file name; it waits for 10 min.
  const std::string file = inbox + "/catalog-goods_password=Kassa2024.xml";
  WriteFile(file, "<goods/>");
  std::filesystem::last_write_time(file, std::filesystem::file_time_type::clock::now() - 10min);

  d.StartCollector();
  AgentSetup& agent = d.AddAgent("1042", d.CreateStoreToken("1042", "acme"),
                                 "[loading]\npoll_interval = \"500ms\"\ninbox_threshold = \"2s\"\n"
                                 "inboxes = [\"" +
                                     inbox +
                                     "\"]\ninbox_pattern = \"catalog-goods_*.xml\"\n"
                                     "[server]\ncheck = false\n");
  d.StartAgent(agent);
  // A store script passes on what SET logged about a till.
  d.Emit(agent, "script.set_check", "normal", 1,
         R"({"till":3,"message":"login failed: Authorization: Bearer AbCdEf0123456789GhIjKl, )"
         R"(card 4276 3800 1234 5679","barcode":"4600000000060"})");

  json events;
  ASSERT_TRUE(WaitFor(
      [&] {
        events = d.Events("1042");
        return !FindEvents(events, "loading.halted", "raised").empty() &&
               !FindEvents(events, "script.set_check", "").empty();
      },
      30s, 200ms))
      << events.dump(2) << "\n"
      << agent.process->Log();

  CommandResult tickets = d.Cli({"--json", "tickets", "list"});
  ASSERT_EQ(tickets.exit_code, 0) << tickets.err;
  for (const std::string& secret : {std::string("Kassa2024"), std::string("AbCdEf0123456789GhIjKl"),
                                    std::string("4276 3800 1234")}) {
    EXPECT_EQ(events.dump().find(secret), std::string::npos) << secret << "\n" << events.dump(2);
    EXPECT_EQ(tickets.out.find(secret), std::string::npos) << secret << "\n" << tickets.out;
  }

  json halted = FindEvents(events, "loading.halted", "raised")[0];
  EXPECT_EQ(halted["payload"]["oldest_waiting_file"]["name"], "catalog-goods_password=[REDACTED]")
      << halted.dump(2);
  EXPECT_NE(
      halted["payload"]["reasons"].dump().find("file catalog-goods_password=[REDACTED] waits in"),
      std::string::npos)
      << halted.dump(2);
  EXPECT_EQ(halted["payload"]["oldest_waiting_file"]["path"], inbox);
  EXPECT_EQ(halted["payload"]["oldest_waiting_file"]["files"], 1);

  json script = FindEvents(events, "script.set_check", "")[0];
  EXPECT_EQ(script["payload"]["message"],
            "login failed: Authorization: Bearer [REDACTED], card **** **** **** 5679")
      << script.dump(2);
  EXPECT_EQ(script["payload"]["till"], 3);
  EXPECT_EQ(script["payload"]["barcode"], "4600000000060");
  // The agent says what it did, never the value.
  EXPECT_NE(agent.process->Log().find("loading.halted: 2 value(s) redacted (key_value 2)"),
            std::string::npos)
      << agent.process->Log();
}

}  // namespace
}  // namespace setdiag::testing
