#include "agent/bundle/bundle_child.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>

#include "common/files.h"
#include "common/log.h"
#include "common/strings.h"

extern char** environ;

namespace setdiag::agent {
namespace {

using Steady = std::chrono::steady_clock;

// The last non-empty line(s) of the child's stderr (at most `keep` bytes
// from the end of the file), joined with " | ".
std::string StderrTail(const std::string& path, size_t keep) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  struct stat st {};
  std::string text;
  if (::fstat(fd, &st) == 0 && st.st_size > 0) {
    const auto size = static_cast<uint64_t>(st.st_size);
    const uint64_t from = size > keep ? size - keep : 0;
    text.resize(static_cast<size_t>(size - from));
    ssize_t n = ::pread(fd, text.data(), text.size(), static_cast<off_t>(from));
    text.resize(n > 0 ? static_cast<size_t>(n) : 0);
  }
  ::close(fd);
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) lines.push_back(std::move(line));
    start = end + 1;
  }
  // The first line is "collecting (each step ...)": not news.
  std::string out;
  const size_t first = lines.size() > 2 ? lines.size() - 2 : 0;
  for (size_t i = first; i < lines.size(); ++i) {
    if (lines[i].find(": collecting (") != std::string::npos) continue;
    Append(&out, out.empty() ? "" : " | ", lines[i]);
  }
  return out;
}

// What a failed child leaves beside the output: the half-written archive
// and the scratch directories (`<out>.part`, `<out>.tmp-XXXXXX/`).
void RemoveLeftovers(const std::string& out_path) {
  std::error_code ec;
  std::filesystem::path out(out_path);
  std::filesystem::remove(out, ec);
  std::filesystem::remove(out_path + ".part", ec);
  const std::string prefix = out.filename().string() + ".tmp-";
  std::vector<std::filesystem::path> scratch;
  for (const auto& e : std::filesystem::directory_iterator(out.parent_path(), ec)) {
    if (e.path().filename().string().starts_with(prefix)) scratch.push_back(e.path());
  }
  for (const auto& p : scratch) std::filesystem::remove_all(p, ec);
}

std::string DescribeStatus(int status) {
  if (WIFEXITED(status)) return Cat("exited with code ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = sig == SIGKILL   ? " (SIGKILL)"
                       : sig == SIGTERM ? " (SIGTERM)"
                       : sig == SIGSEGV ? " (SIGSEGV)"
                       : sig == SIGABRT ? " (SIGABRT)"
                       : sig == SIGBUS  ? " (SIGBUS)"
                                        : "";
    return Cat("killed by signal ", sig, name);
  }
  return Cat("ended with status ", status);
}

// The child's files beside the output: its stdout (the JSON summary), its
// stderr and the manifest it writes.
struct ChildFiles {
  explicit ChildFiles(const std::string& out_path)
      : out(out_path + ".child-stdout"),
        err(out_path + ".child-stderr"),
        manifest(out_path + ".child-manifest") {}
  void Remove() const {
    ::unlink(out.c_str());
    ::unlink(err.c_str());
    ::unlink(manifest.c_str());
  }
  const std::string out, err, manifest;
};

