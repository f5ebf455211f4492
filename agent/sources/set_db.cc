#include "agent/sources/set_db.h"

#include <algorithm>
#include <charconv>
#include <chrono>

#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"

namespace setdiag::agent {
namespace {

std::string FirstLine(absl::string_view msg) {
  std::string s(msg.data(), msg.size());
  if (auto nl = s.find('\n'); nl != std::string::npos) s.resize(nl);
  return s;
}

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) Append(&out, out.empty() ? "" : ", ", i);
  return out;
}

std::string Quoted(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

// A column's view for one query: whether it exists and its type.
class Columns {
 public:
  Columns(const SchemaColumns* schema, DefaultQuery* q) : schema_(schema), q_(q) {}
  bool Has(const std::string& table, const std::string& column) const {
    if (!schema_) return true;
    auto t = schema_->find(table);
    return t != schema_->end() && t->second.contains(column);
  }
  bool TableExists(const std::string& table) const { return !schema_ || schema_->contains(table); }
  // Records a required column; false if it is missing.
  bool Need(const std::string& table, const std::string& column) {
    if (Has(table, column)) return true;
    std::string what = TableExists(table) ? Cat(table, ".", column) : Cat(table, " (table)");
    if (std::find(q_->missing.begin(), q_->missing.end(), what) == q_->missing.end())
      q_->missing.push_back(what);
    return false;
  }
  // Records an optional column; false (and what is lost) if it is missing.
  bool Want(const std::string& table, const std::string& column, const std::string& lost) {
    if (Has(table, column)) return true;
    if (!TableExists(table)) return false;  // said once, as missing
    q_->dropped.push_back(Cat(table, ".", column, " is missing: ", lost));
    return false;
  }
  bool WithZone(const std::string& table, const std::string& column) const {
    if (!schema_) return false;
    auto t = schema_->find(table);
    if (t == schema_->end()) return false;
    auto c = t->second.find(column);
    return c != t->second.end() && c->second.starts_with("timestamp with time zone");
  }

 private:
  const SchemaColumns* schema_;
  DefaultQuery* q_;
};

// Unix ms of one of SET's timestamps. Naive ones are local time: read in
// `tz` when given, else in the session's TimeZone.
std::string UnixMs(const std::string& expr, const std::string& tz, bool with_zone) {
  if (with_zone) return Cat("(EXTRACT(EPOCH FROM ", expr, ") * 1000)::bigint");
  if (tz.empty()) return Cat("(EXTRACT(EPOCH FROM (", expr, ")::timestamptz) * 1000)::bigint");
  return Cat("(EXTRACT(EPOCH FROM (", expr, ") AT TIME ZONE ", Quoted(tz), ") * 1000)::bigint");
}

// "now" as SET's naive local time.
std::string LocalNow(const std::string& tz) {
  return tz.empty() ? std::string("localtimestamp") : Cat("(now() AT TIME ZONE ", Quoted(tz), ")");
}

DefaultQuery Roster(const SchemaColumns* schema, std::optional<int> shop) {
  DefaultQuery q;
  Columns c(schema, &q);
  const std::string t = "cash_cash";
  c.Need(t, "number");
  c.Need(t, "status");
  bool has_shop = shop
                      ? c.Need(t, "shop_number")
                      : c.Want(t, "shop_number", "several shops in one database cannot be noticed");
  bool has_ip = c.Want(t, "cash_ip", "tills are not probed on the network");
  if (!q.missing.empty()) return q;
  q.sql = Cat("SELECT number, status::text, ", has_ip ? "COALESCE(cash_ip::text, '')" : "''", ", ",
              has_shop ? "shop_number" : "NULL::integer", " FROM cash_cash");
  if (shop) Append(&q.sql, " WHERE shop_number = ", *shop);
  q.sql += " ORDER BY number";
  return q;
}

DefaultQuery Activity(const SchemaColumns* schema, std::optional<int> shop, const std::string& tz) {
  DefaultQuery q;
  Columns c(schema, &q);
  const std::string t = "od_cash_status";
  c.Need(t, "cashnum");
  c.Need(t, "lastactivity");
  if (shop) c.Need(t, "shopnum");
  if (!q.missing.empty()) return q;
  q.sql = Cat("SELECT cashnum, ", UnixMs("lastactivity", tz, c.WithZone(t, "lastactivity")),
              " FROM od_cash_status WHERE lastactivity IS NOT NULL");
  if (shop) Append(&q.sql, " AND shopnum = ", *shop);
  return q;
}

DefaultQuery Packages(const SchemaColumns* schema, const std::string& tz) {
  DefaultQuery q;
  Columns c(schema, &q);
  const std::string t = "erp_transport_package";
  c.Need(t, "ti");
  c.Need(t, "timedate");
  c.Need(t, "statusid");
  bool name = c.Want(t, "statusname", "packages are reported by status id only");
  bool type = c.Want(t, "importtype", "packages are reported without their import type");
  if (!q.missing.empty()) return q;
  bool zoned = c.WithZone(t, "timedate");
  // SET keeps no rejection text in this table (FeedbackWS getPackageStatus
  // returns it): the sixth column is empty.
  q.sql = Cat("SELECT ti::text, ", UnixMs("timedate", tz, zoned), ", statusid, ",
              name ? "COALESCE(statusname::text, '')" : "''", ", ",
              type ? "COALESCE(importtype::text, '')" : "''",
              ", '' FROM erp_transport_package WHERE timedate > ",
              zoned ? std::string("now()") : LocalNow(tz),
              " - interval '2 days' OR statusid = 2 ORDER BY timedate DESC LIMIT 1000");
  return q;
}

DefaultQuery Transport(const SchemaColumns* schema, std::optional<int> shop,
                       const std::string& tz) {
  DefaultQuery q;
  Columns c(schema, &q);
  const std::string a = "cash_activity", f = "un_cg_product_file_for_cashes";
  c.Need(a, "cashnumber");
  c.Need(a, "lastproductsloaddate");
  c.Need(a, "notloadedproductscount");
  if (shop) c.Need(a, "shopnumber");
  if (!q.missing.empty()) return q;
  // The fourth column, when the oldest product file the till has not taken
  // was produced, is what lag is measured from: a till that simply had
  // nothing to load for hours is not late the moment a new file appears.
  const std::string lost = "lag is measured from the last load, not from the oldest waiting file";
  bool pending = c.Want(a, "lastprocessedid", lost);
  pending = c.Want(f, "id", lost) && pending;
  pending = c.Want(f, "import_date", lost) && pending;
  pending = c.Want(f, "cash_number", lost) && pending;
  bool by_shop = pending && c.Has(a, "shopnumber") && c.Has(f, "shop_number");
  std::string oldest = "NULL::bigint";
  if (pending) {
    oldest =
        Cat("(SELECT ", UnixMs("MIN(f.import_date)", tz, c.WithZone(f, "import_date")),
            " FROM un_cg_product_file_for_cashes f WHERE f.cash_number = a.cashnumber",
            by_shop ? " AND f.shop_number = a.shopnumber" : "", " AND f.id > a.lastprocessedid)");
  }
  q.sql = Cat("SELECT a.cashnumber, ",
              UnixMs("a.lastproductsloaddate", tz, c.WithZone(a, "lastproductsloaddate")),
              ", a.notloadedproductscount, ", oldest, " FROM cash_activity a");
  if (shop) Append(&q.sql, " WHERE a.shopnumber = ", *shop);
  return q;
}

bool IsUnavailableState(const std::string& state) {
  // Connection trouble, the server shutting down or out of resources, a
  // statement timeout, lock or serialization trouble, an internal error:
  // the database, not the query.
  if (state.size() != 5) return true;
  std::string cls = state.substr(0, 2);
  return cls == "08" || cls == "57" || cls == "53" || cls == "58" || cls == "XX" || cls == "40" ||
         cls == "55";
}

}  // namespace

