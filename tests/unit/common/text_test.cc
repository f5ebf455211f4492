// The shared text helpers that replaced per-binary copies: URLs, UTF-8 and
// time formats (common/url.h, common/utf8.h, common/time_format.h).

#include <gtest/gtest.h>

#include <string>

#include "common/time_format.h"
#include "common/url.h"
#include "common/utf8.h"

namespace setdiag {
namespace {

TEST(UrlTest, EncodeKeepsOnlyUnreservedCharactersAndDecodeUndoesIt) {
  EXPECT_EQ(UrlEncode("Az09-._~"), "Az09-._~");
  EXPECT_EQ(UrlEncode("a b,c/д"), "a%20b%2Cc%2F%D0%B4");
  EXPECT_EQ(UrlDecode(UrlEncode("магазин 1042/а,б")), "магазин 1042/а,б");
  EXPECT_EQ(UrlDecode("a+b%2cc"), "a b,c");
}

TEST(UrlTest, DecodeLeavesAPercentWithoutTwoHexDigitsAsItIs) {
  EXPECT_EQ(UrlDecode("100%"), "100%");
  EXPECT_EQ(UrlDecode("%4"), "%4");
  EXPECT_EQ(UrlDecode("%zz%41"), "%zzA");
  EXPECT_EQ(UrlDecode("%-1"), "%-1") << "a sign is not a hex digit";
}

TEST(UrlTest, ParseRequestTargetSplitsPathAndDecodedQuery) {
  RequestTarget t = ParseRequestTarget("/api/v1/events?store=10%2042&limit=5&flag");
  EXPECT_EQ(t.path, "/api/v1/events");
  EXPECT_EQ(t.query["store"], "10 42");
  EXPECT_EQ(t.query["limit"], "5");
  EXPECT_EQ(t.query.count("flag"), 1u);
  EXPECT_EQ(t.query["flag"], "");
  EXPECT_TRUE(ParseRequestTarget("/healthz").query.empty());
}

TEST(Utf8Test, ValidationIsStrict) {
  EXPECT_TRUE(IsValidUtf8("касса 7 ✓ 😀"));
  EXPECT_FALSE(IsValidUtf8("\xc0\xaf")) << "overlong";
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80")) << "surrogate";
  EXPECT_FALSE(IsValidUtf8("\xf4\x90\x80\x80")) << "past U+10FFFF";
  EXPECT_FALSE(IsValidUtf8("\xcf\xf0")) << "CP1251";
  EXPECT_FALSE(IsValidUtf8("\xd0")) << "truncated";
  EXPECT_TRUE(IsPrintableUtf8("замена коммутатора"));
  EXPECT_FALSE(IsPrintableUtf8("line\nbreak"));
  EXPECT_FALSE(IsPrintableUtf8("del\x7f"));
  EXPECT_EQ(Utf8SequenceAt("жx", 0), 2u);
  EXPECT_EQ(Utf8SequenceAt("жx", 1), 0u) << "a continuation byte starts nothing";
}

TEST(Utf8Test, LengthAndPrefixesNeverCutACharacter) {
  EXPECT_EQ(Utf8Length("касса"), 5u);
  EXPECT_EQ(Utf8PrefixBytes("жжж", 3), "ж");
  EXPECT_EQ(Utf8PrefixBytes("жжж", 4), "жж");
  EXPECT_EQ(Utf8PrefixBytes("abc", 10), "abc");
  EXPECT_EQ(Utf8PrefixChars("касса", 2), "ка");
  EXPECT_EQ(Utf8PrefixChars("ка", 5), "ка");
}

TEST(TimeFormatTest, UtcMoscowAndIso) {
  const int64_t ms = 1'764'543'600'000;  // 2025-11-30 23:00:00 UTC
  EXPECT_EQ(FormatUtc(ms), "2025-11-30 23:00:00Z");
  EXPECT_EQ(FormatMsk(ms), "2025-12-01 02:00 MSK") << "UTC+3, the next day";
  EXPECT_EQ(FormatMsk(ms, false), "2025-12-01 02:00");
  EXPECT_EQ(IsoUtc(ms), "2025-11-30T23:00:00Z");
  EXPECT_EQ(IsoUtc(ms, /*compact=*/true), "20251130T230000Z");
  EXPECT_EQ(FormatUnixMs(ms + 999, "%H:%M:%S"), "23:00:00") << "whole seconds, not rounded";
  EXPECT_EQ(FormatUtc(0), "-");
  EXPECT_EQ(FormatMsk(-5), "-");
}

}  // namespace
}  // namespace setdiag
