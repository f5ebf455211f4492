// The collector's config: ticket, SLA and notification sections
// (collector/config/collector_config.cc) read from real files.

#include "collector/config/collector_config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstring>
#include <fstream>
#include <memory>
#include <string>

#include "temp_dir.h"

namespace setdiag::collector {
namespace {

using ::testing::HasSubstr;

// ---- TLS files made here (a self-signed P-256 certificate) ----

using Key = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using Bio = std::unique_ptr<BIO, decltype(&BIO_free)>;

Key NewKey() { return Key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), &EVP_PKEY_free); }

std::string Drain(BIO* bio) {
  std::string out(BIO_ctrl_pending(bio), '\0');
  int n = BIO_read(bio, out.data(), static_cast<int>(out.size()));
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

std::string KeyPem(EVP_PKEY* key, const char* passphrase = nullptr) {
  Bio bio(BIO_new(BIO_s_mem()), &BIO_free);
  PEM_write_bio_PrivateKey(bio.get(), key, passphrase != nullptr ? EVP_aes_128_cbc() : nullptr,
                           reinterpret_cast<const unsigned char*>(passphrase),
                           passphrase != nullptr ? static_cast<int>(std::strlen(passphrase)) : 0,
                           nullptr, nullptr);
  return Drain(bio.get());
}

std::string CertPem(EVP_PKEY* key) {
  std::unique_ptr<X509, decltype(&X509_free)> x(X509_new(), &X509_free);
  X509_set_version(x.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), 7);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), 86400);
  X509_set_pubkey(x.get(), key);
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("collector.test"), -1, -1, 0);
  X509_set_issuer_name(x.get(), name);
  X509_sign(x.get(), key, EVP_sha256());
  Bio bio(BIO_new(BIO_s_mem()), &BIO_free);
  PEM_write_bio_X509(bio.get(), x.get());
  return Drain(bio.get());
}

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
  auto c = Load(
      "[notify.webhook.helpdesk]\nurl = \"https://desk.example/hook\"\nsecret_file = \"" +
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
           {"[notify.email.d]\nsmtp_url = \"smtp://m:25\"\nuser = \"u\"\nfrom = \"a@b\"\nto = "
            "[\"c@d\"]\n",
            "notify.email.d.password_file"},
           {"[notify.email.d]\nsmtp_url = \"http://m\"\nfrom = \"a@b\"\nto = [\"c@d\"]\n",
            "notify.email.d.smtp_url"},
           {"[tickets]\ndefault_tariff = \"gold\"\n", "tickets.default_tariff"},
           {"[sla]\nbusiness_start = \"10\"\n", "sla.business_start"},
       }) {
    auto c = Load(k.toml);
    ASSERT_FALSE(c.ok()) << k.toml;
    EXPECT_THAT(std::string(c.status().message()), HasSubstr(k.key)) << k.toml;
  }
}

