#pragma once
// The loading watch's decisions: goods and prices loading (ERP -> server),
// transport to the tills, and the SET server's own health. Pure logic over
// observations and a timestamp, like the TillDetector.
//
// Conditions (docs/loading-watch.md):
//  - "loading.halted" (critical): the server stopped processing imports: a
//    package "in process" (status 2) longer than stuck_ms, an inbox file
//    older than inbox_age_ms, or the import web service dead while packages
//    or files wait.
//  - "loading.transport_halted" (critical): more than half of the expected
//    tills have had products waiting for longer than transport_lag_ms
//    (measured from the oldest waiting product file, else the last load).
//  - "loading.erp_silent" (important): inside the ERP's sending window no
//    package arrived for erp_every_ms. Quiet outside the window is normal.
//  - "set.server_down" (important): Set10.ear not deployed or failed, port
//    8090 or 8091 closed, or a data volume nearly full, for server_confirm_ms.
//  - "loading.import_errors" (normal): packages that failed (1, 4, 5), with
//    their messages; cleared by a later correct package.
// If SET's database cannot be read, nothing that depends on it is raised or
// cleared: unknown is not halted. In a maintenance window nothing is raised
// and active conditions clear, as for the tills.
// Restarts: ExportState()/RestoreState() carry the active conditions (with
// their episodes) and the failed packages already reported to a new
// process, as for the TillDetector. A restored condition whose source is no
// longer watched (transport, the ERP cadence) clears after the clear window.
// Not thread-safe: owned by the loading watch loop.

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "agent/detectors/till_detector.h"

namespace setdiag::agent {

struct PackageObservation {
  std::string ti;
  int64_t arrived_ms = 0;
  int status = -1;  // -1 unknown, 0 no such, 1 XML error, 2 in process, 3 correct, 4 invalid item,
                    // 5 internal
  std::string status_name;
  std::string import_type;
  std::string message;
};

struct InboxObservation {
  std::string path;
  bool readable = true;
  std::string error;
  int files = 0;
  std::optional<int64_t> oldest_mtime_ms;
  std::string oldest_name;
};

struct TransportObservation {
  int till = 0;
  bool expected = true;  // false for mothballed tills
  std::optional<int64_t> last_load_ms;
  int64_t not_loaded = 0;
  std::optional<int64_t> oldest_pending_ms;  // oldest product file not yet loaded
};

struct DiskObservation {
  std::string path;
  uint64_t free_bytes = 0;
  uint64_t total_bytes = 0;
};

struct LoadingSnapshot {
  int64_t now_ms = 0;
  bool db_ok = true;
  std::string db_error;
  std::vector<PackageObservation> packages;  // recent ones, any order
  std::vector<InboxObservation> inboxes;
  std::optional<bool> import_service_ok;  // nullopt: not checked
  std::string import_service_error;
  std::vector<TransportObservation> transport;  // empty: not watched
  // Transport is watched but could not be read this time (its query does not
  // fit this SET version, several shops and no set_db.shop_number): an
  // active loading.transport_halted is neither raised nor cleared.
  bool transport_unknown = false;
  ServerState server;
  std::vector<DiskObservation> disks;
  bool erp_window_open = true;
  int64_t erp_window_opened_ms = 0;  // when the current window opened
  bool maintenance = false;          // an engineer is working on site: raise nothing
  bool tills_expected = true;        // store calendar: closed stores' tills take no goods
};

struct LoadingPolicy {
  int64_t stuck_ms = 15 * 60'000;
  int64_t inbox_age_ms = 15 * 60'000;
  int64_t transport_lag_ms = 30 * 60'000;
  int64_t erp_every_ms = 0;  // 0: the ERP's cadence is not watched
  int64_t server_confirm_ms = 30'000;
  // The import web service must fail this long before it counts.
  int64_t service_confirm_ms = 120'000;
  int64_t clear_ms = 60'000;
  double disk_min_free_fraction = 0.05;
  uint64_t disk_min_free_bytes = uint64_t{1} << 30;
};

class LoadingDetector {
 public:
  LoadingDetector(LoadingPolicy policy, std::string episode_prefix);
  std::vector<Finding> Evaluate(const LoadingSnapshot& s);
  // The next instant a threshold is crossed without new observations.
  std::optional<int64_t> NextDeadline(int64_t now_ms) const;

