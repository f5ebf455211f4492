#include "agent/set_db.h"

#include <algorithm>
#include <charconv>
#include <chrono>

#include "common/strings.h"

namespace setdiag::agent {
namespace {

std::string FirstLine(absl::string_view msg) {
  std::string s(msg.data(), msg.size());
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

SetDatabase::~SetDatabase() = default;

absl::StatusOr<PgConnection*> SetDatabase::Connection(const std::string& database, Slot* slot) {
  if (*slot && (*slot)->ok()) return slot->get();
  slot->reset();
  PgConnectParams p;
  p.host = config_.host;
  p.port = config_.port;
  p.user = config_.user;
  p.password = config_.password;
  p.database = database;
  p.application_name = "setdiag-agent";
  p.options = Cat("-c default_transaction_read_only=on -c statement_timeout=", config_.query_timeout_ms);
  p.connect_timeout_ms = std::max<int64_t>(1000, config_.connect_timeout_ms);
  // A server that stops answering mid-query must not block the watch: the
  // kernel gives up on the socket (keepalive is always on in PgConnection).
  p.tcp_user_timeout_ms = config_.query_timeout_ms + 5000;
  p.sslmode = PgSslMode::kPrefer;
  auto conn = PgConnection::Connect(p);
  if (!conn.ok()) {
    return absl::UnavailableError(Cat("SET database '", database, "' at ", config_.host, ":", config_.port, ": ",
                                      FirstLine(conn.status().message())));
  }
  *slot = std::move(*conn);
  return slot->get();
}

absl::StatusOr<std::vector<std::vector<std::string>>> SetDatabase::Query(const std::string& database, Slot* slot,
                                                                         const std::string& sql, int columns) {
  auto conn = Connection(database, slot);
  if (!conn.ok()) return conn.status();
  auto deadline = PgConnection::Clock::now() + std::chrono::milliseconds(config_.query_timeout_ms + 5000);
  auto res = (*conn)->SimpleQuery(sql, deadline);
  if (!(*conn)->ok()) slot->reset();  // reconnect on the next call
  if (!res.ok()) {
    return absl::UnavailableError(
        Cat("SET database '", database, "': query failed: ", FirstLine(res.status().message())));
  }
  if (res->columns < columns) {
    return absl::InvalidArgumentError(Cat("SET database '", database, "': the query must return ", columns,
                                          " columns: ", sql));
  }
  std::vector<std::vector<std::string>> rows;
  rows.reserve(res->rows.size());
  for (auto& r : res->rows) {
    std::vector<std::string> row;
    row.reserve(static_cast<size_t>(columns));
    for (size_t c = 0; c < static_cast<size_t>(columns); ++c) row.push_back(r[c] ? std::move(*r[c]) : std::string());
    rows.push_back(std::move(row));
  }
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
