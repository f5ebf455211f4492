#include "collector/link/link_service.h"

#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>

#include "collector/store/outbox_resets.h"
#include "collector/store/storage.h"
#include "common/log.h"
#include "common/log_throttle.h"
#include "common/strings.h"
#include "common/version.h"

namespace setdiag::collector {

namespace v1 = ::setdiag::v1;

namespace {

std::string CheckId(std::string_view what, std::string_view id, size_t max) {
  if (id.empty()) return Cat(what, " is required");
  if (id.size() > max) return Cat(what, " is longer than ", max, " bytes");
  if (!IsValidIdentifier(id, max))
    return Cat(what, " may contain only letters, digits, '-', '_' and '.'");
  return {};
}

// The status an agent gets when our storage failed: UNAVAILABLE (it retries)
// with the cause, so that its log names it (docs/protocol.md).
grpc::Status StorageFailed(std::string_view what, const absl::Status& cause) {
  std::string text(cause.message());
  if (text.size() > 300) text = Cat(text.substr(0, 300), "...");
  return grpc::Status(
      grpc::StatusCode::UNAVAILABLE,
      Cat(what, ": ", absl::StatusCodeToString(cause.code()), ": ", text, "; will retry"));
}

std::string BearerToken(const grpc::CallbackServerContext* ctx) {
  const auto& md = ctx->client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return {};
  std::string_view v(it->second.data(), it->second.size());
  constexpr std::string_view kPrefix = "Bearer ";
  if (!v.starts_with(kPrefix)) return {};
  return std::string(v.substr(kPrefix.size()));
}

}  // namespace

std::string ValidateHello(const v1::Hello& hello, const IngestLimits& limits) {
  if (hello.protocol_version() == 0) return "hello.protocol_version is required";
  if (auto e = CheckId("hello.store_id", hello.store_id(), limits.max_id_bytes); !e.empty())
    return e;
  if (auto e = CheckId("hello.agent_id", hello.agent_id(), limits.max_id_bytes); !e.empty())
    return e;
  if (hello.agent_version().size() > limits.max_id_bytes) return "hello.agent_version is too long";
  if (hello.outbox_id().size() > limits.max_id_bytes) return "hello.outbox_id is too long";
  // next_sequence may be one past the highest storable sequence.
  if (hello.first_unacked_sequence() > kMaxSequence) {
    return Cat("hello.first_unacked_sequence ", hello.first_unacked_sequence(),
               " is above the highest sequence ", kMaxSequence, " the collector can store");
  }
  if (hello.next_sequence() > kMaxSequence + 1) {
    return Cat("hello.next_sequence ", hello.next_sequence(), " is above ", kMaxSequence + 1,
               ", one past the highest sequence the collector can store");
  }
  if (static_cast<size_t>(hello.held_episodes_size()) > kMaxHeldEpisodes) {
    return Cat("hello.held_episodes has ", hello.held_episodes_size(), " entries; the limit is ",
               kMaxHeldEpisodes);
  }
  for (int i = 0; i < hello.held_episodes_size(); ++i) {
    const auto& held = hello.held_episodes(i);
    if (!IsValidIdentifier(held.kind(), limits.max_kind_bytes)) {
      return Cat("hello.held_episodes[", i, "].kind must be 1..", limits.max_kind_bytes,
                 " characters of [A-Za-z0-9._-]");
    }
    if (held.episode().empty() || held.episode().size() > kMaxEpisodeBytes) {
      return Cat("hello.held_episodes[", i, "].episode must be 1..", kMaxEpisodeBytes, " bytes");
    }
  }
  return {};
}

std::string ValidateBatch(const v1::EventBatch& batch, const IngestLimits& limits, int64_t now_ms) {
  if (batch.events_size() == 0) return "batch has no events";
  if (static_cast<size_t>(batch.events_size()) > limits.max_events_per_batch) {
    return Cat("batch has ", batch.events_size(), " events; the limit is ",
               limits.max_events_per_batch);
  }
  uint64_t prev = 0;
  for (int i = 0; i < batch.events_size(); ++i) {
    const auto& e = batch.events(i);
    std::string where = Cat("event ", i, " (sequence ", e.sequence(), "): ");
    if (e.sequence() == 0) return Cat(where, "sequence is required");
    if (e.sequence() <= prev) return Cat(where, "sequences must strictly increase");
    if (e.sequence() > kMaxSequence) {
      return Cat(where, "sequence is above ", kMaxSequence,
                 ", the highest the collector can store");
    }
    prev = e.sequence();
    if (!IsValidIdentifier(e.kind(), limits.max_kind_bytes)) {
      return Cat(where, "kind must be 1..", limits.max_kind_bytes, " characters of [A-Za-z0-9._-]");
    }
    if (e.severity() < v1::SEVERITY_INFO || e.severity() > v1::SEVERITY_CRITICAL) {
      return Cat(where, "severity must be INFO..CRITICAL");
    }
    if (e.detected_at_ms() < limits.min_detected_at_ms) {
      return Cat(where, "detected_at_ms ", e.detected_at_ms(),
                 " is before 2020: the store clock is wrong");
    }
    if (e.detected_at_ms() > now_ms + limits.max_future_skew_ms) {
      return Cat(where, "detected_at_ms is more than ", limits.max_future_skew_ms / 3'600'000,
                 " h in the future");
    }
    if (e.payload().size() > limits.max_payload_bytes) {
      return Cat(where, "payload is ", e.payload().size(), " bytes; the limit is ",
                 limits.max_payload_bytes);
    }
    auto json = nlohmann::json::parse(e.payload(), nullptr, /*allow_exceptions=*/false);
    if (json.is_discarded() || !json.is_object()) {
      return Cat(where, "payload must be a UTF-8 JSON object");
    }
  }
  return {};
}

namespace {

class LinkSession;
struct SessionShared {
  std::mutex mu;
  LinkSession* session = nullptr;  // null once OnDone ran
};

bool IsHex64(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

struct LinkService::Registry {
  // Repeated identical errors (every agent failing on the same broken
  // database) are logged once per 10 s with a count.
  LogThrottle errors{10'000};
  std::mutex mu;
  // store -> connection -> the stream; only streams that speak version 2.
  std::map<std::string, std::map<int64_t, std::shared_ptr<SessionShared>>> by_store;
  // Every open stream, for the timeouts.
  std::map<int64_t, std::weak_ptr<SessionShared>> open;

  void Opened(int64_t connection, const std::shared_ptr<SessionShared>& shared) {
    std::lock_guard lock(mu);
    open[connection] = shared;
  }
  void Closed(int64_t connection) {
    std::lock_guard lock(mu);
    open.erase(connection);
  }
  std::vector<std::shared_ptr<SessionShared>> AllOpen() {
    std::lock_guard lock(mu);
    std::vector<std::shared_ptr<SessionShared>> out;
    for (const auto& [c, weak] : open) {
      if (auto s = weak.lock()) out.push_back(std::move(s));
    }
    return out;
  }

  void Add(const std::string& store, int64_t connection, std::shared_ptr<SessionShared> shared) {
    std::lock_guard lock(mu);
    by_store[store][connection] = std::move(shared);
  }
  void Remove(const std::string& store, int64_t connection) {
    std::lock_guard lock(mu);
    auto it = by_store.find(store);
    if (it == by_store.end()) return;
    it->second.erase(connection);
    if (it->second.empty()) by_store.erase(it);
  }
  std::shared_ptr<SessionShared> Newest(const std::string& store) {
    std::lock_guard lock(mu);
    auto it = by_store.find(store);
    if (it == by_store.end() || it->second.empty()) return nullptr;
    return it->second.rbegin()->second;
  }
};

namespace {

// One agent stream. All fields are guarded by shared_->mu. Reactor API calls
// (StartRead/StartWrite/Finish) are decided under the lock and made outside
// it, because gRPC may run reactions inline on the calling thread. Finish is
// deferred while a write is outstanding or another thread is about to call
// the API, so nothing touches the reactor after OnDone.
class LinkSession final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  using Shared = SessionShared;

  LinkSession(grpc::CallbackServerContext* ctx, CommitQueue& queue, Clock& clock,
              const IngestLimits& limits, IngestCounters& counters, int64_t connection,
              const LinkService::EventSink& sink, LinkService::Registry& registry,
              BundleFiles* bundles, const BundleLinkLimits& bundle_limits,
              const LinkService::HelloSink& hello_sink, RetrySchedule& retry_schedule)
      : queue_(queue),
        clock_(clock),
        limits_(limits),
        sink_(sink),
        hello_sink_(hello_sink),
        counters_(counters),
        registry_(registry),
        files_(bundles),
        bundle_limits_(bundle_limits),
        retry_schedule_(retry_schedule),
        shared_(std::make_shared<Shared>()),
        ctx_(ctx),
        peer_(ctx->peer()),
        connection_(connection) {
    shared_->session = this;
    counters_.streams_open++;
    opened_ms_ = clock_.MonotonicMs();
    registry_.Opened(connection_, shared_);
    std::string token = BearerToken(ctx);
    if (token.empty()) {
      counters_.auth_failures++;
      log::Warn("link", Cat(peer_, ": no bearer token"));
      finished_ = true;
      Finish(grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                          "missing 'authorization: Bearer <store token>' metadata"));
      return;
    }
    auto grant = std::make_shared<std::optional<StoreGrant>>();
    bool queued = queue_.Submit(
        [token, grant](sql::Db& db) -> absl::Status {
          auto g = LookupStoreToken(db, token);
          if (!g.ok()) return g.status();
          *grant = *g;
          return absl::OkStatus();
        },
        [shared = shared_, grant](absl::Status st) {
          WithSession(shared,
                      [&](LinkSession& s, Actions& a) { s.OnAuthenticated(st, *grant, a); });
        },
        // Bounded like events (a flood of bad connects cannot grow the
        // queue), but in the handshake reserve: an agent that finds the
        // queue full still gets to say Hello and hear when to come back.
        /*weight=*/1, CommitQueue::Kind::kHandshake);
    if (!queued) {
      finished_ = true;
      Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          "collector overloaded or stopping, retry later"));
    }
  }

