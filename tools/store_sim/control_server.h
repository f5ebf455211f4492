#pragma once
// The simulator's control API over HTTP/1.1: a table of routes, each
// answering JSON, served by common/http_server.h (setdiag's one HTTP
// server); the routes run on the simulator's shared I/O thread and must be
// quick. See docs/simulator.md for the routes.
// The same small server also plays the store server's SOAP port
// (soap_stub.cc): routes may answer another content type, a fallback handler
// may replace the JSON 404/405, and Close() drops open connections too, so
// a closed port stops answering at once.

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "common/http_server.h"
#include "tools/store_sim/options.h"

namespace setdiag::store_sim {

struct ControlRequest {
  std::string method;
  std::string path;
  std::map<std::string, std::string> query;  // decoded
  std::string body;
};

struct ControlResponse {
  int status = 200;
  std::string body;  // JSON unless content_type says otherwise
  std::string content_type = "application/json; charset=utf-8";
};

ControlResponse JsonError(int status, const std::string& message);

class ControlServer {
 public:
  using Handler = std::function<ControlResponse(const ControlRequest&)>;

  explicit ControlServer(boost::asio::io_context& io) : io_(io) {}
  ~ControlServer();

  // Routes are matched on method and exact path.
  void Route(const std::string& method, const std::string& path, Handler handler);
  // Answers requests no route matches (instead of a JSON 404/405).
  void Fallback(Handler handler) { fallback_ = std::move(handler); }
  absl::Status Listen(const HostPort& at);
  // Stops listening and closes the open connections. Listen() may follow.
  void Close();
  bool listening() const { return server_ != nullptr; }
  uint16_t port() const { return port_; }

  // Exposed for the connection code: dispatches one request.
  ControlResponse Dispatch(const std::string& method, const std::string& target,
                           std::string body) const;

 private:
  boost::asio::io_context& io_;
  std::unique_ptr<HttpServer> server_;
  std::atomic<bool> closing_{false};
  // Counts Close() calls: a request queued before one does not run after it.
  std::atomic<uint64_t> generation_{0};
  std::map<std::pair<std::string, std::string>, Handler> routes_;
  Handler fallback_;
  uint16_t port_ = 0;
};

}  // namespace setdiag::store_sim
