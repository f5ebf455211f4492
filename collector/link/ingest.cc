// Ingest on an agent stream: Hello (registration, Welcome, pending bundle
// requests), event batches (committed, then acknowledged), status reports,
// and Overloaded when the commit queue is full (collector/link/session.h).

#include <nlohmann/json.hpp>

#include "collector/link/session.h"
#include "collector/store/outbox_resets.h"
#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/version.h"

namespace setdiag::collector::link_internal {
namespace {

// The status an agent gets when our storage failed: UNAVAILABLE (it retries)
// with the cause, so that its log names it (docs/protocol.md).
grpc::Status StorageFailed(std::string_view what, const absl::Status& cause) {
  std::string text(cause.message());
  if (text.size() > 300) text = Cat(text.substr(0, 300), "...");
  return grpc::Status(
      grpc::StatusCode::UNAVAILABLE,
      Cat(what, ": ", absl::StatusCodeToString(cause.code()), ": ", text, "; will retry"));
}

}  // namespace

void LinkSession::OnAuthenticated(const absl::Status& st, const std::optional<StoreGrant>& grant,
                                  Actions& a) {
  if (!st.ok()) {
    RequestFinish(StorageFailed("collector storage unavailable", st), a);
    return;
  }
  if (!grant) {
    counters_.auth_failures++;
    log::Warn("link", Cat(peer_, ": unknown or revoked store token"));
    RequestFinish(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "unknown or revoked store token"),
                  a);
    return;
  }
  grant_ = *grant;
  MaybeRead(a);
}

void LinkSession::HandleHello(Actions& a) {
  if (hello_seen_)
    return Reject(grpc::StatusCode::FAILED_PRECONDITION, "second Hello on a stream", a);
  hello_seen_ = true;
  const v1::Hello& h = in_.hello();
  if (auto err = ValidateHello(h, limits_); !err.empty()) {
    return Reject(grpc::StatusCode::INVALID_ARGUMENT, err, a);
  }
  if (h.store_id() != grant_.store_id) {
    counters_.auth_failures++;
    log::Warn("link", Cat(peer_, ": token ", grant_.token_id, " of store ", grant_.store_id,
                          " used by agent ", h.agent_id(), " claiming store ", h.store_id()));
    return Reject(grpc::StatusCode::PERMISSION_DENIED,
                  Cat("this token belongs to another store, not ", h.store_id()), a);
  }
  agent_id_ = h.agent_id();
  store_id_ = h.store_id();
  if (h.probe()) return AnswerProbe(a);
  AgentHello hello{h.agent_id(), h.store_id(), h.agent_version(), h.outbox_id()};
  const bool fresh = h.outbox_fresh();
  const uint64_t lowest =
      h.first_unacked_sequence() ? h.first_unacked_sequence() : h.next_sequence();
  backlog_end_ = h.next_sequence();
  // Without a place for bundle files this collector speaks version 1.
  const uint32_t version =
      std::min<uint32_t>(h.protocol_version(), files_ != nullptr ? kProtocolVersion : 1);
  auto last = std::make_shared<uint64_t>(0);
  auto pending = std::make_shared<std::vector<BundleRow>>();
  HeldEpisodes held;
  held.known = h.held_episodes_known();
  for (const auto& e : h.held_episodes()) held.episodes.emplace_back(e.kind(), e.episode());
  Clock& clock = clock_;
  bool queued = queue_.Submit(
      [hello, last, pending, version, &clock, connection = connection_, held = std::move(held),
       &hello_sink = hello_sink_](sql::Db& db) -> absl::Status {
        ASSIGN_OR_RETURN(auto l, RecordHello(db, hello, connection, clock.NowMs()));
        *last = l;
        // What the agent no longer holds (ticket reconciliation), in the
        // same transaction as the registration.
        if (hello_sink) {
          RETURN_IF_ERROR(hello_sink(db, hello.agent_id, hello.store_id, held));
        }
        if (version >= 2) {
          // Requests that wait for this store go out right after Welcome.
          ASSIGN_OR_RETURN(auto p, PendingBundles(db, hello.store_id));
          *pending = std::move(p);
        }
        return absl::OkStatus();
      },
      [shared = shared_, last, fresh, lowest, version, pending](absl::Status st) {
        WithSession(shared, [&](LinkSession& s, Actions& act) {
          if (st.code() == absl::StatusCode::kPermissionDenied) {
            return s.Reject(grpc::StatusCode::PERMISSION_DENIED, std::string(st.message()), act);
          }
          if (!st.ok()) {
            s.LogStorageError("registering the Hello failed", st);
            return s.RequestFinish(StorageFailed("storage unavailable", st), act);
          }
          v1::CollectorMessage m;
          auto* w = m.mutable_welcome();
          w->set_protocol_version(version);
          w->set_last_committed_sequence(*last);
          // A fresh outbox numbers from 1 again; it has sent nothing yet,
          // so moving its events above what we hold is always safe.
          if (fresh && *last > 0 && lowest <= *last) w->set_renumber_from(*last + 1);
          w->set_server_time_ms(s.clock_.NowMs());
          w->set_status_interval_s(s.limits_.status_interval_s);
          log::Info("link",
                    Cat("agent ", s.agent_id_, " of store ", s.store_id_, " connected from ",
                        s.peer_, "; resume after ", *last,
                        w->renumber_from() ? Cat(", renumber from ", w->renumber_from()) : ""));
          s.Send(std::move(m), act);
          s.version_ = version;
          if (version >= 2 && s.files_ != nullptr && !s.finish_requested_) {
            s.registry_.Add(s.store_id_, s.connection_, shared);
            s.registered_ = true;
            for (const auto& row : *pending) {
              // A flight recorder bundle's id here is not the agent's
              // (BundleIdForOffer): the agent offers it again itself
              // after this Welcome, and that offer resumes it.
              if (std::string_view(row.id).starts_with(kFlightRecorderIdPrefix)) continue;
              s.BeginBundle(row, row.id, act);
            }
          }
          s.MaybeRead(act);
        });
      },
      /*weight=*/1, CommitQueue::Kind::kHandshake);
  if (!queued) RejectOverloaded(h.next_sequence() > lowest ? h.next_sequence() - lowest : 0, a);
}

