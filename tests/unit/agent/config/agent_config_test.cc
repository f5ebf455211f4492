#include "agent/config/agent_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <string>

#include "common/strings.h"
#include "temp_dir.h"

namespace setdiag::agent {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class AgentConfigTest : public ::testing::Test {
 protected:
  absl::StatusOr<AgentConfig> LoadText(const std::string& text) {
    testutil::WriteBytes(path_, text);
    return LoadAgentConfig(path_);
  }
  std::string Err(const std::string& text) {
    auto c = LoadText(text);
    EXPECT_FALSE(c.ok()) << "expected an error for:\n" << text;
    return c.ok() ? std::string() : std::string(c.status().message());
  }

  testutil::TempDir dir_;
  std::string path_ = dir_.File("agent.toml");
};

// A throwaway self-signed CA certificate (EC P-256), and a PEM block that
// looks like the private key someone copied instead.
constexpr const char* kCaPem =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBljCCATugAwIBAgIULbLUI8DTPZB6FA4avZHZ51uN8z4wCgYIKoZIzj0EAwIw\n"
    "HzEdMBsGA1UEAwwUc2V0ZGlhZyB1bml0IHRlc3QgQ0EwIBcNMjYxMjAzMDY0ODE0\n"
    "WhgPMjEyNjExMDkwNjQ4MTRaMB8xHTAbBgNVBAMMFHNldGRpYWcgdW5pdCB0ZXN0\n"
    "IENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE466/tZNMGlqDKrUBejp0NVDh\n"
    "j1XMHdi6wx8ciedBNkUJ2zDNCV8i3r2nd1JVnVxZoiJfP0MtNyHayML6riX8sKNT\n"
    "MFEwHQYDVR0OBBYEFDAUfeMHgQslPonXfwv5wRX9a6jCMB8GA1UdIwQYMBaAFDAU\n"
    "feMHgQslPonXfwv5wRX9a6jCMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwID\n"
    "SQAwRgIhAK0wtPnD8C58GOiBB7qWbyiAt37HzrvUZlKaWrO2t947AiEAp8MA6fWz\n"
    "Wz3l+Ki/aO1jjsUwTDUvUvJHjdqzQilxsBo=\n"
    "-----END CERTIFICATE-----\n";
constexpr const char* kPrivateKeyPem =
    "-----BEGIN PRIVATE KEY-----\n"
    "bm90IGEgcmVhbCBrZXksIGJ1dCBzaGFwZWQgbGlrZSBvbmUgZm9yIHRoZSB0ZXN0\n"
    "-----END PRIVATE KEY-----\n";

constexpr const char* kMinimal =
    "[agent]\n"
    "store_id = \"store-1\"\n"
    "[collector]\n"
    "address = \"127.0.0.1:7443\"\n"
    "token = \"sdst_abc\"\n";

TEST_F(AgentConfigTest, MinimalLoopbackConfigLoadsWithDefaults) {
  auto c = LoadText(kMinimal);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->store_id, "store-1");
  EXPECT_EQ(c->collector_address, "127.0.0.1:7443");
  EXPECT_EQ(c->token, "sdst_abc");
  EXPECT_EQ(c->state_dir, "/var/lib/setdiag");
  EXPECT_EQ(c->OutboxPath(), "/var/lib/setdiag/outbox.db");
  EXPECT_EQ(c->outbox.max_bytes, int64_t{256} * 1024 * 1024);
  EXPECT_EQ(c->status_interval_ms, 30'000);
}

TEST_F(AgentConfigTest, UnitsAreAppliedToOutboxAndBackoff) {
  auto c = LoadText(Cat(kMinimal,
                        "[outbox]\n"
                        "max_bytes = \"64MiB\"\n"
                        "max_age = \"7d\"\n"
                        "[backoff]\n"
                        "initial = \"250ms\"\n"
                        "max = \"2m\"\n"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->outbox.max_bytes, int64_t{64} * 1024 * 1024);
  EXPECT_EQ(c->outbox.max_age_ms, int64_t{7} * 86'400'000);
  EXPECT_EQ(c->backoff.initial_ms, 250);
  EXPECT_EQ(c->backoff.max_ms, 120'000);
}

TEST_F(AgentConfigTest, TokenFileIsReadAndTrimmed) {
  std::string token_path = dir_.File("token");
  testutil::WriteBytes(token_path, "  sdst_from_file\n");
  chmod(token_path.c_str(), 0600);
  auto c = LoadText(Cat("[agent]\nstore_id = \"s\"\n[collector]\naddress = \"localhost:7443\"\n",
                        "token_file = \"", token_path, "\"\n"));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->token, "sdst_from_file");
}

TEST_F(AgentConfigTest, ATokenFileOthersCanReadIsRefusedWithTheFix) {
  std::string token_path = dir_.File("token");
  testutil::WriteBytes(token_path, "sdst_secret\n");
  const std::string text =
      Cat("[agent]\nstore_id = \"s\"\n[collector]\naddress = \"localhost:7443\"\n",
          "token_file = \"", token_path, "\"\n");
  for (mode_t mode : {0644u, 0640u, 0604u, 0620u}) {
    chmod(token_path.c_str(), mode);
    std::string err = Err(text);
    EXPECT_THAT(err, HasSubstr("collector.token_file")) << mode;
    EXPECT_THAT(err, HasSubstr("chmod 600 " + token_path)) << mode;
    EXPECT_THAT(err, HasSubstr("chown setdiag " + token_path)) << mode;
    EXPECT_THAT(err, Not(HasSubstr("sdst_secret")));
  }
  chmod(token_path.c_str(), 0400);
  EXPECT_TRUE(LoadText(text).ok());
}

TEST_F(AgentConfigTest, UnreadableTokenFileIsAnError) {
  std::string err =
      Err(Cat("[agent]\nstore_id = \"s\"\n[collector]\naddress = \"localhost:7443\"\n",
              "token_file = \"", dir_.File("missing"), "\"\n"));
  EXPECT_THAT(err, HasSubstr("collector.token_file"));
}

TEST_F(AgentConfigTest, MissingTokenIsAnError) {
  std::string err = Err("[agent]\nstore_id = \"s\"\n[collector]\naddress = \"localhost:7443\"\n");
  EXPECT_THAT(err, HasSubstr("collector.token"));
}

TEST_F(AgentConfigTest, MissingStoreIdIsAnErrorNamingTheKey) {
  std::string err = Err("[collector]\naddress = \"localhost:7443\"\ntoken = \"t\"\n");
  EXPECT_THAT(err, HasSubstr("agent.store_id"));
  EXPECT_THAT(err, HasSubstr(path_));
}

TEST_F(AgentConfigTest, PlaintextToARemoteCollectorNeedsExplicitConsent) {
  std::string remote =
      "[agent]\nstore_id = \"s\"\n[collector]\naddress = \"10.1.2.3:7443\"\ntoken = \"t\"\n";
  EXPECT_THAT(Err(remote), HasSubstr("collector.ca_file"));
  auto ok = LoadText(remote + "allow_insecure = true\n");
  EXPECT_TRUE(ok.ok()) << ok.status().ToString();
  std::string ca = dir_.File("ca.pem");
  testutil::WriteBytes(ca, kCaPem);
  auto tls = LoadText(remote + "ca_file = \"" + ca + "\"\n");
  ASSERT_TRUE(tls.ok()) << tls.status().ToString();
  EXPECT_EQ(tls->ca_pem, kCaPem) << "read once, at load";
}

// Issue 13: a CA file that is there but holds no certificate made gRPC retry
// forever with "empty address list"; it is a config error naming the key,
// its line, the file and what is in it instead.
TEST_F(AgentConfigTest, ACaFileWithoutACertificateIsRefusedNamingKeyLineFileAndWhatIsWrong) {
  const std::string ca = dir_.File("ca.pem");
  const std::string text = Cat(kMinimal, "ca_file = \"", ca, "\"\n");  // line 6
  testutil::WriteBytes(ca, "this is not a certificate\n");
  std::string err = Err(text);
  EXPECT_THAT(
      err, HasSubstr(Cat(path_, ":6: key 'collector.ca_file': ", ca, " holds no PEM certificate")));
  EXPECT_THAT(err, HasSubstr("ca.pem from support"));

  testutil::WriteBytes(ca, kPrivateKeyPem);
  err = Err(text);
  EXPECT_THAT(err, HasSubstr(Cat(ca, " holds no PEM certificate")));
  EXPECT_THAT(err, HasSubstr("it holds a private key"));

  testutil::WriteBytes(
      ca, "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n");
  EXPECT_THAT(Err(text), HasSubstr(Cat(ca, " holds a damaged PEM certificate")));

  testutil::WriteBytes(ca, "");
  EXPECT_THAT(Err(text), HasSubstr(Cat(ca, " holds no PEM certificate")));

  EXPECT_THAT(
      Err(Cat(kMinimal, "ca_file = \"", dir_.File("missing.pem"), "\"\n")),
      HasSubstr(Cat(":6: key 'collector.ca_file': cannot read ", dir_.File("missing.pem"))));

  // A key next to the certificate does not hide it; the certificate counts.
  testutil::WriteBytes(ca, Cat(kPrivateKeyPem, kCaPem));
  auto ok = LoadText(text);
  EXPECT_TRUE(ok.ok()) << ok.status();
}

// Issue 13: a roster address like 999.1.1.1 was accepted and the till was
// then never probed.
TEST_F(AgentConfigTest, ARosterAddressThatIsNotIPv4IsRefusedNamingKeyAndLine) {
  for (const char* bad :
       {"999.1.1.1", "10.0.0", "10.0.0.1.5", "till-7", " 10.0.0.17", "10.0.0.17:22", "::1"}) {
    std::string err =
        Err(Cat(kMinimal, "[tills.roster]\n1 = \"10.0.0.11\"\n7 = \"", bad, "\"\n"));  // line 8
    EXPECT_THAT(
        err, HasSubstr(Cat(path_, ":8: key 'tills.roster.7': '", bad, "' is not an IPv4 address")))
        << bad;
  }
  auto ok = LoadText(
      Cat(kMinimal, "[tills.roster]\n1 = \"10.0.0.11\"\n7 = \"\"\n8 = \"255.255.255.254\"\n"));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->tills.roster.size(), 3u);
}

// The other addresses the agent uses only as IPv4 literals.
TEST_F(AgentConfigTest, ServerHostAndPushListenersMustBeIPv4LiteralsAndSayWhatIsWrong) {
  std::string err = Err(Cat(kMinimal, "[server]\nhost = \"999.0.0.1\"\n"));
  EXPECT_THAT(err,
              HasSubstr(Cat(path_, ":7: key 'server.host': '999.0.0.1' is not an IPv4 address")));
  err = Err(Cat(kMinimal, "[server]\nhost = \"set-server\"\n"));
  EXPECT_THAT(err, HasSubstr("key 'server.host': 'set-server' is not an IPv4 address"));
  EXPECT_THAT(err, HasSubstr("names are not resolved"));

  err = Err(Cat(kMinimal, "[push]\nudp_listen = \"999.1.1.1:7555\"\n"));
  EXPECT_THAT(err,
              HasSubstr(Cat(path_,
                            ":7: key 'push.udp_listen': '999.1.1.1:7555': '999.1.1.1' is not an "
                            "IPv4 address")));
  err = Err(Cat(kMinimal, "[push]\nhttp_listen = \"0.0.0.0:0\"\n"));
  EXPECT_THAT(err, HasSubstr("key 'push.http_listen': '0.0.0.0:0': port 0"));
  err = Err(Cat(kMinimal, "[push]\nhttp_listen = \"localhost:7556\"\n"));
  EXPECT_THAT(
      err,
      HasSubstr("key 'push.http_listen': 'localhost:7556': 'localhost' is not an IPv4 address"));
  err = Err(Cat(kMinimal, "[push]\nudp_listen = \"0.0.0.0:70000\"\n"));
  EXPECT_THAT(err,
              HasSubstr("key 'push.udp_listen': '0.0.0.0:70000': not an IPv4 address and port"));

  auto ok = LoadText(Cat(kMinimal,
                         "[push]\nudp_listen = \"0.0.0.0:7555\"\nhttp_listen = \"127.0.0.1:7556\"\n"
                         "[server]\nhost = \"10.1.2.3\"\n"));
  EXPECT_TRUE(ok.ok()) << ok.status();
}

// Issue 13: the database password is a secret like the store token, with
// the same decision and the same words.
TEST_F(AgentConfigTest, APasswordFileOthersCanReadIsRefusedWithTheFix) {
  const std::string pw = dir_.File("set-db.password");
  testutil::WriteBytes(pw, "ro-Secret\n");
  const std::string text =
      Cat(kMinimal, "[set_db]\nenabled = true\npassword_file = \"", pw, "\"\n");  // line 8
  for (mode_t mode : {0644u, 0640u, 0604u, 0620u, 0660u}) {
    chmod(pw.c_str(), mode);
    char octal[8];
    std::snprintf(octal, sizeof octal, "%04o", static_cast<unsigned>(mode));
    std::string err = Err(text);
    EXPECT_THAT(err, HasSubstr(Cat(path_, ":8: key 'set_db.password_file': ", pw,
                                   " is open to group or others (mode ", octal, ")")));
    EXPECT_THAT(err, HasSubstr("chmod 600 " + pw)) << mode;
    EXPECT_THAT(err, HasSubstr("chown setdiag " + pw)) << mode;
    EXPECT_THAT(err, Not(HasSubstr("ro-Secret")));
  }
  for (mode_t mode : {0600u, 0400u}) {
    chmod(pw.c_str(), mode);
    auto c = LoadText(text);
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->tills.set_db->password, "ro-Secret");
  }
  // With [set_db] off the file is not read, nor judged.
  chmod(pw.c_str(), 0644);
  std::string off = text;
  off.replace(off.find("enabled = true"), 14, "enabled = false");
  EXPECT_TRUE(LoadText(off).ok());
}

