#pragma once
// Plays the store's database side: keeps connections to `set` and
// `set_operday`, creates what is missing, writes the till registry when a
// status changes and the tills' last activity every tick. When PostgreSQL is
// down it logs once per outage and tries again on the next call.
// Owned by the tick loop's thread.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "tools/store_sim/pg.h"
#include "tools/store_sim/tills.h"

namespace setdiag::store_sim {

class DbPlayer {
 public:
  // `time_zone`: the session TimeZone lastactivity is written in (PgConn).
  DbPlayer(std::string conninfo, int store, std::string time_zone = "");

  // Writes the registry if `roster_version` is newer than what was written.
  // Connects first if needed. Returns false while the database is down.
  bool SyncRoster(const std::vector<Till>& tills, uint64_t roster_version);
  // Connects if needed, syncs the registry, then sets lastactivity for
  // `pinging` tills. Returns false while the database is down.
  bool Tick(const std::vector<Till>& tills, uint64_t roster_version,
            const std::vector<int>& pinging);

  bool connected() const { return set_.ok() && operday_.ok(); }

 private:
  bool EnsureConnected(const std::vector<Till>& tills);
  bool Check(const absl::Status& st);  // records an outage on error

  std::string conninfo_;
  int store_;
  std::string time_zone_;
  PgConn set_, operday_;
  uint64_t roster_written_ = 0;
  bool first_connect_ = true;
  std::optional<int64_t> outage_since_ms_;
};

}  // namespace setdiag::store_sim
