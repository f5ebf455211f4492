#pragma once
// What the detectors have raised, kept across agent restarts.
//
// Each detector (the till watch's "tills", the loading watch's "loading")
// exports its durable state as one JSON object (active conditions, their
// episodes and onsets, what is needed to clear them) after every evaluation
// that changed it; the watch saves it here and restores it at start, so a
// condition raised by the previous process is cleared with its own episode
// when it no longer holds, and is not raised again while it still holds.
//
// Rows live in the table `detector_state` of the agent's state database
// (<state_dir>/state.db, next to the maintenance windows). Every state
// object carries "held": [{"kind", "episode"}, ...], the condition episodes
// the detector holds raised; HeldEpisodes() gathers them for the uplink's
// Hello (docs/protocol.md) without knowing the detectors' internals.
//
// Thread-safe: one SQLite connection guarded by a mutex (the two watch loops
// write, the uplink's loop reads). Times come from the caller.

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/mutex.h"
#include "common/sqlite.h"

namespace setdiag::agent {

// A condition episode the agent holds raised (Hello.held_episodes).
struct HeldEpisode {
  std::string kind;     // e.g. "tills.majority_stopped"
  std::string episode;  // the raised event's payload "episode"
  bool operator==(const HeldEpisode&) const = default;
};

// The "held" array of a detector's state object; malformed entries are
// skipped.
std::vector<HeldEpisode> HeldEpisodesOf(const nlohmann::json& state);

class DetectorStateStore {
 public:
  // Opens (creating if needed) the database at `path` and the table.
  // Unavailable when the file cannot be opened or stays locked past
  // `busy_timeout_ms` (kept short: a watch loop waits on it); DataLoss when
  // it is not a usable SQLite database.
  static absl::StatusOr<std::shared_ptr<DetectorStateStore>> Open(const std::string& path,
                                                                  int busy_timeout_ms = 2000);

  // The state last saved for `detector`, nullopt if none. DataLoss when the
  // stored text is not a JSON object (the caller starts afresh and says so).
  absl::StatusOr<std::optional<nlohmann::json>> Load(std::string_view detector);
  // Replaces the state of `detector`. `state` must be a JSON object.
  absl::Status Save(std::string_view detector, const nlohmann::json& state, int64_t now_ms);
  // Drops the state of `detector` (its watch is disabled: nothing it raised
  // is held any more). OK when there was none.
  absl::Status Forget(std::string_view detector);
  // Every detector's held episodes, ordered by detector. An error (the
  // table cannot be read, a row is not JSON, or the last Save of some
  // detector through this store failed, so its row is stale) means "not
  // known": the Hello then says nothing about held episodes.
  absl::StatusOr<std::vector<HeldEpisode>> HeldEpisodes();

 private:
  explicit DetectorStateStore(sql::Db db) : db_(std::move(db)) {}

  Mutex mu_;
  sql::Db db_ ABSL_GUARDED_BY(mu_);
  std::set<std::string, std::less<>> stale_
      ABSL_GUARDED_BY(mu_);  // detectors whose last Save failed
};

// One watch's side of the store: loads the previous process's state once,
// then saves the detector's state whenever it changed. A failure is logged
// (once per distinct error) and retried at the next change or after
// `retry_ms`; it never stops the watch. Belongs to one watch loop.
class DetectorStateKeeper {
 public:
  DetectorStateKeeper(std::shared_ptr<DetectorStateStore> store, std::string detector,
                      std::string log_component, int64_t retry_ms = 10'000);
  // The saved state, nullopt when there is none or it cannot be read
  // (logged: the watch then starts afresh).
  std::optional<nlohmann::json> Load();
  // Saves `state` unless it equals what was last saved.
  void Update(const nlohmann::json& state, int64_t now_ms, int64_t mono_ms);
  bool failing() const { return !last_error_.empty(); }

 private:
  std::shared_ptr<DetectorStateStore> store_;
  std::string detector_;
  std::string component_;
  int64_t retry_ms_;
  std::string saved_;   // the text last saved (or loaded)
  std::string failed_;  // the text whose save failed
  int64_t retry_at_mono_ = 0;
  std::string last_error_;
};

}  // namespace setdiag::agent
