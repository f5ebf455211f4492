#include "common/http_client.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "common/files.h"
#include "common/strings.h"

namespace setdiag {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct HttpClient::Impl {
  std::string host;
  uint16_t port = 0;
  HttpClientOptions options;
  asio::io_context io;
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buffer;

  // Runs queued async work to completion; tcp_stream's timer bounds it.
  void Run() {
    io.restart();
    io.run();
  }

  // An empty message when connected; otherwise why not.
  std::string Connect() {
    absl::StatusOr<std::vector<std::string>> addresses = std::vector<std::string>{host};
    if (options.resolve) addresses = options.resolve(host, options.timeout);
    if (!addresses.ok()) return std::string(addresses.status().message());
    std::vector<tcp::endpoint> endpoints;
    for (const std::string& a : *addresses) {
      beast::error_code parse_ec;
      auto ip = asio::ip::make_address(a, parse_ec);
      if (!parse_ec) endpoints.emplace_back(ip, port);
    }
    if (endpoints.empty()) {
      return options.resolve
                 ? Cat("no address for ", host)
                 : Cat("'", host, "' is not an IP address (this client resolves no names)");
    }
    stream.emplace(io);
    buffer.clear();
    stream->expires_after(options.timeout);
    beast::error_code ec;
    stream->async_connect(endpoints, [&](beast::error_code e, const tcp::endpoint&) { ec = e; });
    Run();
    if (!ec) return "";
    stream.reset();
    return ec == beast::error::timeout ? std::string("timed out") : ec.message();
  }

  template <class Request>
  void Prepare(Request& req) {
    req.set(http::field::host, host);
    req.set(http::field::user_agent, options.user_agent);
    for (const auto& [name, value] : options.headers) req.set(name, value);
    req.keep_alive(true);
  }

  template <class Request>
  beast::error_code Write(Request& req) {
    beast::error_code ec;
    stream->expires_after(options.timeout);
    http::async_write(*stream, req, [&](beast::error_code e, size_t) { ec = e; });
    Run();
    return ec;
  }

  template <class Parser>
  beast::error_code Read(Parser& parser, std::chrono::milliseconds timeout) {
    beast::error_code ec;
    stream->expires_after(timeout);
    http::async_read(*stream, buffer, parser, [&](beast::error_code e, size_t) { ec = e; });
    Run();
    return ec;
  }

  absl::Status Unreachable(const std::string& target, const std::string& why) const {
    return absl::UnavailableError(Cat("cannot reach http://", host, ":", port, target, ": ", why));
  }
};

HttpClient::HttpClient(std::string host, uint16_t port, HttpClientOptions options)
    : impl_(std::make_unique<Impl>()) {
  impl_->host = std::move(host);
  impl_->port = port;
  impl_->options = std::move(options);
}

HttpClient::~HttpClient() = default;

std::string HttpClient::Origin() const { return Cat("http://", impl_->host, ":", impl_->port); }

absl::StatusOr<HttpReply> HttpClient::Request(const std::string& method, const std::string& target,
                                              const std::string& body,
                                              const std::string& content_type) {
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  impl_->Prepare(req);
  if (method != "GET") {
    req.set(http::field::content_type, content_type);
    req.body() = body;
  }
  req.prepare_payload();
  std::string why;
  for (int attempt = 0; attempt < 2; ++attempt) {
    const bool fresh = !impl_->stream.has_value();
    if (fresh) {
      why = impl_->Connect();
      if (!why.empty()) break;
    }
    beast::error_code ec = impl_->Write(req);
    http::response_parser<http::string_body> parser;
    parser.body_limit(impl_->options.body_limit);
    if (!ec) ec = impl_->Read(parser, impl_->options.timeout);
    if (!ec) {
      auto res = parser.release();
      if (!res.keep_alive()) impl_->stream.reset();
      return HttpReply{static_cast<int>(res.result_int()), std::move(res.body())};
    }
    impl_->stream.reset();
    why = ec == beast::error::timeout ? std::string("timed out") : ec.message();
    if (fresh || ec == beast::error::timeout) break;
  }
  return impl_->Unreachable(target, why);
}

absl::StatusOr<HttpReply> HttpClient::Download(const std::string& target,
                                               const std::string& out_path, uint64_t* bytes,
                                               std::chrono::milliseconds stall_timeout) {
  *bytes = 0;
  const std::string part = out_path + ".part";
  impl_->stream.reset();  // a fresh connection: the body may be long
  if (std::string why = impl_->Connect(); !why.empty()) return impl_->Unreachable(target, why);
  http::request<http::empty_body> req{http::verb::get, target, 11};
  impl_->Prepare(req);
  beast::error_code ec = impl_->Write(req);
  http::response_parser<http::file_body> parser;
  parser.body_limit(boost::none);
  if (!ec) {
    parser.get().body().open(part.c_str(), beast::file_mode::write, ec);
    if (ec) {
      impl_->stream.reset();
      return absl::UnavailableError(Cat("cannot write ", part, ": ", ec.message()));
    }
    ec = impl_->Read(parser, stall_timeout);
    parser.get().body().close();
  }
  impl_->stream.reset();
  if (ec) {
    std::remove(part.c_str());
    return impl_->Unreachable(
        target, ec == beast::error::timeout ? std::string("timed out") : ec.message());
  }
  const int status = static_cast<int>(parser.get().result_int());
  if (status != 200) {
    auto body = ReadWholeFile(part);
    std::remove(part.c_str());
    return HttpReply{status, body.ok() ? *body : std::string()};
  }
  if (std::rename(part.c_str(), out_path.c_str()) != 0) {
    std::remove(part.c_str());
    return absl::UnavailableError(Cat("cannot rename ", part, " to ", out_path));
  }
  std::error_code size_ec;
  *bytes = std::filesystem::file_size(out_path, size_ec);
  return HttpReply{200, ""};
}

}  // namespace setdiag
