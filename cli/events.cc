// `setdiag events list` and `setdiag agents list` (docs/api.md).

#include <cstdio>
#include <iostream>

#include "cli/command.h"
#include "common/strings.h"

namespace setdiag::cli {
namespace {

using json = nlohmann::json;

class EventCommands final : public CommandGroup {
 public:
  explicit EventCommands(CLI::App& app) {
    auto* events = app.add_subcommand("events", "Events the agents sent");
    events->require_subcommand(1);
    events_list_ = events->add_subcommand("list", "List events, oldest first");
    events_list_->add_option("--store", store_, "Only this store");
    events_list_->add_option("--kind", kind_, "Only this kind");
    events_list_->add_option("--limit", limit_, "At most this many (1..10000)")
        ->capture_default_str();
    events_list_->add_option("--after", after_, "Only events with id greater than this");
    events_list_->add_flag("--all", all_, "Fetch every page, not just the first");

    auto* agents = app.add_subcommand("agents", "Store agents and when they were last seen");
    agents->require_subcommand(1);
    agents_list_ = agents->add_subcommand("list", "List agents");
    agents_list_->add_option("--store", store_, "Only this store");
  }

  std::optional<int> Run(ApiClient& client, const Output& out) override {
    if (events_list_->parsed()) return ListEvents(client, out);
    if (agents_list_->parsed()) return ListAgents(client, out);
    return std::nullopt;
  }

 private:
  int ListEvents(ApiClient& client, const Output& out) {
    int rc = kExitOk;
    auto pages = FetchPages(
        client, "events", limit_, all_, after_,
        [&](const json& cursor) {
          std::string path = Cat("/api/v1/events?limit=", limit_, "&after=", cursor.get<int64_t>());
          if (!store_.empty()) Append(&path, "&store=", UrlEncode(store_));
          if (!kind_.empty()) Append(&path, "&kind=", UrlEncode(kind_));
          return path;
        },
        &rc);
    if (!pages) return rc;
    const json& collected = pages->items;
    if (out.json) {
      std::cout << Dump(json{{"events", collected}}, 2) << "\n";
      return kExitOk;
    }
    std::printf("%-8s %-8s %-22s %-8s %-10s %-28s %-21s %s\n", "ID", "STORE", "AGENT", "SEQ",
                "SEVERITY", "KIND", "DETECTED (UTC)", "PAYLOAD");
    for (const auto& e : collected) {
      std::printf("%-8lld %-8s %-22s %-8llu %-10s %-28s %-21s %s\n",
                  static_cast<long long>(e["id"].get<int64_t>()),
                  Shorten(e["store_id"].get<std::string>(), 8).c_str(),
                  Shorten(e["agent_id"].get<std::string>(), 22).c_str(),
                  static_cast<unsigned long long>(e["sequence"].get<uint64_t>()),
                  e["severity"].get<std::string>().c_str(),
                  Shorten(e["kind"].get<std::string>(), 28).c_str(),
                  FormatUtc(e["detected_at_ms"].get<int64_t>()).c_str(),
                  Shorten(Dump(e["payload"]), 60).c_str());
    }
    std::fprintf(stderr, "%zu event(s)\n", collected.size());
    return kExitOk;
  }

  int ListAgents(ApiClient& client, const Output& out) {
    int rc = kExitOk;
    std::string path = "/api/v1/agents";
    if (!store_.empty()) Append(&path, "?store=", UrlEncode(store_));
    auto body = Fetch(client, path, &rc);
    if (!body) return rc;
    if (out.json) {
      std::cout << Dump(*body, 2) << "\n";
      return kExitOk;
    }
    std::printf("%-8s %-24s %-12s %-8s %-10s %-21s %-7s %-12s %s\n", "STORE", "AGENT", "PARTNER",
                "VERSION", "ONLINE", "LAST SEEN (UTC)", "OUTBOX", "OLDEST UNSENT", "GAPS");
    for (const auto& a : (*body)["agents"]) {
      const auto& st = a["status"];
      std::printf("%-8s %-24s %-12s %-8s %-10s %-21s %-7s %-12s %s\n",
                  Shorten(a["store_id"].get<std::string>(), 8).c_str(),
                  Shorten(a["agent_id"].get<std::string>(), 24).c_str(),
                  Shorten(a["partner"].get<std::string>(), 12).c_str(),
                  a["version"].get<std::string>().c_str(),
                  a["connected"].get<bool>() ? "yes" : "no",
                  FormatUtc(a["last_seen_ms"].get<int64_t>()).c_str(),
                  st.contains("outbox_depth") ? st["outbox_depth"].dump().c_str() : "-",
                  st.contains("oldest_unsent_age_s")
                      ? Cat(st["oldest_unsent_age_s"].get<int64_t>(), " s").c_str()
                      : "-",
                  st.contains("gaps_total") ? st["gaps_total"].dump().c_str() : "-");
    }
    return kExitOk;
  }

  CLI::App* events_list_ = nullptr;
  CLI::App* agents_list_ = nullptr;
  std::string store_, kind_;
  int64_t limit_ = 100, after_ = 0;
  bool all_ = false;
};

}  // namespace

std::unique_ptr<CommandGroup> AddEventCommands(CLI::App& app) {
  return std::make_unique<EventCommands>(app);
}

}  // namespace setdiag::cli