  void OnReadDone(bool ok) override {
    WithSession(shared_, [&](LinkSession& s, Actions& a) { s.HandleRead(ok, a); });
  }

  void OnWriteDone(bool ok) override {
    WithSession(shared_, [&](LinkSession& s, Actions& a) {
      s.out_.pop_front();
      s.writing_ = false;
      if (!ok) {
        s.RequestFinish(grpc::Status(grpc::StatusCode::CANCELLED, "agent went away"), a);
        return;
      }
      s.PumpWrites(a);
      if (!a.finish) s.MaybeRead(a);  // below max_queued_replies again
    });
  }

  void OnDone() override {
    std::string agent_id;
    bool registered;
    {
      std::lock_guard lock(shared_->mu);
      shared_->session = nullptr;
      agent_id = agent_id_;
      registered = registered_;
    }
    if (registered) registry_.Remove(store_id_, connection_);
    registry_.Closed(connection_);
    counters_.streams_open--;
    if (!agent_id.empty()) {
      Clock& clock = clock_;
      queue_.Submit(
          [agent_id, &clock, connection = connection_](sql::Db& db) {
            return RecordDisconnect(db, agent_id, connection, clock.NowMs());
          },
          nullptr);
      log::Info("link", Cat("agent ", agent_id, " (store ", store_id_, ") disconnected"));
    }
    delete this;
  }

