// `setdiag stores list`: online, last seen, agent version and current
// conditions, paged by store id (docs/api.md).

#include <cstdio>
#include <iostream>

#include "cli/command.h"
#include "common/strings.h"

namespace setdiag::cli {
namespace {

using json = nlohmann::json;

std::string Conditions(const json& s) {
  std::string out;
  auto it = s.find("conditions");
  if (it == s.end() || !it->is_array()) return "-";
  for (const auto& c : *it) {
    if (!out.empty()) out += ", ";
    Append(&out, Str(c, "condition"), " ", Str(c, "priority"), " #", Int(c, "ticket_id"));
    if (!Bool(c, "active")) out += " cleared";
  }
  return out.empty() ? "-" : out;
}

void PrintStoreTable(const json& stores) {
  int64_t now = NowMs();
  Table table(
      {"STORE", "PARTNER", "TARIFF", "ONLINE", "LAST SEEN (MSK)", "AGO", "VERSION", "CONDITIONS"});
  for (const auto& s : stores) {
    int64_t seen = Int(s, "last_seen_ms");
    table.Add({Str(s, "store_id"), Shorten(Str(s, "partner"), 16), Or(Str(s, "tariff"), "-"),
               Bool(s, "online") ? "yes" : "no", FormatMsk(seen, false),
               seen > 0 ? FormatDuration(now - seen) : "-", Or(Str(s, "agent_version"), "-"),
               Conditions(s)});
  }
  table.Print();
  std::fprintf(stderr, "%zu store(s)\n", table.size());
}

class StoreCommands final : public CommandGroup {
 public:
  explicit StoreCommands(CLI::App& app) {
    auto* stores = app.add_subcommand(
        "stores", "Stores: online, last seen, agent version, current conditions");
    stores->require_subcommand(1);
    list_ = stores->add_subcommand("list", "List stores, by store id");
    list_->add_option("--store", store_, "Only this store");
    list_->add_option("--limit", limit_, "At most this many per page (1..1000)")
        ->capture_default_str();
    list_->add_option("--after", after_, "Only stores whose id sorts after this one");
    list_->add_flag("--all", all_, "Fetch every page, not just the first");
  }

  std::optional<int> Run(ApiClient& client, const Output& out) override {
    if (!list_->parsed()) return std::nullopt;
    int rc = kExitOk;
    auto pages = FetchPages(
        client, "stores", limit_, all_, after_,
        [&](const json& cursor) {
          std::string path = Cat("/api/v1/stores?limit=", limit_);
          if (!cursor.get<std::string>().empty())
            Append(&path, "&after=", UrlEncode(cursor.get<std::string>()));
          if (!store_.empty()) Append(&path, "&store=", UrlEncode(store_));
          return path;
        },
        &rc);
    if (!pages) return rc;
    const json& collected = pages->items;
    if (out.json) {
      std::cout << Dump(json{{"stores", collected}}, 2) << "\n";
      return kExitOk;
    }
    PrintStoreTable(collected);
    if (pages->more && !all_) {
      std::fprintf(stderr,
                   out.ru ? "показано магазинов: %zu; дальше: --after %s или --all\n"
                          : "%zu stores shown; more with --after %s or --all\n",
                   collected.size(), pages->next.get<std::string>().c_str());
    }
    return kExitOk;
  }

 private:
  CLI::App* list_ = nullptr;
  std::string store_, after_;
  int64_t limit_ = 100;
  bool all_ = false;
};

}  // namespace

std::unique_ptr<CommandGroup> AddStoreCommands(CLI::App& app) {
  return std::make_unique<StoreCommands>(app);
}

}  // namespace setdiag::cli
