// `setdiag-collector check` (collector/commands/check.h): how each finding becomes a
// line (certificate expiry, calendar coverage, a taken port, the database),
// and the parsers under the target probes. Certificates are made in-process
// with OpenSSL at fixed instants; sockets and files are real, nothing sleeps.

#include "collector/commands/check.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/digest.h"
#include "common/http_server.h"
#include "common/sqlite.h"
#include "common/strings.h"
#include "temp_dir.h"

namespace setdiag::collector {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr int64_t kDay = 86'400'000;
// 2026-12-02 12:00:00 UTC.
constexpr int64_t kNow = 1'796'212'800'000;

// ---- certificates made here ----

using Key = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;

Key NewKey() { return Key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), &EVP_PKEY_free); }

std::string Drain(BIO* bio) {
  std::string out(BIO_ctrl_pending(bio), '\0');
  int n = BIO_read(bio, out.data(), static_cast<int>(out.size()));
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

std::string KeyPem(EVP_PKEY* key, const char* passphrase = nullptr) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
  if (passphrase != nullptr) {
    PEM_write_bio_PrivateKey(bio.get(), key, EVP_aes_128_cbc(),
                             reinterpret_cast<const unsigned char*>(passphrase),
                             static_cast<int>(std::strlen(passphrase)), nullptr, nullptr);
  } else {
    PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  }
  return Drain(bio.get());
}

// A self-signed certificate for DNS:collector.test valid [from_ms, until_ms).
std::string CertPem(EVP_PKEY* key, int64_t from_ms, int64_t until_ms) {
  std::unique_ptr<X509, decltype(&X509_free)> x(X509_new(), &X509_free);
  X509_set_version(x.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), 7);
  ASN1_TIME_set(X509_getm_notBefore(x.get()), static_cast<time_t>(from_ms / 1000));
  ASN1_TIME_set(X509_getm_notAfter(x.get()), static_cast<time_t>(until_ms / 1000));
  X509_set_pubkey(x.get(), key);
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("collector.test"), -1, -1, 0);
  X509_set_issuer_name(x.get(), name);
  X509_EXTENSION* ext =
      X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, "DNS:collector.test");
  X509_add_ext(x.get(), ext, -1);
  X509_EXTENSION_free(ext);
  X509_sign(x.get(), key, EVP_sha256());
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
  PEM_write_bio_X509(bio.get(), x.get());
  return Drain(bio.get());
}

const CheckLine* Find(const std::vector<CheckLine>& lines, const std::string& id) {
  for (const auto& l : lines) {
    if (l.id == id) return &l;
  }
  return nullptr;
}

// ---- certificate expiry ----

TEST(CheckCertExpiryTest, ExpiredFailsNamingTheDateAndWhatToDo) {
  CheckLine l = CertExpiryLine("/etc/setdiag/collector.pem", kNow - 400 * kDay, kNow - kDay, kNow);
  EXPECT_EQ(l.id, "grpc.tls_expiry");
  EXPECT_EQ(l.verdict, CheckVerdict::kFail);
  EXPECT_THAT(l.text_en, HasSubstr("expired on 2026-12-01 12:00 UTC"));
  EXPECT_THAT(l.text_ru, HasSubstr("истёк 2026-12-01 12:00 UTC"));
  EXPECT_THAT(l.fix_en, HasSubstr("grpc.tls_cert_file"));
  EXPECT_THAT(l.fix_ru, HasSubstr("grpc.tls_cert_file"));
}

TEST(CheckCertExpiryTest, TheExpiryInstantItselfIsExpired) {
  EXPECT_EQ(CertExpiryLine("c.pem", kNow - kDay, kNow, kNow).verdict, CheckVerdict::kFail);
  EXPECT_EQ(CertExpiryLine("c.pem", kNow - kDay, kNow + 1, kNow).verdict, CheckVerdict::kWarn);
}

