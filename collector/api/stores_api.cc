// GET /api/v1/stores (paged by store id) and GET /api/v1/stores/{id}
// (docs/api.md).

#include "collector/api/handlers.h"
#include "common/strings.h"

namespace setdiag::collector::api {
namespace {

using json = nlohmann::json;

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

}  // namespace

HttpResponse ListStoresHandler(const Request& r) {
  StoreQuery q;
  std::string err;
  q.store_id = r.Query("store");
  q.after = r.Query("after");
  if (auto bad = CheckStoreParam(r, q.store_id)) return *bad;
  if (!q.after.empty() && !CheckIdentifier("after", q.after, &err)) return Error(400, err);
  if (!ParseInt(r.target.query, "limit", 100, 1, 1'000, &q.limit, &err)) return Error(400, err);
  auto rows = ListStores(r.db, r.who, q, r.hooks.default_tariff);
  if (!rows.ok()) return StorageError(rows.status());
  const int64_t now = r.hooks.clock->NowMs();
  json stores = json::array();
  for (const auto& s : *rows) stores.push_back(StoreJson(s, now));
  return Answer(200, json{{"stores", stores},
                          {"next_after", rows->empty() ? q.after : rows->back().store_id}});
}

HttpResponse GetStoreHandler(const Request& r) {
  const std::string store = r.Param(1);
  std::string err;
  if (!CheckIdentifier("store id", store, &err)) return Error(400, err);
  auto rows = ListStores(r.db, r.who, store, r.hooks.default_tariff);
  if (!rows.ok()) return StorageError(rows.status());
  const int64_t now = r.hooks.clock->NowMs();
  for (const auto& s : *rows) {
    if (s.store_id == store) return Answer(200, json{{"store", StoreJson(s, now)}});
  }
  return NoStore(store);
}

}  // namespace setdiag::collector::api
