#pragma once
// The CLI's client of the collector's HTTP JSON API (docs/api.md).

#include <string>

#include "absl/status/statusor.h"

namespace setdiag::cli {

struct ApiResponse {
  int status = 0;
  std::string body;
};

class ApiClient {
 public:
  // `base_url` like "http://127.0.0.1:8088".
  ApiClient(std::string base_url, std::string token);
  absl::StatusOr<ApiResponse> Get(const std::string& path_and_query);

 private:
  std::string host_, port_, token_;
  absl::Status config_error_;
};

std::string UrlEncode(std::string_view s);

}  // namespace setdiag::cli
