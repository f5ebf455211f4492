// setdiag-agent: the composition root of the store agent.

#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "agent/bundle/bundle.h"
#include "agent/bundle/bundle_child.h"
#include "agent/commands/check.h"
#include "agent/config/agent_config.h"
#include "agent/core/redact.h"
#include "agent/link/uplink.h"
#include "agent/sources/push_receiver.h"
#include "agent/store/detector_state.h"
#include "agent/store/history.h"
#include "agent/store/maintenance.h"
#include "agent/store/outbox.h"
#include "agent/watches/loading_watch.h"
#include "agent/watches/till_watch.h"
#include "common/clock.h"
#include "common/config.h"
#include "common/files.h"
#include "common/log.h"
#include "common/strings.h"
#include "common/version.h"

namespace setdiag::agent {
namespace {

constexpr int kExitConfig = 2;

absl::StatusOr<AgentConfig> LoadOrExplain(const std::string& path) {
  auto cfg = LoadAgentConfig(path);
  if (!cfg.ok()) std::cerr << "setdiag-agent: bad config: " << cfg.status().message() << "\n";
  return cfg;
}

absl::Status EnsureDir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0750) != 0 && errno != EEXIST) {
    return absl::UnavailableError(Cat("cannot create ", dir, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

std::string ResolveAgentId(const AgentConfig& cfg) {
  if (!cfg.agent_id.empty()) return cfg.agent_id;
  std::string path = cfg.state_dir + "/agent-id";
  if (auto id = ReadWholeFile(path); id.ok() && !id->empty()) {
    std::string s = *id;
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    if (!s.empty()) return s;
  }
  std::string id = Cat("store-", cfg.store_id, "-", RandomHex(6));
  if (auto st = WriteFileAtomically(path, id + "\n", 0640); !st.ok()) {
    log::Warn("agent", Cat("cannot keep agent id: ", st.message()));
  }
  return id;
}

std::string FormatLocal(int64_t ms);

// Tills are expected when the store calendar says open and no maintenance
// window is active. A maintenance table that cannot be read counts as no
// maintenance: better a false alarm than a missed one.
ExpectationFn MakeExpectation(const AgentConfig& cfg, MaintenanceStore* maintenance) {
  return [calendar = cfg.calendar, maintenance](int64_t now_ms) {
    std::vector<MaintenanceWindow> windows;
    if (maintenance) {
      auto active = maintenance->ActiveAt(now_ms);
      if (active.ok())
        windows = std::move(*active);
      else
        log::Warn("maintenance", active.status().ToString());
    }
    auto e = calendar->ExpectedAt(now_ms, windows);
    return std::make_pair(e.expected, e.reason);
  };
}

int64_t ParseDurationArg(const std::string& text) {
  auto ms = ConfigReader::ParseDurationMs(text);
  return ms ? *ms : -1;
}

int Maintenance(const AgentConfig& cfg, const std::string& action, const std::string& duration,
                const std::string& reason, const std::string& by, int64_t id, bool as_json) {
  if (auto st = EnsureDir(cfg.state_dir); !st.ok()) {
    std::cerr << st.message() << "\n";
    return 1;
  }
  auto store = MaintenanceStore::Open(cfg.StatePath());
  if (!store.ok()) {
    std::cerr << "setdiag-agent maintenance: " << store.status().message() << "\n";
    return 1;
  }
  SystemClock clock;
  auto print = [&](const std::vector<MaintenanceWindow>& windows) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& w : windows) {
      out.push_back({{"id", w.id},
                     {"start_ms", w.start_ms},
                     {"end_ms", w.EffectiveEndMs()},
                     {"reason", w.reason},
                     {"opened_by", w.opened_by},
                     {"active", w.ActiveAt(clock.NowMs())}});
    }
    if (as_json) {
      std::cout << out.dump(2) << "\n";
      return;
    }
    if (windows.empty()) std::cout << "no maintenance windows\n";
    for (const auto& w : out) {
      std::cout << "#" << w["id"] << (w["active"].get<bool>() ? " ACTIVE " : " planned ")
                << "until " << FormatLocal(w["end_ms"].get<int64_t>()) << " by "
                << w["opened_by"].get<std::string>() << ": " << w["reason"].get<std::string>()
                << "\n";
    }
  };
  if (action == "list") {
    auto list = store->List(clock.NowMs());
    if (!list.ok()) {
      std::cerr << "setdiag-agent maintenance list: " << list.status().message() << "\n";
      return 1;
    }
    print(*list);
    return 0;
  }
  if (action == "cancel") {
    auto w = store->Cancel(id, clock.NowMs());
    if (!w.ok()) {
      std::cerr << "setdiag-agent maintenance cancel: " << w.status().message() << "\n";
      return 1;
    }
    std::cout << "maintenance #" << id << " cancelled; tills are expected again per the calendar\n";
    return 0;
  }
  int64_t ms = ParseDurationArg(duration);
  if (ms <= 0) {
    std::cerr << "setdiag-agent maintenance: --for needs a duration such as 30m or 2h\n";
    return kExitConfig;
  }
  auto w = store->Add(clock.NowMs(), ms, reason, by);
  if (!w.ok()) {
    std::cerr << "setdiag-agent maintenance: " << w.status().message() << "\n";
    return w.status().code() == absl::StatusCode::kInvalidArgument ? kExitConfig : 1;
  }
  std::cout << "maintenance #" << w->id << " open until " << FormatLocal(w->EffectiveEndMs())
            << ": no till or loading condition is raised meanwhile\n";
  return 0;
}

std::string FormatLocal(int64_t ms) {
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  localtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M", &tm);
  return buf;
}

int Run(const AgentConfig& cfg) {
  log::Level level;
  log::ParseLevel(cfg.log_level, &level);
  log::SetLevel(level);
  if (auto st = EnsureDir(cfg.state_dir); !st.ok()) log::Error("agent", st.ToString());

  // Block termination signals before any thread starts; main waits for them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  SystemClock clock;
  auto outbox = Outbox::Open(cfg.OutboxPath(), cfg.outbox, clock);
  if (!outbox->reset_reason().empty()) {
    nlohmann::json payload = {{"reason", outbox->reset_reason()},
                              {"in_memory", outbox->in_memory()}};
    // What is known of the replaced outbox and what was recovered from it.
    payload.update(nlohmann::json::parse(outbox->reset_details(), nullptr, false), true);
    auto seq =
        outbox->Append({kOutboxResetKind, Severity::kImportant, clock.NowMs(), payload.dump()});
    if (!seq.ok()) log::Error("agent", seq.status().ToString());
  }

  const std::string& ca_pem = cfg.ca_pem;  // read and checked with the config
  UplinkOptions uo;
  uo.target = cfg.collector_address;
  uo.store_id = cfg.store_id;
  uo.agent_id = ResolveAgentId(cfg);
  uo.token = cfg.token;
  uo.ca_pem = ca_pem;
  uo.server_name = cfg.server_name;
  uo.backoff = cfg.backoff;
  uo.status_interval_ms = cfg.status_interval_ms;
  // What the detectors raised survives a restart (state.db, table
  // detector_state): restored by the watches, announced in every Hello.
  // Without it the agent runs on, and the Hello says nothing about it.
  std::shared_ptr<DetectorStateStore> detector_state;
  if (auto ds = DetectorStateStore::Open(cfg.StatePath()); ds.ok()) {
    detector_state = std::move(*ds);
    // A watch switched off holds nothing: the collector may resolve it.
    for (auto [enabled, name] :
         {std::pair{cfg.tills_enabled, "tills"}, std::pair{cfg.loading_enabled, "loading"}}) {
      if (enabled) continue;
      for (const std::string& row : {std::string(name), std::string(name) + ".checks"}) {
        if (auto st = detector_state->Forget(row); !st.ok()) log::Warn("agent", st.ToString());
      }
    }
  } else {
    log::Error("agent",
               Cat("raised conditions will not survive a restart: ", ds.status().ToString()));
  }
  uo.held_episodes = [detector_state]() -> std::optional<std::vector<HeldEpisode>> {
    if (!detector_state) return std::nullopt;
    auto held = detector_state->HeldEpisodes();
    if (!held.ok()) {
      log::Warn("uplink",
                Cat("cannot read the held condition episodes: ", held.status().ToString()));
      return std::nullopt;
    }
    return std::move(*held);
  };
  // Diagnostic bundles the collector asks for, and the flight recorder's:
  // built on the uplink's bundle thread, streamed from <state_dir>/bundles.
  // Each is built by a child process (this binary's `bundle` command), so
  // its memory goes back to the OS afterwards and a wedged or crashing step
  // cannot touch the watches; in-process only when no child can be started.
  // Declared before the uplink, whose bundle thread uses it until Stop().
  BundleChild bundle_child(BundleChildOptions{
      .config_path = cfg.config_path,
      .deadline_ms =
          BundleChild::DefaultDeadlineMs(cfg.bundle.step_timeout_ms, cfg.bundle.logs_timeout_ms),
      .finish_grace_ms = cfg.bundle.stop_grace_ms});
  uo.bundle_dir = cfg.state_dir + "/bundles";
  uo.bundle_builder = [&cfg, &clock,
                       &bundle_child](const BundleBuildRequest& r) -> absl::StatusOr<BuiltBundle> {
    // Cancelled once the agent is stopping: never falls back then.
    bool not_started = false;
    auto child_built = bundle_child.Build(r, &not_started);
    if (!not_started) return child_built;
    log::Warn("bundles", Cat("bundle ", r.request_id, ": building in the agent's own process: ",
                             child_built.status().message()));
    auto options = bundle::BundleOptions::FromConfig(cfg);
    if (r.window_ms > 0) options.config.window_ms = r.window_ms;
    options.include_logs = !r.exclude_logs;
    auto built = bundle::BuildBundle(cfg, options, r.out_path, clock);
    if (!built.ok()) return built.status();
    return BuiltBundle{
        built->path, built->size, built->sha256,
        built->manifest.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)};
  };
  Uplink uplink(uo, *outbox, clock);
  uplink.Start();

  HeartbeatBoard board;
  PushReceiver push(cfg.store_id, board, clock);
  std::string host;
  uint16_t port = 0;
  if (SplitHostPort(cfg.push_udp_listen, &host, &port)) {
    if (auto st = push.StartUdp(host, port); !st.ok())
      log::Error("push", st.ToString());
    else
      log::Info("push", Cat("heartbeats accepted on udp ", host, ":", push.udp_port()));
  }
  if (SplitHostPort(cfg.push_http_listen, &host, &port)) {
    if (auto st = push.StartHttp(host, port); !st.ok())
      log::Error("push", st.ToString());
    else
      log::Info("push", Cat("heartbeats accepted on http://", host, ":", push.http_port(),
                            "/v1/heartbeat"));
  }
  // Findings are also kept locally for bundles; without it the agent runs on.
  std::shared_ptr<HistoryStore> history;
  if (auto h = HistoryStore::Open(cfg.HistoryPath()); h.ok()) {
    history = std::move(*h);
  } else {
    log::Error("history",
               Cat("local history unavailable (bundles will lack it): ", h.status().ToString()));
  }
  std::unique_ptr<TillWatch> tills;
  std::optional<MaintenanceStore> maintenance;
  if (auto m = MaintenanceStore::Open(cfg.StatePath()); m.ok()) {
    maintenance = std::move(*m);
  } else {
    log::Error("maintenance", Cat("maintenance windows unavailable: ", m.status().ToString()));
  }
  if (cfg.tills_enabled) {
    TillWatchOptions till_options = cfg.tills;
    till_options.history = history;
    till_options.state = detector_state;
    tills = std::make_unique<TillWatch>(
        till_options, uo.agent_id, MakeExpectation(cfg, maintenance ? &*maintenance : nullptr),
        board, *outbox, [&uplink] { uplink.Wake(); }, clock);
    tills->Start();
    log::Info("tills",
              Cat("watching tills: ", cfg.tills.set_db ? "SET database" : "configured roster",
                  ", heartbeat timeout ", cfg.tills.policy.heartbeat_timeout_ms,
                  " ms, confirm window ", cfg.tills.policy.confirm_ms, " ms"));
  }
  log::Info("agent", Cat("setdiag-agent ", kVersion, " for store ", cfg.store_id, " (agent ",
                         uo.agent_id, ") sending to ", cfg.collector_address,
                         ca_pem.empty() ? " (plaintext)" : " (TLS)"));

  std::unique_ptr<LoadingWatch> loading;
  if (cfg.loading_enabled) {
    // Its own connection to the maintenance table: the till watch uses the other.
    auto own = MaintenanceStore::Open(cfg.StatePath());
    std::shared_ptr<MaintenanceStore> windows =
        own.ok() ? std::make_shared<MaintenanceStore>(std::move(*own)) : nullptr;
    auto context = [windows, calendar = cfg.calendar](int64_t now_ms) {
      LoadingContext c;
      if (windows) {
        auto active = windows->ActiveAt(now_ms);
        c.maintenance = active.ok() && !active->empty();
      }
      c.tills_expected = calendar->IsOpenAt(now_ms);
      return c;
    };
    LoadingWatchOptions loading_options = cfg.loading;
    loading_options.history = history;
    loading_options.state = detector_state;
    loading = std::make_unique<LoadingWatch>(
        loading_options, uo.agent_id, *outbox, [&uplink] { uplink.Wake(); }, context, clock);
    loading->Start();
    log::Info("loading", Cat("watching goods and prices loading: ",
                             cfg.loading.set_db ? "SET database" : "no database", ", ",
                             cfg.loading.inboxes.size(), " inbox folder(s), ",
                             cfg.loading.service_urls.size(), " import service URL(s)"));
  }

  // Housekeeping on the main thread between signals: every 2 s events the
  // disk refused are committed again (and sent at once), once a minute the
  // outbox expires old events.
  int64_t next_expiry_ms = clock.MonotonicMs() + 60'000;
  while (true) {
    timespec timeout{2, 0};
    int sig = sigtimedwait(&signals, nullptr, &timeout);
    if (sig == SIGINT || sig == SIGTERM) break;
    size_t committed = 0;
    (void)outbox->CommitHeld(&committed);
    if (committed > 0) uplink.Wake();
    if (clock.MonotonicMs() >= next_expiry_ms) {
      next_expiry_ms = clock.MonotonicMs() + 60'000;
      if (auto st = outbox->ExpireOld(); !st.ok()) log::Error("outbox", st.ToString());
    }
  }
  log::Info("agent", "stopping");
  bundle_child.Stop();  // a bundle being built in a child ends now (SIGTERM, SIGKILL after 2 s)
  if (loading) loading->Stop();
  if (tills) tills->Stop();
  push.Stop();
  log::Info("push",
            Cat("heartbeats accepted ", push.counters().accepted.load(), ", malformed ",
                push.counters().malformed.load(), ", oversized ", push.counters().oversized.load(),
                ", other store ", push.counters().wrong_store.load()));
  uplink.Stop();
  return 0;
}