// `setdiag-agent check`: the token is good for this store (checked
// above); answer with the clock and end the stream. Nothing is stored.
void LinkSession::AnswerProbe(Actions& a) {
  v1::CollectorMessage m;
  auto* w = m.mutable_welcome();
  w->set_protocol_version(std::min<uint32_t>(in_.hello().protocol_version(), kProtocolVersion));
  w->set_server_time_ms(clock_.NowMs());
  w->set_status_interval_s(limits_.status_interval_s);
  log::Info("link", Cat("preflight check from agent ", agent_id_, " of store ", store_id_, " (",
                        peer_, "): token accepted"));
  Send(std::move(m), a);
  RequestFinish(grpc::Status::OK, a);
}

// `backlog`: the events the agent still has to send, by which its slot in
// the retry schedule is sized (collector/link/retry_schedule.h).
void LinkSession::RejectOverloaded(uint64_t backlog, Actions& a) {
  const RetrySchedule::Hint hint = retry_schedule_.Next(
      clock_.MonotonicMs(), queue_.pending_weight(), backlog, queue_.drain_rate());
  v1::CollectorMessage m;
  m.mutable_overloaded()->set_retry_after_ms(hint.retry_after_ms);
  m.mutable_overloaded()->set_retry_spread_ms(hint.spread_ms);
  m.mutable_overloaded()->set_reason("ingest queue full");
  Send(m, a);
  counters_.overloaded++;
  uint64_t suppressed = 0;
  if (registry_.errors.Allow("overloaded", clock_.MonotonicMs(), &suppressed)) {
    log::Warn(
        "link",
        Cat("ingest queue full (", queue_.pending_weight(), " events waiting, committing about ",
            static_cast<int64_t>(queue_.drain_rate()), "/s): agent ", agent_id_,
            " asked to come back in ", hint.retry_after_ms, " ms + up to ", hint.spread_ms, " ms",
            suppressed ? Cat("; ", suppressed, " more agents turned away in the last 10 s") : ""));
  }
  RequestFinish(
      grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "collector overloaded, retry later"), a);
}

