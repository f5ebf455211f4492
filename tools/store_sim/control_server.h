#pragma once
// The simulator's control API over HTTP/1.1 (Boost.Beast), on the shared I/O
// thread: a table of routes, each answering JSON. Handlers run on the I/O
// thread and must be quick. See docs/simulator.md for the routes.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "absl/status/status.h"
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
  std::string body;  // JSON
};

ControlResponse JsonError(int status, const std::string& message);

class ControlServer {
 public:
  using Handler = std::function<ControlResponse(const ControlRequest&)>;

  explicit ControlServer(boost::asio::io_context& io) : io_(io) {}
  ~ControlServer();

  // Routes are matched on method and exact path.
  void Route(const std::string& method, const std::string& path, Handler handler);
  absl::Status Listen(const HostPort& at);
  void Close();
  uint16_t port() const { return port_; }

  // Exposed for the connection code: dispatches one request.
  ControlResponse Dispatch(const std::string& method, const std::string& target, std::string body) const;

 private:
  void Accept();

  boost::asio::io_context& io_;
  std::unique_ptr<boost::asio::ip::tcp::acceptor> acceptor_;
  std::map<std::pair<std::string, std::string>, Handler> routes_;
  uint16_t port_ = 0;
};

// "a%2Cb+c" -> "a,b c".
std::string UrlDecode(std::string_view s);

}  // namespace setdiag::store_sim
