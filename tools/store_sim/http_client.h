#pragma once
// A small blocking HTTP/1.1 client with a deadline per request and a kept-alive
// connection (heartbeat pushes are many small POSTs; one connection per POST
// would fill the port range with TIME_WAIT sockets). One thread at a time.

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace setdiag::store_sim {

struct HttpReply {
  int status = 0;
  std::string body;
};

class HttpClient {
 public:
  HttpClient(std::string host, uint16_t port, std::chrono::milliseconds timeout);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // method "GET" or "POST". Unavailable when the server cannot be reached
  // or does not answer within the timeout.
  absl::StatusOr<HttpReply> Request(const std::string& method, const std::string& target,
                                    const std::string& body = "",
                                    const std::string& content_type = "application/json");

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace setdiag::store_sim
