#pragma once
// Heartbeat pushes: one per pinging till per interval, to a UDP endpoint
// and/or an HTTP endpoint. The format is a contract with the agent
// (docs/simulator.md): a UTF-8 JSON object
//   {"store":"1042","till":7,"ts_ms":1795731411731}
// one object per UDP datagram, or the body of an HTTP POST with
// Content-Type application/json. Owned by the tick loop's thread.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tools/store_sim/options.h"

namespace setdiag::store_sim {

std::string HeartbeatJson(const std::string& store, int till, int64_t ts_ms);

class HeartbeatPusher {
 public:
  HeartbeatPusher(std::string store, std::optional<HostPort> udp, std::optional<HttpUrl> http);
  ~HeartbeatPusher();

  bool enabled() const;
  // Sends one heartbeat per till. Failures are logged once per outage.
  void Push(const std::vector<int>& tills, int64_t now_ms);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace setdiag::store_sim
