#include "agent/uplink.h"

#include <grpcpp/grpcpp.h>

#include <deque>

#include "common/strings.h"
#include "common/log.h"
#include "common/version.h"
#include "setdiag/v1/link.grpc.pb.h"

namespace setdiag::agent {

namespace v1 = ::setdiag::v1;

namespace {
const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "?";
  }
}
}  // namespace

struct Uplink::SessionResult {
  bool handshake_done = false;
  int64_t overloaded_retry_after_ms = -1;  // >= 0 when the collector said so
  grpc::Status status;
};

Uplink::Uplink(UplinkOptions options, Outbox& outbox, Clock& clock)
    : options_(std::move(options)),
      outbox_(outbox),
      clock_(clock),
      backoff_(options_.backoff, clock, std::random_device{}()),
      started_ms_(clock.MonotonicMs()) {
  channel_ = MakeChannel();
}

std::shared_ptr<grpc::Channel> Uplink::MakeChannel() const {
  std::shared_ptr<grpc::ChannelCredentials> creds;
  grpc::ChannelArguments args;
  if (options_.ca_pem.empty()) {
    creds = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options_.ca_pem;
    creds = grpc::SslCredentials(ssl);
    if (!options_.server_name.empty()) {
      args.SetSslTargetNameOverride(options_.server_name);
    }
  }
  // Detect a dead link (a store router rebooting) within a minute.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // We do our own backoff; keep gRPC's reconnect quick underneath it.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2'000);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 200);
  args.SetMaxSendMessageSize(4 * 1024 * 1024);
  args.SetString(GRPC_ARG_PRIMARY_USER_AGENT_STRING, Cat("setdiag-agent/", kVersion));
  // A private subchannel per channel: a fresh channel after a failed attempt
  // then really starts over instead of waiting out gRPC's own backoff, which
  // would otherwise stack on top of ours.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(options_.target, creds, args);
}

Uplink::~Uplink() { Stop(); }

void Uplink::Start() { thread_ = std::thread([this] { Run(); }); }

