#include "collector/store/storage.h"

#include <sqlite3.h>

#include "collector/store/outbox_resets.h"
#include "common/files.h"
#include "common/status.h"
#include "common/strings.h"

namespace setdiag::collector {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS stores(
  store_id TEXT PRIMARY KEY,
  partner TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS store_tokens(
  token_id TEXT PRIMARY KEY,
  token_hash TEXT NOT NULL UNIQUE,
  store_id TEXT NOT NULL REFERENCES stores(store_id),
  created_at_ms INTEGER NOT NULL,
  revoked_at_ms INTEGER);
CREATE TABLE IF NOT EXISTS users(
  user_id TEXT PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  role TEXT NOT NULL CHECK (role IN ('support', 'partner')),
  partner TEXT,
  token_hash TEXT NOT NULL UNIQUE,
  created_at_ms INTEGER NOT NULL,
  revoked_at_ms INTEGER);
CREATE TABLE IF NOT EXISTS agents(
  agent_id TEXT PRIMARY KEY,
  store_id TEXT NOT NULL,
  agent_version TEXT NOT NULL DEFAULT '',
  outbox_id TEXT NOT NULL DEFAULT '',
  last_committed_seq INTEGER NOT NULL DEFAULT 0,
  first_seen_ms INTEGER NOT NULL,
  last_seen_ms INTEGER NOT NULL,
  connected INTEGER NOT NULL DEFAULT 0,
  connection INTEGER NOT NULL DEFAULT 0,
  status_json TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS events(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  agent_id TEXT NOT NULL,
  store_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  kind TEXT NOT NULL,
  severity INTEGER NOT NULL,
  detected_at_ms INTEGER NOT NULL,
  received_at_ms INTEGER NOT NULL,
  payload TEXT NOT NULL,
  UNIQUE(agent_id, seq));
CREATE INDEX IF NOT EXISTS events_by_store ON events(store_id, id);
)sql";

std::string HashSecret(std::string_view secret) { return Sha256Hex(secret); }

User UserFrom(sql::Stmt& s) {
  User u;
  u.id = s.Text(0);
  u.name = s.Text(1);
  u.role = s.Text(2) == "support" ? Role::kSupport : Role::kPartner;
  u.partner = s.Text(3);
  return u;
}

}  // namespace

const char* SeverityText(int severity) {
  switch (severity) {
    case 1:
      return "info";
    case 2:
      return "normal";
    case 3:
      return "important";
    case 4:
      return "critical";
    default:
      return "unknown";
  }
}

absl::Status InitSchema(sql::Db& db) { return db.Exec(kSchema); }

absl::StatusOr<IssuedToken> CreateStoreToken(sql::Db& db, const std::string& store_id,
                                             const std::string& partner, int64_t now_ms) {
  ASSIGN_OR_RETURN(auto txn, sql::Transaction::Begin(db));
  ASSIGN_OR_RETURN(auto existing, db.Prepare("SELECT partner FROM stores WHERE store_id=?"));
  existing.Bind(1, store_id);
  ASSIGN_OR_RETURN(auto row, existing.Step());
  if (row && existing.Text(0) != partner) {
    return absl::FailedPreconditionError(
        Cat("store ", store_id, " belongs to partner ", existing.Text(0), ", not ", partner));
  }
  existing.Reset();
  auto ins =
      db.Prepare("INSERT OR IGNORE INTO stores(store_id, partner, created_at_ms) VALUES (?,?,?)");
  if (!ins.ok()) return ins.status();
  RETURN_IF_ERROR(ins->Bind(1, store_id).Bind(2, partner).Bind(3, now_ms).Run());
  IssuedToken t{RandomHex(4), Cat("sdst_", RandomHex(32))};
  auto tok = db.Prepare(
      "INSERT INTO store_tokens(token_id, token_hash, store_id, created_at_ms) VALUES (?,?,?,?)");
  if (!tok.ok()) return tok.status();
  RETURN_IF_ERROR(
      tok->Bind(1, t.id).Bind(2, HashSecret(t.secret)).Bind(3, store_id).Bind(4, now_ms).Run());
  RETURN_IF_ERROR(txn.Commit());
  return t;
}

absl::StatusOr<int64_t> RevokeStoreTokens(sql::Db& db, const std::string& token_id,
                                          const std::string& store_id, int64_t now_ms) {
  auto stmt = db.Prepare(
      "UPDATE store_tokens SET revoked_at_ms=? WHERE revoked_at_ms IS NULL AND "
      "(token_id=? OR store_id=?)");
  if (!stmt.ok()) return stmt.status();
  // An empty selector matches nothing: '' is never a token id or store id.
  RETURN_IF_ERROR(stmt->Bind(1, now_ms).Bind(2, token_id).Bind(3, store_id).Run());
  return db.Changes();
}

absl::StatusOr<std::optional<StoreGrant>> LookupStoreToken(sql::Db& db, std::string_view secret) {
  auto stmt = db.Prepare(
      "SELECT t.token_id, t.store_id, s.partner FROM store_tokens t JOIN stores s USING (store_id) "
      "WHERE t.token_hash=? AND t.revoked_at_ms IS NULL");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, HashSecret(secret));
  ASSIGN_OR_RETURN(auto row, stmt->Step());
  if (!row) return std::optional<StoreGrant>();
  return std::optional<StoreGrant>(StoreGrant{stmt->Text(0), stmt->Text(1), stmt->Text(2)});
}

