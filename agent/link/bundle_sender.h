#pragma once
// The bundle half of the agent's link (agent/link/uplink.h): a
// BundleRequest from the collector is built by the injected builder on the
// sender's own thread into <dir>/<id>.tar.gz (kept with a <id>.json sidecar
// across reconnects and restarts until the collector acknowledges it, or
// `keep_ms` passes), offered, and streamed in chunks read from disk when the
// uplink's loop thread calls Pump. The flight recorder builds and offers a
// bundle of its own for a critical episode (once per episode and state; a
// <id>.done marker remembers it across restarts).
//
// Threads: the uplink's reader thread calls OnRequest and OnAck, its loop
// thread OnSessionStart, Expire, CaptureFlightRecorder and Pump; the builder
// thread runs the builds. Every member is guarded by one mutex; the build
// itself runs without it. `wake_loop` is called when there is something to
// send (a build finished, a request to answer).

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/mutex.h"

namespace setdiag::v1 {
class AgentMessage;
}  // namespace setdiag::v1

namespace setdiag::agent {

// What to build: from a BundleRequest, or the flight recorder.
struct BundleBuildRequest {
  std::string request_id;
  std::string out_path;   // write the .tar.gz here
  int64_t window_ms = 0;  // 0: the configured window
  bool exclude_logs = false;
  std::string reason;  // who asked and why (collector) or the event (flight recorder)
};
struct BuiltBundle {
  std::string path;
  uint64_t size = 0;
  std::string sha256;         // of the whole .tar.gz, lowercase hex
  std::string manifest_json;  // the bundle's manifest.json
};
// Runs on the uplink's bundle thread; may take as long as the build does.
using BundleBuilder = std::function<absl::StatusOr<BuiltBundle>(const BundleBuildRequest&)>;

struct BundleSenderOptions {
  // Bundles are off unless both are set (requests are then answered with
  // BundleFailed).
  std::string dir;  // <state_dir>/bundles
  BundleBuilder builder;
  size_t chunk_bytes = 256 * 1024;
  size_t chunks_per_turn = 4;        // then the loop looks for events again
  int64_t keep_ms = 24 * 3'600'000;  // built, never acknowledged: deleted after this
  bool flight_recorder = true;
  size_t max_queued = 8;  // builds waiting; more flight recorder triggers are dropped
};

class BundleSender {
 public:
  BundleSender(BundleSenderOptions options, Clock& clock, std::function<void()> wake_loop);
  ~BundleSender();
  BundleSender(const BundleSender&) = delete;
  BundleSender& operator=(const BundleSender&) = delete;

  bool enabled() const { return !options_.dir.empty() && options_.builder != nullptr; }
  // Takes up the bundles built before a restart and starts the builder.
  void Start();
  // Waits for a build in progress (within its steps' timeouts).
  void Stop();

  // A BundleRequest: build it, or send (again, from `resume_offset`) one
  // that is built. `sha256`: of the file the collector holds bytes of.
  void OnRequest(const std::string& id, uint64_t resume_offset, const std::string& sha256,
                 int64_t window_ms, bool exclude_logs, const std::string& reason);
  // A BundleAck: a complete or unwanted bundle's local copy is deleted.
  void OnAck(const std::string& id, bool complete, bool cancelled);
  // A new stream: every built bundle is offered again.
  void OnSessionStart();
  // Deletes built bundles nobody took within `keep_ms`.
  void Expire();
  // The flight recorder: capture a bundle for this episode now (once per
  // episode and state).
  void CaptureFlightRecorder(const std::string& episode, const std::string& event_kind,
                             const std::string& state);

  // Writes what is due (failures, offers, up to chunks_per_turn chunks)
  // through `write`. Returns whether it wrote anything; sets
  // `*write_failed` when a write failed.
  using WriteFn = std::function<bool(const v1::AgentMessage&)>;
  bool Pump(const WriteFn& write, bool* write_failed);

 private:
  struct OutBundle;
  void LoadBuiltBundles();
  void BuilderLoop();
  void Forget(const std::string& id, bool done_marker) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const BundleSenderOptions options_;
  Clock& clock_;
  const std::function<void()> wake_loop_;

  Mutex mu_;
  CondVar cv_;  // the builder waits on it: build_queue_ or stopping_ changed
  std::map<std::string, std::unique_ptr<OutBundle>> bundles_ ABSL_GUARDED_BY(mu_);  // by request id
  std::deque<std::string> build_queue_ ABSL_GUARDED_BY(mu_);
  std::deque<std::pair<std::string, std::string>> failures_
      ABSL_GUARDED_BY(mu_);  // (id, error) to report
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread builder_;
};

}  // namespace setdiag::agent
