#include "agent/bundle/collect_files.h"

#include <fcntl.h>
#include <glob.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <set>
#include <vector>

#include "agent/bundle/archive.h"
#include "common/status.h"
#include "common/strings.h"

namespace setdiag::agent::bundle {
namespace {

constexpr size_t kChunk = 64 * 1024;
constexpr uint64_t kConfigCap = 16 * 1024 * 1024;

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int Release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

std::string Errno(std::string_view what, const std::string& path) {
  return Cat(what, " ", path, ": ", std::strerror(errno));
}

absl::Status WriteAll(int fd, std::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == ENOSPC ? absl::ResourceExhaustedError(Errno("cannot write", path))
                             : absl::UnavailableError(Errno("cannot write", path));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

const char* CompressedKind(const unsigned char* m, ssize_t n) {
  if (n >= 2 && m[0] == 0x1f && m[1] == 0x8b) return "gzip";
  if (n >= 3 && m[0] == 'B' && m[1] == 'Z' && m[2] == 'h') return "bzip2";
  if (n >= 6 && m[0] == 0xfd && m[1] == '7' && m[2] == 'z' && m[3] == 'X' && m[4] == 'Z' &&
      m[5] == 0)
    return "xz";
  if (n >= 4 && m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f && m[3] == 0xfd) return "zstd";
  if (n >= 4 && m[0] == 'P' && m[1] == 'K' && m[2] == 3 && m[3] == 4) return "zip";
  return nullptr;
}

int64_t MtimeMs(const struct stat& st) {
  return int64_t{st.st_mtim.tv_sec} * 1000 + st.st_mtim.tv_nsec / 1'000'000;
}

int64_t SinceMs(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               t0)
      .count();
}

CollectedFile FromCopy(std::string path, std::string local, const std::string& source,
                       const CopyStats& c, int64_t mtime_ms, int64_t took_ms) {
  CollectedFile f;
  f.path = std::move(path);
  f.local_path = std::move(local);
  f.source = source;
  f.method = c.truncated ? "redacted_tail" : "redacted_copy";
  f.collected_in_ms = std::max<int64_t>(took_ms, 1);
  f.details = {{"source_size", c.source_size},
               {"from_offset", c.from_offset},
               {"bytes_read", c.bytes_read},
               {"truncated", c.truncated},
               {"source_mtime_ms", mtime_ms}};
  if (c.lines_split > 0) f.details["long_lines_split"] = c.lines_split;
  f.redactions = c.redactions;
  return f;
}

}  // namespace

absl::StatusOr<CopyStats> CopyRedacted(const std::string& source, const std::string& dest,
                                       uint64_t cap, const StepContext* cancel_from) {
  // O_NONBLOCK: a FIFO named like a log must not block the step.
  Fd in(::open(source.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
  if (in.get() < 0) {
    return errno == ENOENT ? absl::NotFoundError(Errno("cannot open", source))
                           : absl::PermissionDeniedError(Errno("cannot open", source));
  }
  struct stat st {};
  if (::fstat(in.get(), &st) != 0) return absl::UnavailableError(Errno("cannot stat", source));
  if (!S_ISREG(st.st_mode))
    return absl::FailedPreconditionError(Cat(source, " is not a regular file"));
  CopyStats c;
  c.source_size = static_cast<uint64_t>(st.st_size);
  unsigned char magic[6] = {};
  ssize_t m = ::pread(in.get(), magic, sizeof magic, 0);
  if (const char* kind = CompressedKind(magic, m)) {
    return absl::FailedPreconditionError(Cat(kind, "-compressed: cannot be redacted, left out"));
  }
  std::vector<char> buf(kChunk);
  uint64_t pos = 0;
  if (c.source_size > cap) {
    // The tail, from the first whole line in it.
    pos = c.source_size - cap;
    c.truncated = true;
    uint64_t scan = pos - 1;  // a newline just before the cut: it starts at a line already
    while (scan < c.source_size) {
      ssize_t n = ::pread(in.get(), buf.data(), buf.size(), static_cast<off_t>(scan));
      if (n <= 0) break;
      auto* nl = static_cast<char*>(std::memchr(buf.data(), '\n', static_cast<size_t>(n)));
      if (nl) {
        pos = scan + static_cast<uint64_t>(nl - buf.data()) + 1;
        break;
      }
      scan += static_cast<uint64_t>(n);
    }
  }
  c.from_offset = pos;
  Fd out(::open(dest.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (out.get() < 0) return absl::UnavailableError(Errno("cannot create", dest));
  std::string pending;
  pending.reserve(kChunk * 2);
  StreamRedactor redactor([&](std::string_view piece) -> absl::Status {
    pending.append(piece);
    if (pending.size() < kChunk) return absl::OkStatus();
    absl::Status s = WriteAll(out.get(), pending, dest);
    c.bytes_written += pending.size();
    pending.clear();
    return s;
  });
  while (pos < c.source_size) {
    if (cancel_from && cancel_from->cancelled())
      return absl::CancelledError("stopped at the step timeout");
    size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), c.source_size - pos));
    ssize_t n = ::pread(in.get(), buf.data(), want, static_cast<off_t>(pos));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::UnavailableError(Errno("cannot read", source));
    if (n == 0) break;  // truncated meanwhile (rotated): what we have is what there was
    pos += static_cast<uint64_t>(n);
    c.bytes_read += static_cast<uint64_t>(n);
    RETURN_IF_ERROR(redactor.Feed(std::string_view(buf.data(), static_cast<size_t>(n))));
  }
  RETURN_IF_ERROR(redactor.Finish());
  RETURN_IF_ERROR(WriteAll(out.get(), pending, dest));
  c.bytes_written += pending.size();
  c.lines_split = redactor.lines_split();
  c.redactions = redactor.counts();
  if (::close(out.Release()) != 0) return absl::UnavailableError(Errno("cannot write", dest));
  return c;
}

std::vector<LogCandidate> FindLogFiles(const std::vector<std::string>& globs, int64_t not_before_ms,
                                       int* older) {
  std::vector<LogCandidate> out;
  std::set<std::string> seen;
  int old = 0;
  for (const auto& pattern : globs) {
    glob_t g{};
    int rc = ::glob(pattern.c_str(), GLOB_NOSORT, nullptr, &g);
    if (rc == 0) {
      for (size_t i = 0; i < g.gl_pathc; ++i) {
        std::string path = g.gl_pathv[i];
        char real[PATH_MAX];
        std::string key = ::realpath(path.c_str(), real) ? std::string(real) : path;
        if (!seen.insert(key).second) continue;
        struct stat st {};
        if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
        int64_t mtime = MtimeMs(st);
        if (mtime < not_before_ms) {
          ++old;
          continue;
        }
        out.push_back({path, mtime, static_cast<uint64_t>(st.st_size)});
      }
    }
    ::globfree(&g);
  }
  std::sort(out.begin(), out.end(), [](const LogCandidate& a, const LogCandidate& b) {
    return a.mtime_ms != b.mtime_ms ? a.mtime_ms > b.mtime_ms : a.path < b.path;
  });
  if (older) *older = old;
  return out;
}

BundleStep MakeConfigStep(std::string agent_config_path, nlohmann::json effective_config,
                          std::vector<std::string> other_config_files, std::string config_error) {
  return MakeStep(
      "config", 0,
      [agent_config_path, effective_config, other_config_files,
       config_error](StepContext& ctx) -> absl::Status {
        std::string failures;
        int index = 0;
        auto copy = [&](const std::string& source, const std::string& archive_path, bool required) {
          auto t0 = std::chrono::steady_clock::now();
          std::string dest = Cat(ctx.scratch_dir(), "/", index++, ".conf");
          auto c = CopyRedacted(source, dest, kConfigCap, &ctx);
          if (!c.ok()) {
            if (required) Append(&failures, failures.empty() ? "" : "; ", c.status().message());
            ctx.Skip(source, std::string(c.status().message()));
            return;
          }
          struct stat st {};
          int64_t mtime = ::stat(source.c_str(), &st) == 0 ? MtimeMs(st) : 0;
          ctx.AddFile(FromCopy(archive_path, dest, source, *c, mtime, SinceMs(t0)));
        };
        if (!agent_config_path.empty()) copy(agent_config_path, "config/agent.toml", true);
        ctx.AddJson("config/effective.json", effective_config,
                    "the loaded configuration (defaults applied)");
        if (!config_error.empty()) {
          ctx.AddText("config/config_error.txt", config_error + "\n", agent_config_path);
        }
        for (const auto& f : other_config_files) {
          struct stat st {};
          if (::stat(f.c_str(), &st) != 0) {
            ctx.Skip(f, Cat("not collected: ", std::strerror(errno)));
            continue;
          }
          copy(f, Cat("config/files/", MemberPathOf(f)), false);
        }
        if (!failures.empty()) return absl::UnavailableError(failures);
        return absl::OkStatus();
      });
}

BundleStep MakeLogsStep(std::vector<std::string> globs, uint64_t file_cap, uint64_t total_cap,
                        int64_t timeout_ms) {
  return MakeStep(
      "logs", timeout_ms, [globs, file_cap, total_cap](StepContext& ctx) -> absl::Status {
        int older = 0;
        std::vector<LogCandidate> files = FindLogFiles(globs, ctx.window_start_ms(), &older);
        if (older > 0) {
          ctx.Note(Cat(older, " matching file(s) not modified within the window were left out"));
        }
        if (files.empty()) {
          ctx.Note("no log file modified within the window matched bundle.log_globs");
          return absl::OkStatus();
        }
        uint64_t left = total_cap;
        int index = 0, taken = 0, failed = 0;
        std::string first_error;
        for (const auto& f : files) {
          if (ctx.cancelled()) return absl::CancelledError("stopped at the step timeout");
          if (left == 0) {
            ctx.Skip(f.path, "left out: bundle.log_total_cap reached (newer files came first)");
            continue;
          }
          auto t0 = std::chrono::steady_clock::now();
          std::string dest = Cat(ctx.scratch_dir(), "/", index++, ".log");
          auto c = CopyRedacted(f.path, dest, std::min(file_cap, left), &ctx);
          if (!c.ok()) {
            if (c.status().code() == absl::StatusCode::kCancelled) return c.status();
            if (c.status().code() != absl::StatusCode::kFailedPrecondition) {
              ++failed;
              if (first_error.empty()) first_error = std::string(c.status().message());
            }
            ctx.Skip(f.path, std::string(c.status().message()));
            continue;
          }
          left -= std::min(left, c->bytes_read);
          if (!ctx.AddFile(FromCopy(Cat("logs/", MemberPathOf(f.path)), dest, f.path, *c,
                                    f.mtime_ms, SinceMs(t0)))) {
            return absl::CancelledError("stopped at the step timeout");
          }
          ++taken;
        }
        if (taken == 0 && failed > 0) {
          return absl::UnavailableError(
              Cat("no log file could be read (", failed, " failed), e.g. ", first_error));
        }
        return absl::OkStatus();
      });
}

}  // namespace setdiag::agent::bundle
