#pragma once
// String helpers. Debian's Abseil is built with its own absl::string_view
// (not std::string_view), so absl::StrCat cannot take std::string_view;
// these accept std and absl strings alike.

#include <charconv>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/time_format.h"  // IsoUtc, which was declared here

namespace setdiag {

inline std::string_view SV(absl::string_view s) { return {s.data(), s.size()}; }

namespace internal {
inline void Append(std::string& out, std::string_view s) { out.append(s); }
inline void Append(std::string& out, const char* s) { out.append(s); }
inline void Append(std::string& out, const std::string& s) { out.append(s); }
inline void Append(std::string& out, absl::string_view s) { out.append(s.data(), s.size()); }
inline void Append(std::string& out, char c) { out.push_back(c); }
inline void Append(std::string& out, bool b) { out.append(b ? "true" : "false"); }
template <typename T>
requires(std::is_arithmetic_v<T> && !std::is_same_v<T, char> &&
         !std::is_same_v<T, bool>) void Append(std::string& out, T v) {
  if constexpr (std::is_floating_point_v<T>) {
    out.append(std::to_string(v));
  } else {
    char buf[24];
    auto [p, ec] = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, p);
  }
}
}  // namespace internal

template <typename... Args>
std::string Cat(const Args&... args) {
  std::string out;
  (internal::Append(out, args), ...);
  return out;
}

template <typename... Args>
void Append(std::string* out, const Args&... args) {
  (internal::Append(*out, args), ...);
}

// Identifiers on the wire (store, agent and event kind names): 1..max bytes of
// [A-Za-z0-9._-]. The agent, the collector and the token tools share the rule.
bool IsValidIdentifier(std::string_view id, size_t max_bytes = 128);

std::vector<std::string_view> Split(std::string_view s, char sep, bool skip_empty = true);
// A size for people: "512 B", "3.4 KiB", "12.0 MiB".
std::string HumanBytes(uint64_t bytes);
std::string_view Trim(std::string_view s);

// "ru" or "en" for texts people read, from $LC_ALL, $LC_MESSAGES or $LANG
// (the first one set; "ru..." means Russian); "en" when none is set.
std::string LanguageFromEnvironment();

}  // namespace setdiag
