// The collector's config: ticket, SLA and notification sections
// (collector/collector_config.cc) read from real files.

#include "collector/collector_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "temp_dir.h"

namespace setdiag::collector {
namespace {

using ::testing::HasSubstr;

class CollectorConfigTest : public ::testing::Test {
 protected:
  absl::StatusOr<CollectorConfig> Load(const std::string& toml) {
    std::ofstream(dir_.File("collector.toml")) << "[grpc]\nlisten = \"127.0.0.1:7443\"\n" << toml;
    return LoadCollectorConfig(dir_.File("collector.toml"));
  }
  std::string Secret(const std::string& name, const std::string& value) {
    std::ofstream(dir_.File(name)) << value << "\n";
    return dir_.File(name);
  }
  testutil::TempDir dir_;
};

TEST_F(CollectorConfigTest, DefaultsAreTheTariffsAndNoTargets) {
  auto c = Load("");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->tickets.default_tariff, "expert");
  EXPECT_TRUE(c->tickets.tariffs.contains("expert"));
  EXPECT_TRUE(c->tickets.tariffs.contains("free"));
  EXPECT_TRUE(c->notify.targets.empty());
}

TEST_F(CollectorConfigTest, TargetsReadTheirSecretsFromFiles) {
  auto c = Load("[notify.webhook.helpdesk]\nurl = \"https://desk.example/hook\"\nsecret_file = \"" +
                Secret("hook.secret", "  s3cret ") +
                "\"\nmin_priority = \"critical\"\n"
                "[notify.email.duty]\nsmtp_url = \"smtp://mail:25\"\nuser = \"setdiag\"\npassword_file = \"" +
                Secret("smtp.pw", "pw") + "\"\nfrom = \"a@b\"\nto = [\"c@d\"]\nevents = [\"opened\"]\n");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->notify.targets.size(), 2u);
  EXPECT_EQ(c->notify.targets[0].name, "webhook:helpdesk");
  EXPECT_EQ(c->notify.targets[0].secret, "s3cret");
  EXPECT_EQ(c->notify.targets[0].min_priority, 3);
  EXPECT_EQ(c->notify.targets[1].smtp_password, "pw");
}

TEST_F(CollectorConfigTest, MistakesNameTheKey) {
  struct Case {
    std::string toml, key;
  };
  for (const Case& k : std::vector<Case>{
           {"[notify.webhook.h]\nurl = \"https://x/\"\n", "notify.webhook.h.secret_file"},
           {"[notify.email.d]\nsmtp_url = \"smtp://m:25\"\nuser = \"u\"\nfrom = \"a@b\"\nto = [\"c@d\"]\n",
            "notify.email.d.password_file"},
           {"[notify.email.d]\nsmtp_url = \"http://m\"\nfrom = \"a@b\"\nto = [\"c@d\"]\n", "notify.email.d.smtp_url"},
           {"[tickets]\ndefault_tariff = \"gold\"\n", "tickets.default_tariff"},
           {"[sla]\nbusiness_start = \"10\"\n", "sla.business_start"},
       }) {
    auto c = Load(k.toml);
    ASSERT_FALSE(c.ok()) << k.toml;
    EXPECT_THAT(std::string(c.status().message()), HasSubstr(k.key)) << k.toml;
  }
}

TEST_F(CollectorConfigTest, AConfiguredTariffOverridesItsDefaults) {
  auto c = Load("[tariffs.expert-plus]\nfirst_response = \"2h\"\nfirst_response_business = true\n"
                "[tickets]\ndefault_tariff = \"expert-plus\"\n");
  ASSERT_TRUE(c.ok()) << c.status();
  const SlaPolicy& p = c->tickets.tariffs.at("expert-plus");
  EXPECT_EQ(p.first_response.duration_ms, 2 * 3'600'000);
  EXPECT_TRUE(p.first_response.business);
  EXPECT_EQ(p.registration.duration_ms, ExpertPolicy().registration.duration_ms);
}

}  // namespace
}  // namespace setdiag::collector