// Creates the child's stdout and stderr files. On failure none is left open
// and the child's files are removed.
absl::Status OpenChildOutputs(const ChildFiles& files, int* out_fd, int* err_fd) {
  *out_fd = ::open(files.out.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  *err_fd =
      *out_fd < 0 ? -1 : ::open(files.err.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (*out_fd < 0 || *err_fd < 0) {
    std::string error =
        Cat("cannot create ", *out_fd < 0 ? files.out : files.err, ": ", std::strerror(errno));
    if (*out_fd >= 0) ::close(*out_fd);
    files.Remove();
    return absl::UnavailableError(error);
  }
  return absl::OkStatus();
}

// `setdiag-agent --config <file> bundle -o <out> ... --json --manifest-out
// <file> --parent-pid <daemon>`.
std::vector<std::string> ChildArgv(const std::string& config_path, const BundleBuildRequest& r,
                                   const std::string& manifest_file) {
  std::vector<std::string> argv{"setdiag-agent", "--config", config_path,
                                "bundle",        "-o",       r.out_path};
  if (r.window_ms > 0) {
    // The command's floor; collectors ask for 1m at least anyway.
    argv.insert(argv.end(), {"--window", Cat(std::max<int64_t>(r.window_ms, 60'000), "ms")});
  }
  if (r.exclude_logs) argv.emplace_back("--no-logs");
  argv.insert(argv.end(),
              {"--json", "--manifest-out", manifest_file, "--parent-pid", Cat(::getpid())});
  return argv;
}

// Executed through /proc/self/fd/3 in the child: the binary stays open
// there (read-only) and every other descriptor of the daemon is closed.
constexpr int kExeFd = 3;

// Starts `exe` with stdin from /dev/null, stdout and stderr into the given
// files and exe_fd as descriptor kExeFd; no signal blocked, the usual ones
// at their defaults, in a process group of its own. posix_spawn's error
// number, 0 when started.
int SpawnChild(const std::string& exe, int exe_fd, int out_fd, int err_fd,
               std::vector<std::string> argv, pid_t* pid) {
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
  posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
  posix_spawn_file_actions_adddup2(&fa, exe_fd, kExeFd);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  posix_spawn_file_actions_addclosefrom_np(
      &fa, kExeFd + 1);  // the daemon's sockets and databases stay here
#endif
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGCHLD}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigmask(&attr, &none);  // the daemon blocks SIGTERM/SIGINT in all its threads
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setpgroup(&attr,
                            0);  // its own group: a stop or the deadline kills what it started too
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  int rc = ::posix_spawn(pid, exe.c_str(), &fa, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  return rc;
}

// The bundle a child that exited 0 reports: its JSON summary on stdout and
// the manifest it wrote; Internal when either is unusable.
absl::StatusOr<BuiltBundle> ReadChildOutput(const ChildFiles& files) {
  auto summary_text = ReadWholeFile(files.out);
  auto summary =
      nlohmann::json::parse(summary_text.ok() ? *summary_text : std::string(), nullptr, false);
  auto manifest = ReadWholeFile(files.manifest);
  if (summary.is_discarded() || !summary.is_object() || !summary["path"].is_string() ||
      !summary["size"].is_number_unsigned() || !summary["sha256"].is_string() || !manifest.ok()) {
    return absl::InternalError(
        Cat("bundle child exited 0 but its output is unusable",
            manifest.ok() ? "" : Cat(" (", manifest.status().message(), ")")));
  }
  return BuiltBundle{summary["path"].get<std::string>(), summary["size"].get<uint64_t>(),
                     summary["sha256"].get<std::string>(), std::move(*manifest)};
}

}  // namespace

int64_t BundleChild::DefaultDeadlineMs(int64_t step_timeout_ms, int64_t logs_timeout_ms) {
  return std::max(step_timeout_ms, logs_timeout_ms) * 2 + 10 * 60'000;
}

BundleChild::BundleChild(BundleChildOptions options) : options_(std::move(options)) {
  // Above the descriptors the child gets (0-3), whatever was open at start.
  int fd = ::open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    exe_fd_ = ::fcntl(fd, F_DUPFD_CLOEXEC, 10);
    ::close(fd);
  }
  if (exe_fd_ < 0) exe_error_ = Cat("cannot open /proc/self/exe: ", std::strerror(errno));
}

BundleChild::~BundleChild() {
  Stop();
  if (exe_fd_ >= 0) ::close(exe_fd_);
}

std::string BundleChild::Unavailable() const {
  if (!exe_error_.empty()) return exe_error_;
  if (options_.config_path.empty()) return "the agent was started without a config file";
  struct stat st {};
  if (::stat(options_.config_path.c_str(), &st) != 0) {
    return Cat("its config file ", options_.config_path, " is gone (", std::strerror(errno), ")");
  }
  return "";
}

void BundleChild::Stop() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    ReapLeftovers();
  }
  cv_.SignalAll();
}

void BundleChild::ReapLeftovers() {
  std::erase_if(unreaped_, [](pid_t pid) {
    int status = 0;
    pid_t w = ::waitpid(pid, &status, WNOHANG);
    return w == pid || (w < 0 && errno == ECHILD);
  });
}

absl::StatusOr<BuiltBundle> BundleChild::Build(const BundleBuildRequest& r, bool* not_started) {
  *not_started = false;
  {
    MutexLock lock(&mu_);
    ReapLeftovers();
    if (stopping_) return absl::CancelledError("the agent is stopping");
  }
  if (std::string why = Unavailable(); !why.empty()) {
    *not_started = true;
    return absl::FailedPreconditionError(why);
  }
  const ChildFiles files(r.out_path);
  int out_fd = -1, err_fd = -1;
  if (absl::Status st = OpenChildOutputs(files, &out_fd, &err_fd); !st.ok()) {
    *not_started = true;
    return st;
  }
  const std::string exe = Cat("/proc/self/fd/", kExeFd);
  pid_t pid = -1;
  int rc = SpawnChild(exe, exe_fd_, out_fd, err_fd,
                      ChildArgv(options_.config_path, r, files.manifest), &pid);
  ::close(out_fd);
  ::close(err_fd);
  if (rc != 0) {
    files.Remove();
    *not_started = true;
    return absl::UnavailableError(Cat("cannot start ", exe, ": ", std::strerror(rc)));
  }
  log::Info("bundles", Cat("bundle ", r.request_id, ": building in child pid ", pid));

  const auto started = Steady::now();
  const ChildExit ended = WaitForChild(pid, r.request_id, started);
  const int64_t took_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(Steady::now() - started).count();
  const std::string tail = StderrTail(files.err, options_.stderr_keep_bytes);
  auto fail = [&](absl::Status st) -> absl::StatusOr<BuiltBundle> {
    log::Warn("bundles", Cat("bundle ", r.request_id, ": child pid ", pid, " failed after ",
                             took_ms, " ms: ", st.ToString()));
    files.Remove();
    RemoveLeftovers(r.out_path);
    return st;
  };
  if (absl::Status st = ExitError(ended, tail); !st.ok()) return fail(st);
  absl::StatusOr<BuiltBundle> built = ReadChildOutput(files);
  if (!built.ok()) return fail(built.status());
  files.Remove();
  log::Info("bundles", Cat("bundle ", r.request_id, ": child pid ", pid, " done in ", took_ms,
                           " ms: ", built->size, " bytes"));
  return built;
}

// The deadline, or a stop (SIGTERM, then SIGKILL after the grace).
BundleChild::ChildExit BundleChild::WaitForChild(pid_t pid, const std::string& request_id,
                                                 Steady::time_point started) {
  const auto deadline = started + std::chrono::milliseconds(options_.deadline_ms);
  std::optional<Steady::time_point> stop_seen_at, term_at, kill_at;
  ChildExit ended;
  MutexLock lock(&mu_);
  while (true) {
    pid_t w = ::waitpid(pid, &ended.status, WNOHANG);
    if (w == pid || (w < 0 && errno == ECHILD)) {
      ended.reaped = w == pid;
      if (!ended.reaped) ended.status = 0;
      break;
    }
    const auto now = Steady::now();
    if (stopping_ && !stop_seen_at) {
      stop_seen_at = now;
      if (options_.finish_grace_ms > 0) {
        log::Info("bundles", Cat("bundle ", request_id, ": the agent is stopping; child pid ", pid,
                                 " may finish within ", options_.finish_grace_ms, " ms"));
      }
    }
    if (stop_seen_at && !term_at && !kill_at &&
        now - *stop_seen_at >= std::chrono::milliseconds(options_.finish_grace_ms)) {
      ended.stopped = true;
      term_at = now;
      log::Info("bundles", Cat("bundle ", request_id, ": stopping child pid ", pid));
      ::kill(-pid, SIGTERM);
    }
    if (!kill_at &&
        ((term_at && now - *term_at >= std::chrono::milliseconds(options_.term_grace_ms)) ||
         now >= deadline)) {
      ended.deadline_hit = !ended.stopped;
      kill_at = now;
      ::kill(-pid, SIGKILL);
    }
    if (kill_at && now - *kill_at >= std::chrono::milliseconds(options_.kill_reap_ms)) {
      // Stuck in the kernel: poll it later, init takes it when we exit.
      log::Warn("bundles", Cat("bundle ", request_id, ": child pid ", pid,
                               " does not end after SIGKILL (stuck in the kernel?); left behind"));
      unreaped_.push_back(pid);
      break;
    }
    cv_.WaitFor(&mu_, std::chrono::milliseconds(20));
  }
  return ended;
}

absl::Status BundleChild::ExitError(const ChildExit& ended, const std::string& tail) const {
  const int status = ended.status;
  if (ended.stopped)
    return absl::CancelledError(Cat("the agent stopped while the bundle was built (child ",
                                    ended.reaped ? DescribeStatus(status) : "not reaped", ")"));
  if (ended.deadline_hit) {
    return absl::DeadlineExceededError(Cat("the bundle was not built within ",
                                           options_.deadline_ms / 1000, " s; child killed",
                                           tail.empty() ? "" : ": ", tail));
  }
  if (!ended.reaped || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string how = ended.reaped ? DescribeStatus(status) : "could not be waited for";
    std::string msg = Cat("bundle child ", how, tail.empty() ? "" : ": ", tail);
    if (ended.reaped && WIFEXITED(status) && WEXITSTATUS(status) == 2)
      return absl::InvalidArgumentError(msg);
    if (ended.reaped && WIFEXITED(status)) return absl::UnavailableError(msg);
    return absl::InternalError(msg);
  }
  return absl::OkStatus();
}

}  // namespace setdiag::agent
