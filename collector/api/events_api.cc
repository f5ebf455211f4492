// GET /api/v1/events and GET /api/v1/agents (docs/api.md).

#include "collector/api/handlers.h"
#include "common/strings.h"

namespace setdiag::collector::api {

using json = nlohmann::json;

HttpResponse ListEventsHandler(const Request& r) {
  EventQuery q;
  std::string err;
  q.store_id = r.Query("store");
  q.kind = r.Query("kind");
  if (!ParseInt(r.target.query, "after", 0, 0, INT64_MAX, &q.after_id, &err) ||
      !ParseInt(r.target.query, "limit", 100, 1, 10'000, &q.limit, &err)) {
    return Error(400, err);
  }
  if (auto bad = CheckStoreParam(r, q.store_id)) return *bad;
  auto rows = ListEvents(r.db, r.who, q);
  if (!rows.ok()) return StorageError(rows.status());
  json events = json::array();
  for (const auto& e : *rows) {
    events.push_back({{"id", e.id},
                      {"store_id", e.store_id},
                      {"agent_id", e.agent_id},
                      {"sequence", e.sequence},
                      {"kind", e.kind},
                      {"severity", SeverityText(e.severity)},
                      {"detected_at_ms", e.detected_at_ms},
                      {"received_at_ms", e.received_at_ms},
                      {"payload", PayloadJson(e.payload)}});
  }
  json out = {{"events", events}, {"next_after", rows->empty() ? q.after_id : rows->back().id}};
  return Answer(200, out);
}

HttpResponse ListAgentsHandler(const Request& r) {
  std::string store = r.Query("store");
  if (auto bad = CheckStoreParam(r, store)) return *bad;
  auto rows = ListAgents(r.db, r.who, store);
  if (!rows.ok()) return StorageError(rows.status());
  json agents = json::array();
  const int64_t now = r.hooks.clock->NowMs();
  for (const auto& a : *rows) {
    agents.push_back({{"agent_id", a.agent_id},
                      {"store_id", a.store_id},
                      {"partner", a.partner},
                      {"version", a.version},
                      {"connected", a.connected},
                      {"first_seen_ms", a.first_seen_ms},
                      {"last_seen_ms", a.last_seen_ms},
                      {"seconds_since_seen", (now - a.last_seen_ms) / 1000},
                      {"last_committed_sequence", a.last_committed_seq},
                      {"status", PayloadJson(a.status_json)}});
  }
  return Answer(200, json{{"agents", agents}});
}

}  // namespace setdiag::collector::api
