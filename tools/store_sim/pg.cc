#include "tools/store_sim/pg.h"

#include "common/strings.h"

namespace setdiag::store_sim {

namespace {

void IgnoreNotice(void*, const char*) {}

std::string Message(PGconn* c) {
  std::string m = c ? PQerrorMessage(c) : "out of memory";
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
  // Multi-line libpq messages read better on one log line.
  for (char& ch : m) {
    if (ch == '\n') ch = ' ';
  }
  return m;
}

// Statuses carry the SQLSTATE in front: "[42P04] database exists".
absl::Status ResultError(PGconn* c, const PGresult* r, const std::string& sql) {
  const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  std::string msg = r ? PQresultErrorMessage(r) : "";
  if (msg.empty()) msg = Message(c);
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  for (char& ch : msg) {
    if (ch == '\n') ch = ' ';
  }
  std::string head = sql.substr(0, sql.find_first_of("\n("));
  std::string text = Cat("[", state ? state : "", "] ", msg, " (in: ", head, ")");
  if (c == nullptr || PQstatus(c) != CONNECTION_OK) return absl::UnavailableError(text);
  return absl::InternalError(text);
}

}  // namespace

PgConn& PgConn::operator=(PgConn&& o) noexcept {
  if (this != &o) {
    if (conn_) PQfinish(conn_);
    conn_ = o.conn_;
    o.conn_ = nullptr;
  }
  return *this;
}

PgConn::~PgConn() {
  if (conn_) PQfinish(conn_);
}

absl::StatusOr<PgConn> PgConn::Connect(const std::string& conninfo, const std::string& dbname,
                                       const std::string& time_zone) {
  // Later keywords win; the first "dbname" is expanded as a connection string.
  const std::string options = time_zone.empty() ? std::string() : Cat("-c TimeZone=", time_zone);
  const char* keys[] = {"connect_timeout",
                        "application_name",
                        "client_encoding",
                        "dbname",
                        "dbname",
                        time_zone.empty() ? nullptr : "options",
                        nullptr};
  const char* values[] = {
      "5", "setdiag-store-sim", "UTF8", conninfo.c_str(), dbname.c_str(), options.c_str(), nullptr};
  PGconn* c = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  PgConn conn(c);
  if (c == nullptr || PQstatus(c) != CONNECTION_OK) {
    return absl::UnavailableError(Cat("cannot connect to database ", dbname, ": ", Message(c)));
  }
  PQsetNoticeProcessor(c, IgnoreNotice, nullptr);
  return conn;
}

absl::StatusOr<PgResult> PgConn::Query(const std::string& sql, const PgParams& params) {
  if (conn_ == nullptr) return absl::UnavailableError("not connected");
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  PgResult r(PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr,
                          values.data(), nullptr, nullptr, 0));
  auto st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) return ResultError(conn_, r.get(), sql);
  return r;
}

absl::Status PgConn::Exec(const std::string& sql, const PgParams& params) {
  auto r = Query(sql, params);
  return r.ok() ? absl::OkStatus() : r.status();
}

std::string SqlState(const absl::Status& status) {
  std::string_view m = SV(status.message());
  if (!m.starts_with("[")) return "";
  auto end = m.find(']');
  return end == std::string_view::npos ? "" : std::string(m.substr(1, end - 1));
}

std::string PgArray(const std::vector<std::string>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) out += ',';
    out += '"';
    for (char ch : values[i]) {
      if (ch == '"' || ch == '\\') out += '\\';
      out += ch;
    }
    out += '"';
  }
  out += '}';
  return out;
}

std::string PgArray(const std::vector<int>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) out += ',';
    Append(&out, values[i]);
  }
  out += '}';
  return out;
}

}  // namespace setdiag::store_sim
