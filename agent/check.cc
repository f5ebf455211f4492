#include "agent/check.h"

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "agent/set_checks.h"
#include "agent/set_db.h"
#include "agent/till_detector.h"
#include "common/strings.h"

namespace setdiag::agent {
namespace {

using json = nlohmann::json;

constexpr int64_t kRecentMs = 10 * 60 * 1000;

CheckLine Ok(std::string id, std::string en, std::string ru) {
  return {std::move(id), CheckVerdict::kOk, std::move(en), std::move(ru), "", ""};
}

CheckLine Fail(std::string id, std::string en, std::string ru, std::string fix_en, std::string fix_ru,
               CheckVerdict verdict = CheckVerdict::kFail) {
  return {std::move(id), verdict, std::move(en), std::move(ru), std::move(fix_en), std::move(fix_ru)};
}

// What to do when a query fails: unreachable, or a query that does not fit
// (SetDatabase names the column and the key in that case).
CheckLine QueryFailed(const std::string& id, const std::string& what_en, const std::string& what_ru,
                      SetSource source, const absl::Status& st) {
  std::string err(st.message());
  if (absl::IsUnavailable(st) || absl::IsDeadlineExceeded(st)) {
    return Fail(id, Cat(what_en, ": ", err), Cat(what_ru, ": ", err),
                "check set_db.host, set_db.port, set_db.user and the password file, and that PostgreSQL "
                "accepts this user from this host (pg_hba.conf)",
                "проверьте set_db.host, set_db.port, set_db.user и файл пароля, а также что PostgreSQL "
                "пускает этого пользователя с этого адреса (pg_hba.conf)");
  }
  return Fail(id, Cat(what_en, ": ", err), Cat(what_ru, ": ", err),
              Cat("replace the query with ", SetSourceKey(source), " (columns: ", SetSourceColumns(source),
                  ") for this SET version"),
              Cat("задайте запрос ключом ", SetSourceKey(source), " (столбцы: ", SetSourceColumns(source),
                  ") под эту версию SET"));
}

void CheckSetDb(const SetDbConfig& db_config, bool loading, Clock& clock, std::vector<CheckLine>* out) {
  SetDatabase db(db_config);
  auto roster = db.ReadRoster();
  if (!roster.ok()) {
    out->push_back(QueryFailed("set_db.roster", "SET's till registry (cash_cash)",
                               "реестр касс SET (cash_cash)", SetSource::kRoster, roster.status()));
    return;  // the database is not usable: the other queries would say the same
  }
  int active = 0, mothballed = 0, deleted = 0;
  for (const auto& r : *roster) {
    switch (ParseRosterStatus(r.status)) {
      case RosterStatus::kActive: ++active; break;
      case RosterStatus::kMothballed: ++mothballed; break;
      case RosterStatus::kDeleted: ++deleted; break;
    }
  }
  const std::string counts_en = Cat(active, " ACTIVE, ", mothballed, " CLOSED_DOWN, ", deleted, " DELETED");
  const std::string counts_ru =
      Cat(active, " ACTIVE (в работе), ", mothballed, " CLOSED_DOWN (законсервированы), ", deleted, " DELETED");
  if (active == 0) {
    out->push_back(Fail("set_db.roster", Cat("SET's till registry: no active till (", counts_en, ")"),
                        Cat("реестр касс SET: нет ни одной кассы в работе (", counts_ru, ")"),
                        "check set_db.shop_number and set_db.database_set: the registry read is empty",
                        "проверьте set_db.shop_number и set_db.database_set: реестр пуст",
                        CheckVerdict::kWarn));
  } else {
    out->push_back(Ok("set_db.roster", Cat("SET's till registry: ", counts_en), Cat("реестр касс SET: ", counts_ru)));
  }

  std::set<int> shops = ShopsIn(*roster);
  if (auto st = CheckShops(shops, db_config.shop_number.has_value()); !st.ok()) {
    std::string list;
    for (int s : shops) Append(&list, list.empty() ? "" : ", ", s);
    out->push_back(Fail("set_db.shop_number", Cat("SET's database holds tills of several shops (", list, ")"),
                        Cat("в базе SET кассы нескольких магазинов (", list, ")"),
                        "set set_db.shop_number to this store's shop number",
                        "укажите номер магазина в set_db.shop_number"));
  }

  auto activity = db.ReadActivity();
  if (!activity.ok()) {
    out->push_back(QueryFailed("set_db.activity", "tills' last activity (od_cash_status)",
                               "последняя активность касс (od_cash_status)", SetSource::kActivity,
                               activity.status()));
  } else {
    const int64_t now = clock.NowMs();
    int recent = 0;
    for (const auto& [till, ms] : *activity) {
      if (now - ms <= kRecentMs) ++recent;
    }
    std::string en = Cat("tills' last activity: ", recent, " of ", activity->size(), " reported in the last 10 minutes");
    std::string ru = Cat("активность касс: ", recent, " из ", activity->size(), " отвечали за последние 10 минут");
    if (recent == 0 && active > 0) {
      out->push_back(Fail("set_db.activity", en, ru,
                          "if the store is open, the tills or SET's ping are not working; if the heartbeats "
                          "look hours off, set set_db.time_zone",
                          "если магазин открыт, кассы или их пинг не работают; если время активности "
                          "сдвинуто на часы, задайте set_db.time_zone",
                          CheckVerdict::kWarn));
    } else {
      out->push_back(Ok("set_db.activity", en, ru));
    }
  }

  if (loading) {
    auto packages = db.ReadPackages();
    if (!packages.ok()) {
      out->push_back(QueryFailed("set_db.packages", "import packages (erp_transport_package)",
                                 "пакеты импорта (erp_transport_package)", SetSource::kPackages,
                                 packages.status()));
    } else {
      out->push_back(Ok("set_db.packages", Cat("import packages readable (", packages->size(), " recent)"),
                        Cat("пакеты импорта читаются (последних: ", packages->size(), ")")));
    }
    auto transport = db.ReadTransport();
    if (!transport.ok()) {
      out->push_back(QueryFailed("set_db.transport", "goods transport to the tills (cash_activity)",
                                 "доставка товаров на кассы (cash_activity)", SetSource::kTransport,
                                 transport.status()));
    } else {
      out->push_back(Ok("set_db.transport", Cat("goods transport readable (", transport->size(), " tills)"),
                        Cat("доставка товаров на кассы читается (касс: ", transport->size(), ")")));
    }
  }

  const int64_t before = clock.NowMs();
  auto db_clock = db.ReadServerClock();
  const int64_t after = clock.NowMs();
  if (db_clock.ok()) {
    const int64_t offset = *db_clock - (before + after) / 2;
    const int64_t abs_offset = offset < 0 ? -offset : offset;
    std::string en = Cat("SET database clock: ", offset / 1000, " s from this server's");
    std::string ru = Cat("часы базы SET: расхождение с этим сервером ", offset / 1000, " с");
    if (abs_offset > db_config.clock_tolerance_ms) {
      out->push_back(Fail("set_db.clock", en, ru, "synchronise the clocks (NTP) of the database and this server",
                          "синхронизируйте часы (NTP) базы и этого сервера", CheckVerdict::kWarn));
    } else {
      out->push_back(Ok("set_db.clock", en, ru));
    }
  }
}

const char* Mark(CheckVerdict v) {
  switch (v) {
    case CheckVerdict::kOk: return "✓";
    case CheckVerdict::kWarn: return "!";
    case CheckVerdict::kFail: return "✗";
  }
  return "?";
}

const char* VerdictName(CheckVerdict v) {
  switch (v) {
    case CheckVerdict::kOk: return "ok";
    case CheckVerdict::kWarn: return "warn";
    case CheckVerdict::kFail: return "fail";
  }
  return "?";
}

}  // namespace

std::vector<CheckLine> RunChecks(const AgentConfig& cfg, Clock& clock) {
  std::vector<CheckLine> out;
  out.push_back(Ok("config", Cat("config ", cfg.config_path, ": valid, store ", cfg.store_id),
                   Cat("конфигурация ", cfg.config_path, ": без ошибок, магазин ", cfg.store_id)));
  std::optional<SetDbConfig> db = cfg.tills.set_db ? cfg.tills.set_db : cfg.loading.set_db;
  if (!db) {
    out.push_back(Fail("set_db", "SET's database: not configured ([set_db] enabled = true is missing)",
                       "база SET: не настроена (нет [set_db] enabled = true)",
                       "add [set_db] with enabled = true unless the tills push their heartbeats",
                       "добавьте [set_db] с enabled = true, если кассы не присылают пинги сами",
                       CheckVerdict::kWarn));
    return out;
  }
  CheckSetDb(*db, cfg.loading_enabled, clock, &out);
  return out;
}

int PrintChecks(const std::vector<CheckLine>& lines, bool ru, bool as_json) {
  bool failed = false;
  for (const auto& l : lines) failed = failed || l.verdict == CheckVerdict::kFail;
  if (as_json) {
    json checks = json::array();
    for (const auto& l : lines) {
      json c = {{"id", l.id}, {"verdict", VerdictName(l.verdict)}, {"text_en", l.text_en}, {"text_ru", l.text_ru}};
      if (!l.fix_en.empty()) {
        c["fix_en"] = l.fix_en;
        c["fix_ru"] = l.fix_ru;
      }
      checks.push_back(std::move(c));
    }
    std::cout << json{{"ok", !failed}, {"checks", checks}}.dump(2, ' ', false, json::error_handler_t::replace)
              << "\n";
    return failed ? 1 : 0;
  }
  for (const auto& l : lines) {
    std::cout << Mark(l.verdict) << " " << (ru ? l.text_ru : l.text_en) << "\n";
    const std::string& fix = ru ? l.fix_ru : l.fix_en;
    if (!fix.empty()) std::cout << "    " << (ru ? "что сделать: " : "what to do: ") << fix << "\n";
  }
  std::cout << (failed ? (ru ? "есть ошибки\n" : "some checks failed\n") : (ru ? "всё в порядке\n" : "all checks passed\n"));
  return failed ? 1 : 0;
}

}  // namespace setdiag::agent
