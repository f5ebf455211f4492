#pragma once
// One agent stream on the collector (collector/link/link_service.h), in
// three files by concern:
//   link_service.cc     the reactor plumbing: reads, writes, Finish, the
//                       timeouts, and what a frame is dispatched to;
//   ingest.cc           Hello, event batches and status: registration,
//                       commits and acknowledgements, Overloaded;
//   bundle_transfer.cc  diagnostic bundles: requests, offers, chunks onto
//                       disk (BundleFiles), completion and resyncs.
// Internal to the link library: nothing outside collector/link includes it.

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "collector/bundles/bundle_store.h"
#include "collector/link/link_service.h"
#include "collector/link/retry_schedule.h"
#include "collector/store/commit_queue.h"
#include "collector/store/storage.h"
#include "common/clock.h"
#include "common/log_throttle.h"
#include "common/mutex.h"
#include "common/strings.h"
#include "setdiag/v1/link.grpc.pb.h"

namespace setdiag::collector {

namespace v1 = ::setdiag::v1;

namespace link_internal {

class LinkSession;
struct SessionShared {
  Mutex mu;  // also guards every field of the session (LinkSession::WithSession)
  LinkSession* session ABSL_GUARDED_BY(mu) = nullptr;  // null once OnDone ran
};

}  // namespace link_internal

struct LinkService::Registry {
  // Repeated identical errors (every agent failing on the same broken
  // database) are logged once per 10 s with a count.
  LogThrottle errors{10'000};
  Mutex mu;
  // store -> connection -> the stream; only streams that speak version 2.
  std::map<std::string, std::map<int64_t, std::shared_ptr<link_internal::SessionShared>>> by_store
      ABSL_GUARDED_BY(mu);
  // Every open stream, for the timeouts.
  std::map<int64_t, std::weak_ptr<link_internal::SessionShared>> open ABSL_GUARDED_BY(mu);

  void Opened(int64_t connection, const std::shared_ptr<link_internal::SessionShared>& shared) {
    MutexLock lock(&mu);
    open[connection] = shared;
  }
  void Closed(int64_t connection) {
    MutexLock lock(&mu);
    open.erase(connection);
  }
  std::vector<std::shared_ptr<link_internal::SessionShared>> AllOpen() {
    MutexLock lock(&mu);
    std::vector<std::shared_ptr<link_internal::SessionShared>> out;
    for (const auto& [c, weak] : open) {
      if (auto s = weak.lock()) out.push_back(std::move(s));
    }
    return out;
  }

  void Add(const std::string& store, int64_t connection,
           std::shared_ptr<link_internal::SessionShared> shared) {
    MutexLock lock(&mu);
    by_store[store][connection] = std::move(shared);
  }
  void Remove(const std::string& store, int64_t connection) {
    MutexLock lock(&mu);
    auto it = by_store.find(store);
    if (it == by_store.end()) return;
    it->second.erase(connection);
    if (it->second.empty()) by_store.erase(it);
  }
  std::shared_ptr<link_internal::SessionShared> Newest(const std::string& store) {
    MutexLock lock(&mu);
    auto it = by_store.find(store);
    if (it == by_store.end() || it->second.empty()) return nullptr;
    return it->second.rbegin()->second;
  }
};

namespace link_internal {

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
              const LinkService::HelloSink& hello_sink, RetrySchedule& retry_schedule);

  void OnReadDone(bool ok) override;

  void OnWriteDone(bool ok) override;

  void OnDone() override;

  // A committed request for this stream's store (LinkService::DispatchBundle).
  static void Dispatch(const std::shared_ptr<Shared>& shared, const BundleRow& row);

  // LinkService's sweeper, about once a second.
  static void CheckTimeouts(const std::shared_ptr<Shared>& shared, int64_t now_ms);

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
      MutexLock lock(&shared->mu);
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
      MutexLock lock(&shared->mu);
      s->api_calls_--;
      if (s->finish_requested_ && !s->finished_ && !s->writing_ && s->api_calls_ == 0) {
        s->finished_ = true;
        after.finish = true;
        after.status = s->finish_status_;
      }
    }
    if (after.finish) s->Finish(after.status);
  }

  void RequestFinish(grpc::Status status, Actions& a);

  void LogStorageError(std::string_view what, const absl::Status& st);

  void Reject(grpc::StatusCode code, const std::string& why, Actions& a);

  void Send(const v1::CollectorMessage& msg, Actions& a);

  void PumpWrites(Actions& a);

  void MaybeRead(Actions& a);

  void TimeOut(int64_t now_ms, Actions& a);

  static std::string Seconds(int64_t ms) {
    return ms % 1000 == 0 ? Cat(ms / 1000) : Cat(ms / 1000, ".", (ms % 1000) / 100);
  }

  void OnAuthenticated(const absl::Status& st, const std::optional<StoreGrant>& grant, Actions& a);

  void HandleRead(bool ok, Actions& a);

  void HandleHello(Actions& a);

  // `setdiag-agent check`: the token is good for this store (checked
  // above); answer with the clock and end the stream. Nothing is stored.
  void AnswerProbe(Actions& a);

  // `backlog`: the events the agent still has to send, by which its slot in
  // the retry schedule is sized (collector/link/retry_schedule.h).
  void RejectOverloaded(uint64_t backlog, Actions& a);

  void HandleBatch(Actions& a);

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
                   bool reset = false);

  void SendBundleRequest(const std::string& id, uint64_t held, Actions& a);

  // `wire_id`: the agent's request_id.
  void SendBundleAck(const std::string& wire_id, uint64_t held, bool complete, Actions& a);

  bool CheckBundlePreconditions(Actions& a);

  void HandleBundleOffer(Actions& a);

  void HandleBundleChunk(Actions& a);

  void OnAppended(const std::string& id, uint64_t len, const BundleFiles::AppendResult& r,
                  Actions& a);

  void HandleBundleFailed(Actions& a);

  void HandleStatus(Actions& a);

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

}  // namespace link_internal
}  // namespace setdiag::collector