TEST(CheckCertExpiryTest, WithinThirtyDaysWarnsWithTheDate) {
  CheckLine l = CertExpiryLine("c.pem", kNow - 300 * kDay, kNow + 2 * kDay + 3600'000, kNow);
  EXPECT_EQ(l.verdict, CheckVerdict::kWarn);
  EXPECT_THAT(l.text_en, HasSubstr("expires on 2026-12-04 13:00 UTC, in 2 days"));
  EXPECT_THAT(l.text_ru, HasSubstr("истекает 2026-12-04 13:00 UTC, через 2 дня"));
  EXPECT_FALSE(l.fix_en.empty());
  EXPECT_FALSE(l.fix_ru.empty());

  CheckLine hours = CertExpiryLine("c.pem", kNow - kDay, kNow + 3 * 3600'000, kNow);
  EXPECT_EQ(hours.verdict, CheckVerdict::kWarn);
  EXPECT_THAT(hours.text_en, HasSubstr("in less than a day"));
  EXPECT_THAT(hours.text_ru, HasSubstr("менее чем через сутки"));
}

TEST(CheckCertExpiryTest, ThirtyDaysOrMoreIsOkAndShowsTheDate) {
  CheckLine edge = CertExpiryLine("c.pem", kNow - kDay, kNow + kCertWarnDays * kDay, kNow);
  EXPECT_EQ(edge.verdict, CheckVerdict::kOk);
  CheckLine just_under =
      CertExpiryLine("c.pem", kNow - kDay, kNow + kCertWarnDays * kDay - 1, kNow);
  EXPECT_EQ(just_under.verdict, CheckVerdict::kWarn);
  EXPECT_THAT(just_under.text_en, HasSubstr("in 29 days"));

  CheckLine l = CertExpiryLine("c.pem", kNow - kDay, kNow + 365 * kDay, kNow);
  EXPECT_EQ(l.verdict, CheckVerdict::kOk);
  EXPECT_THAT(l.text_en, HasSubstr("valid until 2027-12-02 12:00 UTC (365 days left)"));
  EXPECT_THAT(l.text_ru, HasSubstr("действует до 2027-12-02 12:00 UTC (осталось 365 дней)"));
  EXPECT_TRUE(l.fix_en.empty());
}

TEST(CheckCertExpiryTest, RussianDaysAgree) {
  auto ru = [](int64_t days) {
    return CertExpiryLine("c.pem", kNow - kDay, kNow + days * kDay + 1, kNow).text_ru;
  };
  EXPECT_THAT(ru(1), HasSubstr("через 1 день"));
  EXPECT_THAT(ru(3), HasSubstr("через 3 дня"));
  EXPECT_THAT(ru(5), HasSubstr("через 5 дней"));
  EXPECT_THAT(ru(11), HasSubstr("через 11 дней"));
  EXPECT_THAT(ru(21), HasSubstr("через 21 день"));
  EXPECT_THAT(ru(24), HasSubstr("через 24 дня"));
}

TEST(CheckCertExpiryTest, NotYetValidFails) {
  CheckLine l = CertExpiryLine("c.pem", kNow + kDay, kNow + 100 * kDay, kNow);
  EXPECT_EQ(l.verdict, CheckVerdict::kFail);
  EXPECT_THAT(l.text_en, HasSubstr("not valid before 2026-12-03 12:00 UTC"));
  EXPECT_THAT(l.fix_en, HasSubstr("clock"));
}

// ---- certificate and key ----

TEST(CheckTlsFilesTest, MatchingCertificateAndKeyPassWithTheirNames) {
  Key key = NewKey();
  auto lines = TlsLines("/c.pem", CertPem(key.get(), kNow - kDay, kNow + 200 * kDay), "/c.key",
                        KeyPem(key.get()), kNow);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].id, "grpc.tls");
  EXPECT_EQ(lines[0].verdict, CheckVerdict::kOk) << lines[0].text_en;
  EXPECT_THAT(lines[0].text_en, HasSubstr("DNS:collector.test"));
  EXPECT_THAT(lines[0].text_en, HasSubstr("load and match"));
  EXPECT_EQ(lines[1].id, "grpc.tls_expiry");
  EXPECT_EQ(lines[1].verdict, CheckVerdict::kOk);
  EXPECT_THAT(lines[1].text_en, HasSubstr("(200 days left)"));
}

