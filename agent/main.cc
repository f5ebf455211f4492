// setdiag-agent: parses the command line and runs the subcommand
// (agent/commands/commands.h): run (the default), emit, status, check,
// maintenance, bundle.

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>

#include "agent/commands/check.h"
#include "agent/commands/commands.h"
#include "agent/config/agent_config.h"
#include "common/clock.h"
#include "common/strings.h"
#include "common/version.h"

namespace setdiag::agent {
namespace {

CLI::App* AddEmitCommand(CLI::App& app, EmitArgs& a) {
  auto* emit = app.add_subcommand("emit", "Record an event in the outbox (for scripts and tests)");
  emit->add_option("--kind", a.kind, "Event kind, e.g. script.heartbeat")->required();
  emit->add_option("--severity", a.severity, "info, normal, important or critical")
      ->capture_default_str();
  emit->add_option("--payload", a.payload, "JSON object")->capture_default_str();
  emit->add_option("--count", a.count, "How many copies")->check(CLI::Range(1, 10'000'000));
  return emit;
}

struct CheckArgs {
  bool json = false;
  std::string lang;
  double timeout_s = 5;
};

CLI::App* AddCheckCommand(CLI::App& app, CheckArgs& a) {
  auto* check = app.add_subcommand(
      "check",
      "Preflight on site: the config and SET's database as the watches read them; changes nothing. "
      "Exit 0 when every check passes, 1 when one fails, 2 for a bad config");
  check->add_flag("--json", a.json, "JSON output for scripts");
  check->add_option("--lang", a.lang, "ru or en (default from $LANG)")
      ->check(CLI::IsMember({"ru", "en"}));
  check
      ->add_option("--timeout", a.timeout_s,
                   "Seconds to wait for the collector's handshake and answer (raise it on a slow "
                   "link)")
      ->check(CLI::Range(0.1, 600.0))
      ->capture_default_str();
  return check;
}

struct MaintenanceCommands {
  CLI::App* maintenance = nullptr;
  CLI::App* list = nullptr;
  CLI::App* cancel = nullptr;
};

MaintenanceCommands AddMaintenanceCommands(CLI::App& app, MaintenanceArgs& a) {
  MaintenanceCommands c;
  c.maintenance = app.add_subcommand(
      "maintenance",
      "Open a maintenance window on site (no till condition meanwhile), or list/cancel them");
  const char* user = std::getenv("SUDO_USER") ? std::getenv("SUDO_USER") : std::getenv("USER");
  a.by = user ? user : "engineer";
  c.maintenance->add_option("--for", a.duration, "How long, e.g. 30m or 2h");
  c.maintenance->add_option("--reason", a.reason, "What is being done (shown to support)");
  c.maintenance->add_option("--by", a.by, "Who opens it")->capture_default_str();
  c.maintenance->add_flag("--json", a.json, "JSON output");
  c.list = c.maintenance->add_subcommand("list", "Active and planned windows");
  c.cancel = c.maintenance->add_subcommand("cancel", "End a window now");
  c.cancel->add_option("id", a.id, "Window number from 'list'")->required();
  return c;
}

CLI::App* AddBundleCommand(CLI::App& app, BundleArgs& a) {
  auto* bundle = app.add_subcommand("bundle",
                                    "Collect a diagnostic bundle (.tar.gz) for support; needs "
                                    "neither the daemon nor the collector");
  bundle->add_option("-o,--output", a.output,
                     "Output file (default ./setdiag-bundle-<store>-<UTC time>.tar.gz)");
  bundle->add_option("--window", a.window,
                     "How far back logs and history reach (default bundle.window, 24h)");
  bundle->add_option("--step-timeout", a.step_timeout,
                     "Timeout of each step (default bundle.step_timeout, 20s)");
  bundle->add_flag("--no-logs", a.no_logs, "Leave out the SET server's logs");
  bundle->add_flag("--json", a.json, "Print the summary as JSON");
  bundle->add_option("--manifest-out", a.manifest_out,
                     "Also write the full manifest.json to FILE (atomically)");
  // Hidden: set by the daemon for the child that builds its bundles.
  bundle->add_option("--parent-pid", a.parent_pid, "Exit when this process does")->group("");
  return bundle;
}

int RunMaintenance(const AgentConfig& cfg, const MaintenanceCommands& c, MaintenanceArgs a) {
  a.action = c.list->parsed() ? "list" : c.cancel->parsed() ? "cancel" : "open";
  if (a.action == "open" && (a.duration.empty() || a.reason.empty())) {
    std::cerr << "setdiag-agent maintenance: give --for DURATION and --reason TEXT, or 'list' / "
                 "'cancel ID'\n";
    return kExitConfig;
  }
  return MaintenanceCommand(cfg, a);
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
  app.add_subcommand("run", "Run the agent until SIGTERM (the default)");
  EmitArgs emit_args;
  CLI::App* emit = AddEmitCommand(app, emit_args);
  CLI::App* status = app.add_subcommand("status", "Print the outbox state as JSON");
  CheckArgs check_args;
  CLI::App* check = AddCheckCommand(app, check_args);
  MaintenanceArgs maintenance_args;
  const MaintenanceCommands maintenance = AddMaintenanceCommands(app, maintenance_args);
  BundleArgs bundle_args;
  CLI::App* bundle = AddBundleCommand(app, bundle_args);
  app.require_subcommand(0, 1);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kExitConfig;
  }
  if (bundle->parsed()) return BundleCommand(config_path, bundle_args);
  auto cfg = LoadAgentConfig(config_path);
  if (!cfg.ok()) {
    std::cerr << "setdiag-agent: bad config: " << cfg.status().message() << "\n";
    return kExitConfig;
  }
  if (emit->parsed()) return EmitCommand(*cfg, emit_args);
  if (status->parsed()) return StatusCommand(*cfg);
  if (check->parsed()) {
    if (check_args.lang.empty()) check_args.lang = setdiag::LanguageFromEnvironment();
    setdiag::SystemClock clock;
    setdiag::agent::CheckOptions options;
    options.collector_timeout_ms = static_cast<int64_t>(check_args.timeout_s * 1000);
    return PrintChecks(RunChecks(*cfg, clock, options), check_args.lang == "ru", check_args.json);
  }
  if (maintenance.maintenance->parsed()) return RunMaintenance(*cfg, maintenance, maintenance_args);
  return RunAgent(*cfg);
}
