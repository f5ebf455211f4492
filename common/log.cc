#include "common/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>

#include "common/mutex.h"
#include "common/time_format.h"

namespace setdiag::log {
namespace {
std::atomic<int> g_level{static_cast<int>(Level::kInfo)};
Mutex g_mu;  // one line at a time on stderr

const char* Name(Level level) {
  switch (level) {
    case Level::kDebug:
      return "DEBUG";
    case Level::kInfo:
      return "INFO";
    case Level::kWarn:
      return "WARN";
    case Level::kError:
      return "ERROR";
  }
  return "?";
}
}  // namespace

void SetLevel(Level level) { g_level = static_cast<int>(level); }

bool ParseLevel(std::string_view text, Level* out) {
  if (text == "debug")
    *out = Level::kDebug;
  else if (text == "info")
    *out = Level::kInfo;
  else if (text == "warn")
    *out = Level::kWarn;
  else if (text == "error")
    *out = Level::kError;
  else
    return false;
  return true;
}

void Write(Level level, std::string_view component, std::string_view message) {
  if (static_cast<int>(level) < g_level.load()) return;
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  const std::string stamp = FormatUnixMs(ms, "%Y-%m-%dT%H:%M:%S");
  MutexLock lock(&g_mu);
  std::fprintf(stderr, "%s.%03dZ %-5s %.*s: %.*s\n", stamp.c_str(), static_cast<int>(ms % 1000),
               Name(level), static_cast<int>(component.size()), component.data(),
               static_cast<int>(message.size()), message.data());
  std::fflush(stderr);
}

}  // namespace setdiag::log
