#include "common/config.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/strings.h"
#include "temp_dir.h"

namespace setdiag {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::unique_ptr<ConfigReader> MustParse(const std::string& text,
                                        const std::string& origin = "x.toml") {
  std::unique_ptr<ConfigReader> r;
  absl::Status st = ConfigReader::Parse(text, origin, &r);
  EXPECT_TRUE(st.ok()) << st.ToString();
  return r;
}

std::string Msg(const absl::Status& st) { return std::string(st.message()); }

TEST(ConfigTest, GoodFileReadsTypedValuesAndFinishesOk) {
  auto r = MustParse(
      "[agent]\n"
      "store_id = \"s-1\"\n"
      "port = 7443\n"
      "verbose = true\n"
      "interval = \"30s\"\n"
      "size = \"64KiB\"\n");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->RequireString("agent.store_id"), "s-1");
  EXPECT_EQ(r->Int("agent.port", 0, 1, 65535), 7443);
  EXPECT_TRUE(r->Bool("agent.verbose", false));
  EXPECT_EQ(r->DurationMs("agent.interval", 0, 0), 30'000);
  EXPECT_EQ(r->Bytes("agent.size", 0, 0), 64 * 1024);
  EXPECT_EQ(r->String("agent.missing", "dflt"), "dflt");
  EXPECT_EQ(r->OptionalString("agent.also_missing"), std::nullopt);
  EXPECT_TRUE(r->Finish().ok());
}

TEST(ConfigTest, WrongTypeNamesOriginLineAndKey) {
  auto r = MustParse(
      "[agent]\n"
      "store_id = \"s-1\"\n"
      "port = \"not a number\"\n");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->Int("agent.port", 42, 1, 65535), 42) << "a bad value yields the default";
  (void)r->String("agent.store_id", "");
  absl::Status st = r->Finish();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(st), HasSubstr("x.toml:3"));
  EXPECT_THAT(Msg(st), HasSubstr("agent.port"));
}

TEST(ConfigTest, WrongTypeForStringAndBoolNameTheirLines) {
  {
    auto r = MustParse("a = 1\nb = 2\n", "s.toml");
    (void)r->Int("a", 0, 0, 10);
    (void)r->String("b", "");
    absl::Status st = r->Finish();
    ASSERT_FALSE(st.ok());
    EXPECT_THAT(Msg(st), HasSubstr("s.toml:2"));
    EXPECT_THAT(Msg(st), HasSubstr("'b'"));
  }
  {
    auto r = MustParse("\n\n\n\nflag = \"yes\"\n", "b.toml");
    EXPECT_FALSE(r->Bool("flag", false));
    absl::Status st = r->Finish();
    ASSERT_FALSE(st.ok());
    EXPECT_THAT(Msg(st), HasSubstr("b.toml:5"));
    EXPECT_THAT(Msg(st), HasSubstr("flag"));
  }
}

TEST(ConfigTest, IntegerOutOfRangeIsAnError) {
  auto r = MustParse("[x]\nn = 70000\n");
  EXPECT_EQ(r->Int("x.n", 5, 1, 65535), 5);
  absl::Status st = r->Finish();
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(Msg(st), HasSubstr("x.toml:2"));
  EXPECT_THAT(Msg(st), HasSubstr("x.n"));
  EXPECT_THAT(Msg(st), HasSubstr("70000"));
}

TEST(ConfigTest, UnknownKeyIsReportedWithItsLine) {
  auto r = MustParse(
      "[outbox]\n"
      "max_bytes = \"64KiB\"\n"
      "max_byts = \"1MiB\"\n");
  EXPECT_EQ(r->Bytes("outbox.max_bytes", 0, 0), 64 * 1024);
  absl::Status st = r->Finish();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(st), HasSubstr("x.toml:3"));
  EXPECT_THAT(Msg(st), HasSubstr("outbox.max_byts"));
}