const char* SetSourceKey(SetSource source) {
  switch (source) {
    case SetSource::kRoster:
      return "set_db.roster_query";
    case SetSource::kActivity:
      return "set_db.activity_query";
    case SetSource::kPackages:
      return "set_db.packages_query";
    case SetSource::kTransport:
      return "set_db.transport_query";
  }
  return "set_db";
}

const char* SetSourceColumns(SetSource source) {
  switch (source) {
    case SetSource::kRoster:
      return "till number, status, address[, shop number]";
    case SetSource::kActivity:
      return "till number, last activity as Unix ms";
    case SetSource::kPackages:
      return "ti, arrival as Unix ms, status id, status name, import type, message";
    case SetSource::kTransport:
      return "till number, last products load as Unix ms, not loaded count, oldest waiting file as "
             "Unix ms";
  }
  return "";
}

std::vector<std::string> TablesOf(SetSource source) {
  switch (source) {
    case SetSource::kRoster:
      return {"cash_cash"};
    case SetSource::kActivity:
      return {"od_cash_status"};
    case SetSource::kPackages:
      return {"erp_transport_package"};
    case SetSource::kTransport:
      return {"cash_activity", "un_cg_product_file_for_cashes"};
  }
  return {};
}

DefaultQuery BuildDefaultQuery(SetSource source, const SchemaColumns* schema,
                               std::optional<int> shop, const std::string& time_zone) {
  switch (source) {
    case SetSource::kRoster:
      return Roster(schema, shop);
    case SetSource::kActivity:
      return Activity(schema, shop, time_zone);
    case SetSource::kPackages:
      return Packages(schema, time_zone);
    case SetSource::kTransport:
      return Transport(schema, shop, time_zone);
  }
  return {};
}

