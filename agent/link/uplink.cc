#include "agent/link/uplink.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "common/files.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "common/strings.h"
#include "common/version.h"
#include "setdiag/v1/link.grpc.pb.h"

namespace setdiag::agent {

namespace v1 = ::setdiag::v1;

struct Uplink::SessionResult {
  bool handshake_done = false;
  bool acknowledged = false;               // the collector acknowledged a batch in this session
  int64_t overloaded_retry_after_ms = -1;  // >= 0 when the collector said so
  int64_t overloaded_retry_spread_ms = 0;  // the collector's spread hint, 0: none
  grpc::Status status;
};

namespace {

BundleSenderOptions BundleOptionsOf(const UplinkOptions& o) {
  BundleSenderOptions b;
  b.dir = o.bundle_dir;
  b.builder = o.bundle_builder;
  b.chunk_bytes = o.bundle_chunk_bytes;
  b.chunks_per_turn = o.bundle_chunks_per_turn;
  b.keep_ms = o.bundle_keep_ms;
  b.flight_recorder = o.flight_recorder;
  b.max_queued = o.bundle_max_queued;
  return b;
}

}  // namespace

Uplink::Uplink(UplinkOptions options, Outbox& outbox, Clock& clock)
    : options_(std::move(options)),
      outbox_(outbox),
      clock_(clock),
      backoff_(options_.backoff, clock, std::random_device{}()),
      started_ms_(clock.MonotonicMs()),
      bundles_(BundleOptionsOf(options_), clock, [this] { Wake(); }) {
  channel_ = MakeLinkChannel(options_);
}

std::shared_ptr<grpc::Channel> MakeLinkChannel(const UplinkOptions& options) {
  std::shared_ptr<grpc::ChannelCredentials> creds;
  grpc::ChannelArguments args;
  if (options.ca_pem.empty()) {
    creds = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.ca_pem;
    creds = grpc::SslCredentials(ssl);
    if (!options.server_name.empty()) {
      args.SetSslTargetNameOverride(options.server_name);
    }
  }
  // Detect a dead link (a store router rebooting) within a minute.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // We do our own backoff; keep gRPC's reconnect quick underneath it.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2'000);
  // Despite its name, gRPC's C core reads its minimum *connect timeout* from
  // this argument (doc/connection-backoff.md's MIN_CONNECT_TIMEOUT): an
  // attempt gets max(this, the current backoff) to finish TCP, TLS and the
  // HTTP/2 SETTINGS exchange. It is not the delay between attempts (those
  // follow the backoff above). A store on EDGE or a congested 3G cell needs
  // several seconds for that handshake, so keep gRPC's default of 20 s; it
  // was 200 ms, and such a store never connected (Link.AnAgentOnALinkWith...).
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 20'000);
  args.SetMaxSendMessageSize(4 * 1024 * 1024);
  args.SetString(GRPC_ARG_PRIMARY_USER_AGENT_STRING, Cat("setdiag-agent/", kVersion));
  // A private subchannel per channel: a fresh channel after a failed attempt
  // then really starts over instead of waiting out gRPC's own backoff, which
  // would otherwise stack on top of ours.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(options.target, creds, args);
}

LinkTlsProblem ClassifyTlsProblem(bool agent_uses_tls, int code, const std::string& message) {
  auto has = [&](const char* text) { return message.find(text) != std::string::npos; };
  if (!agent_uses_tls) {
    // A TLS port reads the HTTP/2 preface as a broken handshake and closes
    // the connection without a word.
    const bool closed = has("Socket closed") || has("Connection reset");
    return code == grpc::StatusCode::UNAVAILABLE && closed ? LinkTlsProblem::kCollectorExpectsTls
                                                           : LinkTlsProblem::kNone;
  }
  // A plaintext HTTP/2 port answers the ClientHello with frames that are no
  // TLS record.
  if (has("wrong version number") || has("packet length too long") || has("http request")) {
    return LinkTlsProblem::kCollectorWithoutTls;
  }
  if (has("andshake") || has("SSL") || has("ertificate")) return LinkTlsProblem::kHandshakeFailed;
  return LinkTlsProblem::kNone;
}

const char* LinkTlsHint(LinkTlsProblem problem) {
  switch (problem) {
    case LinkTlsProblem::kCollectorExpectsTls:
      return "the collector closed the connection without answering: it probably expects TLS; set "
             "collector.ca_file to the collector's CA certificate (and collector.server_name if "
             "the certificate "
             "names another host)";
    case LinkTlsProblem::kCollectorWithoutTls:
      return "the collector does not speak TLS on this port (it answered in plaintext): check the "
             "port in "
             "collector.address; a loopback collector without TLS needs no collector.ca_file";
    case LinkTlsProblem::kHandshakeFailed:
      return "the TLS handshake failed: collector.ca_file must be the CA that signed the "
             "collector's "
             "certificate, and the certificate must name the host of collector.address (or set "
             "collector.server_name)";
    case LinkTlsProblem::kNone:
      break;
  }
  return "";
}

CollectorProbe ProbeCollector(const UplinkOptions& options, int64_t timeout_ms, Clock& clock) {
  CollectorProbe r;
  auto channel = MakeLinkChannel(options);
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", Cat("Bearer ", options.token));
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  auto stub = v1::AgentLink::NewStub(channel);
  auto stream = stub->Connect(&ctx);
  v1::AgentMessage hello_msg;
  auto* hello = hello_msg.mutable_hello();
  hello->set_protocol_version(kProtocolVersion);
  hello->set_store_id(options.store_id);
  hello->set_agent_id(options.agent_id);
  hello->set_agent_version(kVersion);
  hello->set_probe(true);
  const int64_t sent = clock.NowMs();
  v1::CollectorMessage in;
  bool welcomed = false;
  if (stream->Write(hello_msg)) {
    while (stream->Read(&in)) {
      if (in.has_welcome()) {
        const int64_t received = clock.NowMs();
        welcomed = true;
        r.server_time_ms = in.welcome().server_time_ms();
        r.round_trip_ms = received - sent;
        r.offset_ms = r.server_time_ms - (sent + received) / 2;
        break;
      }
    }
  }
  stream->WritesDone();
  if (welcomed) ctx.TryCancel();  // a collector that ignores probe would keep the stream open
  grpc::Status st = stream->Finish();
  if (welcomed) {
    r.code = grpc::StatusCode::OK;
    return r;
  }
  r.code = st.ok() ? grpc::StatusCode::UNKNOWN : st.error_code();
  r.message = st.ok() ? "the collector ended the stream without a Welcome" : st.error_message();
  return r;
}

Uplink::~Uplink() { Stop(); }

void Uplink::Start() {
  bundles_.Start();
  thread_ = std::thread([this] { Run(); });
}

void Uplink::Stop() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    if (active_ctx_) active_ctx_->TryCancel();
  }
  cv_.SignalAll();
  if (thread_.joinable()) thread_.join();
  bundles_.Stop();
}

