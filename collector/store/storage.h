#pragma once
// The collector's database: schema and the statements the rest of the
// collector runs. Functions take the sql::Db of the caller's thread (the
// CommitQueue's for writes, a reader's own connection for queries).
// Secrets are stored only as SHA-256 hashes; see docs/security.md.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/sqlite.h"

namespace setdiag::collector {

absl::Status InitSchema(sql::Db& db);

// ---- store tokens (agents) ----
struct StoreGrant {
  std::string token_id;
  std::string store_id;
  std::string partner;
};
struct IssuedToken {
  std::string id;
  std::string secret;  // shown once, never stored
};
absl::StatusOr<IssuedToken> CreateStoreToken(sql::Db& db, const std::string& store_id,
                                             const std::string& partner, int64_t now_ms);
// Revokes one token by id, or all tokens of a store. Returns how many.
absl::StatusOr<int64_t> RevokeStoreTokens(sql::Db& db, const std::string& token_id,
                                          const std::string& store_id, int64_t now_ms);
absl::StatusOr<std::optional<StoreGrant>> LookupStoreToken(sql::Db& db, std::string_view secret);
struct TokenRow {
  std::string id, store_id, partner;
  int64_t created_at_ms = 0;
  std::optional<int64_t> revoked_at_ms;
};
absl::StatusOr<std::vector<TokenRow>> ListStoreTokens(sql::Db& db);

// ---- people (admin API) ----
enum class Role { kSupport, kPartner };
struct User {
  std::string id, name;
  Role role = Role::kPartner;
  std::string partner;  // for kPartner
};
// `name` follows the store id rule (IsValidIdentifier: 1..128 characters of
// [A-Za-z0-9._-]); a partner user names its partner (same rule), a support
// user none: InvalidArgument otherwise. AlreadyExists if the name is taken
// (a revoked user keeps its name until DeleteUser). Whether the partner is
// known is the caller's business (PartnerIsKnown in tickets.h).
absl::StatusOr<IssuedToken> CreateUser(sql::Db& db, const std::string& name, Role role,
                                       const std::string& partner, int64_t now_ms);
struct UserRow {
  std::string id, name;
  Role role = Role::kPartner;
  std::string partner;  // empty for kSupport
  int64_t created_at_ms = 0;
  std::optional<int64_t> revoked_at_ms;
};
// Every user, by name; never the token hash.
absl::StatusOr<std::vector<UserRow>> ListUsers(sql::Db& db);
// Revokes the API token of the user with this id or this name (the other
// argument empty): LookupUser no longer finds it, so the admin API answers
// its next request with 401. Returns how many were revoked (0: no such
// active user).
absl::StatusOr<int64_t> RevokeUser(sql::Db& db, const std::string& user_id, const std::string& name,
                                   int64_t now_ms);
// Deletes the user with this id or this name, revoked or not; its name is
// free again. Timeline entries and bundles keep the name they recorded.
// Returns how many were deleted (0: no such user).
absl::StatusOr<int64_t> DeleteUser(sql::Db& db, const std::string& user_id,
                                   const std::string& name);
absl::StatusOr<std::optional<User>> LookupUser(sql::Db& db, std::string_view secret);
// The active (not revoked) user with this id.
absl::StatusOr<std::optional<User>> LookupUserById(sql::Db& db, std::string_view user_id);
// Whether `user` may see `store_id` (support sees all; a partner its own).
absl::StatusOr<bool> UserMaySeeStore(sql::Db& db, const User& user, const std::string& store_id);

// ---- agents and events ----
struct AgentHello {
  std::string agent_id, store_id, version, outbox_id;
};
// Registers the connection; PermissionDenied if the agent id belongs to
// another store. Returns the highest committed sequence of the agent.
// `connection` identifies this stream so that a stale stream ending late
// does not mark a reconnected agent offline.
absl::StatusOr<uint64_t> RecordHello(sql::Db& db, const AgentHello& hello, int64_t connection,
                                     int64_t now_ms);
absl::Status RecordDisconnect(sql::Db& db, const std::string& agent_id, int64_t connection,
                              int64_t now_ms);
// At start-up no agent is connected, whatever a crash left behind.
absl::Status ResetConnections(sql::Db& db);
absl::Status RecordStatus(sql::Db& db, const std::string& agent_id, const std::string& status_json,
                          int64_t now_ms);

struct IncomingEvent {
  uint64_t sequence = 0;
  std::string kind;
  int severity = 0;
  int64_t detected_at_ms = 0;
  std::string payload;
};
struct EventRow;
// Idempotent by (agent, sequence). Returns how many were new; `inserted`,
// if given, receives the new ones as stored (with their ids).
absl::StatusOr<int64_t> InsertEvents(sql::Db& db, const std::string& agent_id,
                                     const std::string& store_id,
                                     const std::vector<IncomingEvent>& events, int64_t now_ms,
                                     std::vector<EventRow>* inserted = nullptr);

struct EventRow {
  int64_t id = 0;
  std::string store_id, agent_id, kind;
  uint64_t sequence = 0;
  int severity = 0;
  int64_t detected_at_ms = 0, received_at_ms = 0;
  std::string payload;
};
struct EventQuery {
  std::string store_id;  // empty: all stores the user may see
  std::string kind;      // empty: all kinds
  int64_t after_id = 0;
  int64_t limit = 100;
};
absl::StatusOr<std::vector<EventRow>> ListEvents(sql::Db& db, const User& user,
                                                 const EventQuery& q);

struct AgentRow {
  std::string agent_id, store_id, partner, version, status_json;
  uint64_t last_committed_seq = 0;
  int64_t first_seen_ms = 0, last_seen_ms = 0;
  bool connected = false;
};
absl::StatusOr<std::vector<AgentRow>> ListAgents(sql::Db& db, const User& user,
                                                 const std::string& store_id);

const char* SeverityText(int severity);

// One line of a ticket's timeline (table ticket_timeline, created with the
// ticket schema): the ticket engine writes state changes and notes, the
// bundle store the pulls of diagnostic bundles. `type` is the line's kind
// ("opened", "note", "bundle", ...); event_id links the event behind it.
absl::Status AddTimeline(sql::Db& db, int64_t ticket_id, int64_t at_ms, std::string_view actor,
                         std::string_view type, std::string_view text, int64_t event_id = 0);

}  // namespace setdiag::collector
