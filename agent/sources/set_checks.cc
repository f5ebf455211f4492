#include "agent/sources/set_checks.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "common/strings.h"

namespace setdiag::agent {

using json = nlohmann::json;

namespace {

std::string ShopList(const std::set<int>& shops) {
  std::string out;
  for (int s : shops) Append(&out, out.empty() ? "" : ", ", s);
  return out;
}

std::string Seconds(int64_t ms) {
  int64_t s = std::llabs(ms) / 1000;
  if (s < 120) return Cat(s, " s");
  if (s < 2 * 3600) return Cat(s / 60, " min");
  return Cat(s / 3600, " h ", (s % 3600) / 60, " min");
}

}  // namespace

SourceSpec QuerySource(const std::string& watch, SetSource source) {
  SourceSpec s;
  s.config_key = SetSourceKey(source);
  switch (source) {
    case SetSource::kRoster:
      s.id = watch + ".roster";
      s.what_en = "the till roster (set.cash_cash)";
      s.what_ru = "список касс (set.cash_cash)";
      break;
    case SetSource::kActivity:
      s.id = watch + ".activity";
      s.what_en = "the tills' heartbeats (set_operday.od_cash_status)";
      s.what_ru = "сигналы касс (set_operday.od_cash_status)";
      break;
    case SetSource::kPackages:
      s.id = watch + ".packages";
      s.what_en = "import packages (set.erp_transport_package)";
      s.what_ru = "пакеты загрузки (set.erp_transport_package)";
      break;
    case SetSource::kTransport:
      s.id = watch + ".transport";
      s.what_en = "transport to the tills (set.cash_activity)";
      s.what_ru = "доставку данных на кассы (set.cash_activity)";
      break;
  }
  s.fix_en = Cat("Make ", s.config_key,
                 " fit this SET version: set it in the agent's config to a query for this "
                 "database returning ",
                 SetSourceColumns(source),
                 " (see docs/config.md; the error names what is missing), then restart the agent.");
  s.fix_ru =
      Cat("Приведите ", s.config_key,
          " в соответствие с этой версией SET: задайте в конфигурации агента "
          "запрос к этой базе, возвращающий: ",
          SetSourceColumns(source),
          " (см. docs/config.md; в ошибке указано, чего не хватает), затем перезапустите агента.");
  return s;
}

SourceSpec InboxSource(const std::string& path) {
  SourceSpec s;
  s.id = "loading.inbox:" + path;
  s.config_key = "loading.inboxes";
  s.what_en = Cat("the import folder ", path);
  s.what_ru = Cat("папку импорта ", path);
  s.fix_en =
      Cat("Make ", path,
          " readable for the agent's user, or correct loading.inboxes in the agent's config.");
  s.fix_ru = Cat("Дайте пользователю агента право читать ", path,
                 " или исправьте loading.inboxes в конфигурации агента.");
  return s;
}

SourceHealth::SourceHealth(std::string episode_prefix, int64_t confirm_ms, int min_failures)
    : prefix_(std::move(episode_prefix)), confirm_ms_(confirm_ms), min_failures_(min_failures) {}

bool SourceHealth::active(const std::string& id) const {
  auto it = states_.find(id);
  return it != states_.end() && it->second.active;
}

std::vector<Finding> SourceHealth::Observe(const SourceSpec& source, const absl::Status& result,
                                           int64_t now_ms) {
  std::vector<Finding> out;
  State& st = states_[source.id];
  if (result.ok()) {
    if (st.active) {
      out.push_back({kSourceFailedKind, Severity::kImportant, now_ms,
                     json{{"state", "cleared"},
                          {"episode", st.episode},
                          {"source", source.id},
                          {"config_key", source.config_key},
                          {"since_ms", st.first_failure_ms},
                          {"duration_s", (now_ms - st.first_failure_ms) / 1000},
                          {"summary_en", Cat("The agent reads ", source.what_en, " again")},
                          {"summary_ru", Cat("Агент снова читает ", source.what_ru)}}});
    }
    st = State{};
    return out;
  }
  // The database out of reach is another condition, and says nothing about
  // whether the query fits: the streak neither grows nor ends.
  if (absl::IsUnavailable(result) || absl::IsDeadlineExceeded(result)) return out;
  if (st.failures == 0) st.first_failure_ms = now_ms;
  ++st.failures;
  const std::string error(result.message().data(), result.message().size());
  if (st.active || st.failures < min_failures_ || now_ms - st.first_failure_ms < confirm_ms_) {
    st.error = error;
    return out;
  }
  st.active = true;
  st.error = error;
  st.episode = Cat(prefix_, "-source-", source.id, "-", st.first_failure_ms);
  out.push_back(
      {kSourceFailedKind, Severity::kImportant, now_ms,
       json{{"state", "raised"},
            {"episode", st.episode},
            {"source", source.id},
            {"config_key", source.config_key},
            {"error", error},
            {"failures", st.failures},
            {"since_ms", st.first_failure_ms},
            {"summary_en", Cat("The agent cannot read ", source.what_en, " (", source.config_key,
                               " fails): that part of the store is not watched")},
            {"summary_ru", Cat("Агент не может прочитать ", source.what_ru, " (ошибка ",
                               source.config_key, "): эта часть магазина не контролируется")},
            {"fix_en", source.fix_en},
            {"fix_ru", source.fix_ru}}});
  return out;
}

json SourceHealth::ExportState() const {
  json out = json::object();
  for (const auto& [id, st] : states_) {
    if (st.active) out[id] = {{"episode", st.episode}, {"since_ms", st.first_failure_ms}};
  }
  return out;
}

void SourceHealth::RestoreState(const json& state) {
  if (!state.is_object()) return;
  for (const auto& [id, v] : state.items()) {
    if (!v.is_object() || !v.contains("episode") || !v["episode"].is_string() ||
        !v.contains("since_ms") || !v["since_ms"].is_number_integer()) {
      continue;
    }
    State& st = states_[id];
    st.active = true;
    st.episode = v["episode"].get<std::string>();
    st.first_failure_ms = v["since_ms"].get<int64_t>();
    st.failures = min_failures_;
  }
}

void SourceHealth::AppendHeld(json* held) const {
  for (const auto& [id, st] : states_) {
    if (st.active) held->push_back({{"kind", kSourceFailedKind}, {"episode", st.episode}});
  }
}

namespace {
bool EpisodeState(const json& v, std::string* episode, int64_t* since) {
  if (!v.is_object() || !v.contains("episode") || !v["episode"].is_string() ||
      !v.contains("since_ms") || !v["since_ms"].is_number_integer()) {
    return false;
  }
  *episode = v["episode"].get<std::string>();
  *since = v["since_ms"].get<int64_t>();
  return !episode->empty();
}
}  // namespace

json ClockSkewDetector::ExportState() const {
  if (!active_) return json::object();
  return {{"episode", episode_}, {"since_ms", since_ms_}};
}

void ClockSkewDetector::RestoreState(const json& state) {
  if (EpisodeState(state, &episode_, &since_ms_)) active_ = true;
}

void ClockSkewDetector::AppendHeld(json* held) const {
  if (active_) held->push_back({{"kind", kClockSkewKind}, {"episode", episode_}});
}

json ShopCheck::ExportState() const {
  if (!active_) return json::object();
  return {{"episode", episode_},
          {"since_ms", since_ms_},
          {"shops", json(std::vector<int>(shops_.begin(), shops_.end()))}};
}

void ShopCheck::RestoreState(const json& state) {
  if (!EpisodeState(state, &episode_, &since_ms_)) return;
  active_ = true;
  if (state.contains("shops") && state["shops"].is_array()) {
    for (const auto& s : state["shops"]) {
      if (s.is_number_integer()) shops_.insert(s.get<int>());
    }
  }
}

void ShopCheck::AppendHeld(json* held) const {
  if (active_) held->push_back({{"kind", kShopAmbiguousKind}, {"episode", episode_}});
}

json ExportChecksState(const SourceHealth* sources, const ClockSkewDetector* clock,
                       const ShopCheck* shops) {
  json out = {{"version", 1}};
  json held = json::array();
  if (sources) {
    out["sources"] = sources->ExportState();
    sources->AppendHeld(&held);
  }
  if (clock) {
    out["clock"] = clock->ExportState();
    clock->AppendHeld(&held);
  }
  if (shops) {
    out["shops"] = shops->ExportState();
    shops->AppendHeld(&held);
  }
  out["held"] = std::move(held);
  return out;
}

void RestoreChecksState(const json& state, SourceHealth* sources, ClockSkewDetector* clock,
                        ShopCheck* shops) {
  if (!state.is_object() || !state.contains("version") || !state["version"].is_number_integer() ||
      state["version"].get<int>() != 1) {
    return;
  }
  if (sources && state.contains("sources")) sources->RestoreState(state["sources"]);
  if (clock && state.contains("clock")) clock->RestoreState(state["clock"]);
  if (shops && state.contains("shops")) shops->RestoreState(state["shops"]);
}

ClockSkewDetector::ClockSkewDetector(ClockSkewPolicy policy, std::string episode_prefix)
    : policy_(policy), prefix_(std::move(episode_prefix)) {}

std::vector<Finding> ClockSkewDetector::Evaluate(const ClockObservation& o) {
  std::vector<Finding> out;
  if (!o.db_offset_ms && o.heartbeats_ms.empty()) return out;  // nothing to judge by
  const int64_t tol = policy_.tolerance_ms;
  std::optional<int64_t> lead;
  int ahead = 0;
  for (int64_t hb : o.heartbeats_ms) {
    int64_t l = hb - o.now_ms;
    if (!lead || l > *lead) lead = l;
    if (l > tol) ++ahead;
  }
  const bool db_skew = o.db_offset_ms && std::llabs(*o.db_offset_ms) > tol;
  const bool skew = db_skew || ahead > 0;
  if (!skew) {
    skew_seen_since_.reset();
    if (!active_) return out;
    if (!ok_seen_since_) ok_seen_since_ = o.now_ms;
    if (o.now_ms - *ok_seen_since_ < policy_.clear_ms) return out;
    out.push_back({kClockSkewKind, Severity::kImportant, o.now_ms,
                   json{{"state", "cleared"},
                        {"episode", episode_},
                        {"since_ms", since_ms_},
                        {"duration_s", (o.now_ms - since_ms_) / 1000},
                        {"db_offset_ms", o.db_offset_ms ? json(*o.db_offset_ms) : json(nullptr)},
                        {"heartbeat_lead_ms", lead ? json(*lead) : json(nullptr)}}});
    active_ = false;
    ok_seen_since_.reset();
    return out;
  }
  ok_seen_since_.reset();
  if (!skew_seen_since_) skew_seen_since_ = o.now_ms;
  if (active_ || o.now_ms - *skew_seen_since_ < policy_.confirm_ms) return out;

  json cause;
  std::string summary_en, summary_ru;
  if (db_skew) {
    const int64_t off = *o.db_offset_ms;
    const char* dir_en = off > 0 ? "ahead of" : "behind";
    const char* dir_ru = off > 0 ? "спешат относительно" : "отстают от";
    cause = {
        {"code", "clock"},
        {"en",
         Cat("The database server's clock is ", Seconds(off), " ", dir_en,
             " the store server's (the agent's): synchronise both with NTP (chronyd or ntpd). Till "
             "heartbeats are judged against the agent's clock.")},
        {"ru",
         Cat("Часы сервера базы данных ", dir_ru, " часов сервера магазина (агента) на ",
             Seconds(off),
             ": синхронизируйте оба по NTP (chronyd или ntpd). Сигналы касс сравниваются с часами "
             "агента.")}};
    summary_en =
        Cat("Clock offset: the database's clock is ", Seconds(off), " ", dir_en, " the agent's");
    summary_ru =
        Cat("Расхождение часов: часы базы данных ", dir_ru, " часов агента на ", Seconds(off));
  } else {
    const int64_t half_hour = 30 * 60'000;
    const int64_t nearest = (*lead + half_hour / 2) / half_hour * half_hour;
    const bool zone = nearest >= half_hour && std::llabs(*lead - nearest) <= tol;
    summary_en = Cat("Till heartbeats lie ", Seconds(*lead),
                     " in the future: the till watch cannot see stopped tills");
    summary_ru =
        Cat("Сигналы касс опережают время на ", Seconds(*lead), ": остановку касс не видно");
    if (zone) {
      cause = {
          {"code", "time_zone"},
          {"en", Cat("SET writes local time without a zone; the agent reads it in ", o.reading_zone,
                     " (the database session's TimeZone is ", o.session_time_zone,
                     "). Set set_db.time_zone (or calendar.time_zone) in the agent's config to the "
                     "time zone "
                     "SET's server runs in, e.g. Europe/Moscow, and restart the agent.")},
          {"ru",
           Cat("SET записывает местное время без часового пояса; агент читает его в поясе ",
               o.reading_zone, " (TimeZone сеанса базы данных: ", o.session_time_zone,
               "). Укажите в конфигурации агента set_db.time_zone (или calendar.time_zone) — пояс, "
               "в котором работает сервер SET, например Europe/Moscow, и перезапустите агента.")}};
    } else {
      cause = {
          {"code", "set_clock"},
          {"en", Cat("SET's server clock runs ", Seconds(*lead),
                     " ahead of the agent's: synchronise the store server's clock with NTP.")},
          {"ru", Cat("Часы сервера SET спешат на ", Seconds(*lead),
                     " относительно часов агента: синхронизируйте часы сервера магазина по NTP.")}};
    }
  }
  active_ = true;
  since_ms_ = *skew_seen_since_;
  episode_ = Cat(prefix_, "-clock-", since_ms_);
  out.push_back({kClockSkewKind, Severity::kImportant, o.now_ms,
                 json{{"state", "raised"},
                      {"episode", episode_},
                      {"since_ms", since_ms_},
                      {"db_offset_ms", o.db_offset_ms ? json(*o.db_offset_ms) : json(nullptr)},
                      {"heartbeat_lead_ms", lead ? json(*lead) : json(nullptr)},
                      {"tills_ahead", ahead},
                      {"tolerance_ms", tol},
                      {"reading_zone", o.reading_zone},
                      {"session_time_zone", o.session_time_zone},
                      {"likely_cause", cause},
                      {"fix_en", cause["en"]},
                      {"fix_ru", cause["ru"]},
                      {"summary_en", summary_en},
                      {"summary_ru", summary_ru}}});
  return out;
}

std::set<int> ShopsIn(const std::vector<RosterRow>& roster) {
  std::set<int> out;
  for (const auto& r : roster) {
    if (r.shop) out.insert(*r.shop);
  }
  return out;
}

absl::Status CheckShops(const std::set<int>& shops, bool shop_configured) {
  if (shop_configured || shops.size() < 2) return absl::OkStatus();
  return absl::FailedPreconditionError(
      Cat("SET's till registry holds several shops (", ShopList(shops),
          "): set set_db.shop_number to this store's shop number"));
}

ShopCheck::ShopCheck(std::string episode_prefix) : prefix_(std::move(episode_prefix)) {}

std::vector<Finding> ShopCheck::Evaluate(const std::set<int>& shops, bool shop_configured,
                                         int64_t now_ms) {
  std::vector<Finding> out;
  const bool ambiguous = !CheckShops(shops, shop_configured).ok();
  if (!ambiguous) {
    if (active_) {
      out.push_back(
          {kShopAmbiguousKind, Severity::kImportant, now_ms,
           json{{"state", "cleared"},
                {"episode", episode_},
                {"since_ms", since_ms_},
                {"shops", json(std::vector<int>(shops.begin(), shops.end()))},
                {"reason", shop_configured ? "a shop is configured" : "one shop remains"}}});
      active_ = false;
    }
    return out;
  }
  if (active_ && shops == shops_) return out;
  const bool first = !active_;
  if (first) {
    since_ms_ = now_ms;
    episode_ = Cat(prefix_, "-shops-", now_ms);
  }
  active_ = true;
  shops_ = shops;
  const std::string list = ShopList(shops);
  out.push_back(
      {kShopAmbiguousKind, Severity::kImportant, now_ms,
       json{{"state", first ? "raised" : "updated"},
            {"episode", episode_},
            {"since_ms", since_ms_},
            {"shops", json(std::vector<int>(shops.begin(), shops.end()))},
            {"config_key", "set_db.shop_number"},
            {"summary_en", Cat("SET's database holds several shops (", list,
                               ") and set_db.shop_number is not set: the tills are not judged")},
            {"summary_ru", Cat("В базе SET несколько магазинов (", list,
                               "), а set_db.shop_number не задан: кассы не проверяются")},
            {"fix_en",
             Cat("Set set_db.shop_number in the agent's config to this store's shop number (one "
                 "of ",
                 list, ") and restart the agent.")},
            {"fix_ru",
             Cat("Укажите в конфигурации агента set_db.shop_number — номер этого магазина (один "
                 "из: ",
                 list, ") и перезапустите агента.")}}});
  return out;
}

}  // namespace setdiag::agent
