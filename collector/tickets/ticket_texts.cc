#include "collector/tickets/ticket_texts.h"

#include <nlohmann/json.hpp>

#include "collector/tickets/sla.h"
#include "collector/tickets/ticket_evidence.h"
#include "common/strings.h"

namespace setdiag::collector {
namespace tickets_internal {

Titles TitleFor(const std::string& condition, Priority priority, const std::string& store) {
  auto t = [&](std::string_view en, std::string_view ru) {
    return Titles{Cat("Store ", store, ": ", en), Cat("Магазин ", store, ": ", ru)};
  };
  if (condition == "tills") {
    return priority == Priority::kCritical
               ? t("more than 50% of tills stopped", "остановлено более 50% касс")
               : t("a till stopped", "остановлена касса");
  }
  if (condition == "loading.halted")
    return t("goods and prices loading halted", "остановлена загрузка товаров и цен");
  if (condition == "loading.transport_halted")
    return t("transport to tills halted", "остановлен транспорт данных на кассы");
  if (condition == "loading.erp_silent")
    return t("the ERP sends no data", "ERP не присылает данные");
  if (condition == "loading.import_errors") return t("import errors", "ошибки импорта");
  if (condition == "set.server_down") return t("SET server down", "сервер SET не работает");
  if (condition == "set.db_unreachable")
    return t("SET database unreachable", "база данных SET недоступна");
  if (condition == "agent.source_failed") {
    return t("the agent cannot read part of SET's data (a query fails)",
             "агент не может прочитать часть данных SET (запрос не выполняется)");
  }
  if (condition == "set.clock_skew") {
    return t("clock or time zone mismatch: till heartbeats misread",
             "расхождение часов или часового пояса: сигналы касс читаются неверно");
  }
  if (condition == "set.shop_ambiguous") {
    return t("several shops in SET's database: set set_db.shop_number",
             "в базе SET несколько магазинов: задайте set_db.shop_number");
  }
  if (condition == "store.unreachable") {
    return t("store unreachable (agent silent)", "магазин недоступен (агент не выходит на связь)");
  }
  return t(condition, condition);
}

std::string HumanDuration(int64_t ms) {
  if (ms < 120'000) return Cat(ms / 1000, " s");
  if (ms < 2 * 3'600'000) return Cat(ms / 60'000, " min");
  return Cat(ms / 3'600'000, " h");
}

TicketNotice ComposeNotice(const Ticket& t, const std::string& type, const std::string& key_suffix,
                           const std::string& what_en, const std::string& what_ru) {
  const std::string ev_ru = EvidenceText(t.evidence, true), ev_en = EvidenceText(t.evidence, false);
  TicketNotice n;
  n.key = Cat("t", t.id, "-", type, key_suffix.empty() ? "" : "-", key_suffix);
  n.type = type;
  n.ticket_id = t.id;
  n.store_id = t.store_id;
  n.partner = t.partner;
  n.priority = static_cast<int>(t.priority);
  n.subject_en = Cat("#", t.id, " [", PriorityName(t.priority), "] ", what_en, ": ", t.title_en);
  n.subject_ru = Cat("#", t.id, " [", PriorityName(t.priority), "] ", what_ru, ": ", t.title_ru);
  n.text_ru =
      Cat(t.title_ru, "\n", t.summary_ru.empty() ? "" : t.summary_ru + "\n", ev_ru,
          "Обнаружено: ", FormatMsk(t.detected_at_ms),
          "\nЗарегистрировано: ", FormatMsk(t.registered_at_ms),
          "\nПервый ответ до: ", FormatMsk(t.first_response.due_ms), "\nТариф: ", t.tariff, "\n");
  n.text_en = Cat(
      t.title_en, "\n", t.summary_en.empty() ? "" : t.summary_en + "\n", ev_en,
      "Detected: ", FormatMsk(t.detected_at_ms), "\nRegistered: ", FormatMsk(t.registered_at_ms),
      "\nFirst response due: ", FormatMsk(t.first_response.due_ms), "\nTariff: ", t.tariff, "\n");
  n.ticket = TicketJson(t);
  n.evidence = t.evidence;
  return n;
}

}  // namespace tickets_internal

using json = nlohmann::json;

namespace {
json ClockJson(const SlaClock& c) {
  if (c.due_ms == 0) return nullptr;
  return {{"due_ms", c.due_ms},       {"due", FormatMsk(c.due_ms)}, {"warn_ms", c.warn_ms},
          {"met_at_ms", c.met_at_ms}, {"warned", c.warned},         {"breached", c.breached}};
}
}  // namespace

json TicketJson(const Ticket& t) {
  return {{"id", t.id},
          {"store_id", t.store_id},
          {"partner", t.partner},
          {"tariff", t.tariff},
          {"condition", t.condition},
          {"priority", PriorityName(t.priority)},
          {"state", TicketStateName(t.state)},
          {"condition_active", t.condition_active},
          {"paged", t.paged},
          {"title_en", t.title_en},
          {"title_ru", t.title_ru},
          {"summary_en", t.summary_en},
          {"summary_ru", t.summary_ru},
          {"detected_at_ms", t.detected_at_ms},
          {"registered_at_ms", t.registered_at_ms},
          {"updated_at_ms", t.updated_at_ms},
          {"cleared_at_ms", t.cleared_at_ms},
          {"acknowledged_at_ms", t.acknowledged_at_ms},
          {"acknowledged_by", t.acknowledged_by},
          {"resolved_at_ms", t.resolved_at_ms},
          {"resolved_by", t.resolved_by},
          {"resolution", t.resolution},
          {"error_registered_at_ms", t.error_registered_at_ms},
          {"reopen_count", t.reopen_count},
          {"episode", t.last_episode},
          {"evidence", t.evidence},
          {"sla",
           {{"registration", ClockJson(t.registration)},
            {"first_response", ClockJson(t.first_response)},
            {"workaround", ClockJson(t.workaround)}}}};
}

json TimelineJson(const TimelineEntry& e) {
  json j = {
      {"id", e.id}, {"at_ms", e.at_ms}, {"actor", e.actor}, {"type", e.type}, {"text", e.text}};
  if (e.event_id) j["event_id"] = e.event_id;
  return j;
}

}  // namespace setdiag::collector
