#include "agent/store/detector_state.h"

#include "agent/store/state_schema.h"
#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"

namespace setdiag::agent {
namespace {

absl::StatusOr<nlohmann::json> ParseState(std::string_view detector, const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) {
    return absl::DataLossError(Cat("detector_state row '", detector, "' is not a JSON object"));
  }
  return j;
}

}  // namespace

std::vector<HeldEpisode> HeldEpisodesOf(const nlohmann::json& state) {
  std::vector<HeldEpisode> out;
  if (!state.is_object() || !state.contains("held") || !state["held"].is_array()) return out;
  for (const auto& h : state["held"]) {
    if (!h.is_object() || !h.contains("kind") || !h["kind"].is_string() || !h.contains("episode") ||
        !h["episode"].is_string()) {
      continue;
    }
    HeldEpisode e{h["kind"].get<std::string>(), h["episode"].get<std::string>()};
    if (e.kind.empty() || e.episode.empty()) continue;
    out.push_back(std::move(e));
  }
  return out;
}

absl::StatusOr<std::shared_ptr<DetectorStateStore>> DetectorStateStore::Open(
    const std::string& path, int busy_timeout_ms) {
  ASSIGN_OR_RETURN(auto db, sql::Db::Open(path, busy_timeout_ms));
  RETURN_IF_ERROR(MigrateStateDb(db, path));
  return std::shared_ptr<DetectorStateStore>(new DetectorStateStore(std::move(db)));
}

absl::StatusOr<std::optional<nlohmann::json>> DetectorStateStore::Load(std::string_view detector) {
  MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(auto stmt, db_.Prepare("SELECT state FROM detector_state WHERE detector = ?1"));
  stmt.Bind(1, detector);
  ASSIGN_OR_RETURN(auto row, stmt.Step());
  if (!row) return std::optional<nlohmann::json>();
  ASSIGN_OR_RETURN(auto j, ParseState(detector, stmt.Text(0)));
  return std::optional<nlohmann::json>(std::move(j));
}

absl::Status DetectorStateStore::Save(std::string_view detector, const nlohmann::json& state,
                                      int64_t now_ms) {
  if (!state.is_object()) return absl::InvalidArgumentError("detector state must be a JSON object");
  std::string text = state.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  MutexLock lock(&mu_);
  auto stmt = db_.Prepare(
      "INSERT INTO detector_state(detector, state, saved_ms) VALUES (?1, ?2, ?3) "
      "ON CONFLICT(detector) DO UPDATE SET state = excluded.state, saved_ms = excluded.saved_ms");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, detector).Bind(2, text).Bind(3, now_ms);
  absl::Status st = stmt->Run();
  if (st.ok()) {
    if (auto it = stale_.find(detector); it != stale_.end()) stale_.erase(it);
  } else {
    stale_.emplace(detector);
  }
  return st;
}

absl::Status DetectorStateStore::Forget(std::string_view detector) {
  MutexLock lock(&mu_);
  ASSIGN_OR_RETURN(auto stmt, db_.Prepare("DELETE FROM detector_state WHERE detector = ?1"));
  stmt.Bind(1, detector);
  absl::Status st = stmt.Run();
  if (st.ok()) {
    if (auto it = stale_.find(detector); it != stale_.end()) stale_.erase(it);
  }
  return st;
}

absl::StatusOr<std::vector<HeldEpisode>> DetectorStateStore::HeldEpisodes() {
  MutexLock lock(&mu_);
  if (!stale_.empty()) {
    return absl::FailedPreconditionError(Cat("the raised conditions of '", *stale_.begin(),
                                             "' could not be saved; the stored ones are stale"));
  }
  ASSIGN_OR_RETURN(auto stmt,
                   db_.Prepare("SELECT detector, state FROM detector_state ORDER BY detector"));
  std::vector<HeldEpisode> out;
  while (true) {
    ASSIGN_OR_RETURN(auto row, stmt.Step());
    if (!row) break;
    std::string detector = stmt.Text(0);
    ASSIGN_OR_RETURN(auto j, ParseState(detector, stmt.Text(1)));
    for (auto& h : HeldEpisodesOf(j)) out.push_back(std::move(h));
  }
  return out;
}

DetectorStateKeeper::DetectorStateKeeper(std::shared_ptr<DetectorStateStore> store,
                                         std::string detector, std::string log_component,
                                         int64_t retry_ms)
    : store_(std::move(store)),
      detector_(std::move(detector)),
      component_(std::move(log_component)),
      retry_ms_(retry_ms) {}

std::optional<nlohmann::json> DetectorStateKeeper::Load() {
  if (!store_) return std::nullopt;
  auto loaded = store_->Load(detector_);
  if (!loaded.ok()) {
    log::Warn(component_,
              Cat("cannot read the conditions this agent had raised before its restart: ",
                  loaded.status().ToString(), "; starting afresh"));
    return std::nullopt;
  }
  if (!*loaded) return std::nullopt;
  saved_ = (*loaded)->dump();
  return std::move(**loaded);
}

void DetectorStateKeeper::Update(const nlohmann::json& state, int64_t now_ms, int64_t mono_ms) {
  if (!store_) return;
  std::string text = state.dump();
  if (text == saved_) return;
  if (text == failed_ && mono_ms < retry_at_mono_) return;
  if (auto st = store_->Save(detector_, state, now_ms); !st.ok()) {
    std::string err = st.ToString();
    if (err != last_error_) {
      log::Error(component_,
                 Cat("cannot save the raised conditions to the state database (a restart now would "
                     "forget them): ",
                     err, "; retrying"));
    }
    last_error_ = std::move(err);
    failed_ = std::move(text);
    retry_at_mono_ = mono_ms + retry_ms_;
    return;
  }
  if (!last_error_.empty())
    log::Info(component_, "raised conditions saved to the state database again");
  last_error_.clear();
  failed_.clear();
  saved_ = std::move(text);
}

}  // namespace setdiag::agent
