#include "tools/store_sim/control_server.h"

#include <boost/asio/post.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <nlohmann/json.hpp>

#include "common/http_client.h"
#include "common/log.h"
#include "common/strings.h"
#include "common/url.h"

namespace setdiag::store_sim {

namespace asio = boost::asio;

ControlResponse JsonError(int status, const std::string& message) {
  return {status, nlohmann::json{{"error", message}}.dump()};
}

ControlServer::~ControlServer() { Close(); }

void ControlServer::Route(const std::string& method, const std::string& path, Handler handler) {
  routes_[{method, path}] = std::move(handler);
}

ControlResponse ControlServer::Dispatch(const std::string& method, const std::string& target,
                                        std::string body) const {
  ControlRequest req;
  req.method = method;
  req.body = std::move(body);
  RequestTarget parsed = ParseRequestTarget(target);
  req.path = std::move(parsed.path);
  req.query = std::move(parsed.query);
  auto it = routes_.find({req.method, req.path});
  if (it != routes_.end()) return it->second(req);
  if (fallback_) return fallback_(req);
  for (const auto& [key, handler] : routes_) {
    if (key.second == req.path) return JsonError(405, Cat("use ", key.first, " for ", req.path));
  }
  return JsonError(404, Cat("no such endpoint: ", req.path));
}

absl::Status ControlServer::Listen(const HostPort& at) {
  // The server binds IP literals; "localhost" and other names resolve here.
  auto addresses = SystemResolver()(at.host, std::chrono::seconds(5));
  if (!addresses.ok() || addresses->empty())
    return absl::InvalidArgumentError(Cat(
        "control address ", at.ToString(), ": ",
        addresses.ok() ? std::string("no address") : std::string(addresses.status().message())));
  Close();  // a server listening already goes first
  closing_ = false;
  HttpServer::Options options;
  options.max_body_bytes = 64 * 1024;
  auto server = std::make_unique<HttpServer>(
      [this](const HttpRequest& r) {
        // Routes touch the simulator's state, which only its I/O thread
        // does: run them there and wait. Close() on that thread must not
        // wait for us in turn, hence the closing_ check.
        auto done = std::make_shared<std::promise<ControlResponse>>();
        auto answer = done->get_future();
        const uint64_t generation = generation_;
        asio::post(io_, [this, done, r, generation] {
          // Closed (and maybe listening again) since: the client was
          // answered 503 and this request must not take effect.
          if (generation != generation_) return done->set_value(JsonError(503, "closed"));
          try {
            done->set_value(Dispatch(r.method, r.target, r.body));
          } catch (const std::exception& e) {
            log::Error("control", Cat(r.method, " ", r.target, ": ", e.what()));
            done->set_value(JsonError(500, "internal error"));
          }
        });
        while (answer.wait_for(std::chrono::milliseconds(50)) != std::future_status::ready) {
          if (closing_) return HttpResponse{503, R"({"error":"closing"})"};
        }
        ControlResponse out = answer.get();
        HttpResponse res{out.status, out.body + "\n"};
        res.body_type = out.content_type;
        return res;
      },
      options);
  if (absl::Status st = server->Start(addresses->front(), at.port); !st.ok())
    return absl::UnavailableError(Cat("cannot listen on ", at.ToString(), ": ", st.message()));
  port_ = server->port();
  server_ = std::move(server);
  return absl::OkStatus();
}

void ControlServer::Close() {
  closing_ = true;
  ++generation_;
  server_.reset();  // stops listening and drops the open connections
}

}  // namespace setdiag::store_sim
