#include "collector/link_service.h"

#include <deque>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>

#include "common/strings.h"
#include "collector/storage.h"
#include "common/log.h"
#include "common/version.h"

namespace setdiag::collector {

namespace v1 = ::setdiag::v1;

namespace {


std::string CheckId(std::string_view what, std::string_view id, size_t max) {
  if (id.empty()) return Cat(what, " is required");
  if (id.size() > max) return Cat(what, " is longer than ", max, " bytes");
  if (!IsValidIdentifier(id, max)) return Cat(what, " may contain only letters, digits, '-', '_' and '.'");
  return {};
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
  if (auto e = CheckId("hello.store_id", hello.store_id(), limits.max_id_bytes); !e.empty()) return e;
  if (auto e = CheckId("hello.agent_id", hello.agent_id(), limits.max_id_bytes); !e.empty()) return e;
  if (hello.agent_version().size() > limits.max_id_bytes) return "hello.agent_version is too long";
  if (hello.outbox_id().size() > limits.max_id_bytes) return "hello.outbox_id is too long";
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

// One agent stream. All fields are guarded by shared_->mu. Reactor API calls
// (StartRead/StartWrite/Finish) are decided under the lock and made outside
// it, because gRPC may run reactions inline on the calling thread. Finish is
// deferred while a write is outstanding or another thread is about to call
// the API, so nothing touches the reactor after OnDone.
class LinkSession final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  struct Shared {
    std::mutex mu;
    LinkSession* session = nullptr;  // null once OnDone ran
  };

  LinkSession(grpc::CallbackServerContext* ctx, CommitQueue& queue, Clock& clock,
              const IngestLimits& limits, IngestCounters& counters, int64_t connection,
              const LinkService::EventSink& sink)
      : queue_(queue), clock_(clock), limits_(limits), sink_(sink), counters_(counters),
        shared_(std::make_shared<Shared>()), peer_(ctx->peer()), connection_(connection) {
    shared_->session = this;
    counters_.streams_open++;
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
          WithSession(shared, [&](LinkSession& s, Actions& a) { s.OnAuthenticated(st, *grant, a); });
        },
        /*weight=*/1);  // bounded like events: a flood of bad connects cannot grow the queue
    if (!queued) {
      finished_ = true;
      Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "collector overloaded or stopping, retry later"));
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
    });
  }

  void OnDone() override {
    std::string agent_id;
    {
      std::lock_guard lock(shared_->mu);
      shared_->session = nullptr;
      agent_id = agent_id_;
    }
    counters_.streams_open--;
    if (!agent_id.empty()) {
      Clock& clock = clock_;
      queue_.Submit([agent_id, &clock, connection = connection_](sql::Db& db) {
        return RecordDisconnect(db, agent_id, connection, clock.NowMs());
      }, nullptr);
      log::Info("link", Cat("agent ", agent_id, " (store ", store_id_, ") disconnected"));
    }
    delete this;
  }

 private:
  // What to call on the reactor once the lock is released.
  struct Actions {
    bool read = false;
    grpc::ByteBuffer* write = nullptr;
    bool finish = false;
    grpc::Status status;
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
      } else if (a.read || a.write) {
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

  void Reject(grpc::StatusCode code, const std::string& why, Actions& a) {
    counters_.frames_rejected++;
    log::Warn("link", Cat(peer_, agent_id_.empty() ? "" : Cat(" agent ", agent_id_),
                                   ": rejected: ", why));
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
      a.write = &out_.front();
    } else if (!writing_ && finish_requested_ && api_calls_ == 0) {
      a.finish = true;
      a.status = finish_status_;
    }
  }

  void MaybeRead(Actions& a) {
    if (!reading_ && !read_closed_ && !finish_requested_ && batches_in_flight_ < limits_.max_batches_in_flight) {
      reading_ = true;
      a.read = true;
    }
  }

  void OnAuthenticated(const absl::Status& st, const std::optional<StoreGrant>& grant, Actions& a) {
    if (!st.ok()) {
      RequestFinish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "collector storage unavailable, retry"), a);
      return;
    }
    if (!grant) {
      counters_.auth_failures++;
      log::Warn("link", Cat(peer_, ": unknown or revoked store token"));
      RequestFinish(grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "unknown or revoked store token"), a);
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
      return Reject(grpc::StatusCode::INVALID_ARGUMENT,
                    "malformed frame: not a setdiag.v1.AgentMessage (" + parsed.error_message() + ")", a);
    }
    switch (in_.body_case()) {
      case v1::AgentMessage::kHello: return HandleHello(a);
      case v1::AgentMessage::kBatch: return HandleBatch(a);
      case v1::AgentMessage::kStatus: return HandleStatus(a);
      case v1::AgentMessage::kPong: return MaybeRead(a);
      case v1::AgentMessage::BODY_NOT_SET:
        return Reject(grpc::StatusCode::INVALID_ARGUMENT, "empty message (no body set)", a);
    }
  }

  void HandleHello(Actions& a) {
    if (hello_seen_) return Reject(grpc::StatusCode::FAILED_PRECONDITION, "second Hello on a stream", a);
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
    AgentHello hello{h.agent_id(), h.store_id(), h.agent_version(), h.outbox_id()};
    const bool fresh = h.outbox_fresh();
    const uint64_t lowest = h.first_unacked_sequence() ? h.first_unacked_sequence() : h.next_sequence();
    const uint32_t version = std::min<uint32_t>(h.protocol_version(), kProtocolVersion);
    auto last = std::make_shared<uint64_t>(0);
    Clock& clock = clock_;
    bool queued = queue_.Submit(
        [hello, last, &clock, connection = connection_](sql::Db& db) -> absl::Status {
          auto l = RecordHello(db, hello, connection, clock.NowMs());
          if (!l.ok()) return l.status();
          *last = *l;
          return absl::OkStatus();
        },
        [shared = shared_, last, fresh, lowest, version](absl::Status st) {
          WithSession(shared, [&](LinkSession& s, Actions& act) {
            if (st.code() == absl::StatusCode::kPermissionDenied) {
              return s.Reject(grpc::StatusCode::PERMISSION_DENIED, std::string(st.message()), act);
            }
            if (!st.ok()) {
              return s.RequestFinish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "storage unavailable"), act);
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
            log::Info("link", Cat("agent ", s.agent_id_, " of store ", s.store_id_,
                                           " connected from ", s.peer_, "; resume after ", *last,
                                           w->renumber_from() ? Cat(", renumber from ", w->renumber_from()) : ""));
            s.Send(std::move(m), act);
            s.MaybeRead(act);
          });
        },
        /*weight=*/1);
    if (!queued) RejectOverloaded(a);
  }

  void RejectOverloaded(Actions& a) {
    v1::CollectorMessage m;
    m.mutable_overloaded()->set_retry_after_ms(limits_.overload_retry_after_ms);
    m.mutable_overloaded()->set_reason("ingest queue full");
    Send(m, a);
    log::Warn("link", Cat(peer_, " agent ", agent_id_, ": ingest queue full; asked it to back off"));
    RequestFinish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "collector overloaded, retry later"), a);
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
      events.push_back({e.sequence(), e.kind(), static_cast<int>(e.severity()), e.detected_at_ms(), e.payload()});
    }
    const uint64_t last_seq = events.back().sequence;
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
          auto added = InsertEvents(db, agent, store, events, now, sink ? &inserted : nullptr);
          if (!added.ok()) failed->store(true);
          if (!added.ok()) return added.status();
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
              log::Error("link", Cat("agent ", s.agent_id_, ": storing a batch failed: ", st.ToString()));
              return s.RequestFinish(
                  grpc::Status(grpc::StatusCode::UNAVAILABLE, "collector storage failed; will retry"), act);
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
    if (!queued) return RejectOverloaded(a);
    batches_in_flight_++;
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
    queue_.Submit([agent = agent_id_, json = j.dump(), &clock](sql::Db& db) {
      return RecordStatus(db, agent, json, clock.NowMs());
    }, nullptr);
    MaybeRead(a);
  }

  CommitQueue& queue_;
  Clock& clock_;
  const IngestLimits& limits_;
  const LinkService::EventSink& sink_;
  IngestCounters& counters_;
  std::shared_ptr<Shared> shared_;
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
  bool reading_ = false;
  bool read_closed_ = false;
  bool writing_ = false;
  bool finish_requested_ = false;
  bool finished_ = false;
  grpc::Status finish_status_;
  int api_calls_ = 0;
  size_t batches_in_flight_ = 0;
};

}  // namespace

LinkService::LinkService(CommitQueue& queue, Clock& clock, IngestLimits limits, EventSink sink)
    : queue_(queue), clock_(clock), limits_(limits), sink_(std::move(sink)) {}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* LinkService::Connect(
    grpc::CallbackServerContext* context) {
  return new LinkSession(context, queue_, clock_, limits_, counters_, next_connection_++, sink_);
}

}  // namespace setdiag::collector
