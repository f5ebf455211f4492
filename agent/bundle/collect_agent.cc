#include "agent/bundle/collect_agent.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "agent/store/history.h"
#include "agent/store/maintenance.h"
#include "common/clock.h"
#include "common/files.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/version.h"

namespace setdiag::agent::bundle {
namespace {

constexpr int64_t kMaxHistoryRows = 1'000'000;

bool Exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

nlohmann::json OtherAgents() {
  nlohmann::json out = nlohmann::json::array();
  DIR* d = ::opendir("/proc");
  if (!d) return out;
  const pid_t self = ::getpid();
  while (dirent* e = ::readdir(d)) {
    int pid = 0;
    std::string_view name(e->d_name);
    auto [p, ec] = std::from_chars(name.data(), name.data() + name.size(), pid);
    if (ec != std::errc() || p != name.data() + name.size() || pid == self) continue;
    auto comm = ReadWholeFile(Cat("/proc/", pid, "/comm"));
    if (!comm.ok() || Trim(*comm) != "setdiag-agent") continue;
    auto cmd = ReadWholeFile(Cat("/proc/", pid, "/cmdline"));
    std::string c = cmd.ok() ? *cmd : "";
    while (!c.empty() && c.back() == '\0') c.pop_back();
    std::replace(c.begin(), c.end(), '\0', ' ');
    if (c.empty()) continue;  // a zombie: nothing runs there
    out.push_back({{"pid", pid}, {"cmdline", c}});
  }
  ::closedir(d);
  return out;
}

}  // namespace

std::string KnownAgentId(const std::string& configured, const std::string& state_dir) {
  if (!configured.empty()) return configured;
  auto id = ReadWholeFile(state_dir + "/agent-id");
  return id.ok() ? std::string(Trim(*id)) : "";
}

BundleStep MakeHistoryStep(std::string history_path) {
  return MakeStep("history", 0, [history_path](StepContext& ctx) -> absl::Status {
    auto store = HistoryStore::Open(history_path, /*read_only=*/true);
    if (!store.ok()) {
      if (store.status().code() == absl::StatusCode::kNotFound) {
        ctx.Note(std::string(store.status().message()));
        return absl::OkStatus();
      }
      return store.status();
    }
    std::string local = ctx.scratch_dir() + "/history.jsonl";
    int fd = ::open(local.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return ErrnoStatus(errno, "cannot create", local);
    CollectedFile f;
    f.path = "history/history.jsonl";
    f.local_path = local;
    f.source = history_path;
    f.method = "query";
    std::string buf;
    absl::Status write_status;
    auto flush = [&] {
      size_t off = 0;
      while (off < buf.size() && write_status.ok()) {
        ssize_t n = ::write(fd, buf.data() + off, buf.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0)
          write_status = ErrnoStatus(errno, "cannot write", local);
        else
          off += static_cast<size_t>(n);
      }
      buf.clear();
    };
    auto scanned = (*store)->Scan(
        ctx.window_start_ms(), ctx.now_ms(), kMaxHistoryRows, [&](const HistoryRecord& r) {
          nlohmann::json payload = nlohmann::json::parse(r.payload, nullptr, false);
          if (payload.is_discarded()) payload = r.payload;
          nlohmann::json line = {{"id", r.id},
                                 {"seq", r.seq},
                                 {"kind", r.kind},
                                 {"severity", SeverityName(r.severity)},
                                 {"detected_at_ms", r.detected_at_ms},
                                 {"detected_at_utc", IsoUtc(r.detected_at_ms)},
                                 {"component", r.component},
                                 {"payload", std::move(payload)}};
          RedactJson(&line, &f.redactions);
          buf += line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
          buf += '\n';
          if (buf.size() >= 64 * 1024) flush();
          return write_status.ok() && !ctx.cancelled();
        });
    flush();
    ::close(fd);
    if (!write_status.ok()) return write_status;
    if (!scanned.ok()) return scanned.status();
    if (ctx.cancelled()) return absl::CancelledError("stopped at the step timeout");
    f.details = {{"records", *scanned}, {"limit", kMaxHistoryRows}};
    ctx.AddFile(std::move(f));
    return absl::OkStatus();
  });
}

BundleStep MakeAgentStep(AgentFiles files) {
  return MakeStep("agent", 0, [files](StepContext& ctx) -> absl::Status {
    const int64_t now = ctx.now_ms();
    nlohmann::json h = {{"version", kVersion},
                        {"store_id", files.store_id},
                        {"agent_id", KnownAgentId(files.agent_id, files.state_dir)},
                        {"state_dir", files.state_dir}};
    nlohmann::json state_files = nlohmann::json::array();
    if (DIR* d = ::opendir(files.state_dir.c_str())) {
      while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.') continue;
        struct stat st {};
        if (::stat(Cat(files.state_dir, "/", e->d_name).c_str(), &st) != 0) continue;
        state_files.push_back({{"name", e->d_name},
                               {"size", static_cast<int64_t>(st.st_size)},
                               {"mtime_utc", IsoUtc(int64_t{st.st_mtim.tv_sec} * 1000)}});
      }
      ::closedir(d);
      std::sort(
          state_files.begin(), state_files.end(),
          [](const nlohmann::json& a, const nlohmann::json& b) { return a["name"] < b["name"]; });
    } else {
      h["state_dir_error"] = std::strerror(errno);
    }
    h["state_files"] = std::move(state_files);
    h["daemons"] = OtherAgents();
    absl::Status result;
    FakeClock clock(now);  // ages in the stats count to the bundle's instant
    if (!Exists(files.outbox_path)) {
      h["outbox"] = {{"path", files.outbox_path}, {"exists", false}};
      ctx.Skip(files.outbox_path, "no outbox: the agent has not run with this state_dir");
    } else {
      auto outbox = Outbox::OpenWithoutRepair(files.outbox_path, files.outbox_limits, clock);
      if (!outbox.ok()) {
        h["outbox"] = {{"path", files.outbox_path},
                       {"error", std::string(outbox.status().message())}};
        result = absl::Status(outbox.status().code(),
                              Cat("outbox ", files.outbox_path, ": ", outbox.status().message()));
      } else {
        OutboxStats s = (*outbox)->Stats();
        nlohmann::json o = {{"path", files.outbox_path},
                            {"depth", s.depth},
                            {"bytes", s.bytes},
                            {"max_bytes", files.outbox_limits.max_bytes},
                            {"gaps_total", s.gaps_total},
                            {"next_sequence", s.next_sequence},
                            {"first_unsent_sequence", (*outbox)->FirstUnacked()},
                            {"never_synced", (*outbox)->fresh()}};
        if (s.oldest_enqueued_ms > 0) {
          o["oldest_unsent_utc"] = IsoUtc(s.oldest_enqueued_ms);
          o["oldest_unsent_age_s"] = (now - s.oldest_enqueued_ms) / 1000;
        } else {
          o["oldest_unsent_utc"] = nullptr;
        }
        h["outbox"] = std::move(o);
      }
    }
    ctx.AddJson("agent/health.json", h, Cat(files.state_dir, ", /proc"));
    if (ctx.cancelled()) return absl::CancelledError("stopped at the step timeout");

    if (!Exists(files.state_path)) {
      ctx.Note(Cat("no maintenance windows recorded (", files.state_path, " does not exist)"));
    } else if (auto m = MaintenanceStore::Open(files.state_path); !m.ok()) {
      ctx.Skip(files.state_path, std::string(m.status().message()));
    } else if (auto list = m->List(now, /*include_past=*/true); !list.ok()) {
      ctx.Skip(files.state_path, std::string(list.status().message()));
    } else {
      nlohmann::json windows = nlohmann::json::array();
      for (const auto& w : *list) {
        if (w.EffectiveEndMs() < ctx.window_start_ms()) continue;
        nlohmann::json j = {{"id", w.id},
                            {"start_utc", IsoUtc(w.start_ms)},
                            {"end_utc", IsoUtc(w.EffectiveEndMs())},
                            {"active", w.ActiveAt(now)},
                            {"reason", w.reason},
                            {"opened_by", w.opened_by}};
        if (w.cancelled_ms) j["cancelled_utc"] = IsoUtc(*w.cancelled_ms);
        windows.push_back(std::move(j));
      }
      ctx.AddJson("agent/maintenance.json", windows, files.state_path);
    }
    return result;
  });
}

}  // namespace setdiag::agent::bundle
