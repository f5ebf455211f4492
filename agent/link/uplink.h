#pragma once
// The agent's one outbound link: a long-lived bidirectional gRPC stream to
// the collector that drains the outbox in order and deletes events only when
// the collector acknowledges a durable commit.
//
// Threads: Start() runs one loop thread that connects, writes (Hello,
// batches, status, pongs) and reconnects with backoff; each session adds a
// reader thread that applies acks and queues pongs. Stop() cancels the
// stream and joins both. Wake() may be called from any thread.
//
// Diagnostic bundles (protocol version 2, docs/protocol.md) are the
// BundleSender's (agent/link/bundle_sender.h): the reader thread hands it
// the collector's requests and acks, the loop thread lets it write offers
// and chunks after any waiting event batch, and asks it for a flight
// recorder capture when it sends a critical event whose payload says
// "raised" or "escalated".

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/link/bundle_sender.h"
#include "agent/store/detector_state.h"
#include "agent/store/outbox.h"
#include "common/backoff.h"
#include "common/clock.h"
#include "common/log_throttle.h"
#include "common/mutex.h"

namespace grpc {
class ClientContext;
class Channel;
}  // namespace grpc

namespace setdiag::v1 {
class AgentMessage;
class Welcome;
}  // namespace setdiag::v1

namespace setdiag::agent {

namespace v1 = ::setdiag::v1;

struct UplinkOptions {
  std::string target;  // "host:port" of the collector
  std::string store_id;
  std::string agent_id;
  std::string token;        // store token; sent as metadata, never logged
  std::string ca_pem;       // root CA for TLS; empty means plaintext
  std::string server_name;  // TLS name override; empty uses the target host
  BackoffPolicy backoff;
  size_t batch_max_events = 500;
  size_t batch_max_bytes = 1024 * 1024;
  uint64_t max_inflight = 5000;         // sent but not yet acknowledged
  int64_t status_interval_ms = 30'000;  // the collector's Welcome may change it
  int64_t idle_poll_ms = 200;           // picks up events other processes appended

  // Bundles: off unless both are set (requests are then answered with
  // BundleFailed).
  std::string bundle_dir;  // <state_dir>/bundles
  BundleBuilder bundle_builder;
  size_t bundle_chunk_bytes = 256 * 1024;
  size_t bundle_chunks_per_turn = 4;        // then the loop looks for events again
  int64_t bundle_keep_ms = 24 * 3'600'000;  // built, never acknowledged: deleted after this
  bool flight_recorder = true;
  size_t bundle_max_queued = 8;  // builds waiting; more flight recorder triggers are dropped

  // The condition episodes the agent holds raised, for every Hello
  // (Hello.held_episodes, docs/protocol.md). Called on the loop thread;
  // nullopt (or no function) means "not known": the Hello says nothing.
  std::function<std::optional<std::vector<HeldEpisode>>()> held_episodes;
};

// The channel to the collector: TLS against options.ca_pem (plaintext when
// empty), keepalives, our own user agent.
std::shared_ptr<grpc::Channel> MakeLinkChannel(const UplinkOptions& options);

// A preflight handshake with the collector (Hello.probe, for
// `setdiag-agent check`): the token and store id are checked and the
// collector's clock read; no events are sent and nothing is stored on
// either side.
struct CollectorProbe {
  int code = 0;         // grpc::StatusCode: OK when the collector answered with a Welcome
  std::string message;  // gRPC's error message otherwise
  int64_t server_time_ms = 0;
  int64_t offset_ms = 0;  // collector's clock minus ours, at mid round trip
  int64_t round_trip_ms = 0;
};
CollectorProbe ProbeCollector(const UplinkOptions& options, int64_t timeout_ms, Clock& clock);

// What a failed connection says about TLS, for the log and for
// `setdiag-agent check`: a plaintext agent whose collector closes the
// connection unanswered (it probably expects TLS), a TLS agent whose
// collector answers in plaintext, or a TLS handshake that failed (an
// untrusted certificate, a name mismatch). Only meaningful for a failure
// before the collector's Welcome; `code` is a grpc::StatusCode.
enum class LinkTlsProblem { kNone, kCollectorExpectsTls, kCollectorWithoutTls, kHandshakeFailed };
LinkTlsProblem ClassifyTlsProblem(bool agent_uses_tls, int code, const std::string& message);
// What is wrong and what to do, in English, for the agent's log.
const char* LinkTlsHint(LinkTlsProblem problem);

class Uplink {
 public:
  Uplink(UplinkOptions options, Outbox& outbox, Clock& clock);
  ~Uplink();
  Uplink(const Uplink&) = delete;
  Uplink& operator=(const Uplink&) = delete;

  void Start();
  void Stop();
  // New events are in the outbox.
  void Wake();
  bool connected() const { return connected_.load(); }

 private:
  struct SessionResult;
  struct Session;
  void Run();
  SessionResult RunSession();
  v1::AgentMessage MakeHello();
  v1::AgentMessage MakeStatus();
  // Applies the collector's Welcome (resume point, renumbering); false when
  // the outbox cannot follow it and the session must end.
  bool ApplyWelcome(const v1::Welcome& welcome);
  // The reader thread of a session: acks, pings, Overloaded, bundle messages.
  void ReadLoop(Session& session);
  // Sends the next batch after `*last_sent` if the in-flight window allows;
  // returns whether one was sent (`*write_failed` when the write failed).
  bool SendBatch(Session& session, uint64_t acked_now, uint64_t* last_sent, bool* write_failed);

  UplinkOptions options_;
  Outbox& outbox_;
  Clock& clock_;
  Backoff backoff_;
  // A TLS mismatch repeats at every reconnect: one error line per window.
  LogThrottle tls_errors_{5 * 60'000};
  std::shared_ptr<grpc::Channel> channel_;
  int64_t started_ms_;

  // Also guards a session's Session fields (acked, pongs, reader_done and
  // the result), which the analysis cannot name from inside Session.
  Mutex mu_;
  CondVar cv_;  // something for the loop: woken_, an ack, a pong, the reader's end
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool woken_ ABSL_GUARDED_BY(mu_) = false;
  grpc::ClientContext* active_ctx_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::atomic<bool> connected_{false};
  std::thread thread_;

  // After the members above: its builder thread may wake the loop.
  BundleSender bundles_;
};

}  // namespace setdiag::agent
