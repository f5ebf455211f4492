#include "common/time_format.h"

#include <ctime>

namespace setdiag {
namespace {

constexpr int64_t kMskOffsetSeconds = 3 * 3600;

// Whole seconds, rounded towards the past (also before 1970).
std::time_t Seconds(int64_t ms) {
  return static_cast<std::time_t>(ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000));
}

}  // namespace

std::string FormatUnixMs(int64_t ms, const char* format, int64_t offset_seconds) {
  const std::time_t secs = Seconds(ms) + static_cast<std::time_t>(offset_seconds);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  // `format` is checked at every call (the declaration's format attribute).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
  const size_t n = std::strftime(buf, sizeof buf, format, &tm);
#pragma GCC diagnostic pop
  return std::string(buf, n);
}

std::string FormatUtc(int64_t ms) {
  if (ms <= 0) return "-";
  return FormatUnixMs(ms, "%Y-%m-%d %H:%M:%SZ");
}

std::string FormatMsk(int64_t ms, bool with_zone) {
  if (ms <= 0) return "-";
  return FormatUnixMs(ms, with_zone ? "%Y-%m-%d %H:%M MSK" : "%Y-%m-%d %H:%M", kMskOffsetSeconds);
}

std::string IsoUtc(int64_t ms, bool compact) {
  return FormatUnixMs(ms, compact ? "%Y%m%dT%H%M%SZ" : "%Y-%m-%dT%H:%M:%SZ");
}

}  // namespace setdiag
