// Redaction of secrets in bundle contents (acceptance 1): real-looking SET
// and setdiag configs and logs; nothing secret survives, the report counts
// what went, and numbers that are not cards stay readable.

#include "agent/core/redact.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "agent/bundle/step.h"

namespace setdiag::agent::bundle {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct Fixture {
  std::string name;
  std::string text;
  std::vector<std::string> secrets;  // must not appear anywhere in the output
  std::vector<std::string> kept;     // must still be there
  RedactionCounts counts;            // exactly
};

std::vector<Fixture> Fixtures() {
  return {
      {"setdiag agent.toml",
       R"([agent]
store_id = "1042"
state_dir = "/var/lib/setdiag"

[collector]
address = "collector.partner.ru:7443"
token = "sdst_3f9a0c1b2d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8"
token_file = "/etc/setdiag/agent.token"
ca_file = "/etc/setdiag/ca.pem"

[set_db]
enabled = true
user = "postgres"
password = "Kassa#2024!"
password_file = "/etc/setdiag/set-db.password"
)",
       {"3f9a0c1b2d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8", "Kassa#2024!"},
       {"store_id = \"1042\"", "token_file = \"/etc/setdiag/agent.token\"",
        "password_file = \"/etc/setdiag/set-db.password\"", "user = \"postgres\"",
        "collector.partner.ru:7443", "token = \"[REDACTED]\"", "password = \"[REDACTED]\""},
       {{"key_value", 2}}},

      {"WildFly standalone.xml",
       R"(<datasources>
    <datasource jndi-name="java:jboss/datasources/SetDS" pool-name="SetDS" enabled="true">
        <connection-url>jdbc:postgresql://localhost:5432/set?user=postgres&amp;password=Pg$ecret42</connection-url>
        <driver>postgresql</driver>
        <security>
            <user-name>postgres</user-name>
            <password>postgres_pw_77</password>
        </security>
    </datasource>
    <xa-datasource-property name="Password">XaPass!9</xa-datasource-property>
    <property name="javax.net.ssl.keyStorePassword" value="changeit-store"/>
    <secret value="c2VjcmV0LXZhdWx0LXZhbHVl"/>
    <password>
        MultiLinePw5
    </password>
</datasources>
)",
       {"Pg$ecret42", "postgres_pw_77", "XaPass!9", "changeit-store", "c2VjcmV0LXZhdWx0LXZhbHVl",
        "MultiLinePw5"},
       {"<user-name>postgres</user-name>",
        "jdbc:postgresql://localhost:5432/set?user=postgres&amp;password=[REDACTED]<",
        "<password>[REDACTED]</password>", "name=\"Password\">[REDACTED]<",
        "value=\"[REDACTED]\"/>", "<driver>postgresql</driver>"},
       {{"key_value", 6}}},

