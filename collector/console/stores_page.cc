// The stores at a glance (partner, tariff, online, last seen, agent
// version, outbox, current conditions) and a store's page with its agents,
// its history of tickets and its bundles.

#include <map>

#include "collector/console/pages.h"
#include "collector/console/sla_view.h"
#include "common/strings.h"
#include "common/url.h"

namespace setdiag::collector::console {

using json = nlohmann::json;

namespace {

constexpr int kPage = 200;

struct AgentSummary {
  int64_t depth = 0, oldest_s = 0;
};

std::map<std::string, AgentSummary> OutboxByStore(const json& agents) {
  std::map<std::string, AgentSummary> out;
  for (const auto& a : agents) {
    const json st = a.value("status", json::object());
    AgentSummary& s = out[a.value("store_id", "")];
    s.depth += st.value("outbox_depth", int64_t{0});
    s.oldest_s = std::max(s.oldest_s, st.value("oldest_unsent_age_s", int64_t{0}));
  }
  return out;
}

json StoreData(const Ctx& ctx, const json& s, const AgentSummary* outbox, int64_t now) {
  const int64_t seen = s.value("last_seen_ms", int64_t{0});
  json conditions = json::array();
  for (const auto& c : s.value("conditions", json::array()))
    conditions.push_back({{"ticket_id", c.value("ticket_id", int64_t{0})},
                          {"priority", c.value("priority", "")},
                          {"condition", c.value("condition", "")}});
  const std::string id = s.value("store_id", "");
  return {{"store_id", id},
          {"url", Cat("/console/stores/", UrlEncode(id))},
          {"partner", s.value("partner", "")},
          {"tariff", s.value("tariff", "")},
          {"online", s.value("online", false)},
          {"last_seen", When(seen)},
          {"ago", seen ? Cat(FormatSpan(now - seen, ctx.ru), " ", Text(ctx.ru, "ago")) : ""},
          {"agent_version", s.value("agent_version", "")},
          {"outbox_depth", outbox ? std::to_string(outbox->depth) : "—"},
          {"oldest_unsent",
           outbox && outbox->oldest_s ? FormatSpan(outbox->oldest_s * 1000, ctx.ru) : ""},
          {"conditions", conditions}};
}

}  // namespace

HttpResponse StoresPage(const Backend& b, const Ctx& ctx) {
  const RequestTarget t = ParseRequestTarget(ctx.http.target);
  auto after_it = t.query.find("after");
  const std::string after = after_it == t.query.end() ? "" : after_it->second;
  ApiResult stores = b.Get(
      ctx, Cat("/api/v1/stores?limit=", kPage, after.empty() ? "" : "&after=", UrlEncode(after)));
  if (!stores.ok()) return ApiErrorPage(ctx, stores);
  ApiResult agents = b.Get(ctx, "/api/v1/agents");
  const auto outbox =
      agents.ok() ? OutboxByStore(agents.body["agents"]) : std::map<std::string, AgentSummary>{};
  const int64_t now = b.clock.NowMs();
  json rows = json::array();
  for (const auto& s : stores.body["stores"]) {
    auto it = outbox.find(s.value("store_id", ""));
    rows.push_back(StoreData(ctx, s, it == outbox.end() ? nullptr : &it->second, now));
  }
  json d = {{"t", Texts(ctx.ru)}, {"stores", rows}, {"count", std::to_string(rows.size())}};
  if (rows.size() == static_cast<size_t>(kPage))
    d["next_url"] = Cat("/console/stores?after=", UrlEncode(stores.body.value("next_after", "")));
  return Page(ctx, Text(ctx.ru, "stores_title"), "stores", RenderTemplate("stores", d));
}

HttpResponse StorePage(const Backend& b, const Ctx& ctx, const std::string& id) {
  ApiResult store = b.Get(ctx, Cat("/api/v1/stores/", UrlEncode(id)));
  if (!store.ok()) return ApiErrorPage(ctx, store);
  const int64_t now = b.clock.NowMs();
  json d = StoreData(ctx, store.body["store"], nullptr, now);
  d["t"] = Texts(ctx.ru);
  json agents = json::array();
  if (ApiResult a = b.Get(ctx, Cat("/api/v1/agents?store=", UrlEncode(id))); a.ok()) {
    for (const auto& ag : a.body["agents"]) {
      const json st = ag.value("status", json::object());
      const int64_t oldest = st.value("oldest_unsent_age_s", int64_t{0});
      agents.push_back({{"agent_id", ag.value("agent_id", "")},
                        {"connected", ag.value("connected", false)},
                        {"last_seen", When(ag.value("last_seen_ms", int64_t{0}))},
                        {"outbox_depth", std::to_string(st.value("outbox_depth", int64_t{0}))},
                        {"oldest_unsent", oldest ? FormatSpan(oldest * 1000, ctx.ru) : ""},
                        {"uptime", FormatSpan(st.value("uptime_s", int64_t{0}) * 1000, ctx.ru)},
                        {"gaps", std::to_string(st.value("gaps_total", int64_t{0}))}});
    }
  }
  d["agents"] = agents;
  json tickets = json::array();
  // The API pages oldest first: read to the end, show the newest 200.
  json list = json::array();
  int64_t after = 0;
  for (int page = 0; page < 100; ++page) {
    ApiResult tk = b.Get(
        ctx, Cat("/api/v1/tickets?state=all&limit=1000&store=", UrlEncode(id), "&after=", after));
    if (!tk.ok() || tk.body["tickets"].empty()) break;
    for (const auto& t : tk.body["tickets"]) list.push_back(t);
    if (list.size() > 200) list.erase(list.begin(), list.end() - 200);
    after = tk.body.value("next_after", after);
  }
  {
    for (auto it = list.rbegin(); it != list.rend(); ++it) {  // newest first
      const json& t = *it;
      tickets.push_back({{"id", t.value("id", int64_t{0})},
                         {"url", Cat("/console/tickets/", t.value("id", int64_t{0}))},
                         {"title", t.value(ctx.ru ? "title_ru" : "title_en", "")},
                         {"priority", t.value("priority", "")},
                         {"priority_label", PriorityLabel(ctx.ru, t.value("priority", ""))},
                         {"state_label", StateLabel(ctx.ru, t.value("state", ""))},
                         {"detected", When(t.value("detected_at_ms", int64_t{0}))},
                         {"resolved", When(t.value("resolved_at_ms", int64_t{0}))}});
    }
  }
  d["tickets"] = tickets;
  json bundles = json::array();
  if (ApiResult bl = b.Get(ctx, Cat("/api/v1/bundles?limit=1000&store=", UrlEncode(id))); bl.ok())
    for (const auto& bundle : bl.body["bundles"]) bundles.push_back(BundleRowData(ctx, bundle));
  d["bundles"] = bundles;
  return Page(ctx, Cat(Text(ctx.ru, "store"), " ", id), "stores", RenderTemplate("store", d));
}

}  // namespace setdiag::collector::console
