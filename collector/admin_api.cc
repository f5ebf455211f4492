#include "collector/admin_api.h"

#include <charconv>
#include <map>
#include <nlohmann/json.hpp>

#include "common/strings.h"
#include "collector/storage.h"
#include "common/log.h"

namespace setdiag::collector {
namespace {

using json = nlohmann::json;

HttpResponse Error(int status, std::string_view message) {
  return {status, json{{"error", message}}.dump()};
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
      t.query[UrlDecode(kv.substr(0, eq))] = eq == std::string_view::npos ? "" : UrlDecode(kv.substr(eq + 1));
    }
  }
  return t;
}

bool ParseInt(const std::map<std::string, std::string>& q, const char* key, int64_t def, int64_t min,
              int64_t max, int64_t* out, std::string* err) {
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

json PayloadJson(const std::string& payload) {
  auto j = json::parse(payload, nullptr, false);
  return j.is_discarded() ? json(payload) : j;
}

}  // namespace

AdminApi::AdminApi(sql::Db db, Clock& clock) : db_(std::move(db)), clock_(clock) {}

HttpResponse AdminApi::Handle(const HttpRequest& request) {
  Target t = ParseTarget(request.target);
  if (t.path == "/healthz") return {200, R"({"status":"ok"})"};
  if (!t.path.starts_with("/api/v1/")) return Error(404, "no such endpoint");

  std::lock_guard lock(mu_);
  constexpr std::string_view kBearer = "Bearer ";
  if (!std::string_view(request.authorization).starts_with(kBearer)) {
    return Error(401, "missing 'Authorization: Bearer <token>' (create one with 'setdiag-collector user create')");
  }
  auto user = LookupUser(db_, std::string_view(request.authorization).substr(kBearer.size()));
  if (!user.ok()) return Error(503, "storage unavailable");
  if (!*user) return Error(401, "unknown or revoked token");
  const User& who = **user;

  std::string err;
  if (t.path == "/api/v1/events" && request.method == "GET") {
    EventQuery q;
    q.store_id = t.query["store"];
    q.kind = t.query["kind"];
    if (!ParseInt(t.query, "after", 0, 0, INT64_MAX, &q.after_id, &err) ||
        !ParseInt(t.query, "limit", 100, 1, 10'000, &q.limit, &err)) {
      return Error(400, err);
    }
    if (!q.store_id.empty()) {
      auto may = UserMaySeeStore(db_, who, q.store_id);
      if (!may.ok()) return Error(503, "storage unavailable");
      if (!*may) return Error(404, Cat("no store ", q.store_id, " visible to you"));
    }
    auto rows = ListEvents(db_, who, q);
    if (!rows.ok()) return Error(503, "storage unavailable");
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
    return {200, out.dump()};
  }
  if (t.path == "/api/v1/agents" && request.method == "GET") {
    std::string store = t.query["store"];
    if (!store.empty()) {
      auto may = UserMaySeeStore(db_, who, store);
      if (!may.ok()) return Error(503, "storage unavailable");
      if (!*may) return Error(404, Cat("no store ", store, " visible to you"));
    }
    auto rows = ListAgents(db_, who, store);
    if (!rows.ok()) return Error(503, "storage unavailable");
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
    return {200, json{{"agents", agents}}.dump()};
  }
  return Error(404, Cat("no endpoint ", request.method, " ", t.path));
}

}  // namespace setdiag::collector
