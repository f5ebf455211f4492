#pragma once
// Heartbeats pushed by tills or scripts, over UDP datagrams and HTTP POST.
// Format (docs/till-watch.md): a JSON object {"store":"1042","till":7} with an
// optional "ts_ms"; at most 512 bytes; UDP one object per datagram, HTTP
// POST /v1/heartbeat. The arrival time on the agent's clock is what counts
// (till clocks are not trusted). Anything else is counted and dropped; the
// receiver never stops because of what it receives.
//
// Threads: one UDP thread (poll + recvfrom) and the HTTP server's I/O
// thread write into the HeartbeatBoard, which the till watch reads.

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "common/clock.h"
#include "common/http_server.h"
#include "common/mutex.h"

namespace setdiag::agent {

// Last pushed heartbeat per till (its arrival time). Thread-safe.
class HeartbeatBoard {
 public:
  void Record(int till, int64_t at_ms);
  std::map<int, int64_t> Snapshot() const;

 private:
  mutable Mutex mu_;
  std::map<int, int64_t> last_ ABSL_GUARDED_BY(mu_);
};

struct PushCounters {
  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> malformed{0};
  std::atomic<uint64_t> oversized{0};
  std::atomic<uint64_t> wrong_store{0};
};

inline constexpr size_t kMaxHeartbeatBytes = 512;

// Pure: the till number of a valid heartbeat for `store_id`, or
// InvalidArgument (malformed), FailedPrecondition (another store).
absl::StatusOr<int> ParseHeartbeat(std::string_view body, const std::string& store_id);

class PushReceiver {
 public:
  PushReceiver(std::string store_id, HeartbeatBoard& board, Clock& clock);
  ~PushReceiver();
  // "host:port"-style pieces; port 0 picks one (see udp_port()/http_port()).
  absl::Status StartUdp(const std::string& host, uint16_t port);
  absl::Status StartHttp(const std::string& host, uint16_t port);
  void Stop();
  uint16_t udp_port() const { return udp_port_; }
  uint16_t http_port() const { return http_ ? http_->port() : 0; }
  const PushCounters& counters() const { return counters_; }

 private:
  void Accept(std::string_view body, bool oversized);
  void UdpLoop();

  std::string store_id_;
  HeartbeatBoard& board_;
  Clock& clock_;
  PushCounters counters_;
  int udp_fd_ = -1;
  uint16_t udp_port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread udp_thread_;
  std::unique_ptr<HttpServer> http_;
};

}  // namespace setdiag::agent
