#include "collector/tickets/ticket_evidence.h"

#include <algorithm>
#include <cstdint>
#include <string_view>

#include "absl/time/time.h"
#include "common/strings.h"
#include "common/time_format.h"
#include "common/utf8.h"

namespace setdiag::collector {
namespace {

using json = nlohmann::json;

// One free-text value from a store, shown on one line and bounded.
std::string Short(std::string_view s, size_t max = 200) {
  // Not cutting a UTF-8 character in half.
  std::string out(Utf8PrefixBytes(s, max));
  if (out.size() < s.size()) out += "...";
  for (char& c : out) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  return out;
}

// A payload value as text: strings as they are, numbers as numbers.
std::string Scalar(const json& j) {
  if (j.is_string()) return Short(j.get<std::string>());
  if (j.is_null()) return "";
  return j.dump();
}

std::string Text(const json& j, const char* key) {
  return j.is_object() && j.contains(key) ? Scalar(j[key]) : std::string();
}

int64_t Int(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key)) return 0;
  const json& v = j[key];
  return v.is_number_integer() ? v.get<int64_t>()
         : v.is_number()       ? static_cast<int64_t>(v.get<double>())
                               : 0;
}

bool Has(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && !j[key].is_null();
}

std::string Duration(int64_t s, bool ru) {
  if (s < 0) s = 0;
  if (s < 120) return Cat(s, ru ? " с" : " s");
  if (s < 2 * 3600) return Cat(s / 60, ru ? " мин" : " min");
  int64_t h = s / 3600, m = (s % 3600) / 60;
  if (m == 0) return Cat(h, ru ? " ч" : " h");
  return Cat(h, ru ? " ч " : " h ", m, ru ? " мин" : " min");
}

const char* ProbeText(std::string_view probe, bool ru) {
  if (probe == "answers") return ru ? "отвечает по сети" : "answers on the network";
  if (probe == "refused") return ru ? "отклоняет подключение" : "refuses connections";
  if (probe == "no_answer") return ru ? "не отвечает по сети" : "no answer on the network";
  return ru ? "по сети не проверялась" : "not probed on the network";
}

std::string More(size_t n, bool ru) { return ru ? Cat("- и ещё ", n) : Cat("- and ", n, " more"); }

// The first `listed` elements of an array, and how many were left out.
json Head(const json& arr, size_t listed, size_t* more) {
  json out = json::array();
  *more = 0;
  if (!arr.is_array()) return out;
  for (size_t i = 0; i < arr.size(); ++i) {
    if (i < listed) {
      out.push_back(arr[i]);
    } else {
      ++*more;
    }
  }
  return out;
}

void LastImport(const json& payload, json& ev) {
  if (!payload.contains("last_successful_import")) return;
  const json& li = payload["last_successful_import"];
  ev["last_successful_import"] =
      li.is_object() ? json{{"ti", li.value("ti", json())}, {"arrived_ms", Int(li, "arrived_ms")}}
                     : json(nullptr);
}

void LastImportLines(const json& ev, std::vector<std::string>& en, std::vector<std::string>& ru) {
  if (!ev.contains("last_successful_import")) return;
  const json& li = ev["last_successful_import"];
  if (li.is_object()) {
    en.push_back(Cat("Last successful import: package ", Text(li, "ti"), " at ",
                     FormatMsk(Int(li, "arrived_ms"))));
    ru.push_back(Cat("Последний успешный импорт: пакет ", Text(li, "ti"), ", ",
                     FormatMsk(Int(li, "arrived_ms"))));
  } else {
    en.push_back("Last successful import: none in SET's recent packages");
    ru.push_back("Последний успешный импорт: среди последних пакетов SET не найден");
  }
}

