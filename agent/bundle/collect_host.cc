#include "agent/bundle/collect_host.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "common/strings.h"

namespace setdiag::agent::bundle {
namespace {

// Small /proc and /etc files only.
std::optional<std::string> ReadSmall(const std::string& path, size_t max = 1 << 20) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string out;
  char buf[8192];
  while (out.size() < max) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  if (out.size() > max) out.resize(max);
  return out;
}

template <typename T>
bool ParseNumber(std::string_view s, T* out, int base = 10) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out, base);
  return ec == std::errc() && p == s.data() + s.size();
}

std::vector<std::string_view> Fields(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    size_t s = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > s) out.push_back(line.substr(s, i - s));
  }
  return out;
}

// /proc/mounts escapes blanks as octal (\040).
std::string Unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      int v = 0;
      if (ParseNumber(s.substr(i + 1, 3), &v, 8)) {
        out += static_cast<char>(v);
        i += 3;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

struct ProcInfo {
  int pid = 0;
  int ppid = 0;
  int64_t uid = -1;
  std::string comm;
  std::string state;
  std::string cmdline;
  int64_t rss_kib = 0;
  int64_t threads = 0;
  std::optional<double> age_s;
};

std::vector<int> Pids() {
  std::vector<int> out;
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    int pid = 0;
    if (ParseNumber(std::string_view(e->d_name), &pid) && pid > 0) out.push_back(pid);
  }
  ::closedir(d);
  return out;
}

std::optional<ProcInfo> ReadProc(int pid, std::optional<double> uptime_s) {
  std::string base = Cat("/proc/", pid);
  auto status = ReadSmall(base + "/status", 64 * 1024);
  if (!status) return std::nullopt;
  ProcInfo p;
  p.pid = pid;
  for (std::string_view line : Split(*status, '\n')) {
    auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view key = line.substr(0, colon);
    auto f = Fields(line.substr(colon + 1));
    if (f.empty()) continue;
    if (key == "Name")
      p.comm = std::string(Trim(line.substr(colon + 1)));
    else if (key == "State")
      p.state = std::string(f[0]);
    else if (key == "PPid")
      ParseNumber(f[0], &p.ppid);
    else if (key == "Uid")
      ParseNumber(f[0], &p.uid);
    else if (key == "VmRSS")
      ParseNumber(f[0], &p.rss_kib);
    else if (key == "Threads")
      ParseNumber(f[0], &p.threads);
  }
  if (auto cmd = ReadSmall(base + "/cmdline", 8192)) {
    std::string c = *cmd;
    while (!c.empty() && c.back() == '\0') c.pop_back();
    std::replace(c.begin(), c.end(), '\0', ' ');
    p.cmdline = std::move(c);
  }
  if (auto stat = ReadSmall(base + "/stat", 4096); stat && uptime_s) {
    auto close = stat->rfind(')');
    if (close != std::string::npos) {
      auto f = Fields(std::string_view(*stat).substr(close + 1));
      uint64_t start_ticks = 0;
      long hz = ::sysconf(_SC_CLK_TCK);
      if (f.size() > 19 && ParseNumber(f[19], &start_ticks) && hz > 0) {
        p.age_s = *uptime_s - static_cast<double>(start_ticks) / static_cast<double>(hz);
      }
    }
  }
  return p;
}

bool Relevant(const ProcInfo& p) {
  static constexpr std::string_view kNames[] = {"java",    "postgres",     "postmaster", "nginx",
                                                "setdiag", "jboss",        "wildfly",    "chronyd",
                                                "ntpd",    "standalone.sh"};
  for (auto n : kNames) {
    if (p.comm.find(n) != std::string::npos) return true;
  }
  std::string_view exe = std::string_view(p.cmdline).substr(0, p.cmdline.find(' '));
  for (auto n : kNames) {
    if (exe.find(n) != std::string_view::npos) return true;
  }
  return p.cmdline.find("jboss") != std::string::npos;
}

