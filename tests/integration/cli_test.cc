// The command lines as docs/config.md and docs/api.md write them: options
// after the subcommand that owns them, or after a nested subcommand, are
// accepted by setdiag-agent, setdiag-collector and setdiag alike (CLI11's
// fallthrough), and a misplaced option still gets a usage error (exit 2).

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <vector>

#include "setdiag/v1/link.grpc.pb.h"
#include "tests/integration/harness.h"

namespace setdiag::testing {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

class CliOptionsTest : public ::testing::Test {
 protected:
  CliOptionsTest() : d_("cli-options") {}
  Deployment d_;
};

TEST_F(CliOptionsTest, AgentMaintenanceListTakesJsonAfterTheSubcommand) {
  AgentSetup& a = d_.AddAgent("1042", "unused-token");
  auto opened = RunCommand({SETDIAG_AGENT_BIN, "maintenance", "--for", "1h", "--reason", "switch",
                            "--config", a.config_path, "--json"});
  ASSERT_EQ(opened.exit_code, 0) << opened.err;

  // As docs/config.md writes it: `setdiag-agent maintenance list --json`.
  auto listed =
      RunCommand({SETDIAG_AGENT_BIN, "--config", a.config_path, "maintenance", "list", "--json"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  json windows = json::parse(listed.out, nullptr, false);
  ASSERT_TRUE(windows.is_array()) << listed.out;
  ASSERT_EQ(windows.size(), 1u);
  EXPECT_EQ(windows[0]["reason"], "switch");

  // The config after the nested subcommand works too.
  auto config_last =
      RunCommand({SETDIAG_AGENT_BIN, "maintenance", "list", "--json", "--config", a.config_path});
  ASSERT_EQ(config_last.exit_code, 0) << config_last.err;
  EXPECT_EQ(json::parse(config_last.out, nullptr, false), windows);

  // An option nobody owns is still a usage error.
  auto bad = RunCommand(
      {SETDIAG_AGENT_BIN, "--config", a.config_path, "maintenance", "list", "--no-such"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--no-such"), std::string::npos) << bad.err;
}

TEST_F(CliOptionsTest, SetdiagTakesGlobalOptionsAfterTheSubcommand) {
  d_.StartCollector();
  // Cli() puts --collector and --token first; --json and --lang come last here.
  auto r = d_.Cli({"tickets", "list", "--json", "--lang", "en"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json body = json::parse(r.out, nullptr, false);
  ASSERT_TRUE(body.is_object()) << r.out;
  EXPECT_TRUE(body.contains("tickets")) << r.out;

  auto stores = d_.Cli({"stores", "list", "--json"});
  ASSERT_EQ(stores.exit_code, 0) << stores.err;
  EXPECT_TRUE(json::parse(stores.out, nullptr, false).contains("stores")) << stores.out;

  EXPECT_EQ(d_.Cli({"tickets", "list", "--no-such"}).exit_code, 2);
}

// `stores list` shows one page and says how to get the next; --all follows
// next_after to the end.
TEST_F(CliOptionsTest, StoresListPagesAndAllFetchesEveryPage) {
  for (const char* store : {"3001", "3002", "3003", "3004", "3005"})
    d_.CreateStoreToken(store, "acme");
  d_.StartCollector();
  auto ids = [](const CommandResult& r) {
    std::vector<std::string> out;
    const json body =
        json::parse(r.out, nullptr, false);  // not a temporary's member in the range-for
    for (const auto& s : body["stores"]) out.push_back(s["store_id"].get<std::string>());
    return out;
  };
  auto first = d_.Cli({"--json", "stores", "list", "--limit", "2"});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_EQ(ids(first), (std::vector<std::string>{"3001", "3002"}));
  auto table = d_.Cli({"--lang", "en", "stores", "list", "--limit", "2"});
  EXPECT_NE(table.err.find("2 stores shown; more with --after 3002 or --all"), std::string::npos)
      << table.err;
  auto next = d_.Cli({"--json", "stores", "list", "--limit", "2", "--after", "3002"});
  EXPECT_EQ(ids(next), (std::vector<std::string>{"3003", "3004"}));
  auto all = d_.Cli({"--json", "stores", "list", "--limit", "2", "--all"});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  EXPECT_EQ(ids(all), (std::vector<std::string>{"3001", "3002", "3003", "3004", "3005"}));
  auto last = d_.Cli({"--lang", "en", "stores", "list", "--limit", "2", "--after", "3004"});
  EXPECT_EQ(last.err.find("more with"), std::string::npos)
      << "a short page is the last: " << last.err;
}

TEST_F(CliOptionsTest, CollectorAdminCommandsTakeTheConfigAfterTheSubcommand) {
  d_.StartCollector();
  auto r = RunCommand({SETDIAG_COLLECTOR_BIN, "token", "list", "--config", d_.collector_config()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

// `user create` checks names like store ids and partners against what the
// collector knows; each refusal is a usage error (exit 2) that creates nothing.
TEST_F(CliOptionsTest, UserCreateRefusesBadNamesAndUnknownPartners) {
  auto collector = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {SETDIAG_COLLECTOR_BIN, "--config", d_.collector_config()});
    return RunCommand(args);
  };
  ASSERT_EQ(collector({"token", "create", "--store", "1042", "--partner", "acme"}).exit_code, 0);
  struct Case {
    std::vector<std::string> args;
    std::string error;
  };
  for (const Case& c : std::vector<Case>{
           {{"--name", ""}, "--name must be 1..128 characters of [A-Za-z0-9._-]"},
           {{"--name", "ivan\nov"}, "--name must be 1..128 characters of [A-Za-z0-9._-]"},
           {{"--name", std::string(129, 'a')}, "--name must be 1..128 characters"},
           {{"--name", "petrov", "--role", "support", "--partner", "acme"},
            "--partner is for role partner"},
           {{"--name", "petrov", "--partner", "acme"},
            "--partner is for role partner"},  // support is the default
           {{"--name", "petrov", "--role", "partner"}, "--partner is required for role partner"},
           {{"--name", "petrov", "--role", "partner", "--partner", "beta "},
            "--partner must be 1..128 characters"},
           {{"--name", "petrov", "--role", "partner", "--partner", "%"},
            "--partner must be 1..128 characters"},
           {{"--name", "petrov", "--role", "partner", "--partner", "beta"},
            "no partner 'beta': no store has it and it has no tariff. Create it first with "
            "'setdiag-collector "
            "partner set --name beta --tariff T' (T: expert, free)"},
       }) {
    std::vector<std::string> args{"user", "create"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    SCOPED_TRACE(c.error);
    CommandResult r = collector(args);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find(c.error), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "") << "no token printed";
  }
  CommandResult listed = collector({"user", "list"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_EQ(listed.out.find("petrov"), std::string::npos) << listed.out;

  // A partner of a store, or one given a tariff, is known.
  EXPECT_EQ(
      collector({"user", "create", "--name", "petrov", "--role", "partner", "--partner", "acme"})
          .exit_code,
      0);
  ASSERT_EQ(collector({"partner", "set", "--name", "beta", "--tariff", "free"}).exit_code, 0);
  CommandResult beta =
      collector({"user", "create", "--name", "sidorov", "--role", "partner", "--partner", "beta"});
  EXPECT_EQ(beta.exit_code, 0) << beta.err;
  EXPECT_EQ(beta.out.rfind("sdu_", 0), 0u) << beta.out;
}

// `user list|revoke|delete`: list never shows a token or its hash; a revoked
// token is refused at its next request to the running collector; a deleted
// user's name can be used again.
TEST_F(CliOptionsTest, UsersAreListedRevokedAtTheNextRequestAndDeleted) {
  auto collector = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {SETDIAG_COLLECTOR_BIN, "--config", d_.collector_config()});
    return RunCommand(args);
  };
  d_.CreateStoreToken("1042", "acme");
  d_.StartCollector();
  const std::string petrov = d_.CreateUser("petrov", "partner", "acme");
  ASSERT_EQ(d_.Cli({"stores", "list"}, petrov).exit_code, 0);

  CommandResult listed = collector({"user", "list"});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  std::string petrov_line;
  for (size_t at = 0; at < listed.out.size();) {
    size_t end = listed.out.find('\n', at);
    std::string line = listed.out.substr(at, end - at);
    if (line.find(" petrov ") != std::string::npos) petrov_line = line;
    at = end == std::string::npos ? listed.out.size() : end + 1;
  }
  ASSERT_NE(petrov_line, "") << listed.out;
  EXPECT_NE(petrov_line.find(" partner "), std::string::npos) << petrov_line;
  EXPECT_NE(petrov_line.find(" acme "), std::string::npos) << petrov_line;
  EXPECT_NE(petrov_line.find(" active"), std::string::npos) << petrov_line;
  EXPECT_NE(listed.out.find("support-desk"), std::string::npos) << listed.out;
  EXPECT_EQ(listed.out.find("sdu_"), std::string::npos) << listed.out;
  EXPECT_FALSE(std::regex_search(listed.out, std::regex("[0-9a-f]{16}")))
      << "no secret or hash: " << listed.out;
  const std::string petrov_id = petrov_line.substr(0, petrov_line.find(' '));

  CommandResult revoked = collector({"user", "revoke", "--name", "petrov"});
  EXPECT_EQ(revoked.exit_code, 0) << revoked.err;
  EXPECT_EQ(revoked.out, "revoked 1 user(s)\n");
  // The same collector, not restarted: the next request is refused (exit 3: authentication).
  CommandResult refused = d_.Cli({"stores", "list"}, petrov);
  EXPECT_EQ(refused.exit_code, 3) << refused.out << refused.err;
  EXPECT_NE(refused.err.find("unknown or revoked token"), std::string::npos) << refused.err;
  EXPECT_EQ(d_.Cli({"stores", "list"}).exit_code, 0) << "the support desk's token still works";
  EXPECT_NE(collector({"user", "list"}).out.find(petrov_id), std::string::npos);
  EXPECT_EQ(collector({"user", "revoke", "--name", "petrov"}).exit_code, 1)
      << "nothing left to revoke";
  EXPECT_EQ(collector({"user", "revoke"}).exit_code, 2);
  EXPECT_EQ(collector({"user", "delete", "--id", petrov_id, "--name", "petrov"}).exit_code, 2);

  CommandResult deleted = collector({"user", "delete", "--id", petrov_id});
  EXPECT_EQ(deleted.exit_code, 0) << deleted.err;
  EXPECT_EQ(deleted.out, "deleted 1 user(s)\n");
  EXPECT_EQ(collector({"user", "list"}).out.find("petrov"), std::string::npos);
  EXPECT_EQ(collector({"user", "delete", "--name", "petrov"}).exit_code, 1);
  const std::string again = d_.CreateUser("petrov", "partner", "acme");
  EXPECT_EQ(d_.Cli({"stores", "list"}, again).exit_code, 0);
  EXPECT_NE(d_.Cli({"stores", "list"}, petrov).exit_code, 0) << "the old token stays dead";
}

// A connected store whose agent has not taken the request yet: `bundle
// show` and `bundle pull` must not say "waiting for the store to connect".
// The store is played by a raw stream that speaks protocol 1 (an agent from
// before bundles), so the collector keeps the request "requested" while the
// store is online; once the stream is gone the text says so.
TEST_F(CliOptionsTest, ARequestedBundleOfAConnectedStoreIsNotDescribedAsWaitingToConnect) {
  d_.StartCollector();
  const std::string token = d_.CreateStoreToken("1042", "acme");
  auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(d_.grpc_port()),
                                     grpc::InsecureChannelCredentials());
  auto stub = v1::AgentLink::NewStub(channel);
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->AddMetadata("authorization", "Bearer " + token);
  auto stream = stub->Connect(ctx.get());
  v1::AgentMessage hello;
  hello.mutable_hello()->set_protocol_version(1);
  hello.mutable_hello()->set_store_id("1042");
  hello.mutable_hello()->set_agent_id("store-1042-raw");
  hello.mutable_hello()->set_agent_version("test");
  hello.mutable_hello()->set_next_sequence(1);
  ASSERT_TRUE(stream->Write(hello));
  v1::CollectorMessage welcome;
  ASSERT_TRUE(stream->Read(&welcome));
  ASSERT_TRUE(welcome.has_welcome());
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = d_.Cli({"--json", "stores", "list"});
        return r.exit_code == 0 && json::parse(r.out)["stores"].size() == 1 &&
               json::parse(r.out)["stores"][0].value("online", false);
      },
      10s));

  auto pulled = d_.Cli({"bundle", "pull", "--store", "1042", "--no-wait"});
  ASSERT_EQ(pulled.exit_code, 0) << pulled.err;
  std::string id = pulled.out.substr(0, pulled.out.find('\n'));
  auto shown = d_.Cli({"bundle", "show", id});
  ASSERT_EQ(shown.exit_code, 0) << shown.err;
  auto as_json = d_.Cli({"--json", "bundle", "show", id});
  ASSERT_EQ(json::parse(as_json.out)["bundle"]["state"], "requested") << as_json.out;
  EXPECT_EQ(shown.out.find("waiting for the store to connect"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("the store is connected"), std::string::npos) << shown.out;

  ctx->TryCancel();
  stream.reset();
  ASSERT_TRUE(WaitFor(
      [&] {
        auto r = d_.Cli({"--json", "stores", "list"});
        return r.exit_code == 0 && !json::parse(r.out)["stores"][0].value("online", true);
      },
      10s));
  auto offline = d_.Cli({"bundle", "show", id});
  EXPECT_NE(offline.out.find("waiting for the store to connect"), std::string::npos) << offline.out;
}

}  // namespace
}  // namespace setdiag::testing