void Tills(const json& payload, size_t listed, json& ev, std::vector<std::string>& en,
           std::vector<std::string>& ru) {
  if (!payload.contains("stopped_tills") || !payload["stopped_tills"].is_array()) return;
  json all = json::array();
  for (const auto& t : payload["stopped_tills"]) {
    if (!t.is_object()) continue;
    json till = {{"number", t.value("number", json())},
                 {"last_heartbeat_ms",
                  Has(t, "last_heartbeat_ms") ? json(Int(t, "last_heartbeat_ms")) : json(nullptr)},
                 {"probe", Text(t, "probe").empty() ? "not_probed" : Text(t, "probe")},
                 {"stopped_since_ms", Int(t, "stopped_since_ms")}};
    if (Has(t, "address")) till["address"] = Text(t, "address");
    all.push_back(std::move(till));
  }
  // The longest silent first: those are the ones to look at.
  std::stable_sort(all.begin(), all.end(), [](const json& a, const json& b) {
    auto key = [](const json& t) {
      return t["last_heartbeat_ms"].is_null() ? INT64_MIN : t["last_heartbeat_ms"].get<int64_t>();
    };
    return key(a) < key(b);
  });
  size_t more = 0;
  json head = Head(all, listed, &more);
  const int64_t stopped =
      Has(payload, "stopped") ? Int(payload, "stopped") : static_cast<int64_t>(all.size());
  ev["stopped"] = stopped;
  if (Has(payload, "expected")) ev["expected"] = Int(payload, "expected");
  ev["tills"] = head;
  ev["tills_more"] = more;
  const std::string of_en =
      Has(payload, "expected") ? Cat(" (", stopped, " of ", Int(payload, "expected"), ")") : "";
  const std::string of_ru =
      Has(payload, "expected") ? Cat(" (", stopped, " из ", Int(payload, "expected"), ")") : "";
  en.push_back(Cat("Stopped tills", of_en, ":"));
  ru.push_back(Cat("Остановленные кассы", of_ru, ":"));
  for (const auto& t : head) {
    const bool beat = !t["last_heartbeat_ms"].is_null();
    const std::string probe = t["probe"].get<std::string>();
    en.push_back(
        Cat("- till ", Scalar(t["number"]), ": last heartbeat ",
            beat ? FormatMsk(t["last_heartbeat_ms"].get<int64_t>()) : std::string("never seen"),
            "; ", ProbeText(probe, false)));
    ru.push_back(
        Cat("- касса ", Scalar(t["number"]), ": последний сигнал ",
            beat ? FormatMsk(t["last_heartbeat_ms"].get<int64_t>()) : std::string("не было"), "; ",
            ProbeText(probe, true)));
  }
  if (more > 0) {
    en.push_back(More(more, false));
    ru.push_back(More(more, true));
  }
}

void Cause(const json& payload, json& ev, std::vector<std::string>& en,
           std::vector<std::string>& ru) {
  if (!payload.contains("likely_cause") || !payload["likely_cause"].is_object()) return;
  const json& c = payload["likely_cause"];
  ev["likely_cause"] = {{"code", Text(c, "code")}, {"en", Text(c, "en")}, {"ru", Text(c, "ru")}};
  if (!Text(c, "en").empty()) en.push_back(Cat("Likely cause: ", Text(c, "en")));
  if (!Text(c, "ru").empty()) ru.push_back(Cat("Вероятная причина: ", Text(c, "ru")));
}

void Reasons(const json& payload, bool lines, json& ev, std::vector<std::string>& en,
             std::vector<std::string>& ru) {
  if (!payload.contains("reasons") || !payload["reasons"].is_array() || payload["reasons"].empty())
    return;
  json reasons = json::array();
  std::string joined;
  for (const auto& r : payload["reasons"]) {
    std::string s = Scalar(r);
    if (s.empty()) continue;
    Append(&joined, joined.empty() ? "" : "; ", s);
    reasons.push_back(s);
  }
  if (reasons.empty()) return;
  ev["reasons"] = reasons;
  if (!lines) return;
  // The agent words its reasons in English only.
  en.push_back(Cat("Reasons: ", joined));
  ru.push_back(Cat("Причины (от агента): ", joined));
}