// socket inode -> pid, for the processes whose descriptors we may read.
std::map<uint64_t, int> SocketOwners(const std::vector<int>& pids) {
  std::map<uint64_t, int> out;
  for (int pid : pids) {
    std::string dir = Cat("/proc/", pid, "/fd");
    DIR* d = ::opendir(dir.c_str());
    if (!d) continue;
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      char target[64];
      ssize_t n = ::readlink(Cat(dir, "/", e->d_name).c_str(), target, sizeof target - 1);
      if (n <= 0) continue;
      std::string_view t(target, static_cast<size_t>(n));
      if (!t.starts_with("socket:[") || !t.ends_with("]")) continue;
      uint64_t inode = 0;
      if (ParseNumber(t.substr(8, t.size() - 9), &inode)) out.emplace(inode, pid);
    }
    ::closedir(d);
  }
  return out;
}

nlohmann::json ProcJson(const ProcInfo& p) {
  nlohmann::json j = {{"pid", p.pid},         {"ppid", p.ppid},      {"uid", p.uid},
                      {"name", p.comm},       {"state", p.state},    {"rss_kib", p.rss_kib},
                      {"threads", p.threads}, {"cmdline", p.cmdline}};
  if (p.age_s) j["age_s"] = static_cast<int64_t>(*p.age_s);
  return j;
}

std::string OsName() {
  auto text = ReadSmall("/etc/os-release");
  if (!text) text = ReadSmall("/etc/redhat-release");
  if (!text) return "unknown";
  for (std::string_view line : Split(*text, '\n')) {
    if (line.starts_with("PRETTY_NAME=")) {
      std::string_view v = line.substr(12);
      if (v.size() >= 2 && v.front() == '"' && v.back() == '"') v = v.substr(1, v.size() - 2);
      return std::string(v);
    }
  }
  return std::string(Trim(*text));
}

std::string TimeZoneName() {
  if (const char* tz = std::getenv("TZ"); tz && *tz) return tz;
  char buf[256];
  ssize_t n = ::readlink("/etc/localtime", buf, sizeof buf - 1);
  if (n > 0) {
    std::string_view link(buf, static_cast<size_t>(n));
    if (auto z = link.find("zoneinfo/"); z != std::string_view::npos)
      return std::string(link.substr(z + 9));
    return std::string(link);
  }
  if (auto tz = ReadSmall("/etc/timezone")) return std::string(Trim(*tz));
  return "unknown";
}

bool PseudoFs(std::string_view type) {
  static const std::set<std::string_view> kPseudo = {
      "proc",        "sysfs",    "devpts",     "cgroup",   "cgroup2",     "mqueue",
      "debugfs",     "tracefs",  "securityfs", "pstore",   "bpf",         "autofs",
      "configfs",    "fusectl",  "hugetlbfs",  "devtmpfs", "binfmt_misc", "nsfs",
      "rpc_pipefs",  "efivarfs", "selinuxfs",  "ramfs",    "squashfs",    "fuse.gvfsd-fuse",
      "fuse.portal", "tmpfs"};
  return kPseudo.count(type) > 0;
}

}  // namespace

nlohmann::json ParseMeminfo(std::string_view text) {
  nlohmann::json out = nlohmann::json::object();
  for (std::string_view line : Split(text, '\n')) {
    auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    auto f = Fields(line.substr(colon + 1));
    int64_t v = 0;
    if (!f.empty() && ParseNumber(f[0], &v)) out[std::string(line.substr(0, colon))] = v;
  }
  return out;
}

nlohmann::json ParseLoadavg(std::string_view text) {
  auto f = Fields(Trim(text));
  nlohmann::json out = nlohmann::json::object();
  if (f.size() < 4) return out;
  const char* names[] = {"load1", "load5", "load15"};
  for (size_t i = 0; i < 3; ++i) out[names[i]] = std::strtod(std::string(f[i]).c_str(), nullptr);
  auto slash = f[3].find('/');
  int64_t a = 0, b = 0;
  if (slash != std::string_view::npos && ParseNumber(f[3].substr(0, slash), &a) &&
      ParseNumber(f[3].substr(slash + 1), &b)) {
    out["runnable"] = a;
    out["threads"] = b;
  }
  return out;
}

std::optional<double> ParseUptime(std::string_view text) {
  auto f = Fields(Trim(text));
  if (f.empty()) return std::nullopt;
  std::string s(f[0]);
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str()) return std::nullopt;
  return v;
}

