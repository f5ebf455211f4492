// `setdiag-agent run` (the default): the daemon. It opens the outbox (and
// reports a reset one), starts the uplink with its bundle builder, the
// heartbeat receivers and the watches, and keeps house between signals
// until SIGINT or SIGTERM (docs/architecture.md, "Threads").

#include <signal.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>
#include <vector>

#include "agent/bundle/bundle.h"
#include "agent/bundle/bundle_child.h"
#include "agent/commands/commands.h"
#include "agent/link/uplink.h"
#include "agent/sources/push_receiver.h"
#include "agent/store/detector_state.h"
#include "agent/store/history.h"
#include "agent/store/maintenance.h"
#include "agent/store/outbox.h"
#include "agent/watches/loading_watch.h"
#include "agent/watches/till_watch.h"
#include "common/clock.h"
#include "common/files.h"
#include "common/host_port.h"
#include "common/log.h"
#include "common/signals.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/version.h"

namespace setdiag::agent {
namespace {

std::string ResolveAgentId(const AgentConfig& cfg) {
  if (!cfg.agent_id.empty()) return cfg.agent_id;
  std::string path = cfg.state_dir + "/agent-id";
  if (auto id = ReadWholeFile(path); id.ok() && !id->empty()) {
    std::string s = *id;
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    if (!s.empty()) return s;
  }
  std::string id = Cat("store-", cfg.store_id, "-", RandomHex(6));
  if (absl::Status st = WriteFileAtomically(path, id + "\n", 0640); !st.ok()) {
    log::Warn("agent", Cat("cannot keep agent id: ", st.message()));
  }
  return id;
}

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

// The outbox; one that had to be replaced (damaged, unreadable) is reported
// in the new one as agent.outbox_reset, with what was recovered.
std::unique_ptr<Outbox> OpenOutbox(const AgentConfig& cfg, Clock& clock) {
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
  return outbox;
}

// What the detectors raised survives a restart (state.db, table
// detector_state): restored by the watches, announced in every Hello.
// Without it the agent runs on, and the Hello says nothing about it.
std::shared_ptr<DetectorStateStore> OpenDetectorState(const AgentConfig& cfg) {
  auto ds = DetectorStateStore::Open(cfg.StatePath());
  if (!ds.ok()) {
    log::Error("agent",
               Cat("raised conditions will not survive a restart: ", ds.status().ToString()));
    return nullptr;
  }
  std::shared_ptr<DetectorStateStore> state = std::move(*ds);
  // A watch switched off holds nothing: the collector may resolve it.
  for (auto [enabled, name] :
       {std::pair{cfg.tills_enabled, "tills"}, std::pair{cfg.loading_enabled, "loading"}}) {
    if (enabled) continue;
    for (const std::string& row : {std::string(name), std::string(name) + ".checks"}) {
      if (absl::Status st = state->Forget(row); !st.ok()) log::Warn("agent", st.ToString());
    }
  }
  return state;
}

// Diagnostic bundles the collector asks for, and the flight recorder's:
// each is built by a child process (this binary's `bundle` command), so
// its memory goes back to the OS afterwards and a wedged or crashing step
// cannot touch the watches; in-process only when no child can be started.
BundleBuilder MakeBundleBuilder(const AgentConfig& cfg, Clock& clock, BundleChild& child) {
  return [&cfg, &clock, &child](const BundleBuildRequest& r) -> absl::StatusOr<BuiltBundle> {
    // Cancelled once the agent is stopping: never falls back then.
    bool not_started = false;
    auto child_built = child.Build(r, &not_started);
    if (!not_started) return child_built;
    log::Warn("bundles", Cat("bundle ", r.request_id, ": building in the agent's own process: ",
                             child_built.status().message()));
    auto options = bundle::BundleOptions::FromConfig(cfg);
    if (r.window_ms > 0) options.config.window_ms = r.window_ms;
    options.include_logs = !r.exclude_logs;
    ASSIGN_OR_RETURN(auto built, bundle::BuildBundle(cfg, options, r.out_path, clock));
    return BuiltBundle{
        built.path, built.size, built.sha256,
        built.manifest.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)};
  };
}

UplinkOptions MakeUplinkOptions(const AgentConfig& cfg, const std::string& agent_id,
                                std::shared_ptr<DetectorStateStore> detector_state) {
  UplinkOptions uo;
  uo.target = cfg.collector_address;
  uo.store_id = cfg.store_id;
  uo.agent_id = agent_id;
  uo.token = cfg.token;
  uo.ca_pem = cfg.ca_pem;  // read and checked with the config
  uo.server_name = cfg.server_name;
  uo.backoff = cfg.backoff;
  uo.status_interval_ms = cfg.status_interval_ms;
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
  uo.bundle_dir = cfg.state_dir + "/bundles";
  return uo;
}

void StartPushReceivers(const AgentConfig& cfg, PushReceiver& push) {
  // Both were checked with the config (IPv4 and a port); empty is off.
  const HostPortRules ipv4{.host = HostForm::kIpv4};
  if (auto udp = ParseHostPort(cfg.push_udp_listen, ipv4); udp.ok()) {
    if (absl::Status st = push.StartUdp(udp->host, udp->port); !st.ok())
      log::Error("push", st.ToString());
    else
      log::Info("push", Cat("heartbeats accepted on udp ", udp->host, ":", push.udp_port()));
  }
  if (auto http = ParseHostPort(cfg.push_http_listen, ipv4); http.ok()) {
    if (absl::Status st = push.StartHttp(http->host, http->port); !st.ok())
      log::Error("push", st.ToString());
    else
      log::Info("push", Cat("heartbeats accepted on http://", http->host, ":", push.http_port(),
                            "/v1/heartbeat"));
  }
}

// Findings are also kept locally for bundles; without it the agent runs on.
std::shared_ptr<HistoryStore> OpenHistory(const AgentConfig& cfg) {
  auto h = HistoryStore::Open(cfg.HistoryPath());
  if (h.ok()) return std::move(*h);
  log::Error("history",
             Cat("local history unavailable (bundles will lack it): ", h.status().ToString()));
  return nullptr;
}

// What the watches share.
struct WatchContext {
  const AgentConfig& cfg;
  const std::string& agent_id;
  Outbox& outbox;
  Uplink& uplink;
  Clock& clock;
  std::shared_ptr<HistoryStore> history;
  std::shared_ptr<DetectorStateStore> state;
};

std::unique_ptr<TillWatch> StartTillWatch(const WatchContext& w, HeartbeatBoard& board,
                                          MaintenanceStore* maintenance) {
  TillWatchOptions options = w.cfg.tills;
  options.history = w.history;
  options.state = w.state;
  Uplink& uplink = w.uplink;
  auto tills = std::make_unique<TillWatch>(
      options, w.agent_id, MakeExpectation(w.cfg, maintenance), board, w.outbox,
      [&uplink] { uplink.Wake(); }, w.clock);
  tills->Start();
  log::Info("tills",
            Cat("watching tills: ", w.cfg.tills.set_db ? "SET database" : "configured roster",
                ", heartbeat timeout ", w.cfg.tills.policy.heartbeat_timeout_ms,
                " ms, confirm window ", w.cfg.tills.policy.confirm_ms, " ms"));
  return tills;
}

std::unique_ptr<LoadingWatch> StartLoadingWatch(const WatchContext& w) {
  // Its own connection to the maintenance table: the till watch uses the other.
  auto own = MaintenanceStore::Open(w.cfg.StatePath());
  std::shared_ptr<MaintenanceStore> windows =
      own.ok() ? std::make_shared<MaintenanceStore>(std::move(*own)) : nullptr;
  auto context = [windows, calendar = w.cfg.calendar](int64_t now_ms) {
    LoadingContext c;
    if (windows) {
      auto active = windows->ActiveAt(now_ms);
      c.maintenance = active.ok() && !active->empty();
    }
    c.tills_expected = calendar->IsOpenAt(now_ms);
    return c;
  };
  LoadingWatchOptions options = w.cfg.loading;
  options.history = w.history;
  options.state = w.state;
  Uplink& uplink = w.uplink;
  auto loading = std::make_unique<LoadingWatch>(
      options, w.agent_id, w.outbox, [&uplink] { uplink.Wake(); }, context, w.clock);
  loading->Start();
  log::Info("loading", Cat("watching goods and prices loading: ",
                           w.cfg.loading.set_db ? "SET database" : "no database", ", ",
                           w.cfg.loading.inboxes.size(), " inbox folder(s), ",
                           w.cfg.loading.service_urls.size(), " import service URL(s)"));
  return loading;
}

// Housekeeping on the main thread between signals: every 2 s events the
// disk refused are committed again (and sent at once), once a minute the
// outbox expires old events. Returns at SIGINT or SIGTERM.
void KeepHouseUntilStopped(const sigset_t& signals, Outbox& outbox, Uplink& uplink, Clock& clock) {
  int64_t next_expiry_ms = clock.MonotonicMs() + 60'000;
  while (true) {
    timespec timeout{2, 0};
    int sig = sigtimedwait(&signals, nullptr, &timeout);
    if (sig == SIGINT || sig == SIGTERM) return;
    size_t committed = 0;
    (void)outbox.CommitHeld(&committed);
    if (committed > 0) uplink.Wake();
    if (clock.MonotonicMs() >= next_expiry_ms) {
      next_expiry_ms = clock.MonotonicMs() + 60'000;
      if (absl::Status st = outbox.ExpireOld(); !st.ok()) log::Error("outbox", st.ToString());
    }
  }
}

}  // namespace