TEST_F(AgentConfigTest, OutboxBelowMinimumNamesLineAndKey) {
  std::string err = Err(Cat(kMinimal, "[outbox]\nmax_bytes = \"1KiB\"\n"));
  EXPECT_THAT(err, HasSubstr(Cat(path_, ":7")));
  EXPECT_THAT(err, HasSubstr("outbox.max_bytes"));
}

TEST_F(AgentConfigTest, UnknownKeyNamesLine) {
  std::string err = Err(Cat(kMinimal, "[outbox]\nmax_bites = 100000\n"));
  EXPECT_THAT(err, HasSubstr(Cat(path_, ":7")));
  EXPECT_THAT(err, HasSubstr("outbox.max_bites"));
}

TEST_F(AgentConfigTest, BadLogLevelIsAnError) {
  std::string text = kMinimal;
  text.insert(text.find("[collector]"), "log_level = \"loud\"\n");
  EXPECT_THAT(Err(text), HasSubstr("agent.log_level"));
}

TEST(IsLoopbackTargetTest, RecognisesLoopbackAddresses) {
  EXPECT_TRUE(IsLoopbackTarget("localhost:7443"));
  EXPECT_TRUE(IsLoopbackTarget("127.0.0.1:7443"));
  EXPECT_TRUE(IsLoopbackTarget("127.0.0.53:1"));
  EXPECT_TRUE(IsLoopbackTarget("[::1]:7443"));
  EXPECT_FALSE(IsLoopbackTarget("10.0.0.1:7443"));
  EXPECT_FALSE(IsLoopbackTarget("collector.example.com:7443"));
  EXPECT_FALSE(IsLoopbackTarget("localhost.example.com:7443"));
  EXPECT_FALSE(IsLoopbackTarget("[2001:db8::1]:7443"));
}