TEST(CheckTlsFilesTest, AKeyOfAnotherCertificateFails) {
  Key key = NewKey(), other = NewKey();
  auto lines = TlsLines("/c.pem", CertPem(key.get(), kNow - kDay, kNow + 200 * kDay), "/c.key",
                        KeyPem(other.get()), kNow);
  const CheckLine* tls = Find(lines, "grpc.tls");
  ASSERT_NE(tls, nullptr);
  EXPECT_EQ(tls->verdict, CheckVerdict::kFail);
  EXPECT_THAT(tls->text_en, HasSubstr("does not belong to certificate /c.pem"));
  EXPECT_THAT(tls->fix_en, HasSubstr("grpc.tls_key_file"));
  // The expiry is still judged.
  ASSERT_NE(Find(lines, "grpc.tls_expiry"), nullptr);
}

TEST(CheckTlsFilesTest, APassphraseKeyFailsWithoutPrompting) {
  Key key = NewKey();
  auto lines = TlsLines("/c.pem", CertPem(key.get(), kNow - kDay, kNow + 200 * kDay), "/c.key",
                        KeyPem(key.get(), "secret"), kNow);
  const CheckLine* tls = Find(lines, "grpc.tls");
  ASSERT_NE(tls, nullptr);
  EXPECT_EQ(tls->verdict, CheckVerdict::kFail);
  EXPECT_THAT(tls->text_en, HasSubstr("passphrase"));
}

TEST(CheckTlsFilesTest, NoCertificateInTheFileFails) {
  Key key = NewKey();
  auto lines = TlsLines("/c.pem", KeyPem(key.get()), "/c.key", KeyPem(key.get()), kNow);
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0].verdict, CheckVerdict::kFail);
  EXPECT_THAT(lines[0].text_en, HasSubstr("no PEM certificate"));
}

TEST(CheckTlsFilesTest, AnExpiredCertificateFailsOnTheExpiryLine) {
  Key key = NewKey();
  auto lines = TlsLines("/c.pem", CertPem(key.get(), kNow - 30 * kDay, kNow - 2 * kDay), "/c.key",
                        KeyPem(key.get()), kNow);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].verdict, CheckVerdict::kOk);
  EXPECT_EQ(lines[1].verdict, CheckVerdict::kFail);
  EXPECT_THAT(lines[1].text_en, HasSubstr("expired on 2026-11-30 12:00 UTC"));
}

// ---- production calendars ----

TEST(CheckCalendarTest, ThisYearAndNextCoveredIsOk) {
  CheckLine l = CalendarLine("/cal", {2025, 2026, 2027}, 2026);
  EXPECT_EQ(l.id, "sla.calendar");
  EXPECT_EQ(l.verdict, CheckVerdict::kOk);
  EXPECT_THAT(l.text_en, HasSubstr("2026 and 2027 covered"));
}

TEST(CheckCalendarTest, NextYearMissingWarns) {
  CheckLine l = CalendarLine("/cal", {2026}, 2026);
  EXPECT_EQ(l.verdict, CheckVerdict::kWarn);
  EXPECT_THAT(l.text_en, HasSubstr("2027 not yet"));
  EXPECT_THAT(l.fix_en, HasSubstr("ru-2027.txt"));
  EXPECT_THAT(l.fix_ru, HasSubstr("ru-2027.txt"));
}

