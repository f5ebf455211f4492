#include "cli/api_client.h"

#include "common/host_port.h"
#include "common/strings.h"

namespace setdiag::cli {

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
  if (host_.size() > 2 && host_.front() == '[' && host_.back() == ']')
    host_ = host_.substr(1, host_.size() - 2);
  if (colon != std::string_view::npos && !ParsePort(u.substr(colon + 1), false, &port_)) {
    config_error_ = absl::InvalidArgumentError(
        Cat("collector URL '", base_url, "' has no valid port (1..65535)"));
  }
}

absl::StatusOr<ApiResponse> ApiClient::Get(const std::string& path_and_query) {
  return Send("GET", path_and_query, "");
}

absl::StatusOr<ApiResponse> ApiClient::Post(const std::string& path, const std::string& json_body) {
  return Send("POST", path, json_body);
}

HttpClient ApiClient::Connection() const {
  HttpClientOptions o{.timeout = std::chrono::seconds(30),
                      .user_agent = "setdiag-cli",
                      .body_limit = 256 * 1024 * 1024,
                      .resolve = SystemResolver()};
  if (!token_.empty()) o.headers.emplace_back("Authorization", Cat("Bearer ", token_));
  return HttpClient(host_, port_, std::move(o));
}

// HttpClient's "cannot reach http://host:port/path: why", saying who is meant.
absl::Status ApiClient::Unreachable(const absl::Status& st) const {
  std::string m(st.message());
  if (m.starts_with("cannot reach ")) m.erase(0, 13);
  return absl::UnavailableError(Cat("cannot reach the collector at ", m));
}

absl::StatusOr<ApiResponse> ApiClient::Send(const std::string& method, const std::string& target,
                                            const std::string& body) {
  if (!config_error_.ok()) return config_error_;
  HttpClient http = Connection();
  auto reply = http.Request(method, target, body, "application/json; charset=utf-8");
  if (!reply.ok()) return Unreachable(reply.status());
  return ApiResponse{reply->status, std::move(reply->body)};
}

absl::StatusOr<ApiResponse> ApiClient::Download(const std::string& target,
                                                const std::string& out_path, uint64_t* bytes) {
  if (!config_error_.ok()) return config_error_;
  HttpClient http = Connection();
  auto reply = http.Download(target, out_path, bytes);
  if (!reply.ok()) {
    if (absl::IsUnavailable(reply.status()) &&
        std::string(reply.status().message()).starts_with("cannot reach"))
      return Unreachable(reply.status());
    return reply.status();
  }
  return ApiResponse{reply->status, std::move(reply->body)};
}

}  // namespace setdiag::cli
