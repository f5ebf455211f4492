#pragma once
// A TCP proxy on loopback that delays every byte by a fixed one-way latency
// in each direction: a store on a slow WAN link (EDGE, a congested 3G cell,
// satellite) without leaving the machine. Each chunk read is forwarded
// `one_way` after it arrived, so latency does not accumulate across chunks.

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

namespace setdiag::testing {

class LatencyProxy {
 public:
  // Listens on 127.0.0.1 (an ephemeral port) and forwards to
  // 127.0.0.1:upstream_port.
  LatencyProxy(int upstream_port, std::chrono::milliseconds one_way);
  ~LatencyProxy();
  LatencyProxy(const LatencyProxy&) = delete;
  LatencyProxy& operator=(const LatencyProxy&) = delete;

  int port() const { return port_; }
  // Connections accepted so far.
  int connections() const { return connections_.load(); }

 private:
  void AcceptLoop();
  void Pipe(int from, int to);

  int upstream_port_;
  std::chrono::milliseconds one_way_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::thread acceptor_;
  std::vector<std::thread> pipes_;  // only the acceptor thread adds
  std::vector<int> fds_;            // idem; closed in the destructor
};

}  // namespace setdiag::testing
