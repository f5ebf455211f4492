#pragma once
// A group of `setdiag` subcommands (events and agents, tickets, stores,
// bundle): Add<Group>Commands declares them and their options on the app;
// after parsing, Run runs the one that was given, or returns nullopt when
// none of this group's was. main.cc parses and dispatches, nothing else.

#include <CLI/CLI.hpp>
#include <memory>
#include <optional>

#include "cli/api_client.h"
#include "cli/output.h"

namespace setdiag::cli {

class CommandGroup {
 public:
  virtual ~CommandGroup() = default;
  // The exit code of the subcommand that was given, or nullopt.
  virtual std::optional<int> Run(ApiClient& client, const Output& out) = 0;
};

// events list, agents list (cli/events.cc).
std::unique_ptr<CommandGroup> AddEventCommands(CLI::App& app);
// tickets list|show|ack|note|error|workaround|resolve (cli/tickets.cc).
std::unique_ptr<CommandGroup> AddTicketCommands(CLI::App& app);
// stores list (cli/stores.cc).
std::unique_ptr<CommandGroup> AddStoreCommands(CLI::App& app);
// bundle pull|list|show|get|manifest (cli/bundles.cc).
std::unique_ptr<CommandGroup> AddBundleCommands(CLI::App& app);

// A ticket id on the command line: 1 and up.
inline const CLI::Range kTicketIdRange{int64_t{1}, std::numeric_limits<int64_t>::max()};

}  // namespace setdiag::cli