      {"properties and environment",
       R"(# ERP integration of store 1042
erp.ws.url=http://erp.local:8080/ws
erp.ws.user=integration
erp.ws.password = Erp-Pa55 zq9x
db.url=jdbc:postgresql://10.0.0.5:5432/set_operday?user=postgres&password=0per$day&ssl=false
api_key: AKIAIOSFODNN7EXAMPLE
mail.smtp.pass=SmtpPass77
PGPASSWORD=pgEnvSecret
export SET_API_TOKEN="tok_live_9f8e7d6c5b4a"
aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
signing.key=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
primaryKey=cash_number
primaryKey: id password=Kassa2024secret
cacheKey = "erp password=QuotedAfterKey1"
pg_dump --username=postgres --password secretFlagPw --dbname=set
)",
       {"Erp-Pa55", "zq9x", "0per$day", "AKIAIOSFODNN7EXAMPLE", "SmtpPass77", "pgEnvSecret",
        "tok_live_9f8e7d6c5b4a", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", "secretFlagPw",
        "Kassa2024secret", "QuotedAfterKey1"},
       {"erp.ws.url=http://erp.local:8080/ws", "erp.ws.user=integration",
        "user=postgres&password=[REDACTED]&ssl=false", "primaryKey=cash_number",
        "primaryKey: id password=[REDACTED]", "--username=postgres", "--dbname=set"},
       {{"key_value", 10}, {"aws_access_key", 1}}},

      {"SET server.log",
       R"(2026-01-15 10:00:00,123 INFO  [ru.crystals.setretailx.cash.CashManagerImpl] (default task-12) savePingMessage cashNum=3 shopNum=1042 lastActivity=1768460400121
2026-01-15 10:00:01,004 ERROR [ru.crystals.pos.payments] (pool-5-thread-2) Payment declined for card 4276 3800 1234 5679, rrn=123456789012
2026-01-15 10:00:02,500 WARN  [org.postgresql.Driver] Connection error: postgresql://postgres:Sup3rPg!@10.0.0.5:5432/set
2026-01-15 10:00:03,000 DEBUG [ru.crystals.erp] Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMDQyIiwicm9sZSI6ImVycCJ9.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk
2026-01-15 10:00:04,000 INFO  [ru.crystals.erp] import goods package TI=8c1e2a4b barcode=4600000000060 price=129.90 item=2200000123442 qty=4111111111111112
2026-01-15 10:00:05,000 INFO  [ru.crystals.loyal] card 5536913812345672 accepted; Basic dXNlcjpwYXNzd29yZA==
2026-01-15 10:00:06,000 INFO  [setdiag] user token sdu_a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9 used
2026-01-15 10:00:07,000 INFO  [ru.crystals] libpq: host=10.0.0.5 port=5432 user=postgres password='pq pass 1' dbname=set
2026-01-15 10:00:08,000 INFO  [ru.crystals] Mir card 2200-1234-5678-9019 refunded, amount 2200.00 RUB, phone +7 (495) 123-45-67
2026-01-15 10:00:09,000 WARN  [ru.crystals] Basic authentication failed for user ivanov: Invalid password, token expired
SPEEDLOG> 2026-01-15 10:00:10,000 FINISH: ru.crystals.ERPIntegration.importGoods 20260115100010 41111111111111111115 7000000000000005
)",
       {"4276 3800 1234 5679", "4276380012345679", "Sup3rPg!",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9", "dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk",
        "5536913812345672",
        "dXNlcjpwYXNzd29yZA==", "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9",
        "pq pass 1", "2200-1234-5678-9019"},
       {"lastActivity=1768460400121", "card **** **** **** 5679, rrn=123456789012",
        "postgresql://postgres:[REDACTED]@10.0.0.5:5432/set", "Authorization: Bearer [REDACTED]",
        "barcode=4600000000060", "item=2200000123442", "qty=4111111111111112",
        "card ************5672 accepted", "Basic [REDACTED]", "user token sdu_[REDACTED] used",
        "password='[REDACTED]' dbname=set",
        "Mir card ****-****-****-9019 refunded, amount 2200.00 RUB, phone +7 (495) 123-45-67",
        "Basic authentication failed for user ivanov: Invalid password, token expired",
        "20260115100010 41111111111111111115 7000000000000005"},
       {{"card_number", 3},
        {"uri_credentials", 1},
        {"jwt", 1},
        {"http_auth", 1},
        {"setdiag_token", 1},
        {"key_value", 1}}},

      {"JSON, plain and escaped",
       R"({"login":"erp","password":"J$0nPass","token":"abc.def","nested":{"apiKey":"k-123"},"count":3}
2026-01-15 10:00:00 INFO request body="{\"user\":\"erp\",\"password\":\"EscPass1\"}"
)",
       {"J$0nPass", "abc.def", "k-123", "EscPass1"},
       {"\"login\":\"erp\"", "\"count\":3", "\\\"user\\\":\\\"erp\\\""},
       {{"key_value", 4}}},

      {"PostgreSQL log with role passwords",
       R"(2026-01-15 10:00:00.123 MSK [4121] postgres@set LOG:  statement: ALTER ROLE postgres PASSWORD 'Pg#Admin2026';
2026-01-15 10:00:01.456 MSK [4122] postgres@set LOG:  statement: CREATE USER erp_sync WITH ENCRYPTED PASSWORD 'Erp''Sync!77' VALID UNTIL '2027-01-01';
2026-01-15 10:00:02.789 MSK [4123] postgres@set ERROR:  role "kassir" already exists
2026-01-15 10:00:02.789 MSK [4123] postgres@set STATEMENT:  CREATE ROLE kassir LOGIN PASSWORD E'Kas\'sir\\9' CONNECTION LIMIT 5;
2026-01-15 10:00:03.000 MSK [4124] postgres@set LOG:  statement: alter user backup with password $pw$Back$up-1$pw$;
2026-01-15 10:00:04.000 MSK [4125] postgres@set LOG:  statement: ALTER USER report WITH PASSWORD 'md5a3556571e93b0d20722ba62be61e8c2d'	VALID UNTIL 'infinity';
2026-01-15 10:00:05.000 MSK [4126] postgres@set LOG:  statement: ALTER ROLE old_user PASSWORD NULL;
2026-01-15 10:00:06.000 MSK [4127] erp_sync@set FATAL:  password authentication failed for user "erp_sync"
2026-01-15 10:00:06.000 MSK [4127] erp_sync@set DETAIL:  Connection matched pg_hba.conf line 92: "host all all 127.0.0.1/32 scram-sha-256"
2026-01-15 10:00:07.000 MSK [4128] postgres@set LOG:  statement: CREATE USER multi PASSWORD 'first line
	second-line-Secret' VALID UNTIL 'infinity';
2026-01-15 10:00:08.000 MSK [4129] postgres@set LOG:  duration: 0.412 ms  statement: SELECT cashnum, lastactivity FROM od_cash_status
)",
       {"Pg#Admin2026", "Sync!77", "Erp''", "sir\\9", "Back$up-1",
        "md5a3556571e93b0d20722ba62be61e8c2d", "first line", "second-line-Secret"},
       {"LOG:  statement: ALTER ROLE postgres PASSWORD '[REDACTED]';",
        "WITH ENCRYPTED PASSWORD '[REDACTED]' VALID UNTIL '2027-01-01';",
        "ERROR:  role \"kassir\" already exists",
        "LOGIN PASSWORD E'[REDACTED]' CONNECTION LIMIT 5;", "password $pw$[REDACTED]$pw$;",
        "WITH PASSWORD '[REDACTED]'\tVALID UNTIL 'infinity';", "ALTER ROLE old_user PASSWORD NULL;",
        "FATAL:  password authentication failed for user \"erp_sync\"",
        "\"host all all 127.0.0.1/32 scram-sha-256\"", "CREATE USER multi PASSWORD '[REDACTED]\n",
        "\n[REDACTED]' VALID UNTIL 'infinity';",
        "statement: SELECT cashnum, lastactivity FROM od_cash_status"},
       {{"sql_password", 6}}},

      {"PEM private keys",
       R"(-----BEGIN CERTIFICATE-----
MIIBszCCAVmgAwIBAgIUCertificateBodyStaysReadable
-----END CERTIFICATE-----
-----BEGIN RSA PRIVATE KEY-----
MIIEpAIBAAKCAQEA7ZqPrivateKeyLineOne
QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVprZXlsaW5ldHdv
-----END RSA PRIVATE KEY-----
{"tls_key":"-----BEGIN PRIVATE KEY-----\nMIIEvQInlinePemBody\n-----END PRIVATE KEY-----\n"}
after the key
)",
       {"MIIEpAIBAAKCAQEA7ZqPrivateKeyLineOne", "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVprZXlsaW5ldHdv",
        "MIIEvQInlinePemBody"},
       {"MIIBszCCAVmgAwIBAgIUCertificateBodyStaysReadable", "-----BEGIN RSA PRIVATE KEY-----",
        "-----END RSA PRIVATE KEY-----", "after the key"},
       {{"private_key", 2}}},
  };
}

