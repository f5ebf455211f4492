// The console's words in Russian and English. Every {{t.key}} of the
// templates is here in both languages (ConsoleTexts.EveryTemplateKeyIsInBoth
// checks it).

#include <map>
#include <string>

#include "collector/console/render.h"

namespace setdiag::collector::console {

namespace {

struct Pair {
  const char* key;
  const char* ru;
  const char* en;
};

constexpr Pair kTexts[] = {
    {"queue", "Очередь", "Queue"},
    {"stores", "Магазины", "Stores"},
    {"store", "Магазин", "Store"},
    {"skip", "К содержимому", "Skip to content"},
    {"nav_label", "Разделы", "Sections"},
    {"sign_in", "Войти", "Sign in"},
    {"sign_out", "Выйти", "Sign out"},
    {"signin_intro", "Консоль поддержки: заявки, сроки SLA и данные магазинов.",
     "Support console: tickets, SLA clocks and the stores' evidence."},
    {"signin_hint",
     "Токен выдаёт администратор коллектора: setdiag-collector user create. Сеанс длится 12 "
     "часов.",
     "The collector's administrator issues tokens: setdiag-collector user create. A session lasts "
     "12 hours."},
    {"token_label", "API-токен", "API token"},
    {"language", "Язык", "Language"},
    {"signin_failed", "Токен не подходит или отозван.", "Unknown or revoked token."},
    {"role_support", "поддержка", "support"},
    {"role_partner", "партнёр", "partner"},
    {"times_msk", "Время московское (MSK).", "Times are Moscow time (MSK)."},
    {"error_title", "Ошибка", "Error"},
    {"back_to_queue", "Вернуться к очереди", "Back to the queue"},
    {"queue_title", "Открытые заявки", "Open tickets"},
    {"queue_caption", "Заявки по времени до ближайшего срока SLA",
     "Tickets by time to the next SLA deadline"},
    {"filters", "Фильтры", "Filters"},
    {"f_state", "Состояние", "State"},
    {"f_priority", "Приоритет", "Priority"},
    {"f_partner", "Партнёр", "Partner"},
    {"f_condition", "Условие", "Condition"},
    {"f_risk", "Сроки", "Deadlines"},
    {"f_store", "Магазин", "Store"},
    {"f_view", "Вид", "View"},
    {"apply", "Применить", "Apply"},
    {"reset", "Сбросить", "Reset"},
    {"any", "все", "any"},
    {"active", "активные", "active"},
    {"open", "открыта", "open"},
    {"acknowledged_state", "принята", "acknowledged"},
    {"resolved_state", "решена", "resolved"},
    {"all", "все", "all"},
    {"critical", "критический", "critical"},
    {"important", "высокий", "important"},
    {"normal", "обычный", "normal"},
    {"at_risk", "под угрозой или нарушены", "at risk or breached"},
    {"breached", "нарушены", "breached"},
    {"view_flat", "таблица", "flat table"},
    {"view_stores", "по магазинам", "by store"},
    {"bulk_label", "Действия с отмеченными", "Act on the selected"},
    {"bulk_text", "Комментарий", "Note"},
    {"ack_selected", "Принять отмеченные", "Acknowledge selected"},
    {"note_selected", "Комментарий к отмеченным", "Note on selected"},
    {"resolve_selected", "Решить отмеченные", "Resolve selected"},
    {"select_all", "Отметить все", "Select all"},
    {"select_ticket", "Отметить заявку", "Select ticket"},
    {"c_priority", "Приоритет", "Priority"},
    {"c_store", "Магазин", "Store"},
    {"c_ticket", "Заявка", "Ticket"},
    {"c_state", "Состояние", "State"},
    {"c_registration", "Регистрация", "Registration"},
    {"c_first_response", "Первый ответ", "First response"},
    {"c_workaround", "Обходное решение", "Workaround"},
    {"cleared", "условие снято", "condition cleared"},
    {"paused", "пауза: вне рабочих часов", "paused: outside business hours"},
    {"no_tickets", "Открытых заявок нет.", "No open tickets."},
    {"keys_help",
     "Клавиши: j/k — вниз/вверх, x — отметить, a — принять отмеченные, / — поиск магазина.",
     "Keys: j/k down/up, x select, a acknowledge the selected, / store search."},
    {"met", "выполнен", "met"},
    {"overdue", "просрочен на", "overdue by"},
    {"due", "Срок", "Due"},
    {"left", "Осталось", "Left"},
    {"clock", "Срок SLA", "SLA clock"},
    {"sla", "Сроки SLA", "SLA clocks"},
    {"business_hours", "рабочие часы", "business hours"},
    {"condition", "Условие", "Condition"},
    {"partner_tariff", "Партнёр · тариф", "Partner · tariff"},
    {"detected", "Обнаружено", "Detected"},
    {"registered", "Зарегистрирована", "Registered"},
    {"acknowledged", "Принята", "Acknowledged"},
    {"resolved", "Решена", "Resolved"},
    {"evidence", "Что видит агент", "What the agent saw"},
    {"likely_cause", "Вероятная причина", "Likely cause"},
    {"stopped_tills", "Остановленные кассы", "Stopped tills"},
    {"till", "Касса", "Till"},
    {"last_heartbeat", "Последний сигнал", "Last heartbeat"},
    {"network_probe", "Проверка по сети", "Network probe"},
    {"stopped_since", "Стоит с", "Stopped since"},
    {"address", "Адрес", "Address"},
    {"and_more", "и ещё", "and more:"},
    {"never", "никогда", "never"},
    {"probe_answers", "отвечает", "answers"},
    {"probe_refused", "порт закрыт", "refused"},
    {"probe_no_answer", "не отвечает", "no answer"},
    {"probe_not_probed", "не проверялась", "not probed"},
    {"stuck_package", "Пакет завис", "Stuck package"},
    {"since", "с", "since"},
    {"waiting_file", "Ждёт загрузки", "Waiting file"},
    {"files_waiting", "файлов ждут", "files waiting"},
    {"lagging_tills", "Кассы без загрузки товаров", "Tills waiting for goods"},
    {"not_loaded", "Не загружено", "Not loaded"},
    {"waiting_since", "Ждёт с", "Waiting since"},
    {"last_load", "Последняя загрузка", "Last load"},
    {"failed_packages", "Отклонённые пакеты", "Rejected packages"},
    {"arrived", "Пришёл", "Arrived"},
    {"status", "Состояние", "Status"},
    {"message", "Сообщение", "Message"},
    {"no_evidence", "Агент не прислал подробностей.", "The agent sent no details."},
    {"actions", "Действия", "Actions"},
    {"act_ack", "Принять", "Acknowledge"},
    {"act_notes", "Комментарий", "Add a note"},
    {"act_error", "Зарегистрировать ошибку ПО", "Register a software error"},
    {"act_workaround", "Записать обходное решение", "Record a workaround"},
    {"act_resolve", "Решить", "Resolve"},
    {"done_ack", "Заявка принята.", "Acknowledged."},
    {"done_notes", "Комментарий добавлен.", "Note added."},
    {"done_error", "Ошибка ПО зарегистрирована.", "Software error registered."},
    {"done_workaround", "Обходное решение записано.", "Workaround recorded."},
    {"done_resolve", "Заявка решена.", "Resolved."},
    {"done_bundle", "Запрос пакета отправлен магазину.", "Bundle requested from the store."},
    {"bulk_done", "Выполнено для заявок:", "Done for tickets:"},
    {"bulk_failed", "Не выполнено:", "Not done:"},
    {"bulk_none", "Не отмечено ни одной заявки.", "No ticket selected."},
    {"bundles", "Диагностические пакеты", "Diagnostic bundles"},
    {"bundle", "Пакет", "Bundle"},
    {"progress", "Получено", "Received"},
    {"size", "Размер", "Size"},
    {"download", "Скачать", "Download"},
    {"no_bundles", "Пакетов нет.", "No bundles."},
    {"window", "За сколько времени", "Time window"},
    {"reason", "Причина", "Reason"},
    {"request_bundle", "Запросить пакет", "Request a bundle"},
    {"requested", "Запрошен", "Requested"},
    {"timeline", "История", "Timeline"},
    {"steps", "Шаги сбора", "Collection steps"},
    {"step", "Шаг", "Step"},
    {"duration", "Длительность", "Duration"},
    {"files", "Файлы", "Files"},
    {"path", "Путь", "Path"},
    {"method", "Способ", "Method"},
    {"not_collected", "Что не собрано", "Not collected"},
    {"nothing", "ничего", "nothing"},
    {"redactions", "Скрытые секреты", "Redactions"},
    {"redactions_total", "Всего скрыто", "Redacted in all"},
    {"no_manifest", "Опись появится, когда пакет будет получен целиком.",
     "The manifest appears once the bundle is complete."},
    {"b_requested", "ждёт агента", "waiting for the agent"},
    {"b_building", "собирается", "building"},
    {"b_transferring", "передаётся", "transferring"},
    {"b_complete", "готов", "complete"},
    {"b_failed", "не удался", "failed"},
    {"b_expired", "удалён по сроку хранения", "expired"},
    {"stores_title", "Магазины", "Stores"},
    {"online", "На связи", "Online"},
    {"last_seen", "Последняя связь", "Last seen"},
    {"agent_version", "Версия агента", "Agent version"},
    {"outbox", "Очередь агента", "Agent outbox"},
    {"oldest", "старейшее", "oldest"},
    {"conditions", "Текущие условия", "Current conditions"},
    {"yes", "да", "yes"},
    {"no", "нет", "no"},
    {"ago", "назад", "ago"},
    {"no_stores", "Магазинов нет.", "No stores."},
    {"next_page", "Следующая страница", "Next page"},
    {"agents", "Агенты", "Agents"},
    {"agent", "Агент", "Agent"},
    {"uptime", "Работает", "Uptime"},
    {"gaps", "Пропуски", "Gaps"},
    {"ticket_history", "История заявок", "Ticket history"},
    {"no_tickets_ever", "Заявок не было.", "No tickets yet."},
    {"csrf_refused", "Запрос отклонён: нет или неверный CSRF-токен. Обновите страницу.",
     "Refused: the CSRF token is missing or wrong. Reload the page."},
    {"not_found", "Не найдено.", "Not found."},
    {"unavailable", "Коллектор не смог прочитать данные. Повторите позже.",
     "The collector could not read its data. Try again later."},
    {"live_new", "Новые изменения заявок", "Tickets changed"},
};

nlohmann::json Build(bool ru) {
  nlohmann::json j = nlohmann::json::object();
  for (const Pair& p : kTexts) j[p.key] = ru ? p.ru : p.en;
  return j;
}

}  // namespace

const nlohmann::json& Texts(bool ru) {
  static const nlohmann::json kRu = Build(true), kEn = Build(false);
  return ru ? kRu : kEn;
}

std::string Text(bool ru, const std::string& key) {
  const auto& t = Texts(ru);
  auto it = t.find(key);
  return it == t.end() ? key : it->get<std::string>();
}

}  // namespace setdiag::collector::console
