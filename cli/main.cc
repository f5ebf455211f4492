// setdiag: the command line for engineers and support.

#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <iostream>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "cli/api_client.h"
#include "cli/bundles.h"
#include "cli/output.h"
#include "common/config.h"
#include "common/files.h"
#include "common/strings.h"
#include "common/version.h"

namespace setdiag::cli {
namespace {

using json = nlohmann::json;

// Moscow time for people: "2026-11-23 13:30 MSK". Moscow has kept UTC+3 all
// year since 26 October 2014 (no DST), so a fixed offset is exact for every
// instant the collector can hold; it also keeps the CLI free of the time zone
// database (the CLI target does not link Abseil's time library) and of $TZ.
constexpr int64_t kMskOffsetSeconds = 3 * 3600;

std::string FormatMsk(int64_t ms, bool with_zone = true) {
  if (ms <= 0) return "-";
  std::time_t secs = static_cast<std::time_t>(ms / 1000 + kMskOffsetSeconds);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M", &tm);
  return with_zone ? Cat(buf, " MSK") : std::string(buf);
}

// "2 d 3 h", "1 h 20 min", "12 min", "<1 min".
std::string FormatDuration(int64_t ms) {
  int64_t minutes = (ms < 0 ? -ms : ms) / 60'000;
  if (minutes < 1) return "<1 min";
  int64_t d = minutes / 1440, h = minutes % 1440 / 60, m = minutes % 60;
  if (d > 0) return h > 0 ? Cat(d, " d ", h, " h") : Cat(d, " d");
  if (h > 0) return m > 0 ? Cat(h, " h ", m, " min") : Cat(h, " h");
  return Cat(m, " min");
}

// Width on a terminal, counting each UTF-8 code point as one column (true for
// Latin and Cyrillic, which is what tickets carry).
size_t Columns(std::string_view s) {
  size_t n = 0;
  for (char c : s) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  }
  return n;
}

// At most `n` columns; never cuts a UTF-8 sequence.
std::string Shorten(std::string s, size_t n) {
  if (Columns(s) <= n) return s;
  size_t keep = n > 3 ? n - 3 : 0, cols = 0, i = 0;
  for (; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {
      if (cols == keep) break;
      ++cols;
    }
  }
  return s.substr(0, i) + "...";
}

std::string OneLine(std::string s) {
  for (char& c : s) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  return s;
}

// An aligned table: columns separated by two spaces, the last one not
// padded. A cell of the last column may hold several lines; they are
// indented under it. A header of empty cells is not printed.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : rows_{std::move(header)} {}
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  size_t size() const { return rows_.size() - 1; }
  void Print(std::FILE* out = stdout) const {
    std::vector<size_t> width;
    for (const auto& r : rows_) {
      for (size_t i = 0; i < r.size(); ++i) {
        if (width.size() <= i) width.push_back(0);
        if (i + 1 < r.size()) width[i] = std::max(width[i], Columns(r[i]));
      }
    }
    bool skip_header =
        std::all_of(rows_[0].begin(), rows_[0].end(), [](const auto& c) { return c.empty(); });
    for (size_t n = skip_header ? 1 : 0; n < rows_.size(); ++n) {
      const auto& r = rows_[n];
      std::string line;
      size_t indent = 0;
      for (size_t i = 0; i < r.size(); ++i) {
        if (i + 1 < r.size()) {
          line += r[i];
          line.append(width[i] - Columns(r[i]) + 2, ' ');
          indent += width[i] + 2;
          continue;
        }
        std::vector<std::string_view> lines = Split(r[i], '\n', false);
        for (size_t k = 0; k < lines.size(); ++k) {
          if (k > 0) line += "\n" + std::string(indent, ' ');
          line += lines[k];
        }
      }
      while (!line.empty() && line.back() == ' ') line.pop_back();
      std::fprintf(out, "%s\n", line.c_str());
    }
  }

 private:
  std::vector<std::vector<std::string>> rows_;
};

std::string Or(std::string s, const char* fallback) { return s.empty() ? fallback : s; }

// Fetches JSON or explains the failure on stderr. Returns nullopt on error.
std::optional<json> Fetch(ApiClient& client, const std::string& path, int* exit_code) {
  return Parse(client.Get(path), exit_code);
}

