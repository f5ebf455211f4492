#pragma once
// The store's tills as the simulator plays them, and what the control API may
// do to them. Thread-safe: the control server changes tills on its I/O
// thread while the tick loop reads snapshots.
//
// A till has three independent facts:
//   status    what the SET server's registry says: ACTIVE or CLOSED_DOWN;
//   plugged   the machine is powered and on the network (answers probes);
//   software  the till's SET software is running (pings the server).
// It pings (last activity in the database, heartbeat pushes) only when all
// three allow it. The reported state is derived from them.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/mutex.h"

namespace setdiag::store_sim {

inline constexpr std::string_view kStatusActive = "ACTIVE";
inline constexpr std::string_view kStatusClosedDown = "CLOSED_DOWN";

enum class TillState { kRunning, kStopped, kMothballed, kUnplugged };
std::string_view TillStateName(TillState s);

enum class TillAction { kStart, kStop, kMothball, kUnplug };
std::string_view TillActionName(TillAction a);
std::optional<TillAction> ParseTillAction(std::string_view name);

struct Till {
  int number = 0;
  std::string cash_ip;
  std::string status{kStatusActive};
  bool plugged = true;
  bool software_running = true;
  std::string fwversion;
  std::string hardwarename;
  std::string cashier;
  // Wall-clock Unix ms of the last successful last-activity write, if any.
  std::optional<int64_t> last_activity_ms;

  TillState state() const;
  // Pings the server: writes last activity and pushes heartbeats.
  bool Pings() const { return plugged && software_running && status == kStatusActive; }
};

struct ApplyResult {
  std::vector<int> changed;    // tills whose state or status changed
  std::vector<int> unchanged;  // already there
};

class TillBoard {
 public:
  // Tills 1..count; `mothballed` start CLOSED_DOWN with their software stopped.
  TillBoard(int count, const std::vector<int>& mothballed,
            const std::function<std::string(int)>& ip_of);

  // Numbers must be within 1..count (see ParseTillSet).
  ApplyResult Apply(TillAction action, const std::vector<int>& numbers);
  std::vector<Till> Snapshot() const;
  int count() const { return count_; }
  // Bumped by every change of a status (what the registry must show).
  uint64_t roster_version() const;
  void MarkActivity(const std::vector<int>& numbers, int64_t now_ms);

 private:
  const int count_;
  mutable Mutex mu_;
  std::vector<Till> tills_ ABSL_GUARDED_BY(mu_);  // index n-1
  uint64_t roster_version_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace setdiag::store_sim