std::string DefaultRosterQuery(std::optional<int> shop) { return Roster(nullptr, shop).sql; }

std::string DefaultActivityQuery(std::optional<int> shop, const std::string& time_zone) {
  return Activity(nullptr, shop, time_zone).sql;
}

std::string DefaultPackagesQuery(const std::string& time_zone) {
  return Packages(nullptr, time_zone).sql;
}

std::string DefaultTransportQuery(std::optional<int> shop, const std::string& time_zone) {
  return Transport(nullptr, shop, time_zone).sql;
}

std::string SqlStateOf(std::string_view message) {
  auto at = message.rfind("(SQLSTATE ");
  if (at == std::string_view::npos || at + 15 > message.size()) return "";
  return std::string(message.substr(at + 10, 5));
}

SetDatabase::SetDatabase(SetDbConfig config) : config_(std::move(config)) {
  for (SetSource s :
       {SetSource::kRoster, SetSource::kActivity, SetSource::kPackages, SetSource::kTransport}) {
    Resolved r;
    switch (s) {
      case SetSource::kRoster:
        r.sql = config_.roster_query;
        break;
      case SetSource::kActivity:
        r.sql = config_.activity_query;
        break;
      case SetSource::kPackages:
        r.sql = config_.packages_query;
        break;
      case SetSource::kTransport:
        r.sql = config_.transport_query;
        break;
    }
    // Until the schema has been seen: the full default.
    if (r.sql.empty())
      r.sql = BuildDefaultQuery(s, nullptr, config_.shop_number, config_.time_zone).sql;
    queries_[s] = std::move(r);
  }
}

SetDatabase::~SetDatabase() = default;

bool SetDatabase::IsDefault(SetSource source) const {
  switch (source) {
    case SetSource::kRoster:
      return config_.roster_query.empty();
    case SetSource::kActivity:
      return config_.activity_query.empty();
    case SetSource::kPackages:
      return config_.packages_query.empty();
    case SetSource::kTransport:
      return config_.transport_query.empty();
  }
  return false;
}

const std::string& SetDatabase::DatabaseOf(SetSource source) const {
  return source == SetSource::kActivity ? config_.database_operday : config_.database_set;
}

SetDatabase::Slot* SetDatabase::SlotOf(SetSource source) {
  return source == SetSource::kActivity ? &operday_conn_ : &set_conn_;
}

std::string SetDatabase::session_time_zone() const {
  for (const Slot* s : {&operday_conn_, &set_conn_}) {
    if (*s) {
      auto it = (*s)->server_parameters().find("TimeZone");
      if (it != (*s)->server_parameters().end()) return it->second;
    }
  }
  return "";
}

std::string SetDatabase::reading_zone() const {
  if (!config_.time_zone.empty()) return config_.time_zone;
  std::string session = session_time_zone();
  return Cat("the session's TimeZone (", session.empty() ? "unknown" : session, ")");
}