TEST(CheckCalendarTest, ThisYearMissingFailsEvenWithNextYear) {
  CheckLine l = CalendarLine("/cal", {2027}, 2026);
  EXPECT_EQ(l.verdict, CheckVerdict::kFail);
  EXPECT_THAT(l.text_en, HasSubstr("no file for 2026 (files for 2027)"));
  EXPECT_THAT(l.fix_en, HasSubstr("ru-2026.txt"));

  CheckLine none = CalendarLine("/cal", {2024, 2025}, 2026);
  EXPECT_EQ(none.verdict, CheckVerdict::kFail);
  EXPECT_THAT(none.text_en, HasSubstr("no file for 2026 and 2027"));
  EXPECT_THAT(none.text_ru, HasSubstr("нет файла на 2026 и 2027"));
}

TEST(CheckCalendarTest, AConfiguredDirectoryIsUsedAsIsAndTheMissingDefaultFallsBack) {
  EXPECT_EQ(ResolveCalendarDir("/nowhere/calendars", "/src/calendars"), "/nowhere/calendars");
  const std::string def = CollectorConfig{}.calendar_dir;
  if (std::filesystem::exists(def)) GTEST_SKIP() << def << " is installed on this machine";
  EXPECT_EQ(ResolveCalendarDir(def, "/src/calendars"), "/src/calendars");
}

// ---- listening addresses ----

TEST(CheckListenTest, FreeIsOk) {
  CheckLine l = ListenLine("grpc.listen", "0.0.0.0:7443", ListenProbe{}, false);
  EXPECT_EQ(l.verdict, CheckVerdict::kOk);
  EXPECT_THAT(l.text_en, HasSubstr("can be bound"));
}

TEST(CheckListenTest, HeldByTheCollectorWarnsOtherwiseFails) {
  ListenProbe collector{EADDRINUSE, true, true, "setdiag-collector (pid 42)", ""};
  CheckLine l = ListenLine("http.listen", "127.0.0.1:8088", collector, false);
  EXPECT_EQ(l.verdict, CheckVerdict::kWarn);
  EXPECT_THAT(l.text_en, HasSubstr("in use by the running collector (pid 42)"));

  ListenProbe other{EADDRINUSE, true, false, "nginx (pid 7)", ""};
  CheckLine o = ListenLine("http.listen", "127.0.0.1:8088", other, false);
  EXPECT_EQ(o.verdict, CheckVerdict::kFail);
  EXPECT_THAT(o.text_en, HasSubstr("in use by nginx (pid 7)"));
  EXPECT_THAT(o.fix_en, HasSubstr("another port"));
  // The collector holding the other address does not excuse a known stranger...
  EXPECT_EQ(ListenLine("grpc.listen", "0.0.0.0:7443", other, true).verdict, CheckVerdict::kFail);
  // ...but an unidentified answer next to the collector's API is the collector.
  ListenProbe unknown{EADDRINUSE, true, false, "", ""};
  EXPECT_EQ(ListenLine("grpc.listen", "0.0.0.0:7443", unknown, true).verdict, CheckVerdict::kWarn);
  EXPECT_EQ(ListenLine("grpc.listen", "0.0.0.0:7443", unknown, false).verdict, CheckVerdict::kFail);
}

TEST(CheckListenTest, PermissionAndForeignAddressHaveTheirOwnHints) {
  CheckLine denied =
      ListenLine("grpc.listen", "0.0.0.0:443", ListenProbe{EACCES, false, false, "", ""}, false);
  EXPECT_EQ(denied.verdict, CheckVerdict::kFail);
  EXPECT_THAT(denied.fix_en, HasSubstr("CAP_NET_BIND_SERVICE"));
  CheckLine foreign = ListenLine("grpc.listen", "10.9.9.9:7443",
                                 ListenProbe{EADDRNOTAVAIL, false, false, "", ""}, false);
  EXPECT_EQ(foreign.verdict, CheckVerdict::kFail);
  EXPECT_THAT(foreign.fix_en, HasSubstr("not one of this server's"));
}

int ListeningSocket(uint16_t* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 4) != 0) return -1;
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