int RunAgent(const AgentConfig& cfg) {
  log::Level level;
  log::ParseLevel(cfg.log_level, &level);
  log::SetLevel(level);
  if (absl::Status st = EnsureDir(cfg.state_dir); !st.ok()) log::Error("agent", st.ToString());
  const sigset_t signals = BlockStopSignals();

  SystemClock clock;
  std::unique_ptr<Outbox> outbox = OpenOutbox(cfg, clock);
  const std::string agent_id = ResolveAgentId(cfg);
  std::shared_ptr<DetectorStateStore> detector_state = OpenDetectorState(cfg);
  UplinkOptions uo = MakeUplinkOptions(cfg, agent_id, detector_state);
  // Declared before the uplink, whose bundle thread uses it until Stop().
  BundleChild bundle_child(BundleChildOptions{
      .config_path = cfg.config_path,
      .deadline_ms =
          BundleChild::DefaultDeadlineMs(cfg.bundle.step_timeout_ms, cfg.bundle.logs_timeout_ms),
      .finish_grace_ms = cfg.bundle.stop_grace_ms});
  uo.bundle_builder = MakeBundleBuilder(cfg, clock, bundle_child);
  Uplink uplink(uo, *outbox, clock);
  uplink.Start();

  HeartbeatBoard board;
  PushReceiver push(cfg.store_id, board, clock);
  StartPushReceivers(cfg, push);
  const WatchContext watch{cfg, agent_id, *outbox, uplink, clock, OpenHistory(cfg), detector_state};
  std::optional<MaintenanceStore> maintenance;
  if (auto m = MaintenanceStore::Open(cfg.StatePath()); m.ok()) {
    maintenance = std::move(*m);
  } else {
    log::Error("maintenance", Cat("maintenance windows unavailable: ", m.status().ToString()));
  }
  std::unique_ptr<TillWatch> tills;
  if (cfg.tills_enabled)
    tills = StartTillWatch(watch, board, maintenance ? &*maintenance : nullptr);
  log::Info("agent", Cat("setdiag-agent ", kVersion, " for store ", cfg.store_id, " (agent ",
                         agent_id, ") sending to ", cfg.collector_address,
                         cfg.ca_pem.empty() ? " (plaintext)" : " (TLS)"));
  std::unique_ptr<LoadingWatch> loading;
  if (cfg.loading_enabled) loading = StartLoadingWatch(watch);

  KeepHouseUntilStopped(signals, *outbox, uplink, clock);
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

}  // namespace setdiag::agent
