#pragma once
// A small HTTP/1.1 server (Boost.Beast) for the admin JSON API and the
// agent's push receiver. One I/O thread; handlers run on it (quick ones:
// the push receiver) or on a pool of worker threads (Options::workers: the
// admin API, whose reads and writes may wait). Requests are capped before any handler
// sees them: the request target (URL) at kMaxRequestTargetBytes (414), the
// header fields at kMaxHeaderFieldsBytes (431), the body at max_body_bytes
// (413). Responses are JSON (or another type: the console's pages), a file
// streamed from disk in pieces (never loaded whole), e.g. a diagnostic
// bundle, or a stream of Server-Sent Events on a thread of its own.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"

namespace setdiag {

// Larger is answered 414 URI Too Long.
inline constexpr size_t kMaxRequestTargetBytes = 4096;
// All header fields together, each counted as "Name: value\r\n"; larger is
// answered 431 Request Header Fields Too Large.
inline constexpr size_t kMaxHeaderFieldsBytes = 8192;

struct HttpRequest {
  std::string method;
  std::string target;         // path and query
  std::string authorization;  // the Authorization header, if any
  std::string body;
  // Every header field as sent, the names in lower case ("cookie",
  // "content-type", "origin", "x-csrf-token", ...).
  std::vector<std::pair<std::string, std::string>> headers = {};
  bool tls = false;  // it came over TLS (http.tls_cert_file)

  // The first field named `lowercase_name`, "" when there is none.
  std::string Header(std::string_view lowercase_name) const;
};

// A live answer (Server-Sent Events): called again and again on a thread of
// the stream's own, it waits up to `wait` for something to send and returns
// it (whole "event: ...\ndata: ...\n\n" blocks), "" when there is nothing
// yet, or nullopt to end the stream. It must be thread-safe.
using EventSource = std::function<std::optional<std::string>(std::chrono::milliseconds wait)>;

struct HttpResponse {
  int status = 200;
  std::string body;  // JSON
  // When set, the body is this file instead (status 200), sent with
  // `content_type` and, if `download_name` is set, as an attachment.
  std::string file_path = {};
  std::string content_type = "application/octet-stream";
  std::string download_name = {};
  // The type of `body` (HTML pages, scripts, styles: the console).
  std::string body_type = "application/json; charset=utf-8";
  // More header fields (Set-Cookie, Content-Security-Policy, ...); one
  // named like a default (Cache-Control: no-store) replaces it.
  std::vector<std::pair<std::string, std::string>> headers = {};
  // When set, the answer is 200 text/event-stream and the connection is
  // handed to a thread of its own that sends what `events` returns, and a
  // comment every 15 s of silence (so a closed client is noticed), until it
  // returns nullopt, the client goes away or the server stops. At most
  // Options::max_event_streams at once; beyond, 503.
  EventSource events = nullptr;
};

class HttpServer {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;
  // Answers a request on the I/O thread when it can do so at once (e.g.
  // /healthz); nullopt hands it to `handler`.
  using InlineHandler = std::function<std::optional<HttpResponse>(const HttpRequest&)>;
  struct Options {
    size_t max_body_bytes = 1024 * 1024;
    // 0: `handler` runs on the I/O thread, one request at a time (the
    // agent's push receiver, whose handler is quick). N > 0: on a pool of N
    // threads, so a slow request (a long query, a wait for the writer)
    // holds up neither the others nor the I/O of any connection; the
    // handler must then be thread-safe.
    size_t workers = 0;
    InlineHandler inline_handler = nullptr;
    size_t max_event_streams = 64;
    // HTTPS with this certificate chain and key (PEM) when set; HTTP/1.1
    // over TLS 1.2 or later.
    std::string tls_cert_pem = {};
    std::string tls_key_pem = {};
  };
  HttpServer(Handler handler, size_t max_body_bytes = 1024 * 1024);
  HttpServer(Handler handler, Options options);
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