absl::StatusOr<std::vector<TokenRow>> ListStoreTokens(sql::Db& db) {
  auto stmt = db.Prepare(
      "SELECT t.token_id, t.store_id, s.partner, t.created_at_ms, t.revoked_at_ms "
      "FROM store_tokens t JOIN stores s USING (store_id) ORDER BY t.store_id, t.created_at_ms");
  if (!stmt.ok()) return stmt.status();
  std::vector<TokenRow> out;
  while (true) {
    ASSIGN_OR_RETURN(auto row, stmt->Step());
    if (!row) break;
    TokenRow r{stmt->Text(0), stmt->Text(1), stmt->Text(2), stmt->Int(3), std::nullopt};
    if (!stmt->IsNull(4)) r.revoked_at_ms = stmt->Int(4);
    out.push_back(std::move(r));
  }
  return out;
}

absl::StatusOr<IssuedToken> CreateUser(sql::Db& db, const std::string& name, Role role,
                                       const std::string& partner, int64_t now_ms) {
  if (!IsValidIdentifier(name)) {
    return absl::InvalidArgumentError("a user name must be 1..128 characters of [A-Za-z0-9._-]");
  }
  if (role == Role::kSupport && !partner.empty()) {
    return absl::InvalidArgumentError("a support user sees every store and has no partner");
  }
  if (role == Role::kPartner && !IsValidIdentifier(partner)) {
    return absl::InvalidArgumentError(
        "a partner user needs its partner: 1..128 characters of [A-Za-z0-9._-]");
  }
  IssuedToken t{RandomHex(4), Cat("sdu_", RandomHex(32))};
  auto stmt = db.Prepare(
      "INSERT INTO users(user_id, name, role, partner, token_hash, created_at_ms) VALUES "
      "(?,?,?,?,?,?)");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, t.id).Bind(2, name).Bind(3, role == Role::kSupport ? "support" : "partner");
  if (role == Role::kPartner)
    stmt->Bind(4, partner);
  else
    stmt->BindNull(4);
  stmt->Bind(5, HashSecret(t.secret)).Bind(6, now_ms);
  if (auto st = stmt->Run(); !st.ok()) {
    if (st.code() == absl::StatusCode::kAlreadyExists) {
      return absl::AlreadyExistsError(
          Cat("a user named ", name,
              " already exists (a revoked user keeps its name until 'user delete')"));
    }
    return st;
  }
  return t;
}