void LinkSession::HandleBatch(Actions& a) {
  if (!hello_seen_ || agent_id_.empty()) {
    return Reject(grpc::StatusCode::FAILED_PRECONDITION, "the first message must be Hello", a);
  }
  const v1::EventBatch& batch = in_.batch();
  if (auto err = ValidateBatch(batch, limits_, clock_.NowMs()); !err.empty()) {
    return Reject(grpc::StatusCode::INVALID_ARGUMENT, err, a);
  }
  std::vector<IncomingEvent> events;
  events.reserve(static_cast<size_t>(batch.events_size()));
  for (const auto& e : batch.events()) {
    events.push_back(
        {e.sequence(), e.kind(), static_cast<int>(e.severity()), e.detected_at_ms(), e.payload()});
  }
  const uint64_t last_seq = events.back().sequence;
  const uint64_t first_seq = events.front().sequence;
  const size_t n = events.size();
  Clock& clock = clock_;
  IngestCounters& counters = counters_;
  bool queued = queue_.Submit(
      [agent = agent_id_, store = store_id_, events = std::move(events), &clock, &counters, n,
       failed = failed_, &sink = sink_](sql::Db& db) -> absl::Status {
        // Once a batch of this stream failed, later ones must not commit:
        // the agent's resume point would skip the failed batch.
        if (failed->load()) return absl::AbortedError("an earlier batch on this stream failed");
        std::vector<EventRow> inserted;
        const int64_t now = clock.NowMs();
        auto added = InsertEvents(db, agent, store, events, now, &inserted);
        if (!added.ok()) failed->store(true);
        if (!added.ok()) return added.status();
        // An agent.outbox_reset names what the corrupt outbox lost.
        if (auto st = RecordOutboxResetGaps(db, agent, store, inserted, now); !st.ok()) {
          failed->store(true);
          return st;
        }
        if (sink && !inserted.empty()) {
          if (auto st = sink(db, agent, store, inserted); !st.ok()) {
            failed->store(true);
            return st;
          }
        }
        counters.events_stored += static_cast<uint64_t>(*added);
        counters.events_duplicate += n - static_cast<uint64_t>(*added);
        return absl::OkStatus();
      },
      [shared = shared_, last_seq, failed = failed_](absl::Status st) {
        if (!st.ok()) failed->store(true);  // e.g. the group's COMMIT failed
        WithSession(shared, [&](LinkSession& s, Actions& act) {
          s.batches_in_flight_--;
          if (!st.ok()) {
            s.LogStorageError("storing a batch failed", st);
            return s.RequestFinish(StorageFailed("collector storage failed", st), act);
          }
          v1::CollectorMessage m;
          m.mutable_ack()->set_up_to_sequence(last_seq);
          s.Send(std::move(m), act);
          if (s.read_closed_ && s.batches_in_flight_ == 0) {
            s.RequestFinish(grpc::Status::OK, act);
          } else if (!act.finish) {
            s.MaybeRead(act);
          }
        });
      },
      n);
  if (!queued) return RejectOverloaded(backlog_end_ > first_seq ? backlog_end_ - first_seq : n, a);
  batches_in_flight_++;
  MaybeRead(a);
}

void LinkSession::HandleStatus(Actions& a) {
  if (!hello_seen_ || agent_id_.empty()) {
    return Reject(grpc::StatusCode::FAILED_PRECONDITION, "the first message must be Hello", a);
  }
  const auto& s = in_.status();
  nlohmann::json j = {{"uptime_s", s.uptime_s()},
                      {"agent_version", s.agent_version()},
                      {"outbox_depth", s.outbox_depth()},
                      {"outbox_bytes", s.outbox_bytes()},
                      {"oldest_unsent_age_s", s.oldest_unsent_age_s()},
                      {"gaps_total", s.gaps_total()},
                      {"sent_at_ms", s.sent_at_ms()}};
  Clock& clock = clock_;
  queue_.Submit([agent = agent_id_, json = j.dump(),
                 &clock](sql::Db& db) { return RecordStatus(db, agent, json, clock.NowMs()); },
                nullptr);
  MaybeRead(a);
}

}  // namespace setdiag::collector::link_internal