TEST(RedactTest, NothingSecretSurvivesAndTheReportCountsIt) {
  for (const auto& f : Fixtures()) {
    SCOPED_TRACE(f.name);
    RedactionCounts counts;
    std::string out = RedactText(f.text, &counts);
    for (const auto& s : f.secrets) EXPECT_THAT(out, Not(HasSubstr(s))) << out;
    for (const auto& k : f.kept) EXPECT_THAT(out, HasSubstr(k)) << out;
    EXPECT_EQ(counts, f.counts) << out;
    // Line structure is kept: a reader can still match lines to the original.
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'),
              std::count(f.text.begin(), f.text.end(), '\n'));
  }
}

TEST(RedactTest, RedactingTwiceChangesNothingMore) {
  for (const auto& f : Fixtures()) {
    SCOPED_TRACE(f.name);
    std::string once = RedactText(f.text, nullptr);
    RedactionCounts again;
    EXPECT_EQ(RedactText(once, &again), once);
    EXPECT_TRUE(again.empty()) << again.begin()->first;
  }
}

TEST(RedactTest, StreamingInTinyChunksEqualsWholeText) {
  for (const auto& f : Fixtures()) {
    SCOPED_TRACE(f.name);
    RedactionCounts whole_counts;
    std::string whole = RedactText(f.text, &whole_counts);
    for (size_t chunk : {size_t{1}, size_t{7}, size_t{4096}}) {
      std::string out;
      StreamRedactor s([&](std::string_view piece) {
        out.append(piece);
        return absl::OkStatus();
      });
      for (size_t i = 0; i < f.text.size(); i += chunk) {
        ASSERT_TRUE(s.Feed(std::string_view(f.text).substr(i, chunk)).ok());
      }
      ASSERT_TRUE(s.Finish().ok());
      EXPECT_EQ(out, whole);
      EXPECT_EQ(s.counts(), whole_counts);
      EXPECT_EQ(s.bytes_in(), f.text.size());
    }
  }
}