  // A committed request for this stream's store (LinkService::DispatchBundle).
  static void Dispatch(const std::shared_ptr<Shared>& shared, const BundleRow& row) {
    WithSession(shared, [&](LinkSession& s, Actions& a) { s.BeginBundle(row, row.id, a); });
  }

  // LinkService's sweeper, about once a second.
  static void CheckTimeouts(const std::shared_ptr<Shared>& shared, int64_t now_ms) {
    WithSession(shared, [&](LinkSession& s, Actions& a) { s.TimeOut(now_ms, a); });
  }

 private:
  // What to call on the reactor once the lock is released.
  struct Actions {
    bool read = false;
    grpc::ByteBuffer* write = nullptr;
    bool finish = false;
    grpc::Status status;
    bool cancel = false;  // TryCancel: the agent stopped reading our writes
  };

  // Runs `fn` on the live session under its lock, then performs the reactor
  // calls it decided on. Safe to call from any thread, also after OnDone.
  template <typename Fn>
  static void WithSession(const std::shared_ptr<Shared>& shared, Fn&& fn) {
    Actions a;
    LinkSession* s;
    {
      std::lock_guard lock(shared->mu);
      s = shared->session;
      if (s == nullptr || s->finished_) return;
      fn(*s, a);
      if (a.finish) {
        s->finished_ = true;
      } else if (a.read || a.write || a.cancel) {
        s->api_calls_++;
      } else {
        return;
      }
    }
    if (a.finish) {
      s->Finish(a.status);  // the last touch: OnDone may follow at once
      return;
    }
    if (a.read) s->StartRead(&s->in_buf_);
    if (a.write) s->StartWrite(a.write);
    if (a.cancel) s->ctx_->TryCancel();
    Actions after;
    {
      std::lock_guard lock(shared->mu);
      s->api_calls_--;
      if (s->finish_requested_ && !s->finished_ && !s->writing_ && s->api_calls_ == 0) {
        s->finished_ = true;
        after.finish = true;
        after.status = s->finish_status_;
      }
    }
    if (after.finish) s->Finish(after.status);
  }

  void RequestFinish(grpc::Status status, Actions& a) {
    if (!finish_requested_) {
      finish_requested_ = true;
      finish_status_ = std::move(status);
    }
    if (!writing_ && api_calls_ == 0) {
      a.finish = true;
      a.status = finish_status_;
      a.read = false;
      a.write = nullptr;
    }
  }

  void LogStorageError(std::string_view what, const absl::Status& st) {
    uint64_t suppressed = 0;
    if (!registry_.errors.Allow(Cat(what, st.ToString()), clock_.MonotonicMs(), &suppressed))
      return;
    log::Error(
        "link",
        Cat("agent ", agent_id_, ": ", what, ": ", st.ToString(),
            suppressed ? Cat(" (and ", suppressed, " times the same in the last 10 s)") : ""));
  }

