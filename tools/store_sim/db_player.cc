#include "tools/store_sim/db_player.h"

#include "common/clock.h"
#include "common/log.h"
#include "common/strings.h"
#include "tools/store_sim/schema.h"

namespace setdiag::store_sim {

namespace {
int64_t WallMs() { return SystemClock().NowMs(); }
}  // namespace

DbPlayer::DbPlayer(std::string conninfo, int store, std::string time_zone)
    : conninfo_(std::move(conninfo)), store_(store), time_zone_(std::move(time_zone)) {}

bool DbPlayer::Check(const absl::Status& st) {
  if (st.ok()) return true;
  set_ = PgConn();
  operday_ = PgConn();
  if (!outage_since_ms_) {
    outage_since_ms_ = WallMs();
    log::Error("db", Cat("PostgreSQL unavailable: ", st.message(),
                         "; tills keep playing, retrying every interval"));
  } else {
    log::Debug("db", Cat("still unavailable: ", st.message()));
  }
  return false;
}

bool DbPlayer::EnsureConnected(const std::vector<Till>& tills) {
  if (connected()) return true;
  set_ = PgConn();
  operday_ = PgConn();
  if (!Check(EnsureDatabases(conninfo_))) return false;
  auto s = PgConn::Connect(conninfo_, kSetDb, time_zone_);
  if (!Check(s.status())) return false;
  auto o = PgConn::Connect(conninfo_, kOperdayDb, time_zone_);
  if (!Check(o.status())) return false;
  set_ = std::move(*s);
  operday_ = std::move(*o);
  if (!Check(EnsureSetTables(set_)) || !Check(EnsureOperdayTables(operday_)) ||
      !Check(EnsureStatusRows(operday_, store_, tills))) {
    return false;
  }
  roster_written_ = 0;  // a new (maybe re-created) database gets the whole registry
  if (outage_since_ms_) {
    log::Info("db", Cat("PostgreSQL is back after ", (WallMs() - *outage_since_ms_) / 1000, " s"));
    outage_since_ms_.reset();
  } else if (first_connect_) {
    log::Info("db", Cat("connected; databases ", kSetDb, " and ", kOperdayDb, " are ready"));
  }
  first_connect_ = false;
  return true;
}

bool DbPlayer::SyncRoster(const std::vector<Till>& tills, uint64_t roster_version) {
  if (!EnsureConnected(tills)) return false;
  if (roster_version <= roster_written_) return true;
  if (!Check(UpsertRoster(set_, store_, tills))) return false;
  roster_written_ = roster_version;
  size_t active = 0;
  for (const Till& t : tills) active += t.status == kStatusActive;
  log::Info("db", Cat("cash_cash: store ", store_, " has ", tills.size(), " tills, ", active,
                      " ACTIVE, ", tills.size() - active, " CLOSED_DOWN"));
  return true;
}

bool DbPlayer::Tick(const std::vector<Till>& tills, uint64_t roster_version,
                    const std::vector<int>& pinging) {
  if (!SyncRoster(tills, roster_version)) return false;
  return Check(TouchLastActivity(operday_, store_, pinging));
}

}  // namespace setdiag::store_sim