// The items of a list endpoint (under `key`), page by page: `path(cursor)`
// for each, the cursor being the previous page's next_after. One page, or
// with `all` every page: a page shorter than `limit` is the last. `more`:
// the server may hold more after what was fetched (`next` is where).
struct Pages {
  json items = json::array();
  json next;
  bool more = false;
};
std::optional<Pages> FetchPages(ApiClient& client, const std::string& key, int64_t limit, bool all,
                                json cursor, const std::function<std::string(const json&)>& path,
                                int* exit_code) {
  Pages p;
  while (true) {
    auto body = Fetch(client, path(cursor), exit_code);
    if (!body) return std::nullopt;
    const json page = (*body)[key];
    for (const auto& item : page) p.items.push_back(item);
    // A collector before 0.1.1 sent every store at once, without next_after.
    p.more = static_cast<int64_t>(page.size()) == limit && body->contains("next_after");
    if (p.more) cursor = (*body)["next_after"];
    p.next = cursor;
    if (!all || !p.more) return p;
  }
}

std::optional<json> PostJson(ApiClient& client, const std::string& path, const json& body,
                             int* exit_code) {
  return Parse(client.Post(path, Dump(body)), exit_code);
}

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

// Russian when the locale says so: the first set of $LC_ALL, $LC_MESSAGES,
// $LANG starting with "ru".

// ---- tickets ----

struct Output {
  bool json = false;
  bool ru = false;
};

std::string Title(const json& t, const Output& out) {
  std::string en = Str(t, "title_en"), ru = Str(t, "title_ru");
  return out.ru ? (ru.empty() ? en : ru) : (en.empty() ? ru : en);
}

// An SLA clock as TicketJson shows it: under "sla" or at the top level.
json SlaClockJson(const json& t, const char* name) {
  if (auto sla = t.find("sla"); sla != t.end() && sla->is_object()) {
    if (auto c = sla->find(name); c != sla->end() && c->is_object()) return *c;
  }
  if (auto c = t.find(name); c != t.end() && c->is_object()) return *c;
  return json::object();
}

// "met 2026-11-23 13:31 MSK", "1 h 20 min left", "BREACHED 35 min ago".
// A clock still running when its ticket was resolved stopped there.
std::string ClockStatus(const json& c, int64_t now_ms, int64_t resolved_ms = 0) {
  int64_t due = Int(c, "due_ms"), met = Int(c, "met_at_ms");
  if (due <= 0) return "-";
  if (met > 0) {
    if (met > due || Bool(c, "breached"))
      return Cat("met ", FormatMsk(met), ", ", FormatDuration(met - due), " late");
    return Cat("met ", FormatMsk(met));
  }
  if (resolved_ms > 0) {
    if (resolved_ms > due || Bool(c, "breached"))
      return Cat("BREACHED; stopped when resolved ", FormatMsk(resolved_ms));
    return Cat("stopped when resolved ", FormatMsk(resolved_ms), " (no response was needed)");
  }
  if (now_ms >= due || Bool(c, "breached"))
    return Cat("BREACHED ", FormatDuration(now_ms - due), " ago");
  return Cat(FormatDuration(due - now_ms), " left", Bool(c, "warned") ? " (warning sent)" : "");
}

constexpr std::pair<const char*, const char*> kClocks[] = {{"registration", "registration"},
                                                           {"first_response", "first response"},
                                                           {"workaround", "workaround"}};

