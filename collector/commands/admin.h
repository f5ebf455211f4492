#pragma once
// The collector's admin subcommands, run on the support machine by the
// people who operate it (docs/install.en.md, docs/api.md):
//   token  create|revoke|list   store tokens agents authenticate with
//   user   create|list|revoke|delete   people who use the admin API and CLI
//   partner set|list            partners and their support tariff
// Each opens collector.db directly (the collector may be running: SQLite
// locking) and prints for a person; secrets are printed once, on stdout,
// and never stored but as hashes. Exit codes: 0 done, 1 failed (or found
// nothing to revoke), 2 a usage error, before the database is touched.

#include <CLI/CLI.hpp>
#include <string>

#include "collector/config/collector_config.h"

namespace setdiag::collector {

// What the admin subcommands were given.
struct AdminArgs {
  std::string store, partner, token_id;
  std::string name, role = "support", user_id;
  std::string tariff;
};

// The subcommands, to ask which was parsed.
struct AdminCommands {
  CLI::App* token = nullptr;
  CLI::App* token_create = nullptr;
  CLI::App* token_revoke = nullptr;
  CLI::App* token_list = nullptr;
  CLI::App* user = nullptr;
  CLI::App* user_create = nullptr;
  CLI::Option* user_partner = nullptr;  // --partner of user create
  CLI::App* user_list = nullptr;
  CLI::App* user_revoke = nullptr;
  CLI::App* user_delete = nullptr;
  CLI::App* partner = nullptr;
  CLI::App* partner_set = nullptr;
  CLI::App* partner_list = nullptr;

  // Whether one of them was given (then the collector does not serve).
  bool Parsed() const;
};

// Adds token, user and partner to `app`, writing their options into `args`
// (which must outlive the parse).
AdminCommands AddAdminCommands(CLI::App& app, AdminArgs& args);

// Runs the parsed admin command against the config's database.
int RunAdminCommand(const AdminCommands& commands, const AdminArgs& args,
                    const CollectorConfig& cfg);

}  // namespace setdiag::collector