absl::StatusOr<std::vector<UserRow>> ListUsers(sql::Db& db) {
  auto stmt = db.Prepare(
      "SELECT user_id, name, role, COALESCE(partner, ''), created_at_ms, revoked_at_ms FROM users "
      "ORDER BY name");
  if (!stmt.ok()) return stmt.status();
  std::vector<UserRow> out;
  while (true) {
    ASSIGN_OR_RETURN(auto row, stmt->Step());
    if (!row) break;
    UserRow r;
    r.id = stmt->Text(0);
    r.name = stmt->Text(1);
    r.role = stmt->Text(2) == "support" ? Role::kSupport : Role::kPartner;
    r.partner = stmt->Text(3);
    r.created_at_ms = stmt->Int(4);
    if (!stmt->IsNull(5)) r.revoked_at_ms = stmt->Int(5);
    out.push_back(std::move(r));
  }
  return out;
}

absl::StatusOr<int64_t> RevokeUser(sql::Db& db, const std::string& user_id, const std::string& name,
                                   int64_t now_ms) {
  // An empty selector matches nothing, even a user named '' by a version
  // that did not check names (such a user is revoked or deleted by its id).
  auto stmt = db.Prepare(
      "UPDATE users SET revoked_at_ms=?1 WHERE revoked_at_ms IS NULL AND "
      "((?2 <> '' AND user_id=?2) OR (?3 <> '' AND name=?3))");
  if (!stmt.ok()) return stmt.status();
  RETURN_IF_ERROR(stmt->Bind(1, now_ms).Bind(2, user_id).Bind(3, name).Run());
  return db.Changes();
}

absl::StatusOr<int64_t> DeleteUser(sql::Db& db, const std::string& user_id,
                                   const std::string& name) {
  auto stmt =
      db.Prepare("DELETE FROM users WHERE (?1 <> '' AND user_id=?1) OR (?2 <> '' AND name=?2)");
  if (!stmt.ok()) return stmt.status();
  RETURN_IF_ERROR(stmt->Bind(1, user_id).Bind(2, name).Run());
  return db.Changes();
}

absl::StatusOr<std::optional<User>> LookupUser(sql::Db& db, std::string_view secret) {
  auto stmt = db.Prepare(
      "SELECT user_id, name, role, COALESCE(partner, '') FROM users "
      "WHERE token_hash=? AND revoked_at_ms IS NULL");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, HashSecret(secret));
  ASSIGN_OR_RETURN(auto row, stmt->Step());
  if (!row) return std::optional<User>();
  return std::optional<User>(UserFrom(*stmt));
}

absl::StatusOr<std::optional<User>> LookupUserById(sql::Db& db, std::string_view user_id) {
  ASSIGN_OR_RETURN(auto stmt,
                   db.Prepare("SELECT user_id, name, role, COALESCE(partner, '') FROM users "
                              "WHERE user_id=? AND revoked_at_ms IS NULL"));
  stmt.Bind(1, user_id);
  ASSIGN_OR_RETURN(auto row, stmt.Step());
  if (!row) return std::optional<User>();
  return std::optional<User>(UserFrom(stmt));
}

absl::StatusOr<bool> UserMaySeeStore(sql::Db& db, const User& user, const std::string& store_id) {
  if (user.role == Role::kSupport) return true;
  ASSIGN_OR_RETURN(auto stmt, db.Prepare("SELECT 1 FROM stores WHERE store_id=? AND partner=?"));
  stmt.Bind(1, store_id).Bind(2, user.partner);
  return stmt.Step();
}

