#pragma once
// The CLI's client of the collector's HTTP JSON API (docs/api.md).

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "common/http_client.h"
#include "common/url.h"

namespace setdiag::cli {

struct ApiResponse {
  int status = 0;
  std::string body;
};

class ApiClient {
 public:
  // `base_url` like "http://127.0.0.1:8088".
  ApiClient(std::string base_url, std::string token);
  // One request each (a fresh connection). Unavailable if the collector
  // cannot be reached; any HTTP answer, error or not, is an ApiResponse.
  absl::StatusOr<ApiResponse> Get(const std::string& path_and_query);
  // POSTs `json_body` (already serialised JSON) with Content-Type
  // application/json.
  absl::StatusOr<ApiResponse> Post(const std::string& path, const std::string& json_body);
  // GETs a file and streams the body into `out_path` (never whole in
  // memory). On 200 the ApiResponse body is empty and `*bytes` is the size
  // written; any other answer leaves no file and carries the (JSON) body.
  absl::StatusOr<ApiResponse> Download(const std::string& path, const std::string& out_path,
                                       uint64_t* bytes);

 private:
  absl::StatusOr<ApiResponse> Send(const std::string& method, const std::string& target,
                                   const std::string& body);
  HttpClient Connection() const;
  absl::Status Unreachable(const absl::Status& st) const;

  std::string host_, token_;
  uint16_t port_ = 80;
  absl::Status config_error_;
};

}  // namespace setdiag::cli
