#pragma once
// Tickets: what support works on (docs/tickets.md).
//
// A condition an agent raises opens a ticket; one open ticket per (store,
// condition), found again by the agent's episode key, so replays and
// renumbered outboxes never open a second one. The TicketEngine turns
// committed events and the passing of time into ticket changes, SLA clocks
// and notifications. It runs only on the collector's writer thread (the
// CommitQueue), inside the transaction that stored the events, so a ticket
// change, its timeline entry and its notification commit together or not at
// all. Reads for the API are free functions on any connection.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "collector/notify/notifications.h"
#include "collector/store/storage.h"
#include "collector/tickets/sla.h"
#include "common/clock.h"
#include "common/sqlite.h"

namespace setdiag::collector {

struct TicketPolicy {
  // A cleared condition resolves its ticket after this long without coming
  // back, unless a person has acknowledged it.
  int64_t auto_resolve_after_ms = 15 * 60 * 1000;
  // A condition that returns this soon after its ticket was resolved reopens
  // the same ticket.
  int64_t reopen_within_ms = 60 * 60 * 1000;
  // A store none of whose agents was heard from for this long is unreachable.
  int64_t unreachable_after_ms = 5 * 60 * 1000;
  // An event detected this long before it arrived is late (the store was out
  // of reach). A late condition is recorded; it is paged only if it still
  // holds `late_settle_ms` after arriving.
  int64_t late_after_ms = 2 * 60 * 1000;
  int64_t late_settle_ms = 60 * 1000;
  std::string default_tariff = "expert";
  std::map<std::string, SlaPolicy> tariffs;  // by name; "expert" and "free" at least
};

// Ticket states. `open`: nobody has taken it; `acknowledged`: a person has
// (first response given); `resolved`: done (by a person, or automatically
// after its condition cleared and stayed away).
enum class TicketState { kOpen, kAcknowledged, kResolved };
const char* TicketStateName(TicketState s);
std::optional<TicketState> ParseTicketState(std::string_view s);

struct SlaClock {
  int64_t due_ms = 0;  // 0: no such clock (yet)
  int64_t warn_ms = 0;
  int64_t met_at_ms = 0;  // when it was satisfied; 0: still running
  bool warned = false, breached = false;
};

struct Ticket {
  int64_t id = 0;
  std::string store_id, partner, tariff;
  std::string condition;  // "tills", "loading.halted", "store.unreachable", ...
  Priority priority = Priority::kNormal;
  TicketState state = TicketState::kOpen;
  bool condition_active = false;
  bool paged =
      false;  // notifications go out (false for a late condition still settling or recorded only)
  std::string title_en, title_ru, summary_en, summary_ru;
  int64_t detected_at_ms = 0;    // the agent's detection (or the collector's, for unreachable)
  int64_t registered_at_ms = 0;  // when the collector opened it
  int64_t updated_at_ms = 0;
  int64_t cleared_at_ms = 0;  // the condition last cleared; 0 while it holds
  int64_t acknowledged_at_ms = 0;
  std::string acknowledged_by;
  int64_t resolved_at_ms = 0;
  std::string resolved_by, resolution;
  int64_t error_registered_at_ms = 0;  // a person recorded a software error
  int reopen_count = 0;
  SlaClock registration, first_response, workaround;
  std::string last_episode;
  // What people act on, from the latest raising event of the ticket's
  // priority (collector/tickets/ticket_evidence.h); null when the events had none.
  // Filled by GetTicket and in notifications, not by ListTickets.
  nlohmann::json evidence;
};

struct TimelineEntry {
  int64_t id = 0;
  int64_t at_ms = 0;
  std::string actor;  // "agent <id>", "collector", "user <name>"
  std::string type;   // event, opened, escalated, cleared, reopened, acknowledged, note, error,
                      // workaround, resolved, sla_warning, sla_breached, recorded_late
  std::string text;
  int64_t event_id = 0;  // for type "event"
};

struct TicketQuery {
  std::string store_id;   // empty: every store the user may see
  std::string state;      // "", "open", "acknowledged", "resolved", or "active" (not resolved)
  std::string priority;   // "", "normal", "important", "critical"
  std::string condition;  // exact
  int64_t after_id = 0;   // tickets with a larger id, ascending
  int64_t limit = 100;
};

absl::Status InitTicketSchema(sql::Db& db);

// Reads; `user` scopes them (support: all; partner: own stores). A ticket
// the user may not see is reported as absent.
absl::StatusOr<std::vector<Ticket>> ListTickets(sql::Db& db, const User& user,
                                                const TicketQuery& q);
absl::StatusOr<std::optional<Ticket>> GetTicket(sql::Db& db, const User& user, int64_t id);
absl::StatusOr<std::vector<TimelineEntry>> GetTimeline(sql::Db& db, int64_t ticket_id);

struct StoreRow {
  std::string store_id, partner, tariff;
  bool online = false;
  int64_t last_seen_ms = 0;
  std::string agent_version;
  std::vector<std::string> agent_ids;
  std::vector<Ticket> open_tickets;  // not resolved, with their conditions
};
struct StoreQuery {
  std::string store_id;  // only this store
  std::string after;     // stores whose id sorts after this, ascending
  int64_t limit = 0;     // at most this many; 0: all
};
// `default_tariff` is reported for partners that have none set. A page
// costs O(page) (indexes agents_by_store, tickets_one_open).
absl::StatusOr<std::vector<StoreRow>> ListStores(sql::Db& db, const User& user, const StoreQuery& q,
                                                 const std::string& default_tariff = "");
absl::StatusOr<std::vector<StoreRow>> ListStores(sql::Db& db, const User& user,
                                                 const std::string& store_id,
                                                 const std::string& default_tariff = "");

// The ticket as the API and notifications show it.
nlohmann::json TicketJson(const Ticket& t);
nlohmann::json TimelineJson(const TimelineEntry& e);

// Partners and their tariff (setdiag-collector partner set).
absl::Status SetPartnerTariff(sql::Db& db, const std::string& partner, const std::string& tariff,
                              int64_t now_ms);
// Whether the collector knows `partner`: a store's partner (token create) or
// one given a tariff (partner set).
absl::StatusOr<bool> PartnerIsKnown(sql::Db& db, const std::string& partner);

// Every partner (of a store or with a tariff of its own), its tariff ("" for
// the default) and how many stores it has, by name.
struct PartnerRow {
  std::string partner, tariff;
  int64_t stores = 0;
};
absl::StatusOr<std::vector<PartnerRow>> ListPartners(sql::Db& db);

// What people do to a ticket. Each returns NotFound if the user may not see
// the ticket, FailedPrecondition if the state does not allow it.
enum class TicketAction { kAcknowledge, kNote, kRegisterError, kWorkaround, kResolve };
struct ActionRequest {
  int64_t ticket_id = 0;
  TicketAction action = TicketAction::kNote;
  std::string text;
};

// One condition an agent says it holds raised (Hello.held_episodes).
struct HeldCondition {
  std::string kind, episode;
};

// Runs on the writer thread only.
class TicketEngine {
 public:
  TicketEngine(TicketPolicy policy, const BusinessClock& business, NotifyConfig notify);