void Uplink::Wake() {
  {
    MutexLock lock(&mu_);
    woken_ = true;
  }
  cv_.SignalAll();
}

void Uplink::Run() {
  while (true) {
    {
      MutexLock lock(&mu_);
      // Real waiting happens here; Backoff itself is pure and clock-driven
      // (a wake-up before it is ready waits again, below).
      if (!stopping_) cv_.WaitFor(&mu_, std::chrono::milliseconds(backoff_.MsUntilReady()));
      if (stopping_) return;
    }
    if (!backoff_.ReadyNow()) continue;
    SessionResult r = RunSession();
    connected_ = false;
    {
      MutexLock lock(&mu_);
      if (stopping_) return;
    }
    if (r.handshake_done) {
      // Only a session that lasted or stored something resets the backoff: a
      // collector with broken storage welcomes us and fails every batch.
      if (!backoff_.SessionEnded(r.acknowledged)) {
        log::Debug("uplink", "the session ended before it was healthy; the backoff keeps growing");
      }
    } else {
      channel_ = MakeLinkChannel(options_);
    }
    int64_t delay;
    if (r.overloaded_retry_after_ms >= 0 ||
        r.status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      delay = backoff_.Overloaded(std::max<int64_t>(0, r.overloaded_retry_after_ms),
                                  r.overloaded_retry_spread_ms);
      log::Warn("uplink", Cat("collector is overloaded; reconnecting in ", delay, " ms"));
    } else if (r.status.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
               r.status.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
      delay = backoff_.Overloaded(0);
      log::Error("uplink", Cat("the collector refused this agent: ",
                               GrpcCodeName(r.status.error_code()), " ", r.status.error_message(),
                               "; check collector.token_file and "
                               "agent.store_id; retrying in ",
                               delay, " ms"));
    } else if (LinkTlsProblem tls = r.handshake_done ? LinkTlsProblem::kNone
                                                     : ClassifyTlsProblem(!options_.ca_pem.empty(),
                                                                          r.status.error_code(),
                                                                          r.status.error_message());
               tls != LinkTlsProblem::kNone) {
      // A configuration problem that no retry mends: an error, once per
      // window with how often it repeated meanwhile.
      delay = backoff_.Failed();
      const std::string line =
          Cat("link to ", options_.target, ": ", LinkTlsHint(tls), " (",
              GrpcCodeName(r.status.error_code()), " ", r.status.error_message(), ")");
      uint64_t skipped = 0;
      if (tls_errors_.Allow(line, clock_.MonotonicMs(), &skipped)) {
        log::Error(
            "uplink",
            Cat(line,
                skipped > 0 ? Cat("; ", skipped, " more time(s) since the last such line") : "",
                "; reconnecting in ", delay, " ms"));
      } else {
        log::Debug("uplink", Cat("link to ", options_.target,
                                 ": the same TLS failure; reconnecting in ", delay, " ms"));
      }
    } else {
      delay = backoff_.Failed();
      log::Warn("uplink",
                Cat("link to ", options_.target, " ended: ", GrpcCodeName(r.status.error_code()),
                    " ", r.status.error_message(), "; reconnecting in ", delay, " ms"));
    }
  }
}