void Uplink::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    if (active_ctx_) active_ctx_->TryCancel();
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Uplink::Wake() {
  {
    std::lock_guard lock(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

void Uplink::Run() {
  while (true) {
    {
      std::unique_lock lock(mu_);
      // Real waiting happens here; Backoff itself is pure and clock-driven.
      cv_.wait_for(lock, std::chrono::milliseconds(backoff_.MsUntilReady()),
                   [&] { return stopping_; });
      if (stopping_) return;
    }
    if (!backoff_.ReadyNow()) continue;
    SessionResult r = RunSession();
    connected_ = false;
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
    }
    if (r.handshake_done) {
      backoff_.Succeeded();
    } else {
      channel_ = MakeChannel();
    }
    int64_t delay;
    if (r.overloaded_retry_after_ms >= 0 ||
        r.status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      delay = backoff_.Overloaded(std::max<int64_t>(0, r.overloaded_retry_after_ms));
      log::Warn("uplink", Cat("collector is overloaded; reconnecting in ", delay, " ms"));
    } else if (r.status.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
               r.status.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
      delay = backoff_.Overloaded(0);
      log::Error("uplink", Cat("the collector refused this agent: ", CodeName(r.status.error_code()),
                               " ", r.status.error_message(), "; check collector.token_file and "
                               "agent.store_id; retrying in ", delay, " ms"));
    } else {
      delay = backoff_.Failed();
      log::Warn("uplink", Cat("link to ", options_.target, " ended: ",
                                       CodeName(r.status.error_code()), " ",
                                       r.status.error_message(), "; reconnecting in ", delay,
                                       " ms"));
    }
  }
}

Uplink::SessionResult Uplink::RunSession() {
  SessionResult result;
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", Cat("Bearer ", options_.token));
  {
    std::lock_guard lock(mu_);
    if (stopping_) return result;
    active_ctx_ = &ctx;
  }
  auto stub = v1::AgentLink::NewStub(channel_);
  auto stream = stub->Connect(&ctx);

  auto finish = [&](SessionResult r) {
    r.status = stream->Finish();
    std::lock_guard lock(mu_);
    active_ctx_ = nullptr;
    return r;
  };

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
  if (!stream->Write(hello_msg)) return finish(result);

  v1::CollectorMessage in;
  if (!stream->Read(&in)) return finish(result);  // the collector ended it: Finish says why
  if (!in.has_welcome()) {
    if (in.has_overloaded()) result.overloaded_retry_after_ms = in.overloaded().retry_after_ms();
    ctx.TryCancel();
    return finish(result);
  }
  const auto& welcome = in.welcome();
  if (welcome.renumber_from() > 0) {
    if (auto st = outbox_.Renumber(welcome.renumber_from()); !st.ok()) {
      log::Error("uplink", Cat("cannot renumber outbox: ", st.ToString()));
      ctx.TryCancel();
      return finish(result);
    }
  } else if (welcome.last_committed_sequence() > 0) {
    if (auto st = outbox_.AckUpTo(welcome.last_committed_sequence()); !st.ok()) {
      log::Error("uplink", Cat("cannot apply resume point: ", st.ToString()));
    }
  }
  if (outbox_.fresh()) (void)outbox_.MarkSynced();
  int64_t status_interval_ms = welcome.status_interval_s() > 0
                                   ? int64_t{welcome.status_interval_s()} * 1000
                                   : options_.status_interval_ms;
  result.handshake_done = true;
  connected_ = true;
  log::Info("uplink", Cat("connected to ", options_.target, "; collector has up to ",
                                   welcome.last_committed_sequence()));

  // Shared between this writer loop and the reader thread, guarded by mu_.
  uint64_t acked = welcome.renumber_from() > 0 ? welcome.renumber_from() - 1
                                               : welcome.last_committed_sequence();
  bool reader_done = false;
  std::deque<uint64_t> pongs;

  std::thread reader([&] {
    v1::CollectorMessage msg;
    while (stream->Read(&msg)) {
      if (msg.has_ack()) {
        uint64_t up_to = msg.ack().up_to_sequence();
        if (auto st = outbox_.AckUpTo(up_to); !st.ok()) {
          log::Error("uplink", Cat("cannot delete acknowledged events: ", st.ToString()));
        }
        std::lock_guard lock(mu_);
        acked = std::max(acked, up_to);
      } else if (msg.has_ping()) {
        std::lock_guard lock(mu_);
        pongs.push_back(msg.ping().nonce());
      } else if (msg.has_overloaded()) {
        std::lock_guard lock(mu_);
        result.overloaded_retry_after_ms = msg.overloaded().retry_after_ms();
      }
      cv_.notify_all();
    }
    std::lock_guard lock(mu_);
    reader_done = true;
    cv_.notify_all();
  });

  uint64_t last_sent = acked;
  int64_t next_status_ms = clock_.MonotonicMs();
  bool write_failed = false;
  while (!write_failed) {
    uint64_t acked_now;
    std::deque<uint64_t> pongs_now;
    {
      std::lock_guard lock(mu_);
      if (stopping_ || reader_done) break;
      acked_now = acked;
      pongs_now.swap(pongs);
    }
    for (uint64_t nonce : pongs_now) {
      v1::AgentMessage m;
      m.mutable_pong()->set_nonce(nonce);
      if (!stream->Write(m)) write_failed = true;
    }
    if (clock_.MonotonicMs() >= next_status_ms) {
      OutboxStats s = outbox_.Stats();
      v1::AgentMessage m;
      auto* st = m.mutable_status();
      st->set_uptime_s((clock_.MonotonicMs() - started_ms_) / 1000);
      st->set_agent_version(kVersion);
      st->set_outbox_depth(s.depth);
      st->set_outbox_bytes(static_cast<uint64_t>(s.bytes));
      st->set_oldest_unsent_age_s(
          s.oldest_enqueued_ms ? std::max<int64_t>(0, (clock_.NowMs() - s.oldest_enqueued_ms) / 1000) : 0);
      st->set_gaps_total(s.gaps_total);
      st->set_sent_at_ms(clock_.NowMs());
      if (!stream->Write(m)) write_failed = true;
      next_status_ms = clock_.MonotonicMs() + status_interval_ms;
    }
    bool sent_any = false;
    last_sent = std::max(last_sent, acked_now);  // an ack never goes past what was sent
    if (last_sent - acked_now < options_.max_inflight) {
      auto events = outbox_.ReadAfter(last_sent, options_.batch_max_events, options_.batch_max_bytes);
      if (!events.ok()) {
        log::Error("uplink", Cat("cannot read outbox: ", events.status().ToString()));
      } else if (!events->empty()) {
        v1::AgentMessage m;
        auto* batch = m.mutable_batch();
        for (auto& e : *events) {
          auto* out = batch->add_events();
          out->set_sequence(e.sequence);
          out->set_kind(std::move(e.kind));
          out->set_severity(static_cast<v1::Severity>(e.severity));
          out->set_detected_at_ms(e.detected_at_ms);
          out->set_payload(std::move(e.payload));
        }
        if (!stream->Write(m)) {
          write_failed = true;
        } else {
          last_sent = events->back().sequence;
          sent_any = true;
        }
      }
    }
    if (sent_any) continue;
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(options_.idle_poll_ms), [&] {
      return stopping_ || reader_done || woken_ || !pongs.empty() || acked != acked_now;
    });
    woken_ = false;
  }
  ctx.TryCancel();
  reader.join();
  return finish(result);
}

}  // namespace setdiag::agent
