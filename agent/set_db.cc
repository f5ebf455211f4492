#include "agent/set_db.h"

#include <libpq-fe.h>

#include <charconv>

#include "common/strings.h"

namespace setdiag::agent {
namespace {

// libpq conninfo value quoting: single quotes, backslash escapes.
std::string Quote(const std::string& v) {
  std::string out = "'";
  for (char c : v) {
    if (c == '\'' || c == '\\') out += '\\';
    out += c;
  }
  return out + "'";
}

std::string FirstLine(const char* msg) {
  std::string s = msg ? msg : "";
  if (auto nl = s.find('\n'); nl != std::string::npos) s.resize(nl);
  return s;
}

}  // namespace

std::string DefaultRosterQuery(std::optional<int> shop) {
  std::string q = "SELECT number, status, COALESCE(cash_ip, '') FROM cash_cash";
  if (shop) Append(&q, " WHERE shop_number = ", *shop);
  return q + " ORDER BY number";
}

std::string DefaultActivityQuery(std::optional<int> shop) {
  // lastactivity is a timestamp without time zone written in the server's
  // local time; casting to timestamptz reads it in the session's TimeZone,
  // which defaults to the database server's, i.e. the store server's.
  std::string q =
      "SELECT cashnum, (EXTRACT(EPOCH FROM lastactivity::timestamptz) * 1000)::bigint "
      "FROM od_cash_status WHERE lastactivity IS NOT NULL";
  if (shop) Append(&q, " AND shopnum = ", *shop);
  return q;
}

std::string DefaultPackagesQuery() {
  return "SELECT ti, (EXTRACT(EPOCH FROM timedate::timestamptz) * 1000)::bigint, statusid, "
         "COALESCE(statusname, ''), COALESCE(importtype, ''), COALESCE(message, '') "
         "FROM erp_transport_package WHERE timedate > now() - interval '2 days' OR statusid = 2 "
         "ORDER BY timedate DESC LIMIT 1000";
}

std::string DefaultTransportQuery(std::optional<int> shop) {
  // The fourth column, when the oldest product file the till has not taken
  // was produced, is what lag is measured from: a till that simply had
  // nothing to load for hours is not late the moment a new file appears.
  std::string q =
      "SELECT a.cashnum, (EXTRACT(EPOCH FROM a.lastproductsloaddate::timestamptz) * 1000)::bigint, "
      "a.notloadedproductscount, "
      "(SELECT (EXTRACT(EPOCH FROM MIN(f.created)::timestamptz) * 1000)::bigint "
      "FROM un_cg_product_file_for_cashes f "
      "WHERE f.cashnum = a.cashnum AND f.shopnum = a.shopnum AND f.id > a.lastprocessedid) "
      "FROM cash_activity a";
  if (shop) Append(&q, " WHERE a.shopnum = ", *shop);
  return q;
}

SetDatabase::SetDatabase(SetDbConfig config) : config_(std::move(config)) {
  if (config_.packages_query.empty()) config_.packages_query = DefaultPackagesQuery();
  if (config_.transport_query.empty()) config_.transport_query = DefaultTransportQuery(config_.shop_number);
  if (config_.roster_query.empty()) config_.roster_query = DefaultRosterQuery(config_.shop_number);
  if (config_.activity_query.empty()) config_.activity_query = DefaultActivityQuery(config_.shop_number);
}

SetDatabase::~SetDatabase() {
  if (set_conn_) PQfinish(set_conn_);
  if (operday_conn_) PQfinish(operday_conn_);
}

absl::StatusOr<pg_conn*> SetDatabase::Connection(const std::string& database, pg_conn** slot) {
  if (*slot && PQstatus(*slot) == CONNECTION_OK) return *slot;
  if (*slot) {
    PQfinish(*slot);
    *slot = nullptr;
  }
  std::string conninfo = Cat("host=", Quote(config_.host), " port=", config_.port, " user=", Quote(config_.user),
                             " dbname=", Quote(database), " connect_timeout=",
                             std::max<int64_t>(1, config_.connect_timeout_ms / 1000),
                             " application_name='setdiag-agent'",
                             // A server that stops answering mid-query must not
                             // block the watch: the kernel gives up on the socket.
                             " keepalives=1 keepalives_idle=5 keepalives_interval=2 keepalives_count=3",
                             " tcp_user_timeout=", config_.query_timeout_ms + 5000,
                             " options='-c default_transaction_read_only=on -c statement_timeout=",
                             config_.query_timeout_ms, "'");
  if (!config_.password.empty()) Append(&conninfo, " password=", Quote(config_.password));
  *slot = PQconnectdb(conninfo.c_str());
  if (PQstatus(*slot) != CONNECTION_OK) {
    std::string err = FirstLine(PQerrorMessage(*slot));
    PQfinish(*slot);
    *slot = nullptr;
    return absl::UnavailableError(Cat("SET database '", database, "' at ", config_.host, ":", config_.port,
                                      ": ", err));
  }
  return *slot;
}

absl::StatusOr<std::vector<std::vector<std::string>>> SetDatabase::Query(const std::string& database,
                                                                         pg_conn** slot,
                                                                         const std::string& sql,
                                                                         int columns) {
  auto conn = Connection(database, slot);
  if (!conn.ok()) return conn.status();
  PGresult* res = PQexec(*conn, sql.c_str());
  if (PQresultStatus(res) != PGRES_TUPLES_OK) {
    std::string err = FirstLine(PQresultErrorMessage(res));
    PQclear(res);
    if (PQstatus(*conn) != CONNECTION_OK) {
      PQfinish(*slot);
      *slot = nullptr;
    }
    return absl::UnavailableError(Cat("SET database '", database, "': query failed: ", err));
  }
  if (PQnfields(res) < columns) {
    PQclear(res);
    return absl::InvalidArgumentError(Cat("SET database '", database, "': the query must return ", columns,
                                          " columns: ", sql));
  }
  std::vector<std::vector<std::string>> rows;
  int n = PQntuples(res);
  rows.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    std::vector<std::string> row;
    for (int c = 0; c < columns; ++c) row.emplace_back(PQgetisnull(res, i, c) ? "" : PQgetvalue(res, i, c));
    rows.push_back(std::move(row));
  }
  PQclear(res);
  return rows;
}