std::vector<ListeningSocket> ParseProcNetTcp(std::string_view text, bool v6) {
  std::vector<ListeningSocket> out;
  bool header = true;
  for (std::string_view line : Split(text, '\n')) {
    if (header) {
      header = false;
      continue;
    }
    auto f = Fields(line);
    if (f.size() < 10 || f[3] != "0A") continue;  // 0A: TCP_LISTEN
    std::string_view local = f[1];
    auto colon = local.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view addr = local.substr(0, colon);
    ListeningSocket s;
    if (!ParseNumber(local.substr(colon + 1), &s.port, 16)) continue;
    char text_addr[INET6_ADDRSTRLEN] = {};
    if (!v6 && addr.size() == 8) {
      // The kernel prints the 32-bit word in host order: storing it back
      // gives the address bytes in network order.
      uint32_t word = 0;
      if (!ParseNumber(addr, &word, 16)) continue;
      in_addr a{};
      std::memcpy(&a, &word, sizeof word);
      inet_ntop(AF_INET, &a, text_addr, sizeof text_addr);
    } else if (v6 && addr.size() == 32) {
      in6_addr a{};
      bool ok = true;
      for (size_t i = 0; i < 4; ++i) {
        uint32_t word = 0;
        ok = ok && ParseNumber(addr.substr(i * 8, 8), &word, 16);
        std::memcpy(reinterpret_cast<char*>(&a) + i * 4, &word, sizeof word);
      }
      if (!ok) continue;
      inet_ntop(AF_INET6, &a, text_addr, sizeof text_addr);
    } else {
      continue;
    }
    s.address = text_addr;
    ParseNumber(f[7], &s.uid);
    ParseNumber(f[9], &s.inode);
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<MountEntry> ParseMounts(std::string_view text) {
  std::vector<MountEntry> out;
  for (std::string_view line : Split(text, '\n')) {
    auto f = Fields(line);
    if (f.size() < 4 || PseudoFs(f[2])) continue;
    out.push_back({Unescape(f[0]), Unescape(f[1]), std::string(f[2]), std::string(f[3])});
  }
  return out;
}

nlohmann::json ParseChronyTracking(std::string_view text) {
  nlohmann::json out = nlohmann::json::object();
  for (std::string_view line : Split(text, '\n')) {
    auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string key(Trim(line.substr(0, colon)));
    std::string_view value = Trim(line.substr(colon + 1));
    if (key == "System time") {
      // "0.000012345 seconds fast of NTP time": fast = the local clock is ahead.
      auto f = Fields(value);
      if (f.size() >= 3) {
        double v = std::strtod(std::string(f[0]).c_str(), nullptr);
        out["offset_s"] = f[2] == "slow" ? -v : v;
      }
    } else if (key == "Leap status") {
      out["leap_status"] = std::string(value);
    } else if (key == "Reference ID") {
      out["reference"] = std::string(value);
    } else if (key == "Stratum") {
      int s = 0;
      if (ParseNumber(value, &s)) out["stratum"] = s;
    } else if (key == "Last offset") {
      auto f = Fields(value);
      if (!f.empty()) out["last_offset_s"] = std::strtod(std::string(f[0]).c_str(), nullptr);
    } else if (key == "Ref time (UTC)") {
      out["ref_time_utc"] = std::string(value);
    }
  }
  return out;
}

CommandResult RunCommand(const std::vector<std::string>& argv, int timeout_ms, size_t max_output) {
  CommandResult r;
  if (argv.empty()) {
    r.error = "empty command";
    return r;
  }
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    r.error = Cat("pipe: ", std::strerror(errno));
    return r;
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::string path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  if (const char* p = std::getenv("PATH")) path = Cat("PATH=", p, ":/usr/sbin:/usr/bin:/sbin:/bin");
  std::string lc = "LC_ALL=C";
  char* env[] = {path.data(), lc.data(), nullptr};
  pid_t pid = 0;
  int rc = ::posix_spawnp(&pid, argv[0].c_str(), &fa, &attr, args.data(), env);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    r.error = rc == ENOENT ? Cat(argv[0], " is not installed")
                           : Cat("cannot run ", argv[0], ": ", std::strerror(rc));
    return r;
  }
  r.started = true;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  char buf[4096];
  bool eof = false;
  while (!eof) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    pollfd p{fds[0], POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    ssize_t k = ::read(fds[0], buf, sizeof buf);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) {
      eof = true;
      break;
    }
    if (r.output.size() < max_output) {
      r.output.append(buf, std::min(static_cast<size_t>(k), max_output - r.output.size()));
    }
  }
  ::close(fds[0]);
  int status = 0;
  while (true) {
    pid_t w = ::waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(-pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      r.timed_out = true;
      break;
    }
    ::usleep(10'000);
  }
  if (!r.timed_out && WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  return r;
}

BundleStep MakeHostStep() {
  return MakeStep("host", 0, [](StepContext& ctx) -> absl::Status {
    nlohmann::json sys = nlohmann::json::object();
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) == 0) sys["hostname"] = host;
    sys["os"] = OsName();
    if (auto v = ReadSmall("/proc/version")) sys["kernel"] = std::string(Trim(*v));
    sys["cpus"] = ::sysconf(_SC_NPROCESSORS_ONLN);
    sys["time_zone"] = TimeZoneName();
    sys["bundle_time_utc"] = IsoUtc(ctx.now_ms());
    std::optional<double> uptime;
    if (auto v = ReadSmall("/proc/uptime")) uptime = ParseUptime(*v);
    if (uptime) {
      sys["uptime_s"] = static_cast<int64_t>(*uptime);
      sys["booted_at_utc"] = IsoUtc(ctx.now_ms() - static_cast<int64_t>(*uptime * 1000));
    }
    if (auto v = ReadSmall("/proc/loadavg")) sys["load"] = ParseLoadavg(*v);
    if (auto v = ReadSmall("/proc/meminfo")) sys["memory_kib"] = ParseMeminfo(*v);
    ctx.AddJson("host/system.json", sys, "/proc, /etc/os-release");
    if (ctx.cancelled()) return absl::CancelledError("stopped at the step timeout");

    std::vector<int> pids = Pids();
    std::vector<ProcInfo> procs;
    for (int pid : pids) {
      if (auto p = ReadProc(pid, uptime)) procs.push_back(std::move(*p));
    }
    std::map<uint64_t, int> owners = SocketOwners(pids);
    std::map<int, const ProcInfo*> by_pid;
    for (const auto& p : procs) by_pid[p.pid] = &p;
    nlohmann::json ports = nlohmann::json::array();
    for (bool v6 : {false, true}) {
      auto text = ReadSmall(v6 ? "/proc/net/tcp6" : "/proc/net/tcp", 16 << 20);
      if (!text) continue;
      for (const auto& s : ParseProcNetTcp(*text, v6)) {
        nlohmann::json j = {{"proto", v6 ? "tcp6" : "tcp"},
                            {"address", s.address},
                            {"port", s.port},
                            {"uid", s.uid}};
        if (auto o = owners.find(s.inode); o != owners.end()) {
          j["pid"] = o->second;
          if (auto p = by_pid.find(o->second); p != by_pid.end()) j["process"] = p->second->comm;
        } else {
          j["process"] = "unknown (not visible to this user)";
        }
        ports.push_back(std::move(j));
      }
    }
    std::sort(ports.begin(), ports.end(), [](const nlohmann::json& a, const nlohmann::json& b) {
      return a["port"] < b["port"];
    });
    ctx.AddJson("host/ports.json", ports, "/proc/net/tcp, /proc/net/tcp6, /proc/*/fd");

    std::vector<const ProcInfo*> by_rss;
    for (const auto& p : procs) by_rss.push_back(&p);
    std::sort(by_rss.begin(), by_rss.end(),
              [](auto* a, auto* b) { return a->rss_kib > b->rss_kib; });
    nlohmann::json relevant = nlohmann::json::array(), largest = nlohmann::json::array();
    for (const auto& p : procs) {
      if (Relevant(p)) relevant.push_back(ProcJson(p));
    }
    for (size_t i = 0; i < by_rss.size() && i < 10; ++i) largest.push_back(ProcJson(*by_rss[i]));
    ctx.AddJson("host/processes.json",
                {{"total", procs.size()}, {"relevant", relevant}, {"largest_by_memory", largest}},
                "/proc/*/status, cmdline, stat");
    return absl::OkStatus();
  });
}