int Emit(const AgentConfig& cfg, const std::string& kind, const std::string& severity_text,
         const std::string& raw_payload, int count) {
  // A script may pass on what it read from SET: redacted like a finding.
  std::string payload = raw_payload;
  if (auto j = nlohmann::json::parse(raw_payload, nullptr, false); !j.is_discarded()) {
    bundle::RedactionCounts redacted;
    bundle::RedactJsonStrings(&j, &redacted);
    if (!redacted.empty()) payload = j.dump();
  }
  Severity severity;
  if (!ParseSeverity(severity_text, &severity)) {
    std::cerr << "setdiag-agent emit: --severity must be info, normal, important or critical\n";
    return kExitConfig;
  }
  if (auto st = EnsureDir(cfg.state_dir); !st.ok()) {
    std::cerr << st.message() << "\n";
    return 1;
  }
  SystemClock clock;
  auto opened = Outbox::OpenWithoutRepair(cfg.OutboxPath(), cfg.outbox, clock);
  if (!opened.ok()) {
    std::cerr << "setdiag-agent emit: cannot open the outbox: " << opened.status().message()
              << " (the running agent repairs it and reports it)\n";
    return 1;
  }
  auto& outbox = *opened;
  NewEvent probe{kind, severity, clock.NowMs(), payload};
  if (auto st = ValidateNewEvent(probe, cfg.outbox.max_event_bytes); !st.ok()) {
    std::cerr << "setdiag-agent emit: " << st.message() << "\n";
    return kExitConfig;
  }
  uint64_t first = 0, last = 0;
  for (int i = 0; i < count; ++i) {
    auto seq = outbox->Append({kind, severity, clock.NowMs(), payload});
    if (!seq.ok()) {
      std::cerr << "setdiag-agent emit: " << seq.status().message() << "\n";
      return 1;
    }
    if (first == 0) first = *seq;
    last = *seq;
  }
  std::cout << "recorded " << count << " event(s), sequences " << first << ".." << last << "\n";
  return 0;
}