TEST(CheckListenTest, AProcessHoldingThePortIsFoundAndNamed) {
  uint16_t port = 0;
  int fd = ListeningSocket(&port);
  ASSERT_GE(fd, 0);
  const std::string listen = Cat("127.0.0.1:", port);
  ListenProbe p = ProbeListen(listen, /*http=*/false, 1000);
  EXPECT_EQ(p.bind_errno, EADDRINUSE);
  EXPECT_TRUE(p.answered);
  EXPECT_FALSE(p.collector);
  EXPECT_THAT(p.owner, HasSubstr(Cat("(pid ", getpid(), ")")));
  auto owner = FindListener(port);
  ASSERT_TRUE(owner.has_value());
  EXPECT_EQ(owner->pid, getpid());
  EXPECT_EQ(p.owner, Cat(owner->program, " (pid ", getpid(), ")"));
  EXPECT_EQ(ListenLine("grpc.listen", listen, p, false).verdict, CheckVerdict::kFail);
  ::close(fd);

  // Closed again: free.
  ListenProbe freed = ProbeListen(listen, false, 1000);
  EXPECT_EQ(freed.bind_errno, 0);
  EXPECT_EQ(ListenLine("grpc.listen", listen, freed, false).verdict, CheckVerdict::kOk);
}

TEST(CheckListenTest, TheCollectorsAdminApiIsRecognisedOverHttp) {
  HttpServer server([](const HttpRequest&) { return HttpResponse{200, R"({"status":"ok"})"}; });
  ASSERT_TRUE(server.Start("127.0.0.1", 0).ok());
  const std::string listen = Cat("127.0.0.1:", server.port());
  ListenProbe p = ProbeListen(listen, /*http=*/true, 1000);
  EXPECT_EQ(p.bind_errno, EADDRINUSE);
  EXPECT_TRUE(p.collector);
  EXPECT_EQ(ListenLine("http.listen", listen, p, false).verdict, CheckVerdict::kWarn);
  server.Stop();
}

TEST(CheckListenTest, NotAnAddressFails) {
  ListenProbe p = ProbeListen("no-port-here", false, 100);
  EXPECT_FALSE(p.error.empty());
  EXPECT_EQ(ListenLine("grpc.listen", "no-port-here", p, false).verdict, CheckVerdict::kFail);
}

// ---- the database ----

TEST(CheckDatabaseTest, AMissingDataDirWithAWritableParentIsOk) {
  testutil::TempDir dir;
  CheckLine l = DatabaseLine(dir.File("data"), dir.File("data/collector.db"));
  EXPECT_EQ(l.verdict, CheckVerdict::kOk) << l.text_en;
  EXPECT_THAT(l.text_en, HasSubstr("does not exist yet"));
  EXPECT_FALSE(std::filesystem::exists(dir.File("data")));  // the check made nothing
}

TEST(CheckDatabaseTest, AMissingParentFails) {
  testutil::TempDir dir;
  CheckLine l = DatabaseLine(dir.File("a/b"), dir.File("a/b/collector.db"));
  EXPECT_EQ(l.verdict, CheckVerdict::kFail);
  EXPECT_THAT(l.fix_en, HasSubstr("install -d"));
}

TEST(CheckDatabaseTest, AFileInsteadOfADirectoryFails) {
  testutil::TempDir dir;
  testutil::WriteBytes(dir.File("data"), "x");
  CheckLine l = DatabaseLine(dir.File("data"), dir.File("data/collector.db"));
  EXPECT_EQ(l.verdict, CheckVerdict::kFail);
  EXPECT_THAT(l.text_en, HasSubstr("not a directory"));
}

