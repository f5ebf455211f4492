// setdiag: the command line for engineers and support. Parses the global
// options, reads the API token and runs the subcommand (cli/command.h).

#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "cli/api_client.h"
#include "cli/command.h"
#include "cli/output.h"
#include "common/files.h"
#include "common/strings.h"
#include "common/version.h"

namespace setdiag::cli {
namespace {

// The API token is a secret: a token file that group or others may read or
// write gets a warning naming the fix (the CLI still uses it: refusing would
// lock a person out of their own tool, the agent refuses instead).
void WarnIfOpenToOthers(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0 || (st.st_mode & (S_IRWXG | S_IRWXO)) == 0) return;
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
  std::cerr << "setdiag: warning: the API token file " << path
            << " is open to group or others (mode " << mode
            << "); the token is a secret: chmod 600 " << path << "\n";
}

std::string DefaultToken() {
  if (const char* t = std::getenv("SETDIAG_TOKEN")) return t;
  if (const char* home = std::getenv("HOME")) {
    const std::string path = Cat(home, "/.config/setdiag/token");
    if (auto t = ReadWholeFile(path); t.ok()) {
      WarnIfOpenToOthers(path);
      std::string s = *t;
      while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
      return s;
    }
  }
  return {};
}

}  // namespace
}  // namespace setdiag::cli

int main(int argc, char** argv) {
  using namespace setdiag::cli;
  CLI::App app{
      "setdiag: the command line of the setdiag store diagnostics system.\n"
      "Talks to the collector's admin API; the token comes from --token, $SETDIAG_TOKEN\n"
      "or ~/.config/setdiag/token (create one with 'setdiag-collector user create').\n"
      "Exit codes: 0 ok, 1 error, 2 usage, 3 auth (401/403), 4 not found (404)."};
  app.set_version_flag("--version", std::string("setdiag ") + setdiag::kVersion);
  // Global options may also follow the subcommand ("setdiag tickets list
  // --json"): subcommands inherit this and pass unknown options upwards.
  app.fallthrough();
  const char* env_url = std::getenv("SETDIAG_COLLECTOR");
  std::string url = env_url ? env_url : "http://127.0.0.1:8088";
  std::string token;
  bool as_json = false;
  std::string lang = setdiag::LanguageFromEnvironment();
  app.add_option("--collector", url, "Collector admin API URL ($SETDIAG_COLLECTOR)")
      ->capture_default_str();
  app.add_option("--token", token, "API token (default $SETDIAG_TOKEN or ~/.config/setdiag/token)");
  app.add_flag("--json", as_json, "Print JSON for scripts instead of a table");
  app.add_option("--lang", lang, "Language of ticket titles and summaries (default from $LANG)")
      ->check(CLI::IsMember({"ru", "en"}))
      ->capture_default_str();
  app.require_subcommand(1);
  std::vector<std::unique_ptr<CommandGroup>> groups;
  groups.push_back(AddEventCommands(app));
  groups.push_back(AddTicketCommands(app));
  groups.push_back(AddStoreCommands(app));
  groups.push_back(AddBundleCommands(app));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  if (token.empty()) token = DefaultToken();
  ApiClient client(url, token);
  const Output out{as_json, lang == "ru"};
  for (const auto& group : groups) {
    if (std::optional<int> rc = group->Run(client, out)) return *rc;
  }
  return kExitOk;
}