BundleStep MakeDisksStep() {
  return MakeStep("disks", 0, [](StepContext& ctx) -> absl::Status {
    auto text = ReadSmall("/proc/mounts");
    if (!text)
      return absl::UnavailableError(Cat("cannot read /proc/mounts: ", std::strerror(errno)));
    nlohmann::json disks = nlohmann::json::array();
    std::set<std::string> seen;
    for (const auto& m : ParseMounts(*text)) {
      if (!seen.insert(m.mount_point).second) continue;
      if (ctx.cancelled()) return absl::CancelledError("stopped at the step timeout");
      nlohmann::json j = {{"mount", m.mount_point},
                          {"device", m.device},
                          {"type", m.fs_type},
                          {"read_only", m.options == "ro" || m.options.starts_with("ro,")}};
      struct statvfs v {};
      if (::statvfs(m.mount_point.c_str(), &v) != 0) {
        j["error"] = std::strerror(errno);
      } else {
        uint64_t total = static_cast<uint64_t>(v.f_blocks) * v.f_frsize;
        uint64_t avail = static_cast<uint64_t>(v.f_bavail) * v.f_frsize;
        j["total_bytes"] = total;
        j["free_bytes"] = static_cast<uint64_t>(v.f_bfree) * v.f_frsize;
        j["available_bytes"] = avail;
        j["used_percent"] =
            total ? static_cast<double>(total - avail) * 100.0 / static_cast<double>(total) : 0.0;
        j["inodes_total"] = static_cast<uint64_t>(v.f_files);
        j["inodes_free"] = static_cast<uint64_t>(v.f_ffree);
      }
      disks.push_back(std::move(j));
    }
    ctx.AddJson("host/disks.json", disks, "/proc/mounts, statvfs");
    return absl::OkStatus();
  });
}