// Regression test (fixed): a host name starting with "127." is not loopback.
TEST(IsLoopbackTargetTest, HostnameStartingWith127IsNotLoopback) {
  EXPECT_FALSE(IsLoopbackTarget("127.collector.example.com:7443"));
  EXPECT_FALSE(IsLoopbackTarget("127.attacker.example:443"));
  // The consequence: plaintext to a remote host is accepted without consent.
  testutil::TempDir dir;
  std::string path = dir.File("agent.toml");
  testutil::WriteBytes(path,
                       "[agent]\nstore_id = \"s\"\n[collector]\n"
                       "address = \"127.collector.example.com:7443\"\ntoken = \"t\"\n");
  auto c = LoadAgentConfig(path);
  EXPECT_FALSE(c.ok()) << "plaintext to 127.collector.example.com was accepted";
}

}  // namespace
}  // namespace setdiag::agent

namespace setdiag::agent {
namespace {

class TillWatchConfigTest : public ::testing::Test {
 protected:
  absl::StatusOr<AgentConfig> Load(const std::string& extra) {
    testutil::WriteBytes(path_, std::string(kMinimal) + extra);
    return LoadAgentConfig(path_);
  }
  testutil::TempDir dir_;
  std::string path_ = dir_.File("agent.toml");
};

TEST_F(TillWatchConfigTest, NothingToWatchTurnsTheWatchOffUnlessAskedFor) {
  auto quiet = Load("");
  ASSERT_TRUE(quiet.ok()) << quiet.status();
  EXPECT_FALSE(quiet->tills_enabled);
  auto asked = Load("[tills]\nenabled = true\n");
  ASSERT_FALSE(asked.ok());
  EXPECT_NE(std::string(asked.status().message()).find("tills.enabled"), std::string::npos)
      << asked.status();
}

TEST_F(TillWatchConfigTest, MothballedTillsJoinTheRosterOnce) {
  auto c =
      Load("[tills]\nmothballed = [2, 9]\n[tills.roster]\n1 = \"10.0.0.11\"\n2 = \"10.0.0.12\"\n");
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->tills.roster.size(), 3u);
  int mothballed = 0;
  for (const auto& t : c->tills.roster) {
    mothballed += t.mothballed;
    if (t.number == 2) {
      EXPECT_EQ(t.address, "10.0.0.12");
    }
  }
  EXPECT_EQ(mothballed, 2);
}

}  // namespace
}  // namespace setdiag::agent

