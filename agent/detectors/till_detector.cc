#include "agent/detectors/till_detector.h"

#include <algorithm>

#include "common/strings.h"

namespace setdiag::agent {

using json = nlohmann::json;

const char* TillStateName(TillState s) {
  switch (s) {
    case TillState::kUp:
      return "up";
    case TillState::kStopped:
      return "stopped";
    case TillState::kMothballed:
      return "mothballed";
    case TillState::kNotExpected:
      return "not_expected";
    case TillState::kUnknown:
      return "unknown";
  }
  return "unknown";
}

namespace {

json CauseJson(const char* code, const char* en, const char* ru) {
  return json{{"code", code}, {"en", en}, {"ru", ru}};
}

json LikelyCause(const ServerState& server, const std::vector<const TillView*>& stopped) {
  if (server.known && (!server.deployed || server.deploy_failed || !server.port_8090)) {
    return CauseJson(
        "server",
        "The SET server application is not serving (Set10.ear not deployed or port 8090 "
        "closed): the tills cannot reach it.",
        "Приложение SET на сервере магазина не работает (Set10.ear не развёрнут или порт "
        "8090 закрыт): кассы не могут к нему обратиться.");
  }
  size_t probed = 0, silent = 0;
  for (const TillView* t : stopped) {
    if (t->probe == ProbeResult::kNotProbed) continue;
    ++probed;
    if (t->probe != ProbeResult::kAnswers) ++silent;
  }
  if (probed == 0) {
    return CauseJson("unknown", "Cause unknown: the stopped tills were not probed on the network.",
                     "Причина не установлена: остановленные кассы не проверялись по сети.");
  }
  if (silent * 2 > probed) {
    return CauseJson(
        "network_or_power",
        "Most stopped tills do not answer on the network: power or network failure at the "
        "store.",
        "Большинство остановленных касс не отвечают по сети: нет питания или сбой сети в "
        "магазине.");
  }
  return CauseJson(
      "tills",
      "The stopped tills answer on the network but their SET software has stopped sending "
      "heartbeats.",
      "Остановленные кассы отвечают по сети, но программа SET на них перестала выходить на "
      "связь.");
}

// The expected (not mothballed) tills, and which of them are stopped or
// unknown.
struct StoppedCount {
  std::vector<const TillView*> stopped;  // earliest stopped first
  int expected = 0;
  size_t unknown = 0;
};

StoppedCount CountStopped(const std::vector<TillView>& views) {
  StoppedCount count;
  for (const auto& v : views) {
    if (v.state == TillState::kMothballed) continue;
    ++count.expected;
    if (v.state == TillState::kStopped) count.stopped.push_back(&v);
    if (v.state == TillState::kUnknown) ++count.unknown;
  }
  std::sort(count.stopped.begin(), count.stopped.end(), [](const TillView* a, const TillView* b) {
    return *a->stopped_since_ms < *b->stopped_since_ms;
  });
  return count;
}

}  // namespace

TillDetector::TillDetector(TillWatchPolicy policy, std::string episode_prefix)
    : policy_(policy), prefix_(std::move(episode_prefix)) {}

std::string TillDetector::EnsureEpisode(int64_t now_ms) {
  if (episode_.empty()) episode_ = Cat(prefix_, "-tills-", now_ms);
  return episode_;
}

void TillDetector::MaybeEndEpisode() {
  if (majority_active_) return;
  for (const auto& [n, m] : memory_) {
    if (m.normal_raised) return;
  }
  episode_.clear();
}

json TillDetector::Evidence(const TillSnapshot& s,
                            const std::vector<const TillView*>& stopped) const {
  int expected = 0, up = 0, mothballed = 0, unknown = 0;
  for (const auto& v : views_) {
    if (v.state == TillState::kMothballed)
      ++mothballed;
    else if (v.state != TillState::kNotExpected)
      ++expected;
    if (v.state == TillState::kUp) ++up;
    if (v.state == TillState::kUnknown) ++unknown;
  }
  json tills = json::array();
  for (const TillView* t : stopped) {
    json j = {
        {"number", t->number},
        {"address", t->address},
        {"probe", ProbeResultName(t->probe)},
        {"stopped_since_ms", t->stopped_since_ms.value_or(0)},
        {"stopped_for_s", t->stopped_since_ms ? (s.now_ms - *t->stopped_since_ms) / 1000 : 0}};
    j["last_heartbeat_ms"] = t->last_heartbeat_ms ? json(*t->last_heartbeat_ms) : json(nullptr);
    tills.push_back(std::move(j));
  }
  json evidence = json{
      {"expected", expected},
      {"stopped", static_cast<int>(stopped.size())},
      {"up", up},
      {"mothballed", mothballed},
      {"unknown", unknown},
      {"stopped_tills", tills},
      {"server",
       {{"known", s.server.known},
        {"port_8090", s.server.port_8090},
        {"port_8091", s.server.port_8091},
        {"port_5432", s.server.port_5432},
        {"set10_deployed", s.server.deployed},
        {"set10_failed", s.server.deploy_failed}}},
      {"summary_en", Cat(stopped.size(), " of ", expected, " tills stopped")},
      {"summary_ru", Cat("Остановлено касс: ", stopped.size(), " из ", expected)},
  };
  if (!stopped.empty()) evidence["likely_cause"] = LikelyCause(s.server, stopped);
  return evidence;
}

std::vector<Finding> TillDetector::Unexpected(const TillSnapshot& s) {
  std::vector<Finding> out;
  expected_since_.reset();
  was_unexpected_ = true;
  majority_seen_since_.reset();
  for (auto& [n, m] : memory_) m.stopped_seen_ms.reset();
  clear_pending_since_.reset();
  views_.clear();
  for (const auto& t : s.tills) {
    if (t.roster == RosterStatus::kDeleted) continue;
    views_.push_back(
        {t.number,
         t.roster == RosterStatus::kMothballed ? TillState::kMothballed : TillState::kNotExpected,
         t.last_heartbeat_ms, std::nullopt, t.address, t.probe});
  }
  if (majority_active_) {
    out.push_back({"tills.majority_stopped", Severity::kCritical, s.now_ms,
                   json{{"state", "cleared"},
                        {"episode", episode_},
                        {"onset_ms", majority_onset_ms_},
                        {"reason", s.expected_reason}}});
    majority_active_ = false;
  }
  for (auto& [number, m] : memory_) {
    if (!m.normal_raised) continue;
    out.push_back({"tills.till_stopped", Severity::kNormal, s.now_ms,
                   json{{"state", "cleared"},
                        {"episode", episode_},
                        {"till", number},
                        {"reason", s.expected_reason}}});
    m.normal_raised = false;
  }
  MaybeEndEpisode();
  return out;
}

void TillDetector::ClearDbUnreachable(int64_t now_ms, std::vector<Finding>& out) {
  if (db_active_ && db_down_since_) {
    out.push_back({"set.db_unreachable", Severity::kImportant, now_ms,
                   json{{"state", "cleared"},
                        {"since_ms", *db_down_since_},
                        {"duration_s", (now_ms - *db_down_since_) / 1000}}});
  }
  db_active_ = false;
  db_down_since_.reset();
}

void TillDetector::SourceDown(const TillSnapshot& s, std::vector<Finding>& out) {
  if (!source_down_since_) source_down_since_ = s.now_ms;
  if (s.now_ms - *source_down_since_ >= policy_.unreachable_confirm_ms) {
    // Clearing and confirming need continuous evidence. A blip shorter than
    // unreachable_confirm (one timed-out poll) only pauses them: a flaky
    // database must not keep a stopped majority from ever being confirmed.
    clear_pending_since_.reset();
    majority_seen_since_.reset();
  }
  for (auto& v : views_) v.state = TillState::kUnknown;
  if (s.source_answered) {
    // Reachable: whatever is wrong is said by the source's own finding.
    ClearDbUnreachable(s.now_ms, out);
    return;
  }
  if (!db_down_since_) db_down_since_ = s.now_ms;
  if (!db_active_) {
    int64_t due = *db_down_since_ + policy_.unreachable_confirm_ms;
    if (s.now_ms >= due) {
      db_active_ = true;
      out.push_back(
          {"set.db_unreachable", Severity::kImportant, s.now_ms,
           json{{"state", "raised"},
                {"since_ms", *db_down_since_},
                {"error", s.source_error},
                {"summary_en", "SET database unreachable: till states are unknown"},
                {"summary_ru", "База данных SET недоступна: состояние касс неизвестно"}}});
    } else {
      pending_deadlines_.push_back(due);
    }
  }
}

std::vector<Finding> TillDetector::Evaluate(const TillSnapshot& s) {
  evaluated_ = true;
  pending_deadlines_.clear();
  std::vector<Finding> out;
  if (!s.source_ok) {
    // Unknown is not stopped: nothing about the tills is decided now.
    SourceDown(s, out);
    return out;
  }
  ClearDbUnreachable(s.now_ms, out);
  SourceBack(s.now_ms);
  if (!started_at_) started_at_ = s.now_ms;
  if (!s.expected) {
    auto cleared = Unexpected(s);
    out.insert(out.end(), cleared.begin(), cleared.end());
    return out;
  }
  NoteExpected(s.now_ms);
  std::vector<int> seen = UpdateViews(s);
  ForgetLeftTills(seen, s.now_ms, out);
  StepMajority(s, out);
  StepSingleTills(s, out);
  MaybeEndEpisode();
  return out;
}

void TillDetector::SourceBack(int64_t now_ms) {
  if (!source_down_since_) return;
  // Nobody could report while the source was down: the tills it cut off
  // get a full heartbeat timeout from now. Only for an outage as long as
  // unreachable_confirm: a blip (one timed-out poll) is absorbed by the
  // confirm window, and a flaky database must not postpone a stopped
  // majority for ever.
  if (started_at_ && now_ms - *source_down_since_ >= policy_.unreachable_confirm_ms) {
    AddOutage(*source_down_since_, now_ms);
  }
  source_down_since_.reset();
}

void TillDetector::NoteExpected(int64_t now_ms) {
  if (!expected_since_) {
    // A real opening (or end of maintenance) seen by this agent gives the
    // tills one heartbeat timeout of grace; an agent starting in an open
    // store gives it to the tills already overdue (StoppedSince).
    if (was_unexpected_) opened_at_ = now_ms;
    expected_since_ = now_ms;
  }
  was_unexpected_ = false;
}

std::vector<int> TillDetector::UpdateViews(const TillSnapshot& s) {
  // Per-till state. A till that never reported gets one heartbeat timeout of
  // grace after it first appears, and every till gets one after an opening,
  // so tills switched on at opening time are not "stopped"; see StoppedSince
  // for the agent's start and the source's return.
  views_.clear();
  std::vector<int> seen;
  for (const auto& t : s.tills) {
    if (t.roster == RosterStatus::kDeleted) continue;
    auto& mem = memory_[t.number];
    if (mem.first_seen_ms == 0) mem.first_seen_ms = s.now_ms;
    seen.push_back(t.number);
    views_.push_back(ViewOf(t, mem, s.now_ms));
  }
  return seen;
}

TillView TillDetector::ViewOf(const TillObservation& t, const TillMemory& mem, int64_t now_ms) {
  TillView v{t.number, TillState::kUp, t.last_heartbeat_ms, std::nullopt, t.address, t.probe};
  if (t.roster == RosterStatus::kMothballed) {
    v.state = TillState::kMothballed;
    return v;
  }
  int64_t overdue_at = (t.last_heartbeat_ms ? *t.last_heartbeat_ms : mem.first_seen_ms) +
                       policy_.heartbeat_timeout_ms;
  int64_t stopped_since = StoppedSince(overdue_at);
  // Overdue means strictly more than the timeout since the heartbeat.
  if (now_ms > stopped_since) {
    v.state = TillState::kStopped;
    v.stopped_since_ms = stopped_since;
  } else {
    // Not heard of yet, or silent but still in its grace: unknown.
    if (!t.last_heartbeat_ms || now_ms > overdue_at) v.state = TillState::kUnknown;
    pending_deadlines_.push_back(stopped_since + 1);
  }
  return v;
}

void TillDetector::ForgetLeftTills(const std::vector<int>& seen, int64_t now_ms,
                                   std::vector<Finding>& out) {
  // Tills that left the roster are no longer watched.
  for (auto it = memory_.begin(); it != memory_.end();) {
    if (std::find(seen.begin(), seen.end(), it->first) == seen.end()) {
      if (it->second.normal_raised) {
        out.push_back({"tills.till_stopped", Severity::kNormal, now_ms,
                       json{{"state", "cleared"},
                            {"episode", episode_},
                            {"till", it->first},
                            {"reason", "removed from the roster"}}});
      }
      it = memory_.erase(it);
    } else {
      ++it;
    }
  }
}

void TillDetector::StepMajority(const TillSnapshot& s, std::vector<Finding>& out) {
  const StoppedCount count = CountStopped(views_);
  const std::vector<const TillView*>& stopped = count.stopped;
  const int expected = count.expected;
  const size_t need = static_cast<size_t>(expected / 2 + 1);  // strictly more than half
  const bool majority_now = expected > 0 && stopped.size() >= need;
  // Clearing needs tills seen up: those in their grace are not evidence.
  const bool majority_may_hold = expected > 0 && stopped.size() + count.unknown >= need;

  if (!majority_now) majority_seen_since_.reset();
  if (!majority_active_) {
    if (majority_now) ConfirmMajority(s, stopped, need, out);
  } else if (majority_may_hold) {
    clear_pending_since_.reset();
  } else {
    ClearMajority(s, stopped, out);
  }
}

void TillDetector::ConfirmMajority(const TillSnapshot& s,
                                   const std::vector<const TillView*>& stopped, size_t need,
                                   std::vector<Finding>& out) {
  int64_t onset = *stopped[need - 1]->stopped_since_ms;
  if (!majority_seen_since_) majority_seen_since_ = s.now_ms;
  int64_t confirm_from = std::max(onset, *majority_seen_since_);
  if (s.now_ms - confirm_from < policy_.confirm_ms) {
    pending_deadlines_.push_back(confirm_from + policy_.confirm_ms);
    return;
  }
  majority_active_ = true;
  majority_onset_ms_ = onset;
  clear_pending_since_.reset();
  json payload = Evidence(s, stopped);
  payload["state"] = episode_.empty() ? "raised" : "escalated";
  payload["episode"] = EnsureEpisode(onset);
  payload["onset_ms"] = onset;
  out.push_back({"tills.majority_stopped", Severity::kCritical, s.now_ms, std::move(payload)});
}

void TillDetector::ClearMajority(const TillSnapshot& s, const std::vector<const TillView*>& stopped,
                                 std::vector<Finding>& out) {
  if (!clear_pending_since_) clear_pending_since_ = s.now_ms;
  if (s.now_ms - *clear_pending_since_ < policy_.clear_ms) {
    pending_deadlines_.push_back(*clear_pending_since_ + policy_.clear_ms);
    return;
  }
  json payload = Evidence(s, stopped);
  payload["state"] = "cleared";
  payload["episode"] = episode_;
  payload["onset_ms"] = majority_onset_ms_;
  payload["duration_s"] = (s.now_ms - majority_onset_ms_) / 1000;
  out.push_back({"tills.majority_stopped", Severity::kCritical, s.now_ms, std::move(payload)});
  majority_active_ = false;
  clear_pending_since_.reset();
}

void TillDetector::StepSingleTills(const TillSnapshot& s, std::vector<Finding>& out) {
  // Single tills: raised only while no majority condition covers them.
  for (const auto& v : views_) {
    auto& mem = memory_[v.number];
    if (v.state == TillState::kStopped) {
      if (!mem.stopped_seen_ms) mem.stopped_seen_ms = s.now_ms;
      if (majority_active_ || mem.normal_raised) continue;
      int64_t due = std::max(*v.stopped_since_ms, *mem.stopped_seen_ms) + policy_.single_till_ms;
      if (s.now_ms >= due) {
        mem.normal_raised = true;
        json payload = Evidence(s, {&v});
        payload["state"] = "raised";
        payload["episode"] = EnsureEpisode(*v.stopped_since_ms);
        payload["till"] = v.number;
        payload["summary_en"] = Cat("Till ", v.number, " stopped");
        payload["summary_ru"] = Cat("Касса ", v.number, " остановлена");
        out.push_back({"tills.till_stopped", Severity::kNormal, s.now_ms, std::move(payload)});
      } else {
        pending_deadlines_.push_back(due);
      }
    } else {
      mem.stopped_seen_ms.reset();
      if (mem.normal_raised && (v.state == TillState::kUp || v.state == TillState::kMothballed)) {
        mem.normal_raised = false;
        out.push_back(
            {"tills.till_stopped", Severity::kNormal, s.now_ms,
             json{{"state", "cleared"},
                  {"episode", episode_},
                  {"till", v.number},
                  {"reason", v.state == TillState::kUp ? "heartbeats resumed" : "mothballed"}}});
      }
    }
  }
}

int64_t TillDetector::StoppedSince(int64_t overdue_at) const {
  const int64_t timeout = policy_.heartbeat_timeout_ms;
  int64_t since = overdue_at;
  // Already overdue when this agent started: SET's database (or the server)
  // may just have come up; the till gets a timeout to report.
  if (started_at_ && since < *started_at_) since = *started_at_ + timeout;
  if (opened_at_) since = std::max(since, *opened_at_ + timeout);
  // Not yet overdue when the source went away: cut off, not stopped.
  for (const auto& [from, until] : outages_) {
    if (since > from) since = std::max(since, until + timeout);
  }
  return since;
}

void TillDetector::AddOutage(int64_t from_ms, int64_t until_ms) {
  constexpr size_t kMaxOutages = 8;
  // Inside the previous outage's grace the two act as one (same result,
  // shorter list).
  if (!outages_.empty() && from_ms <= outages_.back().second + policy_.heartbeat_timeout_ms) {
    outages_.back().second = std::max(outages_.back().second, until_ms);
    return;
  }
  outages_.emplace_back(from_ms, until_ms);
  if (outages_.size() > kMaxOutages) outages_.erase(outages_.begin());
}

json TillDetector::ExportState() const {
  json held = json::array();
  json state = {{"version", 1}};
  bool any_till = false;
  json tills = json::array();
  for (const auto& [number, m] : memory_) {
    if (!m.normal_raised) continue;
    tills.push_back(number);
    any_till = true;
  }
  if (majority_active_) {
    state["majority"] = {{"onset_ms", majority_onset_ms_}};
    held.push_back({{"kind", "tills.majority_stopped"}, {"episode", episode_}});
  }
  if (any_till) {
    state["till_stopped"] = tills;
    held.push_back({{"kind", "tills.till_stopped"}, {"episode", episode_}});
  }
  if (majority_active_ || any_till) state["episode"] = episode_;
  if (db_active_ && db_down_since_) {
    state["db_unreachable"] = {{"since_ms", *db_down_since_}};
    // The collector names an episode-less condition by agent, kind and since.
    held.push_back({{"kind", "set.db_unreachable"},
                    {"episode", Cat(prefix_, "-set.db_unreachable-", *db_down_since_)}});
  }
  state["held"] = std::move(held);
  return state;
}

absl::Status TillDetector::RestoreState(const json& state) {
  if (evaluated_) {
    return absl::FailedPreconditionError(
        "till detector state can only be restored before the first evaluation");
  }
  auto bad = [](std::string_view why) {
    return absl::InvalidArgumentError(Cat("till detector state: ", why));
  };
  if (!state.is_object()) return bad("not a JSON object");
  if (!state.contains("version") || !state["version"].is_number_integer() ||
      state["version"].get<int>() != 1) {
    return bad("unknown version (this agent reads version 1)");
  }
  std::string episode;
  if (state.contains("episode")) {
    if (!state["episode"].is_string()) return bad("episode is not a string");
    episode = state["episode"].get<std::string>();
  }
  std::optional<int64_t> onset;
  if (state.contains("majority")) {
    const json& m = state["majority"];
    if (!m.is_object() || !m.contains("onset_ms") || !m["onset_ms"].is_number_integer()) {
      return bad("majority.onset_ms is missing");
    }
    onset = m["onset_ms"].get<int64_t>();
  }
  std::vector<int> tills;
  if (state.contains("till_stopped")) {
    if (!state["till_stopped"].is_array()) return bad("till_stopped is not an array");
    for (const auto& n : state["till_stopped"]) {
      if (!n.is_number_integer()) return bad("till_stopped holds a non-number");
      tills.push_back(n.get<int>());
    }
  }
  if ((onset || !tills.empty()) && episode.empty())
    return bad("an active condition without its episode");
  std::optional<int64_t> db_since;
  if (state.contains("db_unreachable")) {
    const json& d = state["db_unreachable"];
    if (!d.is_object() || !d.contains("since_ms") || !d["since_ms"].is_number_integer()) {
      return bad("db_unreachable.since_ms is missing");
    }
    db_since = d["since_ms"].get<int64_t>();
  }
  if (onset) {
    majority_active_ = true;
    majority_onset_ms_ = *onset;
  }
  for (int n : tills) memory_[n].normal_raised = true;
  if (onset || !tills.empty()) episode_ = episode;
  if (db_since) {
    db_active_ = true;
    db_down_since_ = *db_since;
    source_down_since_ = *db_since;
  }
  return absl::OkStatus();
}

std::optional<int64_t> TillDetector::NextDeadline(int64_t now_ms) const {
  std::optional<int64_t> best;
  for (int64_t d : pending_deadlines_) {
    if (d > now_ms && (!best || d < *best)) best = d;
  }
  return best;
}

}  // namespace setdiag::agent