absl::StatusOr<uint64_t> RecordHello(sql::Db& db, const AgentHello& hello, int64_t connection,
                                     int64_t now_ms) {
  auto sel =
      db.Prepare("SELECT store_id, last_committed_seq, outbox_id FROM agents WHERE agent_id=?");
  if (!sel.ok()) return sel.status();
  sel->Bind(1, hello.agent_id);
  ASSIGN_OR_RETURN(auto row, sel->Step());
  uint64_t last = 0;
  if (row) {
    if (sel->Text(0) != hello.store_id) {
      return absl::PermissionDeniedError(
          Cat("agent ", hello.agent_id, " is registered for store ", sel->Text(0)));
    }
    last = static_cast<uint64_t>(sel->Int(1));
    // Another outbox (a fresh one after a corrupt file): remember what we
    // had of the old one, to name what it lost (collector/store/outbox_resets.h).
    if (std::string old_outbox = sel->Text(2);
        !old_outbox.empty() && old_outbox != hello.outbox_id) {
      RETURN_IF_ERROR(RememberReplacedOutbox(db, hello.agent_id, old_outbox, last, now_ms));
    }
  }
  sel->Reset();
  auto up = db.Prepare(
      "INSERT INTO agents(agent_id, store_id, agent_version, outbox_id, first_seen_ms, "
      "last_seen_ms, "
      "connected, connection) VALUES (?,?,?,?,?,?,1,?) ON CONFLICT(agent_id) DO UPDATE SET "
      "agent_version=excluded.agent_version, outbox_id=excluded.outbox_id, "
      "last_seen_ms=excluded.last_seen_ms, connected=1, connection=excluded.connection");
  if (!up.ok()) return up.status();
  up->Bind(1, hello.agent_id)
      .Bind(2, hello.store_id)
      .Bind(3, hello.version)
      .Bind(4, hello.outbox_id);
  up->Bind(5, now_ms).Bind(6, now_ms).Bind(7, connection);
  RETURN_IF_ERROR(up->Run());
  return last;
}

absl::Status RecordDisconnect(sql::Db& db, const std::string& agent_id, int64_t connection,
                              int64_t now_ms) {
  auto up =
      db.Prepare("UPDATE agents SET connected=0, last_seen_ms=? WHERE agent_id=? AND connection=?");
  if (!up.ok()) return up.status();
  return up->Bind(1, now_ms).Bind(2, agent_id).Bind(3, connection).Run();
}

absl::Status ResetConnections(sql::Db& db) { return db.Exec("UPDATE agents SET connected=0"); }

absl::Status RecordStatus(sql::Db& db, const std::string& agent_id, const std::string& status_json,
                          int64_t now_ms) {
  ASSIGN_OR_RETURN(auto up,
                   db.Prepare("UPDATE agents SET status_json=?, last_seen_ms=? WHERE agent_id=?"));
  return up.Bind(1, status_json).Bind(2, now_ms).Bind(3, agent_id).Run();
}

absl::StatusOr<int64_t> InsertEvents(sql::Db& db, const std::string& agent_id,
                                     const std::string& store_id,
                                     const std::vector<IncomingEvent>& events, int64_t now_ms,
                                     std::vector<EventRow>* inserted) {
  auto ins = db.Prepare(
      "INSERT OR IGNORE INTO events(agent_id, store_id, seq, kind, severity, detected_at_ms, "
      "received_at_ms, payload) VALUES (?,?,?,?,?,?,?,?)");
  if (!ins.ok()) return ins.status();
  int64_t added = 0;
  uint64_t max_seq = 0;
  for (const auto& e : events) {
    ins->Reset();
    ins->Bind(1, agent_id)
        .Bind(2, store_id)
        .Bind(3, static_cast<int64_t>(e.sequence))
        .Bind(4, e.kind);
    ins->Bind(5, int64_t{e.severity}).Bind(6, e.detected_at_ms).Bind(7, now_ms).Bind(8, e.payload);
    RETURN_IF_ERROR(ins->Run());
    if (db.Changes() > 0) {
      ++added;
      if (inserted) {
        inserted->push_back({sqlite3_last_insert_rowid(db.raw()), store_id, agent_id, e.kind,
                             e.sequence, e.severity, e.detected_at_ms, now_ms, e.payload});
      }
    }
    max_seq = std::max(max_seq, e.sequence);
  }
  auto up = db.Prepare(
      "UPDATE agents SET last_committed_seq=MAX(last_committed_seq, ?), last_seen_ms=? "
      "WHERE agent_id=?");
  if (!up.ok()) return up.status();
  RETURN_IF_ERROR(
      up->Bind(1, static_cast<int64_t>(max_seq)).Bind(2, now_ms).Bind(3, agent_id).Run());
  return added;
}

