// The queue: active tickets ordered by the time left on their next SLA
// deadline, with filters kept in the URL, a flat and a by-store view, bulk
// actions, and rows the script refreshes when the live stream says a
// ticket changed.

#include <algorithm>
#include <map>
#include <set>

#include "collector/console/pages.h"
#include "collector/console/sla_view.h"
#include "common/strings.h"
#include "common/url.h"

namespace setdiag::collector::console {

using json = nlohmann::json;

namespace {

struct Filters {
  std::string state = "active", priority, partner, condition, store, risk, view = "flat";
  std::string query;  // the request's own query string, "" or "?..."
};

Filters ReadFilters(const HttpRequest& http) {
  Filters f;
  const RequestTarget t = ParseRequestTarget(http.target);
  auto get = [&](const char* key, std::string* out, std::initializer_list<const char*> allowed) {
    auto it = t.query.find(key);
    if (it == t.query.end() || it->second.empty()) return;
    if (allowed.size() == 0) {
      *out = it->second;
      return;
    }
    for (const char* a : allowed)
      if (it->second == a) *out = a;
  };
  get("state", &f.state, {"active", "open", "acknowledged"});
  get("priority", &f.priority, {"critical", "important", "normal"});
  get("partner", &f.partner, {});
  get("condition", &f.condition, {});
  get("store", &f.store, {});
  get("risk", &f.risk, {"at_risk", "breached"});
  get("view", &f.view, {"flat", "stores"});
  const auto q = http.target.find('?');
  if (q != std::string::npos) f.query = http.target.substr(q);
  return f;
}

json Options(bool ru, const std::vector<std::pair<std::string, std::string>>& values,
             const std::string& selected) {
  json out = json::array();
  for (const auto& [value, key] : values)
    out.push_back({{"value", value}, {"label", Text(ru, key)}, {"selected", value == selected}});
  return out;
}

json ClockCell(bool ru, const ClockView* c) {
  if (c == nullptr) return {{"present", false}};
  const bool running = c->met_at_ms == 0;
  std::string text = !running ? Text(ru, "met")
                     : c->remaining_ms < 0
                         ? Cat(Text(ru, "overdue"), " ", FormatSpan(c->remaining_ms, ru))
                         : FormatSpan(c->remaining_ms, ru);
  return {{"present", true},
          {"state", c->state},
          {"remaining_ms", std::to_string(c->remaining_ms)},
          {"paused", c->paused},
          {"paused_attr", c->paused ? "true" : "false"},
          {"running", running},
          {"running_attr", running ? "true" : "false"},
          {"text", text},
          {"due_label", Cat(Text(ru, "due"), " ", When(c->due_ms))}};
}

struct Row {
  json data;
  int64_t next = 0;
  int priority = 0;
  int64_t id = 0;
  std::string store, partner;
};

Row MakeRow(const Ctx& ctx, const json& t, const std::vector<ClockView>& clocks) {
  Row r;
  r.id = t.value("id", int64_t{0});
  r.store = t.value("store_id", "");
  r.partner = t.value("partner", "");
  const std::string prio = t.value("priority", "normal");
  r.priority = prio == "critical" ? 3 : prio == "important" ? 2 : 1;
  // The order is by the wall-clock deadline (what breaches first), not by
  // the time left, which is business time for a business-hours clock.
  r.next = NextDueMs(clocks);
  bool breached = false, warning = false;
  for (const ClockView& c : clocks) {
    if (c.met_at_ms != 0) continue;
    breached |= c.state == "breached";
    warning |= c.state == "warning";
  }
  json cells = json::array();
  for (const char* name : {"registration", "first_response", "workaround"}) {
    const ClockView* found = nullptr;
    for (const ClockView& c : clocks)
      if (c.name == name) found = &c;
    cells.push_back(ClockCell(ctx.ru, found));
  }
  r.data = {{"id", r.id},
            {"url", Cat("/console/tickets/", r.id)},
            {"store_id", r.store},
            {"store_url", Cat("/console/stores/", UrlEncode(r.store))},
            {"priority", prio},
            {"priority_label", PriorityLabel(ctx.ru, prio)},
            {"condition", t.value("condition", "")},
            {"title", t.value(ctx.ru ? "title_ru" : "title_en", "")},
            {"summary", t.value(ctx.ru ? "summary_ru" : "summary_en", "")},
            {"state", t.value("state", "")},
            {"state_label", StateLabel(ctx.ru, t.value("state", ""))},
            {"condition_active", t.value("condition_active", true)},
            {"select_label", Cat(Text(ctx.ru, "select_ticket"), " #", r.id)},
            {"row_class", breached  ? "breached"
                          : warning ? "warning"
                                    : ""},
            {"breached", breached},
            {"at_risk", breached || warning},
            {"clocks", cells}};
  return r;
}

// Every active ticket the filters ask the API for (it pages by id).
ApiResult FetchTickets(const Backend& b, const Ctx& ctx, const Filters& f, json* tickets) {
  int64_t after = 0;
  for (int page = 0; page < 20; ++page) {
    std::string target = Cat("/api/v1/tickets?limit=1000&state=", f.state, "&after=", after);
    if (!f.priority.empty()) Append(&target, "&priority=", f.priority);
    if (!f.condition.empty()) Append(&target, "&condition=", UrlEncode(f.condition));
    if (!f.store.empty()) Append(&target, "&store=", UrlEncode(f.store));
    ApiResult r = b.Get(ctx, target);
    if (!r.ok()) return r;
    const json& list = r.body["tickets"];
    if (list.empty()) return r;
    for (const auto& t : list) tickets->push_back(t);
    after = r.body.value("next_after", after);
  }
  return ApiResult{200, {}, ""};
}

}  // namespace

HttpResponse QueuePage(const Backend& b, const Ctx& ctx, bool rows_only, const std::string& notice,
                       const std::string& error) {
  const Filters f = ReadFilters(ctx.http);
  json tickets = json::array();
  ApiResult fetched = FetchTickets(b, ctx, f, &tickets);
  std::string problem = error;
  if (!fetched.ok()) {
    if (fetched.status == 503) return ApiErrorPage(ctx, fetched);
    problem = fetched.error;  // e.g. a malformed or invisible store: said above the table
  }
  const int64_t now = b.clock.NowMs();
  std::vector<Row> rows;
  std::set<std::string> partners, conditions;
  for (const auto& t : tickets) {
    partners.insert(t.value("partner", ""));
    conditions.insert(t.value("condition", ""));
    if (!f.partner.empty() && t.value("partner", "") != f.partner) continue;
    Row r = MakeRow(ctx, t, ClockViews(t, b.policy, b.business, now));
    if (f.risk == "breached" && !r.data["breached"].get<bool>()) continue;
    if (f.risk == "at_risk" && !r.data["at_risk"].get<bool>()) continue;
    rows.push_back(std::move(r));
  }
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& c) {
    if (a.next != c.next) return a.next < c.next;
    if (a.priority != c.priority) return a.priority > c.priority;
    return a.id < c.id;
  });
  json groups = json::array();
  if (f.view == "stores") {
    std::map<std::string, size_t> at;
    for (const Row& r : rows) {
      auto [it, fresh] = at.emplace(r.store, groups.size());
      if (fresh)
        groups.push_back({{"grouped", true},
                          {"store_id", r.store},
                          {"store_url", r.data["store_url"]},
                          {"partner", r.partner},
                          {"rows", json::array()}});
      groups[it->second]["rows"].push_back(r.data);
    }
    for (auto& g : groups) g["count"] = g["rows"].size();
  } else {
    json all = json::array();
    for (const Row& r : rows) all.push_back(r.data);
    groups.push_back({{"grouped", false}, {"rows", all}});
  }
  const json rows_data = {{"t", Texts(ctx.ru)}, {"groups", groups}, {"any", !rows.empty()}};
  std::string rows_html = RenderTemplate("queue_rows", rows_data);
  if (rows_only) {
    HttpResponse res = Html(200, std::move(rows_html));
    res.headers.emplace_back("X-Ticket-Count", std::to_string(rows.size()));
    return res;
  }
  if (!f.partner.empty()) partners.insert(f.partner);
  json partner_list = Options(ctx.ru, {{"", "any"}}, f.partner);
  for (const std::string& p : partners)
    if (!p.empty())
      partner_list.push_back({{"value", p}, {"label", p}, {"selected", p == f.partner}});
  if (!f.condition.empty()) conditions.insert(f.condition);
  json condition_list = Options(ctx.ru, {{"", "any"}}, f.condition);
  for (const std::string& c : conditions)
    if (!c.empty())
      condition_list.push_back({{"value", c}, {"label", c}, {"selected", c == f.condition}});
  json d = {
      {"t", Texts(ctx.ru)},
      {"count", std::to_string(rows.size())},
      {"csrf", ctx.session.csrf},
      {"back", Cat("/console/queue", f.query)},
      {"rows_url", Cat("/console/queue/rows", f.query)},
      {"rows_html", rows_html},
      {"store", f.store},
      {"error", problem},
      {"notice", notice},
      {"show_partner", ctx.who.role == Role::kSupport},
      {"states",
       Options(ctx.ru,
               {{"active", "active"}, {"open", "open"}, {"acknowledged", "acknowledged_state"}},
               f.state)},
      {"priorities", Options(ctx.ru,
                             {{"", "any"},
                              {"critical", "critical"},
                              {"important", "important"},
                              {"normal", "normal"}},
                             f.priority)},
      {"partners", partner_list},
      {"conditions", condition_list},
      {"risks",
       Options(ctx.ru, {{"", "any"}, {"at_risk", "at_risk"}, {"breached", "breached"}}, f.risk)},
      {"views", Options(ctx.ru, {{"flat", "view_flat"}, {"stores", "view_stores"}}, f.view)}};
  return Page(ctx, Text(ctx.ru, "queue_title"), "queue", RenderTemplate("queue", d));
}

