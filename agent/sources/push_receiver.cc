#include "agent/sources/push_receiver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "common/log.h"
#include "common/strings.h"

namespace setdiag::agent {

void HeartbeatBoard::Record(int till, int64_t at_ms) {
  // The newest arrival wins, even if the clock stepped back meanwhile.
  MutexLock lock(&mu_);
  last_[till] = at_ms;
}

std::map<int, int64_t> HeartbeatBoard::Snapshot() const {
  MutexLock lock(&mu_);
  return last_;
}

absl::StatusOr<int> ParseHeartbeat(std::string_view body, const std::string& store_id) {
  if (body.size() > kMaxHeartbeatBytes)
    return absl::InvalidArgumentError("heartbeat over 512 bytes");
  auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return absl::InvalidArgumentError("not a JSON object");
  auto store = j.find("store");
  auto till = j.find("till");
  if (store == j.end() || till == j.end())
    return absl::InvalidArgumentError("needs \"store\" and \"till\"");
  std::string store_text;
  if (store->is_string())
    store_text = store->get<std::string>();
  else if (store->is_number_integer())
    store_text = std::to_string(store->get<int64_t>());
  else
    return absl::InvalidArgumentError("\"store\" must be a string");
  if (!till->is_number_integer()) return absl::InvalidArgumentError("\"till\" must be an integer");
  int64_t number = till->get<int64_t>();
  if (number < 1 || number > 99'999) return absl::InvalidArgumentError("\"till\" out of range");
  if (store_text != store_id) return absl::FailedPreconditionError("heartbeat for another store");
  return static_cast<int>(number);
}

PushReceiver::PushReceiver(std::string store_id, HeartbeatBoard& board, Clock& clock)
    : store_id_(std::move(store_id)), board_(board), clock_(clock) {}

PushReceiver::~PushReceiver() { Stop(); }

void PushReceiver::Accept(std::string_view body, bool oversized) {
  if (oversized) {
    counters_.oversized++;
    return;
  }
  auto till = ParseHeartbeat(body, store_id_);
  if (till.ok()) {
    board_.Record(*till, clock_.NowMs());
    counters_.accepted++;
  } else if (till.status().code() == absl::StatusCode::kFailedPrecondition) {
    counters_.wrong_store++;
  } else {
    // Counted, not logged per datagram: garbage must not flood the log.
    if (counters_.malformed++ % 1000 == 0) {
      log::Warn("push", Cat("ignoring malformed heartbeats (", counters_.malformed.load(),
                            " so far): ", till.status().message()));
    }
  }
}

absl::Status PushReceiver::StartUdp(const std::string& host, uint16_t port) {
  udp_fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (udp_fd_ < 0) return absl::UnavailableError(Cat("udp socket: ", std::strerror(errno)));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(Cat("push.udp_listen: '", host, "' is not an IPv4 address"));
  }
  if (::bind(udp_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return absl::UnavailableError(
        Cat("cannot listen for heartbeats on udp ", host, ":", port, ": ", std::strerror(errno)));
  }
  socklen_t len = sizeof addr;
  ::getsockname(udp_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  udp_port_ = ntohs(addr.sin_port);
  udp_thread_ = std::thread([this] { UdpLoop(); });
  return absl::OkStatus();
}

void PushReceiver::UdpLoop() {
  std::string buf(65536, '\0');
  while (!stopping_) {
    pollfd p{udp_fd_, POLLIN, 0};
    if (::poll(&p, 1, 200) <= 0) continue;
    ssize_t n = ::recv(udp_fd_, buf.data(), buf.size(), 0);
    if (n < 0) continue;
    auto size = static_cast<size_t>(n);
    Accept(std::string_view(buf.data(), size), size > kMaxHeartbeatBytes);
  }
}

absl::Status PushReceiver::StartHttp(const std::string& host, uint16_t port) {
  http_ = std::make_unique<HttpServer>(
      [this](const HttpRequest& r) -> HttpResponse {
        if (r.target != "/v1/heartbeat")
          return {404, R"({"error":"POST heartbeats to /v1/heartbeat"})"};
        if (r.method != "POST") return {405, R"({"error":"use POST"})"};
        if (r.body.size() > kMaxHeartbeatBytes) {
          counters_.oversized++;
          return {413, R"({"error":"heartbeat over 512 bytes"})"};
        }
        auto till = ParseHeartbeat(r.body, store_id_);
        if (!till.ok()) {
          Accept(r.body, false);  // counts it
          return {400, nlohmann::json{{"error", std::string(till.status().message())}}.dump()};
        }
        board_.Record(*till, clock_.NowMs());
        counters_.accepted++;
        return {200, R"({"ok":true})"};
      },
      /*max_body_bytes=*/4096);
  return http_->Start(host, port);
}

void PushReceiver::Stop() {
  stopping_ = true;
  if (udp_thread_.joinable()) udp_thread_.join();
  if (udp_fd_ >= 0) {
    ::close(udp_fd_);
    udp_fd_ = -1;
  }
  if (http_) http_->Stop();
}

}  // namespace setdiag::agent