TEST_F(CollectorConfigTest, StreamTimeoutsHaveDefaultsAndBounds) {
  auto d = Load("");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->limits.hello_timeout_ms, 30'000);
  EXPECT_EQ(d->limits.IdleTimeoutMs(), 100'000) << "3 x 30 s + 10 s";
  auto c =
      Load("[ingest]\nstatus_interval = \"5s\"\nhello_timeout = \"1s\"\nidle_timeout = \"2s\"\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->limits.hello_timeout_ms, 1000);
  EXPECT_EQ(c->limits.IdleTimeoutMs(), 2000);
  auto derived = Load("[ingest]\nstatus_interval = \"5s\"\n");
  EXPECT_EQ(derived->limits.IdleTimeoutMs(), 25'000);
  for (const char* bad : {"hello_timeout = \"11m\"", "hello_timeout = \"500ms\"",
                          "idle_timeout = \"500ms\"", "idle_timeout = \"2h\""}) {
    auto r = Load(std::string("[ingest]\n") + bad + "\n");
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_NE(std::string(r.status().message()).find("ingest."), std::string::npos) << r.status();
  }
}

TEST_F(CollectorConfigTest, AConfiguredTariffOverridesItsDefaults) {
  auto c = Load(
      "[tariffs.expert-plus]\nfirst_response = \"2h\"\nfirst_response_business = true\n"
      "[tickets]\ndefault_tariff = \"expert-plus\"\n");
  ASSERT_TRUE(c.ok()) << c.status();
  const SlaPolicy& p = c->tickets.tariffs.at("expert-plus");
  EXPECT_EQ(p.first_response.duration_ms, 2 * 3'600'000);
  EXPECT_TRUE(p.first_response.business);
  EXPECT_EQ(p.registration.duration_ms, ExpertPolicy().registration.duration_ms);
}

// Serving reads the TLS files with the config: one that gRPC could not use
// is a config error naming its key and line (exit 2), not a failure to listen.
TEST_F(CollectorConfigTest, TlsFilesGrpcCannotUseAreConfigErrorsNamingTheKeyWhenServing) {
  Key key = NewKey(), other = NewKey();
  const std::string cert = Secret("cert.pem", CertPem(key.get()));
  const std::string good_key = Secret("cert.key", KeyPem(key.get()));
  const std::string other_key = Secret("other.key", KeyPem(other.get()));
  const std::string locked_key = Secret("locked.key", KeyPem(key.get(), "s3cret"));
  const std::string junk = Secret("junk", "not PEM at all");
  auto tls = [&](const std::string& c, const std::string& k) {
    // Line 3 names the certificate, line 4 the key (after Load's two lines).
    return Load("tls_cert_file = \"" + c + "\"\ntls_key_file = \"" + k + "\"\n");
  };
  auto serving = [&](const std::string& c, const std::string& k) {
    (void)tls(c, k);  // writes the file
    return LoadCollectorConfig(dir_.File("collector.toml"), /*read_tls_files=*/true);
  };

  auto good = serving(cert, good_key);
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_EQ(good->tls_cert_pem, testutil::ReadBytes(cert));
  EXPECT_EQ(good->tls_key_pem, testutil::ReadBytes(good_key));

  struct Case {
    std::string cert, key, where, what;
  };
  const std::string f = dir_.File("collector.toml");
  for (const Case& c : std::vector<Case>{
           {cert, junk, f + ":4: key 'grpc.tls_key_file'",
            "'" + junk + "' is not a PEM private key"},
           {cert, cert, f + ":4: key 'grpc.tls_key_file'",
            "'" + cert + "' is not a PEM private key"},
           {cert, locked_key, f + ":4: key 'grpc.tls_key_file'", "protected by a passphrase"},
           {cert, other_key, f + ":4: key 'grpc.tls_key_file'",
            "'" + other_key + "' does not match the certificate in '" + cert + "'"},
           {junk, good_key, f + ":3: key 'grpc.tls_cert_file'",
            "'" + junk + "' holds no PEM certificate"},
           {good_key, good_key, f + ":3: key 'grpc.tls_cert_file'", "holds no PEM certificate"},
           {dir_.File("missing.pem"), good_key, f + ":3: key 'grpc.tls_cert_file'",
            "cannot read " + dir_.File("missing.pem")},
           {cert, dir_.File("missing.key"), f + ":4: key 'grpc.tls_key_file'",
            "cannot read " + dir_.File("missing.key")},
       }) {
    SCOPED_TRACE(c.cert + " + " + c.key);
    auto bad = serving(c.cert, c.key);
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(bad.status().message()), HasSubstr(c.where));
    EXPECT_THAT(std::string(bad.status().message()), HasSubstr(c.what));
    // The admin commands and `check` do not open the files.
    auto other_use = tls(c.cert, c.key);
    EXPECT_TRUE(other_use.ok()) << other_use.status();
    if (other_use.ok()) {
      EXPECT_TRUE(other_use->tls_key_pem.empty());
    }
  }
}

}  // namespace
}  // namespace setdiag::collector
