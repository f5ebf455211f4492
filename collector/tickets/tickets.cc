#include "collector/tickets/tickets.h"

#include <sqlite3.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "absl/time/time.h"
#include "collector/tickets/ticket_evidence.h"
#include "collector/tickets/ticket_store.h"
#include "collector/tickets/ticket_texts.h"
#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"

namespace setdiag::collector {

using namespace tickets_internal;

namespace {

// ---- conditions ----

// Which ticket a kind belongs to: the till conditions share one (a stopped
// till that grows into a majority is the same incident).
std::string ConditionOf(const std::string& kind) {
  if (kind == "tills.till_stopped" || kind == "tills.majority_stopped") return "tills";
  return kind;
}

// The kinds an agent keeps across its restarts and lists in its Hello
// (held_episodes): those of its watches. Only these are reconciled on Hello;
// a condition recorded by a script (`setdiag-agent emit`) of another kind is
// not held by any watch and must not be cleared by a reconnect.
bool HeldAcrossRestarts(const std::string& kind) {
  static const char* const kKinds[] = {"tills.majority_stopped", "tills.till_stopped",
                                       "set.db_unreachable",     "set.server_down",
                                       "loading.halted",         "loading.transport_halted",
                                       "loading.erp_silent",     "loading.import_errors"};
  return std::any_of(std::begin(kKinds), std::end(kKinds),
                     [&](const char* k) { return kind == k; });
}

// The part of a condition an event speaks of: each till, the majority, or
// the condition itself. A ticket's condition holds while any part does.
std::string PartOf(const std::string& kind, const json& payload) {
  if (kind == "tills.till_stopped" && payload.contains("till"))
    return Cat("till:", payload["till"].dump());
  // Each failing source of the agent is a part of one ticket per store.
  if (kind == "agent.source_failed" && payload.contains("source") &&
      payload["source"].is_string()) {
    return Cat("source:", payload["source"].get<std::string>());
  }
  return kind;
}

std::string EpisodeOf(const std::string& agent_id, const std::string& kind, const json& payload,
                      int64_t detected_ms) {
  if (payload.contains("episode") && payload["episode"].is_string() &&
      !payload["episode"].get<std::string>().empty()) {
    return payload["episode"].get<std::string>();
  }
  // set.db_unreachable and emitted conditions carry none: the raising instant
  // (since_ms when given) names the episode.
  int64_t since = payload.contains("since_ms") && payload["since_ms"].is_number_integer()
                      ? payload["since_ms"].get<int64_t>()
                      : detected_ms;
  return Cat(agent_id, "-", kind, "-", since);
}

std::string Str(const json& j, const char* key) {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
}

// Whether an event setting a part to `active` at `detected_ms` is already
// reflected: the same state at or after that instant (a replay), or any
// later change (an older event overtaken by a newer one).
bool Stale(const std::optional<std::pair<bool, int64_t>>& known, bool active, int64_t detected_ms) {
  if (!known) return false;
  return known->second > detected_ms || (known->first == active && known->second == detected_ms);
}

std::string AgentOf(const std::string& actor) {
  return actor.rfind("agent ", 0) == 0 ? actor.substr(6) : std::string();
}

}  // namespace

// ---- the engine ----

struct TicketEngine::Impl {
  TicketEngine& e;
  sql::Db& db;
  int64_t now;

  const SlaPolicy& PolicyFor(const std::string& tariff) const;

  int64_t NextDue(const Row& r) const;

  absl::Status Save(Row& r);

  absl::StatusOr<std::string> TariffOf(const std::string& partner);

  absl::Status Notify(const Ticket& ticket, const std::string& type, const std::string& key_suffix,
                      const std::string& what_en, const std::string& what_ru);

  absl::StatusOr<std::optional<Row>> FindForEvent(const std::string& store,
                                                  const std::string& condition,
                                                  const std::string& episode, int64_t detected_ms);

  // Retargets the first-response clock for the ticket's priority, counted
  // from `from_ms`; an already running clock is only ever brought forward.
  void TargetFirstResponse(Ticket& t, int64_t from_ms);

  absl::Status Raise(const std::string& actor, const std::string& store, const std::string& kind,
                     Priority priority, const json& payload, const std::string& episode,
                     int64_t detected_ms, int64_t event_id);
  // What one raising event says, worked out once for both of Raise's paths.
  struct Raising {
    const std::string& actor;
    const std::string& store;
    const std::string& kind;
    std::string condition, part;
    const std::string& episode;
    std::string summary_en, summary_ru;
    const json& payload;
    json evidence;
    PartSource source;
    Priority priority;
    int64_t detected_ms, event_id;
    bool late;
  };
  absl::Status Open(const Raising& x);
  absl::Status RaiseAgain(Row r, const Raising& x);

  // Set when the collector clears a part itself because its agent no
  // longer holds it (OnHello).
  struct Reconciled {
    std::string part;  // the part to clear
    std::string why;   // the timeline text, Russian and English
  };

