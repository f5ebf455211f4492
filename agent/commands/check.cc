#include "agent/commands/check.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "absl/time/time.h"
#include "agent/detectors/till_detector.h"
#include "agent/link/uplink.h"
#include "agent/sources/net_probe.h"
#include "agent/sources/set_checks.h"
#include "agent/sources/set_db.h"
#include "common/files.h"
#include "common/host_port.h"
#include "common/strings.h"
#include "common/version.h"

namespace setdiag::agent {
namespace {

using json = nlohmann::json;

constexpr int64_t kRecentMs = 10 * 60 * 1000;

// What to do when a query fails: unreachable, or a query that does not fit
// (SetDatabase names the column and the key in that case).
CheckLine QueryFailed(const std::string& id, const std::string& what_en, const std::string& what_ru,
                      SetSource source, const absl::Status& st) {
  std::string err(st.message());
  // 28P01: invalid_password; 28000: invalid_authorization_specification
  // (no pg_hba.conf line, or a role without LOGIN).
  if (err.find("SQLSTATE 28P01") != std::string::npos) {
    return CheckFail(
        id, Cat(what_en, ": ", err), Cat(what_ru, ": ", err),
        "the password in set_db.password_file (or set_db.password) is not set_db.user's: "
        "write the one "
        "given to the read-only role (docs/install.en.md, \"A read-only role\")",
        "пароль в set_db.password_file (или set_db.password) не подходит к set_db.user: "
        "запишите пароль "
        "роли только для чтения (docs/install.ru.md, «Роль только для чтения»)");
  }
  if (err.find("SQLSTATE 28000") != std::string::npos) {
    return CheckFail(
        id, Cat(what_en, ": ", err), Cat(what_ru, ": ", err),
        "PostgreSQL does not let set_db.user in from this host: add its line to "
        "pg_hba.conf and reload "
        "PostgreSQL (docs/install.en.md, \"A read-only role\")",
        "PostgreSQL не пускает set_db.user с этого адреса: добавьте строку в pg_hba.conf и "
        "перечитайте "
        "конфигурацию PostgreSQL (docs/install.ru.md, «Роль только для чтения»)");
  }
  if (absl::IsUnavailable(st) || absl::IsDeadlineExceeded(st)) {
    return CheckFail(
        id, Cat(what_en, ": ", err), Cat(what_ru, ": ", err),
        "check set_db.host, set_db.port, set_db.user and the password file, and that PostgreSQL "
        "accepts this user from this host (pg_hba.conf)",
        "проверьте set_db.host, set_db.port, set_db.user и файл пароля, а также что PostgreSQL "
        "пускает этого пользователя с этого адреса (pg_hba.conf)");
  }
  return CheckFail(id, Cat(what_en, ": ", err), Cat(what_ru, ": ", err),
                   Cat("replace the query with ", SetSourceKey(source),
                       " (columns: ", SetSourceColumns(source), ") for this SET version"),
                   Cat("задайте запрос ключом ", SetSourceKey(source),
                       " (столбцы: ", SetSourceColumns(source), ") под эту версию SET"));
}

void CheckSetDb(const SetDbConfig& db_config, bool loading, Clock& clock,
                std::vector<CheckLine>* out) {
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
      case RosterStatus::kActive:
        ++active;
        break;
      case RosterStatus::kMothballed:
        ++mothballed;
        break;
      case RosterStatus::kDeleted:
        ++deleted;
        break;
    }
  }
  const std::string counts_en =
      Cat(active, " ACTIVE, ", mothballed, " CLOSED_DOWN, ", deleted, " DELETED");
  const std::string counts_ru = Cat(active, " ACTIVE (в работе), ", mothballed,
                                    " CLOSED_DOWN (законсервированы), ", deleted, " DELETED");
  if (active == 0) {
    out->push_back(CheckFail(
        "set_db.roster", Cat("SET's till registry: no active till (", counts_en, ")"),
        Cat("реестр касс SET: нет ни одной кассы в работе (", counts_ru, ")"),
        "check set_db.shop_number and set_db.database_set: the registry read is empty",
        "проверьте set_db.shop_number и set_db.database_set: реестр пуст", CheckVerdict::kWarn));
  } else {
    out->push_back(CheckOk("set_db.roster", Cat("SET's till registry: ", counts_en),
                           Cat("реестр касс SET: ", counts_ru)));
  }