// The clock a person should look at first: the running one due soonest.
std::string NextDue(const json& t, int64_t now_ms) {
  if (Str(t, "state") == "resolved") return "-";
  std::string best = "-";
  int64_t best_due = 0;
  for (const auto& [key, label] : kClocks) {
    json c = SlaClockJson(t, key);
    int64_t due = Int(c, "due_ms");
    if (due <= 0 || Int(c, "met_at_ms") > 0) continue;
    if (best_due == 0 || due < best_due) {
      best_due = due;
      best = Cat(label, ": ", ClockStatus(c, now_ms));
    }
  }
  return best;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void PrintTicketTable(const json& tickets, const Output& out) {
  int64_t now = NowMs();
  Table table(
      {"ID", "STORE", "PRIORITY", "STATE", "CONDITION", "DETECTED (MSK)", "NEXT SLA", "TITLE"});
  for (const auto& t : tickets) {
    std::string condition = Str(t, "condition");
    if (t.contains("condition_active") && !Bool(t, "condition_active")) condition += " (cleared)";
    table.Add({Cat(Int(t, "id")), Shorten(Str(t, "store_id"), 12), Str(t, "priority"),
               Str(t, "state"), Shorten(condition, 32), FormatMsk(Int(t, "detected_at_ms"), false),
               NextDue(t, now), Shorten(OneLine(Title(t, out)), 60)});
  }
  table.Print();
  std::fprintf(stderr, "%zu ticket(s)\n", table.size());
}

void PrintTicketDetails(const json& t, const json& timeline, const json& bundles,
                        const Output& out) {
  int64_t now = NowMs();
  std::string state = Str(t, "state");
  std::printf("Ticket %lld: %s\n", static_cast<long long>(Int(t, "id")),
              OneLine(Title(t, out)).c_str());
  Table fields({"", ""});
  auto add = [&fields](const char* label, const std::string& value) {
    if (!value.empty()) fields.Add({label, value});
  };
  add("Store", Cat(Str(t, "store_id"), " (partner ", Or(Str(t, "partner"), "-"), ", tariff ",
                   Or(Str(t, "tariff"), "-"), ")"));
  add("Condition",
      Cat(Str(t, "condition"), Bool(t, "condition_active") ? " (active)" : " (cleared)"));
  add("Priority", Str(t, "priority"));
  add("State", state);
  std::string en = Str(t, "title_en"), ru = Str(t, "title_ru");
  std::string titles = out.ru ? Cat(ru, "\n", en) : Cat(en, "\n", ru);
  add("Title", std::string(Trim(titles)));
  std::string sen = Str(t, "summary_en"), sru = Str(t, "summary_ru");
  add("Summary", std::string(Trim(out.ru ? Cat(sru, "\n", sen) : Cat(sen, "\n", sru))));
  add("Detected", FormatMsk(Int(t, "detected_at_ms")));
  add("Registered", FormatMsk(Int(t, "registered_at_ms")));
  if (int64_t c = Int(t, "cleared_at_ms"); c > 0) add("Cleared", FormatMsk(c));
  if (int64_t a = Int(t, "acknowledged_at_ms"); a > 0) {
    add("Acknowledged", Cat(FormatMsk(a), " by ", Or(Str(t, "acknowledged_by"), "-")));
  }
  if (int64_t e = Int(t, "error_registered_at_ms"); e > 0)
    add("Error", Cat("registered ", FormatMsk(e)));
  if (int64_t r = Int(t, "resolved_at_ms"); r > 0) {
    add("Resolved", Cat(FormatMsk(r), " by ", Or(Str(t, "resolved_by"), "-")));
    add("Resolution", Str(t, "resolution"));
  }
  if (int64_t n = Int(t, "reopen_count"); n > 0)
    add("Reopened", Cat(n, n == 1 ? " time" : " times"));
  if (t.contains("paged") && !Bool(t, "paged"))
    add("Paged", "no (recorded only or still settling)");
  fields.Print();

  // What people act on: the stopped tills, the stuck package, ... (the
  // collector words it in both languages).
  if (t.contains("evidence") && t["evidence"].is_object()) {
    const json& ev = t["evidence"];
    const char* key = out.ru ? "lines_ru" : "lines_en";
    if (ev.contains(key) && ev[key].is_array() && !ev[key].empty()) {
      std::printf("\n%s\n", out.ru ? "Что известно" : "Evidence");
      for (const auto& line : ev[key]) {
        if (line.is_string()) std::printf("  %s\n", OneLine(line.get<std::string>()).c_str());
      }
    }
  }

  std::printf("\nSLA\n");
  Table clocks({"CLOCK", "DUE", "STATUS"});
  for (const auto& [key, label] : kClocks) {
    json c = SlaClockJson(t, key);
    int64_t due = Int(c, "due_ms");
    std::string status =
        ClockStatus(c, now, Str(t, "state") == "resolved" ? Int(t, "resolved_at_ms") : 0);
    if (due <= 0)
      status = std::string_view(key) == "workaround" ? "not running (no error registered)" : "-";
    clocks.Add({label, due > 0 ? FormatMsk(due) : "-", status});
  }
  clocks.Print();

  std::printf("\nTimeline\n");
  Table lines({"TIME (MSK)", "ACTOR", "TYPE", "TEXT"});
  for (const auto& e : timeline) {
    std::string text = Str(e, "text");
    if (int64_t ev = Int(e, "event_id"); ev > 0)
      text = text.empty() ? Cat("event ", ev) : Cat(text, " (event ", ev, ")");
    lines.Add({FormatMsk(Int(e, "at_ms"), false), Str(e, "actor"), Str(e, "type"), text});
  }
  lines.Print();

  if (bundles.is_array() && !bundles.empty()) {
    std::printf("\nDiagnostic bundles (setdiag bundle get ID)\n");
    Table table({"ID", "ORIGIN", "STATE", "SIZE", "REQUESTED (MSK)", "BY"});
    for (const auto& b : bundles) {
      int64_t size = Int(b, "size");
      table.Add({Str(b, "id"), Str(b, "origin"), Str(b, "state"),
                 size > 0 ? HumanSize(static_cast<uint64_t>(size)) : "-",
                 FormatMsk(Int(b, "created_at_ms"), false), Str(b, "requested_by")});
    }
    table.Print();
  }
}

std::string ReadText(const std::vector<std::string>& words) {
  std::string text;
  if (words.size() == 1 && words[0] == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    return std::string(Trim(text));
  }
  for (const auto& w : words) {
    if (!text.empty()) text += ' ';
    text += w;
  }
  return text;
}

// One line saying what a ticket action did.
std::string ActionDone(const std::string& endpoint, const json& t) {
  std::string id =
      Cat("ticket ", Int(t, "id"), " (store ", Str(t, "store_id"), ", ", Str(t, "priority"), ")");
  if (endpoint == "ack") return Cat(id, " acknowledged by ", Str(t, "acknowledged_by"));
  if (endpoint == "resolve") return Cat(id, " resolved by ", Str(t, "resolved_by"));
  if (endpoint == "error") {
    int64_t due = Int(SlaClockJson(t, "workaround"), "due_ms");
    return Cat("error registered on ", id, due > 0 ? Cat("; workaround due ", FormatMsk(due)) : "");
  }
  if (endpoint == "workaround") return Cat("workaround recorded on ", id);
  return Cat("note added to ", id, "; state ", Str(t, "state"));
}

// ---- stores ----

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

}  // namespace
}  // namespace setdiag::cli

