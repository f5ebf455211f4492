#include "tools/store_sim/heartbeat.h"

#include <boost/asio.hpp>

#include "common/http_client.h"
#include "common/log.h"
#include "common/strings.h"

namespace setdiag::store_sim {

namespace asio = boost::asio;
using udp = asio::ip::udp;

std::string HeartbeatJson(const std::string& store, int till, int64_t ts_ms) {
  // The store id is digits only (a SET shop number), so no escaping is needed.
  return Cat(R"({"store":")", store, R"(","till":)", till, R"(,"ts_ms":)", ts_ms, "}");
}

// Logs the first failure of a run of failures and the recovery after it.
class OutageLog {
 public:
  explicit OutageLog(std::string what) : what_(std::move(what)) {}
  void Failed(std::string_view why) {
    if (!down_) log::Warn("push", Cat(what_, ": ", why, " (logged once until it recovers)"));
    down_ = true;
  }
  void Succeeded() {
    if (down_) log::Info("push", Cat(what_, ": delivering again"));
    down_ = false;
  }

 private:
  std::string what_;
  bool down_ = false;
};

struct HeartbeatPusher::Impl {
  std::string store;
  asio::io_context io;
  std::optional<udp::socket> udp_socket;
  std::optional<udp::endpoint> udp_target;
  std::optional<HostPort> udp_addr;
  std::optional<HttpUrl> http_url;
  std::unique_ptr<HttpClient> http;
  OutageLog udp_log{"UDP heartbeats"};
  OutageLog http_log{"HTTP heartbeats"};

  bool ResolveUdp() {
    if (udp_target) return true;
    boost::system::error_code ec;
    udp::resolver resolver(io);
    auto results = resolver.resolve(udp_addr->host, std::to_string(udp_addr->port), ec);
    if (ec || results.empty()) {
      udp_log.Failed(Cat("cannot resolve ", udp_addr->host, ": ", ec.message()));
      return false;
    }
    udp_target = results.begin()->endpoint();
    udp_socket.emplace(io);
    udp_socket->open(udp_target->protocol(), ec);
    if (ec) {
      udp_log.Failed(Cat("cannot open a UDP socket: ", ec.message()));
      udp_target.reset();
      udp_socket.reset();
      return false;
    }
    return true;
  }
};

HeartbeatPusher::HeartbeatPusher(std::string store, std::optional<HostPort> udp_addr,
                                 std::optional<HttpUrl> http)
    : impl_(std::make_unique<Impl>()) {
  impl_->store = std::move(store);
  impl_->udp_addr = std::move(udp_addr);
  impl_->http_url = std::move(http);
  if (impl_->http_url) {
    impl_->http =
        std::make_unique<HttpClient>(impl_->http_url->host, impl_->http_url->port,
                                     HttpClientOptions{.timeout = std::chrono::milliseconds(1000),
                                                       .user_agent = "setdiag-store-sim",
                                                       .resolve = SystemResolver()});
  }
}

HeartbeatPusher::~HeartbeatPusher() = default;

bool HeartbeatPusher::enabled() const { return impl_->udp_addr || impl_->http_url; }

void HeartbeatPusher::Push(const std::vector<int>& tills, int64_t now_ms) {
  if (impl_->udp_addr && impl_->ResolveUdp()) {
    bool ok = true;
    for (int till : tills) {
      std::string msg = HeartbeatJson(impl_->store, till, now_ms);
      boost::system::error_code ec;
      impl_->udp_socket->send_to(asio::buffer(msg), *impl_->udp_target, 0, ec);
      if (ec) {
        impl_->udp_log.Failed(Cat("send to ", impl_->udp_addr->ToString(), ": ", ec.message()));
        ok = false;
        break;
      }
    }
    if (ok) impl_->udp_log.Succeeded();
  }
  if (impl_->http) {
    bool ok = true;
    for (int till : tills) {
      auto reply = impl_->http->Request("POST", impl_->http_url->target,
                                        HeartbeatJson(impl_->store, till, now_ms));
      if (!reply.ok()) {
        // The endpoint is down: skip the rest of this tick rather than wait
        // out a timeout per till.
        impl_->http_log.Failed(SV(reply.status().message()));
        ok = false;
        break;
      }
      if (reply->status < 200 || reply->status >= 300) {
        impl_->http_log.Failed(Cat(impl_->http_url->ToString(), " answered ", reply->status));
        ok = false;
      }
    }
    if (ok) impl_->http_log.Succeeded();
  }
}

}  // namespace setdiag::store_sim