  void Reject(grpc::StatusCode code, const std::string& why, Actions& a) {
    counters_.frames_rejected++;
    log::Warn("link",
              Cat(peer_, agent_id_.empty() ? "" : Cat(" agent ", agent_id_), ": rejected: ", why));
    // Acks already queued still go out (they are true); nothing after them.
    RequestFinish(grpc::Status(code, why), a);
  }

  void Send(const v1::CollectorMessage& msg, Actions& a) {
    if (finish_requested_) return;
    grpc::ByteBuffer buf;
    bool own = false;
    if (!grpc::SerializationTraits<v1::CollectorMessage>::Serialize(msg, &buf, &own).ok()) {
      return RequestFinish(grpc::Status(grpc::StatusCode::INTERNAL, "cannot encode a reply"), a);
    }
    out_.push_back(std::move(buf));
    PumpWrites(a);
  }

  void PumpWrites(Actions& a) {
    if (!writing_ && !out_.empty()) {
      writing_ = true;
      write_started_ms_ = clock_.MonotonicMs();
      a.write = &out_.front();
    } else if (!writing_ && finish_requested_ && api_calls_ == 0) {
      a.finish = true;
      a.status = finish_status_;
    }
  }

  void MaybeRead(Actions& a) {
    if (!reading_ && !read_closed_ && !finish_requested_ &&
        batches_in_flight_ < limits_.max_batches_in_flight &&
        bundle_bytes_in_flight_ < bundle_limits_.max_bytes_in_flight &&
        out_.size() < limits_.max_queued_replies) {
      reading_ = true;
      read_started_ms_ = clock_.MonotonicMs();
      a.read = true;
    }
  }

