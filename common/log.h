#pragma once
// Minimal structured logging to stderr: "2026-11-26T21:52:48.123Z LEVEL component: message".
// Thread-safe. Never pass secrets (tokens, passwords) to it: there is no
// redaction here by design, callers log identifiers, not credentials.

#include <string_view>

namespace setdiag::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

void SetLevel(Level level);
bool ParseLevel(std::string_view text, Level* out);
void Write(Level level, std::string_view component, std::string_view message);

inline void Debug(std::string_view c, std::string_view m) { Write(Level::kDebug, c, m); }
inline void Info(std::string_view c, std::string_view m) { Write(Level::kInfo, c, m); }
inline void Warn(std::string_view c, std::string_view m) { Write(Level::kWarn, c, m); }
inline void Error(std::string_view c, std::string_view m) { Write(Level::kError, c, m); }

}  // namespace setdiag::log
