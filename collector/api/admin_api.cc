#include "collector/api/admin_api.h"

#include <algorithm>
#include <charconv>
#include <ctime>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <utility>
#include <vector>

#include "collector/bundles/bundle_store.h"
#include "collector/store/storage.h"
#include "collector/tickets/tickets.h"
#include "common/config.h"
#include "common/log.h"
#include "common/strings.h"

namespace setdiag::collector {
namespace {

using json = nlohmann::json;

// Messages may quote what the client sent; replace invalid UTF-8 rather than
// throw.
// Stored text comes from agents and people; a stray invalid UTF-8 byte is
// replaced, never a reason for a 500.
HttpResponse Answer(int status, const json& body) {
  return {status, body.dump(-1, ' ', false, json::error_handler_t::replace)};
}

HttpResponse Error(int status, std::string_view message) {
  return Answer(status, json{{"error", message}});
}

HttpResponse StorageError(const absl::Status& st) {
  log::Warn("admin-api", Cat("database read failed: ", st.ToString()));
  return Error(503, "storage unavailable");
}

std::string UrlDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size()) {
      int v = 0;
      auto [p, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
      if (ec == std::errc() && p == s.data() + i + 3) {
        out += static_cast<char>(v);
        i += 2;
      } else {
        out += s[i];
      }
    } else {
      out += s[i];
    }
  }
  return out;
}

struct Target {
  std::string path;
  std::map<std::string, std::string> query;
};

Target ParseTarget(std::string_view target) {
  Target t;
  auto q = target.find('?');
  t.path = std::string(target.substr(0, q));
  if (q != std::string_view::npos) {
    for (std::string_view kv : Split(target.substr(q + 1), '&')) {
      auto eq = kv.find('=');
      t.query[UrlDecode(kv.substr(0, eq))] =
          eq == std::string_view::npos ? "" : UrlDecode(kv.substr(eq + 1));
    }
  }
  return t;
}

bool ParseInt(const std::map<std::string, std::string>& q, const char* key, int64_t def,
              int64_t min, int64_t max, int64_t* out, std::string* err) {
  auto it = q.find(key);
  if (it == q.end() || it->second.empty()) {
    *out = def;
    return true;
  }
  int64_t v = 0;
  auto [p, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), v);
  if (ec != std::errc() || p != it->second.data() + it->second.size() || v < min || v > max) {
    *err = Cat("query parameter '", key, "' must be an integer from ", min, " to ", max);
    return false;
  }
  *out = v;
  return true;
}

// A ticket id in a path: a positive decimal integer that fits int64.
std::optional<int64_t> ParseTicketId(std::string_view s) {
  if (s.empty() || s.front() < '0' || s.front() > '9') return std::nullopt;
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v <= 0) return std::nullopt;
  return v;
}

HttpResponse BadTicketId(std::string_view s) {
  return Error(400, Cat("ticket id '", s, "' must be a positive integer"));
}

HttpResponse NoTicket(int64_t id) { return Error(404, Cat("no ticket ", id, " visible to you")); }
HttpResponse NoStore(std::string_view id) {
  return Error(404, Cat("no store ", id, " visible to you"));
}

bool CheckIdentifier(std::string_view what, std::string_view value, std::string* err) {
  if (IsValidIdentifier(value)) return true;
  *err = Cat(what, " '", value, "' is not valid: use 1 to 128 characters of A-Z a-z 0-9 . _ -");
  return false;
}

json PayloadJson(const std::string& payload) {
  auto j = json::parse(payload, nullptr, false);
  return j.is_discarded() ? json(payload) : j;
}

size_t CodePoints(std::string_view s) {
  size_t n = 0;
  for (char c : s) {
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  }
  return n;
}

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
  if (size_t n = CodePoints(*text); n > AdminApi::kMaxTextChars) {
    *err = Cat("field 'text' is ", n, " characters long; at most ", AdminApi::kMaxTextChars,
               " are accepted");
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
  for (const auto& r : kActionRoutes) {
    if (segment == r.segment) return &r;
  }
  return nullptr;
}

