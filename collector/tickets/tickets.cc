#include "collector/tickets/tickets.h"

#include <sqlite3.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>

#include "absl/time/time.h"
#include "collector/tickets/ticket_evidence.h"
#include "common/log.h"
#include "common/strings.h"

namespace setdiag::collector {
namespace {

using json = nlohmann::json;

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

void ReadClock(const sql::Stmt& s, int col, SlaClock* c) {
  c->due_ms = s.Int(col);
  c->warn_ms = s.Int(col + 1);
  c->met_at_ms = s.Int(col + 2);
  c->warned = s.Int(col + 3) != 0;
  c->breached = s.Int(col + 4) != 0;
}

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

absl::StatusOr<int64_t> InsertRow(sql::Db& db, const Row& r) {
  std::string placeholders;
  for (int i = 1; i < kColumnCount; ++i) Append(&placeholders, i == 1 ? "" : ",", "?", i);
  std::string cols = std::string(kColumns).substr(4);  // without "id, "
  auto s = db.Prepare(Cat("INSERT INTO tickets(", cols, ") VALUES (", placeholders, ")"));
  if (!s.ok()) return s.status();
  BindRow(*s, r);
  if (auto st = s->Run(); !st.ok()) return st;
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
  auto s = db.Prepare(Cat("UPDATE tickets SET ", sets, " WHERE id=?", kColumnCount));
  if (!s.ok()) return s.status();
  BindRow(*s, r);
  s->Bind(kColumnCount, r.t.id);
  return s->Run();
}

absl::StatusOr<std::optional<Row>> LoadWhere(sql::Db& db, const std::string& where,
                                             const std::vector<std::string>& args,
                                             int64_t int_arg = 0) {
  auto s = db.Prepare(Cat("SELECT ", kColumns, " FROM tickets WHERE ", where, " LIMIT 1"));
  if (!s.ok()) return s.status();
  int i = 1;
  for (const auto& a : args) s->Bind(i++, a);
  if (int_arg) s->Bind(i, int_arg);
  auto row = s->Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<Row>();
  return std::optional<Row>(ReadRow(*s));
}

absl::Status AddTimeline(sql::Db& db, int64_t ticket_id, int64_t at_ms, std::string_view actor,
                         std::string_view type, std::string_view text, int64_t event_id = 0) {
  auto s = db.Prepare(
      "INSERT INTO ticket_timeline(ticket_id, at_ms, actor, type, text, event_id) VALUES "
      "(?,?,?,?,?,?)");
  if (!s.ok()) return s.status();
  s->Bind(1, ticket_id).Bind(2, at_ms).Bind(3, actor).Bind(4, type).Bind(5, text).Bind(6, event_id);
  return s->Run();
}

absl::StatusOr<json> LoadEvidence(sql::Db& db, int64_t ticket_id) {
  auto s = db.Prepare("SELECT evidence FROM ticket_evidence WHERE ticket_id=?");
  if (!s.ok()) return s.status();
  s->Bind(1, ticket_id);
  auto row = s->Step();
  if (!row.ok()) return row.status();
  if (!*row) return json(nullptr);
  json j = json::parse(s->Text(0), nullptr, false);
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

struct Titles {
  std::string en, ru;
};

Titles TitleFor(const std::string& condition, Priority priority, const std::string& store) {
  auto t = [&](std::string_view en, std::string_view ru) {
    return Titles{Cat("Store ", store, ": ", en), Cat("Магазин ", store, ": ", ru)};
  };
  if (condition == "tills") {
    return priority == Priority::kCritical
               ? t("more than 50% of tills stopped", "остановлено более 50% касс")
               : t("a till stopped", "остановлена касса");
  }
  if (condition == "loading.halted")
    return t("goods and prices loading halted", "остановлена загрузка товаров и цен");
  if (condition == "loading.transport_halted")
    return t("transport to tills halted", "остановлен транспорт данных на кассы");
  if (condition == "loading.erp_silent")
    return t("the ERP sends no data", "ERP не присылает данные");
  if (condition == "loading.import_errors") return t("import errors", "ошибки импорта");
  if (condition == "set.server_down") return t("SET server down", "сервер SET не работает");
  if (condition == "set.db_unreachable")
    return t("SET database unreachable", "база данных SET недоступна");
  if (condition == "agent.source_failed") {
    return t("the agent cannot read part of SET's data (a query fails)",
             "агент не может прочитать часть данных SET (запрос не выполняется)");
  }
  if (condition == "set.clock_skew") {
    return t("clock or time zone mismatch: till heartbeats misread",
             "расхождение часов или часового пояса: сигналы касс читаются неверно");
  }
  if (condition == "set.shop_ambiguous") {
    return t("several shops in SET's database: set set_db.shop_number",
             "в базе SET несколько магазинов: задайте set_db.shop_number");
  }
  if (condition == "store.unreachable") {
    return t("store unreachable (agent silent)", "магазин недоступен (агент не выходит на связь)");
  }
  return t(condition, condition);
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

std::string HumanDuration(int64_t ms) {
  if (ms < 120'000) return Cat(ms / 1000, " s");
  if (ms < 2 * 3'600'000) return Cat(ms / 60'000, " min");
  return Cat(ms / 3'600'000, " h");
}

bool VisibleTo(const User& user, const std::string& partner) {
  return user.role == Role::kSupport || user.partner == partner;
}

}  // namespace

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

absl::Status InitTicketSchema(sql::Db& db) { return db.Exec(kSchema); }

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

absl::StatusOr<bool> PartnerIsKnown(sql::Db& db, const std::string& partner) {
  auto s = db.Prepare(
      "SELECT EXISTS (SELECT 1 FROM stores WHERE partner=?1) OR EXISTS (SELECT 1 FROM partners "
      "WHERE partner=?1)");
  if (!s.ok()) return s.status();
  s->Bind(1, partner);
  auto row = s->Step();
  if (!row.ok()) return row.status();
  return *row && s->Int(0) != 0;
}

// ---- reads ----

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
    auto row = s->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    out.push_back(ReadRow(*s).t);
  }
  return out;
}

absl::StatusOr<std::optional<Ticket>> GetTicket(sql::Db& db, const User& user, int64_t id) {
  auto r = LoadWhere(db, "id = ?1", {}, id);
  if (!r.ok()) return r.status();
  if (!*r || !VisibleTo(user, (*r)->t.partner)) return std::optional<Ticket>();
  auto evidence = LoadEvidence(db, id);
  if (!evidence.ok()) return evidence.status();
  (*r)->t.evidence = std::move(*evidence);
  return std::optional<Ticket>((*r)->t);
}

absl::StatusOr<std::vector<TimelineEntry>> GetTimeline(sql::Db& db, int64_t ticket_id) {
  auto s = db.Prepare(
      "SELECT id, at_ms, actor, type, text, event_id FROM ticket_timeline WHERE ticket_id=? ORDER "
      "BY id");
  if (!s.ok()) return s.status();
  s->Bind(1, ticket_id);
  std::vector<TimelineEntry> out;
  while (true) {
    auto row = s->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
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
    auto row = s->Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
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
      auto row = t->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
      Ticket ticket = ReadRow(*t).t;
      if (auto it = by_store.find(ticket.store_id); it != by_store.end()) {
        it->second->open_tickets.push_back(std::move(ticket));
      }
    }
  }
  return out;
}

namespace {
json ClockJson(const SlaClock& c) {
  if (c.due_ms == 0) return nullptr;
  return {{"due_ms", c.due_ms},       {"due", MoscowTime(c.due_ms)}, {"warn_ms", c.warn_ms},
          {"met_at_ms", c.met_at_ms}, {"warned", c.warned},          {"breached", c.breached}};
}
}  // namespace

json TicketJson(const Ticket& t) {
  return {{"id", t.id},
          {"store_id", t.store_id},
          {"partner", t.partner},
          {"tariff", t.tariff},
          {"condition", t.condition},
          {"priority", PriorityName(t.priority)},
          {"state", TicketStateName(t.state)},
          {"condition_active", t.condition_active},
          {"paged", t.paged},
          {"title_en", t.title_en},
          {"title_ru", t.title_ru},
          {"summary_en", t.summary_en},
          {"summary_ru", t.summary_ru},
          {"detected_at_ms", t.detected_at_ms},
          {"registered_at_ms", t.registered_at_ms},
          {"updated_at_ms", t.updated_at_ms},
          {"cleared_at_ms", t.cleared_at_ms},
          {"acknowledged_at_ms", t.acknowledged_at_ms},
          {"acknowledged_by", t.acknowledged_by},
          {"resolved_at_ms", t.resolved_at_ms},
          {"resolved_by", t.resolved_by},
          {"resolution", t.resolution},
          {"error_registered_at_ms", t.error_registered_at_ms},
          {"reopen_count", t.reopen_count},
          {"episode", t.last_episode},
          {"evidence", t.evidence},
          {"sla",
           {{"registration", ClockJson(t.registration)},
            {"first_response", ClockJson(t.first_response)},
            {"workaround", ClockJson(t.workaround)}}}};
}

json TimelineJson(const TimelineEntry& e) {
  json j = {
      {"id", e.id}, {"at_ms", e.at_ms}, {"actor", e.actor}, {"type", e.type}, {"text", e.text}};
  if (e.event_id) j["event_id"] = e.event_id;
  return j;
}

// ---- the engine ----

struct TicketEngine::Impl {
  TicketEngine& e;
  sql::Db& db;
  int64_t now;