  void TimeOut(int64_t now_ms, Actions& a) {
    if (finish_requested_) return;
    if (!hello_seen_) {
      if (now_ms - opened_ms_ < limits_.hello_timeout_ms) return;
      counters_.frames_rejected++;
      log::Warn("link", Cat(peer_, ": no Hello within ", Seconds(limits_.hello_timeout_ms),
                            " s; closing the stream"));
      return RequestFinish(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                                        Cat("no Hello within ", Seconds(limits_.hello_timeout_ms),
                                            " s of connecting")),
                           a);
    }
    // An agent that does not read what we send: our write never completes,
    // so Finish would wait for it forever; the call is cancelled instead.
    if (writing_ && now_ms - write_started_ms_ >= limits_.IdleTimeoutMs()) {
      log::Warn("link", Cat("agent ", agent_id_, " (store ", store_id_,
                            "): has not read what the collector sent for ",
                            Seconds(limits_.IdleTimeoutMs()), " s (", out_.size(),
                            " replies queued); closing the stream"));
      finish_requested_ = true;
      a.cancel = true;
      return;
    }
    // Only while we wait for the agent: a stream we stopped reading
    // (batches or bundle data still being stored) is not idle.
    if (!reading_ || now_ms - read_started_ms_ < limits_.IdleTimeoutMs()) return;
    log::Warn("link", Cat("agent ", agent_id_, " (store ", store_id_, "): nothing received for ",
                          Seconds(limits_.IdleTimeoutMs()), " s; closing the stream"));
    RequestFinish(
        grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                     Cat("nothing received for ", Seconds(limits_.IdleTimeoutMs()),
                         " s (an agent sends a status every ", limits_.status_interval_s, " s)")),
        a);
  }

  static std::string Seconds(int64_t ms) {
    return ms % 1000 == 0 ? Cat(ms / 1000) : Cat(ms / 1000, ".", (ms % 1000) / 100);
  }

  void OnAuthenticated(const absl::Status& st, const std::optional<StoreGrant>& grant, Actions& a) {
    if (!st.ok()) {
      RequestFinish(StorageFailed("collector storage unavailable", st), a);
      return;
    }
    if (!grant) {
      counters_.auth_failures++;
      log::Warn("link", Cat(peer_, ": unknown or revoked store token"));
      RequestFinish(
          grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "unknown or revoked store token"), a);
      return;
    }
    grant_ = *grant;
    MaybeRead(a);
  }

  void HandleRead(bool ok, Actions& a) {
    reading_ = false;
    if (!ok) {
      read_closed_ = true;
      if (batches_in_flight_ == 0) RequestFinish(grpc::Status::OK, a);
      return;
    }
    in_.Clear();
    grpc::Status parsed = grpc::SerializationTraits<v1::AgentMessage>::Deserialize(&in_buf_, &in_);
    if (!parsed.ok()) {
      return Reject(
          grpc::StatusCode::INVALID_ARGUMENT,
          "malformed frame: not a setdiag.v1.AgentMessage (" + parsed.error_message() + ")", a);
    }
    switch (in_.body_case()) {
      case v1::AgentMessage::kHello:
        return HandleHello(a);
      case v1::AgentMessage::kBatch:
        return HandleBatch(a);
      case v1::AgentMessage::kStatus:
        return HandleStatus(a);
      case v1::AgentMessage::kPong:
        return MaybeRead(a);
      case v1::AgentMessage::kBundleOffer:
        return HandleBundleOffer(a);
      case v1::AgentMessage::kBundleChunk:
        return HandleBundleChunk(a);
      case v1::AgentMessage::kBundleFailed:
        return HandleBundleFailed(a);
      case v1::AgentMessage::BODY_NOT_SET:
        return Reject(grpc::StatusCode::INVALID_ARGUMENT, "empty message (no body set)", a);
    }
  }

  void HandleHello(Actions& a) {
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
          auto l = RecordHello(db, hello, connection, clock.NowMs());
          if (!l.ok()) return l.status();
          *last = *l;
          // What the agent no longer holds (ticket reconciliation), in the
          // same transaction as the registration.
          if (hello_sink) {
            if (auto st = hello_sink(db, hello.agent_id, hello.store_id, held); !st.ok()) return st;
          }
          if (version >= 2) {
            // Requests that wait for this store go out right after Welcome.
            auto p = PendingBundles(db, hello.store_id);
            if (!p.ok()) return p.status();
            *pending = std::move(*p);
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
  void AnswerProbe(Actions& a) {
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
  void RejectOverloaded(uint64_t backlog, Actions& a) {
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
              suppressed ? Cat("; ", suppressed, " more agents turned away in the last 10 s")
                         : ""));
    }
    RequestFinish(
        grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "collector overloaded, retry later"), a);
  }

  void HandleBatch(Actions& a) {
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
      events.push_back({e.sequence(), e.kind(), static_cast<int>(e.severity()), e.detected_at_ms(),
                        e.payload()});
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
    if (!queued)
      return RejectOverloaded(backlog_end_ > first_seq ? backlog_end_ - first_seq : n, a);
    batches_in_flight_++;
    MaybeRead(a);
  }

  // ---- bundles (protocol version 2) ----

  // bundles_ is keyed by the collector's id (BundleIdForOffer), as are the
  // rows, the files and the logs; the agent's own id is only for what is
  // sent to it.
  struct BundleEntry {
    std::string wire_id;  // the agent's request_id
    std::string sha256;   // of the file the held bytes belong to; empty: none yet
    uint64_t size = 0;
    int64_t window_ms = 0;
    bool exclude_logs = false;
    std::string reason;
    std::string manifest;               // from the last chunk
    uint64_t last_resync = UINT64_MAX;  // held size a resync was sent for
    bool announced = false;             // MarkBundleTransferring submitted for this sha
    bool finishing = false;
  };

  // A request (new, pending at Hello, or the answer to an offer) goes out
  // with the offset held on disk, which only the files thread knows.
  // `wire_id` is the agent's id of the row.
  void BeginBundle(const BundleRow& row, const std::string& wire_id, Actions& a,
                   bool reset = false) {
    if (finish_requested_ || files_ == nullptr) return;
    BundleEntry& e = bundles_[row.id];
    e.wire_id = wire_id;
    if (e.sha256 != row.sha256) e.announced = false;
    e.sha256 = row.sha256;
    e.size = row.size;
    e.window_ms = row.window_ms;
    e.exclude_logs = row.exclude_logs;
    e.reason = row.origin == "request" ? Cat("requested by ", row.requested_by,
                                             row.reason.empty() ? "" : ": ", row.reason)
                                       : row.reason;
    e.finishing = false;
    e.last_resync = UINT64_MAX;
    if (reset) files_->Reset(row.id);
    files_->Held(row.id, [shared = shared_, id = row.id](uint64_t held) {
      WithSession(shared,
                  [&](LinkSession& s, Actions& act) { s.SendBundleRequest(id, held, act); });
    });
    if (row.state == "requested") {
      Clock& clock = clock_;
      queue_.Submit(
          [id = row.id, &clock](sql::Db& db) { return MarkBundleDelivered(db, id, clock.NowMs()); },
          nullptr);
    }
    (void)a;
  }

  void SendBundleRequest(const std::string& id, uint64_t held, Actions& a) {
    auto it = bundles_.find(id);
    if (it == bundles_.end()) return;
    const BundleEntry& e = it->second;
    v1::CollectorMessage m;
    auto* r = m.mutable_bundle_request();
    r->set_request_id(e.wire_id);
    r->set_resume_offset(held);
    if (held > 0) r->set_sha256(e.sha256);
    r->set_window_ms(e.window_ms);
    r->set_exclude_logs(e.exclude_logs);
    r->set_reason(e.reason);
    log::Info("link", Cat("agent ", agent_id_, ": bundle ", id,
                          e.wire_id != id ? Cat(" (the agent's ", e.wire_id, ")") : "",
                          " requested", held > 0 ? Cat(", resume_offset ", held) : ""));
    Send(m, a);
  }

  // `wire_id`: the agent's request_id.
  void SendBundleAck(const std::string& wire_id, uint64_t held, bool complete, Actions& a) {
    v1::CollectorMessage m;
    auto* ack = m.mutable_bundle_ack();
    ack->set_request_id(wire_id);
    ack->set_received_up_to(held);
    ack->set_complete(complete);
    ack->set_cancelled(!complete);
    Send(m, a);
  }

  bool CheckBundlePreconditions(Actions& a) {
    if (!hello_seen_ || agent_id_.empty()) {
      Reject(grpc::StatusCode::FAILED_PRECONDITION, "the first message must be Hello", a);
      return false;
    }
    if (version_ < 2 || files_ == nullptr) {
      Reject(grpc::StatusCode::FAILED_PRECONDITION, "bundle messages need protocol version 2", a);
      return false;
    }
    return true;
  }

  void HandleBundleOffer(Actions& a) {
    if (!CheckBundlePreconditions(a)) return;
    const v1::BundleOffer& o = in_.bundle_offer();
    if (!IsValidIdentifier(o.request_id(), limits_.max_id_bytes)) {
      return Reject(grpc::StatusCode::INVALID_ARGUMENT,
                    "bundle_offer.request_id must be 1..128 of [A-Za-z0-9._-]", a);
    }
    if (!IsHex64(o.sha256())) {
      return Reject(grpc::StatusCode::INVALID_ARGUMENT,
                    "bundle_offer.sha256 must be 64 lowercase hex digits", a);
    }
    if (o.trigger() != "request" && o.trigger() != "flight_recorder") {
      return Reject(grpc::StatusCode::INVALID_ARGUMENT,
                    "bundle_offer.trigger must be request or flight_recorder", a);
    }
    if (o.episode().size() > 256 ||
        (!o.event_kind().empty() && !IsValidIdentifier(o.event_kind(), limits_.max_kind_bytes))) {
      return Reject(grpc::StatusCode::INVALID_ARGUMENT,
                    "bundle_offer.episode or event_kind is malformed", a);
    }
    IncomingOffer offer{o.request_id(), o.sha256(),     o.trigger(),
                        o.episode(),    o.event_kind(), o.size()};
    auto decision = std::make_shared<OfferDecision>();
    Clock& clock = clock_;
    const uint64_t max_bytes = bundle_limits_.max_bundle_bytes;
    bool queued = queue_.Submit(
        [store = store_id_, offer, decision, max_bytes, &clock](sql::Db& db) -> absl::Status {
          auto d = DecideOffer(db, store, offer, max_bytes, clock.NowMs());
          if (!d.ok()) return d.status();
          *decision = std::move(*d);
          return absl::OkStatus();
        },
        [shared = shared_, decision, wire_id = offer.request_id,
         id = BundleIdForOffer(store_id_, offer.request_id)](absl::Status st) {
          WithSession(shared, [&](LinkSession& s, Actions& act) {
            if (!st.ok()) {
              log::Error("link",
                         Cat("agent ", s.agent_id_, ": bundle offer ", id, ": ", st.ToString()));
              return;  // the agent offers it again at its next connect
            }
            switch (decision->kind) {
              case OfferDecision::kRequest:
                return s.BeginBundle(decision->row, wire_id, act, decision->reset);
              case OfferDecision::kComplete:
                return s.SendBundleAck(wire_id, decision->row.size, true, act);
              case OfferDecision::kCancel:
                log::Info("link", Cat("agent ", s.agent_id_, ": bundle ", id,
                                      " not wanted: ", decision->why));
                return s.SendBundleAck(wire_id, 0, false, act);
            }
          });
        },
        /*weight=*/1);
    if (!queued) return RejectOverloaded(1, a);  // a bundle offer: a slot of the shortest length
    MaybeRead(a);
  }

  void HandleBundleChunk(Actions& a) {
    if (!CheckBundlePreconditions(a)) return;
    v1::BundleChunk& c = *in_.mutable_bundle_chunk();
    const uint64_t len = c.data().size();
    if (!IsValidIdentifier(c.request_id(), limits_.max_id_bytes)) {
      return Reject(grpc::StatusCode::INVALID_ARGUMENT,
                    "bundle_chunk.request_id must be 1..128 of [A-Za-z0-9._-]", a);
    }
    if (len > bundle_limits_.max_chunk_bytes) {
      return Reject(grpc::StatusCode::INVALID_ARGUMENT,
                    Cat("bundle_chunk.data is ", len, " bytes; the limit is ",
                        bundle_limits_.max_chunk_bytes),
                    a);
    }
    if (c.total_size() > bundle_limits_.max_bundle_bytes || c.offset() > c.total_size() ||
        len > c.total_size() - c.offset() || (c.last() && c.offset() + len != c.total_size()) ||
        (!c.last() && len == 0)) {
      return Reject(grpc::StatusCode::INVALID_ARGUMENT,
                    "bundle_chunk: offset, size and total_size do not add up", a);
    }
    if (!IsHex64(c.sha256())) {
      return Reject(grpc::StatusCode::INVALID_ARGUMENT,
                    "bundle_chunk.sha256 must be 64 lowercase hex digits", a);
    }
    if (c.manifest().size() > bundle_limits_.max_manifest_bytes) {
      return Reject(grpc::StatusCode::INVALID_ARGUMENT, "bundle_chunk.manifest is too large", a);
    }
    const std::string id = BundleIdForOffer(store_id_, c.request_id());
    auto it = bundles_.find(id);
    if (it == bundles_.end()) {
      // Not requested on this stream: another store's bundle, or one that
      // is done. Ignored; the agent is told to drop it.
      log::Warn("link",
                Cat("agent ", agent_id_, ": chunk of bundle ", id, " that was not requested here"));
      SendBundleAck(c.request_id(), 0, false, a);
      return MaybeRead(a);
    }
    BundleEntry& e = it->second;
    if (e.finishing) return MaybeRead(a);
    if (e.sha256 != c.sha256()) {
      if (c.offset() != 0) {
        // Bytes of another file: ask for this one from the start.
        if (e.last_resync != 0) {
          e.last_resync = 0;
          SendBundleRequest(id, 0, a);
        }
        return MaybeRead(a);
      }
      // A new file from offset 0 replaces what was held.
      e.sha256 = c.sha256();
      e.announced = false;
      files_->Reset(id);
    }
    e.size = c.total_size();
    if (!e.announced) {
      e.announced = true;
      Clock& clock = clock_;
      queue_.Submit(
          [id, size = c.total_size(), sha = c.sha256(), held = c.offset(), &clock](sql::Db& db) {
            return MarkBundleTransferring(db, id, size, sha, held, clock.NowMs());
          },
          nullptr);
    }
    if (c.last()) e.manifest = c.manifest();
    bundle_bytes_in_flight_ += len;
    counters_.bundle_bytes_received += len;
    files_->Append(
        id, c.offset(), std::move(*c.mutable_data()), c.total_size(), c.sha256(),
        [shared = shared_, id, len](const BundleFiles::AppendResult& r) {
          WithSession(shared, [&](LinkSession& s, Actions& act) { s.OnAppended(id, len, r, act); });
        });
    MaybeRead(a);
  }

  void OnAppended(const std::string& id, uint64_t len, const BundleFiles::AppendResult& r,
                  Actions& a) {
    bundle_bytes_in_flight_ -= len;
    auto it = bundles_.find(id);
    if (!r.status.ok()) {
      log::Error("link", Cat("agent ", agent_id_, ": bundle ", id, ": ", r.status.ToString()));
      return RequestFinish(
          grpc::Status(grpc::StatusCode::UNAVAILABLE, "collector storage failed; will retry"), a);
    }
    if (it == bundles_.end()) return MaybeRead(a);
    BundleEntry& e = it->second;
    if (r.gap) {
      if (e.last_resync != r.held) {
        e.last_resync = r.held;
        SendBundleRequest(id, r.held, a);
      }
    } else if (r.mismatch && !e.finishing) {
      e.finishing = true;
      Clock& clock = clock_;
      auto failed = std::make_shared<bool>(false);
      queue_.Submit(
          [id, failed, &clock](sql::Db& db) -> absl::Status {
            auto f = RecordBundleMismatch(db, id, clock.NowMs());
            if (!f.ok()) return f.status();
            *failed = *f;
            return absl::OkStatus();
          },
          [shared = shared_, id, failed](absl::Status st) {
            WithSession(shared, [&](LinkSession& s, Actions& act) {
              auto entry = s.bundles_.find(id);
              if (entry == s.bundles_.end()) return;
              if (st.ok() && *failed) {
                const std::string wire_id = entry->second.wire_id;
                s.bundles_.erase(entry);
                return s.SendBundleAck(wire_id, 0, false, act);
              }
              entry->second.finishing = false;
              entry->second.sha256.clear();
              entry->second.last_resync = 0;
              s.SendBundleRequest(id, 0, act);
            });
          });
    } else if (r.finished && !e.finishing) {
      e.finishing = true;
      Clock& clock = clock_;
      IngestCounters& counters = counters_;
      queue_.Submit(
          [id, size = e.size, sha = e.sha256, manifest = e.manifest, &clock](sql::Db& db) {
            auto m = nlohmann::json::parse(manifest, nullptr, false);
            return MarkBundleComplete(db, id, size, sha, m.is_discarded() ? "" : manifest,
                                      clock.NowMs());
          },
          [shared = shared_, id, wire_id = e.wire_id, size = e.size, &counters](absl::Status st) {
            WithSession(shared, [&](LinkSession& s, Actions& act) {
              if (!st.ok()) {
                // The file is in place; the agent keeps its copy and offers
                // it again at its next connect, which completes the row.
                log::Error("link", Cat("agent ", s.agent_id_, ": bundle ", id,
                                       " stored but not recorded: ", st.ToString()));
                if (auto entry = s.bundles_.find(id); entry != s.bundles_.end())
                  entry->second.finishing = false;
                return;
              }
              counters.bundles_completed++;
              log::Info("link", Cat("agent ", s.agent_id_, ": bundle ", id, " complete, ", size,
                                    " bytes, checksum verified"));
              s.bundles_.erase(id);
              s.SendBundleAck(wire_id, size, true, act);
            });
          });
    }
    MaybeRead(a);
  }

  void HandleBundleFailed(Actions& a) {
    if (!CheckBundlePreconditions(a)) return;
    const v1::BundleFailed& f = in_.bundle_failed();
    const std::string id = BundleIdForOffer(store_id_, f.request_id());
    auto it = bundles_.find(id);
    if (it == bundles_.end()) return MaybeRead(a);
    bundles_.erase(it);
    std::string error = f.error().substr(0, 1000);
    log::Warn("link", Cat("agent ", agent_id_, ": bundle ", id, " failed: ", error));
    Clock& clock = clock_;
    queue_.Submit(
        [id, error, &clock](sql::Db& db) {
          return MarkBundleFailed(db, id, Cat("the agent: ", error), clock.NowMs());
        },
        nullptr);
    MaybeRead(a);
  }

  void HandleStatus(Actions& a) {
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

  CommitQueue& queue_;
  Clock& clock_;
  const IngestLimits& limits_;
  const LinkService::EventSink& sink_;
  const LinkService::HelloSink& hello_sink_;
  IngestCounters& counters_;
  LinkService::Registry& registry_;
  BundleFiles* files_;
  const BundleLinkLimits& bundle_limits_;
  RetrySchedule& retry_schedule_;
  std::shared_ptr<Shared> shared_;
  grpc::CallbackServerContext* ctx_;
  std::string peer_;
  const int64_t connection_;
  // Set on the commit thread when a batch of this stream failed to commit.
  std::shared_ptr<std::atomic<bool>> failed_ = std::make_shared<std::atomic<bool>>(false);

  grpc::ByteBuffer in_buf_;
  v1::AgentMessage in_;
  std::deque<grpc::ByteBuffer> out_;
  StoreGrant grant_;
  std::string agent_id_, store_id_;
  bool hello_seen_ = false;
  uint64_t backlog_end_ = 0;  // the Hello's next_sequence
  bool reading_ = false;
  int64_t opened_ms_ = 0;         // monotonic
  int64_t write_started_ms_ = 0;  // monotonic, of the outstanding write
  int64_t read_started_ms_ = 0;   // monotonic, of the outstanding read
  bool read_closed_ = false;
  bool writing_ = false;
  bool finish_requested_ = false;
  bool finished_ = false;
  grpc::Status finish_status_;
  int api_calls_ = 0;
  size_t batches_in_flight_ = 0;
  uint32_t version_ = 1;
  bool registered_ = false;
  std::map<std::string, BundleEntry> bundles_;
  uint64_t bundle_bytes_in_flight_ = 0;
};

}  // namespace

