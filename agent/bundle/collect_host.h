#pragma once
// Bundle steps about the host, read from /proc and statvfs rather than by
// running tools (ss, ps, df), which may be missing or hang:
//   "host"   host/system.json (hostname, OS, uptime, load, memory, CPUs),
//            host/ports.json (listening TCP sockets from /proc/net/tcp{,6},
//            with the owning process where /proc lets us see it),
//            host/processes.json (java, postgres, nginx, setdiag, time
//            daemons, and the ten largest by memory; command lines redacted)
//   "disks"  host/disks.json (every real mount with statvfs; its own step
//            because statvfs on a dead network mount blocks)
//   "clock"  host/clock.json (chronyc tracking, else timedatectl; an offset
//            nobody measured is "unknown", never guessed)
// The parsers are pure and exposed for tests.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/bundle/step.h"

namespace setdiag::agent::bundle {

// /proc/meminfo -> {"MemTotal": kib, ...}.
nlohmann::json ParseMeminfo(std::string_view text);
// /proc/loadavg -> {"load1", "load5", "load15", "runnable", "threads"}.
nlohmann::json ParseLoadavg(std::string_view text);
// /proc/uptime -> seconds since boot.
std::optional<double> ParseUptime(std::string_view text);

struct ListeningSocket {
  std::string address;  // "0.0.0.0", "127.0.0.1", "::"
  int port = 0;
  uint64_t inode = 0;
  int64_t uid = -1;
};
// /proc/net/tcp or /proc/net/tcp6 -> sockets in state LISTEN.
std::vector<ListeningSocket> ParseProcNetTcp(std::string_view text, bool v6);

struct MountEntry {
  std::string device;
  std::string mount_point;
  std::string fs_type;
  std::string options;
};
// /proc/mounts -> mounts of real file systems (proc, sysfs, cgroup... left out).
std::vector<MountEntry> ParseMounts(std::string_view text);

// `chronyc -n tracking` -> {"offset_s": +fast/-slow, "leap_status", "reference", "stratum", ...}.
nlohmann::json ParseChronyTracking(std::string_view text);

struct CommandResult {
  bool started = false;    // false: not installed or could not run
  bool timed_out = false;  // killed at the timeout
  int exit_code = -1;
  std::string output;  // stdout and stderr, at most max_output bytes
  std::string error;   // why it did not start
};
// Runs argv[0] (searched in PATH) with LC_ALL=C and stdin from /dev/null,
// in its own process group, killed at the timeout.
CommandResult RunCommand(const std::vector<std::string>& argv, int timeout_ms,
                         size_t max_output = 64 * 1024);

BundleStep MakeHostStep();
BundleStep MakeDisksStep();
BundleStep MakeClockStep();

}  // namespace setdiag::agent::bundle
