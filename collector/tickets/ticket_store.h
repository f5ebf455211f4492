#pragma once
// The tickets' tables in collector.db, read and written for the engine
// (collector/tickets/tickets.cc): the row of a ticket, its timeline, its
// evidence, the parts of its condition and who raised them. Internal to the
// tickets library; the public reads are declared in tickets.h.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "collector/store/storage.h"
#include "collector/tickets/tickets.h"
#include "common/sqlite.h"

namespace setdiag::collector::tickets_internal {

using json = nlohmann::json;

constexpr char kColumns[] =
    "id, store_id, partner, tariff, condition, priority, state, condition_active, paged, late, "
    "title_en, title_ru, summary_en, summary_ru, detected_at_ms, registered_at_ms, updated_at_ms, "
    "cleared_at_ms, acknowledged_at_ms, acknowledged_by, resolved_at_ms, resolved_by, resolution, "
    "error_registered_at_ms, reopen_count, last_episode, "
    "reg_due, reg_warn, reg_met, reg_warned, reg_breached, "
    "resp_due, resp_warn, resp_met, resp_warned, resp_breached, "
    "wa_due, wa_warn, wa_met, wa_warned, wa_breached, next_due_ms";
constexpr int kColumnCount = 42;

struct Row {
  Ticket t;
  bool late = false;
  // The next instant the periodic work has something to do for this ticket
  // (an SLA warning or deadline, automatic resolution, a late page); the
  // tick only reads tickets that are due. Set by TicketEngine before saving.
  int64_t next_due_ms = INT64_MAX;
};

Row ReadRow(const sql::Stmt& s);
absl::StatusOr<int64_t> InsertRow(sql::Db& db, const Row& r);
absl::Status UpdateRow(sql::Db& db, const Row& r);
// The first ticket matching `where` (?1.. are `args`, then `int_arg` if set).
absl::StatusOr<std::optional<Row>> LoadWhere(sql::Db& db, const std::string& where,
                                             const std::vector<std::string>& args,
                                             int64_t int_arg = 0);
using collector::AddTimeline;  // collector/store/storage.h
absl::StatusOr<json> LoadEvidence(sql::Db& db, int64_t ticket_id);
absl::Status SaveEvidence(sql::Db& db, int64_t ticket_id, const json& evidence, int64_t now_ms);
bool VisibleTo(const User& user, const std::string& partner);

// Who raised a part, in which episode; and whether the collector cleared
// it since because that agent no longer held it (reconciled_at_ms).
struct PartSource {
  std::string agent, kind, episode;
  int64_t reconciled_at_ms = 0;
};

// The store's partner ("" for a store nobody registered).
absl::StatusOr<std::string> PartnerOf(sql::Db& db, const std::string& store);
// The part's last change: (active, changed_at_ms); nullopt if the ticket
// never heard of it.
absl::StatusOr<std::optional<std::pair<bool, int64_t>>> Part(sql::Db& db, int64_t ticket,
                                                             const std::string& part);
absl::Status SetPart(sql::Db& db, int64_t ticket, const std::string& part, bool active,
                     int64_t at_ms);
absl::StatusOr<bool> AnyPartActive(sql::Db& db, int64_t ticket);
absl::Status MapEpisode(sql::Db& db, const std::string& store, const std::string& episode,
                        int64_t ticket);
absl::StatusOr<std::optional<PartSource>> SourceOf(sql::Db& db, int64_t ticket,
                                                   const std::string& part);
absl::Status SetSource(sql::Db& db, int64_t ticket, const std::string& part, const PartSource& src);
// Whether the collector cleared parts of `episode` on this ticket, because
// their agent no longer held it, after `detected_ms`.
absl::StatusOr<bool> ReconciledAfter(sql::Db& db, int64_t ticket, const std::string& episode,
                                     int64_t detected_ms);
// The recurrences of a ticket's condition so far (its "raised" entries).
absl::StatusOr<int64_t> Recurrences(sql::Db& db, int64_t ticket);

}  // namespace setdiag::collector::tickets_internal
