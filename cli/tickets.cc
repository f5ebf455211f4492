// `setdiag tickets ...`: the list, one ticket with its SLA clocks and
// timeline, and the actions of support on it (docs/api.md, docs/tickets.md).

#include <cstdio>
#include <iostream>
#include <iterator>
#include <tuple>
#include <vector>

#include "cli/command.h"
#include "common/strings.h"

namespace setdiag::cli {
namespace {

using json = nlohmann::json;

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
                 size > 0 ? HumanBytes(static_cast<uint64_t>(size)) : "-",
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

class TicketCommands final : public CommandGroup {
 public:
  explicit TicketCommands(CLI::App& app) {
    auto* tickets = app.add_subcommand("tickets", "Support tickets and their SLA clocks");
    tickets->require_subcommand(1);
    list_ = tickets->add_subcommand("list", "List tickets, oldest first");
    list_->add_option("--store", store_, "Only this store");
    list_
        ->add_option("--state", state_,
                     "active (not resolved), open, acknowledged, resolved or all")
        ->check(CLI::IsMember({"active", "open", "acknowledged", "resolved", "all"}))
        ->capture_default_str();
    list_->add_option("--priority", priority_, "Only this priority: normal, important or critical")
        ->check(CLI::IsMember({"normal", "important", "critical"}));
    list_->add_option("--condition", condition_, "Only this condition, e.g. tills");
    list_->add_option("--limit", limit_, "At most this many per page (1..1000)")
        ->capture_default_str();
    list_->add_option("--after", after_, "Only tickets with id greater than this");
    list_->add_flag("--all", all_, "Fetch every page, not just the first");

    show_ = tickets->add_subcommand("show", "A ticket with its SLA clocks and timeline");
    show_->add_option("id", ticket_id_, "Ticket id")->required()->check(kTicketIdRange);
    ack_ = tickets->add_subcommand("ack", "Acknowledge a ticket (the first response)");
    ack_->add_option("id", ticket_id_, "Ticket id")->required()->check(kTicketIdRange);
    ack_->add_option("--note", note_, "A note to go with it");
    for (auto [name, endpoint, help] :
         {std::tuple{"note", "notes", "Add a note to a ticket"},
          std::tuple{"error", "error", "Register a software error (starts the workaround clock)"},
          std::tuple{"workaround", "workaround",
                     "Record that a workaround was delivered (stops that clock)"}}) {
      auto* cmd = tickets->add_subcommand(name, help);
      cmd->add_option("id", ticket_id_, "Ticket id")->required()->check(kTicketIdRange);
      cmd->add_option("text", words_,
                      "The text (several words are joined; '-' reads standard input)")
          ->required();
      text_actions_.push_back({cmd, endpoint});
    }
    resolve_ = tickets->add_subcommand("resolve", "Resolve a ticket");
    resolve_->add_option("id", ticket_id_, "Ticket id")->required()->check(kTicketIdRange);
    resolve_->add_option("--note", note_, "The resolution");
  }

  std::optional<int> Run(ApiClient& client, const Output& out) override {
    if (list_->parsed()) return List(client, out);
    if (show_->parsed()) return Show(client, out);
    return Act(client, out);
  }

 private:
  int List(ApiClient& client, const Output& out) {
    int rc = kExitOk;
    auto pages = FetchPages(
        client, "tickets", limit_, all_, after_,
        [&](const json& cursor) {
          std::string path =
              Cat("/api/v1/tickets?limit=", limit_, "&after=", cursor.get<int64_t>());
          if (state_ != "all") Append(&path, "&state=", UrlEncode(state_));
          if (!store_.empty()) Append(&path, "&store=", UrlEncode(store_));
          if (!priority_.empty()) Append(&path, "&priority=", UrlEncode(priority_));
          if (!condition_.empty()) Append(&path, "&condition=", UrlEncode(condition_));
          return path;
        },
        &rc);
    if (!pages) return rc;
    if (out.json) {
      std::cout << Dump(json{{"tickets", pages->items}}, 2) << "\n";
      return kExitOk;
    }
    PrintTicketTable(pages->items, out);
    return kExitOk;
  }

  int Show(ApiClient& client, const Output& out) {
    int rc = kExitOk;
    auto body = Fetch(client, Cat("/api/v1/tickets/", ticket_id_), &rc);
    if (!body) return rc;
    if (out.json) {
      std::cout << Dump(*body, 2) << "\n";
      return kExitOk;
    }
    json bundles = body->contains("bundles") ? (*body)["bundles"] : json::array();
    PrintTicketDetails((*body)["ticket"], (*body)["timeline"], bundles, out);
    return kExitOk;
  }

  // Ticket actions: POST, then the ticket as it is now.
  std::optional<int> Act(ApiClient& client, const Output& out) {
    std::string endpoint;
    json request = json::object();
    if (ack_->parsed() || resolve_->parsed()) {
      endpoint = ack_->parsed() ? "ack" : "resolve";
      if (!note_.empty()) request["text"] = note_;
    }
    for (const auto& a : text_actions_) {
      if (!a.cmd->parsed()) continue;
      endpoint = a.endpoint;
      std::string text = ReadText(words_);
      if (text.empty()) {
        std::cerr << "setdiag: the text is empty\n";
        return kExitUsage;
      }
      request["text"] = text;
    }
    if (endpoint.empty()) return std::nullopt;
    int rc = kExitOk;
    auto body = PostJson(client, Cat("/api/v1/tickets/", ticket_id_, "/", endpoint), request, &rc);
    if (!body) return rc;
    if (out.json) {
      std::cout << Dump(*body, 2) << "\n";
      return kExitOk;
    }
    std::printf("%s\n", ActionDone(endpoint, (*body)["ticket"]).c_str());
    return kExitOk;
  }

  struct TextAction {
    CLI::App* cmd;
    const char* endpoint;
  };
  CLI::App* list_ = nullptr;
  CLI::App* show_ = nullptr;
  CLI::App* ack_ = nullptr;
  CLI::App* resolve_ = nullptr;
  std::vector<TextAction> text_actions_;
  std::string store_, state_ = "active", priority_, condition_, note_;
  std::vector<std::string> words_;
  int64_t limit_ = 100, after_ = 0, ticket_id_ = 0;
  bool all_ = false;
};

}  // namespace

std::unique_ptr<CommandGroup> AddTicketCommands(CLI::App& app) {
  return std::make_unique<TicketCommands>(app);
}

}  // namespace setdiag::cli