TEST(RedactTest, OverlongLinesAreSplitWithoutLosingText) {
  // 300 KiB on one line, a secret near the end: memory stays bounded by the
  // line limit, the text comes through unchanged, the secret does not.
  std::string line;
  while (line.size() < 300 * 1024) line += "cashNum=3 shopNum=1042 status=ACTIVE; ";
  std::string text = line + "password=TailSecret9 end\nnext line\n";
  std::string out;
  StreamRedactor s(
      [&](std::string_view piece) {
        out.append(piece);
        return absl::OkStatus();
      },
      64 * 1024);
  ASSERT_TRUE(s.Feed(text).ok());
  ASSERT_TRUE(s.Finish().ok());
  EXPECT_GE(s.lines_split(), 4u);
  EXPECT_EQ(out, line + "password=[REDACTED] end\nnext line\n");
  EXPECT_EQ(s.counts().at("key_value"), 1);
}

TEST(RedactTest, SinkErrorStopsTheStream) {
  StreamRedactor s([](std::string_view) { return absl::ResourceExhaustedError("disk full"); });
  EXPECT_EQ(s.Feed("a\nb\n").code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(s.Feed("c\n").code(), absl::StatusCode::kResourceExhausted);
}

struct CardCase {
  std::string in;
  std::string out;
};

TEST(RedactTest, CardNumbersAndLookalikes) {
  const std::vector<CardCase> cases = {
      {"4111111111111111", "************1111"},
      {"pan=4111-1111-1111-1111;", "pan=****-****-****-1111;"},
      {"Amex 3782 822463 10005 ok", "Amex **** ****** *0005 ok"},
      {"19 digits 4111111111111111110", "19 digits ***************1110"},
      {"legacy 4222222222222", "legacy *********2222"},
      // Not cards: Luhn fails, too long, an EAN-13 barcode, a timestamp, a
      // number glued to letters, an industry digit no bank card has.
      {"4111111111111112", "4111111111111112"},
      {"41111111111111111115", "41111111111111111115"},
      {"ean 4600000000060", "ean 4600000000060"},
      {"ts 1768460400121", "ts 1768460400121"},
      {"id4111111111111111", "id4111111111111111"},
      {"7000000000000005", "7000000000000005"},
      {"date 2026-01-15 10:00:00", "date 2026-01-15 10:00:00"},
      {"4111 1111 1111 1111 2026", "**** **** **** 1111 2026"},
  };
  for (const auto& c : cases) {
    RedactionCounts counts;
    EXPECT_EQ(RedactText(c.in, &counts), c.out) << c.in;
  }
  EXPECT_TRUE(PassesLuhn("4111 1111 1111 1111"));
  EXPECT_FALSE(PassesLuhn("4111 1111 1111 1112"));
}

TEST(RedactTest, ProseAboutSecretsIsLeftAlone) {
  const std::vector<std::string> lines = {
      "Invalid password for user ivanov",
      "token expired, requesting a new one",
      "password:",
      "Basic authentication failed",
      "secret santa list",
      "primaryKey=cash_number",
      "keyboard layout: ru",
      "token_type=Bearer",
      "https://collector.example.ru:7443/v1/events",
  };
  for (const auto& l : lines) {
    RedactionCounts counts;
    EXPECT_EQ(RedactText(l, &counts), l);
    EXPECT_TRUE(counts.empty()) << l;
  }
}

TEST(RedactTest, JsonValuesUnderSecretKeysAreReplacedWhole) {
  nlohmann::json j = {{"user", "postgres"},
                      {"password", "plain"},
                      {"nested", {{"api_token", "abc"}, {"list", {"password=inline1", "fine"}}}},
                      {"token_file", "/etc/setdiag/agent.token"},
                      {"cmdline", "java -Djavax.net.ssl.trustStorePassword=changeit -jar x.jar"}};
  RedactionCounts counts;
  RedactJson(&j, &counts);
  std::string text = j.dump();
  for (const char* s : {"plain", "\"abc\"", "inline1", "changeit"})
    EXPECT_THAT(text, Not(HasSubstr(s)));
  EXPECT_EQ(j["user"], "postgres");
  EXPECT_EQ(j["token_file"], "/etc/setdiag/agent.token");
  EXPECT_EQ(j["nested"]["list"][1], "fine");
  EXPECT_EQ(counts["key_value"], 4);
}

TEST(RedactTest, SqlPasswordLiteralsAndLookalikes) {
  const std::vector<CardCase> cases = {
      {"ALTER ROLE x PASSWORD 'a''b'", "ALTER ROLE x PASSWORD '[REDACTED]'"},
      {"alter role x password U&'d\\0061ta'", "alter role x password U&'[REDACTED]'"},
      {"CREATE USER x PASSWORD $$dollar$$ LOGIN", "CREATE USER x PASSWORD $$[REDACTED]$$ LOGIN"},
      // standard_conforming_strings off: \' escapes; the longer reading wins.
      {"ALTER ROLE x PASSWORD 'a\\'b' LOGIN", "ALTER ROLE x PASSWORD '[REDACTED]' LOGIN"},
      // Not literals after PASSWORD: left alone.
      {"ALTER ROLE x PASSWORD NULL", "ALTER ROLE x PASSWORD NULL"},
      {"PREPARE p AS ALTER ROLE x PASSWORD $1", "PREPARE p AS ALTER ROLE x PASSWORD $1"},
      {"password 'x' is not a password_encryption 'md5'",
       "password '[REDACTED]' is not a password_encryption 'md5'"},
      {"ALTER ROLE x PASSWORD ''", "ALTER ROLE x PASSWORD ''"},
  };
  for (const auto& c : cases) {
    RedactionCounts counts;
    EXPECT_EQ(RedactText(c.in, &counts), c.out) << c.in;
  }
  {  // A literal opened at the end of a line.
    RedactionCounts counts;
    EXPECT_EQ(RedactText("CREATE USER x PASSWORD '\nOnNextLine9' LOGIN;\n", &counts),
              "CREATE USER x PASSWORD '\n[REDACTED]' LOGIN;\n");
    EXPECT_EQ(counts, (RedactionCounts{{"sql_password", 1}}));
  }
  // An SQL literal that never ends stops being one after 20 lines.
  std::string text = "ALTER ROLE x PASSWORD 'never closed\n";
  for (int i = 0; i < 30; ++i) text += "line " + std::to_string(i) + "\n";
  std::string out = RedactText(text, nullptr);
  EXPECT_THAT(out, Not(HasSubstr("never closed")));
  EXPECT_THAT(out, Not(HasSubstr("line 18\n")));
  EXPECT_THAT(out, HasSubstr("line 20\n"));
}

// Item 14: what the agent takes from SET (a rejected package's message, an
// inbox file name, a cashier's name) is redacted in an event's payload with
// the same rules as a bundle; ids, times, numbers and barcodes stay.
// Ids the collector matches on stay as they are even where the free-text
// rules would mask them: an episode ending in a 13-digit instant that passes
// the Luhn check (as some do from 2033), a package TI made of 16 digits.
TEST(RedactTest, EventIdentifiersAreNeverMasked) {
  // 4276380012345679 passes Luhn; as an episode's instant suffix and as a TI.
  nlohmann::json payload = {
      {"state", "raised"},
      {"episode", "store-1042-a1b2-tills-4276380012345679"},
      {"kind", "loading.import_errors"},
      {"source", "tills.activity"},
      {"failed_packages", {{{"ti", "4276380012345679"}, {"message", "card 4276380012345679"}}}}};
  const nlohmann::json before = payload;
  RedactionCounts counts;
  RedactJsonStrings(&payload, &counts);
  EXPECT_EQ(payload["episode"], before["episode"]);
  EXPECT_EQ(payload["state"], "raised");
  EXPECT_EQ(payload["source"], "tills.activity");
  EXPECT_EQ(payload["failed_packages"][0]["ti"], "4276380012345679");
  // Free text is still redacted.
  EXPECT_EQ(payload["failed_packages"][0]["message"].get<std::string>().find("4276380012345679"),
            std::string::npos)
      << payload.dump();
}

TEST(RedactTest, EventPayloadStringsAreRedactedAndOtherFieldsKept) {
  const std::string jwt =
      "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMDQyIiwicm9sZSI6ImVycCJ9.dBjftJeZ4CVPmB92K27uhbUJU1p1r_"
      "wW1gF";
  nlohmann::json payload = {
      {"state", "raised"},
      {"episode", "agent-1042-a1b2c3-loading.import_errors-1768460400121"},
      {"failed_packages",
       {{{"ti", "TI-1042-77"},
         {"arrived_ms", 1768460400121},
         {"status", 5},
         {"status_name", "internal error"},
         {"import_type", "GOODS"},
         {"message",
          "org.postgresql.util.PSQLException: FATAL: password authentication failed; "
          "url=jdbc:postgresql://10.0.0.5:5432/set?user=postgres&password=Pg$ecret42 "
          "while charging card 4276 3800 1234 5679 with token " +
              jwt}}}},
      {"oldest_waiting_file",
       {{"path", "/var/lib/jboss/products/source"},
        {"name", "catalog-goods_password=Kassa2024.xml"},
        {"mtime_ms", 1768460400121},
        {"files", 3}}},
      {"other_file", "goods_" + jwt + ".xml"},
      {"cashiers", {"Иванова А. П.", "session=abc password: Kass1r!"}},
      {"lagging_tills", {{{"till", 3}, {"last_load_ms", 1768460400121}, {"not_loaded", 2}}}},
      {"barcode", "4600000000060"},
      {"till_numbers", "3, 7, 11-14"},
      {"password", "plain"},
      {"summary_en", "1 import package(s) rejected"},
      {"summary_ru", "Отклонено пакетов загрузки: 1"}};
  const nlohmann::json before = payload;
  RedactionCounts counts;
  RedactJsonStrings(&payload, &counts);
  const std::string text = payload.dump();
  for (const std::string& secret :
       {std::string("Pg$ecret42"), std::string("4276 3800 1234"), std::string("Kassa2024"),
        std::string("Kass1r!"), std::string("\"plain\""), jwt.substr(0, 20), jwt.substr(40)}) {
    EXPECT_THAT(text, Not(HasSubstr(secret))) << text;
  }
  const auto& message = payload["failed_packages"][0]["message"].get_ref<const std::string&>();
  EXPECT_THAT(message, HasSubstr("FATAL: password authentication failed; "));
  EXPECT_THAT(message, HasSubstr("user=postgres&password=[REDACTED] "));
  EXPECT_THAT(message, HasSubstr("card **** **** **** 5679 with token [REDACTED]"));
  EXPECT_EQ(payload["oldest_waiting_file"]["name"], "catalog-goods_password=[REDACTED]");
  EXPECT_EQ(payload["other_file"], "goods_[REDACTED].xml");
  EXPECT_EQ(payload["cashiers"][0], "Иванова А. П.");
  EXPECT_EQ(payload["password"], "[REDACTED]");
  EXPECT_EQ(counts, (RedactionCounts{{"key_value", 4}, {"card_number", 1}, {"jwt", 2}}));
  // Everything else is exactly as it was.
  for (const char* key : {"state", "episode", "lagging_tills", "barcode", "till_numbers",
                          "summary_en", "summary_ru"}) {
    EXPECT_EQ(payload[key], before[key]) << key;
  }
  for (const char* key : {"ti", "arrived_ms", "status", "status_name", "import_type"}) {
    EXPECT_EQ(payload["failed_packages"][0][key], before["failed_packages"][0][key]) << key;
  }
  EXPECT_EQ(payload["oldest_waiting_file"]["mtime_ms"], 1768460400121);
  EXPECT_EQ(payload["oldest_waiting_file"]["path"], "/var/lib/jboss/products/source");
  // Once redacted, nothing more happens.
  RedactionCounts again;
  nlohmann::json twice = payload;
  RedactJsonStrings(&twice, &again);
  EXPECT_EQ(twice, payload);
  EXPECT_TRUE(again.empty());
}

TEST(RedactTest, EveryPemKeyOnALineAndTextAfterAnEndMarker) {
  RedactionCounts counts;
  const std::string out = RedactText(
      "-----BEGIN PRIVATE KEY-----\n"
      "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n"
      "-----END PRIVATE KEY----- loaded; password=AfterEnd1\n"
      "{\"a\":\"-----BEGIN PRIVATE KEY-----\\nFirstKeyBody1\\n-----END PRIVATE KEY-----\","
      "\"b\":\"-----BEGIN EC PRIVATE KEY-----\\nSecondKeyBody2\\n-----END EC PRIVATE KEY-----\"}\n",
      &counts);
  for (const char* s : {"MIIEvQIBADANBgkq", "AfterEnd1", "FirstKeyBody1", "SecondKeyBody2"})
    EXPECT_THAT(out, Not(HasSubstr(s))) << out;
  EXPECT_THAT(out, HasSubstr("-----END PRIVATE KEY----- loaded; password=[REDACTED]\n"));
  EXPECT_EQ(counts, (RedactionCounts{{"private_key", 3}, {"key_value", 1}}));
}

// Found by fuzzing (docs/fuzzing.md): a line of key material starting with
// "-----END" but no end marker, followed on the line by a new BEGIN, used to
// end the first key at the second key's "PRIVATE KEY-----" and leave the
// second key's body in the text.
// The start tag of a secret element holds more than the element's value:
// <pass password=x> was taken as the element "pass" whose text follows the
// tag, and the key in the tag itself was never looked at (tests/fuzz,
// corpus redact/attribute_key_inside_secret_tag).
TEST(RedactTest, AKeyInsideASecretElementsStartTagIsRedacted) {
  for (const char* text :
       {"<pass password=Kassa2024secret word>", "<password token=Kassa2024secret/>",
        "<token value=\"x\" password=Kassa2024secret>y</token>"}) {
    const std::string out = RedactText(text, nullptr);
    EXPECT_THAT(out, Not(HasSubstr("Kassa2024secret"))) << text << " -> " << out;
  }
  EXPECT_THAT(RedactText("<password>s3cr3t-Value</password>", nullptr),
              Not(HasSubstr("s3cr3t-Value")));
}

// A quoted PASSWORD value holding a one-line private key's BEGIN marker:
// both rules redact, and a second pass changes nothing (tests/fuzz, corpus
// redact/password_quote_around_pem_begin).
TEST(RedactTest, TwoMarkersSideBySideAreAlreadyRedacted) {
  const std::string once = RedactText("-----BEGIN P-PASSWORD 'D PRIVATE KEY-----'l\n", nullptr);
  EXPECT_THAT(once, Not(HasSubstr("'l"))) << once;
  EXPECT_EQ(RedactText(once, nullptr), once);
  // A one-line key whose body is a quoted PASSWORD holding an END marker
  // (corpus redact/pem_begin_password_end_in_quotes).
  const std::string key =
      RedactText("-----BEGINPRIVATE KEY-----PASSWORD '-----ENDPRIVATE KEY-----'\n", nullptr);
  EXPECT_EQ(RedactText(key, nullptr), key) << key;
}

TEST(RedactTest, OnlyARealEndMarkerEndsAKey) {
  const std::string out = RedactText(
      "-----BEGIN PRIVATE KEY-----\n"
      "MIIEvQFirstBody\n"
      "-----ENDy: user=set -----BEGIN PRIVATE KEY-----MIIEvQSecondBody\n"
      "-----END PRIVATE KEY-----\n"
      "-----BEGIN RSA PRIVATE KEY-----OneLineBody -----END of a sentence\n"
      "MIIEvQThirdBody\n"
      "-----END RSA PRIVATE KEY----- after\n",
      nullptr);
  for (const char* s : {"FirstBody", "SecondBody", "OneLineBody", "ThirdBody"})
    EXPECT_THAT(out, Not(HasSubstr(s))) << out;
  EXPECT_THAT(out, HasSubstr("-----END RSA PRIVATE KEY----- after\n"));
  EXPECT_EQ(RedactText(out, nullptr), out);
}

TEST(RedactTest, SecretKeyNames) {
  for (const char* k : {"password", "DB_PASSWORD", "apiToken", "client_secret", "api-key",
                        "private_key", "pwd", "mail.pass", "credentials"}) {
    EXPECT_TRUE(IsSecretKeyName(k)) << k;
  }
  for (const char* k :
       {"token_file", "password_file", "user", "key", "ca_file", "passenger", "token_type"}) {
    EXPECT_FALSE(IsSecretKeyName(k)) << k;
  }
}

}  // namespace
}  // namespace setdiag::agent::bundle
