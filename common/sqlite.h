#pragma once
// A thin RAII wrapper over SQLite. SQLite errors become absl::Status here and
// nowhere else: BUSY/LOCKED -> Unavailable (retry), CORRUPT/NOTADB -> DataLoss
// (move the file aside), FULL/IOERR -> ResourceExhausted/Unavailable.
// A Db and its statements belong to one thread at a time.

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace setdiag::sql {

absl::Status FromSqlite(int rc, sqlite3* db, std::string_view what);

class Stmt {
 public:
  Stmt() = default;
  Stmt(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  Stmt(Stmt&& o) noexcept : db_(o.db_), stmt_(o.stmt_) { o.stmt_ = nullptr; }
  Stmt& operator=(Stmt&& o) noexcept;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt();

  // Bind by 1-based index. Returns *this for chaining.
  Stmt& Bind(int idx, int64_t v);
  Stmt& Bind(int idx, std::string_view v);
  Stmt& BindBlob(int idx, std::string_view v);
  Stmt& BindNull(int idx);
  // One step: true when a row is available, false when done.
  absl::StatusOr<bool> Step();
  // Step until done, for statements that return no rows.
  absl::Status Run();
  void Reset();

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::string Text(int col) const;
  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
};

class Db {
 public:
  Db() = default;
  Db(Db&& o) noexcept : db_(o.db_) { o.db_ = nullptr; }
  Db& operator=(Db&& o) noexcept;
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  ~Db();

  // Opens (creating if needed) a database in WAL mode with a busy timeout.
  static absl::StatusOr<Db> Open(const std::string& path, int busy_timeout_ms = 5000);

  absl::Status Exec(std::string_view sql);
  absl::StatusOr<Stmt> Prepare(std::string_view sql);
  // Runs a single-value query such as "PRAGMA quick_check".
  absl::StatusOr<std::string> QueryText(std::string_view sql);
  absl::StatusOr<int64_t> QueryInt(std::string_view sql);
  int64_t Changes() const { return sqlite3_changes64(db_); }
  sqlite3* raw() const { return db_; }

 private:
  explicit Db(sqlite3* db) : db_(db) {}
  sqlite3* db_ = nullptr;
};

// Commits on Commit(); rolls back if destroyed without it.
class Transaction {
 public:
  static absl::StatusOr<Transaction> Begin(Db& db, bool immediate = true);
  Transaction(Transaction&& o) noexcept : db_(o.db_) { o.db_ = nullptr; }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  Transaction& operator=(Transaction&&) = delete;
  ~Transaction();
  absl::Status Commit();

 private:
  explicit Transaction(Db* db) : db_(db) {}
  Db* db_;
};

}  // namespace setdiag::sql
