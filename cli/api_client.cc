#include "cli/api_client.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdio>
#include <filesystem>

#include "common/files.h"
#include "common/strings.h"

namespace setdiag::cli {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

ApiClient::ApiClient(std::string base_url, std::string token) : token_(std::move(token)) {
  std::string_view u = base_url;
  if (!u.starts_with("http://")) {
    config_error_ = absl::InvalidArgumentError(
        Cat("collector URL '", base_url,
            "' must start with http:// (the admin API listens on loopback)"));
    return;
  }
  u.remove_prefix(7);
  if (auto slash = u.find('/'); slash != std::string_view::npos) u = u.substr(0, slash);
  auto colon = u.rfind(':');
  host_ = std::string(colon == std::string_view::npos ? u : u.substr(0, colon));
  port_ = colon == std::string_view::npos ? "80" : std::string(u.substr(colon + 1));
}

absl::StatusOr<ApiResponse> ApiClient::Get(const std::string& path_and_query) {
  return Send(false, path_and_query, "");
}

absl::StatusOr<ApiResponse> ApiClient::Post(const std::string& path, const std::string& json_body) {
  return Send(true, path, json_body);
}

absl::StatusOr<ApiResponse> ApiClient::Send(bool post, const std::string& target,
                                            const std::string& body) {
  if (!config_error_.ok()) return config_error_;
  try {
    asio::io_context io;
    asio::ip::tcp::resolver resolver(io);
    beast::tcp_stream stream(io);
    stream.expires_after(std::chrono::seconds(30));
    stream.connect(resolver.resolve(host_, port_));
    http::request<http::string_body> req{post ? http::verb::post : http::verb::get, target, 11};
    req.set(http::field::host, host_);
    req.set(http::field::user_agent, "setdiag-cli");
    if (!token_.empty()) req.set(http::field::authorization, Cat("Bearer ", token_));
    if (post) {
      req.set(http::field::content_type, "application/json; charset=utf-8");
      req.body() = body;
    }
    req.prepare_payload();
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(256 * 1024 * 1024);
    http::read(stream, buffer, parser);
    beast::error_code ec;
    stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    return ApiResponse{static_cast<int>(parser.get().result_int()), parser.get().body()};
  } catch (const beast::system_error& e) {
    return absl::UnavailableError(
        Cat("cannot reach the collector at ", host_, ":", port_, ": ", e.code().message()));
  }
}

absl::StatusOr<ApiResponse> ApiClient::Download(const std::string& target,
                                                const std::string& out_path, uint64_t* bytes) {
  if (!config_error_.ok()) return config_error_;
  *bytes = 0;
  const std::string part = out_path + ".part";
  try {
    asio::io_context io;
    asio::ip::tcp::resolver resolver(io);
    beast::tcp_stream stream(io);
    stream.expires_after(std::chrono::seconds(30));
    stream.connect(resolver.resolve(host_, port_));
    http::request<http::empty_body> req{http::verb::get, target, 11};
    req.set(http::field::host, host_);
    req.set(http::field::user_agent, "setdiag-cli");
    if (!token_.empty()) req.set(http::field::authorization, Cat("Bearer ", token_));
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response_parser<http::file_body> parser;
    parser.body_limit(boost::none);
    beast::error_code ec;
    parser.get().body().open(part.c_str(), beast::file_mode::write, ec);
    if (ec) return absl::UnavailableError(Cat("cannot write ", part, ": ", ec.message()));
    // A large file takes its time; only a stalled transfer is cut.
    stream.expires_after(std::chrono::hours(1));
    http::read(stream, buffer, parser);
    parser.get().body().close();
    stream.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ec);
    const int status = static_cast<int>(parser.get().result_int());
    if (status != 200) {
      auto body = ReadWholeFile(part);
      std::remove(part.c_str());
      return ApiResponse{status, body.ok() ? *body : std::string()};
    }
    if (std::rename(part.c_str(), out_path.c_str()) != 0) {
      std::remove(part.c_str());
      return absl::UnavailableError(Cat("cannot rename ", part, " to ", out_path));
    }
    std::error_code size_ec;
    *bytes = std::filesystem::file_size(out_path, size_ec);
    return ApiResponse{200, ""};
  } catch (const beast::system_error& e) {
    std::remove(part.c_str());
    return absl::UnavailableError(
        Cat("cannot reach the collector at ", host_, ":", port_, ": ", e.code().message()));
  }
}

}  // namespace setdiag::cli
