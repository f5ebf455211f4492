#include "collector/tickets/ticket_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <map>

#include "common/status.h"
#include "common/strings.h"

namespace setdiag::collector {
namespace tickets_internal {
namespace {

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS partners(
  partner TEXT PRIMARY KEY,
  tariff TEXT NOT NULL,
  updated_at_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tickets(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  store_id TEXT NOT NULL,
  partner TEXT NOT NULL,
  tariff TEXT NOT NULL,
  condition TEXT NOT NULL,
  priority INTEGER NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
  condition_active INTEGER NOT NULL,
  paged INTEGER NOT NULL,
  late INTEGER NOT NULL,
  title_en TEXT NOT NULL, title_ru TEXT NOT NULL,
  summary_en TEXT NOT NULL, summary_ru TEXT NOT NULL,
  detected_at_ms INTEGER NOT NULL,
  registered_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL,
  cleared_at_ms INTEGER NOT NULL,
  acknowledged_at_ms INTEGER NOT NULL, acknowledged_by TEXT NOT NULL,
  resolved_at_ms INTEGER NOT NULL, resolved_by TEXT NOT NULL, resolution TEXT NOT NULL,
  error_registered_at_ms INTEGER NOT NULL,
  reopen_count INTEGER NOT NULL,
  last_episode TEXT NOT NULL,
  reg_due INTEGER NOT NULL, reg_warn INTEGER NOT NULL, reg_met INTEGER NOT NULL,
  reg_warned INTEGER NOT NULL, reg_breached INTEGER NOT NULL,
  resp_due INTEGER NOT NULL, resp_warn INTEGER NOT NULL, resp_met INTEGER NOT NULL,
  resp_warned INTEGER NOT NULL, resp_breached INTEGER NOT NULL,
  wa_due INTEGER NOT NULL, wa_warn INTEGER NOT NULL, wa_met INTEGER NOT NULL,
  wa_warned INTEGER NOT NULL, wa_breached INTEGER NOT NULL,
  next_due_ms INTEGER NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS tickets_one_open ON tickets(store_id, condition) WHERE state != 'resolved';
CREATE INDEX IF NOT EXISTS tickets_by_store ON tickets(store_id, condition, id);
CREATE INDEX IF NOT EXISTS tickets_unresolved ON tickets(state) WHERE state != 'resolved';
CREATE INDEX IF NOT EXISTS tickets_due ON tickets(next_due_ms) WHERE state != 'resolved';
CREATE TABLE IF NOT EXISTS ticket_episodes(
  store_id TEXT NOT NULL,
  episode TEXT NOT NULL,
  ticket_id INTEGER NOT NULL,
  PRIMARY KEY (store_id, episode));
CREATE TABLE IF NOT EXISTS ticket_parts(
  ticket_id INTEGER NOT NULL,
  part TEXT NOT NULL,
  active INTEGER NOT NULL,
  changed_at_ms INTEGER NOT NULL,
  PRIMARY KEY (ticket_id, part));
CREATE TABLE IF NOT EXISTS ticket_timeline(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  ticket_id INTEGER NOT NULL,
  at_ms INTEGER NOT NULL,
  actor TEXT NOT NULL,
  type TEXT NOT NULL,
  text TEXT NOT NULL,
  event_id INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS ticket_timeline_by_ticket ON ticket_timeline(ticket_id, id);
-- Which agent raised each part, in which episode (for the reconciliation on
-- Hello); reconciled_at_ms: the part was cleared because the agent no longer
-- held it (0: not).
CREATE TABLE IF NOT EXISTS ticket_part_sources(
  ticket_id INTEGER NOT NULL,
  part TEXT NOT NULL,
  agent_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  episode TEXT NOT NULL,
  reconciled_at_ms INTEGER NOT NULL,
  PRIMARY KEY (ticket_id, part));
-- The evidence of a ticket's latest raising event (collector/tickets/ticket_evidence.h).
CREATE TABLE IF NOT EXISTS ticket_evidence(
  ticket_id INTEGER PRIMARY KEY,
  evidence TEXT NOT NULL,
  updated_at_ms INTEGER NOT NULL);
)sql";

void ReadClock(const sql::Stmt& s, int col, SlaClock* c) {
  c->due_ms = s.Int(col);
  c->warn_ms = s.Int(col + 1);
  c->met_at_ms = s.Int(col + 2);
  c->warned = s.Int(col + 3) != 0;
  c->breached = s.Int(col + 4) != 0;
}

void BindClock(sql::Stmt& s, int idx, const SlaClock& c) {
  s.Bind(idx, c.due_ms).Bind(idx + 1, c.warn_ms).Bind(idx + 2, c.met_at_ms);
  s.Bind(idx + 3, int64_t{c.warned}).Bind(idx + 4, int64_t{c.breached});
}

// Binds every column but id as ?1..?41 (id is ?42 for UPDATE).
void BindRow(sql::Stmt& s, const Row& r) {
  const Ticket& t = r.t;
  s.Bind(1, t.store_id).Bind(2, t.partner).Bind(3, t.tariff).Bind(4, t.condition);
  s.Bind(5, int64_t{static_cast<int>(t.priority)}).Bind(6, TicketStateName(t.state));
  s.Bind(7, int64_t{t.condition_active}).Bind(8, int64_t{t.paged}).Bind(9, int64_t{r.late});
  s.Bind(10, t.title_en).Bind(11, t.title_ru).Bind(12, t.summary_en).Bind(13, t.summary_ru);
  s.Bind(14, t.detected_at_ms).Bind(15, t.registered_at_ms).Bind(16, t.updated_at_ms);
  s.Bind(17, t.cleared_at_ms).Bind(18, t.acknowledged_at_ms).Bind(19, t.acknowledged_by);
  s.Bind(20, t.resolved_at_ms).Bind(21, t.resolved_by).Bind(22, t.resolution);
  s.Bind(23, t.error_registered_at_ms).Bind(24, int64_t{t.reopen_count}).Bind(25, t.last_episode);
  BindClock(s, 26, t.registration);
  BindClock(s, 31, t.first_response);
  BindClock(s, 36, t.workaround);
  s.Bind(41, r.next_due_ms);
}

}  // namespace

absl::Status CreateSchema(sql::Db& db) { return db.Exec(kSchema); }

Row ReadRow(const sql::Stmt& s) {
  Row r;
  Ticket& t = r.t;
  t.id = s.Int(0);
  t.store_id = s.Text(1);
  t.partner = s.Text(2);
  t.tariff = s.Text(3);
  t.condition = s.Text(4);
  t.priority = static_cast<Priority>(std::clamp<int64_t>(s.Int(5), 1, 3));
  t.state = ParseTicketState(s.Text(6)).value_or(TicketState::kOpen);
  t.condition_active = s.Int(7) != 0;
  t.paged = s.Int(8) != 0;
  r.late = s.Int(9) != 0;
  t.title_en = s.Text(10);
  t.title_ru = s.Text(11);
  t.summary_en = s.Text(12);
  t.summary_ru = s.Text(13);
  t.detected_at_ms = s.Int(14);
  t.registered_at_ms = s.Int(15);
  t.updated_at_ms = s.Int(16);
  t.cleared_at_ms = s.Int(17);
  t.acknowledged_at_ms = s.Int(18);
  t.acknowledged_by = s.Text(19);
  t.resolved_at_ms = s.Int(20);
  t.resolved_by = s.Text(21);
  t.resolution = s.Text(22);
  t.error_registered_at_ms = s.Int(23);
  t.reopen_count = static_cast<int>(s.Int(24));
  t.last_episode = s.Text(25);
  ReadClock(s, 26, &t.registration);
  ReadClock(s, 31, &t.first_response);
  ReadClock(s, 36, &t.workaround);
  r.next_due_ms = s.Int(41);
  return r;
}

absl::StatusOr<int64_t> InsertRow(sql::Db& db, const Row& r) {
  std::string placeholders;
  for (int i = 1; i < kColumnCount; ++i) Append(&placeholders, i == 1 ? "" : ",", "?", i);
  std::string cols = std::string(kColumns).substr(4);  // without "id, "
  ASSIGN_OR_RETURN(auto s,
                   db.Prepare(Cat("INSERT INTO tickets(", cols, ") VALUES (", placeholders, ")")));
  BindRow(s, r);
  RETURN_IF_ERROR(s.Run());
  return static_cast<int64_t>(sqlite3_last_insert_rowid(db.raw()));
}

absl::Status UpdateRow(sql::Db& db, const Row& r) {
  std::string sets;
  std::string cols = std::string(kColumns).substr(4);
  int i = 1;
  for (std::string_view c : Split(cols, ',')) {
    Append(&sets, i == 1 ? "" : ",", Trim(c), "=?", i);
    ++i;
  }
  ASSIGN_OR_RETURN(auto s,
                   db.Prepare(Cat("UPDATE tickets SET ", sets, " WHERE id=?", kColumnCount)));
  BindRow(s, r);
  s.Bind(kColumnCount, r.t.id);
  return s.Run();
}

absl::StatusOr<std::optional<Row>> LoadWhere(sql::Db& db, const std::string& where,
                                             const std::vector<std::string>& args,
                                             int64_t int_arg) {
  ASSIGN_OR_RETURN(auto s,
                   db.Prepare(Cat("SELECT ", kColumns, " FROM tickets WHERE ", where, " LIMIT 1")));
  int i = 1;
  for (const auto& a : args) s.Bind(i++, a);
  if (int_arg) s.Bind(i, int_arg);
  ASSIGN_OR_RETURN(auto row, s.Step());
  if (!row) return std::optional<Row>();
  return std::optional<Row>(ReadRow(s));
}

absl::StatusOr<json> LoadEvidence(sql::Db& db, int64_t ticket_id) {
  ASSIGN_OR_RETURN(auto s, db.Prepare("SELECT evidence FROM ticket_evidence WHERE ticket_id=?"));
  s.Bind(1, ticket_id);
  ASSIGN_OR_RETURN(auto row, s.Step());
  if (!row) return json(nullptr);
  json j = json::parse(s.Text(0), nullptr, false);
  return j.is_discarded() ? json(nullptr) : j;
}

absl::Status SaveEvidence(sql::Db& db, int64_t ticket_id, const json& evidence, int64_t now_ms) {
  auto s = db.Prepare(
      "INSERT INTO ticket_evidence(ticket_id, evidence, updated_at_ms) VALUES (?,?,?) "
      "ON CONFLICT(ticket_id) DO UPDATE SET evidence=excluded.evidence, "
      "updated_at_ms=excluded.updated_at_ms");
  if (!s.ok()) return s.status();
  s->Bind(1, ticket_id)
      .Bind(2, evidence.dump(-1, ' ', false, json::error_handler_t::replace))
      .Bind(3, now_ms);
  return s->Run();
}

bool VisibleTo(const User& user, const std::string& partner) {
  return user.role == Role::kSupport || user.partner == partner;
}

absl::StatusOr<std::string> PartnerOf(sql::Db& db, const std::string& store) {
  ASSIGN_OR_RETURN(auto s, db.Prepare("SELECT partner FROM stores WHERE store_id=?"));
  s.Bind(1, store);
  ASSIGN_OR_RETURN(auto row, s.Step());
  return row ? s.Text(0) : std::string();
}

// The part's last change; nullopt if the ticket never heard of it.
absl::StatusOr<std::optional<std::pair<bool, int64_t>>> Part(sql::Db& db, int64_t ticket,
                                                             const std::string& part) {
  auto s =
      db.Prepare("SELECT active, changed_at_ms FROM ticket_parts WHERE ticket_id=? AND part=?");
  if (!s.ok()) return s.status();
  s->Bind(1, ticket).Bind(2, part);
  ASSIGN_OR_RETURN(auto row, s->Step());
  if (!row) return std::optional<std::pair<bool, int64_t>>();
  return std::optional<std::pair<bool, int64_t>>(std::make_pair(s->Int(0) != 0, s->Int(1)));
}

absl::Status SetPart(sql::Db& db, int64_t ticket, const std::string& part, bool active,
                     int64_t at_ms) {
  auto s = db.Prepare(
      "INSERT INTO ticket_parts(ticket_id, part, active, changed_at_ms) VALUES (?,?,?,?) "
      "ON CONFLICT(ticket_id, part) DO UPDATE SET active=excluded.active, "
      "changed_at_ms=excluded.changed_at_ms");
  if (!s.ok()) return s.status();
  s->Bind(1, ticket).Bind(2, part).Bind(3, int64_t{active}).Bind(4, at_ms);
  return s->Run();
}

absl::StatusOr<bool> AnyPartActive(sql::Db& db, int64_t ticket) {
  ASSIGN_OR_RETURN(auto s,
                   db.Prepare("SELECT 1 FROM ticket_parts WHERE ticket_id=? AND active=1 LIMIT 1"));
  s.Bind(1, ticket);
  return s.Step();
}

absl::Status MapEpisode(sql::Db& db, const std::string& store, const std::string& episode,
                        int64_t ticket) {
  auto s = db.Prepare(
      "INSERT OR IGNORE INTO ticket_episodes(store_id, episode, ticket_id) VALUES (?,?,?)");
  if (!s.ok()) return s.status();
  s->Bind(1, store).Bind(2, episode).Bind(3, ticket);
  return s->Run();
}

absl::StatusOr<std::optional<PartSource>> SourceOf(sql::Db& db, int64_t ticket,
                                                   const std::string& part) {
  auto s = db.Prepare(
      "SELECT agent_id, kind, episode, reconciled_at_ms FROM ticket_part_sources WHERE "
      "ticket_id=? AND part=?");
  if (!s.ok()) return s.status();
  s->Bind(1, ticket).Bind(2, part);
  ASSIGN_OR_RETURN(auto row, s->Step());
  if (!row) return std::optional<PartSource>();
  return std::optional<PartSource>(PartSource{s->Text(0), s->Text(1), s->Text(2), s->Int(3)});
}

absl::Status SetSource(sql::Db& db, int64_t ticket, const std::string& part,
                       const PartSource& src) {
  if (src.agent.empty()) return absl::OkStatus();  // raised by the collector
  auto s = db.Prepare(
      "INSERT INTO ticket_part_sources(ticket_id, part, agent_id, kind, episode, "
      "reconciled_at_ms) "
      "VALUES (?,?,?,?,?,?) ON CONFLICT(ticket_id, part) DO UPDATE SET "
      "agent_id=excluded.agent_id, "
      "kind=excluded.kind, episode=excluded.episode, reconciled_at_ms=excluded.reconciled_at_ms");
  if (!s.ok()) return s.status();
  s->Bind(1, ticket).Bind(2, part).Bind(3, src.agent).Bind(4, src.kind).Bind(5, src.episode);
  s->Bind(6, src.reconciled_at_ms);
  return s->Run();
}

// Whether the collector cleared parts of `episode` on this ticket, because
// their agent no longer held it, after `detected_ms`.
absl::StatusOr<bool> ReconciledAfter(sql::Db& db, int64_t ticket, const std::string& episode,
                                     int64_t detected_ms) {
  auto s = db.Prepare(
      "SELECT 1 FROM ticket_part_sources WHERE ticket_id=? AND episode=? AND reconciled_at_ms > "
      "? LIMIT 1");
  if (!s.ok()) return s.status();
  s->Bind(1, ticket).Bind(2, episode).Bind(3, detected_ms);
  return s->Step();
}

// The recurrences of a ticket's condition so far (its "raised" entries).
absl::StatusOr<int64_t> Recurrences(sql::Db& db, int64_t ticket) {
  ASSIGN_OR_RETURN(
      auto s,
      db.Prepare("SELECT COUNT(*) FROM ticket_timeline WHERE ticket_id=? AND type='raised'"));
  s.Bind(1, ticket);
  ASSIGN_OR_RETURN(auto row, s.Step());
  return row ? s.Int(0) : 0;
}

}  // namespace tickets_internal

using namespace tickets_internal;

absl::Status InitTicketSchema(sql::Db& db) { return CreateSchema(db); }

const char* TicketStateName(TicketState s) {
  switch (s) {
    case TicketState::kOpen:
      return "open";
    case TicketState::kAcknowledged:
      return "acknowledged";
    case TicketState::kResolved:
      return "resolved";
  }
  return "open";
}

std::optional<TicketState> ParseTicketState(std::string_view s) {
  if (s == "open") return TicketState::kOpen;
  if (s == "acknowledged") return TicketState::kAcknowledged;
  if (s == "resolved") return TicketState::kResolved;
  return std::nullopt;
}

absl::Status SetPartnerTariff(sql::Db& db, const std::string& partner, const std::string& tariff,
                              int64_t now_ms) {
  auto s = db.Prepare(
      "INSERT INTO partners(partner, tariff, updated_at_ms) VALUES (?,?,?) "
      "ON CONFLICT(partner) DO UPDATE SET tariff=excluded.tariff, "
      "updated_at_ms=excluded.updated_at_ms");
  if (!s.ok()) return s.status();
  s->Bind(1, partner).Bind(2, tariff).Bind(3, now_ms);
  return s->Run();
}

absl::StatusOr<std::vector<PartnerRow>> ListPartners(sql::Db& db) {
  ASSIGN_OR_RETURN(
      auto s,
      db.Prepare("SELECT p.partner, COALESCE(t.tariff, ''), COUNT(DISTINCT s.store_id) FROM "
                 "(SELECT partner FROM stores UNION SELECT partner FROM partners) p "
                 "LEFT JOIN partners t USING (partner) LEFT JOIN stores s USING (partner) "
                 "GROUP BY p.partner ORDER BY 1"));
  std::vector<PartnerRow> out;
  while (true) {
    ASSIGN_OR_RETURN(auto row, s.Step());
    if (!row) break;
    out.push_back({s.Text(0), s.Text(1), s.Int(2)});
  }
  return out;
}

absl::StatusOr<bool> PartnerIsKnown(sql::Db& db, const std::string& partner) {
  auto s = db.Prepare(
      "SELECT EXISTS (SELECT 1 FROM stores WHERE partner=?1) OR EXISTS (SELECT 1 FROM partners "
      "WHERE partner=?1)");
  if (!s.ok()) return s.status();
  s->Bind(1, partner);
  ASSIGN_OR_RETURN(auto row, s->Step());
  return row && s->Int(0) != 0;
}

absl::StatusOr<std::vector<Ticket>> ListTickets(sql::Db& db, const User& user,
                                                const TicketQuery& q) {
  // Only the filters given become SQL, so SQLite can use the store index
  // (the stores list asks once per store) instead of walking every ticket.
  int priority = 0;
  if (q.priority == "normal") priority = 1;
  if (q.priority == "important") priority = 2;
  if (q.priority == "critical") priority = 3;
  std::string where = "id > ?1";
  if (!q.store_id.empty()) where += " AND store_id = ?2";
  if (user.role != Role::kSupport) where += " AND partner = ?3";
  if (!q.condition.empty()) where += " AND condition = ?4";
  if (q.state == "active") {
    where += " AND state != 'resolved'";
  } else if (!q.state.empty()) {
    where += " AND state = ?5";
  }
  if (priority != 0) where += " AND priority = ?6";
  auto s =
      db.Prepare(Cat("SELECT ", kColumns, " FROM tickets WHERE ", where, " ORDER BY id LIMIT ?7"));
  if (!s.ok()) return s.status();
  s->Bind(1, q.after_id)
      .Bind(2, q.store_id)
      .Bind(3, user.partner)
      .Bind(4, q.condition)
      .Bind(5, q.state);
  s->Bind(6, int64_t{priority}).Bind(7, q.limit);
  std::vector<Ticket> out;
  while (true) {
    ASSIGN_OR_RETURN(auto row, s->Step());
    if (!row) break;
    out.push_back(ReadRow(*s).t);
  }
  return out;
}

absl::StatusOr<std::optional<Ticket>> GetTicket(sql::Db& db, const User& user, int64_t id) {
  ASSIGN_OR_RETURN(auto r, LoadWhere(db, "id = ?1", {}, id));
  if (!r || !VisibleTo(user, (r)->t.partner)) return std::optional<Ticket>();
  auto evidence = LoadEvidence(db, id);
  if (!evidence.ok()) return evidence.status();
  (r)->t.evidence = std::move(*evidence);
  return std::optional<Ticket>((r)->t);
}

absl::StatusOr<std::vector<TimelineEntry>> GetTimeline(sql::Db& db, int64_t ticket_id) {
  auto s = db.Prepare(
      "SELECT id, at_ms, actor, type, text, event_id FROM ticket_timeline WHERE ticket_id=? ORDER "
      "BY id");
  if (!s.ok()) return s.status();
  s->Bind(1, ticket_id);
  std::vector<TimelineEntry> out;
  while (true) {
    ASSIGN_OR_RETURN(auto row, s->Step());
    if (!row) break;
    out.push_back({s->Int(0), s->Int(1), s->Text(2), s->Text(3), s->Text(4), s->Int(5)});
  }
  return out;
}

absl::StatusOr<std::vector<StoreRow>> ListStores(sql::Db& db, const User& user,
                                                 const std::string& store_id,
                                                 const std::string& default_tariff) {
  StoreQuery q;
  q.store_id = store_id;
  return ListStores(db, user, q, default_tariff);
}

absl::StatusOr<std::vector<StoreRow>> ListStores(sql::Db& db, const User& user, const StoreQuery& q,
                                                 const std::string& default_tariff) {
  // Only the filters given become SQL (as in ListTickets), so SQLite walks
  // the store key (or stores_by_partner) from `after` and stops at the
  // limit; each agent subquery is one lookup in agents_by_store.
  std::string where = "s.store_id > ?5";
  if (!q.store_id.empty()) where += " AND s.store_id = ?1";
  if (user.role != Role::kSupport) where += " AND s.partner = ?3";
  auto s = db.Prepare(
      Cat("SELECT s.store_id, s.partner, COALESCE(p.tariff, ?4), "
          "COALESCE((SELECT MAX(connected) FROM agents a WHERE a.store_id = s.store_id), 0), "
          "COALESCE((SELECT MAX(last_seen_ms) FROM agents a WHERE a.store_id = s.store_id), 0), "
          "COALESCE((SELECT agent_version FROM agents a WHERE a.store_id = s.store_id "
          "          ORDER BY last_seen_ms DESC LIMIT 1), ''), "
          "COALESCE((SELECT group_concat(agent_id, ' ') FROM agents a WHERE a.store_id = "
          "s.store_id), '') "
          "FROM stores s LEFT JOIN partners p USING (partner) WHERE ",
          where, " ORDER BY s.store_id LIMIT ?6"));
  if (!s.ok()) return s.status();
  s->Bind(1, q.store_id).Bind(3, user.partner).Bind(4, default_tariff).Bind(5, q.after);
  s->Bind(6, q.limit > 0 ? q.limit : int64_t{-1});
  std::vector<StoreRow> out;
  while (true) {
    ASSIGN_OR_RETURN(auto row, s->Step());
    if (!row) break;
    StoreRow r;
    r.store_id = s->Text(0);
    r.partner = s->Text(1);
    r.tariff = s->Text(2);
    r.online = s->Int(3) != 0;
    r.last_seen_ms = s->Int(4);
    r.agent_version = s->Text(5);
    const std::string agents = s->Text(6);  // Split returns views into it
    for (std::string_view a : Split(agents, ' ')) {
      if (!a.empty()) r.agent_ids.emplace_back(a);
    }
    out.push_back(std::move(r));
  }
  // Every store's current conditions in one pass over the unresolved
  // tickets (one query, not one per store); stores the user may not see are
  // not in `by_store`.
  if (out.empty()) return out;
  std::map<std::string, StoreRow*> by_store;
  for (auto& r : out) by_store[r.store_id] = &r;
  // The page's own stores (a partner's ids may interleave with others'):
  // one lookup each in tickets_one_open (store_id, ... WHERE state !=
  // 'resolved'), in chunks well within SQLite's parameter limit. Tickets
  // come in id order per chunk, and chunks go in store order, so each
  // store's tickets are in id order.
  constexpr size_t kChunk = 500;
  for (size_t from = 0; from < out.size(); from += kChunk) {
    const size_t n = std::min(kChunk, out.size() - from);
    std::string ids;
    for (size_t i = 0; i < n; ++i) Append(&ids, i ? ",?" : "?");
    auto t = db.Prepare(Cat("SELECT ", kColumns,
                            " FROM tickets WHERE state != 'resolved' AND store_id IN (", ids,
                            ") ORDER BY id"));
    if (!t.ok()) return t.status();
    for (size_t i = 0; i < n; ++i) t->Bind(static_cast<int>(i + 1), out[from + i].store_id);
    while (true) {
      ASSIGN_OR_RETURN(auto row, t->Step());
      if (!row) break;
      Ticket ticket = ReadRow(*t).t;
      if (auto it = by_store.find(ticket.store_id); it != by_store.end()) {
        it->second->open_tickets.push_back(std::move(ticket));
      }
    }
  }
  return out;
}

}  // namespace setdiag::collector
