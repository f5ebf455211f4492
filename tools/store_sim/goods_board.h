#pragma once
// The goods and prices side's knobs and what it last wrote, shared between
// the control API (I/O thread) and the goods loop (its own thread).
// Thread-safe. Each knob is reversible:
//   ERP      sending | stopped
//   server   processing | stalled | failing (status, message)
//   tills    loading | transport stalled (per till)
// The per-till mirrors (not-loaded count, last load time) are what the goods
// loop last wrote to set.cash_activity.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/mutex.h"

namespace setdiag::store_sim {

// erp_transport_package.statusid and statusname.
inline constexpr int kPkgUnknown = -1;
inline constexpr int kPkgNoSuchPackage = 0;
inline constexpr int kPkgXmlError = 1;
inline constexpr int kPkgInProcess = 2;
inline constexpr int kPkgCorrect = 3;
inline constexpr int kPkgInvalidItem = 4;
inline constexpr int kPkgInternalError = 5;
// "in process", "correct", ...; "" for codes outside -1..5.
std::string_view PackageStatusName(int statusid);

enum class ServerMode { kProcessing, kStalled, kFailing };
std::string_view ServerModeName(ServerMode m);

struct ErpState {
  bool sending = false;
  int64_t every_ms = 0;  // 0: no cadence known yet
  std::string type;
  std::string last_ti;  // "" until the first package
  int64_t sent = 0;     // packages sent by this run
};

struct ServerState {
  ServerMode mode = ServerMode::kProcessing;
  int fail_status = kPkgInternalError;
  std::string fail_message;
  int64_t in_process = 0;  // packages waiting in status 2
  int64_t processed = 0;   // packages finished by this run (any outcome)
};

struct TillLoad {
  bool transport_stalled = false;
  int64_t notloaded = 0;
  std::optional<int64_t> last_load_ms;  // wall clock of the last load written
};

class GoodsBoard {
 public:
  GoodsBoard(int tills, int64_t erp_every_ms, std::string erp_type);

  ErpState erp() const;
  ServerState server() const;
  std::vector<TillLoad> tills() const;  // index n-1

  // Control knobs; each returns a one-line description of the change for the
  // log ("" when nothing changed).
  std::string StartErp(
      std::optional<int64_t> every_ms);  // every_ms must be known (given or configured)
  std::string StopErp();
  std::string Stall();
  std::string Resume();
  std::string Fail(int status, const std::string& message);
  // Returns the tills whose transport state changed.
  std::vector<int> SetTransportStalled(const std::vector<int>& numbers, bool stalled);

  // Bumped whenever the ERP is started, so the loop sends at once.
  uint64_t erp_generation() const;

  // From the goods loop.
  void NoteSent(const std::string& ti);
  void SetInProcess(int64_t n);
  void NoteProcessed();
  void SetNotLoaded(int number, int64_t count);
  void NoteLoaded(const std::vector<int>& numbers, int64_t now_ms);
  void SetLastLoad(int number, std::optional<int64_t> ms);

 private:
  mutable Mutex mu_;
  ErpState erp_ ABSL_GUARDED_BY(mu_);
  ServerState server_ ABSL_GUARDED_BY(mu_);
  std::vector<TillLoad> tills_ ABSL_GUARDED_BY(mu_);
  uint64_t erp_generation_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace setdiag::store_sim
