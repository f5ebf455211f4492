#pragma once
// Read-only access to SET Retail 10's PostgreSQL databases through the
// agent's own protocol client (agent/sources/pg_wire.h, not libpq: footprint):
// the till roster (set.cash_cash), each till's last activity
// (set_operday.od_cash_status), import packages (set.erp_transport_package)
// and transport to the tills (set.cash_activity,
// set.un_cg_product_file_for_cashes). Every query can be replaced in the
// config because column names differ between SET versions; the defaults are
// in docs/till-watch.md and docs/loading-watch.md and follow the column
// names of SET's own entity classes (../shared/docs/domain.md).
//
// Schema: on every (re)connect to a database the default queries of that
// database are built from what information_schema.columns shows. An
// optional column that is missing is left out (what is lost is logged once);
// a required one makes the source fail with FailedPrecondition naming the
// table.column and the config key that overrides the query, without
// sending a query that cannot work at every poll. A query configured in the
// file is used as it is.
//
// Time: SET writes its timestamps (lastactivity, timedate, ...) as local time
// without zone. With `time_zone` set (an IANA name) the default queries read
// them in that zone explicitly (`x AT TIME ZONE 'zone'`, PostgreSQL 9.4
// safe); empty, in the session's TimeZone (the database server's default).
//
// Errors: the database cannot be reached, the connection broke or a query
// timed out: Unavailable. The database answers but the query does not fit
// it (a missing column or table, a syntax error, too few columns, a time
// zone PostgreSQL does not know): FailedPrecondition, with the config key
// of the query in the message. Sessions are opened read-only with a
// statement timeout. The password comes from the config only (no ~/.pgpass,
// no PG* environment variables); TLS as libpq's default sslmode=prefer.
// Not thread-safe: owned by one watch loop.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/sources/pg_wire.h"

namespace setdiag::agent {

struct SetDbConfig {
  std::string host = "127.0.0.1";
  int port = 5432;
  std::string user = "postgres";
  std::string password;  // never logged
  std::string database_set = "set";
  std::string database_operday = "set_operday";
  int64_t connect_timeout_ms = 3000;
  int64_t query_timeout_ms = 5000;
  std::optional<int> shop_number;  // filter when one database serves several shops
  // IANA zone SET's naive timestamps are written in (set_db.time_zone, else
  // calendar.time_zone); empty: the session's TimeZone.
  std::string time_zone;
  // Heartbeats ahead of the agent's clock, or the database's clock off by
  // more than this, raise set.clock_skew (set_db.clock_tolerance).
  int64_t clock_tolerance_ms = 120'000;
  // A query that keeps failing this long (and at least 3 times in a row)
  // raises agent.source_failed (set_db.failure_confirm).
  int64_t failure_confirm_ms = 30'000;
  std::string roster_query;     // empty: the default roster query
  std::string activity_query;   // empty: the default activity query
  std::string packages_query;   // empty: the default packages query
  std::string transport_query;  // empty: the default transport query
};

// What a query reads. Each has its config key and its database.
enum class SetSource { kRoster, kActivity, kPackages, kTransport };
// "set_db.roster_query", "set_db.activity_query", ...
const char* SetSourceKey(SetSource source);
// The columns a replacement query must return, for messages and docs.
const char* SetSourceColumns(SetSource source);

// Columns of SET's tables in one database as information_schema shows them:
// table -> column -> data_type, names lower case.
using SchemaColumns = std::map<std::string, std::map<std::string, std::string>>;
// Tables the default queries read in each database.
std::vector<std::string> TablesOf(SetSource source);

struct DefaultQuery {
  std::string sql;                   // empty when a required column is missing
  std::vector<std::string> missing;  // required and absent: "cash_activity.cashnumber"
  std::vector<std::string> dropped;  // optional and absent, with what is lost
};
// The default query of `source` for a database whose tables have `schema`
// (nullptr: assume every known column exists). `shop` filters by shop;
// `time_zone` as in SetDbConfig.
DefaultQuery BuildDefaultQuery(SetSource source, const SchemaColumns* schema,
                               std::optional<int> shop, const std::string& time_zone);

// The full defaults (every column present), as documented.
// Columns: ti, arrival as Unix ms, status id, status name, import type,
// message ('' : SET keeps no rejection text in this table).
std::string DefaultPackagesQuery(const std::string& time_zone = "");
// Columns: till number, last products load as Unix ms (or NULL), not loaded
// count, import date of the oldest product file not yet loaded (or NULL).
std::string DefaultTransportQuery(std::optional<int> shop_number,
                                  const std::string& time_zone = "");
// Columns: number, status, address, shop number (the fourth is optional in
// a replacement query; it lets the agent notice several shops).
std::string DefaultRosterQuery(std::optional<int> shop_number);
// Columns: till number, last activity as Unix milliseconds.
std::string DefaultActivityQuery(std::optional<int> shop_number, const std::string& time_zone = "");

// The SQLSTATE in a server error message ("... (SQLSTATE 42703)"), or "".
std::string SqlStateOf(std::string_view message);

struct RosterRow {
  int number = 0;
  std::string status;
  std::string address;
  std::optional<int> shop;  // when the query returns it
};

class SetDatabase {
 public:
  explicit SetDatabase(SetDbConfig config);
  ~SetDatabase();
  SetDatabase(const SetDatabase&) = delete;
  SetDatabase& operator=(const SetDatabase&) = delete;

  absl::StatusOr<std::vector<RosterRow>> ReadRoster();
  absl::StatusOr<std::map<int, int64_t>> ReadActivity();
  // Rows of the packages / transport queries, as text (NULL -> "").
  absl::StatusOr<std::vector<std::vector<std::string>>> ReadPackages();
  absl::StatusOr<std::vector<std::vector<std::string>>> ReadTransport();
  // The operday database's clock (clock_timestamp()) as Unix ms.
  absl::StatusOr<int64_t> ReadServerClock();
  // The session TimeZone the operday database reported ("" before a connect).
  std::string session_time_zone() const;
  // The zone the default queries read naive timestamps in, for messages:
  // "Europe/Moscow" or "the session's TimeZone (UTC)".
  std::string reading_zone() const;
  const SetDbConfig& config() const { return config_; }

 private:
  using Slot = std::unique_ptr<PgConnection>;
  struct Resolved {
    std::string sql;
    std::vector<std::string> missing;
  };
  absl::StatusOr<PgConnection*> Connection(const std::string& database, Slot* slot);
  // Reads the schema of `database` and rebuilds its default queries.
  void Inspect(const std::string& database, PgConnection* conn);
  absl::StatusOr<std::vector<std::vector<std::string>>> Run(SetSource source, int columns);
  absl::StatusOr<std::vector<std::vector<std::string>>> Query(const std::string& database,
                                                              Slot* slot, const std::string& sql,
                                                              int columns, const char* key,
                                                              int* got_columns = nullptr);
  const std::string& DatabaseOf(SetSource source) const;
  Slot* SlotOf(SetSource source);
  bool IsDefault(SetSource source) const;

  SetDbConfig config_;
  Slot set_conn_;
  Slot operday_conn_;
  std::map<SetSource, Resolved> queries_;
  std::map<std::string, bool> inspect_again_;  // by database: a default query met a missing column
  std::map<std::string, std::string>
      last_notes_;  // by database: what was logged about adapted queries
};

}  // namespace setdiag::agent