  const SlaPolicy& PolicyFor(const std::string& tariff) const {
    auto it = e.policy_.tariffs.find(tariff);
    if (it != e.policy_.tariffs.end()) return it->second;
    return e.policy_.tariffs.at(e.policy_.default_tariff);
  }

  int64_t NextDue(const Row& r) const {
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

  absl::Status Save(Row& r) {
    r.next_due_ms = NextDue(r);
    return UpdateRow(db, r);
  }

  absl::StatusOr<std::string> TariffOf(const std::string& partner) {
    auto s = db.Prepare("SELECT tariff FROM partners WHERE partner=?");
    if (!s.ok()) return s.status();
    s->Bind(1, partner);
    auto row = s->Step();
    if (!row.ok()) return row.status();
    std::string tariff = *row ? s->Text(0) : e.policy_.default_tariff;
    if (!e.policy_.tariffs.contains(tariff)) {
      log::Warn("tickets", Cat("partner ", partner, " has tariff '", tariff,
                               "' with no policy; using '", e.policy_.default_tariff, "'"));
      tariff = e.policy_.default_tariff;
    }
    return tariff;
  }

  absl::StatusOr<std::string> PartnerOf(const std::string& store) {
    auto s = db.Prepare("SELECT partner FROM stores WHERE store_id=?");
    if (!s.ok()) return s.status();
    s->Bind(1, store);
    auto row = s->Step();
    if (!row.ok()) return row.status();
    return *row ? s->Text(0) : std::string();
  }

  absl::Status Notify(const Ticket& ticket, const std::string& type, const std::string& key_suffix,
                      const std::string& what_en, const std::string& what_ru) {
    if (!ticket.paged) return absl::OkStatus();
    Ticket t = ticket;
    auto evidence = LoadEvidence(db, t.id);
    if (!evidence.ok()) return evidence.status();
    t.evidence = std::move(*evidence);
    const std::string ev_ru = EvidenceText(t.evidence, true),
                      ev_en = EvidenceText(t.evidence, false);
    TicketNotice n;
    n.key = Cat("t", t.id, "-", type, key_suffix.empty() ? "" : "-", key_suffix);
    n.type = type;
    n.ticket_id = t.id;
    n.store_id = t.store_id;
    n.partner = t.partner;
    n.priority = static_cast<int>(t.priority);
    n.subject_en = Cat("#", t.id, " [", PriorityName(t.priority), "] ", what_en, ": ", t.title_en);
    n.subject_ru = Cat("#", t.id, " [", PriorityName(t.priority), "] ", what_ru, ": ", t.title_ru);
    n.text_ru = Cat(t.title_ru, "\n", t.summary_ru.empty() ? "" : t.summary_ru + "\n", ev_ru,
                    "Обнаружено: ", MoscowTime(t.detected_at_ms),
                    "\nЗарегистрировано: ", MoscowTime(t.registered_at_ms),
                    "\nПервый ответ до: ", MoscowTime(t.first_response.due_ms),
                    "\nТариф: ", t.tariff, "\n");
    n.text_en = Cat(t.title_en, "\n", t.summary_en.empty() ? "" : t.summary_en + "\n", ev_en,
                    "Detected: ", MoscowTime(t.detected_at_ms),
                    "\nRegistered: ", MoscowTime(t.registered_at_ms),
                    "\nFirst response due: ", MoscowTime(t.first_response.due_ms),
                    "\nTariff: ", t.tariff, "\n");
    n.ticket = TicketJson(t);
    n.evidence = t.evidence;
    if (auto st = EnqueueNotification(db, e.notify_, n, now); !st.ok()) return st;
    ++e.notices_;
    return absl::OkStatus();
  }

  absl::StatusOr<std::optional<Row>> FindForEvent(const std::string& store,
                                                  const std::string& condition,
                                                  const std::string& episode, int64_t detected_ms) {
    auto ep = db.Prepare("SELECT ticket_id FROM ticket_episodes WHERE store_id=? AND episode=?");
    if (!ep.ok()) return ep.status();
    ep->Bind(1, store).Bind(2, episode);
    auto row = ep->Step();
    if (!row.ok()) return row.status();
    std::optional<Row> by_episode;
    if (*row) {
      auto t = LoadWhere(db, "id = ?1", {}, ep->Int(0));
      if (!t.ok()) return t;
      by_episode = std::move(*t);
      if (by_episode && by_episode->t.state != TicketState::kResolved) return by_episode;
    }
    auto open = LoadWhere(db, "store_id = ?1 AND condition = ?2 AND state != 'resolved'",
                          {store, condition});
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

  // The part's last change; nullopt if the ticket never heard of it.
  absl::StatusOr<std::optional<std::pair<bool, int64_t>>> Part(int64_t ticket,
                                                               const std::string& part) {
    auto s =
        db.Prepare("SELECT active, changed_at_ms FROM ticket_parts WHERE ticket_id=? AND part=?");
    if (!s.ok()) return s.status();
    s->Bind(1, ticket).Bind(2, part);
    auto row = s->Step();
    if (!row.ok()) return row.status();
    if (!*row) return std::optional<std::pair<bool, int64_t>>();
    return std::optional<std::pair<bool, int64_t>>(std::make_pair(s->Int(0) != 0, s->Int(1)));
  }

  // Whether an event setting a part to `active` at `detected_ms` is already
  // reflected: the same state at or after that instant (a replay), or any
  // later change (an older event overtaken by a newer one).
  static bool Stale(const std::optional<std::pair<bool, int64_t>>& known, bool active,
                    int64_t detected_ms) {
    if (!known) return false;
    return known->second > detected_ms || (known->first == active && known->second == detected_ms);
  }

  absl::Status SetPart(int64_t ticket, const std::string& part, bool active, int64_t at_ms) {
    auto s = db.Prepare(
        "INSERT INTO ticket_parts(ticket_id, part, active, changed_at_ms) VALUES (?,?,?,?) "
        "ON CONFLICT(ticket_id, part) DO UPDATE SET active=excluded.active, "
        "changed_at_ms=excluded.changed_at_ms");
    if (!s.ok()) return s.status();
    s->Bind(1, ticket).Bind(2, part).Bind(3, int64_t{active}).Bind(4, at_ms);
    return s->Run();
  }

  absl::StatusOr<bool> AnyPartActive(int64_t ticket) {
    auto s = db.Prepare("SELECT 1 FROM ticket_parts WHERE ticket_id=? AND active=1 LIMIT 1");
    if (!s.ok()) return s.status();
    s->Bind(1, ticket);
    return s->Step();
  }

  absl::Status MapEpisode(const std::string& store, const std::string& episode, int64_t ticket) {
    auto s = db.Prepare(
        "INSERT OR IGNORE INTO ticket_episodes(store_id, episode, ticket_id) VALUES (?,?,?)");
    if (!s.ok()) return s.status();
    s->Bind(1, store).Bind(2, episode).Bind(3, ticket);
    return s->Run();
  }

  static std::string AgentOf(const std::string& actor) {
    return actor.rfind("agent ", 0) == 0 ? actor.substr(6) : std::string();
  }

  // Who raised a part, in which episode; and whether the collector cleared
  // it since because that agent no longer held it (reconciled_at_ms).
  struct Source {
    std::string agent, kind, episode;
    int64_t reconciled_at_ms = 0;
  };

  absl::StatusOr<std::optional<Source>> SourceOf(int64_t ticket, const std::string& part) {
    auto s = db.Prepare(
        "SELECT agent_id, kind, episode, reconciled_at_ms FROM ticket_part_sources WHERE "
        "ticket_id=? AND part=?");
    if (!s.ok()) return s.status();
    s->Bind(1, ticket).Bind(2, part);
    auto row = s->Step();
    if (!row.ok()) return row.status();
    if (!*row) return std::optional<Source>();
    return std::optional<Source>(Source{s->Text(0), s->Text(1), s->Text(2), s->Int(3)});
  }

  absl::Status SetSource(int64_t ticket, const std::string& part, const Source& src) {
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
  absl::StatusOr<bool> ReconciledAfter(int64_t ticket, const std::string& episode,
                                       int64_t detected_ms) {
    auto s = db.Prepare(
        "SELECT 1 FROM ticket_part_sources WHERE ticket_id=? AND episode=? AND reconciled_at_ms > "
        "? LIMIT 1");
    if (!s.ok()) return s.status();
    s->Bind(1, ticket).Bind(2, episode).Bind(3, detected_ms);
    return s->Step();
  }

  // The recurrences of a ticket's condition so far (its "raised" entries).
  absl::StatusOr<int64_t> Recurrences(int64_t ticket) {
    auto s = db.Prepare("SELECT COUNT(*) FROM ticket_timeline WHERE ticket_id=? AND type='raised'");
    if (!s.ok()) return s.status();
    s->Bind(1, ticket);
    auto row = s->Step();
    if (!row.ok()) return row.status();
    return *row ? s->Int(0) : 0;
  }

  // Retargets the first-response clock for the ticket's priority, counted
  // from `from_ms`; an already running clock is only ever brought forward.
  void TargetFirstResponse(Ticket& t, int64_t from_ms) {
    if (t.first_response.met_at_ms) return;
    SlaTarget target = FirstResponseTarget(PolicyFor(t.tariff), e.business_, t.priority, from_ms);
    if (t.first_response.due_ms == 0 || target.due_ms < t.first_response.due_ms) {
      t.first_response.due_ms = target.due_ms;
      t.first_response.warn_ms = target.warn_ms;
      t.first_response.warned = now >= target.warn_ms && t.first_response.warned;
      t.first_response.breached = false;
    }
  }

  absl::Status Raise(const std::string& actor, const std::string& store, const std::string& kind,
                     Priority priority, const json& payload, const std::string& episode,
                     int64_t detected_ms, int64_t event_id) {
    const std::string condition = ConditionOf(kind);
    const std::string part = PartOf(kind, payload);
    auto found = FindForEvent(store, condition, episode, detected_ms);
    if (!found.ok()) return found.status();
    const bool late = now - detected_ms > e.policy_.late_after_ms;
    std::string summary_en = Str(payload, "summary_en"), summary_ru = Str(payload, "summary_ru");
    const json evidence = EvidenceOf(kind, payload);
    const Source source{AgentOf(actor), kind, episode, 0};

    if (!*found) {
      auto partner = PartnerOf(store);
      if (!partner.ok()) return partner.status();
      auto tariff = TariffOf(*partner);
      if (!tariff.ok()) return tariff.status();
      Row r;
      Ticket& t = r.t;
      t.store_id = store;
      t.partner = *partner;
      t.tariff = *tariff;
      t.condition = condition;
      t.priority = priority;
      t.state = TicketState::kOpen;
      t.condition_active = true;
      t.paged = !late;
      r.late = late;
      Titles titles = TitleFor(condition, priority, store);
      t.title_en = titles.en;
      t.title_ru = titles.ru;
      t.summary_en = summary_en;
      t.summary_ru = summary_ru;
      t.detected_at_ms = detected_ms;
      t.registered_at_ms = now;
      t.updated_at_ms = now;
      t.last_episode = episode;
      const SlaPolicy& policy = PolicyFor(t.tariff);
      SlaTarget reg = RegistrationTarget(policy, e.business_, detected_ms);
      t.registration = {reg.due_ms, reg.warn_ms, now, now >= reg.warn_ms, now > reg.due_ms};
      TargetFirstResponse(t, detected_ms);
      r.next_due_ms = NextDue(r);
      auto id = InsertRow(db, r);
      if (!id.ok()) return id.status();
      t.id = *id;
      if (auto st = MapEpisode(store, episode, t.id); !st.ok()) return st;
      if (auto st = SetPart(t.id, part, true, detected_ms); !st.ok()) return st;
      if (auto st = SetSource(t.id, part, source); !st.ok()) return st;
      if (!evidence.is_null()) {
        if (auto st = SaveEvidence(db, t.id, evidence, now); !st.ok()) return st;
      }
      if (auto st =
              AddTimeline(db, t.id, now, actor, late ? "recorded_late" : "opened",
                          late ? Cat("detected ", (now - detected_ms) / 1000,
                                     " s before it arrived; paged only if it still holds after ",
                                     e.policy_.late_settle_ms / 1000, " s")
                               : Cat(PriorityName(priority), " ticket opened: ", t.title_en),
                          event_id);
          !st.ok()) {
        return st;
      }
      if (t.registration.breached) {
        if (auto st = AddTimeline(db, t.id, now, "collector", "sla_breached",
                                  Cat("registration: due ", MoscowTime(reg.due_ms), ", registered ",
                                      MoscowTime(now)));
            !st.ok()) {
          return st;
        }
      }
      log::Info("tickets", Cat("#", t.id, " opened for store ", store, ": ", condition, " (",
                               PriorityName(priority), late ? ", late: not paged yet" : "", ")"));
      return Notify(t, "opened", "", "Opened", "Открыта");
    }

    Row r = std::move(**found);
    Ticket& t = r.t;
    auto overtaken = ReconciledAfter(t.id, episode, detected_ms);
    if (!overtaken.ok()) return overtaken.status();
    if (*overtaken) {
      // Detected before its agent's Hello said it no longer held the
      // episode: from the old process's outbox, and no longer true.
      return AddTimeline(
          db, t.id, now, actor, "event",
          Cat(kind, ": already over (the agent no longer held ", episode, " when it restarted)"),
          event_id);
    }
    auto known = Part(t.id, part);
    if (!known.ok()) return known.status();
    if (Stale(*known, true, detected_ms)) {
      // A part the collector cleared because its agent no longer held it is
      // not overtaken for another episode: that one began before the Hello
      // and arrives from the agent's outbox after it.
      auto src = SourceOf(t.id, part);
      if (!src.ok()) return src.status();
      const bool other_episode = *src && (*src)->reconciled_at_ms != 0 &&
                                 (*src)->reconciled_at_ms == known->value().second &&
                                 (*src)->episode != episode;
      if (!other_episode) {
        // A replay (or an older event overtaken by a newer one): on record only.
        return AddTimeline(db, t.id, now, actor, "event", Cat(kind, ": already applied"), event_id);
      }
    }
    if (auto st = MapEpisode(store, episode, t.id); !st.ok()) return st;
    if (auto st = SetPart(t.id, part, true, detected_ms); !st.ok()) return st;
    if (auto st = SetSource(t.id, part, source); !st.ok()) return st;
    if (!evidence.is_null() && priority >= t.priority) {
      // A single till's evidence does not replace the majority's.
      if (auto st = SaveEvidence(db, t.id, evidence, now); !st.ok()) return st;
    }
    t.updated_at_ms = now;
    t.last_episode = episode;
    if (!summary_en.empty()) t.summary_en = summary_en;
    if (!summary_ru.empty()) t.summary_ru = summary_ru;

    std::vector<std::tuple<std::string, std::string, std::string, std::string>> notices;
    if (t.state == TicketState::kResolved) {
      t.state = t.acknowledged_at_ms ? TicketState::kAcknowledged : TicketState::kOpen;
      t.resolved_at_ms = 0;
      t.resolved_by.clear();
      t.resolution.clear();
      ++t.reopen_count;
      if (!late && !t.paged) {
        t.paged = true;
        r.late = false;
      }
      if (auto st = AddTimeline(db, t.id, now, actor, "reopened",
                                Cat(kind, " came back within ",
                                    HumanDuration(e.policy_.reopen_within_ms), " of resolution"),
                                event_id);
          !st.ok()) {
        return st;
      }
      notices.emplace_back("reopened", Cat(t.reopen_count), "Reopened", "Открыта повторно");
    } else if (!t.condition_active) {
      // Back before the ticket resolved: the same ticket, and the helpdesk
      // hears of it (its last word was "cleared").
      if (auto st = AddTimeline(db, t.id, now, actor, "raised",
                                Cat(kind, ": the condition holds again"), event_id);
          !st.ok()) {
        return st;
      }
      auto n = Recurrences(t.id);
      if (!n.ok()) return n.status();
      log::Info("tickets", Cat("#", t.id, " (store ", store, "): ", kind,
                               " came back before the ticket resolved (", *n, ")"));
      notices.emplace_back("recurred", Cat(*n), "Condition came back", "Условие возникло снова");
    } else {
      if (auto st = AddTimeline(db, t.id, now, actor, "event",
                                Cat(kind, " ", Str(payload, "state")), event_id);
          !st.ok()) {
        return st;
      }
    }
    t.condition_active = true;
    t.cleared_at_ms = 0;
    if (!late && !t.paged && r.late) {
      // A late ticket whose condition is confirmed by a live event: page now.
      t.paged = true;
      r.late = false;
      notices.emplace_back("opened", "", "Opened", "Открыта");
    }
    if (priority > t.priority) {
      Priority old = t.priority;
      t.priority = priority;
      Titles titles = TitleFor(condition, priority, store);
      t.title_en = titles.en;
      t.title_ru = titles.ru;
      TargetFirstResponse(t, detected_ms);
      if (auto st = AddTimeline(db, t.id, now, actor, "escalated",
                                Cat(PriorityName(old), " -> ", PriorityName(priority),
                                    "; first response due ", MoscowTime(t.first_response.due_ms)),
                                event_id);
          !st.ok()) {
        return st;
      }
      log::Info("tickets",
                Cat("#", t.id, " escalated to ", PriorityName(priority), " (store ", store, ")"));
      notices.emplace_back("escalated", PriorityName(priority), "Escalated", "Повышен приоритет");
    }
    if (auto st = Save(r); !st.ok()) return st;
    for (const auto& [type, suffix, en, ru] : notices) {
      if (auto st = Notify(t, type, suffix, en, ru); !st.ok()) return st;
    }
    return absl::OkStatus();
  }

  // Set when the collector clears a part itself because its agent no
  // longer holds it (OnHello).
  struct Reconciled {
    std::string part;  // the part to clear
    std::string why;   // the timeline text, Russian and English
  };

  absl::Status Clear(const std::string& actor, const std::string& store, const std::string& kind,
                     const json& payload, const std::string& episode, int64_t detected_ms,
                     int64_t event_id, const Reconciled* reconciled = nullptr) {
    const std::string condition = ConditionOf(kind);
    const std::string part = reconciled ? reconciled->part : PartOf(kind, payload);
    auto found = FindForEvent(store, condition, episode, detected_ms);
    if (!found.ok()) return found.status();
    if (!*found)
      return absl::OkStatus();  // nothing was opened for it (e.g. raised before tickets existed)
    Row r = std::move(**found);
    Ticket& t = r.t;
    auto known = Part(t.id, part);
    if (!known.ok()) return known.status();
    if (Stale(*known, false, detected_ms)) {
      return AddTimeline(db, t.id, now, actor, "event", Cat(kind, " cleared: already applied"),
                         event_id);
    }
    if (auto st = SetPart(t.id, part, false, detected_ms); !st.ok()) return st;
    auto still = AnyPartActive(t.id);
    if (!still.ok()) return still.status();
    t.updated_at_ms = now;
    if (*still || !t.condition_active) {
      if (reconciled) {
        if (auto st = Save(r); !st.ok()) return st;
        return AddTimeline(db, t.id, now, actor, "event", Cat(part, ": ", reconciled->why),
                           event_id);
      }
      return AddTimeline(db, t.id, now, actor, "event", Cat(kind, " cleared (", part, ")"),
                         event_id);
    }
    t.condition_active = false;
    t.cleared_at_ms = detected_ms;
    if (auto st =
            AddTimeline(db, t.id, now, actor, "cleared",
                        reconciled ? reconciled->why
                                   : Cat("the condition cleared at ", MoscowTime(detected_ms)),
                        event_id);
        !st.ok()) {
      return st;
    }
    if (!t.paged && t.state != TicketState::kResolved) {
      // Began and ended while the store was out of reach: kept for the
      // record, never paged.
      t.state = TicketState::kResolved;
      t.resolved_at_ms = now;
      t.resolved_by = "collector";
      t.resolution = "began and ended while the store was out of reach; recorded, not paged";
      if (auto st = AddTimeline(db, t.id, now, "collector", "resolved", t.resolution); !st.ok())
        return st;
      return Save(r);
    }
    if (auto st = Save(r); !st.ok()) return st;
    if (reconciled) {
      return Notify(t, "cleared", Cat(detected_ms), "Cleared while the agent restarted",
                    "Условие снято при перезапуске агента");
    }
    return Notify(t, "cleared", Cat(detected_ms), "Cleared", "Условие снято");
  }

  // OnHello with the agent's held conditions: what that agent raised and no
  // longer holds is cleared.
  absl::Status Reconcile(const std::string& agent_id, const std::string& store,
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
        auto row = s->Step();
        if (!row.ok()) return row.status();
        if (!*row) break;
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
        auto row = s->Step();
        if (!row.ok()) return row.status();
        if (*row) c.agent = AgentOf(s->Text(0));
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
      Reconciled why{
          c.part, Cat("cleared while the agent restarted: agent ", agent_id, " no longer holds ",
                      c.kind, " (episode ", c.episode, ") / снято при перезапуске агента: агент ",
                      agent_id, " больше не фиксирует ", c.kind, " (эпизод ", c.episode, ")")};
      log::Info("tickets", Cat("#", c.ticket, " (store ", store, "): agent ", agent_id,
                               " said Hello without ", c.kind, " (episode ", c.episode, ", ",
                               c.part, "): cleared while the agent restarted"));
      // Cleared now, and never before the part's last change (an agent clock
      // ahead of ours): events of this episode still in the agent's outbox
      // were detected before and are replays of what is known.
      const int64_t at = std::max(now, c.changed_at_ms + 1);
      if (auto st = Clear("collector", store, c.kind, json::object(), c.episode, at, 0, &why);
          !st.ok())
        return st;
      if (auto st = SetSource(c.ticket, c.part, Source{agent_id, c.kind, c.episode, at}); !st.ok())
        return st;
    }
    return absl::OkStatus();
  }

  absl::Status ApplyEvent(const std::string& agent_id, const std::string& store,
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

  absl::Status ClockTick(Row& r, SlaClock& c, const char* name, bool* changed) {
    Ticket& t = r.t;
    if (c.due_ms == 0 || c.met_at_ms != 0) return absl::OkStatus();
    if (!c.warned && now >= c.warn_ms && now < c.due_ms) {
      c.warned = true;
      *changed = true;
      if (auto st = AddTimeline(db, t.id, now, "collector", "sla_warning",
                                Cat(name, " due ", MoscowTime(c.due_ms)));
          !st.ok()) {
        return st;
      }
      if (auto st = Notify(t, "sla_warning", Cat(name, "-", c.due_ms), Cat(name, " due soon"),
                           Cat("срок ", name, " истекает"));
          !st.ok()) {
        return st;
      }
    }
    if (!c.breached && now >= c.due_ms) {
      c.breached = true;
      c.warned = true;
      *changed = true;
      if (auto st = AddTimeline(db, t.id, now, "collector", "sla_breached",
                                Cat(name, " was due ", MoscowTime(c.due_ms)));
          !st.ok()) {
        return st;
      }
      log::Warn("tickets", Cat("#", t.id, " (store ", t.store_id, "): ", name, " SLA breached"));
      if (auto st = Notify(t, "sla_breached", Cat(name, "-", c.due_ms), Cat(name, " SLA breached"),
                           Cat("нарушен срок ", name));
          !st.ok()) {
        return st;
      }
    }
    return absl::OkStatus();
  }

  absl::Status TickTickets() {
    auto s = db.Prepare(
        Cat("SELECT ", kColumns, " FROM tickets WHERE state != 'resolved' AND next_due_ms <= ?1"));
    if (!s.ok()) return s.status();
    s->Bind(1, now);
    std::vector<Row> rows;
    while (true) {
      auto row = s->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
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
        if (auto st = AddTimeline(db, t.id, now, "collector", "paged",
                                  "still holds after the store came back: paged");
            !st.ok()) {
          return st;
        }
        if (auto st = Notify(t, "opened", "", "Opened", "Открыта"); !st.ok()) return st;
      }
      if (t.paged) {
        if (auto st = ClockTick(r, t.first_response, "first_response", &changed); !st.ok())
          return st;
        if (auto st = ClockTick(r, t.workaround, "workaround", &changed); !st.ok()) return st;
      }
      if (t.state == TicketState::kOpen && !t.condition_active && t.cleared_at_ms &&
          now - t.cleared_at_ms >= e.policy_.auto_resolve_after_ms) {
        t.state = TicketState::kResolved;
        t.resolved_at_ms = now;
        t.resolved_by = "collector";
        t.resolution = Cat("the condition cleared and stayed away for ",
                           HumanDuration(e.policy_.auto_resolve_after_ms));
        changed = true;
        if (auto st = AddTimeline(db, t.id, now, "collector", "resolved", t.resolution); !st.ok())
          return st;
        log::Info("tickets", Cat("#", t.id, " resolved automatically (store ", t.store_id, ")"));
        if (auto st = Notify(t, "resolved", Cat(t.reopen_count), "Resolved", "Решена"); !st.ok())
          return st;
      }
      if (changed || r.next_due_ms != NextDue(r)) {
        if (changed) t.updated_at_ms = now;
        if (auto st = Save(r); !st.ok()) return st;
      }
    }
    return absl::OkStatus();
  }

  absl::Status TickStores() {
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
      auto row = s->Step();
      if (!row.ok()) return row.status();
      if (!*row) break;
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
        auto seen = db.Prepare("SELECT 1 FROM ticket_episodes WHERE store_id=? AND episode=?");
        if (!seen.ok()) return seen.status();
        seen->Bind(1, store).Bind(2, episode);
        auto had = seen->Step();
        if (!had.ok()) return had.status();
        if (*had) continue;  // this silence already had its ticket
        json payload = {
            {"summary_en",
             Cat("No agent of the store has been heard from since ", MoscowTime(last_seen))},
            {"summary_ru", Cat("Агент магазина не выходил на связь с ", MoscowTime(last_seen))}};
        // Detected by the collector when the threshold passed, so never "late".
        const int64_t detected =
            std::max(last_seen, e.started_at_ms_) + e.policy_.unreachable_after_ms;
        if (auto st = Raise("collector", store, "store.unreachable", Priority::kImportant, payload,
                            episode, std::min(detected, now), 0);
            !st.ok()) {
          return st;
        }
      } else if (!silent && *open) {
        if (auto st = Clear("collector", store, "store.unreachable", json::object(),
                            (*open)->t.last_episode, now, 0);
            !st.ok()) {
          return st;
        }
      }
    }
    return absl::OkStatus();
  }
};

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
    if (auto st = impl.ApplyEvent(agent_id, store_id, ev); !st.ok()) return st;
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
  if (auto st = impl.TickStores(); !st.ok()) return st;
  return impl.TickTickets();
}

absl::StatusOr<Ticket> TicketEngine::Act(sql::Db& db, const User& user, const ActionRequest& req,
                                         int64_t now_ms) {
  Impl impl{*this, db, now_ms};
  auto found = LoadWhere(db, "id = ?1", {}, req.ticket_id);
  if (!found.ok()) return found.status();
  if (!*found || !VisibleTo(user, (*found)->t.partner)) {
    return absl::NotFoundError(Cat("no ticket ", req.ticket_id, " visible to you"));
  }
  Row r = std::move(**found);
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
      if (auto st = timeline("acknowledged", req.text); !st.ok()) return st;
      break;
    }
    case TicketAction::kNote:
      if (req.text.empty()) return absl::InvalidArgumentError("a note needs 'text'");
      if (auto st = timeline("note", req.text); !st.ok()) return st;
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
      if (auto st =
              timeline("error", Cat(req.text, " (workaround due ", MoscowTime(target.due_ms), ")"));
          !st.ok()) {
        return st;
      }
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
      if (auto st = timeline("workaround", req.text); !st.ok()) return st;
      break;
    case TicketAction::kResolve:
      if (resolved)
        return absl::FailedPreconditionError(Cat("ticket ", t.id, " is already resolved"));
      respond();
      t.state = TicketState::kResolved;
      t.resolved_at_ms = now_ms;
      t.resolved_by = user.name;
      t.resolution = req.text;
      if (auto st = timeline("resolved", req.text); !st.ok()) return st;
      break;
  }
  t.updated_at_ms = now_ms;
  if (auto st = impl.Save(r); !st.ok()) return st;
  if (req.action == TicketAction::kResolve) {
    if (auto st = impl.Notify(t, "resolved", Cat(t.reopen_count), "Resolved", "Решена"); !st.ok())
      return st;
  }
  return t;
}

}  // namespace setdiag::collector
