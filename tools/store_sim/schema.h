#pragma once
// The slice of SET Retail 10's PostgreSQL schema the simulator plays: the
// till registry set.cash_cash, the last-activity table
// set_operday.od_cash_status and the goods tables in `set`
// (docs/simulator.md, docs/domain facts). Tables
// are created only if missing, so a richer schema already present is used
// as it is.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "tools/store_sim/pg.h"
#include "tools/store_sim/tills.h"

namespace setdiag::store_sim {

inline constexpr const char* kSetDb = "set";
inline constexpr const char* kOperdayDb = "set_operday";

// Connects to database "postgres" and creates `set` and `set_operday` if
// they are missing.
absl::Status EnsureDatabases(const std::string& conninfo);
// CREATE TABLE IF NOT EXISTS cash_cash in `set`.
absl::Status EnsureSetTables(PgConn& set_db);
// CREATE TABLE IF NOT EXISTS, in `set`, the goods and prices tables:
// erp_transport_package (import packages and their status), cash_activity
// (per-till product loading) and un_cg_product_file_for_cashes (product
// files produced for tills).
absl::Status EnsureGoodsTables(PgConn& set_db);
// Gives every till a cash_activity row (never loaded, nothing pending);
// leaves existing rows alone.
absl::Status EnsureActivityRows(PgConn& set_db, int store, int tills);
// CREATE TABLE IF NOT EXISTS od_cash_status in `set_operday`.
absl::Status EnsureOperdayTables(PgConn& operday_db);

// Upserts every till of the store into cash_cash (status, cash_ip,
// fwversion, hardwarename), in one statement.
absl::Status UpsertRoster(PgConn& set_db, int store, const std::vector<Till>& tills);
// Gives every till a row in od_cash_status (lastactivity NULL until it
// first pings); leaves existing rows alone.
absl::Status EnsureStatusRows(PgConn& operday_db, int store, const std::vector<Till>& tills);
// One statement: lastactivity = now()::timestamp for these tills, inserting
// rows that are missing.
absl::Status TouchLastActivity(PgConn& operday_db, int store, const std::vector<int>& numbers);

}  // namespace setdiag::store_sim