using LinkStream = grpc::ClientReaderWriter<v1::AgentMessage, v1::CollectorMessage>;

// What the writer loop and the reader thread of one session share; the
// fields below `stream` are guarded by mu_.
struct Uplink::Session {
  LinkStream* stream = nullptr;
  bool bundles_v2 = false;  // the collector speaks protocol version 2
  SessionResult* result = nullptr;
  uint64_t acked = 0;
  bool reader_done = false;
  std::deque<uint64_t> pongs;
};

v1::AgentMessage Uplink::MakeHello() {
  v1::AgentMessage hello_msg;
  auto* hello = hello_msg.mutable_hello();
  hello->set_protocol_version(kProtocolVersion);
  hello->set_store_id(options_.store_id);
  hello->set_agent_id(options_.agent_id);
  hello->set_agent_version(kVersion);
  hello->set_first_unacked_sequence(outbox_.FirstUnacked());
  hello->set_next_sequence(outbox_.Stats().next_sequence);
  hello->set_outbox_id(outbox_.outbox_id());
  hello->set_outbox_fresh(outbox_.fresh());
  if (!options_.held_episodes) return hello_msg;
  auto held = options_.held_episodes();
  if (!held) return hello_msg;
  hello->set_held_episodes_known(true);
  std::string names;
  for (const auto& h : *held) {
    auto* e = hello->add_held_episodes();
    e->set_kind(h.kind);
    e->set_episode(h.episode);
    Append(&names, names.empty() ? "" : ", ", h.kind, " ", h.episode);
  }
  if (held->empty())
    log::Debug("uplink", "hello: holding no raised condition");
  else
    log::Info("uplink",
              Cat("hello: holding ", held->size(), " raised condition episode(s): ", names));
  return hello_msg;
}

bool Uplink::ApplyWelcome(const v1::Welcome& welcome) {
  if (welcome.renumber_from() > 0) {
    if (absl::Status st = outbox_.Renumber(welcome.renumber_from()); !st.ok()) {
      log::Error("uplink", Cat("cannot renumber outbox: ", st.ToString()));
      return false;
    }
  } else if (welcome.last_committed_sequence() > 0) {
    if (absl::Status st = outbox_.AckUpTo(welcome.last_committed_sequence()); !st.ok()) {
      log::Error("uplink", Cat("cannot apply resume point: ", st.ToString()));
    }
  }
  if (outbox_.fresh()) (void)outbox_.MarkSynced();
  return true;
}