TEST(ConfigTest, UnknownTableIsReported) {
  auto r = MustParse(
      "[agent]\n"
      "store_id = \"s\"\n"
      "\n"
      "[colector]\n"
      "address = \"h:1\"\n");
  (void)r->RequireString("agent.store_id");
  absl::Status st = r->Finish();
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(Msg(st), HasSubstr("colector"));
  EXPECT_THAT(Msg(st), HasSubstr("x.toml:4"));
}

TEST(ConfigTest, ScalarWhereATableIsExpectedIsReported) {
  auto r = MustParse("outbox = 5\n");
  EXPECT_EQ(r->Bytes("outbox.max_bytes", 1234, 0), 1234);
  absl::Status st = r->Finish();
  EXPECT_FALSE(st.ok()) << "'outbox = 5' was silently ignored";
  EXPECT_THAT(Msg(st), HasSubstr("outbox"));
}

TEST(ConfigTest, RequireStringMissingIsAnErrorNamingTheKey) {
  auto r = MustParse("[agent]\nstore_id = \"s\"\n", "agent.toml");
  EXPECT_EQ(r->RequireString("collector.address"), "");
  (void)r->RequireString("agent.store_id");
  absl::Status st = r->Finish();
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(Msg(st), HasSubstr("agent.toml"));
  EXPECT_THAT(Msg(st), HasSubstr("collector.address"));
  EXPECT_THAT(Msg(st), HasSubstr("required"));
}

TEST(ConfigTest, RequireStringEmptyOrWrongTypeIsAnError) {
  {
    auto r = MustParse("name = \"\"\n");
    EXPECT_EQ(r->RequireString("name"), "");
    absl::Status st = r->Finish();
    ASSERT_FALSE(st.ok());
    EXPECT_THAT(Msg(st), HasSubstr("x.toml:1"));
    EXPECT_THAT(Msg(st), HasSubstr("name"));
  }
  {
    auto r = MustParse("name = 12\n");
    EXPECT_EQ(r->RequireString("name"), "");
    EXPECT_FALSE(r->Finish().ok());
  }
}

