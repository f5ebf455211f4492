// The [bundle] section of the agent's config.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "agent/bundle/bundle.h"
#include "agent/config/agent_config.h"
#include "common/strings.h"
#include "temp_dir.h"

namespace setdiag::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr const char* kMinimal =
    "[agent]\n"
    "store_id = \"1042\"\n"
    "[collector]\n"
    "address = \"127.0.0.1:7443\"\n"
    "token = \"sdst_abc\"\n";

class BundleConfigTest : public ::testing::Test {
 protected:
  absl::StatusOr<AgentConfig> Load(const std::string& extra) {
    testutil::WriteBytes(path_, Cat(kMinimal, extra));
    return LoadAgentConfig(path_);
  }
  testutil::TempDir dir_;
  std::string path_ = dir_.File("agent.toml");
};

TEST_F(BundleConfigTest, Defaults) {
  auto c = Load("");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->bundle.window_ms, 24 * 3'600'000);
  EXPECT_EQ(c->bundle.step_timeout_ms, 20'000);
  EXPECT_EQ(c->bundle.logs_timeout_ms, 120'000);
  EXPECT_EQ(c->bundle.log_file_cap_bytes, 20 * 1024 * 1024);
  EXPECT_EQ(c->bundle.log_total_cap_bytes, 200 * 1024 * 1024);
  EXPECT_THAT(c->bundle.log_globs.front(), HasSubstr("/var/lib/jboss/standalone/log/"));
  EXPECT_EQ(c->HistoryPath(), "/var/lib/setdiag/history.db");
  auto o = bundle::BundleOptions::FromConfig(*c);
  EXPECT_EQ(o.agent_config_path, path_);
  EXPECT_EQ(o.config.window_ms, c->bundle.window_ms);
}

TEST_F(BundleConfigTest, AllKeys) {
  auto c = Load(
      "[bundle]\n"
      "window = \"6h\"\n"
      "log_globs = [\"/var/log/nginx/*.log\"]\n"
      "log_file_cap = \"1MiB\"\n"
      "log_total_cap = \"10MiB\"\n"
      "config_files = []\n"
      "step_timeout = \"5s\"\n"
      "logs_timeout = \"1m\"\n"
      "stop_grace = \"0s\"\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->bundle.window_ms, 6 * 3'600'000);
  EXPECT_THAT(c->bundle.log_globs, ElementsAre("/var/log/nginx/*.log"));
  EXPECT_EQ(c->bundle.log_file_cap_bytes, 1024 * 1024);
  EXPECT_EQ(c->bundle.log_total_cap_bytes, 10 * 1024 * 1024);
  EXPECT_TRUE(c->bundle.config_files.empty());
  EXPECT_EQ(c->bundle.step_timeout_ms, 5000);
  EXPECT_EQ(c->bundle.logs_timeout_ms, 60'000);
  EXPECT_EQ(c->bundle.stop_grace_ms, 0);
}

TEST_F(BundleConfigTest, BadValuesNameTheKey) {
  auto err = [&](const std::string& extra) {
    auto c = Load(extra);
    EXPECT_FALSE(c.ok()) << extra;
    return c.ok() ? std::string() : std::string(c.status().message());
  };
  EXPECT_THAT(err("[bundle]\nwindow = \"60d\"\n"), HasSubstr("bundle.window"));
  EXPECT_THAT(err("[bundle]\nlog_globs = [\"logs/*.log\"]\n"), HasSubstr("bundle.log_globs"));
  EXPECT_THAT(err("[bundle]\nlog_file_cap = \"1KiB\"\n"), HasSubstr("bundle.log_file_cap"));
  EXPECT_THAT(err("[bundle]\nstep_timeout = \"10ms\"\n"), HasSubstr("bundle.step_timeout"));
  EXPECT_THAT(err("[bundle]\nstop_grace = \"5m\"\n"), HasSubstr("bundle.stop_grace"));
  EXPECT_THAT(err("[bundle]\nlog_glob = []\n"), HasSubstr("bundle.log_glob"));
}

}  // namespace
}  // namespace setdiag::agent
