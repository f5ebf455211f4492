// The console's live stream: Server-Sent Events saying which tickets
// changed. A ticket changes when its timeline grows (opened, raised,
// acknowledged, a note, an SLA warning, a bundle arriving...), so the
// stream follows ticket_timeline's ids from where it opened, and sends an
// event for each ticket the person may see (a partner's stream never names
// another partner's ticket). Reading the database, not an in-process
// signal, means a change made through any collector reaches every console.

#include <set>
#include <thread>

#include "collector/console/pages.h"
#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"

namespace setdiag::collector::console {

namespace {

struct LiveState {
  const Backend* backend;
  User who;
  std::string session_id;
  Mutex mu;
  int64_t cursor ABSL_GUARDED_BY(mu) = -1;  // -1: not read yet
};

// The newest timeline id, or the changes after `cursor` visible to `who`.
absl::Status Poll(AdminApi& api, const User& who, int64_t* cursor, std::set<int64_t>* changed) {
  auto reader = api.Acquire();
  if (!reader.ok()) return reader.status();
  sql::Db& db = **reader;
  if (*cursor < 0) {
    ASSIGN_OR_RETURN(auto s, db.Prepare("SELECT COALESCE(MAX(id), 0) FROM ticket_timeline"));
    ASSIGN_OR_RETURN(bool row, s.Step());
    *cursor = row ? s.Int(0) : 0;
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(auto s,
                   db.Prepare("SELECT tl.id, tl.ticket_id, t.partner FROM ticket_timeline tl "
                              "JOIN tickets t ON t.id = tl.ticket_id WHERE tl.id > ? "
                              "ORDER BY tl.id LIMIT 500"));
  s.Bind(1, *cursor);
  for (;;) {
    ASSIGN_OR_RETURN(bool row, s.Step());
    if (!row) break;
    *cursor = s.Int(0);
    if (who.role == Role::kSupport || s.Text(2) == who.partner) changed->insert(s.Int(1));
  }
  return absl::OkStatus();
}

}  // namespace

HttpResponse LiveEvents(const Backend& b, const Ctx& ctx) {
  auto state = std::make_shared<LiveState>();
  state->backend = &b;
  state->who = ctx.who;
  state->session_id = ctx.session_id;
  HttpResponse res{200, ""};
  res.headers = {{"X-Content-Type-Options", "nosniff"}};
  res.events = [state](std::chrono::milliseconds wait) -> std::optional<std::string> {
    const Backend& backend = *state->backend;
    // Signed out, expired or revoked: the stream ends at the next look.
    if (backend.sessions != nullptr && !backend.sessions->Find(state->session_id))
      return std::nullopt;
    auto user = backend.api.UserById(state->who.id);
    if (user.ok() && !*user) return std::nullopt;
    std::set<int64_t> changed;
    {
      MutexLock lock(&state->mu);
      int64_t cursor = state->cursor;
      if (absl::Status st = Poll(backend.api, state->who, &cursor, &changed); !st.ok())
        log::Warn("console", Cat("live stream: ", st.ToString()));
      state->cursor = cursor;
    }
    if (changed.empty()) {
      std::this_thread::sleep_for(std::min(wait, std::chrono::milliseconds(backend.live_poll_ms)));
      return std::string();
    }
    std::string out;
    for (int64_t id : changed) Append(&out, "event: ticket\ndata: {\"id\":", id, "}\n\n");
    return out;
  };
  return res;
}

}  // namespace setdiag::collector::console
