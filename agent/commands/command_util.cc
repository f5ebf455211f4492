#include <sys/stat.h>

#include <cerrno>
#include <ctime>

#include "agent/commands/commands.h"
#include "common/config.h"
#include "common/status.h"

namespace setdiag::agent {

absl::Status EnsureDir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0750) != 0 && errno != EEXIST) {
    return ErrnoStatus(errno, "cannot create", dir);
  }
  return absl::OkStatus();
}

int64_t ParseDurationArg(const std::string& text) {
  auto ms = ConfigReader::ParseDurationMs(text);
  return ms ? *ms : -1;
}

std::string FormatLocal(int64_t ms) {
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  localtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M", &tm);
  return buf;
}

}  // namespace setdiag::agent