HttpResponse BulkAction(const Backend& b, const Ctx& ctx, const Form& form) {
  std::string action = FormValue(form, "action");
  if (action != "ack" && action != "notes" && action != "resolve")
    return ErrorPage(ctx, 400, Cat("unknown action '", action, "'"));
  const std::string text(Trim(FormValue(form, "text")));
  std::string done, failed;
  int count = 0;
  for (const auto& [key, value] : form) {
    if (key != "id") continue;
    ++count;
    json body = json::object();
    if (!text.empty()) body["text"] = text;
    ApiResult r = b.Post(ctx, Cat("/api/v1/tickets/", UrlEncode(value), "/", action), body);
    if (r.ok())
      Append(&done, done.empty() ? "" : ", ", "#", value);
    else
      Append(&failed, failed.empty() ? "" : "; ", "#", value, ": ", r.error);
  }
  std::string notice = count == 0 ? Text(ctx.ru, "bulk_none") : "";
  if (!done.empty()) notice = Cat(Text(ctx.ru, "bulk_done"), " ", done);
  std::string error = failed.empty() ? "" : Cat(Text(ctx.ru, "bulk_failed"), " ", failed);
  // The queue again, as it was filtered, with what happened.
  const std::string back = SafeBack(FormValue(form, "back"));
  HttpRequest again = ctx.http;
  again.method = "GET";
  again.target = back.starts_with("/console/queue") ? back : "/console/queue";
  Ctx page{again, ctx.who, ctx.session, ctx.session_id, ctx.ru};
  return QueuePage(b, page, false, notice, error);
}

}  // namespace setdiag::collector::console