v1::AgentMessage Uplink::MakeStatus() {
  OutboxStats s = outbox_.Stats();
  v1::AgentMessage m;
  auto* st = m.mutable_status();
  st->set_uptime_s((clock_.MonotonicMs() - started_ms_) / 1000);
  st->set_agent_version(kVersion);
  st->set_outbox_depth(s.depth);
  st->set_outbox_bytes(static_cast<uint64_t>(s.bytes));
  st->set_oldest_unsent_age_s(
      s.oldest_enqueued_ms ? std::max<int64_t>(0, (clock_.NowMs() - s.oldest_enqueued_ms) / 1000)
                           : 0);
  st->set_gaps_total(s.gaps_total);
  st->set_sent_at_ms(clock_.NowMs());
  return m;
}

void Uplink::ReadLoop(Session& session) {
  v1::CollectorMessage msg;
  while (session.stream->Read(&msg)) {
    if (msg.has_ack()) {
      uint64_t up_to = msg.ack().up_to_sequence();
      if (absl::Status st = outbox_.AckUpTo(up_to); !st.ok()) {
        log::Error("uplink", Cat("cannot delete acknowledged events: ", st.ToString()));
      }
      MutexLock lock(&mu_);
      session.acked = std::max(session.acked, up_to);
      session.result->acknowledged = true;
    } else if (msg.has_ping()) {
      MutexLock lock(&mu_);
      session.pongs.push_back(msg.ping().nonce());
    } else if (msg.has_overloaded()) {
      MutexLock lock(&mu_);
      session.result->overloaded_retry_after_ms = msg.overloaded().retry_after_ms();
      session.result->overloaded_retry_spread_ms = msg.overloaded().retry_spread_ms();
    } else if (msg.has_bundle_request() && session.bundles_v2) {
      const auto& r = msg.bundle_request();
      bundles_.OnRequest(r.request_id(), r.resume_offset(), r.sha256(), r.window_ms(),
                         r.exclude_logs(), r.reason());
    } else if (msg.has_bundle_ack() && session.bundles_v2) {
      const auto& k = msg.bundle_ack();
      bundles_.OnAck(k.request_id(), k.complete(), k.cancelled());
    }
    cv_.SignalAll();
  }
  MutexLock lock(&mu_);
  session.reader_done = true;
  cv_.SignalAll();
}

bool Uplink::SendBatch(Session& session, uint64_t acked_now, uint64_t* last_sent,
                       bool* write_failed) {
  *last_sent = std::max(*last_sent, acked_now);  // an ack never goes past what was sent
  if (*last_sent - acked_now >= options_.max_inflight) return false;
  auto events = outbox_.ReadAfter(*last_sent, options_.batch_max_events, options_.batch_max_bytes);
  if (!events.ok()) {
    log::Error("uplink", Cat("cannot read outbox: ", events.status().ToString()));
    return false;
  }
  if (events->empty()) return false;
  v1::AgentMessage m;
  auto* batch = m.mutable_batch();
  for (auto& e : *events) {
    // Only a collector that takes bundles gets flight recorder captures.
    if (session.bundles_v2 && e.severity == Severity::kCritical && bundles_.enabled() &&
        options_.flight_recorder) {
      auto p = nlohmann::json::parse(e.payload, nullptr, false);
      if (p.is_object() && p["state"].is_string() && p["episode"].is_string()) {
        std::string state = p["state"].get<std::string>();
        std::string episode = p["episode"].get<std::string>();
        if ((state == "raised" || state == "escalated") && !episode.empty()) {
          bundles_.CaptureFlightRecorder(episode, e.kind, state);
        }
      }
    }
    auto* out = batch->add_events();
    out->set_sequence(e.sequence);
    out->set_kind(std::move(e.kind));
    out->set_severity(static_cast<v1::Severity>(e.severity));
    out->set_detected_at_ms(e.detected_at_ms);
    out->set_payload(std::move(e.payload));
  }
  if (!session.stream->Write(m)) {
    *write_failed = true;
    return false;
  }
  *last_sent = events->back().sequence;
  return true;
}