void SetDatabase::Inspect(const std::string& database, PgConnection* conn) {
  std::vector<SetSource> sources;
  std::string tables;
  for (SetSource s :
       {SetSource::kRoster, SetSource::kActivity, SetSource::kPackages, SetSource::kTransport}) {
    if (DatabaseOf(s) != database || !IsDefault(s)) continue;
    // The two names may be the same database: then every source is here.
    sources.push_back(s);
    for (const auto& t : TablesOf(s)) Append(&tables, tables.empty() ? "" : ", ", Quoted(t));
  }
  inspect_again_[database] = false;
  if (sources.empty()) return;
  auto deadline =
      PgConnection::Clock::now() + std::chrono::milliseconds(config_.query_timeout_ms + 5000);
  auto res =
      conn->SimpleQuery(Cat("SELECT table_name::text, column_name::text, data_type::text FROM "
                            "information_schema.columns "
                            "WHERE table_schema = ANY (current_schemas(false)) AND table_name IN (",
                            tables, ")"),
                        deadline);
  if (!res.ok() || res->columns < 3) {
    // Without the schema the full defaults are tried; their errors say more.
    log::Warn("set_db", Cat("cannot read the schema of database '", database,
                            "' (information_schema.columns): ", FirstLine(res.status().message()),
                            "; using the default queries as they are"));
    return;
  }
  SchemaColumns schema;
  for (const auto& row : res->rows) {
    if (!row[0] || !row[1]) continue;
    schema[*row[0]][*row[1]] = row[2].value_or("");
  }
  std::string notes;
  for (SetSource s : sources) {
    DefaultQuery q = BuildDefaultQuery(s, &schema, config_.shop_number, config_.time_zone);
    Resolved& r = queries_[s];
    r.sql = q.sql;
    r.missing = q.missing;
    if (!q.missing.empty()) {
      Append(&notes, "; ", SetSourceKey(s), ": cannot be built, missing ", Join(q.missing));
    }
    for (const auto& d : q.dropped) Append(&notes, "; ", SetSourceKey(s), ": ", d);
  }
  if (notes != last_notes_[database]) {
    if (!notes.empty()) {
      log::Warn("set_db", Cat("database '", database,
                              "' differs from the schema the default queries expect", notes));
    } else if (!last_notes_[database].empty()) {
      log::Info("set_db",
                Cat("database '", database, "' now has every column the default queries read"));
    }
  }
  last_notes_[database] = notes;
}

absl::StatusOr<PgConnection*> SetDatabase::Connection(const std::string& database, Slot* slot) {
  if (*slot && (*slot)->ok()) {
    if (inspect_again_[database]) Inspect(database, slot->get());
    return slot->get();
  }
  slot->reset();
  PgConnectParams p;
  p.host = config_.host;
  p.port = config_.port;
  p.user = config_.user;
  p.password = config_.password;
  p.database = database;
  p.application_name = "setdiag-agent";
  p.options =
      Cat("-c default_transaction_read_only=on -c statement_timeout=", config_.query_timeout_ms);
  p.connect_timeout_ms = std::max<int64_t>(1000, config_.connect_timeout_ms);
  // A server that stops answering mid-query must not block the watch: the
  // kernel gives up on the socket (keepalive is always on in PgConnection).
  p.tcp_user_timeout_ms = config_.query_timeout_ms + 5000;
  p.sslmode = PgSslMode::kPrefer;
  auto conn = PgConnection::Connect(p);
  if (!conn.ok()) {
    return absl::UnavailableError(Cat("SET database '", database, "' at ", config_.host, ":",
                                      config_.port, ": ", FirstLine(conn.status().message())));
  }
  *slot = std::move(*conn);
  // A new connection may be a new server, or SET was upgraded meanwhile.
  Inspect(database, slot->get());
  return slot->get();
}