  // The durable state: a JSON object with "version", the active conditions
  // ("conditions": kind -> episode, since_ms), the failed packages already
  // reported that SET still lists, and "held" (agent/store/detector_state.h).
  // Changes only when a condition is raised or cleared or the failed
  // packages change.
  nlohmann::json ExportState() const;
  // Takes over a previous process's ExportState(); only before the first
  // Evaluate. InvalidArgument (and nothing restored) when malformed.
  absl::Status RestoreState(const nlohmann::json& state);

 private:
  struct Condition {
    bool active = false;
    std::string episode;
    int64_t since_ms = 0;
    std::optional<int64_t> pending_since;  // condition true, not yet confirmed
    std::optional<int64_t> clear_since;    // condition false while active
  };
  // Applies one evaluation of a condition; appends raised/cleared findings.
  // `can_clear` is false when the observations that would clear it are
  // unknown (SET's database unreadable): then an active condition stays.
  void Step(Condition& c, const char* kind, Severity severity, bool holds, int64_t confirm_ms,
            const LoadingSnapshot& s, const nlohmann::json& evidence, std::vector<Finding>& out,
            bool can_clear = true);
  // One evaluation of each condition, in the order Evaluate runs them.
  // set.server_down: the application, its ports and the data volumes.
  void StepServer(const LoadingSnapshot& s, std::vector<Finding>& out);
  // Whether the import web service has failed for service_confirm_ms.
  bool ImportServiceDead(const LoadingSnapshot& s);
  // loading.halted: stuck packages, old inbox files, a dead import service
  // while imports wait.
  void StepHalted(const LoadingSnapshot& s, bool service_dead, const nlohmann::json& last_import,
                  std::vector<Finding>& out);
  // The packages "in process" longer than stuck_ms; sets `waiting` if any is
  // in process.
  nlohmann::json StuckPackages(const LoadingSnapshot& s, bool& waiting);
  // The oldest inbox file (null: none); appends a reason per inbox whose
  // oldest file is too old, sets `waiting` if any inbox holds files.
  nlohmann::json OldestWaitingFile(const LoadingSnapshot& s, nlohmann::json& reasons,
                                   bool& waiting);
  // Notes when the store calendar opens the tills again.
  void NoteTillsOpening(const LoadingSnapshot& s);
  // loading.transport_halted.
  void StepTransport(const LoadingSnapshot& s, const nlohmann::json& last_import,
                     std::vector<Finding>& out);
  // The expected tills whose products wait longer than transport_lag_ms;
  // counts the expected tills into `expected`.
  nlohmann::json LaggingTills(const LoadingSnapshot& s, int& expected);
  // loading.erp_silent; `newest` is the newest package (null: none).
  void StepErpSilent(const LoadingSnapshot& s, const PackageObservation* newest,
                     std::vector<Finding>& out);
  // loading.import_errors: each failed package once; cleared by a later
  // correct one (`last_ok`, null: none).
  void ReportImportErrors(const LoadingSnapshot& s, const PackageObservation* last_ok,
                          std::vector<Finding>& out);
  // Every condition with its kind, for export and restore.
  std::vector<std::pair<const char*, Condition*>> Conditions();
  std::vector<std::pair<const char*, const Condition*>> Conditions() const;

  LoadingPolicy policy_;
  std::string prefix_;
  Condition halted_, transport_, erp_, server_, errors_;
  std::set<std::string> reported_failures_;
  std::set<std::string> recent_failures_;  // failed packages in the last snapshot read
  bool evaluated_ = false;
  std::optional<int64_t> service_down_since_;
  bool tills_were_unexpected_ = false;
  std::optional<int64_t> tills_opened_at_;  // lag counts from no earlier than the opening
  std::vector<int64_t> deadlines_;
};

}  // namespace setdiag::agent
