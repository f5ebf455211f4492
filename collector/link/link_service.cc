#include "collector/link/link_service.h"

#include <memory>
#include <mutex>

#include "collector/link/session.h"
#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"

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

namespace link_internal {
namespace {

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

LinkSession::LinkSession(grpc::CallbackServerContext* ctx, CommitQueue& queue, Clock& clock,
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
        ASSIGN_OR_RETURN(auto g, LookupStoreToken(db, token));
        *grant = g;
        return absl::OkStatus();
      },
      [shared = shared_, grant](absl::Status st) {
        WithSession(shared, [&](LinkSession& s, Actions& a) { s.OnAuthenticated(st, *grant, a); });
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

void LinkSession::OnReadDone(bool ok) {
  WithSession(shared_, [&](LinkSession& s, Actions& a) { s.HandleRead(ok, a); });
}

void LinkSession::OnWriteDone(bool ok) {
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

void LinkSession::OnDone() {
  std::string agent_id;
  bool registered;
  {
    MutexLock lock(&shared_->mu);
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
void LinkSession::Dispatch(const std::shared_ptr<Shared>& shared, const BundleRow& row) {
  WithSession(shared, [&](LinkSession& s, Actions& a) { s.BeginBundle(row, row.id, a); });
}

// LinkService's sweeper, about once a second.
void LinkSession::CheckTimeouts(const std::shared_ptr<Shared>& shared, int64_t now_ms) {
  WithSession(shared, [&](LinkSession& s, Actions& a) { s.TimeOut(now_ms, a); });
}

void LinkSession::RequestFinish(grpc::Status status, Actions& a) {
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

void LinkSession::LogStorageError(std::string_view what, const absl::Status& st) {
  uint64_t suppressed = 0;
  if (!registry_.errors.Allow(Cat(what, st.ToString()), clock_.MonotonicMs(), &suppressed)) return;
  log::Error("link",
             Cat("agent ", agent_id_, ": ", what, ": ", st.ToString(),
                 suppressed ? Cat(" (and ", suppressed, " times the same in the last 10 s)") : ""));
}

void LinkSession::Reject(grpc::StatusCode code, const std::string& why, Actions& a) {
  counters_.frames_rejected++;
  log::Warn("link",
            Cat(peer_, agent_id_.empty() ? "" : Cat(" agent ", agent_id_), ": rejected: ", why));
  // Acks already queued still go out (they are true); nothing after them.
  RequestFinish(grpc::Status(code, why), a);
}

void LinkSession::Send(const v1::CollectorMessage& msg, Actions& a) {
  if (finish_requested_) return;
  grpc::ByteBuffer buf;
  bool own = false;
  if (!grpc::SerializationTraits<v1::CollectorMessage>::Serialize(msg, &buf, &own).ok()) {
    return RequestFinish(grpc::Status(grpc::StatusCode::INTERNAL, "cannot encode a reply"), a);
  }
  out_.push_back(std::move(buf));
  PumpWrites(a);
}

void LinkSession::PumpWrites(Actions& a) {
  if (!writing_ && !out_.empty()) {
    writing_ = true;
    write_started_ms_ = clock_.MonotonicMs();
    a.write = &out_.front();
  } else if (!writing_ && finish_requested_ && api_calls_ == 0) {
    a.finish = true;
    a.status = finish_status_;
  }
}

void LinkSession::MaybeRead(Actions& a) {
  if (!reading_ && !read_closed_ && !finish_requested_ &&
      batches_in_flight_ < limits_.max_batches_in_flight &&
      bundle_bytes_in_flight_ < bundle_limits_.max_bytes_in_flight &&
      out_.size() < limits_.max_queued_replies) {
    reading_ = true;
    read_started_ms_ = clock_.MonotonicMs();
    a.read = true;
  }
}

void LinkSession::TimeOut(int64_t now_ms, Actions& a) {
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
    log::Warn("link",
              Cat("agent ", agent_id_, " (store ", store_id_,
                  "): has not read what the collector sent for ", Seconds(limits_.IdleTimeoutMs()),
                  " s (", out_.size(), " replies queued); closing the stream"));
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

void LinkSession::HandleRead(bool ok, Actions& a) {
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
                  "malformed frame: not a setdiag.v1.AgentMessage (" + parsed.error_message() + ")",
                  a);
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

}  // namespace link_internal

using link_internal::LinkSession;

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
    MutexLock lock(&sweep_mu_);
    stopping_ = true;
  }
  sweep_cv_.SignalAll();
  if (sweeper_.joinable()) sweeper_.join();
}

void LinkService::SweepLoop() {
  while (true) {
    {
      MutexLock lock(&sweep_mu_);
      if (!stopping_) sweep_cv_.WaitFor(&sweep_mu_, std::chrono::seconds(1));
      if (stopping_) return;
    }
    const int64_t now = clock_.MonotonicMs();
    for (const auto& shared : registry_->AllOpen()) LinkSession::CheckTimeouts(shared, now);
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
