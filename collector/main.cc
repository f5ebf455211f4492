// setdiag-collector: parses the command line and runs the subcommand
// (collector/commands/): serve (the default), check, token, user, partner.

#include <CLI/CLI.hpp>
#include <iostream>

#include "collector/commands/admin.h"
#include "collector/commands/check.h"
#include "collector/commands/serve.h"
#include "collector/config/collector_config.h"
#include "common/clock.h"
#include "common/strings.h"
#include "common/version.h"

namespace setdiag::collector {
namespace {

struct CheckArgs {
  bool json = false, send_test = false;
  std::string lang;
};

CLI::App* AddCheckCommand(CLI::App& app, CheckArgs& a) {
  auto* check = app.add_subcommand("check",
                                   "Preflight of the support side: the config, the listening "
                                   "addresses, the TLS certificate, the "
                                   "production calendars, the database and every notification "
                                   "target; without --send-test it sends "
                                   "nothing and changes nothing. Exit 0 when every check passes, 1 "
                                   "when one fails, 2 for a bad config");
  check->add_flag("--json", a.json, "JSON output for scripts");
  check->add_option("--lang", a.lang, "ru or en (default from $LANG)")
      ->check(CLI::IsMember({"ru", "en"}));
  check->add_flag(
      "--send-test", a.send_test,
      "Also send one test notification (marked TEST) to each webhook and e-mail target");
  return check;
}

int RunCheck(const std::string& config_path, CheckArgs a) {
  if (a.lang.empty()) a.lang = LanguageFromEnvironment();
  CheckOptions options;
  options.send_test = a.send_test;
  options.source_calendar_dir = SETDIAG_SOURCE_CALENDAR_DIR;
  SystemClock clock;
  return RunCheckCommand(config_path, options, a.lang == "ru", a.json, clock);
}

}  // namespace
}  // namespace setdiag::collector

int main(int argc, char** argv) {
  using namespace setdiag;
  using namespace setdiag::collector;
  CLI::App app{
      "setdiag-collector: receives diagnostics from setdiag agents in SET Retail 10 stores.\n"
      "Without a subcommand it serves (same as 'serve')."};
  app.set_version_flag("--version", std::string("setdiag-collector ") + kVersion);
  // Options may follow the subcommand ("token list --config FILE"):
  // subcommands inherit this and pass unknown options upwards.
  app.fallthrough();
  std::string config_path = "/etc/setdiag/collector.toml";
  app.add_option("-c,--config", config_path, "Configuration file (TOML)")->capture_default_str();
  app.add_subcommand("serve", "Accept agents and serve the admin API (the default)");
  AdminArgs admin_args;
  const AdminCommands admin = AddAdminCommands(app, admin_args);
  CheckArgs check_args;
  CLI::App* check = AddCheckCommand(app, check_args);
  app.require_subcommand(0, 1);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }

  if (check->parsed()) return RunCheck(config_path, check_args);
  // Serving reads the TLS files with the config, so that a wrong one is a
  // config error; the admin commands do not need them.
  const bool serving = !admin.Parsed();
  auto cfg = LoadCollectorConfig(config_path, /*read_tls_files=*/serving);
  if (!cfg.ok()) {
    std::cerr << "setdiag-collector: bad config: " << cfg.status().message() << "\n";
    return 2;
  }
  if (serving) return Serve(*cfg);
  return RunAdminCommand(admin, admin_args, *cfg);
}