absl::StatusOr<std::vector<RosterRow>> SetDatabase::ReadRoster() {
  auto rows = Query(config_.database_set, &set_conn_, config_.roster_query, 3);
  if (!rows.ok()) return rows.status();
  std::vector<RosterRow> out;
  for (auto& r : *rows) {
    int number = 0;
    auto [p, ec] = std::from_chars(r[0].data(), r[0].data() + r[0].size(), number);
    if (ec != std::errc()) continue;  // not a till number: skip, never guess
    out.push_back({number, r[1], r[2]});
  }
  return out;
}

absl::StatusOr<std::vector<std::vector<std::string>>> SetDatabase::ReadPackages() {
  return Query(config_.database_set, &set_conn_, config_.packages_query, 6);
}

absl::StatusOr<std::vector<std::vector<std::string>>> SetDatabase::ReadTransport() {
  return Query(config_.database_set, &set_conn_, config_.transport_query, 4);
}

absl::StatusOr<std::map<int, int64_t>> SetDatabase::ReadActivity() {
  auto rows = Query(config_.database_operday, &operday_conn_, config_.activity_query, 2);
  if (!rows.ok()) return rows.status();
  std::map<int, int64_t> out;
  for (auto& r : *rows) {
    int number = 0;
    int64_t ms = 0;
    auto a = std::from_chars(r[0].data(), r[0].data() + r[0].size(), number);
    auto b = std::from_chars(r[1].data(), r[1].data() + r[1].size(), ms);
    if (a.ec != std::errc() || b.ec != std::errc()) continue;
    auto& slot = out[number];
    slot = std::max(slot, ms);
  }
  return out;
}

}  // namespace setdiag::agent
