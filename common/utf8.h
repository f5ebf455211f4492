#pragma once
// UTF-8 as setdiag handles it: text from SET's logs and database, from
// people (ticket notes, maintenance reasons) and from receivers' answers.
// Validation is strict (no overlong forms, no surrogates, nothing past
// U+10FFFF): CP1251 text from a Russian store server is not valid UTF-8.

#include <cstddef>
#include <string_view>

namespace setdiag {

// The length of the well-formed UTF-8 sequence starting at s[i], or 0 when
// none starts there (a stray continuation byte, a truncated or overlong
// sequence, a surrogate).
size_t Utf8SequenceAt(std::string_view s, size_t i);

bool IsValidUtf8(std::string_view s);
// Valid, and no control character (below U+0020, or U+007F): fit for one
// line of a reason, a JSON event or a header.
bool IsPrintableUtf8(std::string_view s);

// Code points in valid UTF-8 (a terminal column each for Latin and Cyrillic).
size_t Utf8Length(std::string_view s);

// The longest prefix of at most `max_bytes` that does not cut a sequence.
std::string_view Utf8PrefixBytes(std::string_view s, size_t max_bytes);
// The first `max_chars` code points (all of `s` if it has fewer).
std::string_view Utf8PrefixChars(std::string_view s, size_t max_chars);

}  // namespace setdiag
