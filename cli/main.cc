// setdiag: the command line for engineers and support.

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/strings.h"
#include "cli/api_client.h"
#include "common/files.h"
#include "common/version.h"

namespace setdiag::cli {
namespace {

using json = nlohmann::json;

std::string FormatTime(int64_t ms) {
  if (ms <= 0) return "-";
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%SZ", &tm);
  return buf;
}

std::string Shorten(std::string s, size_t n) {
  if (s.size() > n) s = s.substr(0, n - 3) + "...";
  return s;
}

// Fetches JSON or explains the failure on stderr. Returns nullopt on error.
std::optional<json> Fetch(ApiClient& client, const std::string& path, int* exit_code) {
  auto res = client.Get(path);
  if (!res.ok()) {
    std::cerr << "setdiag: " << res.status().message() << "\n";
    *exit_code = 1;
    return std::nullopt;
  }
  auto body = json::parse(res->body, nullptr, false);
  if (res->status != 200) {
    std::string msg = body.is_object() && body.contains("error") ? body["error"].get<std::string>() : res->body;
    std::cerr << "setdiag: the collector answered " << res->status << ": " << msg << "\n";
    *exit_code = res->status == 401 || res->status == 403 ? 3 : 1;
    return std::nullopt;
  }
  if (body.is_discarded()) {
    std::cerr << "setdiag: the collector sent something that is not JSON\n";
    *exit_code = 1;
    return std::nullopt;
  }
  return body;
}

std::string DefaultToken() {
  if (const char* t = std::getenv("SETDIAG_TOKEN")) return t;
  if (const char* home = std::getenv("HOME")) {
    if (auto t = ReadWholeFile(Cat(home, "/.config/setdiag/token")); t.ok()) {
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
  using setdiag::Append;
  using setdiag::Cat;
  CLI::App app{"setdiag: the command line of the setdiag store diagnostics system.\n"
               "Talks to the collector's admin API; the token comes from --token, $SETDIAG_TOKEN\n"
               "or ~/.config/setdiag/token (create one with 'setdiag-collector user create')."};
  app.set_version_flag("--version", std::string("setdiag ") + setdiag::kVersion);
  const char* env_url = std::getenv("SETDIAG_COLLECTOR");
  std::string url = env_url ? env_url : "http://127.0.0.1:8088";
  std::string token;
  bool as_json = false;
  app.add_option("--collector", url, "Collector admin API URL ($SETDIAG_COLLECTOR)")->capture_default_str();
  app.add_option("--token", token, "API token (default $SETDIAG_TOKEN or ~/.config/setdiag/token)");
  app.add_flag("--json", as_json, "Print JSON for scripts instead of a table");
  app.require_subcommand(1);

  auto* events = app.add_subcommand("events", "Events the agents sent");
  events->require_subcommand(1);
  auto* events_list = events->add_subcommand("list", "List events, oldest first");
  std::string store, kind;
  int64_t limit = 100, after = 0;
  events_list->add_option("--store", store, "Only this store");
  events_list->add_option("--kind", kind, "Only this kind");
  events_list->add_option("--limit", limit, "At most this many (1..10000)")->capture_default_str();
  events_list->add_option("--after", after, "Only events with id greater than this");
  bool all = false;
  events_list->add_flag("--all", all, "Fetch every page, not just the first");

  auto* agents = app.add_subcommand("agents", "Store agents and when they were last seen");
  agents->require_subcommand(1);
  auto* agents_list = agents->add_subcommand("list", "List agents");
  agents_list->add_option("--store", store, "Only this store");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (token.empty()) token = DefaultToken();
  ApiClient client(url, token);
  int rc = 0;

  if (events_list->parsed()) {
    json collected = json::array();
    int64_t cursor = after;
    while (true) {
      std::string path = Cat("/api/v1/events?limit=", limit, "&after=", cursor);
      if (!store.empty()) Append(&path, "&store=", UrlEncode(store));
      if (!kind.empty()) Append(&path, "&kind=", UrlEncode(kind));
      auto body = Fetch(client, path, &rc);
      if (!body) return rc;
      for (auto& e : (*body)["events"]) collected.push_back(e);
      if (!all || (*body)["events"].empty()) break;
      cursor = (*body)["next_after"].get<int64_t>();
    }
    if (as_json) {
      std::cout << json{{"events", collected}}.dump(2) << "\n";
      return 0;
    }
    std::printf("%-8s %-8s %-22s %-8s %-10s %-28s %-21s %s\n", "ID", "STORE", "AGENT", "SEQ", "SEVERITY",
                "KIND", "DETECTED (UTC)", "PAYLOAD");
    for (const auto& e : collected) {
      std::printf("%-8lld %-8s %-22s %-8llu %-10s %-28s %-21s %s\n",
                  static_cast<long long>(e["id"].get<int64_t>()),
                  Shorten(e["store_id"].get<std::string>(), 8).c_str(),
                  Shorten(e["agent_id"].get<std::string>(), 22).c_str(),
                  static_cast<unsigned long long>(e["sequence"].get<uint64_t>()),
                  e["severity"].get<std::string>().c_str(), Shorten(e["kind"].get<std::string>(), 28).c_str(),
                  FormatTime(e["detected_at_ms"].get<int64_t>()).c_str(),
                  Shorten(e["payload"].dump(), 60).c_str());
    }
    std::fprintf(stderr, "%zu event(s)\n", collected.size());
    return 0;
  }
  if (agents_list->parsed()) {
    std::string path = "/api/v1/agents";
    if (!store.empty()) Append(&path, "?store=", UrlEncode(store));
    auto body = Fetch(client, path, &rc);
    if (!body) return rc;
    if (as_json) {
      std::cout << body->dump(2) << "\n";
      return 0;
    }
    std::printf("%-8s %-24s %-12s %-8s %-10s %-21s %-7s %-12s %s\n", "STORE", "AGENT", "PARTNER", "VERSION",
                "ONLINE", "LAST SEEN (UTC)", "OUTBOX", "OLDEST UNSENT", "GAPS");
    for (const auto& a : (*body)["agents"]) {
      const auto& st = a["status"];
      std::printf("%-8s %-24s %-12s %-8s %-10s %-21s %-7s %-12s %s\n",
                  Shorten(a["store_id"].get<std::string>(), 8).c_str(),
                  Shorten(a["agent_id"].get<std::string>(), 24).c_str(),
                  Shorten(a["partner"].get<std::string>(), 12).c_str(), a["version"].get<std::string>().c_str(),
                  a["connected"].get<bool>() ? "yes" : "no", FormatTime(a["last_seen_ms"].get<int64_t>()).c_str(),
                  st.contains("outbox_depth") ? st["outbox_depth"].dump().c_str() : "-",
                  st.contains("oldest_unsent_age_s") ? Cat(st["oldest_unsent_age_s"].get<int64_t>(), " s").c_str() : "-",
                  st.contains("gaps_total") ? st["gaps_total"].dump().c_str() : "-");
    }
    return 0;
  }
  return 0;
}