TEST(CheckDatabaseTest, AnExistingDatabaseOpensReadWriteAndIsLeftUnchanged) {
  testutil::TempDir dir;
  const std::string path = dir.File("collector.db");
  {
    auto db = sql::Db::Open(path);
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE(db->Exec("CREATE TABLE t(x); INSERT INTO t VALUES (1), (2)").ok());
  }
  const std::string before = testutil::ReadBytes(path);
  ASSERT_FALSE(before.empty());
  CheckLine l = DatabaseLine(dir.path(), path);
  EXPECT_EQ(l.verdict, CheckVerdict::kOk) << l.text_en;
  EXPECT_THAT(l.text_en, HasSubstr("opens read-write"));
  EXPECT_EQ(testutil::ReadBytes(path), before);
  EXPECT_FALSE(std::filesystem::exists(path + "-wal") &&
               std::filesystem::file_size(path + "-wal") > 0);
}

TEST(CheckDatabaseTest, NoDatabaseYetIsOkAndNotCreated) {
  testutil::TempDir dir;
  CheckLine l = DatabaseLine(dir.path(), dir.File("collector.db"));
  EXPECT_EQ(l.verdict, CheckVerdict::kOk);
  EXPECT_THAT(l.text_en, HasSubstr("not created yet"));
  EXPECT_FALSE(std::filesystem::exists(dir.File("collector.db")));
}

TEST(CheckDatabaseTest, ADamagedFileFails) {
  testutil::TempDir dir;
  testutil::WriteBytes(dir.File("collector.db"), std::string(4096, 'z'));
  CheckLine l = DatabaseLine(dir.path(), dir.File("collector.db"));
  EXPECT_EQ(l.verdict, CheckVerdict::kFail);
  EXPECT_THAT(l.text_en, HasSubstr("damaged"));
  EXPECT_THAT(l.fix_en, HasSubstr("backup"));
}

// ---- targets ----

TEST(CheckTargetUrlTest, HostAndPortWithDefaultsNeverThePath) {
  auto a = ParseTargetUrl("https://user:pw@helpdesk.example.ru/hooks/setdiag?token=SECRET");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->host, "helpdesk.example.ru");
  EXPECT_EQ(a->port, 443);
  EXPECT_TRUE(a->tls);
  EXPECT_EQ(a->Display(), "https://helpdesk.example.ru:443");
  EXPECT_THAT(a->Display(), Not(HasSubstr("SECRET")));

  auto b = ParseTargetUrl("http://127.0.0.1:8080/x");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->port, 8080);
  EXPECT_FALSE(b->tls);

  auto c = ParseTargetUrl("smtp://[::1]:2525");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->host, "::1");
  EXPECT_EQ(c->port, 2525);
  EXPECT_EQ(c->Display(), "smtp://[::1]:2525");

  EXPECT_EQ(ParseTargetUrl("smtp://mail.example.ru")->port, 25);
  EXPECT_EQ(ParseTargetUrl("smtps://mail.example.ru")->port, 465);
  EXPECT_FALSE(ParseTargetUrl("ftp://x").ok());
  EXPECT_FALSE(ParseTargetUrl("http://:80/").ok());
  EXPECT_FALSE(ParseTargetUrl("http://h:99999/").ok());
  EXPECT_FALSE(ParseTargetUrl("http://h:8x/").ok());
}

TEST(CheckSmtpGreetingTest, CompleteOnlyWithTheLastLine) {
  EXPECT_FALSE(ParseSmtpReply("220 mail.example.ru ESM").complete);
  SmtpReply one = ParseSmtpReply("220 mail.example.ru ESMTP ready\r\n");
  EXPECT_TRUE(one.complete);
  EXPECT_EQ(one.code, 220);
  EXPECT_EQ(one.text, "mail.example.ru ESMTP ready");

  EXPECT_FALSE(ParseSmtpReply("220-mail.example.ru welcome\r\n").complete);
  SmtpReply multi = ParseSmtpReply("220-mail.example.ru welcome\r\n220 no spam please\r\n");
  EXPECT_TRUE(multi.complete);
  EXPECT_EQ(multi.code, 220);
  EXPECT_EQ(multi.text, "mail.example.ru welcome");

  SmtpReply refused = ParseSmtpReply("554 no service for you\r\n");
  EXPECT_TRUE(refused.complete);
  EXPECT_EQ(refused.code, 554);

  SmtpReply http = ParseSmtpReply("HTTP/1.1 400 Bad Request\r\n");
  EXPECT_TRUE(http.complete);
  EXPECT_EQ(http.code, -1);
}