namespace setdiag::agent {
namespace {

class SetDbConfigTest : public ::testing::Test {
 protected:
  absl::StatusOr<AgentConfig> Load(const std::string& extra) {
    testutil::WriteBytes(path_, std::string(kMinimal) + extra);
    return LoadAgentConfig(path_);
  }
  testutil::TempDir dir_;
  std::string path_ = dir_.File("agent.toml");
};

TEST_F(SetDbConfigTest, ServerPortDbFollowsSetDbPortUnlessSet) {
  // A store whose PostgreSQL listens on 5433: the server check probes 5433.
  auto derived = Load("[set_db]\nenabled = true\nport = 5433\n");
  ASSERT_TRUE(derived.ok()) << derived.status();
  EXPECT_EQ(derived->tills.server.port_db, 5433);
  EXPECT_EQ(derived->loading.server.port_db, 5433);
  // Explicit wins.
  auto explicit_port = Load("[set_db]\nenabled = true\nport = 5433\n[server]\nport_db = 6432\n");
  ASSERT_TRUE(explicit_port.ok()) << explicit_port.status();
  EXPECT_EQ(explicit_port->tills.server.port_db, 6432);
  EXPECT_EQ(explicit_port->loading.server.port_db, 6432);
  // Without [set_db]: the usual 5432.
  auto none = Load("[set_db]\nport = 5433\n");
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(none->tills.server.port_db, 5432);
}

TEST_F(SetDbConfigTest, NaiveTimestampsAreReadInTheStoreZone) {
  // No zone anywhere: the session's TimeZone (as before).
  auto none = Load("[set_db]\nenabled = true\n");
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(none->tills.set_db->time_zone, "");
  // The calendar's zone by default, for both watches.
  auto cal = Load("[set_db]\nenabled = true\n[calendar]\ntime_zone = \"Asia/Yekaterinburg\"\n");
  ASSERT_TRUE(cal.ok()) << cal.status();
  EXPECT_EQ(cal->tills.set_db->time_zone, "Asia/Yekaterinburg");
  EXPECT_EQ(cal->loading.set_db->time_zone, "Asia/Yekaterinburg");
  // set_db.time_zone wins over the calendar's.
  auto own = Load(
      "[set_db]\nenabled = true\ntime_zone = \"Europe/Moscow\"\n[calendar]\ntime_zone = \"UTC\"\n");
  ASSERT_TRUE(own.ok()) << own.status();
  EXPECT_EQ(own->tills.set_db->time_zone, "Europe/Moscow");
  EXPECT_EQ(own->loading.set_db->time_zone, "Europe/Moscow");
  // An unknown zone names the key.
  auto bad = Load("[set_db]\nenabled = true\ntime_zone = \"Europe/Atlantis\"\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("set_db.time_zone"));
  auto quote = Load("[set_db]\nenabled = true\ntime_zone = \"UTC'; DROP\"\n");
  ASSERT_FALSE(quote.ok());
}

TEST_F(SetDbConfigTest, ClockToleranceAndFailureConfirmAreRead) {
  auto c = Load("[set_db]\nenabled = true\nclock_tolerance = \"5m\"\nfailure_confirm = \"2s\"\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->tills.set_db->clock_tolerance_ms, 300'000);
  EXPECT_EQ(c->tills.set_db->failure_confirm_ms, 2'000);
  EXPECT_EQ(c->loading.set_db->failure_confirm_ms, 2'000);
  // Known keys even with [set_db] off.
  auto off =
      Load("[set_db]\nenabled = false\ntime_zone = \"Europe/Moscow\"\nclock_tolerance = \"5m\"\n");
  EXPECT_TRUE(off.ok()) << off.status();
}

}  // namespace
}  // namespace setdiag::agent