json StoreJson(const StoreRow& s, int64_t now_ms) {
  json conditions = json::array();
  for (const auto& t : s.open_tickets) {
    conditions.push_back({{"condition", t.condition},
                          {"priority", PriorityName(t.priority)},
                          {"ticket_id", t.id},
                          {"state", TicketStateName(t.state)},
                          {"active", t.condition_active},
                          {"title_en", t.title_en},
                          {"title_ru", t.title_ru},
                          {"detected_at_ms", t.detected_at_ms},
                          {"detected_at", t.detected_at_ms > 0 ? IsoUtc(t.detected_at_ms) : ""}});
  }
  json out = {{"store_id", s.store_id},
              {"partner", s.partner},
              {"tariff", s.tariff},
              {"online", s.online},
              {"last_seen_ms", s.last_seen_ms},
              {"last_seen", s.last_seen_ms > 0 ? IsoUtc(s.last_seen_ms) : ""},
              {"agent_version", s.agent_version},
              {"agents", s.agent_ids},
              {"conditions", conditions}};
  if (s.last_seen_ms > 0) out["seconds_since_seen"] = (now_ms - s.last_seen_ms) / 1000;
  return out;
}

// The body of a bundle request: {} or {"ticket_id": 42, "window": "24h",
// "exclude_logs": false, "reason": "..."}; empty counts as {}.
bool ParseBundleBody(const std::string& body, NewBundleRequest* req, std::string* err) {
  if (Trim(body).empty()) return true;
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    *err = R"(request body must be a JSON object like {"ticket_id": 42, "window": "24h"})";
    return false;
  }
  for (const auto& [key, value] : j.items()) {
    if (key == "ticket_id") {
      if (value.is_null()) continue;
      if (!value.is_number_integer() || value.get<int64_t>() <= 0) {
        *err = "field 'ticket_id' must be a positive integer";
        return false;
      }
      req->ticket_id = value.get<int64_t>();
    } else if (key == "window") {
      if (value.is_null()) continue;
      auto ms = value.is_string() ? ConfigReader::ParseDurationMs(value.get<std::string>())
                                  : std::nullopt;
      if (!ms || *ms < 60'000 || *ms > 31LL * 24 * 3'600'000) {
        *err = "field 'window' must be a duration from 1m to 31d, like \"24h\"";
        return false;
      }
      req->window_ms = *ms;
    } else if (key == "exclude_logs") {
      if (!value.is_boolean()) {
        *err = "field 'exclude_logs' must be true or false";
        return false;
      }
      req->exclude_logs = value.get<bool>();
    } else if (key == "reason") {
      if (!value.is_string() || CodePoints(value.get_ref<const std::string&>()) > 500) {
        *err = "field 'reason' must be a string of at most 500 characters";
        return false;
      }
      req->reason = std::string(Trim(value.get_ref<const std::string&>()));
    } else {
      *err = Cat("unknown field '", key,
                 "' in the request body (ticket_id, window, exclude_logs, reason)");
      return false;
    }
  }
  return true;
}

HttpResponse MethodNotAllowed(std::string_view method, std::string_view path,
                              std::string_view allowed) {
  return Error(405, Cat("method ", method, " is not allowed on ", path, " (use ", allowed, ")"));
}

}  // namespace

AdminApi::AdminApi(sql::Db read_db, Clock& clock, ActFn act) : clock_(clock), act_(std::move(act)) {
  idle_.push_back(std::make_unique<sql::Db>(std::move(read_db)));
}

void AdminApi::set_reader_pool(OpenReader open, size_t max_readers) {
  std::lock_guard lock(readers_mu_);
  open_reader_ = std::move(open);
  max_readers_ = std::max<size_t>(1, max_readers);
}