int main(int argc, char** argv) {
  using namespace setdiag::cli;
  using setdiag::Append;
  using setdiag::Cat;
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

  const auto kTicketId = CLI::Range(int64_t{1}, std::numeric_limits<int64_t>::max());
  auto* tickets = app.add_subcommand("tickets", "Support tickets and their SLA clocks");
  tickets->require_subcommand(1);
  auto* tickets_list = tickets->add_subcommand("list", "List tickets, oldest first");
  std::string state = "active", priority, condition;
  tickets_list->add_option("--store", store, "Only this store");
  tickets_list
      ->add_option("--state", state, "active (not resolved), open, acknowledged, resolved or all")
      ->check(CLI::IsMember({"active", "open", "acknowledged", "resolved", "all"}))
      ->capture_default_str();
  tickets_list
      ->add_option("--priority", priority, "Only this priority: normal, important or critical")
      ->check(CLI::IsMember({"normal", "important", "critical"}));
  tickets_list->add_option("--condition", condition, "Only this condition, e.g. tills");
  tickets_list->add_option("--limit", limit, "At most this many per page (1..1000)")
      ->capture_default_str();
  tickets_list->add_option("--after", after, "Only tickets with id greater than this");
  tickets_list->add_flag("--all", all, "Fetch every page, not just the first");

  int64_t ticket_id = 0;
  std::string note;
  std::vector<std::string> words;
  auto* tickets_show = tickets->add_subcommand("show", "A ticket with its SLA clocks and timeline");
  tickets_show->add_option("id", ticket_id, "Ticket id")->required()->check(kTicketId);
  auto* tickets_ack = tickets->add_subcommand("ack", "Acknowledge a ticket (the first response)");
  tickets_ack->add_option("id", ticket_id, "Ticket id")->required()->check(kTicketId);
  tickets_ack->add_option("--note", note, "A note to go with it");
  struct TextAction {
    CLI::App* cmd;
    const char* endpoint;
  };
  std::vector<TextAction> text_actions;
  for (auto [name, endpoint, help] :
       {std::tuple{"note", "notes", "Add a note to a ticket"},
        std::tuple{"error", "error", "Register a software error (starts the workaround clock)"},
        std::tuple{"workaround", "workaround",
                   "Record that a workaround was delivered (stops that clock)"}}) {
    auto* cmd = tickets->add_subcommand(name, help);
    cmd->add_option("id", ticket_id, "Ticket id")->required()->check(kTicketId);
    cmd->add_option("text", words, "The text (several words are joined; '-' reads standard input)")
        ->required();
    text_actions.push_back({cmd, endpoint});
  }
  auto* tickets_resolve = tickets->add_subcommand("resolve", "Resolve a ticket");
  tickets_resolve->add_option("id", ticket_id, "Ticket id")->required()->check(kTicketId);
  tickets_resolve->add_option("--note", note, "The resolution");

  auto* stores =
      app.add_subcommand("stores", "Stores: online, last seen, agent version, current conditions");
  stores->require_subcommand(1);
  auto* stores_list = stores->add_subcommand("list", "List stores, by store id");
  stores_list->add_option("--store", store, "Only this store");
  std::string after_store;
  stores_list->add_option("--limit", limit, "At most this many per page (1..1000)")
      ->capture_default_str();
  stores_list->add_option("--after", after_store, "Only stores whose id sorts after this one");
  stores_list->add_flag("--all", all, "Fetch every page, not just the first");

  auto* bundle =
      app.add_subcommand("bundle", "Diagnostic bundles pulled from stores through the collector");
  bundle->require_subcommand(1);
  PullArgs pull;
  std::string pull_timeout = "10m", bundle_output, bundle_id;
  bool no_wait = false;
  auto* bundle_pull = bundle->add_subcommand(
      "pull",
      "Ask a store for a bundle (sent over its agent's own link; waits for an offline store), "
      "show progress, download and verify it");
  bundle_pull->add_option("--store", pull.store, "Store id")->required();
  bundle_pull->add_option("--ticket", pull.ticket_id, "Attach it to this ticket (of that store)")
      ->check(kTicketId);
  bundle_pull->add_option("-o,--output", pull.output,
                          "Where to save it (default bundle-<store>-<id>.tar.gz)");
  bundle_pull->add_option("--window", pull.window,
                          "How far back logs and history go, e.g. 6h (default: the agent's)");
  bundle_pull->add_flag("--no-logs", pull.no_logs, "Leave the store server's log files out");
  bundle_pull->add_option("--reason", pull.reason, "Why, for the record");
  bundle_pull->add_flag("--no-wait", no_wait, "Print the bundle id and return at once");
  bundle_pull
      ->add_option("--timeout", pull_timeout,
                   "Give up waiting after this long (the request stays open)")
      ->capture_default_str();
  auto* bundle_list = bundle->add_subcommand("list", "List bundles, oldest first");
  int64_t bundle_ticket = 0;
  bundle_list->add_option("--store", store, "Only this store");
  bundle_list->add_option("--ticket", bundle_ticket, "Only bundles attached to this ticket")
      ->check(kTicketId);
  auto* bundle_show = bundle->add_subcommand("show", "A bundle's state and progress");
  bundle_show->add_option("id", bundle_id, "Bundle id")->required();
  auto* bundle_get =
      bundle->add_subcommand("get", "Download a complete bundle and verify its checksum");
  bundle_get->add_option("id", bundle_id, "Bundle id")->required();
  bundle_get->add_option("-o,--output", bundle_output,
                         "Where to save it (default bundle-<store>-<id>.tar.gz)");
  auto* bundle_manifest = bundle->add_subcommand(
      "manifest", "Print a bundle's manifest: what is inside and what is not");
  bundle_manifest->add_option("bundle", bundle_id, "A downloaded .tar.gz, or a bundle id")
      ->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  if (token.empty()) token = DefaultToken();
  ApiClient client(url, token);
  Output out{as_json, lang == "ru"};
  int rc = kExitOk;

  if (events_list->parsed()) {
    auto pages = FetchPages(
        client, "events", limit, all, after,
        [&](const json& cursor) {
          std::string path = Cat("/api/v1/events?limit=", limit, "&after=", cursor.get<int64_t>());
          if (!store.empty()) Append(&path, "&store=", UrlEncode(store));
          if (!kind.empty()) Append(&path, "&kind=", UrlEncode(kind));
          return path;
        },
        &rc);
    if (!pages) return rc;
    const json& collected = pages->items;
    if (as_json) {
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
  if (agents_list->parsed()) {
    std::string path = "/api/v1/agents";
    if (!store.empty()) Append(&path, "?store=", UrlEncode(store));
    auto body = Fetch(client, path, &rc);
    if (!body) return rc;
    if (as_json) {
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
  if (tickets_list->parsed()) {
    auto pages = FetchPages(
        client, "tickets", limit, all, after,
        [&](const json& cursor) {
          std::string path = Cat("/api/v1/tickets?limit=", limit, "&after=", cursor.get<int64_t>());
          if (state != "all") Append(&path, "&state=", UrlEncode(state));
          if (!store.empty()) Append(&path, "&store=", UrlEncode(store));
          if (!priority.empty()) Append(&path, "&priority=", UrlEncode(priority));
          if (!condition.empty()) Append(&path, "&condition=", UrlEncode(condition));
          return path;
        },
        &rc);
    if (!pages) return rc;
    const json& collected = pages->items;
    if (as_json) {
      std::cout << Dump(json{{"tickets", collected}}, 2) << "\n";
      return kExitOk;
    }
    PrintTicketTable(collected, out);
    return kExitOk;
  }
  if (tickets_show->parsed()) {
    auto body = Fetch(client, Cat("/api/v1/tickets/", ticket_id), &rc);
    if (!body) return rc;
    if (as_json) {
      std::cout << Dump(*body, 2) << "\n";
      return kExitOk;
    }
    json bundles = body->contains("bundles") ? (*body)["bundles"] : json::array();
    PrintTicketDetails((*body)["ticket"], (*body)["timeline"], bundles, out);
    return kExitOk;
  }

  // Ticket actions: POST, then the ticket as it is now.
  std::string endpoint;
  json request = json::object();
  if (tickets_ack->parsed() || tickets_resolve->parsed()) {
    endpoint = tickets_ack->parsed() ? "ack" : "resolve";
    if (!note.empty()) request["text"] = note;
  }
  for (const auto& a : text_actions) {
    if (!a.cmd->parsed()) continue;
    endpoint = a.endpoint;
    std::string text = ReadText(words);
    if (text.empty()) {
      std::cerr << "setdiag: the text is empty\n";
      return kExitUsage;
    }
    request["text"] = text;
  }
  if (!endpoint.empty()) {
    auto body = PostJson(client, Cat("/api/v1/tickets/", ticket_id, "/", endpoint), request, &rc);
    if (!body) return rc;
    if (as_json) {
      std::cout << Dump(*body, 2) << "\n";
      return kExitOk;
    }
    std::printf("%s\n", ActionDone(endpoint, (*body)["ticket"]).c_str());
    return kExitOk;
  }

  if (bundle_pull->parsed()) {
    auto ms = setdiag::ConfigReader::ParseDurationMs(pull_timeout);
    if (!ms || *ms <= 0) {
      std::cerr << "setdiag: --timeout needs a duration such as 90s or 10m\n";
      return kExitUsage;
    }
    pull.timeout_ms = *ms;
    pull.wait = !no_wait;
    return BundlePull(client, pull, as_json);
  }
  if (bundle_list->parsed()) return BundleList(client, store, bundle_ticket, as_json);
  if (bundle_show->parsed()) return BundleShow(client, bundle_id, as_json);
  if (bundle_get->parsed()) return BundleGet(client, bundle_id, bundle_output, as_json);
  if (bundle_manifest->parsed()) return BundleManifest(client, bundle_id, as_json);

  if (stores_list->parsed()) {
    auto pages = FetchPages(
        client, "stores", limit, all, after_store,
        [&](const json& cursor) {
          std::string path = Cat("/api/v1/stores?limit=", limit);
          if (!cursor.get<std::string>().empty())
            Append(&path, "&after=", UrlEncode(cursor.get<std::string>()));
          if (!store.empty()) Append(&path, "&store=", UrlEncode(store));
          return path;
        },
        &rc);
    if (!pages) return rc;
    const json& collected = pages->items;
    if (as_json) {
      std::cout << Dump(json{{"stores", collected}}, 2) << "\n";
      return kExitOk;
    }
    PrintStoreTable(collected);
    if (pages->more && !all) {
      std::fprintf(stderr,
                   out.ru ? "показано магазинов: %zu; дальше: --after %s или --all\n"
                          : "%zu stores shown; more with --after %s or --all\n",
                   collected.size(), pages->next.get<std::string>().c_str());
    }
    return kExitOk;
  }
  return kExitOk;
}