TEST(ConfigTest, DurationsParse) {
  EXPECT_EQ(ConfigReader::ParseDurationMs("500ms"), 500);
  EXPECT_EQ(ConfigReader::ParseDurationMs("30s"), 30'000);
  EXPECT_EQ(ConfigReader::ParseDurationMs("10m"), 600'000);
  EXPECT_EQ(ConfigReader::ParseDurationMs("2h"), 7'200'000);
  EXPECT_EQ(ConfigReader::ParseDurationMs("7d"), int64_t{7} * 86'400'000);
  EXPECT_EQ(ConfigReader::ParseDurationMs("0s"), 0);
  EXPECT_EQ(ConfigReader::ParseDurationMs("10min"), 600'000);
  EXPECT_EQ(ConfigReader::ParseDurationMs("30 s"), 30'000) << "a space before the unit is allowed";
}

TEST(ConfigTest, BadDurationsFail) {
  for (const char* bad : {"", "s", "ms", "10", "10x", "-5s", "1.5h", "h2", "10 hours",
                          "99999999999999999999s", "9999999999999999d"}) {
    EXPECT_EQ(ConfigReader::ParseDurationMs(bad), std::nullopt) << "'" << bad << "'";
  }
}

TEST(ConfigTest, DurationKeyAcceptsIntegerSecondsAndStrings) {
  auto r = MustParse(
      "a = 45\n"
      "b = \"500ms\"\n"
      "c = \"2h\"\n");
  EXPECT_EQ(r->DurationMs("a", 0, 0), 45'000);
  EXPECT_EQ(r->DurationMs("b", 0, 0), 500);
  EXPECT_EQ(r->DurationMs("c", 0, 0), 7'200'000);
  EXPECT_EQ(r->DurationMs("absent", 1234, 0), 1234);
  EXPECT_TRUE(r->Finish().ok());
}

TEST(ConfigTest, BadDurationKeyFailsWithLineAndKey) {
  auto r = MustParse("[agent]\nstatus_interval = \"soon\"\n");
  EXPECT_EQ(r->DurationMs("agent.status_interval", 30'000, 1000), 30'000);
  absl::Status st = r->Finish();
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(Msg(st), HasSubstr("x.toml:2"));
  EXPECT_THAT(Msg(st), HasSubstr("agent.status_interval"));
}

TEST(ConfigTest, DurationBelowMinimumFails) {
  auto r = MustParse("t = \"500ms\"\n");
  EXPECT_EQ(r->DurationMs("t", 30'000, 1000), 30'000);
  absl::Status st = r->Finish();
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(Msg(st), HasSubstr("x.toml:1"));
  EXPECT_THAT(Msg(st), HasSubstr("at least 1000"));
}

TEST(ConfigTest, HugeIntegerSecondsAreRejectedNotWrapped) {
  auto r = MustParse("t = 18446744073709552\n");
  int64_t got = r->DurationMs("t", 30'000, 0);
  EXPECT_EQ(got, 30'000) << "an overflowing duration must fall back to the default";
  EXPECT_FALSE(r->Finish().ok()) << "an overflowing duration must be reported, got " << got
                                 << " ms";
}

TEST(ConfigTest, SizesParse) {
  EXPECT_EQ(ConfigReader::ParseBytes("64KiB"), 64 * 1024);
  EXPECT_EQ(ConfigReader::ParseBytes("256MiB"), int64_t{256} * 1024 * 1024);
  EXPECT_EQ(ConfigReader::ParseBytes("1GiB"), int64_t{1024} * 1024 * 1024);
  EXPECT_EQ(ConfigReader::ParseBytes("123"), 123);
  EXPECT_EQ(ConfigReader::ParseBytes("123B"), 123);
}

TEST(ConfigTest, BadSizesFail) {
  for (const char* bad : {"", "KiB", "64kb", "64KB", "1.5MiB", "-1KiB", "64 KiBs",
                          "99999999999999999999", "9999999999999GiB"}) {
    EXPECT_EQ(ConfigReader::ParseBytes(bad), std::nullopt) << "'" << bad << "'";
  }
}

TEST(ConfigTest, SizeKeyAcceptsIntegersAndStringsAndRejectsBadOnes) {
  auto r = MustParse(
      "[outbox]\n"
      "a = 4096\n"
      "b = \"256MiB\"\n"
      "c = \"lots\"\n");
  EXPECT_EQ(r->Bytes("outbox.a", 0, 0), 4096);
  EXPECT_EQ(r->Bytes("outbox.b", 0, 0), int64_t{256} * 1024 * 1024);
  EXPECT_EQ(r->Bytes("outbox.c", 77, 0), 77);
  absl::Status st = r->Finish();
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(Msg(st), HasSubstr("x.toml:4"));
  EXPECT_THAT(Msg(st), HasSubstr("outbox.c"));
}

TEST(ConfigTest, SizeBelowMinimumFails) {
  auto r = MustParse("m = \"1KiB\"\n");
  EXPECT_EQ(r->Bytes("m", 65536, 65536), 65536);
  absl::Status st = r->Finish();
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(Msg(st), HasSubstr("'m'"));
}

TEST(ConfigTest, SyntaxErrorNamesTheLine) {
  std::unique_ptr<ConfigReader> r;
  absl::Status st = ConfigReader::Parse(
      "[agent]\n"
      "store_id = \"s\"\n"
      "\n"
      "port = = 7\n",
      "broken.toml", &r);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(st), HasSubstr("broken.toml:4"));
  EXPECT_EQ(r, nullptr);
}

TEST(ConfigTest, FirstErrorWinsOverUnknownKeys) {
  auto r = MustParse("a = \"x\"\nzzz = 1\n");
  (void)r->Int("a", 0, 0, 1);
  absl::Status st = r->Finish();
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(Msg(st), HasSubstr("'a'"));
  EXPECT_THAT(Msg(st), Not(HasSubstr("zzz")));
}

TEST(ConfigTest, LoadReadsAFileAndNamesItInErrors) {
  testutil::TempDir dir;
  std::string path = dir.File("agent.toml");
  testutil::WriteBytes(path, "[agent]\nstore_id = 5\n");
  std::unique_ptr<ConfigReader> r;
  ASSERT_TRUE(ConfigReader::Load(path, &r).ok());
  (void)r->RequireString("agent.store_id");
  absl::Status st = r->Finish();
  ASSERT_FALSE(st.ok());
  EXPECT_THAT(Msg(st), HasSubstr(Cat(path, ":2")));

  std::unique_ptr<ConfigReader> missing;
  absl::Status nf = ConfigReader::Load(dir.File("nope.toml"), &missing);
  EXPECT_FALSE(nf.ok());
}

// toml++ 3.3.0 has undefined behaviour on Cyrillic (and other U+00A1..U+0499)
// characters where TOML allows no letters outside strings: such a file is
// refused before toml++ reads it, naming the line and the character;
// Cyrillic in strings and comments is fine (tests/fuzz found it).
TEST(ConfigTest, NonAsciiOutsideStringsIsRefusedWithItsLine) {
  struct Case {
    std::string text;
    std::string line;
    std::string cp;
  };
  for (const Case& c : std::vector<Case>{
           {"[ingest]\nmax_message_bytes = 5\xD0\xB1\n", "x.toml:2", "U+0431"},
           {"a = \xD0\xB4\n", "x.toml:1", "U+0434"},
           {"# \xD0\xBA\n\"k\"\xC3\xA9 = 1\n", "x.toml:2", "U+00E9"},
           {"s = \"\"\"\nx\\\xD0\xB1\"\"\"\n", "x.toml:2", "U+0431"},
           {"s = \"\"\"x\\ \xD0\xB1\"\"\"\n", "x.toml:1", "U+0431"},
           // Quotes inside a bare value start no string: toml++ reads on.
           {"n = 0000\"\"\"00\xD0\x8C\"\"\"\n", "x.toml:1", "U+040C"},
           // Nor does a quote right after such a quote (tests/fuzz, corpus
           // agent_config/bare_quote_after_bare_quote).
           {"n = 0000\"\"b00\xD0\x8Cpp\"\n", "x.toml:1", "U+040C"},
       }) {
    std::unique_ptr<ConfigReader> r;
    absl::Status st = ConfigReader::Parse(c.text, "x.toml", &r);
    ASSERT_FALSE(st.ok()) << c.text;
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Msg(st), HasSubstr(c.line + ": a non-ASCII character (" + c.cp + ")")) << Msg(st);
  }
  auto ok = MustParse(
      "\xEF\xBB\xBF# \xD0\xBC\xD0\xB0\xD0\xB3\xD0\xB0\xD0\xB7\xD0\xB8\xD0\xBD\n"
      "name = \"\xD0\x9C\xD0\xB0\xD0\xB3\xD0\xB0\xD0\xB7\xD0\xB8\xD0\xBD\" # \xD0\xB4\n"
      "lit = '\xD0\xB1'\nml = \"\"\"\n\xD0\xB1\"\"\"\n\"\xD0\xBA\" = 1\n");
  ASSERT_NE(ok, nullptr);
  EXPECT_EQ(ok->String("name", ""), "\xD0\x9C\xD0\xB0\xD0\xB3\xD0\xB0\xD0\xB7\xD0\xB8\xD0\xBD");
  EXPECT_EQ(ok->String("lit", ""), "\xD0\xB1");
  // A line-ending backslash before Cyrillic is valid TOML and reads as it
  // should (toml++ itself would reach its undefined behaviour on it).
  auto motd = MustParse(
      "motd = \"\"\"\\\n    \xD0\x9C\xD0\xB0\xD0\xB3 1042\\\n\n  \xF0\x9F\x9B\x92\"\"\"\n");
  ASSERT_NE(motd, nullptr);
  EXPECT_EQ(motd->String("motd", ""), "\xD0\x9C\xD0\xB0\xD0\xB3 1042\xF0\x9F\x9B\x92");
}

}  // namespace
}  // namespace setdiag