void Halted(const json& payload, json& ev, std::vector<std::string>& en,
            std::vector<std::string>& ru) {
  if (payload.contains("stuck_packages") && payload["stuck_packages"].is_array() &&
      !payload["stuck_packages"].empty()) {
    const json* oldest = nullptr;
    for (const auto& p : payload["stuck_packages"]) {
      if (p.is_object() && (!oldest || Int(p, "since_ms") < Int(*oldest, "since_ms"))) oldest = &p;
    }
    if (oldest) {
      const json& p = *oldest;
      ev["stuck_package"] = {{"ti", p.value("ti", json())},
                             {"since_ms", Int(p, "since_ms")},
                             {"stuck_for_s", Int(p, "stuck_for_s")},
                             {"import_type", Text(p, "import_type")}};
      ev["stuck_packages"] = payload["stuck_packages"].size();
      const std::string type_en =
          Text(p, "import_type").empty() ? "" : Cat(" (import type ", Text(p, "import_type"), ")");
      const std::string type_ru =
          Text(p, "import_type").empty() ? "" : Cat(" (тип импорта ", Text(p, "import_type"), ")");
      const size_t n = payload["stuck_packages"].size();
      en.push_back(Cat("Stuck package: ", Text(p, "ti"), type_en, ", \"in process\" since ",
                       FormatMsk(Int(p, "since_ms")), " (", Duration(Int(p, "stuck_for_s"), false),
                       ")", n > 1 ? Cat("; ", n, " stuck in all") : ""));
      ru.push_back(Cat("Зависший пакет: ", Text(p, "ti"), type_ru, ", «в обработке» с ",
                       FormatMsk(Int(p, "since_ms")), " (", Duration(Int(p, "stuck_for_s"), true),
                       ")", n > 1 ? Cat("; всего зависших: ", n) : ""));
    }
  }
  if (payload.contains("oldest_waiting_file") && payload["oldest_waiting_file"].is_object()) {
    const json& f = payload["oldest_waiting_file"];
    ev["oldest_waiting_file"] = {{"path", Text(f, "path")},
                                 {"name", Text(f, "name")},
                                 {"mtime_ms", Int(f, "mtime_ms")},
                                 {"age_s", Int(f, "age_s")},
                                 {"files", Int(f, "files")}};
    en.push_back(Cat("Oldest waiting file: ", Text(f, "name"), " in ", Text(f, "path"), " since ",
                     FormatMsk(Int(f, "mtime_ms")), " (", Duration(Int(f, "age_s"), false), "; ",
                     Int(f, "files"), " file(s) waiting)"));
    ru.push_back(Cat("Самый старый ожидающий файл: ", Text(f, "name"), " в ", Text(f, "path"),
                     " с ", FormatMsk(Int(f, "mtime_ms")), " (", Duration(Int(f, "age_s"), true),
                     "; файлов в очереди: ", Int(f, "files"), ")"));
  }
  if (payload.contains("import_service") && payload["import_service"].is_object()) {
    const json& s = payload["import_service"];
    ev["import_service"] = {{"checked", s.value("checked", false)},
                            {"ok", s.value("ok", false)},
                            {"error", Text(s, "error")}};
    if (s.value("checked", false) && !s.value("ok", false)) {
      const std::string err = Text(s, "error");
      en.push_back(
          Cat("Import web service: does not answer", err.empty() ? "" : Cat(" (", err, ")")));
      ru.push_back(Cat("Веб-сервис импорта: не отвечает", err.empty() ? "" : Cat(" (", err, ")")));
    }
  }
}

void Transport(const json& payload, size_t listed, json& ev, std::vector<std::string>& en,
               std::vector<std::string>& ru) {
  if (!payload.contains("lagging_tills") || !payload["lagging_tills"].is_array()) return;
  size_t more = 0;
  json head = Head(payload["lagging_tills"], listed, &more);
  ev["lagging"] = Has(payload, "lagging") ? Int(payload, "lagging")
                                          : static_cast<int64_t>(payload["lagging_tills"].size());
  if (Has(payload, "expected")) ev["expected"] = Int(payload, "expected");
  ev["lagging_tills"] = head;
  ev["lagging_more"] = more;
  const std::string of_en = Has(payload, "expected") ? Cat(" (", ev["lagging"].get<int64_t>(),
                                                           " of ", Int(payload, "expected"), ")")
                                                     : "";
  const std::string of_ru = Has(payload, "expected") ? Cat(" (", ev["lagging"].get<int64_t>(),
                                                           " из ", Int(payload, "expected"), ")")
                                                     : "";
  en.push_back(Cat("Tills waiting for goods", of_en, ":"));
  ru.push_back(Cat("Кассы, не получившие товары", of_ru, ":"));
  for (const auto& t : head) {
    en.push_back(Cat("- till ", Text(t, "till"), ": ", Int(t, "not_loaded"),
                     " item(s) not loaded, waiting since ", FormatMsk(Int(t, "waiting_since_ms")),
                     ", last load ", FormatMsk(Int(t, "last_load_ms"))));
    ru.push_back(Cat("- касса ", Text(t, "till"), ": не загружено позиций: ", Int(t, "not_loaded"),
                     ", ждёт с ", FormatMsk(Int(t, "waiting_since_ms")), ", последняя загрузка ",
                     FormatMsk(Int(t, "last_load_ms"))));
  }
  if (more > 0) {
    en.push_back(More(more, false));
    ru.push_back(More(more, true));
  }
}

