#pragma once
// Read-only access to SET Retail 10's PostgreSQL databases through the
// agent's own protocol client (agent/pg_wire.h, not libpq: footprint):
// the till roster (set.cash_cash) and each till's last activity
// (set_operday.od_cash_status). Every query can be replaced in the config
// because column names differ between SET versions; the defaults are in
// docs/till-watch.md. Sessions are opened read-only with a statement timeout.
// Connection and query errors become absl::Unavailable here and nowhere
// else. The password comes from the config only (no ~/.pgpass, no PG*
// environment variables); TLS as libpq's default sslmode=prefer.
// Not thread-safe: owned by the till watch loop.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/pg_wire.h"

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
  std::string roster_query;        // empty: DefaultRosterQuery
  std::string activity_query;      // empty: DefaultActivityQuery
  std::string packages_query;      // empty: DefaultPackagesQuery
  std::string transport_query;     // empty: DefaultTransportQuery
};

// Columns: ti, arrival as Unix ms, status id, status name, import type, message.
std::string DefaultPackagesQuery();
// Columns: till number, last products load as Unix ms (or NULL), not loaded
// count, creation of the oldest product file not yet loaded (or NULL).
std::string DefaultTransportQuery(std::optional<int> shop_number);

// Columns: number, status, address.
std::string DefaultRosterQuery(std::optional<int> shop_number);
// Columns: till number, last activity as Unix milliseconds.
std::string DefaultActivityQuery(std::optional<int> shop_number);

struct RosterRow {
  int number = 0;
  std::string status;
  std::string address;
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

 private:
  using Slot = std::unique_ptr<PgConnection>;
  absl::StatusOr<PgConnection*> Connection(const std::string& database, Slot* slot);
  absl::StatusOr<std::vector<std::vector<std::string>>> Query(const std::string& database, Slot* slot,
                                                               const std::string& sql, int columns);

  SetDbConfig config_;
  Slot set_conn_;
  Slot operday_conn_;
};

}  // namespace setdiag::agent
