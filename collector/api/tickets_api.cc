// GET /api/v1/tickets, GET /api/v1/tickets/{id} and the actions on a ticket,
// POST /api/v1/tickets/{id}/{ack,notes,error,workaround,resolve}
// (docs/api.md).

#include "collector/api/handlers.h"
#include "common/log.h"
#include "common/strings.h"
#include "common/utf8.h"

namespace setdiag::collector::api {
namespace {

using json = nlohmann::json;

// The body of a POST on a ticket: {} or {"text": "..."}. An empty body counts
// as {} so that `curl -X POST` works for actions whose text is optional.
bool ParseActionBody(const std::string& body, bool text_required, std::string* text,
                     std::string* err) {
  text->clear();
  if (Trim(body).empty()) {
    if (!text_required) return true;
    *err = R"(missing field 'text': send a JSON object like {"text": "..."})";
    return false;
  }
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    *err = R"(request body must be a JSON object like {"text": "..."})";
    return false;
  }
  for (const auto& [key, value] : j.items()) {
    if (key != "text") {
      *err = Cat("unknown field '", key, "' in the request body (only 'text' is accepted)");
      return false;
    }
  }
  if (!j.contains("text") || j["text"].is_null()) {
    if (!text_required) return true;
    *err = R"(missing field 'text': send a JSON object like {"text": "..."})";
    return false;
  }
  if (!j["text"].is_string()) {
    *err = "field 'text' must be a string";
    return false;
  }
  *text = std::string(Trim(j["text"].get_ref<const std::string&>()));
  if (text_required && text->empty()) {
    *err = "field 'text' must not be empty";
    return false;
  }
  if (size_t n = Utf8Length(*text); n > kMaxTextChars) {
    *err = Cat("field 'text' is ", n, " characters long; at most ", kMaxTextChars, " are accepted");
    return false;
  }
  return true;
}

struct ActionRoute {
  const char* segment;
  TicketAction action;
  bool text_required;
};
constexpr ActionRoute kActionRoutes[] = {
    {"ack", TicketAction::kAcknowledge, false},    {"notes", TicketAction::kNote, true},
    {"error", TicketAction::kRegisterError, true}, {"workaround", TicketAction::kWorkaround, true},
    {"resolve", TicketAction::kResolve, false},
};

const ActionRoute* FindActionRoute(std::string_view segment) {
  for (const auto& a : kActionRoutes) {
    if (segment == a.segment) return &a;
  }
  return nullptr;
}

}  // namespace

HttpResponse ListTicketsHandler(const Request& r) {
  TicketQuery q;
  std::string err;
  q.store_id = r.Query("store");
  q.state = r.Query("state");
  q.priority = r.Query("priority");
  q.condition = r.Query("condition");
  if (q.state == "all") q.state.clear();
  if (!q.state.empty() && q.state != "active" && !ParseTicketState(q.state)) {
    return Error(400, Cat("query parameter 'state' must be one of open, acknowledged, resolved, "
                          "active, all; not '",
                          q.state, "'"));
  }
  if (!q.priority.empty() && q.priority != "normal" && q.priority != "important" &&
      q.priority != "critical") {
    return Error(400,
                 Cat("query parameter 'priority' must be one of normal, important, critical; not '",
                     q.priority, "'"));
  }
  if (!q.condition.empty() && !CheckIdentifier("condition", q.condition, &err))
    return Error(400, err);
  if (!ParseInt(r.target.query, "after", 0, 0, INT64_MAX, &q.after_id, &err) ||
      !ParseInt(r.target.query, "limit", 100, 1, 1'000, &q.limit, &err)) {
    return Error(400, err);
  }
  if (auto bad = CheckStoreParam(r, q.store_id)) return *bad;
  auto rows = ListTickets(r.db, r.who, q);
  if (!rows.ok()) return StorageError(rows.status());
  json tickets = json::array();
  for (const auto& tk : *rows) tickets.push_back(TicketJson(tk));
  json out = {{"tickets", tickets}, {"next_after", rows->empty() ? q.after_id : rows->back().id}};
  return Answer(200, out);
}

HttpResponse GetTicketHandler(const Request& r) {
  const std::string raw = r.Param(1);
  auto id = ParseTicketId(raw);
  if (!id) return BadTicketId(raw);
  auto ticket = GetTicket(r.db, r.who, *id);
  if (!ticket.ok()) return StorageError(ticket.status());
  if (!*ticket) return NoTicket(*id);
  auto timeline = GetTimeline(r.db, *id);
  if (!timeline.ok()) return StorageError(timeline.status());
  json entries = json::array();
  for (const auto& e : *timeline) entries.push_back(TimelineJson(e));
  json out = {{"ticket", TicketJson(**ticket)}, {"timeline", entries}};
  if (r.hooks.bundles.request || r.hooks.bundles.file_path) {  // a collector that keeps bundles
    BundleQuery bq;
    bq.ticket_id = *id;
    bq.limit = 1000;
    auto attached = ListBundles(r.db, r.who, bq);
    if (!attached.ok()) return StorageError(attached.status());
    json bundles = json::array();
    for (const auto& b : *attached) bundles.push_back(BundleJson(b, r.LiveBytes(b)));
    out["bundles"] = bundles;
  }
  return Answer(200, out);
}

HttpResponse TicketActionHandler(const Request& r) {
  const ActionRoute* route = FindActionRoute(r.path.at(2));
  if (route == nullptr) {  // the route table lists only the actions above
    return Error(404, Cat("no endpoint ", r.http.method, " ", r.target.path));
  }
  const std::string raw = r.Param(1);
  auto id = ParseTicketId(raw);
  if (!id) return BadTicketId(raw);
  ActionRequest req;
  req.ticket_id = *id;
  req.action = route->action;
  std::string err;
  if (!ParseActionBody(r.http.body, route->text_required, &req.text, &err)) return Error(400, err);
  if (!r.hooks.act)
    return Error(503, "this collector does not accept ticket changes (the API is read-only)");
  // The action waits for the writer thread; reads need not wait for it.
  auto ticket = r.hooks.act(r.who, req);
  if (!ticket.ok()) {
    const absl::Status& st = ticket.status();
    std::string msg(st.message());
    switch (st.code()) {
      case absl::StatusCode::kNotFound:
        // The same words whether the ticket is absent or another partner's.
        return NoTicket(*id);
      case absl::StatusCode::kFailedPrecondition:
        return Error(409, msg);
      case absl::StatusCode::kInvalidArgument:
        return Error(400, msg);
      default:
        log::Warn("admin-api",
                  Cat(r.http.method, " ", r.target.path, " by ", r.who.name, ": ", st.ToString()));
        return Error(503, Cat("the change was not recorded (", msg, "); try again"));
    }
  }
  return Answer(200, json{{"ticket", TicketJson(*ticket)}});
}

}  // namespace setdiag::collector::api
