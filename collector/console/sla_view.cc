#include "collector/console/sla_view.h"

#include <algorithm>

#include "common/strings.h"

namespace setdiag::collector::console {

namespace {

const SlaPolicy* PolicyFor(const TicketPolicy& policy, const std::string& tariff) {
  if (auto it = policy.tariffs.find(tariff); it != policy.tariffs.end()) return &it->second;
  if (auto it = policy.tariffs.find(policy.default_tariff); it != policy.tariffs.end())
    return &it->second;
  return nullptr;
}

}  // namespace

std::vector<ClockView> ClockViews(const nlohmann::json& ticket, const TicketPolicy& policy,
                                  const BusinessClock& business, int64_t now_ms) {
  std::vector<ClockView> out;
  const SlaPolicy* sla = PolicyFor(policy, ticket.value("tariff", ""));
  const bool critical = ticket.value("priority", "") == "critical";
  const auto& clocks = ticket.contains("sla") ? ticket["sla"] : nlohmann::json::object();
  for (const char* name : {"registration", "first_response", "workaround"}) {
    if (!clocks.contains(name) || !clocks[name].is_object()) continue;
    const auto& c = clocks[name];
    ClockView v;
    v.name = name;
    v.due_ms = c.value("due_ms", int64_t{0});
    v.met_at_ms = c.value("met_at_ms", int64_t{0});
    const int64_t warn_ms = c.value("warn_ms", int64_t{0});
    if (sla != nullptr) {
      v.business = v.name == "registration"     ? sla->registration.business
                   : v.name == "first_response" ? (critical ? sla->first_response_critical.business
                                                            : sla->first_response.business)
                                                : true;  // working days
    }
    if (v.met_at_ms != 0) {
      v.state = c.value("breached", false) ? "breached" : "met";
      out.push_back(std::move(v));
      continue;
    }
    if (now_ms >= v.due_ms) {
      v.remaining_ms = -(now_ms - v.due_ms);
      v.state = "breached";
    } else {
      v.remaining_ms =
          v.business ? business.BusinessTimeBetween(now_ms, v.due_ms) : v.due_ms - now_ms;
      v.paused = v.business && business.AddBusinessTime(now_ms, 0) > now_ms;
      v.state = c.value("breached", false)                                     ? "breached"
                : (c.value("warned", false) || (warn_ms && now_ms >= warn_ms)) ? "warning"
                                                                               : "ok";
    }
    out.push_back(std::move(v));
  }
  return out;
}

int64_t NextDueMs(const std::vector<ClockView>& clocks) {
  int64_t best = std::numeric_limits<int64_t>::max();
  for (const ClockView& c : clocks)
    if (c.met_at_ms == 0) best = std::min(best, c.due_ms);
  return best;
}

std::string FormatSpan(int64_t ms, bool ru) {
  if (ms < 0) ms = -ms;
  const int64_t s = ms / 1000;
  const int64_t d = s / 86400, h = (s % 86400) / 3600, m = (s % 3600) / 60, sec = s % 60;
  auto two = [](int64_t v) { return v < 10 ? Cat("0", v) : Cat(v); };
  if (d > 0) return ru ? Cat(d, " д ", h, " ч") : Cat(d, " d ", h, " h");
  if (h > 0) return ru ? Cat(h, " ч ", two(m), " мин") : Cat(h, " h ", two(m), " min");
  if (m > 0) return ru ? Cat(m, " мин ", two(sec), " с") : Cat(m, " min ", two(sec), " s");
  return ru ? Cat(sec, " с") : Cat(sec, " s");
}

}  // namespace setdiag::collector::console