Uplink::SessionResult Uplink::RunSession() {
  SessionResult result;
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", Cat("Bearer ", options_.token));
  {
    MutexLock lock(&mu_);
    if (stopping_) return result;
    active_ctx_ = &ctx;
  }
  auto stub = v1::AgentLink::NewStub(channel_);
  std::unique_ptr<LinkStream> stream = stub->Connect(&ctx);
  auto finish = [&](SessionResult r) {
    r.status = stream->Finish();
    MutexLock lock(&mu_);
    active_ctx_ = nullptr;
    return r;
  };

  if (!stream->Write(MakeHello())) return finish(result);
  v1::CollectorMessage in;
  if (!stream->Read(&in)) return finish(result);  // the collector ended it: Finish says why
  if (!in.has_welcome()) {
    if (in.has_overloaded()) {
      result.overloaded_retry_after_ms = in.overloaded().retry_after_ms();
      result.overloaded_retry_spread_ms = in.overloaded().retry_spread_ms();
    }
    ctx.TryCancel();
    return finish(result);
  }
  const auto& welcome = in.welcome();
  if (!ApplyWelcome(welcome)) {
    ctx.TryCancel();
    return finish(result);
  }
  const int64_t status_interval_ms = welcome.status_interval_s() > 0
                                         ? int64_t{welcome.status_interval_s()} * 1000
                                         : options_.status_interval_ms;
  result.handshake_done = true;
  backoff_.SessionStarted();
  connected_ = true;
  Session session;
  session.stream = stream.get();
  session.result = &result;
  // Bundle messages only to a collector that speaks version 2.
  session.bundles_v2 = welcome.protocol_version() >= 2;
  if (session.bundles_v2) bundles_.OnSessionStart();
  log::Info("uplink", Cat("connected to ", options_.target, "; collector has up to ",
                          welcome.last_committed_sequence()));
  session.acked =
      welcome.renumber_from() > 0 ? welcome.renumber_from() - 1 : welcome.last_committed_sequence();
  std::thread reader([&] { ReadLoop(session); });

  uint64_t last_sent = session.acked;
  int64_t next_status_ms = clock_.MonotonicMs();
  int64_t next_expiry_ms = clock_.MonotonicMs();
  bool write_failed = false;
  while (!write_failed) {
    uint64_t acked_now;
    std::deque<uint64_t> pongs_now;
    {
      MutexLock lock(&mu_);
      if (stopping_ || session.reader_done) break;
      acked_now = session.acked;
      pongs_now.swap(session.pongs);
    }
    for (uint64_t nonce : pongs_now) {
      v1::AgentMessage m;
      m.mutable_pong()->set_nonce(nonce);
      if (!stream->Write(m)) write_failed = true;
    }
    if (clock_.MonotonicMs() >= next_status_ms) {
      if (!stream->Write(MakeStatus())) write_failed = true;
      next_status_ms = clock_.MonotonicMs() + status_interval_ms;
    }
    bool sent_any = !write_failed && SendBatch(session, acked_now, &last_sent, &write_failed);
    if (session.bundles_v2 && !write_failed) {
      if (clock_.MonotonicMs() >= next_expiry_ms) {
        bundles_.Expire();
        next_expiry_ms = clock_.MonotonicMs() + 60'000;
      }
      if (bundles_.Pump([&](const v1::AgentMessage& m) { return stream->Write(m); },
                        &write_failed)) {
        sent_any = true;
      }
    }
    if (sent_any) continue;
    MutexLock lock(&mu_);
    const auto idle_until =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.idle_poll_ms);
    while (!stopping_ && !session.reader_done && !woken_ && session.pongs.empty() &&
           session.acked == acked_now) {
      if (!cv_.WaitUntil(&mu_, idle_until)) break;
    }
    woken_ = false;
  }
  // When the collector ended the stream (or a write failed because it did),
  // Finish() reports its status: cancelling first would replace the real
  // cause (e.g. its storage error) with CANCELLED. Cancel only when we stop,
  // or when the reader does not see the end within a moment (a dead link).
  bool cancel;
  {
    MutexLock lock(&mu_);
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (!stopping_ && !session.reader_done) {
      if (!cv_.WaitUntil(&mu_, give_up)) break;
    }
    cancel = stopping_ || !session.reader_done;
  }
  if (cancel) ctx.TryCancel();
  reader.join();
  return finish(result);
}

}  // namespace setdiag::agent