absl::StatusOr<std::vector<EventRow>> ListEvents(sql::Db& db, const User& user,
                                                 const EventQuery& q) {
  std::string sql =
      "SELECT e.id, e.store_id, e.agent_id, e.seq, e.kind, e.severity, e.detected_at_ms, "
      "e.received_at_ms, e.payload FROM events e JOIN stores s USING (store_id) WHERE e.id > ?1 "
      "AND (?2 = '' OR e.store_id = ?2) AND (?3 = '' OR e.kind = ?3) "
      "AND (?4 = 'support' OR s.partner = ?5) ORDER BY e.id LIMIT ?6";
  ASSIGN_OR_RETURN(auto stmt, db.Prepare(sql));
  stmt.Bind(1, q.after_id).Bind(2, q.store_id).Bind(3, q.kind);
  stmt.Bind(4, user.role == Role::kSupport ? "support" : "partner").Bind(5, user.partner);
  stmt.Bind(6, q.limit);
  std::vector<EventRow> out;
  while (true) {
    ASSIGN_OR_RETURN(auto row, stmt.Step());
    if (!row) break;
    EventRow r;
    r.id = stmt.Int(0);
    r.store_id = stmt.Text(1);
    r.agent_id = stmt.Text(2);
    r.sequence = static_cast<uint64_t>(stmt.Int(3));
    r.kind = stmt.Text(4);
    r.severity = static_cast<int>(stmt.Int(5));
    r.detected_at_ms = stmt.Int(6);
    r.received_at_ms = stmt.Int(7);
    r.payload = stmt.Text(8);
    out.push_back(std::move(r));
  }
  return out;
}

absl::StatusOr<std::vector<AgentRow>> ListAgents(sql::Db& db, const User& user,
                                                 const std::string& store_id) {
  auto stmt = db.Prepare(
      "SELECT a.agent_id, a.store_id, s.partner, a.agent_version, a.status_json, "
      "a.last_committed_seq, a.first_seen_ms, a.last_seen_ms, a.connected FROM agents a "
      "JOIN stores s USING (store_id) WHERE (?1 = '' OR a.store_id = ?1) "
      "AND (?2 = 'support' OR s.partner = ?3) ORDER BY a.store_id, a.agent_id");
  if (!stmt.ok()) return stmt.status();
  stmt->Bind(1, store_id)
      .Bind(2, user.role == Role::kSupport ? "support" : "partner")
      .Bind(3, user.partner);
  std::vector<AgentRow> out;
  while (true) {
    ASSIGN_OR_RETURN(auto row, stmt->Step());
    if (!row) break;
    AgentRow r;
    r.agent_id = stmt->Text(0);
    r.store_id = stmt->Text(1);
    r.partner = stmt->Text(2);
    r.version = stmt->Text(3);
    r.status_json = stmt->Text(4);
    r.last_committed_seq = static_cast<uint64_t>(stmt->Int(5));
    r.first_seen_ms = stmt->Int(6);
    r.last_seen_ms = stmt->Int(7);
    r.connected = stmt->Int(8) != 0;
    out.push_back(std::move(r));
  }
  return out;
}

absl::Status AddTimeline(sql::Db& db, int64_t ticket_id, int64_t at_ms, std::string_view actor,
                         std::string_view type, std::string_view text, int64_t event_id) {
  ASSIGN_OR_RETURN(auto s,
                   db.Prepare("INSERT INTO ticket_timeline(ticket_id, at_ms, actor, type, text, "
                              "event_id) VALUES (?,?,?,?,?,?)"));
  s.Bind(1, ticket_id).Bind(2, at_ms).Bind(3, actor).Bind(4, type).Bind(5, text).Bind(6, event_id);
  return s.Run();
}

}  // namespace setdiag::collector
