#include "tools/store_sim/control_server.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>
#include <optional>

#include "common/log.h"
#include "common/strings.h"
#include "common/url.h"

namespace setdiag::store_sim {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

ControlResponse JsonError(int status, const std::string& message) {
  return {status, nlohmann::json{{"error", message}}.dump()};
}

class ControlServer::Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, const ControlServer& server)
      : stream_(std::move(socket)), server_(server) {}
  void Start() { Read(); }
  void Cancel() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

 private:
  void Read() {
    parser_.emplace();
    parser_->body_limit(64 * 1024);
    stream_.expires_after(std::chrono::seconds(30));
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  void OnRead(beast::error_code ec) {
    if (ec == http::error::end_of_stream) {
      beast::error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
      return;
    }
    if (ec) {
      if (ec == http::error::body_limit)
        Reply(JsonError(413, "request body too large"), false);
      else if (ec != beast::error::timeout && ec != asio::error::operation_aborted &&
               ec != asio::error::connection_reset) {
        Reply(JsonError(400, "malformed HTTP request"), false);
      }
      return;
    }
    auto& req = parser_->get();
    ControlResponse out;
    try {
      out = server_.Dispatch(std::string(req.method_string()), std::string(req.target()),
                             std::move(req.body()));
    } catch (const std::exception& e) {
      log::Error("control", Cat(std::string(req.method_string()), " ", std::string(req.target()),
                                ": ", e.what()));
      out = JsonError(500, "internal error");
    }
    Reply(std::move(out), req.keep_alive());
  }

  void Reply(ControlResponse out, bool keep_alive) {
    auto res = std::make_shared<http::response<http::string_body>>();
    res->version(11);
    res->result(static_cast<http::status>(out.status));
    res->set(http::field::server, "setdiag-store-sim");
    res->set(http::field::content_type, out.content_type);
    res->keep_alive(keep_alive);
    res->body() = std::move(out.body);
    res->body() += '\n';
    res->prepare_payload();
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res, keep_alive](beast::error_code ec, size_t) {
                        if (!ec && keep_alive) self->Read();
                      });
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  const ControlServer& server_;
};

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
  beast::error_code ec;
  tcp::resolver resolver(io_);
  auto results = resolver.resolve(at.host, std::to_string(at.port), ec);
  if (ec || results.empty())
    return absl::InvalidArgumentError(Cat("control address ", at.ToString(), ": ", ec.message()));
  tcp::endpoint ep = results.begin()->endpoint();
  acceptor_ = std::make_unique<tcp::acceptor>(io_);
  acceptor_->open(ep.protocol(), ec);
  if (!ec) acceptor_->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_->bind(ep, ec);
  if (!ec) acceptor_->listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return absl::UnavailableError(Cat("cannot listen on ", at.ToString(), ": ", ec.message()));
  port_ = acceptor_->local_endpoint().port();
  Accept();
  return absl::OkStatus();
}

void ControlServer::Accept() {
  acceptor_->async_accept([this](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor_ || !acceptor_->is_open()) return;
    if (!ec) {
      auto conn = std::make_shared<Connection>(std::move(socket), *this);
      std::erase_if(connections_, [](const std::weak_ptr<Connection>& w) { return w.expired(); });
      connections_.push_back(conn);
      conn->Start();
    }
    Accept();
  });
}

void ControlServer::Close() {
  for (const auto& w : connections_) {
    if (auto conn = w.lock()) conn->Cancel();
  }
  connections_.clear();
  if (!acceptor_) return;
  beast::error_code ignored;
  acceptor_->close(ignored);
}

}  // namespace setdiag::store_sim