void ErpSilent(const json& payload, json& ev, std::vector<std::string>& en,
               std::vector<std::string>& ru) {
  if (!Has(payload, "silent_since_ms")) return;
  ev["silent_since_ms"] = Int(payload, "silent_since_ms");
  if (Has(payload, "expected_every_s")) ev["expected_every_s"] = Int(payload, "expected_every_s");
  const int64_t every = Int(payload, "expected_every_s");
  en.push_back(Cat("No package from the ERP since ", FormatMsk(Int(payload, "silent_since_ms")),
                   every > 0 ? Cat(" (expected every ", Duration(every, false), ")") : ""));
  ru.push_back(Cat("Нет пакетов от учётной системы с ", FormatMsk(Int(payload, "silent_since_ms")),
                   every > 0 ? Cat(" (ожидаются каждые ", Duration(every, true), ")") : ""));
  if (payload.contains("last_package")) {
    const json& p = payload["last_package"];
    ev["last_package"] =
        p.is_object() ? json{{"ti", p.value("ti", json())}, {"arrived_ms", Int(p, "arrived_ms")}}
                      : json(nullptr);
    if (p.is_object()) {
      en.push_back(Cat("Last package: ", Text(p, "ti"), " at ", FormatMsk(Int(p, "arrived_ms"))));
      ru.push_back(Cat("Последний пакет: ", Text(p, "ti"), ", ", FormatMsk(Int(p, "arrived_ms"))));
    }
  }
}

void ImportErrors(const json& payload, size_t listed, json& ev, std::vector<std::string>& en,
                  std::vector<std::string>& ru) {
  if (!payload.contains("failed_packages") || !payload["failed_packages"].is_array()) return;
  size_t more = 0;
  json head = json::array();
  for (const auto& p : Head(payload["failed_packages"], listed, &more)) {
    json pkg = {{"ti", p.value("ti", json())},
                {"arrived_ms", Int(p, "arrived_ms")},
                {"status_name", Text(p, "status_name")},
                {"import_type", Text(p, "import_type")},
                {"message", Text(p, "message")}};
    en.push_back(Cat("- package ", Text(p, "ti"), " (", FormatMsk(Int(p, "arrived_ms")),
                     "): ", Text(p, "status_name"),
                     Text(p, "message").empty() ? "" : Cat(": ", Text(p, "message"))));
    ru.push_back(Cat("- пакет ", Text(p, "ti"), " (", FormatMsk(Int(p, "arrived_ms")),
                     "): ", Text(p, "status_name"),
                     Text(p, "message").empty() ? "" : Cat(": ", Text(p, "message"))));
    head.push_back(std::move(pkg));
  }
  if (head.empty()) return;
  en.insert(en.end() - static_cast<std::ptrdiff_t>(head.size()), "Rejected packages:");
  ru.insert(ru.end() - static_cast<std::ptrdiff_t>(head.size()), "Отклонённые пакеты:");
  ev["failed_packages"] = head;
  ev["failed_more"] = more;
  if (more > 0) {
    en.push_back(More(more, false));
    ru.push_back(More(more, true));
  }
}

void Disks(const json& payload, json& ev, std::vector<std::string>& en,
           std::vector<std::string>& ru) {
  if (!payload.contains("disks") || !payload["disks"].is_array()) return;
  json low = json::array();
  for (const auto& d : payload["disks"]) {
    if (!d.is_object() || !d.value("low", false)) continue;
    low.push_back({{"path", Text(d, "path")},
                   {"free_bytes", Int(d, "free_bytes")},
                   {"total_bytes", Int(d, "total_bytes")}});
    en.push_back(
        Cat("Disk ", Text(d, "path"), ": ", Int(d, "free_bytes") / (1024 * 1024), " MiB free"));
    ru.push_back(
        Cat("Диск ", Text(d, "path"), ": свободно ", Int(d, "free_bytes") / (1024 * 1024), " МиБ"));
  }
  if (!low.empty()) ev["disks_low"] = low;
}

}  // namespace

json EvidenceOf(const std::string& kind, const json& payload, size_t listed) {
  if (!payload.is_object()) return nullptr;
  json ev = {{"kind", kind}};
  std::vector<std::string> en, ru;
  Tills(payload, listed, ev, en, ru);
  Cause(payload, ev, en, ru);
  Halted(payload, ev, en, ru);
  Transport(payload, listed, ev, en, ru);
  ErpSilent(payload, ev, en, ru);
  ImportErrors(payload, listed, ev, en, ru);
  // The agent's own wording only where nothing structured says it better
  // (set.server_down; a loading.halted reason is the stuck package or file).
  Reasons(payload, en.empty(), ev, en, ru);
  Disks(payload, ev, en, ru);
  LastImport(payload, ev);
  LastImportLines(ev, en, ru);
  if (en.empty() && ru.empty()) return nullptr;
  ev["lines_en"] = en;
  ev["lines_ru"] = ru;
  return ev;
}

std::string EvidenceText(const json& evidence, bool ru) {
  const char* key = ru ? "lines_ru" : "lines_en";
  if (!evidence.is_object() || !evidence.contains(key) || !evidence[key].is_array()) return "";
  std::string out;
  for (const auto& line : evidence[key]) {
    if (line.is_string()) Append(&out, line.get<std::string>(), "\n");
  }
  return out;
}

}  // namespace setdiag::collector