std::string HumanBytes(uint64_t n) {
  char buf[32];
  if (n >= 1024 * 1024)
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(n) / (1024.0 * 1024.0));
  else if (n >= 1024)
    std::snprintf(buf, sizeof buf, "%.1f KiB", static_cast<double>(n) / 1024.0);
  else
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(n));
  return buf;
}

struct BundleArgs {
  std::string output;
  std::string window;
  std::string step_timeout;
  bool no_logs = false;
  bool json = false;
  std::string manifest_out;  // also write the full manifest.json here (the daemon's child)
  int64_t parent_pid = 0;    // die with this process (the daemon's child)
};

// Works without the daemon and without the collector. A config that cannot
// be loaded does not stop it: the bundle is built from defaults and says why.
int Bundle(const std::string& config_path, const BundleArgs& args) {
  log::SetLevel(log::Level::kWarn);
  if (args.parent_pid > 0) {
    // Built for the daemon: a daemon killed outright must not leave a build
    // writing into its bundle directory (a restarted daemon builds again).
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    // Started through /proc/self/fd/N, the process would be named "N".
    ::prctl(PR_SET_NAME, "setdiag-agent");
    if (::getppid() != static_cast<pid_t>(args.parent_pid)) {
      std::cerr << "setdiag-agent bundle: the agent that asked for this bundle is gone\n";
      return 1;
    }
  }
  AgentConfig cfg;
  std::string config_error;
  if (auto loaded = LoadAgentConfig(config_path); loaded.ok()) {
    cfg = std::move(*loaded);
  } else {
    config_error = std::string(loaded.status().message());
    std::cerr << "setdiag-agent bundle: bad config: " << config_error
              << "\n  collecting with default settings instead (no SET database access)\n";
  }
  auto options = bundle::BundleOptions::FromConfig(cfg);
  options.agent_config_path = config_path;
  options.config_error = config_error;
  if (!args.window.empty()) {
    int64_t ms = ParseDurationArg(args.window);
    if (ms < 60'000) {
      std::cerr
          << "setdiag-agent bundle: --window needs a duration of at least 1m, such as 6h or 2d\n";
      return kExitConfig;
    }
    options.config.window_ms = ms;
  }
  if (!args.step_timeout.empty()) {
    int64_t ms = ParseDurationArg(args.step_timeout);
    if (ms < 100) {
      std::cerr << "setdiag-agent bundle: --step-timeout needs a duration of at least 100ms, such "
                   "as 20s\n";
      return kExitConfig;
    }
    options.config.step_timeout_ms = ms;
  }
  options.include_logs = !args.no_logs;
  SystemClock clock;
  std::string out = args.output;
  if (out.empty()) {
    std::time_t secs = static_cast<std::time_t>(clock.NowMs() / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
    out = Cat("setdiag-bundle-", cfg.store_id.empty() ? "unknown" : cfg.store_id, "-", stamp,
              ".tar.gz");
  }
  std::cerr << "setdiag-agent bundle: collecting (each step at most "
            << options.config.step_timeout_ms / 1000 << " s, logs "
            << options.config.logs_timeout_ms / 1000 << " s)...\n";
  auto result = bundle::BuildBundle(cfg, options, out, clock);
  if (!result.ok()) {
    std::cerr << "setdiag-agent bundle: " << result.status().message() << "\n";
    return result.status().code() == absl::StatusCode::kInvalidArgument ? kExitConfig : 1;
  }
  const auto& m = result->manifest;
  if (!args.manifest_out.empty()) {
    if (auto st = WriteFileAtomically(
            args.manifest_out, m.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
            0640);
        !st.ok()) {
      std::cerr << "setdiag-agent bundle: --manifest-out: " << st.message() << "\n";
      return 1;
    }
  }
  if (args.json) {
    nlohmann::json summary = {{"path", result->path},
                              {"size", result->size},
                              {"sha256", result->sha256},
                              {"summary", m["summary"]},
                              {"steps", m["steps"]},
                              {"redactions", m["redactions"]["by_rule"]},
                              {"not_collected", m["not_collected"].size()}};
    std::cout << summary.dump(2) << "\n";
    if (result->steps_timed_out > 0) {
      std::cout.flush();
      std::_Exit(0);
    }
    return 0;
  }
  std::cout << "bundle written: " << result->path << " (" << HumanBytes(result->size) << ", sha256 "
            << result->sha256 << ")\n";
  std::cout << "steps: " << result->steps_ok << " ok, " << result->steps_failed << " failed, "
            << result->steps_timed_out << " timed out, " << result->steps_skipped << " skipped\n";
  for (const auto& s : m["steps"]) {
    if (s["status"] == "ok") continue;
    std::cout << "  " << s["name"].get<std::string>() << ": " << s["status"].get<std::string>();
    if (s["error"].is_string()) std::cout << ": " << s["error"].get<std::string>();
    std::cout << "\n";
  }
  std::cout << "files: " << result->files << "; values redacted: " << result->redactions;
  if (result->redactions > 0) {
    std::string rules;
    for (const auto& [rule, n] : m["redactions"]["by_rule"].items()) {
      Append(&rules, rules.empty() ? "" : ", ", rule, " ", n.get<int64_t>());
    }
    std::cout << " (" << rules << ")";
  }
  std::cout << "\n";
  if (!m["not_collected"].empty()) {
    std::cout << "not collected: " << m["not_collected"].size() << " item(s), see manifest.json\n";
  }
  if (result->steps_timed_out > 0) {
    // A timed-out step's thread may still be running (or stuck in the
    // kernel): leave without running static destructors under its feet.
    std::cout.flush();
    std::_Exit(0);
  }
  return 0;
}

int Status(const AgentConfig& cfg) {
  SystemClock clock;
  auto outbox = Outbox::OpenWithoutRepair(cfg.OutboxPath(), cfg.outbox, clock);
  if (!outbox.ok()) {
    std::cerr << "setdiag-agent status: cannot open the outbox: " << outbox.status().message()
              << "\n";
    return 1;
  }
  OutboxStats s = (*outbox)->Stats();
  nlohmann::json out = {
      {"store_id", cfg.store_id},
      {"outbox", cfg.OutboxPath()},
      {"depth", s.depth},
      {"bytes", s.bytes},
      {"oldest_unsent_age_s",
       s.oldest_enqueued_ms ? (clock.NowMs() - s.oldest_enqueued_ms) / 1000 : 0},
      {"gaps_total", s.gaps_total},
      {"next_sequence", s.next_sequence},
  };
  std::cout << out.dump(2) << "\n";
  return 0;
}

}  // namespace
}  // namespace setdiag::agent

