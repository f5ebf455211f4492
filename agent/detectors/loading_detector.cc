#include "agent/detectors/loading_detector.h"

#include <algorithm>

#include "common/strings.h"

namespace setdiag::agent {

using json = nlohmann::json;

namespace {
constexpr int kInProcess = 2;
constexpr int kCorrect = 3;
bool IsFailure(int status) { return status == 1 || status == 4 || status == 5; }

std::string Percent(uint64_t part, uint64_t whole) {
  if (whole == 0) return "0";
  return std::to_string(part * 100 / whole);
}

// The newest package, and the newest one imported correctly (null: none).
struct LatestPackages {
  const PackageObservation* newest = nullptr;
  const PackageObservation* last_ok = nullptr;
};

LatestPackages FindLatest(const std::vector<PackageObservation>& packages) {
  LatestPackages latest;
  for (const auto& p : packages) {
    if (!latest.newest || p.arrived_ms > latest.newest->arrived_ms) latest.newest = &p;
    if (p.status == kCorrect && (!latest.last_ok || p.arrived_ms > latest.last_ok->arrived_ms))
      latest.last_ok = &p;
  }
  return latest;
}

// A package as the evidence names it; null for none.
json PackageRef(const PackageObservation* p) {
  return p ? json{{"ti", p->ti}, {"arrived_ms", p->arrived_ms}} : json(nullptr);
}

// Why the server application or its ports count as down (unknown: none).
json ServerReasons(const ServerState& server) {
  json reasons = json::array();
  if (server.known) {
    if (!server.deployed) reasons.push_back("Set10.ear is not deployed");
    if (server.deploy_failed) reasons.push_back("Set10.ear failed to deploy");
    if (!server.port_8090) reasons.push_back("port 8090 (web services, tills) is closed");
    if (!server.port_8091) reasons.push_back("port 8091 (file transport) is closed");
    if (!server.port_5432)
      reasons.push_back(Cat("port ", server.db_port, " (PostgreSQL) is closed"));
  }
  return reasons;
}

// A volume is nearly full below its share of free space, or below the free
// bytes (at most half the volume) the policy asks for.
bool DiskLow(const DiskObservation& d, const LoadingPolicy& policy) {
  uint64_t need = std::max<uint64_t>(
      static_cast<uint64_t>(static_cast<double>(d.total_bytes) * policy.disk_min_free_fraction),
      std::min(policy.disk_min_free_bytes, d.total_bytes / 2));
  return d.total_bytes > 0 && d.free_bytes < need;
}
}  // namespace

LoadingDetector::LoadingDetector(LoadingPolicy policy, std::string episode_prefix)
    : policy_(policy), prefix_(std::move(episode_prefix)) {}

void LoadingDetector::Step(Condition& c, const char* kind, Severity severity, bool holds,
                           int64_t confirm_ms, const LoadingSnapshot& s, const json& evidence,
                           std::vector<Finding>& out, bool can_clear) {
  if (s.maintenance) holds = false;
  if (holds) {
    c.clear_since.reset();
    if (c.active) return;
    if (!c.pending_since) c.pending_since = s.now_ms;
    if (s.now_ms - *c.pending_since < confirm_ms) {
      deadlines_.push_back(*c.pending_since + confirm_ms);
      return;
    }
    c.active = true;
    c.since_ms = s.now_ms;
    c.episode = Cat(prefix_, "-", kind, "-", s.now_ms);
    c.pending_since.reset();
    json payload = evidence;
    payload["state"] = "raised";
    payload["episode"] = c.episode;
    out.push_back({kind, severity, s.now_ms, std::move(payload)});
    return;
  }
  c.pending_since.reset();
  if (!c.active) return;
  if (!can_clear && !s.maintenance) {
    c.clear_since.reset();
    return;
  }
  if (!c.clear_since) c.clear_since = s.now_ms;
  if (s.now_ms - *c.clear_since < policy_.clear_ms) {
    deadlines_.push_back(*c.clear_since + policy_.clear_ms);
    return;
  }
  json payload = evidence;
  payload["state"] = "cleared";
  payload["episode"] = c.episode;
  payload["duration_s"] = (s.now_ms - c.since_ms) / 1000;
  out.push_back({kind, severity, s.now_ms, std::move(payload)});
  c.active = false;
  c.clear_since.reset();
}

std::vector<Finding> LoadingDetector::Evaluate(const LoadingSnapshot& s) {
  evaluated_ = true;
  deadlines_.clear();
  std::vector<Finding> out;

  // The server itself: files and ports, independent of SET's database.
  StepServer(s, out);
  const bool service_dead = ImportServiceDead(s);
  const LatestPackages latest = FindLatest(s.packages);
  const json last_import = PackageRef(latest.last_ok);
  // Inbox files and the web service do not need SET's database; packages do.
  StepHalted(s, service_dead, last_import, out);

  if (!s.db_ok) return out;  // unknown is not halted: nothing else changes

  // Transport to the tills: only while the store expects its tills to work;
  // after an opening, waiting is counted from the opening.
  NoteTillsOpening(s);
  StepTransport(s, last_import, out);
  StepErpSilent(s, latest.newest, out);
  ReportImportErrors(s, latest.last_ok, out);
  return out;
}

void LoadingDetector::StepServer(const LoadingSnapshot& s, std::vector<Finding>& out) {
  json reasons = ServerReasons(s.server);
  json disks = json::array();
  for (const auto& d : s.disks) {
    bool low = DiskLow(d, policy_);
    disks.push_back({{"path", d.path},
                     {"free_bytes", d.free_bytes},
                     {"total_bytes", d.total_bytes},
                     {"low", low}});
    if (low)
      reasons.push_back(
          Cat("volume ", d.path, " nearly full: ", Percent(d.free_bytes, d.total_bytes), "% free"));
  }
  json evidence = {
      {"reasons", reasons},
      {"server",
       {{"known", s.server.known},
        {"set10_deployed", s.server.deployed},
        {"set10_failed", s.server.deploy_failed},
        {"port_8090", s.server.port_8090},
        {"port_8091", s.server.port_8091},
        {"port_5432", s.server.port_5432}}},
      {"disks", disks},
      {"summary_en", reasons.empty() ? "SET server healthy" : "SET server down"},
      {"summary_ru", reasons.empty() ? "Сервер SET работает" : "Сервер SET не работает"}};
  Step(server_, "set.server_down", Severity::kImportant, !reasons.empty(),
       policy_.server_confirm_ms, s, evidence, out);
}

bool LoadingDetector::ImportServiceDead(const LoadingSnapshot& s) {
  const int64_t now = s.now_ms;
  // The import web service counts as dead only after failing for a while.
  if (s.import_service_ok.has_value() && !*s.import_service_ok) {
    if (!service_down_since_) service_down_since_ = now;
  } else {
    service_down_since_.reset();
  }
  const bool service_dead =
      service_down_since_ && now - *service_down_since_ >= policy_.service_confirm_ms;
  if (service_down_since_ && !service_dead)
    deadlines_.push_back(*service_down_since_ + policy_.service_confirm_ms);
  return service_dead;
}

void LoadingDetector::StepHalted(const LoadingSnapshot& s, bool service_dead,
                                 const json& last_import, std::vector<Finding>& out) {
  json reasons = json::array();
  bool waiting = false;
  json stuck = StuckPackages(s, waiting);
  if (!stuck.empty())
    reasons.push_back(Cat(stuck.size(), " import package(s) stuck \"in process\""));
  json oldest_file = OldestWaitingFile(s, reasons, waiting);
  if (service_dead && waiting)
    reasons.push_back("the import web service does not answer while imports wait");
  json evidence = {{"reasons", reasons},
                   {"stuck_packages", stuck},
                   {"oldest_waiting_file", oldest_file},
                   {"import_service",
                    {{"checked", s.import_service_ok.has_value()},
                     {"ok", s.import_service_ok.value_or(false)},
                     {"error", s.import_service_error}}},
                   {"last_successful_import", last_import},
                   {"summary_en", "Goods and prices loading halted"},
                   {"summary_ru", "Остановлена загрузка товаров и цен"}};
  // Without the database nothing clears.
  Step(halted_, "loading.halted", Severity::kCritical, !reasons.empty(), 0, s, evidence, out,
       s.db_ok);
}

json LoadingDetector::StuckPackages(const LoadingSnapshot& s, bool& waiting) {
  const int64_t now = s.now_ms;
  json stuck = json::array();
  for (const auto& p : s.packages) {
    if (p.status != kInProcess) continue;
    waiting = true;
    int64_t due = p.arrived_ms + policy_.stuck_ms;
    if (now > due) {
      stuck.push_back({{"ti", p.ti},
                       {"since_ms", p.arrived_ms},
                       {"stuck_for_s", (now - p.arrived_ms) / 1000},
                       {"import_type", p.import_type}});
    } else {
      deadlines_.push_back(due + 1);
    }
  }
  return stuck;
}

json LoadingDetector::OldestWaitingFile(const LoadingSnapshot& s, json& reasons, bool& waiting) {
  const int64_t now = s.now_ms;
  json oldest_file = nullptr;
  for (const auto& in : s.inboxes) {
    if (in.files > 0) waiting = true;
    if (!in.oldest_mtime_ms) continue;
    int64_t due = *in.oldest_mtime_ms + policy_.inbox_age_ms;
    if (now > due) {
      int64_t age_s = (now - *in.oldest_mtime_ms) / 1000;
      reasons.push_back(Cat("file ", in.oldest_name, " waits in ", in.path, " for ",
                            age_s < 120 ? Cat(age_s, " s") : Cat(age_s / 60, " min")));
    } else {
      deadlines_.push_back(due + 1);
    }
    if (oldest_file.is_null() || *in.oldest_mtime_ms < oldest_file["mtime_ms"].get<int64_t>()) {
      oldest_file = {{"path", in.path},
                     {"name", in.oldest_name},
                     {"mtime_ms", *in.oldest_mtime_ms},
                     {"age_s", (now - *in.oldest_mtime_ms) / 1000},
                     {"files", in.files}};
    }
  }
  return oldest_file;
}

void LoadingDetector::NoteTillsOpening(const LoadingSnapshot& s) {
  if (!s.tills_expected) {
    tills_were_unexpected_ = true;
  } else if (tills_were_unexpected_) {
    tills_were_unexpected_ = false;
    tills_opened_at_ = s.now_ms;
  }
}

void LoadingDetector::StepTransport(const LoadingSnapshot& s, const json& last_import,
                                    std::vector<Finding>& out) {
  // An active condition whose source is no longer watched (transport
  // switched off, a restored condition) is stepped with nothing lagging, so
  // it clears instead of being held forever.
  if (s.transport_unknown) {
    // Unknown is not delivered: an active halt stays until it is seen.
    if (transport_.active) {
      Step(transport_, "loading.transport_halted", Severity::kCritical, false, 0, s, json::object(),
           out,
           /*can_clear=*/false);
    }
    return;
  }
  if (s.transport.empty() && !transport_.active) return;
  int expected = 0;
  json lagging = LaggingTills(s, expected);
  bool holds = s.tills_expected && expected > 0 && static_cast<int>(lagging.size()) * 2 > expected;
  json evidence = {
      {"expected", expected},
      {"lagging", static_cast<int>(lagging.size())},
      {"lagging_tills", lagging},
      {"last_successful_import", last_import},
      {"summary_en", Cat("Goods not delivered to ", lagging.size(), " of ", expected, " tills")},
      {"summary_ru", Cat("Товары не доставлены на ", lagging.size(), " из ", expected, " касс")}};
  Step(transport_, "loading.transport_halted", Severity::kCritical, holds, 0, s, evidence, out);
}

json LoadingDetector::LaggingTills(const LoadingSnapshot& s, int& expected) {
  const int64_t now = s.now_ms;
  json lagging = json::array();
  for (const auto& t : s.transport) {
    if (!t.expected) continue;
    ++expected;
    if (t.not_loaded <= 0) continue;
    std::optional<int64_t> waiting_since =
        t.oldest_pending_ms ? t.oldest_pending_ms : t.last_load_ms;
    if (!waiting_since) continue;  // no time to measure from: unknown, not late
    if (tills_opened_at_) waiting_since = std::max(*waiting_since, *tills_opened_at_);
    int64_t due = *waiting_since + policy_.transport_lag_ms;
    if (now > due) {
      lagging.push_back({{"till", t.till},
                         {"last_load_ms", t.last_load_ms ? json(*t.last_load_ms) : json(nullptr)},
                         {"waiting_since_ms", *waiting_since},
                         {"not_loaded", t.not_loaded}});
    } else {
      deadlines_.push_back(due + 1);
    }
  }
  return lagging;
}

void LoadingDetector::StepErpSilent(const LoadingSnapshot& s, const PackageObservation* newest,
                                    std::vector<Finding>& out) {
  // The ERP's cadence, inside its sending window only.
  if (policy_.erp_every_ms <= 0 && !erp_.active) return;
  bool holds = false;
  int64_t silent_since = std::max(newest ? newest->arrived_ms : 0, s.erp_window_opened_ms);
  if (s.erp_window_open && policy_.erp_every_ms > 0) {
    int64_t due = silent_since + policy_.erp_every_ms;
    holds = s.now_ms > due;
    if (!holds) deadlines_.push_back(due + 1);
  }
  json evidence = {{"silent_since_ms", silent_since},
                   {"expected_every_s", policy_.erp_every_ms / 1000},
                   {"window_open", s.erp_window_open},
                   {"last_package", PackageRef(newest)},
                   {"summary_en", "No import packages from the ERP"},
                   {"summary_ru", "Учётная система не присылает пакеты загрузки"}};
  Step(erp_, "loading.erp_silent", Severity::kImportant, holds, 0, s, evidence, out);
}

void LoadingDetector::ReportImportErrors(const LoadingSnapshot& s,
                                         const PackageObservation* last_ok,
                                         std::vector<Finding>& out) {
  const int64_t now = s.now_ms;
  json fresh = json::array();
  int64_t newest_failure = 0;
  std::set<std::string> failed_now;
  for (const auto& p : s.packages) {
    if (!IsFailure(p.status)) continue;
    failed_now.insert(p.ti);
    newest_failure = std::max(newest_failure, p.arrived_ms);
    // In maintenance failures are noted, not reported: the engineer is at work.
    if (reported_failures_.insert(p.ti).second && !s.maintenance) {
      fresh.push_back({{"ti", p.ti},
                       {"arrived_ms", p.arrived_ms},
                       {"status", p.status},
                       {"status_name", p.status_name},
                       {"import_type", p.import_type},
                       {"message", p.message}});
    }
  }
  if (!fresh.empty()) {
    json payload = {{"state", errors_.active ? "updated" : "raised"},
                    {"failed_packages", fresh},
                    {"summary_en", Cat(fresh.size(), " import package(s) rejected")},
                    {"summary_ru", Cat("Отклонено пакетов загрузки: ", fresh.size())}};
    if (!errors_.active) {
      errors_.active = true;
      errors_.since_ms = now;
      errors_.episode = Cat(prefix_, "-loading.import_errors-", now);
    }
    payload["episode"] = errors_.episode;
    out.push_back({"loading.import_errors", Severity::kNormal, now, std::move(payload)});
  } else if (errors_.active && last_ok && last_ok->arrived_ms > newest_failure) {
    out.push_back({"loading.import_errors", Severity::kNormal, now,
                   json{{"state", "cleared"},
                        {"episode", errors_.episode},
                        {"reason", Cat("package ", last_ok->ti, " imported correctly")}}});
    errors_.active = false;
  }
  // What survives a restart: the failures still in SET's recent list
  // (older ones never come back), so none is reported twice.
  recent_failures_ = std::move(failed_now);
}

std::vector<std::pair<const char*, LoadingDetector::Condition*>> LoadingDetector::Conditions() {
  return {{"loading.halted", &halted_},
          {"loading.transport_halted", &transport_},
          {"loading.erp_silent", &erp_},
          {"set.server_down", &server_},
          {"loading.import_errors", &errors_}};
}

std::vector<std::pair<const char*, const LoadingDetector::Condition*>> LoadingDetector::Conditions()
    const {
  std::vector<std::pair<const char*, const Condition*>> out;
  for (const auto& [kind, c] : const_cast<LoadingDetector*>(this)->Conditions())
    out.emplace_back(kind, c);
  return out;
}

json LoadingDetector::ExportState() const {
  json conditions = json::object();
  json held = json::array();
  for (const auto& [kind, c] : Conditions()) {
    if (!c->active) continue;
    conditions[kind] = {{"episode", c->episode}, {"since_ms", c->since_ms}};
    held.push_back({{"kind", kind}, {"episode", c->episode}});
  }
  json failures = json::array();
  for (const auto& ti : recent_failures_) {
    if (reported_failures_.contains(ti)) failures.push_back(ti);
  }
  return json{
      {"version", 1}, {"conditions", conditions}, {"reported_failures", failures}, {"held", held}};
}

absl::Status LoadingDetector::RestoreState(const json& state) {
  if (evaluated_) {
    return absl::FailedPreconditionError(
        "loading detector state can only be restored before the first evaluation");
  }
  auto bad = [](std::string_view why) {
    return absl::InvalidArgumentError(Cat("loading detector state: ", why));
  };
  if (!state.is_object()) return bad("not a JSON object");
  if (!state.contains("version") || !state["version"].is_number_integer() ||
      state["version"].get<int>() != 1) {
    return bad("unknown version (this agent reads version 1)");
  }
  std::vector<std::pair<Condition*, Condition>> restored;
  if (state.contains("conditions")) {
    const json& cs = state["conditions"];
    if (!cs.is_object()) return bad("conditions is not an object");
    for (const auto& [kind, c] : Conditions()) {
      if (!cs.contains(kind)) continue;
      const json& j = cs[kind];
      if (!j.is_object() || !j.contains("episode") || !j["episode"].is_string() ||
          j["episode"].get<std::string>().empty() || !j.contains("since_ms") ||
          !j["since_ms"].is_number_integer()) {
        return bad(Cat(kind, ": episode or since_ms missing"));
      }
      Condition r;
      r.active = true;
      r.episode = j["episode"].get<std::string>();
      r.since_ms = j["since_ms"].get<int64_t>();
      restored.emplace_back(c, std::move(r));
    }
  }
  std::set<std::string> failures;
  if (state.contains("reported_failures")) {
    if (!state["reported_failures"].is_array()) return bad("reported_failures is not an array");
    for (const auto& ti : state["reported_failures"]) {
      if (!ti.is_string()) return bad("reported_failures holds a non-string");
      failures.insert(ti.get<std::string>());
    }
  }
  for (auto& [c, r] : restored) *c = std::move(r);
  reported_failures_.insert(failures.begin(), failures.end());
  recent_failures_ = std::move(failures);
  return absl::OkStatus();
}

std::optional<int64_t> LoadingDetector::NextDeadline(int64_t now_ms) const {
  std::optional<int64_t> best;
  for (int64_t d : deadlines_) {
    if (d > now_ms && (!best || d < *best)) best = d;
  }
  return best;
}

}  // namespace setdiag::agent
