#pragma once
// The agent's one outbound link: a long-lived bidirectional gRPC stream to
// the collector that drains the outbox in order and deletes events only when
// the collector acknowledges a durable commit.
//
// Threads: Start() runs one loop thread that connects, writes (Hello,
// batches, status, pongs) and reconnects with backoff; each session adds a
// reader thread that applies acks and queues pongs. Stop() cancels the
// stream and joins both. Wake() may be called from any thread.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "agent/outbox.h"
#include "common/backoff.h"
#include "common/clock.h"

namespace grpc {
class ClientContext;
class Channel;
}  // namespace grpc

namespace setdiag::agent {

struct UplinkOptions {
  std::string target;       // "host:port" of the collector
  std::string store_id;
  std::string agent_id;
  std::string token;        // store token; sent as metadata, never logged
  std::string ca_pem;       // root CA for TLS; empty means plaintext
  std::string server_name;  // TLS name override; empty uses the target host
  BackoffPolicy backoff;
  size_t batch_max_events = 500;
  size_t batch_max_bytes = 1024 * 1024;
  uint64_t max_inflight = 5000;        // sent but not yet acknowledged
  int64_t status_interval_ms = 30'000;  // the collector's Welcome may change it
  int64_t idle_poll_ms = 200;           // picks up events other processes appended
};

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
  void Run();
  SessionResult RunSession();
  std::shared_ptr<grpc::Channel> MakeChannel() const;

  UplinkOptions options_;
  Outbox& outbox_;
  Clock& clock_;
  Backoff backoff_;
  std::shared_ptr<grpc::Channel> channel_;
  int64_t started_ms_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool woken_ = false;
  grpc::ClientContext* active_ctx_ = nullptr;  // guarded by mu_
  std::atomic<bool> connected_{false};
  std::thread thread_;
};

}  // namespace setdiag::agent
