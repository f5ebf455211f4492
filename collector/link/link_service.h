#pragma once
// The collector's side of the agent link: the gRPC callback (asynchronous)
// implementation of setdiag.v1.AgentLink. No thread per stream: reactors run
// on gRPC's threads, never block, and hand all storage work to the
// CommitQueue; acknowledgements are written only after the commit.
//
// Every frame is validated (docs/protocol.md lists the rules); a bad frame
// ends that stream with a clear status and everyone else keeps streaming.
//
// Bundle messages carry the agent's request_id, and everything sent back to
// the agent carries it too; rows, files and logs use the collector's id of
// that bundle, BundleIdForOffer(store, request_id) (bundle_store.h), so a
// flight recorder id one store sends can never be another store's.

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "collector/bundles/bundle_store.h"
#include "collector/link/retry_schedule.h"
#include "collector/store/commit_queue.h"
#include "collector/store/storage.h"
#include "common/clock.h"
#include "common/mutex.h"
#include "setdiag/v1/link.grpc.pb.h"

namespace setdiag::collector {

struct IngestLimits {
  size_t max_events_per_batch = 1000;
  size_t max_payload_bytes = 64 * 1024;
  size_t max_kind_bytes = 128;
  size_t max_id_bytes = 128;
  int64_t max_future_skew_ms = 24 * 3'600'000;     // detection times ahead of us
  int64_t min_detected_at_ms = 1'577'836'800'000;  // 2020-01-01: older is a broken clock
  size_t max_batches_in_flight = 16;               // per stream, before we stop reading
  // Replies (acks, pings, bundle requests) queued for one stream whose agent
  // does not read them; beyond it we stop reading that stream too, so one
  // peer that never reads cannot make the collector hold its acks in memory.
  size_t max_queued_replies = 64;
  uint32_t status_interval_s = 30;
  // A stream that sends no Hello this long after it opened is closed.
  int64_t hello_timeout_ms = 30'000;
  // A stream that said Hello and then sends nothing for this long while we
  // wait for it is closed (agents send a status every status_interval_s);
  // 0: 3 x status_interval_s + 10 s. Time we do not read (our own
  // backpressure) does not count.
  int64_t idle_timeout_ms = 0;
  int64_t IdleTimeoutMs() const {
    return idle_timeout_ms > 0 ? idle_timeout_ms : 3 * int64_t{status_interval_s} * 1000 + 10'000;
  }
};

// Diagnostic bundles over the link (protocol version 2).
struct BundleLinkLimits {
  uint64_t max_bundle_bytes = 1ULL << 30;
  size_t max_chunk_bytes = 1024 * 1024;  // data per BundleChunk
  size_t max_manifest_bytes = 1024 * 1024;
  size_t max_bytes_in_flight = 8 * 1024 * 1024;  // per stream, queued for the files thread
};

struct IngestCounters {
  std::atomic<uint64_t> streams_open{0};
  std::atomic<uint64_t> events_stored{0};
  std::atomic<uint64_t> events_duplicate{0};
  std::atomic<uint64_t> frames_rejected{0};
  std::atomic<uint64_t> auth_failures{0};
  std::atomic<uint64_t> bundle_bytes_received{0};
  std::atomic<uint64_t> bundles_completed{0};
  std::atomic<uint64_t> overloaded{0};  // Overloaded answers sent
};

// Hello.held_episodes: at most this many, each episode at most this long.
inline constexpr size_t kMaxHeldEpisodes = 1000;
inline constexpr size_t kMaxEpisodeBytes = 512;
// The highest event sequence the collector's store can hold: sequences are
// SQLite INTEGERs (signed 64 bits). A larger one would wrap to a negative
// number and the next Welcome would resume from the wrong place, so frames
// carrying one are refused (docs/protocol.md).
inline constexpr uint64_t kMaxSequence = 0x7fff'ffff'ffff'ffffULL;

// What an agent says it holds raised at Hello (Hello.held_episodes_known and
// held_episodes as (kind, episode)); `known` false: an agent that does not say.
struct HeldEpisodes {
  bool known = false;
  std::vector<std::pair<std::string, std::string>> episodes;
};

// The method is registered "raw" (ByteBuffer in and out) so that a frame
// that is not a valid AgentMessage gets INVALID_ARGUMENT from us instead of
// a silently dropped read inside gRPC.
class LinkService final : public setdiag::v1::AgentLink::WithRawCallbackMethod_Connect<
                              setdiag::v1::AgentLink::Service> {
 public:
  // Runs on the writer thread, in the transaction that stored a batch, with
  // the events that were new (the ticket engine).
  using EventSink =
      std::function<absl::Status(sql::Db& db, const std::string& agent_id,
                                 const std::string& store_id, const std::vector<EventRow>& added)>;
  // Runs on the writer thread, in the transaction that registers a Hello,
  // after the registration (the ticket engine's reconciliation). A failure
  // fails the Hello like a storage error.
  using HelloSink =
      std::function<absl::Status(sql::Db& db, const std::string& agent_id,
                                 const std::string& store_id, const HeldEpisodes& held)>;
  // Without `bundles` the service speaks protocol version 1 only (no bundles).
  LinkService(CommitQueue& queue, Clock& clock, IngestLimits limits, EventSink sink = nullptr,
              BundleFiles* bundles = nullptr, BundleLinkLimits bundle_limits = {});
  ~LinkService() override;
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Connect(
      grpc::CallbackServerContext* context) override;
  const IngestCounters& counters() const { return counters_; }
  // Before the server starts.
  void SetHelloSink(HelloSink sink);

  // Sends a committed bundle request to the store's connected agent (the
  // newest stream that speaks version 2). Returns false when none is
  // connected: the request then goes out when the agent next says Hello.
  // Call it from the CommitQueue's completion callback of the job that
  // created the row, so it is ordered with Hellos (which read pending
  // requests on the same thread).
  bool DispatchBundle(const BundleRow& row);

  struct Registry;  // live streams by store

 private:
  CommitQueue& queue_;
  Clock& clock_;
  IngestLimits limits_;
  EventSink sink_;
  HelloSink hello_sink_;
  BundleFiles* bundles_;
  BundleLinkLimits bundle_limits_;
  IngestCounters counters_;
  std::atomic<int64_t> next_connection_{1};
  std::unique_ptr<Registry> registry_;
  // When agents turned away by Overloaded come back: shared by all streams.
  RetrySchedule retry_schedule_;
  // Closes streams that sent no Hello, or nothing for too long (Sweep).
  void SweepLoop();
  Mutex sweep_mu_;
  CondVar sweep_cv_;  // stopping_ changed
  bool stopping_ ABSL_GUARDED_BY(sweep_mu_) = false;
  std::thread sweeper_;
};

// Pure frame validation, exposed for unit tests. Empty string: valid.
std::string ValidateHello(const setdiag::v1::Hello& hello, const IngestLimits& limits);
std::string ValidateBatch(const setdiag::v1::EventBatch& batch, const IngestLimits& limits,
                          int64_t now_ms);

}  // namespace setdiag::collector