  absl::Status Clear(const std::string& actor, const std::string& store, const std::string& kind,
                     const json& payload, const std::string& episode, int64_t detected_ms,
                     int64_t event_id, const Reconciled* reconciled = nullptr);

  // OnHello with the agent's held conditions: what that agent raised and no
  // longer holds is cleared.
  absl::Status Reconcile(const std::string& agent_id, const std::string& store,
                         const std::vector<HeldCondition>& held);

  absl::Status ApplyEvent(const std::string& agent_id, const std::string& store,
                          const EventRow& ev);

  absl::Status ClockTick(Row& r, SlaClock& c, const char* name, bool* changed);

  absl::Status TickTickets();

  absl::Status TickStores();
};

const SlaPolicy& TicketEngine::Impl::PolicyFor(const std::string& tariff) const {
  auto it = e.policy_.tariffs.find(tariff);
  if (it != e.policy_.tariffs.end()) return it->second;
  return e.policy_.tariffs.at(e.policy_.default_tariff);
}

int64_t TicketEngine::Impl::NextDue(const Row& r) const {
  const Ticket& t = r.t;
  int64_t due = INT64_MAX;
  if (t.state == TicketState::kResolved) return due;
  auto running = [&](const SlaClock& c) {
    if (c.due_ms == 0 || c.met_at_ms != 0 || c.breached) return;
    due = std::min(due, c.warned ? c.due_ms : c.warn_ms);
  };
  if (t.paged) {
    running(t.first_response);
    running(t.workaround);
  }
  if (t.state == TicketState::kOpen && !t.condition_active && t.cleared_at_ms) {
    due = std::min(due, t.cleared_at_ms + e.policy_.auto_resolve_after_ms);
  }
  if (r.late && !t.paged && t.condition_active)
    due = std::min(due, t.registered_at_ms + e.policy_.late_settle_ms);
  return due;
}

absl::Status TicketEngine::Impl::Save(Row& r) {
  r.next_due_ms = NextDue(r);
  return UpdateRow(db, r);
}

absl::StatusOr<std::string> TicketEngine::Impl::TariffOf(const std::string& partner) {
  ASSIGN_OR_RETURN(auto s, db.Prepare("SELECT tariff FROM partners WHERE partner=?"));
  s.Bind(1, partner);
  ASSIGN_OR_RETURN(auto row, s.Step());
  std::string tariff = row ? s.Text(0) : e.policy_.default_tariff;
  if (!e.policy_.tariffs.contains(tariff)) {
    log::Warn("tickets", Cat("partner ", partner, " has tariff '", tariff,
                             "' with no policy; using '", e.policy_.default_tariff, "'"));
    tariff = e.policy_.default_tariff;
  }
  return tariff;
}

absl::Status TicketEngine::Impl::Notify(const Ticket& ticket, const std::string& type,
                                        const std::string& key_suffix, const std::string& what_en,
                                        const std::string& what_ru) {
  if (!ticket.paged) return absl::OkStatus();
  Ticket t = ticket;
  ASSIGN_OR_RETURN(t.evidence, LoadEvidence(db, t.id));
  RETURN_IF_ERROR(EnqueueNotification(db, e.notify_,
                                      ComposeNotice(t, type, key_suffix, what_en, what_ru), now));
  ++e.notices_;
  return absl::OkStatus();
}

absl::StatusOr<std::optional<Row>> TicketEngine::Impl::FindForEvent(const std::string& store,
                                                                    const std::string& condition,
                                                                    const std::string& episode,
                                                                    int64_t detected_ms) {
  ASSIGN_OR_RETURN(
      auto ep, db.Prepare("SELECT ticket_id FROM ticket_episodes WHERE store_id=? AND episode=?"));
  ep.Bind(1, store).Bind(2, episode);
  ASSIGN_OR_RETURN(auto row, ep.Step());
  std::optional<Row> by_episode;
  if (row) {
    auto t = LoadWhere(db, "id = ?1", {}, ep.Int(0));
    if (!t.ok()) return t;
    by_episode = std::move(*t);
    if (by_episode && by_episode->t.state != TicketState::kResolved) return by_episode;
  }
  auto open =
      LoadWhere(db, "store_id = ?1 AND condition = ?2 AND state != 'resolved'", {store, condition});
  if (!open.ok() || *open)
    return open;  // an open ticket wins over a resolved one of an old episode
  if (by_episode) return by_episode;
  // "0s" turns reopening off. It must be checked as such: the window is
  // counted back from the agent's detection, and a backlog detected
  // before the ticket resolved (e.g. stored only after the collector's
  // disk was freed) lies inside any window, even an empty one.
  if (e.policy_.reopen_within_ms <= 0) return std::optional<Row>();
  // Resolved recently: the condition came back within the cool-down.
  return LoadWhere(
      db,
      "store_id = ?1 AND condition = ?2 AND state = 'resolved' AND resolved_at_ms >= ?3 "
      "ORDER BY id DESC",
      {store, condition}, std::max<int64_t>(1, detected_ms - e.policy_.reopen_within_ms));
}

// Retargets the first-response clock for the ticket's priority, counted
// from `from_ms`; an already running clock is only ever brought forward.
void TicketEngine::Impl::TargetFirstResponse(Ticket& t, int64_t from_ms) {
  if (t.first_response.met_at_ms) return;
  SlaTarget target = FirstResponseTarget(PolicyFor(t.tariff), e.business_, t.priority, from_ms);
  if (t.first_response.due_ms == 0 || target.due_ms < t.first_response.due_ms) {
    t.first_response.due_ms = target.due_ms;
    t.first_response.warn_ms = target.warn_ms;
    t.first_response.warned = now >= target.warn_ms && t.first_response.warned;
    t.first_response.breached = false;
  }
}

absl::Status TicketEngine::Impl::Raise(const std::string& actor, const std::string& store,
                                       const std::string& kind, Priority priority,
                                       const json& payload, const std::string& episode,
                                       int64_t detected_ms, int64_t event_id) {
  const Raising x{actor,
                  store,
                  kind,
                  ConditionOf(kind),
                  PartOf(kind, payload),
                  episode,
                  Str(payload, "summary_en"),
                  Str(payload, "summary_ru"),
                  payload,
                  EvidenceOf(kind, payload),
                  PartSource{AgentOf(actor), kind, episode, 0},
                  priority,
                  detected_ms,
                  event_id,
                  now - detected_ms > e.policy_.late_after_ms};
  ASSIGN_OR_RETURN(auto found, FindForEvent(store, x.condition, episode, detected_ms));
  if (!found) return Open(x);
  return RaiseAgain(std::move(*found), x);
}

// A condition with no ticket yet (or only one resolved longer ago than the
// reopen window): a new ticket, paged unless the event arrived late.
absl::Status TicketEngine::Impl::Open(const Raising& x) {
  auto partner = PartnerOf(db, x.store);
  if (!partner.ok()) return partner.status();
  auto tariff = TariffOf(*partner);
  if (!tariff.ok()) return tariff.status();
  Row r;
  Ticket& t = r.t;
  t.store_id = x.store;
  t.partner = *partner;
  t.tariff = *tariff;
  t.condition = x.condition;
  t.priority = x.priority;
  t.state = TicketState::kOpen;
  t.condition_active = true;
  t.paged = !x.late;
  r.late = x.late;
  Titles titles = TitleFor(x.condition, x.priority, x.store);
  t.title_en = titles.en;
  t.title_ru = titles.ru;
  t.summary_en = x.summary_en;
  t.summary_ru = x.summary_ru;
  t.detected_at_ms = x.detected_ms;
  t.registered_at_ms = now;
  t.updated_at_ms = now;
  t.last_episode = x.episode;
  const SlaPolicy& policy = PolicyFor(t.tariff);
  SlaTarget reg = RegistrationTarget(policy, e.business_, x.detected_ms);
  t.registration = {reg.due_ms, reg.warn_ms, now, now >= reg.warn_ms, now > reg.due_ms};
  TargetFirstResponse(t, x.detected_ms);
  r.next_due_ms = NextDue(r);
  auto id = InsertRow(db, r);
  if (!id.ok()) return id.status();
  t.id = *id;
  RETURN_IF_ERROR(MapEpisode(db, x.store, x.episode, t.id));
  RETURN_IF_ERROR(SetPart(db, t.id, x.part, true, x.detected_ms));
  RETURN_IF_ERROR(SetSource(db, t.id, x.part, x.source));
  if (!x.evidence.is_null()) {
    RETURN_IF_ERROR(SaveEvidence(db, t.id, x.evidence, now));
  }
  if (auto st =
          AddTimeline(db, t.id, now, x.actor, x.late ? "recorded_late" : "opened",
                      x.late ? Cat("detected ", (now - x.detected_ms) / 1000,
                                   " s before it arrived; paged only if it still holds after ",
                                   e.policy_.late_settle_ms / 1000, " s")
                             : Cat(PriorityName(x.priority), " ticket opened: ", t.title_en),
                      x.event_id);
      !st.ok()) {
    return st;
  }
  if (t.registration.breached) {
    RETURN_IF_ERROR(AddTimeline(
        db, t.id, now, "collector", "sla_breached",
        Cat("registration: due ", FormatMsk(reg.due_ms), ", registered ", FormatMsk(now))));
  }
  log::Info("tickets", Cat("#", t.id, " opened for store ", x.store, ": ", x.condition, " (",
                           PriorityName(x.priority), x.late ? ", late: not paged yet" : "", ")"));
  return Notify(t, "opened", "", "Opened", "Открыта");
}

// A condition whose ticket exists: a replay, a part raised again, a
// reopening, a recurrence or an escalation.
absl::Status TicketEngine::Impl::RaiseAgain(Row r, const Raising& x) {
  Ticket& t = r.t;
  ASSIGN_OR_RETURN(auto overtaken, ReconciledAfter(db, t.id, x.episode, x.detected_ms));
  if (overtaken) {
    // Detected before its agent's Hello said it no longer held the
    // episode: from the old process's outbox, and no longer true.
    return AddTimeline(
        db, t.id, now, x.actor, "event",
        Cat(x.kind, ": already over (the agent no longer held ", x.episode, " when it restarted)"),
        x.event_id);
  }
  ASSIGN_OR_RETURN(auto known, Part(db, t.id, x.part));
  if (Stale(known, true, x.detected_ms)) {
    // A part the collector cleared because its agent no longer held it is
    // not overtaken for another episode: that one began before the Hello
    // and arrives from the agent's outbox after it.
    ASSIGN_OR_RETURN(auto src, SourceOf(db, t.id, x.part));
    const bool other_episode = src && (src)->reconciled_at_ms != 0 &&
                               (src)->reconciled_at_ms == known->second &&
                               (src)->episode != x.episode;
    if (!other_episode) {
      // A replay (or an older event overtaken by a newer one): on record only.
      return AddTimeline(db, t.id, now, x.actor, "event", Cat(x.kind, ": already applied"),
                         x.event_id);
    }
  }
  RETURN_IF_ERROR(MapEpisode(db, x.store, x.episode, t.id));
  RETURN_IF_ERROR(SetPart(db, t.id, x.part, true, x.detected_ms));
  RETURN_IF_ERROR(SetSource(db, t.id, x.part, x.source));
  if (!x.evidence.is_null() && x.priority >= t.priority) {
    // A single till's evidence does not replace the majority's.
    RETURN_IF_ERROR(SaveEvidence(db, t.id, x.evidence, now));
  }
  t.updated_at_ms = now;
  t.last_episode = x.episode;
  if (!x.summary_en.empty()) t.summary_en = x.summary_en;
  if (!x.summary_ru.empty()) t.summary_ru = x.summary_ru;

  std::vector<std::tuple<std::string, std::string, std::string, std::string>> notices;
  if (t.state == TicketState::kResolved) {
    t.state = t.acknowledged_at_ms ? TicketState::kAcknowledged : TicketState::kOpen;
    t.resolved_at_ms = 0;
    t.resolved_by.clear();
    t.resolution.clear();
    ++t.reopen_count;
    if (!x.late && !t.paged) {
      t.paged = true;
      r.late = false;
    }
    RETURN_IF_ERROR(AddTimeline(db, t.id, now, x.actor, "reopened",
                                Cat(x.kind, " came back within ",
                                    HumanDuration(e.policy_.reopen_within_ms), " of resolution"),
                                x.event_id));
    notices.emplace_back("reopened", Cat(t.reopen_count), "Reopened", "Открыта повторно");
  } else if (!t.condition_active) {
    // Back before the ticket resolved: the same ticket, and the helpdesk
    // hears of it (its last word was "cleared").
    RETURN_IF_ERROR(AddTimeline(db, t.id, now, x.actor, "raised",
                                Cat(x.kind, ": the condition holds again"), x.event_id));
    ASSIGN_OR_RETURN(auto n, Recurrences(db, t.id));
    log::Info("tickets", Cat("#", t.id, " (store ", x.store, "): ", x.kind,
                             " came back before the ticket resolved (", n, ")"));
    notices.emplace_back("recurred", Cat(n), "Condition came back", "Условие возникло снова");
  } else {
    RETURN_IF_ERROR(AddTimeline(db, t.id, now, x.actor, "event",
                                Cat(x.kind, " ", Str(x.payload, "state")), x.event_id));
  }
  t.condition_active = true;
  t.cleared_at_ms = 0;
  if (!x.late && !t.paged && r.late) {
    // A late ticket whose condition is confirmed by a live event: page now.
    t.paged = true;
    r.late = false;
    notices.emplace_back("opened", "", "Opened", "Открыта");
  }
  if (x.priority > t.priority) {
    Priority old = t.priority;
    t.priority = x.priority;
    Titles titles = TitleFor(x.condition, x.priority, x.store);
    t.title_en = titles.en;
    t.title_ru = titles.ru;
    TargetFirstResponse(t, x.detected_ms);
    if (auto st = AddTimeline(db, t.id, now, x.actor, "escalated",
                              Cat(PriorityName(old), " -> ", PriorityName(x.priority),
                                  "; first response due ", FormatMsk(t.first_response.due_ms)),
                              x.event_id);
        !st.ok()) {
      return st;
    }
    log::Info("tickets",
              Cat("#", t.id, " escalated to ", PriorityName(x.priority), " (store ", x.store, ")"));
    notices.emplace_back("escalated", PriorityName(x.priority), "Escalated", "Повышен приоритет");
  }
  RETURN_IF_ERROR(Save(r));
  for (const auto& [type, suffix, en, ru] : notices) {
    RETURN_IF_ERROR(Notify(t, type, suffix, en, ru));
  }
  return absl::OkStatus();
}

absl::Status TicketEngine::Impl::Clear(const std::string& actor, const std::string& store,
                                       const std::string& kind, const json& payload,
                                       const std::string& episode, int64_t detected_ms,
                                       int64_t event_id, const Reconciled* reconciled) {
  const std::string condition = ConditionOf(kind);
  const std::string part = reconciled ? reconciled->part : PartOf(kind, payload);
  ASSIGN_OR_RETURN(auto found, FindForEvent(store, condition, episode, detected_ms));
  if (!found)
    return absl::OkStatus();  // nothing was opened for it (e.g. raised before tickets existed)
  Row r = std::move(*found);
  Ticket& t = r.t;
  ASSIGN_OR_RETURN(auto known, Part(db, t.id, part));
  if (Stale(known, false, detected_ms)) {
    return AddTimeline(db, t.id, now, actor, "event", Cat(kind, " cleared: already applied"),
                       event_id);
  }
  RETURN_IF_ERROR(SetPart(db, t.id, part, false, detected_ms));
  ASSIGN_OR_RETURN(auto still, AnyPartActive(db, t.id));
  t.updated_at_ms = now;
  if (still || !t.condition_active) {
    if (reconciled) {
      RETURN_IF_ERROR(Save(r));
      return AddTimeline(db, t.id, now, actor, "event", Cat(part, ": ", reconciled->why), event_id);
    }
    return AddTimeline(db, t.id, now, actor, "event", Cat(kind, " cleared (", part, ")"), event_id);
  }
  t.condition_active = false;
  t.cleared_at_ms = detected_ms;
  RETURN_IF_ERROR(AddTimeline(
      db, t.id, now, actor, "cleared",
      reconciled ? reconciled->why : Cat("the condition cleared at ", FormatMsk(detected_ms)),
      event_id));
  if (!t.paged && t.state != TicketState::kResolved) {
    // Began and ended while the store was out of reach: kept for the
    // record, never paged.
    t.state = TicketState::kResolved;
    t.resolved_at_ms = now;
    t.resolved_by = "collector";
    t.resolution = "began and ended while the store was out of reach; recorded, not paged";
    RETURN_IF_ERROR(AddTimeline(db, t.id, now, "collector", "resolved", t.resolution));
    return Save(r);
  }
  RETURN_IF_ERROR(Save(r));
  if (reconciled) {
    return Notify(t, "cleared", Cat(detected_ms), "Cleared while the agent restarted",
                  "Условие снято при перезапуске агента");
  }
  return Notify(t, "cleared", Cat(detected_ms), "Cleared", "Условие снято");
}

// OnHello with the agent's held conditions: what that agent raised and no
// longer holds is cleared.
absl::Status TicketEngine::Impl::Reconcile(const std::string& agent_id, const std::string& store,
                                           const std::vector<HeldCondition>& held) {
  struct Candidate {
    int64_t ticket = 0;
    std::string part, agent, kind, episode;
    bool known_source = false;
    int64_t changed_at_ms = 0;
  };
  std::vector<Candidate> candidates;
  {
    auto s = db.Prepare(
        "SELECT t.id, p.part, s.agent_id, s.kind, s.episode, s.ticket_id IS NOT NULL, "
        "t.last_episode, "
        "p.changed_at_ms "
        "FROM tickets t JOIN ticket_parts p ON p.ticket_id = t.id "
        "LEFT JOIN ticket_part_sources s ON s.ticket_id = p.ticket_id AND s.part = p.part "
        "WHERE t.store_id = ?1 AND t.state != 'resolved' AND t.condition_active = 1 AND p.active "
        "= 1 "
        "AND t.condition != 'store.unreachable' ORDER BY t.id, p.part");
    if (!s.ok()) return s.status();
    s->Bind(1, store);
    while (true) {
      ASSIGN_OR_RETURN(auto row, s->Step());
      if (!row) break;
      Candidate c;
      c.ticket = s->Int(0);
      c.part = s->Text(1);
      c.known_source = s->Int(5) != 0;
      c.changed_at_ms = s->Int(7);
      if (c.known_source) {
        c.agent = s->Text(2);
        c.kind = s->Text(3);
        c.episode = s->Text(4);
      } else {
        // Raised before the collector recorded who raised what: the part
        // names its kind, the ticket its latest episode.
        c.kind = c.part.rfind("till:", 0) == 0 ? "tills.till_stopped" : c.part;
        c.episode = s->Text(6);
      }
      candidates.push_back(std::move(c));
    }
  }
  for (auto& c : candidates) {
    if (!c.known_source) {
      // ... and its timeline the agent that last spoke of it.
      auto s = db.Prepare(
          "SELECT actor FROM ticket_timeline WHERE ticket_id=? AND event_id > 0 AND actor LIKE "
          "'agent %' "
          "ORDER BY id DESC LIMIT 1");
      if (!s.ok()) return s.status();
      s->Bind(1, c.ticket);
      ASSIGN_OR_RETURN(auto row, s->Step());
      if (row) c.agent = AgentOf(s->Text(0));
    }
    if (c.agent != agent_id) continue;          // another agent's (or nobody's) condition
    if (!HeldAcrossRestarts(c.kind)) continue;  // not a watch's: the agent would not list it
    const bool till_part = c.part.rfind("till:", 0) == 0;
    const bool holds = std::any_of(held.begin(), held.end(), [&](const HeldCondition& h) {
      // A condition with one part per kind still holds under a newer
      // episode whose raise is on its way from the outbox.
      return h.kind == c.kind && (h.episode == c.episode || !till_part);
    });
    if (holds) continue;
    Reconciled why{c.part,
                   Cat("cleared while the agent restarted: agent ", agent_id, " no longer holds ",
                       c.kind, " (episode ", c.episode, ") / снято при перезапуске агента: агент ",
                       agent_id, " больше не фиксирует ", c.kind, " (эпизод ", c.episode, ")")};
    log::Info("tickets", Cat("#", c.ticket, " (store ", store, "): agent ", agent_id,
                             " said Hello without ", c.kind, " (episode ", c.episode, ", ", c.part,
                             "): cleared while the agent restarted"));
    // Cleared now, and never before the part's last change (an agent clock
    // ahead of ours): events of this episode still in the agent's outbox
    // were detected before and are replays of what is known.
    const int64_t at = std::max(now, c.changed_at_ms + 1);
    RETURN_IF_ERROR(Clear("collector", store, c.kind, json::object(), c.episode, at, 0, &why));
    if (auto st = SetSource(db, c.ticket, c.part, PartSource{agent_id, c.kind, c.episode, at});
        !st.ok())
      return st;
  }
  return absl::OkStatus();
}

absl::Status TicketEngine::Impl::ApplyEvent(const std::string& agent_id, const std::string& store,
                                            const EventRow& ev) {
  if (ev.severity < 2) return absl::OkStatus();  // info never opens a ticket
  json payload = json::parse(ev.payload, nullptr, false);
  if (!payload.is_object() || !payload.contains("state") || !payload["state"].is_string()) {
    return absl::OkStatus();  // not a condition (gaps, outbox resets, free-form events)
  }
  const std::string state = payload["state"].get<std::string>();
  const std::string episode = EpisodeOf(agent_id, ev.kind, payload, ev.detected_at_ms);
  const std::string actor = Cat("agent ", agent_id);
  if (state == "raised" || state == "escalated" || state == "updated") {
    auto priority = static_cast<Priority>(std::clamp(ev.severity - 1, 1, 3));
    return Raise(actor, store, ev.kind, priority, payload, episode, ev.detected_at_ms, ev.id);
  }
  if (state == "cleared")
    return Clear(actor, store, ev.kind, payload, episode, ev.detected_at_ms, ev.id);
  return absl::OkStatus();
}

absl::Status TicketEngine::Impl::ClockTick(Row& r, SlaClock& c, const char* name, bool* changed) {
  Ticket& t = r.t;
  if (c.due_ms == 0 || c.met_at_ms != 0) return absl::OkStatus();
  if (!c.warned && now >= c.warn_ms && now < c.due_ms) {
    c.warned = true;
    *changed = true;
    RETURN_IF_ERROR(AddTimeline(db, t.id, now, "collector", "sla_warning",
                                Cat(name, " due ", FormatMsk(c.due_ms))));
    RETURN_IF_ERROR(Notify(t, "sla_warning", Cat(name, "-", c.due_ms), Cat(name, " due soon"),
                           Cat("срок ", name, " истекает")));
  }
  if (!c.breached && now >= c.due_ms) {
    c.breached = true;
    c.warned = true;
    *changed = true;
    RETURN_IF_ERROR(AddTimeline(db, t.id, now, "collector", "sla_breached",
                                Cat(name, " was due ", FormatMsk(c.due_ms))));
    log::Warn("tickets", Cat("#", t.id, " (store ", t.store_id, "): ", name, " SLA breached"));
    RETURN_IF_ERROR(Notify(t, "sla_breached", Cat(name, "-", c.due_ms), Cat(name, " SLA breached"),
                           Cat("нарушен срок ", name)));
  }
  return absl::OkStatus();
}

absl::Status TicketEngine::Impl::TickTickets() {
  auto s = db.Prepare(
      Cat("SELECT ", kColumns, " FROM tickets WHERE state != 'resolved' AND next_due_ms <= ?1"));
  if (!s.ok()) return s.status();
  s->Bind(1, now);
  std::vector<Row> rows;
  while (true) {
    ASSIGN_OR_RETURN(auto row, s->Step());
    if (!row) break;
    rows.push_back(ReadRow(*s));
  }
  for (Row& r : rows) {
    Ticket& t = r.t;
    bool changed = false;
    if (r.late && !t.paged && t.condition_active &&
        now - t.registered_at_ms >= e.policy_.late_settle_ms) {
      t.paged = true;
      r.late = false;
      changed = true;
      RETURN_IF_ERROR(AddTimeline(db, t.id, now, "collector", "paged",
                                  "still holds after the store came back: paged"));
      RETURN_IF_ERROR(Notify(t, "opened", "", "Opened", "Открыта"));
    }
    if (t.paged) {
      RETURN_IF_ERROR(ClockTick(r, t.first_response, "first_response", &changed));
      RETURN_IF_ERROR(ClockTick(r, t.workaround, "workaround", &changed));
    }
    if (t.state == TicketState::kOpen && !t.condition_active && t.cleared_at_ms &&
        now - t.cleared_at_ms >= e.policy_.auto_resolve_after_ms) {
      t.state = TicketState::kResolved;
      t.resolved_at_ms = now;
      t.resolved_by = "collector";
      t.resolution = Cat("the condition cleared and stayed away for ",
                         HumanDuration(e.policy_.auto_resolve_after_ms));
      changed = true;
      RETURN_IF_ERROR(AddTimeline(db, t.id, now, "collector", "resolved", t.resolution));
      log::Info("tickets", Cat("#", t.id, " resolved automatically (store ", t.store_id, ")"));
      RETURN_IF_ERROR(Notify(t, "resolved", Cat(t.reopen_count), "Resolved", "Решена"));
    }
    if (changed || r.next_due_ms != NextDue(r)) {
      if (changed) t.updated_at_ms = now;
      RETURN_IF_ERROR(Save(r));
    }
  }
  return absl::OkStatus();
}

absl::Status TicketEngine::Impl::TickStores() {
  // One pass over the stores; only those whose reachability disagrees
  // with their tickets are looked at further.
  auto s = db.Prepare(
      "SELECT a.store_id, MAX(a.last_seen_ms), MAX(a.connected), "
      "  EXISTS (SELECT 1 FROM tickets t WHERE t.store_id = a.store_id AND t.condition = "
      "'store.unreachable' "
      "          AND t.state != 'resolved' AND t.condition_active = 1) "
      "FROM agents a GROUP BY a.store_id");
  if (!s.ok()) return s.status();
  std::vector<std::tuple<std::string, int64_t, bool>> stores;
  while (true) {
    ASSIGN_OR_RETURN(auto row, s->Step());
    if (!row) break;
    // Silence counts from the later of last contact and this collector's
    // start: after an outage of the collector itself, agents get the full
    // threshold to reconnect before their stores count as unreachable.
    const int64_t quiet_since = std::max(s->Int(1), e.started_at_ms_);
    const bool silent = s->Int(2) == 0 && now - quiet_since >= e.policy_.unreachable_after_ms;
    if (silent != (s->Int(3) != 0)) stores.emplace_back(s->Text(0), s->Int(1), silent);
  }
  for (const auto& [store, last_seen, silent] : stores) {
    auto open =
        LoadWhere(db,
                  "store_id = ?1 AND condition = 'store.unreachable' AND state != 'resolved' "
                  "AND condition_active = 1",
                  {store});
    if (!open.ok()) return open.status();
    if (silent && !*open) {
      const std::string episode = Cat("store.unreachable-", last_seen);
      ASSIGN_OR_RETURN(auto seen,
                       db.Prepare("SELECT 1 FROM ticket_episodes WHERE store_id=? AND episode=?"));
      seen.Bind(1, store).Bind(2, episode);
      ASSIGN_OR_RETURN(auto had, seen.Step());
      if (had) continue;  // this silence already had its ticket
      json payload = {
          {"summary_en",
           Cat("No agent of the store has been heard from since ", FormatMsk(last_seen))},
          {"summary_ru", Cat("Агент магазина не выходил на связь с ", FormatMsk(last_seen))}};
      // Detected by the collector when the threshold passed, so never "late".
      const int64_t detected =
          std::max(last_seen, e.started_at_ms_) + e.policy_.unreachable_after_ms;
      RETURN_IF_ERROR(Raise("collector", store, "store.unreachable", Priority::kImportant, payload,
                            episode, std::min(detected, now), 0));
    } else if (!silent && *open) {
      RETURN_IF_ERROR(Clear("collector", store, "store.unreachable", json::object(),
                            (*open)->t.last_episode, now, 0));
    }
  }
  return absl::OkStatus();
}

TicketEngine::TicketEngine(TicketPolicy policy, const BusinessClock& business, NotifyConfig notify)
    : policy_(std::move(policy)), business_(business), notify_(std::move(notify)) {
  if (!policy_.tariffs.contains("expert")) policy_.tariffs["expert"] = ExpertPolicy();
  if (!policy_.tariffs.contains("free")) policy_.tariffs["free"] = FreePolicy();
  if (!policy_.tariffs.contains(policy_.default_tariff)) policy_.default_tariff = "expert";
}

absl::Status TicketEngine::OnEvents(sql::Db& db, const std::string& agent_id,
                                    const std::string& store_id,
                                    const std::vector<EventRow>& events, int64_t now_ms) {
  Impl impl{*this, db, now_ms};
  for (const auto& ev : events) {
    RETURN_IF_ERROR(impl.ApplyEvent(agent_id, store_id, ev));
  }
  return absl::OkStatus();
}

absl::Status TicketEngine::OnHello(sql::Db& db, const std::string& agent_id,
                                   const std::string& store_id,
                                   const std::optional<std::vector<HeldCondition>>& held,
                                   int64_t now_ms) {
  if (!held)
    return absl::OkStatus();  // an agent that does not say what it holds: nothing to reconcile
  Impl impl{*this, db, now_ms};
  return impl.Reconcile(agent_id, store_id, *held);
}

absl::Status TicketEngine::Tick(sql::Db& db, int64_t now_ms) {
  if (started_at_ms_ == 0) started_at_ms_ = now_ms;
  Impl impl{*this, db, now_ms};
  RETURN_IF_ERROR(impl.TickStores());
  return impl.TickTickets();
}

absl::StatusOr<Ticket> TicketEngine::Act(sql::Db& db, const User& user, const ActionRequest& req,
                                         int64_t now_ms) {
  Impl impl{*this, db, now_ms};
  ASSIGN_OR_RETURN(auto found, LoadWhere(db, "id = ?1", {}, req.ticket_id));
  if (!found || !VisibleTo(user, (found)->t.partner)) {
    return absl::NotFoundError(Cat("no ticket ", req.ticket_id, " visible to you"));
  }
  Row r = std::move(*found);
  Ticket& t = r.t;
  const std::string actor = Cat("user ", user.name);
  auto timeline = [&](std::string_view type, std::string_view text) {
    return AddTimeline(db, t.id, now_ms, actor, type, text);
  };
  auto respond = [&] {
    if (t.state == TicketState::kOpen) {
      t.state = TicketState::kAcknowledged;
      t.acknowledged_at_ms = now_ms;
      t.acknowledged_by = user.name;
    }
    if (!t.first_response.met_at_ms) {
      t.first_response.met_at_ms = now_ms;
      // Met late: a breach even if no tick saw it first.
      if (t.first_response.due_ms && now_ms > t.first_response.due_ms)
        t.first_response.breached = true;
    }
  };
  const bool resolved = t.state == TicketState::kResolved;
  switch (req.action) {
    case TicketAction::kAcknowledge: {
      if (resolved) return absl::FailedPreconditionError(Cat("ticket ", t.id, " is resolved"));
      if (t.state == TicketState::kAcknowledged) {
        return absl::FailedPreconditionError(
            Cat("ticket ", t.id, " was already acknowledged by ", t.acknowledged_by));
      }
      respond();
      RETURN_IF_ERROR(timeline("acknowledged", req.text));
      break;
    }
    case TicketAction::kNote:
      if (req.text.empty()) return absl::InvalidArgumentError("a note needs 'text'");
      RETURN_IF_ERROR(timeline("note", req.text));
      break;
    case TicketAction::kRegisterError: {
      if (req.text.empty()) return absl::InvalidArgumentError("registering an error needs 'text'");
      if (resolved) return absl::FailedPreconditionError(Cat("ticket ", t.id, " is resolved"));
      if (t.error_registered_at_ms) {
        return absl::FailedPreconditionError(
            Cat("ticket ", t.id, " already has an error registered"));
      }
      respond();
      t.error_registered_at_ms = now_ms;
      SlaTarget target = WorkaroundTarget(impl.PolicyFor(t.tariff), business_, now_ms);
      t.workaround = {target.due_ms, target.warn_ms, 0, false, false};
      RETURN_IF_ERROR(
          timeline("error", Cat(req.text, " (workaround due ", FormatMsk(target.due_ms), ")")));
      break;
    }
    case TicketAction::kWorkaround:
      if (req.text.empty()) return absl::InvalidArgumentError("a workaround needs 'text'");
      if (!t.error_registered_at_ms) {
        return absl::FailedPreconditionError(Cat("ticket ", t.id, " has no registered error"));
      }
      if (t.workaround.met_at_ms) {
        return absl::FailedPreconditionError(Cat("ticket ", t.id, " already has a workaround"));
      }
      t.workaround.met_at_ms = now_ms;
      if (now_ms > t.workaround.due_ms && t.workaround.due_ms) t.workaround.breached = true;
      RETURN_IF_ERROR(timeline("workaround", req.text));
      break;
    case TicketAction::kResolve:
      if (resolved)
        return absl::FailedPreconditionError(Cat("ticket ", t.id, " is already resolved"));
      respond();
      t.state = TicketState::kResolved;
      t.resolved_at_ms = now_ms;
      t.resolved_by = user.name;
      t.resolution = req.text;
      RETURN_IF_ERROR(timeline("resolved", req.text));
      break;
  }
  t.updated_at_ms = now_ms;
  RETURN_IF_ERROR(impl.Save(r));
  if (req.action == TicketAction::kResolve) {
    RETURN_IF_ERROR(impl.Notify(t, "resolved", Cat(t.reopen_count), "Resolved", "Решена"));
  }
  return t;
}

}  // namespace setdiag::collector
