// The pure parts of the agent's PostgreSQL client (agent/sources/pg_wire.h): SCRAM
// and MD5 answers against published / independently computed values, and
// the parsing of recorded backend bytes.
#include "agent/sources/pg_wire.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "common/digest.h"

namespace setdiag::agent::pgwire {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

using namespace std::string_literals;  // bytes with embedded NULs

// RFC 7677, section 3.
constexpr std::string_view kServerFirst =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";

TEST(PgWireScram, Rfc7677TestVector) {
  ScramSha256 scram("user", "pencil", "rOprNGfwEbeRWgbNEkqO");
  EXPECT_EQ(scram.ClientFirst(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
  auto final_msg = scram.ClientFinal(kServerFirst);
  ASSERT_TRUE(final_msg.ok()) << final_msg.status();
  EXPECT_EQ(*final_msg,
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
            "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
  // The RFC's server-final (also Python's hmac/hashlib on the same inputs).
  EXPECT_TRUE(scram.VerifyServerFinal("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=").ok());
}

TEST(PgWireScram, WrongServerSignatureIsRefused) {
  ScramSha256 scram("user", "pencil", "rOprNGfwEbeRWgbNEkqO");
  ASSERT_TRUE(scram.ClientFinal(kServerFirst).ok());
  // One character changed, and a signature that only starts right: a
  // server that does not know the password.
  for (const char* wrong : {"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl96G4=",
                            "v=6rriTRBi23WpRR/wtup+mMhUZUn/dKk4p7pbq1E1w3w="}) {
    auto st = scram.VerifyServerFinal(wrong);
    EXPECT_FALSE(st.ok()) << wrong;
    EXPECT_THAT(std::string(st.message()), HasSubstr("signature"));
  }
  EXPECT_FALSE(scram.VerifyServerFinal("e=invalid-proof").ok());
}

TEST(PgWireScram, ServerFinalBeforeClientFinalIsRefused) {
  ScramSha256 scram("user", "pencil", "rOprNGfwEbeRWgbNEkqO");
  EXPECT_FALSE(scram.VerifyServerFinal("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=").ok());
}

TEST(PgWireScram, ServerNonceMustExtendOurs) {
  ScramSha256 scram("", "pencil", "rOprNGfwEbeRWgbNEkqO");
  EXPECT_FALSE(scram.ClientFinal("r=someoneElsesNonce,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096").ok());
  EXPECT_FALSE(scram.ClientFinal("r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
                   .ok());  // not longer
  EXPECT_FALSE(scram.ClientFinal("r=rOprNGfwEbeRWgbNEkqOxx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0").ok());
  EXPECT_FALSE(
      scram.ClientFinal("m=ext,r=rOprNGfwEbeRWgbNEkqOxx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1").ok());
}

// A hostile server asking for 2^31-1 iterations would make PBKDF2 spin for
// minutes; refused at once, above 100000 (PostgreSQL uses 4096).
TEST(PgWireScram, TooManyIterationsAreRefusedAtOnce) {
  ScramSha256 scram("", "pencil", "rOprNGfwEbeRWgbNEkqO");
  auto start = std::chrono::steady_clock::now();
  auto st = scram.ClientFinal("r=rOprNGfwEbeRWgbNEkqOxx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=2147483647");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().message(),
            "SCRAM: the server asks for 2147483647 iterations, more than 100000");
  ScramSha256 just_over("", "pencil", "rOprNGfwEbeRWgbNEkqO");
  st = just_over.ClientFinal("r=rOprNGfwEbeRWgbNEkqOxx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=100001");
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(std::string(st.status().message()), HasSubstr("100001 iterations"));
  ScramSha256 at_limit("", "pencil", "rOprNGfwEbeRWgbNEkqO");
  EXPECT_TRUE(
      at_limit.ClientFinal("r=rOprNGfwEbeRWgbNEkqOxx,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=100000").ok());
}

TEST(PgWireScram, RandomNonceAndEmptyUserAsLibpq) {
  ScramSha256 a("", "pw"), b("", "pw");
  EXPECT_THAT(a.ClientFirst(), ::testing::StartsWith("n,,n=,r="));
  EXPECT_EQ(a.ClientFirst().size(),
            std::string("n,,n=,r=").size() + 24);  // 18 random bytes, base64
  EXPECT_NE(a.ClientFirst(), b.ClientFirst());
}

TEST(PgWireMd5, AnswerToTheChallenge) {
  // Values from Python's hashlib: md5(md5("postgrespostgres").hex + salt).
  EXPECT_EQ(Md5Password("postgres", "postgres", "\x01\x02\x03\x04"),
            "md568be9ed08db75f318087ab337aaea044");
  EXPECT_EQ(Md5Password("postgres", "postgres", "\xff\x00\x80\x7f"s),
            "md5b83fc5f35855e3f19dd70abd145b90e5");
}

TEST(PgWireBase64, RoundTrip) {
  EXPECT_EQ(Base64("n,,"), "biws");
  EXPECT_EQ(Unbase64("biws"), "n,,");
  EXPECT_EQ(Unbase64("YQ=="), "a");
  EXPECT_EQ(Unbase64("YWI="), "ab");
  EXPECT_EQ(Unbase64("abc"), std::nullopt);
}

TEST(PgWireFraming, RecordedBackendBytes) {
  // RowDescription-less stream as a server sends it: DataRow ('1', NULL,
  // ''), CommandComplete "SELECT 1", ReadyForQuery idle.
  std::string bytes =
      "D\x00\x00\x00\x13\x00\x03"  // 4 + 2 + (4+1) + 4 + 4 = 19
      "\x00\x00\x00\x01"
      "1"
      "\xff\xff\xff\xff"
      "\x00\x00\x00\x00"
      "C\x00\x00\x00\x0dSELECT 1\x00"
      "Z\x00\x00\x00\x05I"s;
  std::string_view buf = bytes;
  char type = 0;
  std::string_view body;
  auto got = TakeMessage(&buf, kMaxMessageLength, &type, &body);
  ASSERT_TRUE(got.ok() && *got);
  EXPECT_EQ(type, 'D');
  auto row = ParseDataRow(body);
  ASSERT_TRUE(row.ok()) << row.status();
  EXPECT_THAT(*row, ElementsAre(std::optional<std::string>("1"), std::nullopt,
                                std::optional<std::string>("")));

  got = TakeMessage(&buf, kMaxMessageLength, &type, &body);
  ASSERT_TRUE(got.ok() && *got);
  EXPECT_EQ(type, 'C');
  EXPECT_EQ(body, "SELECT 1\0"s);

  // Incomplete: only part of ReadyForQuery is there.
  std::string_view partial = buf.substr(0, 4);
  got = TakeMessage(&partial, kMaxMessageLength, &type, &body);
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(*got);
  EXPECT_EQ(partial.size(), 4u);

  got = TakeMessage(&buf, kMaxMessageLength, &type, &body);
  ASSERT_TRUE(got.ok() && *got);
  EXPECT_EQ(type, 'Z');
  EXPECT_EQ(body, "I");
  EXPECT_TRUE(buf.empty());
}

TEST(PgWireFraming, ImpossibleLengthsAreProtocolErrors) {
  char type = 0;
  std::string_view body;
  std::string too_short = "Z\x00\x00\x00\x03"s;
  std::string_view buf = too_short;
  EXPECT_FALSE(TakeMessage(&buf, kMaxMessageLength, &type, &body).ok());
  std::string too_long = "D\x7f\xff\xff\xff"s;
  buf = too_long;
  auto got = TakeMessage(&buf, kMaxMessageLength, &type, &body);
  EXPECT_FALSE(got.ok());
  EXPECT_THAT(std::string(got.status().message()), HasSubstr("protocol error"));
}

// The limits: 64 KiB before authentication, 16 MiB after. Refused from the
// header alone, before any of the body has to be buffered.
TEST(PgWireFraming, FrameLimitsBeforeAndAfterAuthentication) {
  EXPECT_EQ(kMaxStartupMessageLength, 64u << 10);
  EXPECT_EQ(kMaxMessageLength, 16u << 20);
  char type = 0;
  std::string_view body;
  std::string at_startup_limit = "E\x00\x01\x00\x00"s;  // 65536: allowed, incomplete
  std::string_view buf = at_startup_limit;
  auto got = TakeMessage(&buf, kMaxStartupMessageLength, &type, &body);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_FALSE(*got);
  std::string over_startup_limit = "E\x00\x01\x00\x01"s;  // 65537
  buf = over_startup_limit;
  got = TakeMessage(&buf, kMaxStartupMessageLength, &type, &body);
  ASSERT_FALSE(got.ok());
  EXPECT_THAT(std::string(got.status().message()),
              HasSubstr("message 'E' of 65537 bytes, more than the limit of 65536"));
  buf = over_startup_limit;  // fine once authenticated
  got = TakeMessage(&buf, kMaxMessageLength, &type, &body);
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(*got);
  std::string over_limit = "D\x01\x00\x00\x01"s;  // 16 MiB + 1
  buf = over_limit;
  EXPECT_FALSE(TakeMessage(&buf, kMaxMessageLength, &type, &body).ok());
  // The old limit let 256 MiB through.
  std::string big = "D\x0f\xff\xff\xff"s;
  buf = big;
  EXPECT_FALSE(TakeMessage(&buf, kMaxMessageLength, &type, &body).ok());
}

TEST(PgWireFraming, MalformedDataRows) {
  EXPECT_FALSE(ParseDataRow("\x00"s).ok());  // no column count
  EXPECT_FALSE(ParseDataRow("\x00\x01\x00\x00\x00\x05"
                            "ab"s)
                   .ok());                                       // value shorter than said
  EXPECT_FALSE(ParseDataRow("\x00\x01\xff\xff\xff\xfe"s).ok());  // negative length, not -1
  EXPECT_FALSE(ParseDataRow("\x00\x00"
                            "x"s)
                   .ok());  // trailing bytes
  auto empty = ParseDataRow("\x00\x00"s);
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST(PgWireErrors, ErrorResponseText) {
  // As PostgreSQL 15 sends a syntax error (localized S, non-localized V).
  std::string body =
      "SERROR\0VERROR\0C42601\0Msyntax error at or near \"SELEC\"\0P1\0Fscan.l\0L1176\0Rscanner_yyerror\0\0"s;
  ServerError e = ParseErrorResponse(body);
  EXPECT_EQ(e.severity, "ERROR");
  EXPECT_EQ(e.sqlstate, "42601");
  EXPECT_EQ(e.text, "ERROR: syntax error at or near \"SELEC\" (SQLSTATE 42601)");

  // Localized server, V preferred over S.
  e = ParseErrorResponse("SВАЖНО\0VFATAL\0C57P01\0Mterminating connection\0\0"s);
  EXPECT_EQ(e.text, "FATAL: terminating connection (SQLSTATE 57P01)");
  // No V (servers before 9.6): S.
  e = ParseErrorResponse("SFATAL\0Mno such database\0\0"s);
  EXPECT_EQ(e.text, "FATAL: no such database");
}

// A NUL byte would cut a value in the startup packet or the password
// message (or smuggle in another parameter): refused before connecting,
// naming the parameter but never showing the password.
TEST(PgWireParams, NulBytesAreRefusedByName) {
  for (std::string_view name : {"user", "database", "options", "application_name", "password"}) {
    PgConnectParams p;
    p.host = "127.0.0.1";
    p.port = 1;  // never reached
    p.connect_timeout_ms = 1;
    std::string bad = "top\0secret"s;
    if (name == "user") p.user = bad;
    if (name == "database") p.database = bad;
    if (name == "options") p.options = bad;
    if (name == "application_name") p.application_name = bad;
    if (name == "password") p.password = bad;
    auto c = PgConnection::Connect(p);
    ASSERT_FALSE(c.ok()) << name;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << name;
    std::string msg(c.status().message());
    EXPECT_THAT(msg, HasSubstr(std::string(name)));
    EXPECT_THAT(msg, HasSubstr("NUL"));
    EXPECT_THAT(msg, ::testing::Not(HasSubstr("secret")));
    EXPECT_THAT(msg, ::testing::Not(HasSubstr("top")));
  }
}

}  // namespace
}  // namespace setdiag::agent::pgwire
