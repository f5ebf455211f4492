#pragma once
// The till watch: gathers observations (SET's database, pushed heartbeats,
// the configured roster, network probes, the server's own state), asks the
// TillDetector, and commits each finding to the outbox before waking the
// uplink.
//
// Threads: one loop thread evaluates at every poll and, between polls,
// exactly when the detector's next deadline falls (a heartbeat becoming
// overdue, a window closing), so push-based detection is not limited by
// the poll interval. One prober thread keeps network probe results and the
// server state fresh without ever delaying an evaluation.

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/detectors/till_detector.h"
#include "agent/sources/net_probe.h"
#include "agent/sources/push_receiver.h"
#include "agent/sources/set_checks.h"
#include "agent/sources/set_db.h"
#include "agent/store/detector_state.h"
#include "agent/store/outbox.h"
#include "common/clock.h"
#include "common/mutex.h"

namespace setdiag::agent {

class HistoryStore;

struct ConfiguredTill {
  int number = 0;
  std::string address;
  bool mothballed = false;
};

struct TillWatchOptions {
  TillWatchPolicy policy;
  int64_t poll_interval_ms = 1000;
  std::optional<SetDbConfig> set_db;   // absent: roster from config, heartbeats pushed
  std::vector<ConfiguredTill> roster;  // used when set_db is absent, or adds addresses
  uint16_t probe_port = 22;
  int probe_timeout_ms = 1000;
  int64_t probe_every_ms = 10'000;
  ServerCheckConfig server;
  std::shared_ptr<HistoryStore> history;  // optional: findings are also recorded there
  // Optional: the detector's raised conditions survive restarts there
  // (row "tills"; restored in Start(), saved after each change).
  std::shared_ptr<DetectorStateStore> state;
};

// Whether tills are expected now, and why not (calendar + maintenance).
using ExpectationFn = std::function<std::pair<bool, std::string>(int64_t now_ms)>;

struct TillWatchStats {
  uint64_t evaluations = 0;
  uint64_t findings = 0;
  std::string last_source_error;
};

class TillWatch {
 public:
  TillWatch(TillWatchOptions options, std::string agent_id, ExpectationFn expectation,
            HeartbeatBoard& board, Outbox& outbox, std::function<void()> on_committed,
            Clock& clock);
  ~TillWatch();
  void Start();
  void Stop();
  TillWatchStats stats() const;
  std::vector<TillView> tills() const;

 private:
  void Loop();
  void ProbeLoop();
  TillSnapshot Gather(int64_t now_ms, bool poll_source);
  // Reads the roster and the heartbeats from SET's database into roster_,
  // db_activity_, source_ok_ and source_error_, and runs the checks.
  void ReadSetDb(int64_t now_ms);

  TillWatchOptions options_;
  ExpectationFn expectation_;
  HeartbeatBoard& board_;
  Outbox& outbox_;
  std::function<void()> on_committed_;
  Clock& clock_;
  TillDetector detector_;
  std::optional<DetectorStateKeeper> state_;  // loop thread only
  std::unique_ptr<SetDatabase> db_;
  // How SET's data is read (agent/sources/set_checks.h; loop thread only): failing
  // queries, clocks and time zones, several shops in one database. Their
  // findings are committed with the detector's; their state is kept in the
  // row "tills.checks" of the state store.
  SourceHealth sources_;
  ClockSkewDetector clock_skew_;
  ShopCheck shops_;
  std::optional<DetectorStateKeeper> checks_state_;
  std::vector<Finding> check_findings_;

  // Last source read (loop thread only).
  bool source_ok_ = true;
  bool source_answered_ = false;  // with !source_ok_: the database answered (see TillSnapshot)
  std::string source_error_;
  std::vector<RosterRow> roster_;
  std::map<int, int64_t> db_activity_;

  // A stopped till not probed yet (the prober wakes for it at once).
  bool NewTillToProbe() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable Mutex mu_;
  CondVar cv_;  // stopping_, or new tills to probe
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::map<std::string, ProbeResult> probes_ ABSL_GUARDED_BY(mu_);  // by address
  std::vector<std::string> to_probe_ ABSL_GUARDED_BY(mu_);
  ServerState server_ ABSL_GUARDED_BY(mu_);
  TillWatchStats stats_ ABSL_GUARDED_BY(mu_);
  std::vector<TillView> views_ ABSL_GUARDED_BY(mu_);

  std::thread loop_thread_;
  std::thread probe_thread_;
};

}  // namespace setdiag::agent