TEST(CheckTestNotificationTest, TheWebhookBodyIsMarkedAsATest) {
  auto body =
      nlohmann::json::parse(TestWebhookBody("test-abc:webhook:helpdesk", kNow, "support-1"));
  EXPECT_EQ(body["id"], "test-abc:webhook:helpdesk");
  EXPECT_EQ(body["type"], "setdiag.test");
  EXPECT_EQ(body["test"], true);
  EXPECT_EQ(body["occurred_at_ms"], kNow);
  EXPECT_THAT(body["subject_en"].get<std::string>(), StartsWith("TEST"));
  EXPECT_THAT(body["subject_ru"].get<std::string>(), StartsWith("ТЕСТ"));
  EXPECT_THAT(body["text_en"].get<std::string>(), HasSubstr("support-1"));
  EXPECT_THAT(body["text_ru"].get<std::string>(), HasSubstr("Тикета нет"));
}

TEST(CheckTestNotificationTest, TheMailIsMimeWithAnEncodedSubjectAndBothLanguages) {
  std::string msg =
      TestMailMessage("Дежурный <setdiag@example.ru>", {"duty@example.ru", "boss@example.ru"},
                      "test-abc:email:duty", "email:duty", kNow, "support-1");
  const auto split = msg.find("\r\n\r\n");
  ASSERT_NE(split, std::string::npos);
  const std::string headers = msg.substr(0, split);
  EXPECT_THAT(headers, HasSubstr("Subject: =?UTF-8?B?"));
  EXPECT_THAT(headers, HasSubstr("From: =?UTF-8?B?"));
  EXPECT_THAT(headers, HasSubstr("<setdiag@example.ru>"));
  EXPECT_THAT(headers, HasSubstr("To: duty@example.ru,\r\n boss@example.ru"));
  EXPECT_THAT(headers, HasSubstr("Content-Transfer-Encoding: base64"));
  EXPECT_THAT(headers, HasSubstr("X-Setdiag-Test: true"));
  EXPECT_THAT(headers, HasSubstr("Message-ID: <setdiag.test-abc.email.duty@example.ru>"));
  std::string encoded;
  for (char c : msg.substr(split + 4)) {
    if (c != '\r' && c != '\n') encoded.push_back(c);
  }
  auto text = Unbase64(encoded);
  ASSERT_TRUE(text.has_value());
  EXPECT_THAT(*text, HasSubstr("ТЕСТ"));
  EXPECT_THAT(*text, HasSubstr("TEST"));
  EXPECT_THAT(*text, HasSubstr("email:duty"));
  // Every header line is short enough for SMTP.
  for (std::string_view line : Split(headers, '\n')) EXPECT_LE(line.size(), 998u);
}

TEST(CheckConfigLineTest, NamesTheLoadersMessageOnce) {
  CheckLine l = ConfigFailedLine(
      "/etc/c.toml", absl::InvalidArgumentError("/etc/c.toml:12: unknown key 'grpc.tls_cert'"));
  EXPECT_EQ(l.id, "config");
  EXPECT_EQ(l.verdict, CheckVerdict::kFail);
  EXPECT_EQ(l.text_en, "config /etc/c.toml:12: unknown key 'grpc.tls_cert'");
  EXPECT_FALSE(l.fix_en.empty());
  CheckLine bare = ConfigFailedLine("/etc/c.toml", absl::NotFoundError("no such file"));
  EXPECT_EQ(bare.text_en, "config /etc/c.toml: no such file");
}

}  // namespace
}  // namespace setdiag::collector