  // The events just inserted (new ones only), in sequence order.
  absl::Status OnEvents(sql::Db& db, const std::string& agent_id, const std::string& store_id,
                        const std::vector<EventRow>& events, int64_t now_ms);
  // An agent said Hello. With `held` (protocol: Hello.held_episodes_known),
  // every part this agent raised on the store's active tickets that it no
  // longer holds is cleared "while the agent restarted" (then resolves like
  // any cleared condition); conditions the collector raised itself
  // (store.unreachable) and those of other agents are left alone. Without
  // `held` (an older agent) nothing changes. Idempotent: a later `cleared`
  // of the same episode is a replay, a later `raised` of a new episode
  // counts as the condition coming back.
  absl::Status OnHello(sql::Db& db, const std::string& agent_id, const std::string& store_id,
                       const std::optional<std::vector<HeldCondition>>& held, int64_t now_ms);
  // Time passes: SLA warnings and breaches, automatic resolution, late
  // conditions settling, stores going quiet or coming back.
  absl::Status Tick(sql::Db& db, int64_t now_ms);
  absl::StatusOr<Ticket> Act(sql::Db& db, const User& user, const ActionRequest& request,
                             int64_t now_ms);

  // Notifications enqueued since the last call (the caller wakes the
  // notifier after the commit); resets the count.
  int TakeNoticesEnqueued() { return std::exchange(notices_, 0); }

 private:
  struct Impl;
  TicketPolicy policy_;
  const BusinessClock& business_;
  NotifyConfig notify_;
  int notices_ = 0;
  int64_t started_at_ms_ = 0;  // the first Tick: silence is counted from no earlier
};

}  // namespace setdiag::collector