LinkService::LinkService(CommitQueue& queue, Clock& clock, IngestLimits limits, EventSink sink,
                         BundleFiles* bundles, BundleLinkLimits bundle_limits)
    : queue_(queue),
      clock_(clock),
      limits_(limits),
      sink_(std::move(sink)),
      bundles_(bundles),
      bundle_limits_(bundle_limits),
      registry_(std::make_unique<Registry>()),
      sweeper_([this] { SweepLoop(); }) {}

LinkService::~LinkService() {
  {
    std::lock_guard lock(sweep_mu_);
    stopping_ = true;
  }
  sweep_cv_.notify_all();
  if (sweeper_.joinable()) sweeper_.join();
}

void LinkService::SweepLoop() {
  std::unique_lock lock(sweep_mu_);
  while (!stopping_) {
    sweep_cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    const int64_t now = clock_.MonotonicMs();
    for (const auto& shared : registry_->AllOpen()) LinkSession::CheckTimeouts(shared, now);
    lock.lock();
  }
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* LinkService::Connect(
    grpc::CallbackServerContext* context) {
  return new LinkSession(context, queue_, clock_, limits_, counters_, next_connection_++, sink_,
                         *registry_, bundles_, bundle_limits_, hello_sink_, retry_schedule_);
}

void LinkService::SetHelloSink(HelloSink sink) { hello_sink_ = std::move(sink); }

bool LinkService::DispatchBundle(const BundleRow& row) {
  auto shared = registry_->Newest(row.store_id);
  if (!shared) return false;
  LinkSession::Dispatch(shared, row);
  return true;
}

}  // namespace setdiag::collector
