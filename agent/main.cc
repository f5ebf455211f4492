// setdiag-agent: the composition root of the store agent.

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/strings.h"
#include "agent/agent_config.h"
#include "agent/outbox.h"
#include "agent/uplink.h"
#include "common/clock.h"
#include "common/files.h"
#include "common/log.h"
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
    auto seq = outbox->Append(
        {kOutboxResetKind, Severity::kImportant, clock.NowMs(), payload.dump()});
    if (!seq.ok()) log::Error("agent", seq.status().ToString());
  }

  std::string ca_pem;
  if (!cfg.ca_file.empty()) {
    auto pem = ReadWholeFile(cfg.ca_file);
    if (!pem.ok()) {
      std::cerr << "setdiag-agent: collector.ca_file: " << pem.status().message() << "\n";
      return kExitConfig;
    }
    ca_pem = *pem;
  }
  UplinkOptions uo;
  uo.target = cfg.collector_address;
  uo.store_id = cfg.store_id;
  uo.agent_id = ResolveAgentId(cfg);
  uo.token = cfg.token;
  uo.ca_pem = ca_pem;
  uo.server_name = cfg.server_name;
  uo.backoff = cfg.backoff;
  uo.status_interval_ms = cfg.status_interval_ms;
  Uplink uplink(uo, *outbox, clock);
  uplink.Start();
  log::Info("agent", Cat("setdiag-agent ", kVersion, " for store ", cfg.store_id,
                                  " (agent ", uo.agent_id, ") sending to ", cfg.collector_address,
                                  ca_pem.empty() ? " (plaintext)" : " (TLS)"));

  // Housekeeping on the main thread between signals.
  while (true) {
    timespec timeout{60, 0};
    int sig = sigtimedwait(&signals, nullptr, &timeout);
    if (sig == SIGINT || sig == SIGTERM) break;
    if (auto st = outbox->ExpireOld(); !st.ok()) log::Error("outbox", st.ToString());
  }
  log::Info("agent", "stopping");
  uplink.Stop();
  return 0;
}

int Emit(const AgentConfig& cfg, const std::string& kind, const std::string& severity_text,
         const std::string& payload, int count) {
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

int Status(const AgentConfig& cfg) {
  SystemClock clock;
  auto outbox = Outbox::OpenWithoutRepair(cfg.OutboxPath(), cfg.outbox, clock);
  if (!outbox.ok()) {
    std::cerr << "setdiag-agent status: cannot open the outbox: " << outbox.status().message() << "\n";
    return 1;
  }
  OutboxStats s = (*outbox)->Stats();
  nlohmann::json out = {
      {"store_id", cfg.store_id},
      {"outbox", cfg.OutboxPath()},
      {"depth", s.depth},
      {"bytes", s.bytes},
      {"oldest_unsent_age_s", s.oldest_enqueued_ms ? (clock.NowMs() - s.oldest_enqueued_ms) / 1000 : 0},
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
  CLI::App app{"setdiag-agent: watches a SET Retail 10 store server and streams diagnostics to the "
               "setdiag collector.\nWithout a subcommand it runs the agent (same as 'run')."};
  app.set_version_flag("--version", std::string("setdiag-agent ") + setdiag::kVersion);
  std::string config_path = "/etc/setdiag/agent.toml";
  app.add_option("-c,--config", config_path, "Configuration file (TOML)")->capture_default_str();

  auto* run = app.add_subcommand("run", "Run the agent until SIGTERM (the default)");
  auto* emit = app.add_subcommand("emit", "Record an event in the outbox (for scripts and tests)");
  std::string kind, severity = "normal", payload = "{}";
  int count = 1;
  emit->add_option("--kind", kind, "Event kind, e.g. script.heartbeat")->required();
  emit->add_option("--severity", severity, "info, normal, important or critical")->capture_default_str();
  emit->add_option("--payload", payload, "JSON object")->capture_default_str();
  emit->add_option("--count", count, "How many copies")->check(CLI::Range(1, 10'000'000));
  auto* status = app.add_subcommand("status", "Print the outbox state as JSON");
  app.require_subcommand(0, 1);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  (void)run;
  auto cfg = LoadOrExplain(config_path);
  if (!cfg.ok()) return 2;
  if (emit->parsed()) return Emit(*cfg, kind, severity, payload, count);
  if (status->parsed()) return Status(*cfg);
  return Run(*cfg);
}
