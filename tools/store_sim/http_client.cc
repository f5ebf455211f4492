#include "tools/store_sim/http_client.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <optional>

#include "common/strings.h"

namespace setdiag::store_sim {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct HttpClient::Impl {
  std::string host;
  uint16_t port;
  std::chrono::milliseconds timeout;
  asio::io_context io;
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buffer;

  // Runs queued async work to completion; tcp_stream's timer bounds it.
  void Run() {
    io.restart();
    io.run();
  }

  beast::error_code Connect() {
    beast::error_code ec;
    tcp::resolver resolver(io);
    auto endpoints = resolver.resolve(host, std::to_string(port), ec);
    if (ec) return ec;
    stream.emplace(io);
    buffer.clear();
    stream->expires_after(timeout);
    stream->async_connect(endpoints, [&](beast::error_code e, const tcp::endpoint&) { ec = e; });
    Run();
    if (ec) stream.reset();
    return ec;
  }

  beast::error_code Exchange(http::request<http::string_body>& req,
                             http::response<http::string_body>* res) {
    beast::error_code ec;
    stream->expires_after(timeout);
    http::async_write(*stream, req, [&](beast::error_code e, size_t) { ec = e; });
    Run();
    if (ec) return ec;
    http::response_parser<http::string_body> parser;
    parser.body_limit(16 * 1024 * 1024);
    stream->expires_after(timeout);
    http::async_read(*stream, buffer, parser, [&](beast::error_code e, size_t) { ec = e; });
    Run();
    if (!ec) *res = parser.release();
    return ec;
  }
};

HttpClient::HttpClient(std::string host, uint16_t port, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>()) {
  impl_->host = std::move(host);
  impl_->port = port;
  impl_->timeout = timeout;
}

HttpClient::~HttpClient() = default;

absl::StatusOr<HttpReply> HttpClient::Request(const std::string& method, const std::string& target,
                                              const std::string& body,
                                              const std::string& content_type) {
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  req.set(http::field::host, impl_->host);
  req.set(http::field::user_agent, "setdiag-store-sim");
  req.keep_alive(true);
  if (method != "GET") {
    req.set(http::field::content_type, content_type);
    req.body() = body;
  }
  req.prepare_payload();
  beast::error_code ec;
  // A kept-alive connection may have been closed by the server meanwhile:
  // then one retry on a fresh connection.
  for (int attempt = 0; attempt < 2; ++attempt) {
    bool fresh = !impl_->stream.has_value();
    if (fresh) {
      ec = impl_->Connect();
      if (ec) break;
    }
    http::response<http::string_body> res;
    ec = impl_->Exchange(req, &res);
    if (!ec) {
      if (!res.keep_alive()) impl_->stream.reset();
      return HttpReply{static_cast<int>(res.result_int()), std::move(res.body())};
    }
    impl_->stream.reset();
    if (fresh || ec == beast::error::timeout) break;
  }
  return absl::UnavailableError(
      Cat("cannot reach http://", impl_->host, ":", impl_->port, target, ": ",
          ec == beast::error::timeout ? std::string("timed out") : ec.message()));
}

}  // namespace setdiag::store_sim
