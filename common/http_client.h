#pragma once
// The one HTTP/1.1 client of setdiag: the CLI's calls to the admin API, the
// agent's probe of the import server's WSDL, the simulator's heartbeat
// pushes and its `ctl` commands. Blocking, one thread at a time, a deadline
// on every step, and a kept-alive connection (heartbeat pushes are many
// small POSTs; a connection each would fill the port range with TIME_WAIT
// sockets). Plain http only: every peer is on loopback or the store's LAN.
//
// Names are resolved by the Resolver the caller gives: SystemResolver()
// (getaddrinfo, common/system_resolver.cc) for the collector's side and the
// tools, the agent's c-ares resolver for the static agent, which must not
// link getaddrinfo (agent/sources/resolve.h says why).

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace setdiag {

// Every address of `host` as an IP literal ("10.0.0.5", "::1"), within `timeout`.
using Resolver = std::function<absl::StatusOr<std::vector<std::string>>(
    const std::string& host, std::chrono::milliseconds timeout)>;
// getaddrinfo(); IP literals are not looked up.
Resolver SystemResolver();

struct HttpReply {
  int status = 0;
  std::string body;
};

struct HttpClientOptions {
  std::chrono::milliseconds timeout{10'000};  // connect, write, read: each
  std::string user_agent = "setdiag";
  // Sent with every request (e.g. Authorization); never logged.
  std::vector<std::pair<std::string, std::string>> headers = {};
  uint64_t body_limit = 16 * 1024 * 1024;  // a larger answer fails the request
  Resolver resolve = nullptr;              // empty: the host must be an IP literal
};

class HttpClient {
 public:
  HttpClient(std::string host, uint16_t port, HttpClientOptions options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // method "GET" or "POST" (any verb). Any HTTP answer, error or not, is an
  // HttpReply; Unavailable when the server cannot be reached or does not
  // answer in time ("timed out"). A kept-alive connection the server closed
  // meanwhile is retried once on a fresh one.
  absl::StatusOr<HttpReply> Request(const std::string& method, const std::string& target,
                                    const std::string& body = "",
                                    const std::string& content_type = "application/json");
  // GETs `target` and streams a 200 body into `out_path` (through
  // out_path + ".part", renamed when complete; never whole in memory; only a
  // transfer stalled for `stall_timeout` is cut). On 200 the reply's body is
  // empty and `*bytes` the size written; any other answer leaves no file and
  // carries the body.
  absl::StatusOr<HttpReply> Download(
      const std::string& target, const std::string& out_path, uint64_t* bytes,
      std::chrono::milliseconds stall_timeout = std::chrono::hours(1));

  // "http://host:port", for messages.
  std::string Origin() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace setdiag