  std::set<int> shops = ShopsIn(*roster);
  if (auto st = CheckShops(shops, db_config.shop_number.has_value()); !st.ok()) {
    std::string list;
    for (int s : shops) Append(&list, list.empty() ? "" : ", ", s);
    out->push_back(CheckFail("set_db.shop_number",
                             Cat("SET's database holds tills of several shops (", list, ")"),
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
    std::string en = Cat("tills' last activity: ", recent, " of ", activity->size(),
                         " reported in the last 10 minutes");
    std::string ru = Cat("активность касс: ", recent, " из ", activity->size(),
                         " отвечали за последние 10 минут");
    if (recent == 0 && active > 0) {
      out->push_back(CheckFail(
          "set_db.activity", en, ru,
          "if the store is open, the tills or SET's ping are not working; if the heartbeats "
          "look hours off, set set_db.time_zone",
          "если магазин открыт, кассы или их пинг не работают; если время активности "
          "сдвинуто на часы, задайте set_db.time_zone",
          CheckVerdict::kWarn));
    } else {
      out->push_back(CheckOk("set_db.activity", en, ru));
    }
  }

  if (loading) {
    auto packages = db.ReadPackages();
    if (!packages.ok()) {
      out->push_back(QueryFailed("set_db.packages", "import packages (erp_transport_package)",
                                 "пакеты импорта (erp_transport_package)", SetSource::kPackages,
                                 packages.status()));
    } else {
      out->push_back(CheckOk("set_db.packages",
                             Cat("import packages readable (", packages->size(), " recent)"),
                             Cat("пакеты импорта читаются (последних: ", packages->size(), ")")));
    }
    auto transport = db.ReadTransport();
    if (!transport.ok()) {
      out->push_back(QueryFailed("set_db.transport", "goods transport to the tills (cash_activity)",
                                 "доставка товаров на кассы (cash_activity)", SetSource::kTransport,
                                 transport.status()));
    } else {
      out->push_back(CheckOk(
          "set_db.transport", Cat("goods transport readable (", transport->size(), " tills)"),
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
      out->push_back(CheckFail(
          "set_db.clock", en, ru, "synchronise the clocks (NTP) of the database and this server",
          "синхронизируйте часы (NTP) базы и этого сервера", CheckVerdict::kWarn));
    } else {
      out->push_back(CheckOk("set_db.clock", en, ru));
    }
  }
}

// Local time in the store's zone, "2026-12-02 21:00 (Europe/Moscow)".
std::string LocalTime(int64_t unix_ms, const std::string& zone_name) {
  absl::TimeZone tz;
  if (zone_name.empty() || !absl::LoadTimeZone(zone_name, &tz)) tz = absl::UTCTimeZone();
  return Cat(absl::FormatTime("%Y-%m-%d %H:%M", absl::FromUnixMillis(unix_ms), tz), " (",
             zone_name.empty() ? "UTC" : zone_name, ")");
}

void CheckTokenFile(const AgentConfig& cfg, std::vector<CheckLine>* out) {
  if (cfg.token_file.empty()) {
    out->push_back(CheckFail(
        "collector.token_file", "store token: written in the config file itself (collector.token)",
        "токен магазина: записан прямо в файле конфигурации (collector.token)",
        "move it to a file readable by the agent's user only (chmod 600) and name it in "
        "collector.token_file",
        "перенесите его в файл, доступный только пользователю агента (chmod 600), и укажите "
        "его в collector.token_file",
        CheckVerdict::kWarn));
    return;
  }
  struct stat st {};
  stat(cfg.token_file.c_str(), &st);  // the loader read it and refused group/other access
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
  out->push_back(CheckOk(
      "collector.token_file",
      Cat("store token ", cfg.token_file, ": mode ", mode, ", owner uid ", st.st_uid),
      Cat("токен магазина ", cfg.token_file, ": права ", mode, ", владелец uid ", st.st_uid)));
}

void CheckOutboxSpace(const AgentConfig& cfg, std::vector<CheckLine>* out) {
  // The state directory, or the nearest existing parent (it is made at start).
  std::string dir = cfg.state_dir;
  struct statvfs vfs {};
  while (statvfs(dir.c_str(), &vfs) != 0) {
    auto slash = dir.rfind('/');
    if (slash == std::string::npos || dir == "/") {
      out->push_back(
          CheckFail("outbox.space", Cat("outbox ", cfg.state_dir, ": cannot read free space"),
                    Cat("очередь событий ", cfg.state_dir, ": не удалось узнать свободное место"),
                    "check agent.state_dir", "проверьте agent.state_dir"));
      return;
    }
    dir = slash == 0 ? "/" : dir.substr(0, slash);
  }
  const auto free_bytes = static_cast<int64_t>(vfs.f_bavail) * static_cast<int64_t>(vfs.f_frsize);
  const int64_t mib = 1024 * 1024;
  std::string en = Cat("outbox ", cfg.state_dir, ": ", free_bytes / mib,
                       " MiB free (the outbox may use up to ", cfg.outbox.max_bytes / mib, " MiB)");
  std::string ru = Cat("очередь событий ", cfg.state_dir, ": свободно ", free_bytes / mib,
                       " МиБ (очередь может занять до ", cfg.outbox.max_bytes / mib, " МиБ)");
  if (free_bytes < cfg.outbox.max_bytes) {
    out->push_back(CheckFail(
        "outbox.space", en, ru, "free space on that file system, or lower outbox.max_bytes",
        "освободите место на этом разделе или уменьшите outbox.max_bytes", CheckVerdict::kWarn));
  } else {
    out->push_back(CheckOk("outbox.space", en, ru));
  }
}

void CheckCalendar(const AgentConfig& cfg, Clock& clock, std::vector<CheckLine>* out) {
  if (!cfg.calendar || cfg.calendar->time_zone_name().empty()) {
    out->push_back(CheckFail(
        "calendar", "opening hours: none configured, tills are expected around the clock",
        "часы работы: не заданы, кассы ожидаются круглосуточно",
        "add [calendar] with time_zone and the store's hours unless it is open 24/7",
        "добавьте [calendar] с time_zone и часами работы, если магазин работает не круглосуточно",
        CheckVerdict::kWarn));
    return;
  }
  const int64_t now = clock.NowMs();
  const bool open = cfg.calendar->IsOpenAt(now);
  const std::string& zone = cfg.calendar->time_zone_name();
  auto next = cfg.calendar->NextChangeAfter(now);
  std::string en = Cat("opening hours: ", open ? "open" : "closed", " now, ", LocalTime(now, zone));
  std::string ru =
      Cat("часы работы: сейчас ", open ? "открыт" : "закрыт", ", ", LocalTime(now, zone));
  if (next) {
    Append(&en, "; ", open ? "closes" : "opens", " at ", LocalTime(*next, zone));
    Append(&ru, "; ", open ? "закрывается" : "открывается", " в ", LocalTime(*next, zone));
  } else {
    Append(&en, "; no change within a year");
    Append(&ru, "; без смены в течение года");
  }
  out->push_back(CheckOk("calendar", en, ru));
}

// Whether host:port could be bound now (UDP or TCP). "" when it could.
std::string TryBind(const std::string& host_port, bool udp) {
  auto listen = ParseHostPort(host_port, {.host = HostForm::kIpv4, .allow_port_zero = true});
  if (!listen.ok()) return std::string(listen.status().message());
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(listen->port);
  inet_pton(AF_INET, listen->host.c_str(), &a.sin_addr);
  int fd = socket(AF_INET, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::strerror(errno);
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  std::string err;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) err = std::strerror(errno);
  close(fd);
  return err;
}

void CheckPushPorts(const AgentConfig& cfg, std::vector<CheckLine>* out) {
  for (const auto& [listen, udp, key] :
       {std::tuple{cfg.push_udp_listen, true, "push.udp_listen"},
        std::tuple{cfg.push_http_listen, false, "push.http_listen"}}) {
    if (listen.empty()) continue;
    std::string err = TryBind(listen, udp);
    if (err.empty()) {
      out->push_back(CheckOk(key, Cat(key, " ", listen, ": can be bound"),
                             Cat(key, " ", listen, ": порт свободен")));
    } else {
      out->push_back(CheckFail(
          key, Cat(key, " ", listen, ": cannot be bound: ", err),
          Cat(key, " ", listen, ": порт не занять: ", err),
          "if the agent is already running this is expected; otherwise free the port or "
          "change the key",
          "если агент уже запущен, так и должно быть; иначе освободите порт или измените ключ",
          CheckVerdict::kWarn));
    }
  }
}

void CheckInboxes(const AgentConfig& cfg, std::vector<CheckLine>* out) {
  if (!cfg.loading_enabled) return;
  for (const auto& dir : cfg.loading.inboxes) {
    DIR* d = opendir(dir.c_str());
    if (d == nullptr) {
      std::string err = std::strerror(errno);
      out->push_back(
          CheckFail("loading.inboxes", Cat("inbox folder ", dir, ": ", err),
                    Cat("папка входящих файлов ", dir, ": ", err),
                    "check the path in loading.inboxes and that the agent's user may read it "
                    "(group jboss, docs/install.en.md)",
                    "проверьте путь в loading.inboxes и что пользователь агента может её читать "
                    "(группа jboss, docs/install.ru.md)"));
      continue;
    }
    closedir(d);
    out->push_back(CheckOk("loading.inboxes", Cat("inbox folder ", dir, ": readable"),
                           Cat("папка входящих файлов ", dir, ": читается")));
  }
}

void CheckSetServer(const ServerCheckConfig& server, std::vector<CheckLine>* out) {
  if (!server.enabled) return;
  ServerState s = CheckServer(server, 1000);
  auto port = [&](bool up, int n, const char* what_en, const char* what_ru) {
    if (up) {
      out->push_back(CheckOk("server.ports",
                             Cat("SET server ", server.host, ":", n, " (", what_en, "): listening"),
                             Cat("сервер SET ", server.host, ":", n, " (", what_ru, "): слушает")));
    } else {
      out->push_back(CheckFail(
          "server.ports",
          Cat("SET server ", server.host, ":", n, " (", what_en, "): not listening"),
          Cat("сервер SET ", server.host, ":", n, " (", what_ru, "): не слушает"),
          "check that SET Retail runs on this server, or set server.host and the "
          "server.port_* keys",
          "проверьте, что SET Retail запущен на этом сервере, или задайте server.host и ключи "
          "server.port_*",
          CheckVerdict::kWarn));
    }
  };
  port(s.port_8090, server.port_soap, "SOAP services", "веб-сервисы SOAP");
  port(s.port_8091, server.port_transport, "file transport", "файловый транспорт");
  port(s.port_5432, server.port_db, "PostgreSQL", "PostgreSQL");
  if (s.deploy_failed) {
    out->push_back(
        CheckFail("server.markers",
                  Cat("SET application: ", server.failed_marker, " is present (deployment failed)"),
                  Cat("приложение SET: есть ", server.failed_marker, " (развёртывание не удалось)"),
                  "look at SET's server.log and redeploy",
                  "посмотрите server.log SET и разверните заново", CheckVerdict::kWarn));
  } else if (s.deployed) {
    out->push_back(CheckOk("server.markers",
                           Cat("SET application: ", server.deployed_marker, " present"),
                           Cat("приложение SET: ", server.deployed_marker, " на месте")));
  } else {
    out->push_back(CheckFail(
        "server.markers", Cat("SET application: ", server.deployed_marker, " not found"),
        Cat("приложение SET: ", server.deployed_marker, " не найден"),
        "set server.deployed_marker to where this SET installation keeps it, or server.check "
        "= false",
        "укажите server.deployed_marker для этой установки SET или server.check = false",
        CheckVerdict::kWarn));
  }
}

// A collector that could not be reached: no answer within the timeout (a
// port that takes connections and never answers), or not reachable at all.
CheckLine Unreachable(const std::string& where, const std::string& where_ru,
                      const CollectorProbe& p, int64_t timeout_ms) {
  const std::string& msg = p.message;
  if (p.code == 4) {  // DEADLINE_EXCEEDED: a port that takes connections but never answers
    char secs[32];
    std::snprintf(secs, sizeof secs, "%g", static_cast<double>(timeout_ms) / 1000.0);
    return CheckFail(
        "collector", Cat(where, ": no answer within ", secs, " s (", msg, ")"),
        Cat(where_ru, ": нет ответа за ", secs, " с (", msg, ")"),
        "check collector.address and that the collector runs there; on a slow link, run the check "
        "again with a longer --timeout",
        "проверьте collector.address и что коллектор запущен по этому адресу; на медленном канале "
        "повторите проверку с большим --timeout");
  }
  return CheckFail(
      "collector", Cat(where, ": not reachable (", msg, ")"),
      Cat(where_ru, ": недоступен (", msg, ")"),
      "check collector.address, that the collector runs, and that the firewall lets this server "
      "out to that host and TCP port",
      "проверьте collector.address, что коллектор запущен и что межсетевой экран выпускает этот "
      "сервер на этот хост и TCP-порт");
}

void CheckCollector(const AgentConfig& cfg, int64_t timeout_ms, Clock& clock,
                    std::vector<CheckLine>* out) {
  UplinkOptions o;
  o.target = cfg.collector_address;
  o.store_id = cfg.store_id;
  o.token = cfg.token;
  o.server_name = cfg.server_name;
  // The id the agent uses if it has one; the check makes none (it changes nothing).
  o.agent_id = cfg.agent_id;
  if (o.agent_id.empty()) {
    if (auto id = ReadWholeFile(cfg.state_dir + "/agent-id"); id.ok())
      o.agent_id = std::string(Trim(*id));
  }
  if (o.agent_id.empty()) o.agent_id = Cat("check-", cfg.store_id);
  // Read and checked with the config: a CA file that is unreadable or holds
  // no certificate does not load (exit 2 before any line).
  o.ca_pem = cfg.ca_pem;
  const std::string where = Cat("collector ", cfg.collector_address);
  const std::string where_ru = Cat("коллектор ", cfg.collector_address);
  CollectorProbe p = ProbeCollector(o, timeout_ms, clock);
  const std::string msg = p.message;
  switch (p.code) {
    case 0: {  // grpc::StatusCode::OK
      std::string tls_en =
          o.ca_pem.empty() ? "plaintext (loopback)" : Cat("TLS verified against ", cfg.ca_file);
      std::string tls_ru =
          o.ca_pem.empty() ? "без шифрования (loopback)" : Cat("TLS, проверен по ", cfg.ca_file);
      out->push_back(CheckOk("collector",
                             Cat(where, ": reachable, ", tls_en, ", token accepted for store ",
                                 cfg.store_id, " (", p.round_trip_ms, " ms)"),
                             Cat(where_ru, ": доступен, ", tls_ru, ", токен принят для магазина ",
                                 cfg.store_id, " (", p.round_trip_ms, " мс)")));
      const int64_t abs_offset = p.offset_ms < 0 ? -p.offset_ms : p.offset_ms;
      char secs[32];
      std::snprintf(secs, sizeof secs, "%+.1f", static_cast<double>(p.offset_ms) / 1000.0);
      std::string en = Cat("clock against the collector: ", secs, " s");
      std::string ru = Cat("часы относительно коллектора: ", secs, " с");
      if (abs_offset > 5000) {
        out->push_back(CheckFail(
            "collector.clock", en, ru, "synchronise this server's clock (NTP, chronyd or ntpd)",
            "синхронизируйте часы этого сервера (NTP, chronyd или ntpd)", CheckVerdict::kWarn));
      } else {
        out->push_back(CheckOk("collector.clock", en, ru));
      }
      return;
    }
    case 16:  // UNAUTHENTICATED
      out->push_back(CheckFail(
          "collector.token", Cat(where, ": the store token was refused (", msg, ")"),
          Cat(where_ru, ": токен магазина отклонён (", msg, ")"),
          Cat("ask support for this store's token ('setdiag-collector token create --store ",
              cfg.store_id, "') and write it to ",
              cfg.token_file.empty() ? "collector.token_file" : cfg.token_file, " (chmod 600)"),
          Cat("запросите у поддержки токен этого магазина ('setdiag-collector token create "
              "--store ",
              cfg.store_id, "') и запишите его в ",
              cfg.token_file.empty() ? "collector.token_file" : cfg.token_file, " (chmod 600)")));
      return;
    case 7:  // PERMISSION_DENIED
      out->push_back(
          CheckFail("collector.token",
                    Cat(where, ": the token is not for store ", cfg.store_id, " (", msg, ")"),
                    Cat(where_ru, ": токен выдан не для магазина ", cfg.store_id, " (", msg, ")"),
                    "check agent.store_id, or ask support for this store's own token",
                    "проверьте agent.store_id или запросите токен именно этого магазина"));
      return;
    default:
      break;
  }
  const LinkTlsProblem tls = ClassifyTlsProblem(!o.ca_pem.empty(), p.code, msg);
  switch (tls) {
    case LinkTlsProblem::kCollectorExpectsTls:
      out->push_back(CheckFail(
          "collector.tls",
          Cat(where, ": closed the connection without answering: it probably expects TLS (", msg,
              ")"),
          Cat(where_ru, ": закрыл соединение без ответа: вероятно, он ждёт TLS (", msg, ")"),
          "set collector.ca_file to the collector's CA certificate (ca.pem from support), and "
          "collector.server_name if the certificate names another host",
          "укажите в collector.ca_file сертификат УЦ коллектора (ca.pem от поддержки) и "
          "collector.server_name, если в сертификате другое имя хоста"));
      return;
    case LinkTlsProblem::kCollectorWithoutTls:
      out->push_back(CheckFail(
          "collector.tls",
          Cat(where, ": does not speak TLS on this port, it answered in plaintext (", msg, ")"),
          Cat(where_ru, ": не использует TLS на этом порту, ответил без шифрования (", msg, ")"),
          "check the port in collector.address; a loopback collector without TLS needs no "
          "collector.ca_file",
          "проверьте порт в collector.address; коллектору на loopback без TLS collector.ca_file "
          "не нужен"));
      return;
    case LinkTlsProblem::kHandshakeFailed:
      out->push_back(CheckFail(
          "collector.tls", Cat(where, ": TLS failed (", msg, ")"),
          Cat(where_ru, ": ошибка TLS (", msg, ")"),
          "collector.ca_file must be the CA that signed the collector's certificate, and the "
          "certificate must name the address's host (or set collector.server_name)",
          "collector.ca_file должен быть сертификатом УЦ, подписавшего сертификат коллектора, а "
          "сертификат должен содержать имя хоста из адреса (или задайте collector.server_name)"));
      return;
    case LinkTlsProblem::kNone:
      break;
  }
  out->push_back(Unreachable(where, where_ru, p, timeout_ms));
}

}  // namespace

static void CheckSetDbPart(const AgentConfig& cfg, Clock& clock, std::vector<CheckLine>* out_lines);

std::vector<CheckLine> RunChecks(const AgentConfig& cfg, Clock& clock,
                                 const CheckOptions& options) {
  std::vector<CheckLine> out;
  out.push_back(
      CheckOk("config", Cat("config ", cfg.config_path, ": valid, store ", cfg.store_id),
              Cat("конфигурация ", cfg.config_path, ": без ошибок, магазин ", cfg.store_id)));
  CheckTokenFile(cfg, &out);
  CheckOutboxSpace(cfg, &out);
  CheckCalendar(cfg, clock, &out);
  CheckPushPorts(cfg, &out);
  CheckInboxes(cfg, &out);
  CheckSetServer(cfg.loading_enabled ? cfg.loading.server : cfg.tills.server, &out);
  CheckSetDbPart(cfg, clock, &out);
  CheckCollector(cfg, options.collector_timeout_ms, clock, &out);
  return out;
}

static void CheckSetDbPart(const AgentConfig& cfg, Clock& clock,
                           std::vector<CheckLine>* out_lines) {
  std::vector<CheckLine>& out = *out_lines;
  std::optional<SetDbConfig> db = cfg.tills.set_db ? cfg.tills.set_db : cfg.loading.set_db;
  if (!db) {
    out.push_back(
        CheckFail("set_db", "SET's database: not configured ([set_db] enabled = true is missing)",
                  "база SET: не настроена (нет [set_db] enabled = true)",
                  "add [set_db] with enabled = true unless the tills push their heartbeats",
                  "добавьте [set_db] с enabled = true, если кассы не присылают пинги сами",
                  CheckVerdict::kWarn));
    return;
  }
  CheckSetDb(*db, cfg.loading_enabled, clock, &out);
}

}  // namespace setdiag::agent