int main(int argc, char** argv) {
  using namespace setdiag::agent;
  // gRPC resolves the collector's name with c-ares, which reads /etc/hosts
  // and resolv.conf itself. Its "native" resolver would call getaddrinfo(),
  // which in this static binary loads the host's NSS modules (glibc 2.17's on
  // CentOS 7, none in an empty root): never let the environment choose it.
  setenv("GRPC_DNS_RESOLVER", "ares", 1);
  CLI::App app{
      "setdiag-agent: watches a SET Retail 10 store server and streams diagnostics to the "
      "setdiag collector.\nWithout a subcommand it runs the agent (same as 'run')."};
  app.set_version_flag("--version", std::string("setdiag-agent ") + setdiag::kVersion);
  // Options may come after the subcommand that owns them or after a nested
  // one ("maintenance list --json", "bundle -c FILE"): subcommands inherit
  // this and pass what they do not know up to their parent.
  app.fallthrough();
  std::string config_path = "/etc/setdiag/agent.toml";
  app.add_option("-c,--config", config_path, "Configuration file (TOML)")->capture_default_str();

  auto* run = app.add_subcommand("run", "Run the agent until SIGTERM (the default)");
  auto* emit = app.add_subcommand("emit", "Record an event in the outbox (for scripts and tests)");
  std::string kind, severity = "normal", payload = "{}";
  int count = 1;
  emit->add_option("--kind", kind, "Event kind, e.g. script.heartbeat")->required();
  emit->add_option("--severity", severity, "info, normal, important or critical")
      ->capture_default_str();
  emit->add_option("--payload", payload, "JSON object")->capture_default_str();
  emit->add_option("--count", count, "How many copies")->check(CLI::Range(1, 10'000'000));
  auto* status = app.add_subcommand("status", "Print the outbox state as JSON");
  auto* check = app.add_subcommand(
      "check",
      "Preflight on site: the config and SET's database as the watches read them; changes nothing. "
      "Exit 0 when every check passes, 1 when one fails, 2 for a bad config");
  bool check_json = false;
  std::string check_lang;
  check->add_flag("--json", check_json, "JSON output for scripts");
  check->add_option("--lang", check_lang, "ru or en (default from $LANG)")
      ->check(CLI::IsMember({"ru", "en"}));
  auto* maint = app.add_subcommand(
      "maintenance",
      "Open a maintenance window on site (no till condition meanwhile), or list/cancel them");
  std::string duration, reason, by;
  int64_t maint_id = 0;
  bool maint_json = false;
  const char* user = std::getenv("SUDO_USER") ? std::getenv("SUDO_USER") : std::getenv("USER");
  by = user ? user : "engineer";
  maint->add_option("--for", duration, "How long, e.g. 30m or 2h");
  maint->add_option("--reason", reason, "What is being done (shown to support)");
  maint->add_option("--by", by, "Who opens it")->capture_default_str();
  maint->add_flag("--json", maint_json, "JSON output");
  auto* maint_list = maint->add_subcommand("list", "Active and planned windows");
  auto* maint_cancel = maint->add_subcommand("cancel", "End a window now");
  maint_cancel->add_option("id", maint_id, "Window number from 'list'")->required();
  auto* bundle_cmd = app.add_subcommand("bundle",
                                        "Collect a diagnostic bundle (.tar.gz) for support; needs "
                                        "neither the daemon nor the collector");
  BundleArgs bundle_args;
  bundle_cmd->add_option("-o,--output", bundle_args.output,
                         "Output file (default ./setdiag-bundle-<store>-<UTC time>.tar.gz)");
  bundle_cmd->add_option("--window", bundle_args.window,
                         "How far back logs and history reach (default bundle.window, 24h)");
  bundle_cmd->add_option("--step-timeout", bundle_args.step_timeout,
                         "Timeout of each step (default bundle.step_timeout, 20s)");
  bundle_cmd->add_flag("--no-logs", bundle_args.no_logs, "Leave out the SET server's logs");
  bundle_cmd->add_flag("--json", bundle_args.json, "Print the summary as JSON");
  bundle_cmd->add_option("--manifest-out", bundle_args.manifest_out,
                         "Also write the full manifest.json to FILE (atomically)");
  // Hidden: set by the daemon for the child that builds its bundles.
  bundle_cmd->add_option("--parent-pid", bundle_args.parent_pid, "Exit when this process does")
      ->group("");
  app.require_subcommand(0, 1);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  (void)run;
  if (bundle_cmd->parsed()) return Bundle(config_path, bundle_args);
  auto cfg = LoadOrExplain(config_path);
  if (!cfg.ok()) return 2;
  if (emit->parsed()) return Emit(*cfg, kind, severity, payload, count);
  if (status->parsed()) return Status(*cfg);
  if (check->parsed()) {
    if (check_lang.empty()) check_lang = setdiag::LanguageFromEnvironment();
    setdiag::SystemClock clock;
    return PrintChecks(RunChecks(*cfg, clock), check_lang == "ru", check_json);
  }
  if (maint->parsed()) {
    std::string action = maint_list->parsed() ? "list" : maint_cancel->parsed() ? "cancel" : "open";
    if (action == "open" && (duration.empty() || reason.empty())) {
      std::cerr << "setdiag-agent maintenance: give --for DURATION and --reason TEXT, or 'list' / "
                   "'cancel ID'\n";
      return 2;
    }
    return Maintenance(*cfg, action, duration, reason, by, maint_id, maint_json);
  }
  return Run(*cfg);
}
