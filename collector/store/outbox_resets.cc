#include "collector/store/outbox_resets.h"

#include <sqlite3.h>

#include <algorithm>
#include <utility>

#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"

namespace setdiag::collector {
namespace {

using json = nlohmann::json;

constexpr size_t kMaxRanges = 64;

int64_t Int(const json& j, const char* key, int64_t fallback = 0) {
  return j.contains(key) && j[key].is_number_integer() ? j[key].get<int64_t>() : fallback;
}

// Sorted, merged [a,b] ranges from a JSON [[a,b],...].
std::vector<std::pair<int64_t, int64_t>> ReadRanges(const json& j) {
  std::vector<std::pair<int64_t, int64_t>> out;
  if (!j.is_array()) return out;
  for (const auto& r : j) {
    if (r.is_array() && r.size() == 2 && r[0].is_number_integer() && r[1].is_number_integer() &&
        r[0].get<int64_t>() <= r[1].get<int64_t>()) {
      out.emplace_back(r[0].get<int64_t>(), r[1].get<int64_t>());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

absl::Status EnsureTable(sql::Db& db) {
  return db.Exec(
      "CREATE TABLE IF NOT EXISTS agent_outboxes(agent_id TEXT NOT NULL, outbox_id TEXT NOT NULL, "
      "last_committed_seq INTEGER NOT NULL, replaced_at_ms INTEGER NOT NULL, PRIMARY KEY "
      "(agent_id, outbox_id))");
}

}  // namespace

absl::Status RememberReplacedOutbox(sql::Db& db, const std::string& agent_id,
                                    const std::string& outbox_id, uint64_t last_committed,
                                    int64_t now_ms) {
  RETURN_IF_ERROR(EnsureTable(db));
  auto up = db.Prepare(
      "INSERT INTO agent_outboxes(agent_id, outbox_id, last_committed_seq, replaced_at_ms) VALUES "
      "(?,?,?,?) "
      "ON CONFLICT(agent_id, outbox_id) DO UPDATE SET "
      "last_committed_seq=excluded.last_committed_seq, "
      "replaced_at_ms=excluded.replaced_at_ms");
  if (!up.ok()) return up.status();
  return up->Bind(1, agent_id)
      .Bind(2, outbox_id)
      .Bind(3, static_cast<int64_t>(last_committed))
      .Bind(4, now_ms)
      .Run();
}

json OutboxResetGap(const std::string& agent_id, int64_t collector_last, const json& reset) {
  const int64_t prev_next = Int(reset, "previous_next_sequence");
  const json recovered = reset.contains("recovered") && reset["recovered"].is_object()
                             ? reset["recovered"]
                             : json::object();
  const int64_t recovered_count = Int(recovered, "count");
  auto recovered_ranges = ReadRanges(recovered.value("sequences", json::array()));
  const bool known_start = collector_last >= 0;
  const int64_t first = std::max<int64_t>(collector_last, 0) + 1;
  int64_t last = prev_next > 0 ? prev_next - 1 : 0;
  const bool known_end = prev_next > 0;
  // Without the old next sequence the newest recovered one is a lower bound.
  if (!known_end && !recovered_ranges.empty())
    last = std::max(last, recovered_ranges.back().second);
  json lost = json::array();
  int64_t count = 0;
  bool truncated = false;
  int64_t cursor = first;
  auto add = [&](int64_t a, int64_t b) {
    if (a > b) return;
    count += b - a + 1;
    if (lost.size() == kMaxRanges) {
      truncated = true;
      return;
    }
    lost.push_back({a, b});
  };
  for (const auto& [a, b] : recovered_ranges) {
    if (b < cursor) continue;
    add(cursor, std::min(a - 1, last));
    cursor = std::max(cursor, b + 1);
    if (cursor > last) break;
  }
  add(cursor, last);
  if (recovered.value("sequences_truncated", false)) {
    // Not every recovered range is known: count from the totals instead.
    count = std::max<int64_t>(0, last - first + 1 - recovered_count);
    truncated = true;
  }
  const std::string prev_id = reset.value("previous_outbox_id", "");
  const std::string where =
      prev_id.empty() ? std::string("its previous outbox") : Cat("outbox ", prev_id);
  const std::string range_en =
      count == 0
          ? std::string("nothing was lost")
          : Cat(count, known_end ? "" : " or more", " event(s) among sequences ", first, "..", last,
                known_end ? "" : "+", " of ", where, " never reached the collector");
  const std::string range_ru =
      count == 0 ? std::string("ничего не потеряно")
                 : Cat(count, known_end ? "" : " или больше", " событий с номерами из ", first,
                       "..", last, known_end ? "" : "+", " не дошли до коллектора");
  return json{
      {"reason", "outbox_reset"},
      {"source", "collector"},
      {"agent_id", agent_id},
      {"outbox_id", prev_id},
      {"numbering", "previous_outbox"},
      {"collector_last_committed_sequence", known_start ? collector_last : 0},
      {"collector_knew_outbox", known_start},
      {"previous_next_sequence", prev_next},
      {"previous_next_sequence_known", known_end},
      {"count", count},
      {"sequences", lost},
      {"sequences_truncated", truncated},
      {"recovered_count", recovered_count},
      {"recovered_by_severity", recovered.value("by_severity", json::object())},
      {"recovered_by_kind", recovered.value("by_kind", json::object())},
      {"reappended", Int(reset, "reappended")},
      {"unreadable_rows", Int(reset, "unreadable_rows")},
      {"summary_en",
       Cat("Agent ", agent_id, " lost its outbox (the file was corrupt): ", range_en, "; ",
           recovered_count, " event(s) were recovered from the file and sent again")},
      {"summary_ru",
       Cat("Агент ", agent_id, " потерял очередь событий (файл повреждён): ", range_ru, "; ",
           recovered_count, " событий восстановлено из файла и отправлено повторно")},
  };
}

absl::Status RecordOutboxResetGaps(sql::Db& db, const std::string& agent_id,
                                   const std::string& store_id, const std::vector<EventRow>& added,
                                   int64_t now_ms) {
  for (const auto& ev : added) {
    if (ev.kind != "agent.outbox_reset") continue;
    json reset = json::parse(ev.payload, nullptr, false);
    if (!reset.is_object()) continue;
    // What the collector had stored of the replaced outbox.
    RETURN_IF_ERROR(EnsureTable(db));
    const std::string prev_id = reset.value("previous_outbox_id", "");
    auto sel = db.Prepare(
        prev_id.empty()
            ? "SELECT last_committed_seq FROM agent_outboxes WHERE agent_id=?1 ORDER BY "
              "replaced_at_ms DESC LIMIT 1"
            : "SELECT last_committed_seq FROM agent_outboxes WHERE agent_id=?1 AND outbox_id=?2");
    if (!sel.ok()) return sel.status();
    sel->Bind(1, agent_id);
    if (!prev_id.empty()) sel->Bind(2, prev_id);
    ASSIGN_OR_RETURN(auto row, sel->Step());
    const int64_t collector_last = row ? sel->Int(0) : -1;
    sel->Reset();
    json gap = OutboxResetGap(agent_id, collector_last, reset);
    auto ins = db.Prepare(
        "INSERT OR IGNORE INTO events(agent_id, store_id, seq, kind, severity, detected_at_ms, "
        "received_at_ms, "
        "payload) VALUES (?,?,?,?,?,?,?,?)");
    if (!ins.ok()) return ins.status();
    ins->Bind(1, std::string_view(kCollectorAgentId))
        .Bind(2, store_id)
        .Bind(3, ev.id)
        .Bind(4, "setdiag.gap");
    ins->Bind(5, int64_t{3}).Bind(6, ev.detected_at_ms).Bind(7, now_ms).Bind(8, gap.dump());
    RETURN_IF_ERROR(ins->Run());
    if (db.Changes() == 0) continue;  // recorded before
    const int64_t gap_id = sqlite3_last_insert_rowid(db.raw());
    log::Warn("link", Cat("store ", store_id, ": ", gap["summary_en"].get<std::string>()));
    // The store's open tickets say so in their timeline (the ticket schema
    // belongs to tickets.cc; a collector without it has no tickets).
    auto has =
        db.QueryInt("SELECT COUNT(*) FROM sqlite_master WHERE type='table' AND name='tickets'");
    if (!has.ok()) return has.status();
    if (*has == 0) continue;
    auto tl = db.Prepare(
        "INSERT INTO ticket_timeline(ticket_id, at_ms, actor, type, text, event_id) "
        "SELECT id, ?, 'collector', 'gap', ?, ? FROM tickets WHERE store_id=? AND state != "
        "'resolved'");
    if (!tl.ok()) return tl.status();
    RETURN_IF_ERROR(tl->Bind(1, now_ms)
                        .Bind(2, gap["summary_en"].get<std::string>())
                        .Bind(3, gap_id)
                        .Bind(4, store_id)
                        .Run());
  }
  return absl::OkStatus();
}

}  // namespace setdiag::collector
