// Secrets in lines longer than the redactor's window (issue 11, item 16):
// each kind of secret is planted at every offset around where the stream
// cuts a long line, and the line is streamed through the redactor as the
// bundle's file copy does (chunks of 64 KiB). No piece of a secret may
// survive, and the report counts each secret once: what was really removed.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "agent/bundle/collect_files.h"
#include "agent/core/redact.h"
#include "temp_dir.h"

namespace setdiag::agent::bundle {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct Plant {
  std::string name;
  std::string text;    // planted with a blank on each side
  std::string secret;  // no 6-character piece of it may be left
  std::string rule;
};

const std::string kJwt =
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMDQyIiwicm9sZSI6ImVycCJ9."
    "dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk";

std::vector<Plant> Plants() {
  return {
      {"password=", "password=Zq9xW7vK2mPq", "Zq9xW7vK2mPq", "key_value"},
      {"quoted JSON value", "\"db_password\":\"Jq8!mZ0pWx\"", "Jq8!mZ0pWx", "key_value"},
      {"connection string", "postgresql://erp:Pg5ecretW0rd@10.0.0.5:5432/set", "Pg5ecretW0rd",
       "uri_credentials"},
      {"bearer token", "Authorization: Bearer AbCdEf0123456789GhIjKl", "AbCdEf0123456789GhIjKl",
       "http_auth"},
      {"setdiag token", "sdst_3f9a0c1b2d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8",
       "3f9a0c1b2d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8", "setdiag_token"},
      {"jwt", kJwt, kJwt, "jwt"},
      {"cloud key", "AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7EXAMPLE", "aws_access_key"},
      {"card number", "4276 3800 1234 5679", "4276 3800 1234 5679", "card_number"},
      {"SQL password", "ALTER ROLE erp PASSWORD 'Pg''Secret77' VALID UNTIL 'infinity';",
       "Pg''Secret77", "sql_password"},
      {"PEM key on one line",
       "\"tls_key\":\"-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\\n"
       "-----END PRIVATE KEY-----\\n\"",
       "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "private_key"},
  };
}

std::set<std::string> Pieces(const std::string& secret, size_t k) {
  std::set<std::string> out;
  for (size_t i = 0; i + k <= secret.size(); ++i) out.insert(secret.substr(i, k));
  return out;
}

struct Streamed {
  std::string out;
  RedactionCounts counts;
  std::vector<size_t> cuts;  // input offsets where pieces ended (no redaction: = output)
  uint64_t splits = 0;
};

// As CopyRedacted does: 64 KiB chunks into a StreamRedactor.
Streamed Stream(const std::string& text, size_t max_line) {
  Streamed r;
  StreamRedactor s(
      [&](std::string_view piece) {
        r.out.append(piece);
        r.cuts.push_back(r.out.size());
        return absl::OkStatus();
      },
      max_line);
  for (size_t i = 0; i < text.size(); i += 64 * 1024) {
    EXPECT_TRUE(s.Feed(std::string_view(text).substr(i, 64 * 1024)).ok());
  }
  EXPECT_TRUE(s.Finish().ok());
  r.counts = s.counts();
  r.splits = s.lines_split();
  return r;
}

std::string Filler(const std::string& unit, size_t size) {
  std::string f;
  while (f.size() < size) f += unit;
  f.resize(size);
  return f;
}

// Plants each secret at every offset from 64 bytes before it would start at
// a cut to 64 bytes after the cut, for the first cut the stream makes in a
// long line of `unit` and for the window size itself (where the redactor used
// to cut), and checks the output.
void SweepAroundCuts(const std::string& unit, size_t max_line) {
  const std::string line = Filler(unit, 2 * max_line + 256);
  Streamed plain = Stream(line + "\n", max_line);
  ASSERT_EQ(plain.out, line + "\n");
  ASSERT_GE(plain.cuts.size(), 3u);
  const std::vector<size_t> boundaries = {plain.cuts[0], max_line};
  for (const auto& plant : Plants()) {
    SCOPED_TRACE(plant.name);
    const std::string planted = " " + plant.text + " ";
    const std::set<std::string> pieces = Pieces(plant.secret, 6);
    std::set<size_t> offsets;
    for (size_t b : boundaries) {
      for (size_t o = b - planted.size() - 64; o <= b + 64; ++o) offsets.insert(o);
    }
    int failures = 0;
    for (size_t o : offsets) {
      std::string text = line;
      text.insert(o, planted);
      text += "\nnext line\n";
      Streamed r = Stream(text, max_line);
      bool ok = true;
      for (const auto& p : pieces) {
        if (r.out.find(p) != std::string::npos) {
          ADD_FAILURE() << "offset " << o << ": '" << p << "' of the secret survived, cuts at "
                        << testing::PrintToString(r.cuts);
          ok = false;
          break;
        }
      }
      RedactionCounts expected = {{plant.rule, 1}};
      if (r.counts != expected) {
        ADD_FAILURE() << "offset " << o << ": counts " << testing::PrintToString(r.counts);
        ok = false;
      }
      // Nothing else changes: the same as redacting the line whole.
      RedactionCounts whole_counts;
      std::string whole = RedactText(text, &whole_counts);
      if (r.out != whole) {
        ADD_FAILURE() << "offset " << o << ": streamed output differs from the whole line's";
        ok = false;
      }
      EXPECT_EQ(whole_counts, expected);
      EXPECT_TRUE(r.out.ends_with("\nnext line\n"));
      if (!ok && ++failures >= 3) return;  // enough to see what is wrong
    }
  }
}

TEST(RedactSplitTest, NoSecretSurvivesAtAnyOffsetAroundACutInText) {
  SweepAroundCuts("cashNum=3 shopNum=1042 status=ACTIVE; ", 4096);
}

TEST(RedactSplitTest, NoSecretSurvivesAtAnyOffsetAroundACutWithoutBlanks) {
  // Nowhere to cut between words: the cut falls where it must.
  SweepAroundCuts("x", 4096);
}

TEST(RedactSplitTest, NoSecretSurvivesAroundTheDefault64KiBWindow) {
  // The bundle's own setting, around its first cut and the window size.
  const size_t max_line = StreamRedactor::kDefaultMaxLine;
  const std::string line =
      Filler("{\"cash\":3,\"shop\":1042,\"status\":\"ACTIVE\"},", max_line + max_line / 4);
  Streamed plain = Stream(line + "\n", max_line);
  ASSERT_GE(plain.cuts.size(), 2u);
  for (const auto& plant : Plants()) {
    SCOPED_TRACE(plant.name);
    const std::string planted = " " + plant.text + " ";
    const std::set<std::string> pieces = Pieces(plant.secret, 6);
    for (size_t b : {plain.cuts[0], max_line}) {
      // Starting just before the cut, across it (every 5th offset), ending
      // just after it.
      std::set<size_t> offsets;
      for (size_t o = b - planted.size() - 2; o <= b + 2; o += 5) offsets.insert(o);
      for (size_t d = 0; d <= 8; ++d) offsets.insert({b - planted.size() - 2 + d, b - d + 2});
      for (size_t o : offsets) {
        std::string text = line;
        text.insert(o, planted);
        text += "\n";
        Streamed r = Stream(text, max_line);
        for (const auto& p : pieces) ASSERT_THAT(r.out, Not(HasSubstr(p))) << "offset " << o;
        ASSERT_EQ(r.counts, (RedactionCounts{{plant.rule, 1}})) << "offset " << o;
      }
    }
  }
}

TEST(RedactSplitTest, ASecretLongerThanTheWindowIsRemovedWhole) {
  // A 100 KiB value: it cannot be seen whole, it is removed in full anyway
  // and counted once.
  std::string value;
  for (int i = 0; value.size() < 100 * 1024; ++i) value += "Ab9" + std::to_string(i * 7919);
  std::string text = "start of the line; api_token=" + value + " done; next=1\nafter\n";
  Streamed r = Stream(text, 16 * 1024);
  EXPECT_GE(r.splits, 5u);
  for (size_t i = 0; i + 12 <= value.size(); i += 97) {
    ASSERT_THAT(r.out, Not(HasSubstr(value.substr(i, 12)))) << i;
  }
  EXPECT_EQ(r.out, "start of the line; api_token=[REDACTED] done; next=1\nafter\n");
  EXPECT_EQ(r.counts, (RedactionCounts{{"key_value", 1}}));
}

TEST(RedactSplitTest, APrivateKeyBlockWithLongLinesStaysRedacted) {
  std::string body = Filler("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo", 40 * 1024);
  std::string text = "-----BEGIN RSA PRIVATE KEY-----\n" + body + "\n" + body +
                     "-----END RSA PRIVATE KEY----- trailing\nafter the key\n";
  Streamed r = Stream(text, 4096);
  EXPECT_THAT(r.out, Not(HasSubstr("QUJDREVG")));
  EXPECT_THAT(r.out, HasSubstr("-----END RSA PRIVATE KEY----- trailing\nafter the key\n"));
  EXPECT_EQ(r.counts, (RedactionCounts{{"private_key", 1}}));
}

TEST(RedactSplitTest, TheBundleCopyOfALongLogLineLeavesNoSecret) {
  // CopyRedacted itself, on a real file: a password= value, a card and a
  // JWT each straddling a multiple of 64 KiB, where a line without blanks
  // used to be cut.
  testutil::TempDir dir;
  const size_t window = StreamRedactor::kDefaultMaxLine;
  std::string line = Filler("x", 3 * window + 100);
  const std::vector<std::pair<size_t, std::string>> plants = {
      {window - 12, "|password=Zq9xW7vK2mPq|"},
      {2 * window - 8, "|4276-3800-1234-5679|"},
      {3 * window - 40, "|" + kJwt + "|"}};
  for (const auto& [at, text] : plants) line.replace(at, text.size(), text);
  const std::string source = dir.File("server.log");
  std::ofstream(source) << line << "\nnext\n";
  auto c = CopyRedacted(source, dir.File("out.log"), 64 * 1024 * 1024, nullptr);
  ASSERT_TRUE(c.ok()) << c.status();
  std::stringstream out;
  out << std::ifstream(dir.File("out.log")).rdbuf();
  for (const std::string& s :
       {std::string("Zq9xW7"), std::string("9xW7vK2mPq"), std::string("4276-3800"),
        std::string("1234-5679"), kJwt.substr(0, 12), kJwt.substr(kJwt.size() - 12)}) {
    EXPECT_EQ(out.str().find(s), std::string::npos) << s << " survived";
  }
  for (const char* s :
       {"x|password=[REDACTED]|x", "x|****-****-****-5679|x", "x|[REDACTED]|x", "x\nnext\n"}) {
    EXPECT_NE(out.str().find(s), std::string::npos) << s << " missing";
  }
  EXPECT_EQ(out.str().size(), line.size() + 6 - 2 - (kJwt.size() - 10));
  EXPECT_GE(c->lines_split, 3u);
  EXPECT_EQ(c->redactions, (RedactionCounts{{"key_value", 1}, {"card_number", 1}, {"jwt", 1}}));
}

TEST(RedactSplitTest, APostgresLogCopiedIntoABundleReportsItsSqlPasswords) {
  // Item 15: PostgreSQL's own log, as the logs step copies it.
  testutil::TempDir dir;
  const std::string source = dir.File("postgresql-15-main.log");
  std::ofstream(source)
      << "2026-01-15 10:00:00.123 MSK [4121] postgres@set LOG:  statement: ALTER ROLE postgres "
         "PASSWORD 'Pg#Admin2026';\n"
         "2026-01-15 10:00:02.789 MSK [4123] postgres@set ERROR:  role \"erp\" already exists\n"
         "2026-01-15 10:00:02.789 MSK [4123] postgres@set STATEMENT:  CREATE USER erp WITH "
         "ENCRYPTED PASSWORD 'Erp''Sync!77' VALID UNTIL '2027-01-01';\n";
  auto c = CopyRedacted(source, dir.File("out.log"), 1 << 20, nullptr);
  ASSERT_TRUE(c.ok()) << c.status();
  std::stringstream out;
  out << std::ifstream(dir.File("out.log")).rdbuf();
  EXPECT_THAT(out.str(), Not(HasSubstr("Pg#Admin2026")));
  EXPECT_THAT(out.str(), Not(HasSubstr("Sync!77")));
  EXPECT_THAT(out.str(), HasSubstr("ALTER ROLE postgres PASSWORD '[REDACTED]';\n"));
  EXPECT_THAT(out.str(), HasSubstr("PASSWORD '[REDACTED]' VALID UNTIL '2027-01-01';\n"));
  EXPECT_EQ(c->redactions, (RedactionCounts{{"sql_password", 2}}));
}

// Random long lines made of fragments; `text` gets up to three of them.
std::string MixedLines(std::mt19937& rng, const std::vector<std::string>& fragments) {
  std::string text;
  const size_t lines = 1 + rng() % 3;
  for (size_t l = 0; l < lines; ++l) {
    const size_t start = text.size();
    const size_t size = 8 * 1024 + rng() % (32 * 1024);
    while (text.size() - start < size) text += fragments[rng() % fragments.size()];
    text += "\n";
  }
  return text;
}

std::string FirstDifference(const std::string& a, const std::string& b) {
  size_t d = 0;
  while (d < a.size() && d < b.size() && a[d] == b[d]) ++d;
  const size_t from = d > 120 ? d - 120 : 0;
  return "differs at " + std::to_string(d) +
         "\nstreamed: " + testing::PrintToString(a.substr(from, 240)) +
         "\nwhole:    " + testing::PrintToString(b.substr(from, 240));
}

TEST(RedactSplitTest, LongMixedLinesStreamAsIfRedactedWhole) {
  // Lines of 8-40 KiB made of random fragments (secrets of every kind, keys,
  // numbers, quotes, XML, blanks): streamed through 4 KiB windows they come
  // out exactly as redacted in one piece, with the same counts.
  const std::vector<std::string> fragments = {"cashNum=3 ",
                                              "shopNum=1042 ",
                                              "status=ACTIVE; ",
                                              "\"price\":129.90,",
                                              "<item id=\"7\"/>",
                                              "password=Zq9xW7vK2mPq ",
                                              " api_token: tok_9f8e7d6c5b4a ",
                                              "postgresql://erp:Pg5ecretW0rd@db/set ",
                                              "Authorization: Bearer AbCdEf0123456789GhIjKl ",
                                              "sdu_a1b2c3d4e5f60718293a4b5c6d7e8f90 ",
                                              kJwt + " ",
                                              "AKIAIOSFODNN7EXAMPLE ",
                                              "4276 3800 1234 5679 ",
                                              "4600000000060 ",
                                              "ALTER ROLE x PASSWORD 'Pg''Secret77' ",
                                              "<password>XmlPw1</password>",
                                              "secret=",
                                              "'quoted' ",
                                              "1768460400121 ",
                                              "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                                              "-- ",
                                              "&",
                                              ",",
                                              " "};
  std::mt19937 rng(11);
  for (int round = 0; round < 60; ++round) {
    const std::string text = MixedLines(rng, fragments);
    RedactionCounts whole_counts;
    const std::string whole = RedactText(text, &whole_counts);
    Streamed r = Stream(text, 4096);
    ASSERT_TRUE(r.out == whole) << "round " << round << ": " << FirstDifference(r.out, whole);
    ASSERT_EQ(r.counts, whole_counts) << "round " << round;
  }
}

}  // namespace
}  // namespace setdiag::agent::bundle