absl::StatusOr<std::vector<std::vector<std::string>>> SetDatabase::Query(
    const std::string& database, Slot* slot, const std::string& sql, int columns, const char* key,
    int* got_columns) {
  ASSIGN_OR_RETURN(auto conn, Connection(database, slot));
  auto deadline =
      PgConnection::Clock::now() + std::chrono::milliseconds(config_.query_timeout_ms + 5000);
  auto res = (conn)->SimpleQuery(sql, deadline);
  const bool sound = (conn)->ok();
  if (!sound) slot->reset();  // reconnect on the next call
  if (!res.ok()) {
    std::string msg = FirstLine(res.status().message());
    std::string state = SqlStateOf(msg);
    if (!sound || IsUnavailableState(state)) {
      return absl::UnavailableError(Cat("SET database '", database, "': query failed: ", msg));
    }
    if (state == "42703" || state == "42P01") inspect_again_[database] = true;
    return absl::FailedPreconditionError(
        Cat("SET database '", database, "': ", key, " failed: ", msg,
            state == "42703" || state == "42P01"
                ? "; a column or table it names does not exist in this SET version"
                : ""));
  }
  if (res->columns < columns) {
    return absl::FailedPreconditionError(Cat("SET database '", database, "': ", key,
                                             " must return ", columns, " columns, it returns ",
                                             res->columns));
  }
  if (got_columns) *got_columns = res->columns;
  const size_t take =
      got_columns ? static_cast<size_t>(res->columns) : static_cast<size_t>(columns);
  std::vector<std::vector<std::string>> rows;
  rows.reserve(res->rows.size());
  for (auto& r : res->rows) {
    std::vector<std::string> row;
    row.reserve(take);
    for (size_t c = 0; c < take; ++c) row.push_back(r[c] ? std::move(*r[c]) : std::string());
    rows.push_back(std::move(row));
  }
  return rows;
}

absl::StatusOr<std::vector<std::vector<std::string>>> SetDatabase::Run(SetSource source,
                                                                       int columns) {
  const std::string& database = DatabaseOf(source);
  Slot* slot = SlotOf(source);
  ASSIGN_OR_RETURN(auto conn, Connection(database, slot));
  // A table or column SET creates later (a store being set up, an upgrade
  // under way) is noticed without a reconnect.
  if (queries_[source].sql.empty()) Inspect(database, conn);
  const Resolved& q = queries_[source];
  if (q.sql.empty()) {
    return absl::FailedPreconditionError(Cat(
        "SET database '", database, "': the default ", SetSourceKey(source),
        " cannot work here: missing ", Join(q.missing), "; write a query for this SET version in ",
        SetSourceKey(source), " (columns: ", SetSourceColumns(source), ")"));
  }
  int got = 0;
  return Query(database, slot, q.sql, columns, SetSourceKey(source),
               source == SetSource::kRoster ? &got : nullptr);
}

absl::StatusOr<std::vector<RosterRow>> SetDatabase::ReadRoster() {
  ASSIGN_OR_RETURN(auto rows, Run(SetSource::kRoster, 3));
  std::vector<RosterRow> out;
  for (auto& r : rows) {
    int number = 0;
    auto [p, ec] = std::from_chars(r[0].data(), r[0].data() + r[0].size(), number);
    if (ec != std::errc()) continue;  // not a till number: skip, never guess
    RosterRow row{number, r[1], r[2], std::nullopt};
    int shop = 0;
    if (r.size() > 3 && !r[3].empty() &&
        std::from_chars(r[3].data(), r[3].data() + r[3].size(), shop).ec == std::errc()) {
      row.shop = shop;
    }
    out.push_back(std::move(row));
  }
  return out;
}

absl::StatusOr<std::vector<std::vector<std::string>>> SetDatabase::ReadPackages() {
  return Run(SetSource::kPackages, 6);
}

absl::StatusOr<std::vector<std::vector<std::string>>> SetDatabase::ReadTransport() {
  return Run(SetSource::kTransport, 4);
}

absl::StatusOr<std::map<int, int64_t>> SetDatabase::ReadActivity() {
  ASSIGN_OR_RETURN(auto rows, Run(SetSource::kActivity, 2));
  std::map<int, int64_t> out;
  for (auto& r : rows) {
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

absl::StatusOr<int64_t> SetDatabase::ReadServerClock() {
  auto rows =
      Query(config_.database_operday, &operday_conn_,
            "SELECT (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::bigint", 1, "the clock check");
  if (!rows.ok()) return rows.status();
  int64_t ms = 0;
  if (rows->empty() ||
      std::from_chars((*rows)[0][0].data(), (*rows)[0][0].data() + (*rows)[0][0].size(), ms).ec !=
          std::errc()) {
    return absl::UnavailableError("SET database: the clock check returned no time");
  }
  return ms;
}

}  // namespace setdiag::agent