BundleStep MakeClockStep() {
  return MakeStep("clock", 0, [](StepContext& ctx) -> absl::Status {
    nlohmann::json out = {{"offset_s", "unknown"}, {"synchronized", "unknown"}, {"source", "none"}};
    nlohmann::json attempts = nlohmann::json::array();
    auto attempt = [&](const std::vector<std::string>& argv) {
      CommandResult r = RunCommand(argv, 3000);
      std::string cmd;
      for (const auto& a : argv) Append(&cmd, cmd.empty() ? "" : " ", a);
      nlohmann::json a = {{"command", cmd}};
      if (!r.started)
        a["result"] = r.error;
      else if (r.timed_out)
        a["result"] = "timed out after 3 s";
      else
        a["result"] = Cat("exit ", r.exit_code);
      attempts.push_back(std::move(a));
      return r;
    };
    CommandResult chrony = attempt({"chronyc", "-n", "tracking"});
    if (chrony.started && !chrony.timed_out && chrony.exit_code == 0) {
      nlohmann::json t = ParseChronyTracking(chrony.output);
      if (t.contains("offset_s")) {
        out["offset_s"] = t["offset_s"];
        out["source"] = "chronyc tracking";
      }
      if (t.contains("leap_status")) out["synchronized"] = t["leap_status"] != "Not synchronised";
      out["chrony"] = t;
      out["chrony_raw"] = chrony.output;
    }
    if (out["source"] == "none") {
      CommandResult td = attempt({"timedatectl", "show"});
      if (td.started && !td.timed_out && td.exit_code == 0) {
        for (std::string_view line : Split(td.output, '\n')) {
          if (line.starts_with("NTPSynchronized=")) {
            out["synchronized"] = line.substr(16) == "yes";
            out["source"] = "timedatectl (no offset available)";
          } else if (line.starts_with("NTP=")) {
            out["ntp_enabled"] = line.substr(4) == "yes";
          } else if (line.starts_with("Timezone=")) {
            out["time_zone"] = std::string(line.substr(9));
          }
        }
      }
    }
    out["attempts"] = attempts;
    out["local_time_utc"] = IsoUtc(ctx.now_ms());
    ctx.AddJson("host/clock.json", out, "chronyc, timedatectl");
    return absl::OkStatus();
  });
}

}  // namespace setdiag::agent::bundle