absl::StatusOr<AdminApi::Reader> AdminApi::Acquire() {
  std::unique_lock lock(readers_mu_);
  for (;;) {
    if (!idle_.empty()) {
      sql::Db* db = idle_.back().release();
      idle_.pop_back();
      return Reader(db, ReturnReader{this});
    }
    if (open_reader_ && readers_open_ < max_readers_) break;
    readers_free_.wait(lock);
  }
  ++readers_open_;
  OpenReader open = open_reader_;
  lock.unlock();
  auto db = open();
  if (!db.ok()) {
    lock.lock();
    --readers_open_;
    readers_free_.notify_one();
    return db.status();
  }
  return Reader(new sql::Db(std::move(*db)), ReturnReader{this});
}

void AdminApi::Release(sql::Db* db) {
  std::lock_guard lock(readers_mu_);
  idle_.emplace_back(db);
  readers_free_.notify_one();
}

std::optional<HttpResponse> AdminApi::HandleInline(const HttpRequest& request) {
  if (ParseTarget(request.target).path == "/healthz")
    return HttpResponse{200, R"({"status":"ok"})"};
  return std::nullopt;
}

HttpResponse AdminApi::Handle(const HttpRequest& request) {
  if (auto quick = HandleInline(request)) return *quick;
  Target t = ParseTarget(request.target);
  constexpr std::string_view kPrefix = "/api/v1/";
  if (!t.path.starts_with(kPrefix)) return Error(404, "no such endpoint");

  auto reader = Acquire();
  if (!reader.ok()) return StorageError(reader.status());
  sql::Db& db = **reader;  // this request's own read connection
  constexpr std::string_view kBearer = "Bearer ";
  if (!std::string_view(request.authorization).starts_with(kBearer)) {
    return Error(401,
                 "missing 'Authorization: Bearer <token>' (create one with 'setdiag-collector user "
                 "create')");
  }
  auto user = LookupUser(db, std::string_view(request.authorization).substr(kBearer.size()));
  if (!user.ok()) return StorageError(user.status());
  if (!*user) return Error(401, "unknown or revoked token");
  const User who = **user;
  auto LiveBytes = [this](const BundleRow& b) -> std::optional<uint64_t> {
    if (b.state != "transferring" || !bundles_.live_bytes) return std::nullopt;
    return bundles_.live_bytes(b.id);
  };

  std::vector<std::string_view> seg =
      Split(std::string_view(t.path).substr(kPrefix.size()), '/', false);
  const std::string& method = request.method;
  std::string err;
  for (std::string_view s : seg) {
    if (s.empty()) return Error(404, Cat("no endpoint ", method, " ", t.path));
  }

  // Checks `store=` of a list: malformed is 400; one the user may not see
  // (for a partner also one that does not exist) is 404.
  auto check_store_param = [&](const std::string& store) -> std::optional<HttpResponse> {
    if (store.empty()) return std::nullopt;
    if (!CheckIdentifier("store", store, &err)) return Error(400, err);
    auto may = UserMaySeeStore(db, who, store);
    if (!may.ok()) return StorageError(may.status());
    if (!*may) return NoStore(store);
    return std::nullopt;
  };

  // ---- GET /api/v1/events ----
  if (seg.size() == 1 && seg[0] == "events") {
    if (method != "GET") return MethodNotAllowed(method, t.path, "GET");
    EventQuery q;
    q.store_id = t.query["store"];
    q.kind = t.query["kind"];
    if (!ParseInt(t.query, "after", 0, 0, INT64_MAX, &q.after_id, &err) ||
        !ParseInt(t.query, "limit", 100, 1, 10'000, &q.limit, &err)) {
      return Error(400, err);
    }
    if (auto bad = check_store_param(q.store_id)) return *bad;
    auto rows = ListEvents(db, who, q);
    if (!rows.ok()) return StorageError(rows.status());
    json events = json::array();
    for (const auto& r : *rows) {
      events.push_back({{"id", r.id},
                        {"store_id", r.store_id},
                        {"agent_id", r.agent_id},
                        {"sequence", r.sequence},
                        {"kind", r.kind},
                        {"severity", SeverityText(r.severity)},
                        {"detected_at_ms", r.detected_at_ms},
                        {"received_at_ms", r.received_at_ms},
                        {"payload", PayloadJson(r.payload)}});
    }
    json out = {{"events", events}, {"next_after", rows->empty() ? q.after_id : rows->back().id}};
    return Answer(200, out);
  }

  // ---- GET /api/v1/agents ----
  if (seg.size() == 1 && seg[0] == "agents") {
    if (method != "GET") return MethodNotAllowed(method, t.path, "GET");
    std::string store = t.query["store"];
    if (auto bad = check_store_param(store)) return *bad;
    auto rows = ListAgents(db, who, store);
    if (!rows.ok()) return StorageError(rows.status());
    json agents = json::array();
    int64_t now = clock_.NowMs();
    for (const auto& r : *rows) {
      agents.push_back({{"agent_id", r.agent_id},
                        {"store_id", r.store_id},
                        {"partner", r.partner},
                        {"version", r.version},
                        {"connected", r.connected},
                        {"first_seen_ms", r.first_seen_ms},
                        {"last_seen_ms", r.last_seen_ms},
                        {"seconds_since_seen", (now - r.last_seen_ms) / 1000},
                        {"last_committed_sequence", r.last_committed_seq},
                        {"status", PayloadJson(r.status_json)}});
    }
    return Answer(200, json{{"agents", agents}});
  }

  // ---- GET /api/v1/tickets ----
  if (seg.size() == 1 && seg[0] == "tickets") {
    if (method != "GET") return MethodNotAllowed(method, t.path, "GET");
    TicketQuery q;
    q.store_id = t.query["store"];
    q.state = t.query["state"];
    q.priority = t.query["priority"];
    q.condition = t.query["condition"];
    if (q.state == "all") q.state.clear();
    if (!q.state.empty() && q.state != "active" && !ParseTicketState(q.state)) {
      return Error(400, Cat("query parameter 'state' must be one of open, acknowledged, resolved, "
                            "active, all; not '",
                            q.state, "'"));
    }
    if (!q.priority.empty() && q.priority != "normal" && q.priority != "important" &&
        q.priority != "critical") {
      return Error(
          400, Cat("query parameter 'priority' must be one of normal, important, critical; not '",
                   q.priority, "'"));
    }
    if (!q.condition.empty() && !CheckIdentifier("condition", q.condition, &err))
      return Error(400, err);
    if (!ParseInt(t.query, "after", 0, 0, INT64_MAX, &q.after_id, &err) ||
        !ParseInt(t.query, "limit", 100, 1, 1'000, &q.limit, &err)) {
      return Error(400, err);
    }
    if (auto bad = check_store_param(q.store_id)) return *bad;
    auto rows = ListTickets(db, who, q);
    if (!rows.ok()) return StorageError(rows.status());
    json tickets = json::array();
    for (const auto& tk : *rows) tickets.push_back(TicketJson(tk));
    json out = {{"tickets", tickets}, {"next_after", rows->empty() ? q.after_id : rows->back().id}};
    return Answer(200, out);
  }

  // ---- GET /api/v1/tickets/{id} ----
  if (seg.size() == 2 && seg[0] == "tickets") {
    if (method != "GET") return MethodNotAllowed(method, t.path, "GET");
    std::string raw = UrlDecode(seg[1]);
    auto id = ParseTicketId(raw);
    if (!id) return BadTicketId(raw);
    auto ticket = GetTicket(db, who, *id);
    if (!ticket.ok()) return StorageError(ticket.status());
    if (!*ticket) return NoTicket(*id);
    auto timeline = GetTimeline(db, *id);
    if (!timeline.ok()) return StorageError(timeline.status());
    json entries = json::array();
    for (const auto& e : *timeline) entries.push_back(TimelineJson(e));
    json out = {{"ticket", TicketJson(**ticket)}, {"timeline", entries}};
    if (bundles_.request || bundles_.file_path) {  // a collector that keeps bundles
      BundleQuery bq;
      bq.ticket_id = *id;
      bq.limit = 1000;
      auto attached = ListBundles(db, who, bq);
      if (!attached.ok()) return StorageError(attached.status());
      json bundles = json::array();
      for (const auto& b : *attached) bundles.push_back(BundleJson(b, LiveBytes(b)));
      out["bundles"] = bundles;
    }
    return Answer(200, out);
  }

  // ---- POST /api/v1/tickets/{id}/{ack,notes,error,workaround,resolve} ----
  if (seg.size() == 3 && seg[0] == "tickets") {
    const ActionRoute* route = FindActionRoute(seg[2]);
    if (route == nullptr) return Error(404, Cat("no endpoint ", method, " ", t.path));
    if (method != "POST") return MethodNotAllowed(method, t.path, "POST");
    std::string raw = UrlDecode(seg[1]);
    auto id = ParseTicketId(raw);
    if (!id) return BadTicketId(raw);
    ActionRequest req;
    req.ticket_id = *id;
    req.action = route->action;
    if (!ParseActionBody(request.body, route->text_required, &req.text, &err))
      return Error(400, err);
    if (!act_)
      return Error(503, "this collector does not accept ticket changes (the API is read-only)");
    // The action waits for the writer thread; reads need not wait for it.
    auto ticket = act_(who, req);
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
          log::Warn("admin-api", Cat(method, " ", t.path, " by ", who.name, ": ", st.ToString()));
          return Error(503, Cat("the change was not recorded (", msg, "); try again"));
      }
    }
    return Answer(200, json{{"ticket", TicketJson(*ticket)}});
  }

  // ---- POST /api/v1/stores/{id}/bundles ----
  if (seg.size() == 3 && seg[0] == "stores" && seg[2] == "bundles") {
    if (method != "POST") return MethodNotAllowed(method, t.path, "POST");
    std::string store = UrlDecode(seg[1]);
    if (!CheckIdentifier("store id", store, &err)) return Error(400, err);
    auto may =
        who.role == Role::kSupport ? StoreExists(db, store) : UserMaySeeStore(db, who, store);
    if (!may.ok()) return StorageError(may.status());
    if (!*may) return NoStore(store);
    NewBundleRequest req;
    req.store_id = store;
    if (!ParseBundleBody(request.body, &req, &err)) return Error(400, err);
    if (req.ticket_id > 0) {
      auto ticket = GetTicket(db, who, req.ticket_id);
      if (!ticket.ok()) return StorageError(ticket.status());
      if (!*ticket) return NoTicket(req.ticket_id);
      if ((*ticket)->store_id != store) {
        return Error(400, Cat("ticket ", req.ticket_id, " is about store ", (*ticket)->store_id,
                              ", not ", store));
      }
    }
    if (!bundles_.request) return Error(503, "this collector does not take bundle requests");
    auto row = bundles_.request(who, req);
    if (!row.ok()) {
      log::Warn("admin-api",
                Cat(method, " ", t.path, " by ", who.name, ": ", row.status().ToString()));
      return Error(503, Cat("the request was not recorded (", std::string(row.status().message()),
                            "); try again"));
    }
    log::Info("admin-api",
              Cat("bundle ", row->id, " of store ", store, " requested by ", who.name));
    return Answer(200, json{{"bundle", BundleJson(*row)}});
  }

  // ---- GET /api/v1/bundles ----
  if (seg.size() == 1 && seg[0] == "bundles") {
    if (method != "GET") return MethodNotAllowed(method, t.path, "GET");
    BundleQuery q;
    q.store_id = t.query["store"];
    if (!ParseInt(t.query, "ticket", 0, 0, INT64_MAX, &q.ticket_id, &err) ||
        !ParseInt(t.query, "limit", 100, 1, 1'000, &q.limit, &err)) {
      return Error(400, err);
    }
    if (auto bad = check_store_param(q.store_id)) return *bad;
    if (q.ticket_id > 0) {
      auto ticket = GetTicket(db, who, q.ticket_id);
      if (!ticket.ok()) return StorageError(ticket.status());
      if (!*ticket) return NoTicket(q.ticket_id);
    }
    auto rows = ListBundles(db, who, q);
    if (!rows.ok()) return StorageError(rows.status());
    json list = json::array();
    for (const auto& b : *rows) list.push_back(BundleJson(b, LiveBytes(b)));
    return Answer(200, json{{"bundles", list}});
  }

  // ---- GET /api/v1/bundles/{id}, GET /api/v1/bundles/{id}/content ----
  if ((seg.size() == 2 || (seg.size() == 3 && seg[2] == "content")) && seg[0] == "bundles") {
    if (method != "GET") return MethodNotAllowed(method, t.path, "GET");
    std::string id = UrlDecode(seg[1]);
    if (!CheckIdentifier("bundle id", id, &err)) return Error(400, err);
    auto row = GetBundle(db, id);
    if (!row.ok()) return StorageError(row.status());
    if (!*row || (who.role != Role::kSupport && (*row)->partner != who.partner)) {
      return Error(404, Cat("no bundle ", id, " visible to you"));
    }
    const BundleRow& b = **row;
    if (seg.size() == 2)
      return Answer(200, json{{"bundle", BundleJson(b, LiveBytes(b), /*with_manifest=*/true)}});
    if (b.state != "complete" || !bundles_.file_path) {
      return Error(409, Cat("bundle ", id, " is ", b.state,
                            b.state == "expired" ? " (deleted by retention)" : ", not complete"));
    }
    HttpResponse file;
    file.file_path = bundles_.file_path(id);
    file.content_type = "application/gzip";
    file.download_name = Cat("bundle-", b.store_id, "-", id, ".tar.gz");
    return file;
  }

  // ---- GET /api/v1/stores, GET /api/v1/stores/{id} ----
  if ((seg.size() == 1 || seg.size() == 2) && seg[0] == "stores") {
    if (method != "GET") return MethodNotAllowed(method, t.path, "GET");
    int64_t now = clock_.NowMs();
    if (seg.size() == 1) {
      StoreQuery q;
      q.store_id = t.query["store"];
      q.after = t.query["after"];
      if (auto bad = check_store_param(q.store_id)) return *bad;
      if (!q.after.empty() && !CheckIdentifier("after", q.after, &err)) return Error(400, err);
      if (!ParseInt(t.query, "limit", 100, 1, 1'000, &q.limit, &err)) return Error(400, err);
      auto rows = ListStores(db, who, q, default_tariff_);
      if (!rows.ok()) return StorageError(rows.status());
      json stores = json::array();
      for (const auto& s : *rows) stores.push_back(StoreJson(s, now));
      return Answer(200, json{{"stores", stores},
                              {"next_after", rows->empty() ? q.after : rows->back().store_id}});
    }
    std::string store = UrlDecode(seg[1]);
    if (!CheckIdentifier("store id", store, &err)) return Error(400, err);
    auto rows = ListStores(db, who, store, default_tariff_);
    if (!rows.ok()) return StorageError(rows.status());
    for (const auto& s : *rows) {
      if (s.store_id == store) return Answer(200, json{{"store", StoreJson(s, now)}});
    }
    return NoStore(store);
  }

  return Error(404, Cat("no endpoint ", method, " ", t.path));
}

}  // namespace setdiag::collector
