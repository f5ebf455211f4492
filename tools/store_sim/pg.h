#pragma once
// A thin RAII wrapper over libpq. libpq errors become absl::Status here:
// a broken connection is Unavailable (reconnect), anything else Internal.
// A PgConn belongs to one thread at a time.

#include <libpq-fe.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace setdiag::store_sim {

struct PgResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, PgResultDeleter>;

// Text parameters for $1, $2...; nullopt is SQL NULL.
using PgParams = std::vector<std::optional<std::string>>;

class PgConn {
 public:
  PgConn() = default;
  PgConn(PgConn&& o) noexcept : conn_(o.conn_) { o.conn_ = nullptr; }
  PgConn& operator=(PgConn&& o) noexcept;
  PgConn(const PgConn&) = delete;
  PgConn& operator=(const PgConn&) = delete;
  ~PgConn();

  // Connects to database `dbname` with the other parameters from `conninfo`
  // (key=value or a postgresql:// URI; a dbname in it is overridden).
  // Applies connect_timeout=5 unless conninfo sets one. A `time_zone` (IANA
  // name) becomes the session's TimeZone (options=-c TimeZone=...), as the
  // zone SET's JVM writes its local timestamps in; empty: the server's.
  static absl::StatusOr<PgConn> Connect(const std::string& conninfo, const std::string& dbname,
                                        const std::string& time_zone = "");

  // Runs one statement (no rows expected back, or ignored).
  absl::Status Exec(const std::string& sql, const PgParams& params = {});
  // Runs a query and returns its result (PGRES_TUPLES_OK or COMMAND_OK).
  absl::StatusOr<PgResult> Query(const std::string& sql, const PgParams& params = {});

  bool ok() const { return conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK; }
  PGconn* raw() const { return conn_; }

 private:
  explicit PgConn(PGconn* c) : conn_(c) {}
  PGconn* conn_ = nullptr;
};

// The SQLSTATE of a failed result ("42P04"), or "".
std::string SqlState(const absl::Status& status);

// A PostgreSQL array literal of text values: {"a","b c"}.
std::string PgArray(const std::vector<std::string>& values);
std::string PgArray(const std::vector<int>& values);

}  // namespace setdiag::store_sim
