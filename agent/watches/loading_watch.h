#pragma once
// The loading watch: gathers what the SET server shows about goods and price
// loading (import packages, inbox folders, the import web services,
// transport to the tills, the server's health) and asks the
// LoadingDetector. Like the till watch it evaluates at every poll and exactly
// at the detector's next deadline, each time with fresh observations, so a
// package that finishes just before its threshold never raises an alarm.
// One loop thread; Start/Stop from the owner.

#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/detectors/loading_detector.h"
#include "agent/sources/net_probe.h"
#include "agent/sources/set_checks.h"
#include "agent/sources/set_db.h"
#include "agent/store/detector_state.h"
#include "agent/store/outbox.h"
#include "common/clock.h"
#include "common/mutex.h"

namespace setdiag::agent {

class HistoryStore;

struct LoadingWatchOptions {
  LoadingPolicy policy;
  int64_t poll_interval_ms = 15'000;
  std::optional<SetDbConfig> set_db;  // packages and transport need it
  bool watch_transport = true;
  std::vector<std::string> inboxes;  // e.g. /var/lib/jboss/products/source
  std::string inbox_pattern = "*.xml";
  std::vector<std::string> service_urls;  // WSDL URLs of the import services; empty: not checked
  int64_t service_every_ms = 15'000;
  int service_timeout_ms = 3000;
  std::vector<std::string> disks;  // data volumes to watch
  ServerCheckConfig server;
  std::string time_zone = "UTC";  // for the ERP window
  int erp_window_start_min = 0;   // minutes after local midnight
  int erp_window_end_min = 24 * 60;
  std::shared_ptr<HistoryStore> history;  // optional: findings are also recorded there
  // Optional: the detector's raised conditions survive restarts there
  // (row "loading"; restored in Start(), saved after each change).
  std::shared_ptr<DetectorStateStore> state;
};

// What the store's own schedule says at an instant.
struct LoadingContext {
  bool maintenance = false;    // an engineer's maintenance window is open
  bool tills_expected = true;  // the store calendar says open
};

class LoadingWatch {
 public:
  LoadingWatch(LoadingWatchOptions options, std::string agent_id, Outbox& outbox,
               std::function<void()> on_committed, std::function<LoadingContext(int64_t)> context,
               Clock& clock);
  ~LoadingWatch();
  void Start();
  void Stop();

  // Pure helpers, exposed for tests.
  static InboxObservation ListInbox(const std::string& path, const std::string& pattern);
  // Whether the ERP window is open at `now_ms` in `tz`, and since when.
  static std::pair<bool, int64_t> ErpWindow(int64_t now_ms, const std::string& tz, int start_min,
                                            int end_min);

 private:
  // What SET's database could be asked this time.
  struct DatabaseReads {
    absl::StatusOr<std::vector<std::vector<std::string>>> packages;
    // Only while packages are readable and transport is watched.
    absl::StatusOr<std::vector<RosterRow>> roster;
    absl::StatusOr<std::vector<std::vector<std::string>>> transport;  // roster's error if it failed
  };

  void Loop();
  // One observation of everything: the database (if configured), the inboxes,
  // the store's schedule, the import services, the server, the disks, the
  // ERP window, in that order.
  LoadingSnapshot Gather(int64_t now_ms);
  // Keeps the source-health findings of a check for the next commit.
  void NoteChecks(const std::vector<Finding>& f);
  DatabaseReads ReadDatabase(int64_t now_ms);
  // Packages and transport into `s`, or db_ok false when unreadable.
  void GatherDatabase(int64_t now_ms, LoadingSnapshot& s);
  // Why transport cannot be watched this time ("" when it can); logs each
  // new reason once.
  std::string TransportError(const DatabaseReads& r);
  void GatherInboxes(int64_t now_ms, LoadingSnapshot& s);
  // The import web services, checked at most every service_every_ms.
  void GatherImportService(LoadingSnapshot& s);
  void GatherDisks(LoadingSnapshot& s);

  LoadingWatchOptions options_;
  Outbox& outbox_;
  std::function<void()> on_committed_;
  std::function<LoadingContext(int64_t)> context_;
  Clock& clock_;
  std::set<std::string> unreadable_inboxes_;  // logged once each
  LoadingDetector detector_;
  std::optional<DetectorStateKeeper> state_;  // loop thread only
  std::unique_ptr<SetDatabase> db_;
  // Queries and folders that keep failing (agent/sources/set_checks.h): their
  // findings go out with the detector's; state in row "loading.checks".
  SourceHealth sources_;
  std::optional<DetectorStateKeeper> checks_state_;
  std::vector<Finding> check_findings_;
  std::string transport_error_;  // why transport is not watched (logged once)
  std::optional<bool> service_ok_;
  std::string service_error_;
  int64_t next_service_check_ms_ = 0;
  std::string last_db_error_;

  Mutex mu_;
  CondVar cv_;  // stopping_ changed
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

// Parses "06:00-23:00" into minutes after midnight; false if malformed.
bool ParseDailyWindow(std::string_view text, int* start_min, int* end_min);
// HTTP GET with a timeout: OK when the answer is 200 and looks like a WSDL.
absl::Status CheckWsdl(const std::string& url, int timeout_ms);

}  // namespace setdiag::agent
