#pragma once
// A small HTTP/1.1 server (Boost.Beast) for the admin JSON API. One I/O
// thread; handlers run on it and must be quick (indexed SQLite reads).
// Request bodies are capped. Responses are JSON, or a file streamed from
// disk in pieces (never loaded whole), e.g. a diagnostic bundle.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/status.h"

namespace setdiag {

struct HttpRequest {
  std::string method;
  std::string target;         // path and query
  std::string authorization;  // the Authorization header, if any
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::string body;  // JSON
  // When set, the body is this file instead (status 200), sent with
  // `content_type` and, if `download_name` is set, as an attachment.
  std::string file_path = {};
  std::string content_type = "application/octet-stream";
  std::string download_name = {};
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;
  HttpServer(Handler handler, size_t max_body_bytes = 1024 * 1024);
  ~HttpServer();
  // Binds an IP literal and port (0 picks one) and starts serving.
  absl::Status Start(const std::string& host, uint16_t port);
  void Stop();
  uint16_t port() const { return port_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  uint16_t port_ = 0;
};

}  // namespace setdiag
