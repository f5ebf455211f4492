// Fuzz target: the HTTP request handling of common/http_server.h (the
// admin API's and the push receiver's server). The request parsing, the
// limit checks (414 for the URL, 431 for the header fields, 413 for the
// body) and the error answers are private to http_server.cc and run on
// Boost.Beast's async reads, so they are reached the way a client reaches
// them: one HttpServer on 127.0.0.1 (an ephemeral port) for the process,
// and per input a TCP connection that sends the input as raw bytes, ends
// its side, and reads the answer to the end.
//
// Oracles beyond the sanitizers: the server answers every input (within
// 20 s; a half-closed request always ends) and what it sends back is a
// sequence of well-formed HTTP/1.1 responses with a status from the set
// the server documents (200 from our handler, 400, 413, 414, 431); the
// handler never sees a request over the limits (target at most
// kMaxRequestTargetBytes, body at most max_body_bytes); every 414/431 says
// the limit in its body.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>

#include "common/http_server.h"
#include "fuzz_util.h"

namespace {

using setdiag::fuzz::Fail;

constexpr size_t kMaxBody = 4096;  // as the push receiver's

// What the handler (on the server's I/O thread) saw over the limits.
std::mutex g_mu;
std::string g_bad_request;

setdiag::HttpServer& Server() {
  static setdiag::HttpServer* server = [] {
    auto* s = new setdiag::HttpServer(
        [](const setdiag::HttpRequest& r) -> setdiag::HttpResponse {
          if (r.target.size() > setdiag::kMaxRequestTargetBytes || r.body.size() > kMaxBody) {
            std::lock_guard lock(g_mu);
            if (g_bad_request.empty())
              g_bad_request = r.method + " " + r.target.substr(0, 200) + " (body " +
                              std::to_string(r.body.size()) + " bytes)";
          }
          return {200, R"({"ok":true})"};
        },
        kMaxBody);
    if (!s->Start("127.0.0.1", 0).ok()) Fail("cannot start the HTTP server");
    return s;  // never destroyed: the fuzzer exits with it running
  }();
  return *server;
}

// Reads everything until the server closes, or fails after the deadline.
std::string Exchange(uint16_t port, std::string_view request) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) Fail("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) Fail("connect failed");
  size_t off = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  std::string answer;
  char buf[8192];
  bool write_done = request.empty();
  if (write_done) ::shutdown(fd, SHUT_WR);
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) Fail("the server did not finish answering within 20 s", request);
    pollfd p{fd, static_cast<short>(POLLIN | (write_done ? 0 : POLLOUT)), 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;  // closed (or reset after a refusal: what came is what counts)
      answer.append(buf, static_cast<size_t>(n));
    }
    if (!write_done && (p.revents & POLLOUT)) {
      ssize_t n = ::send(fd, request.data() + off, request.size() - off, MSG_NOSIGNAL);
      if (n < 0) {
        write_done = true;  // the server stopped reading (refused): read its answer
      } else {
        off += static_cast<size_t>(n);
        if (off == request.size()) write_done = true;
      }
      if (write_done) ::shutdown(fd, SHUT_WR);
    }
  }
  ::close(fd);
  return answer;
}

// "HTTP/1.1 <status> ...\r\n<fields>\r\n\r\n<Content-Length bytes>", repeated.
void CheckResponses(std::string_view answer, std::string_view request) {
  while (!answer.empty()) {
    if (!answer.starts_with("HTTP/1.1 ")) Fail("not an HTTP/1.1 response", answer);
    const size_t head_end = answer.find("\r\n\r\n");
    if (head_end == std::string_view::npos) Fail("a response without the end of its head", answer);
    std::string_view head = answer.substr(0, head_end);
    const int status = std::atoi(std::string(head.substr(9, 3)).c_str());
    if (status != 200 && status != 400 && status != 413 && status != 414 && status != 431)
      Fail("an undocumented status", head);
    size_t length = 0;
    const size_t cl = head.find("\r\nContent-Length: ");
    if (cl == std::string_view::npos) Fail("a response without Content-Length", head);
    length = std::strtoul(std::string(head.substr(cl + 18, 12)).c_str(), nullptr, 10);
    if (answer.size() < head_end + 4 + length) Fail("a response body cut short", answer);
    std::string_view body = answer.substr(head_end + 4, length);
    if (status == 414 &&
        body.find(std::to_string(setdiag::kMaxRequestTargetBytes)) == std::string_view::npos)
      Fail("a 414 that does not say the limit", body);
    if (status == 431 &&
        body.find(std::to_string(setdiag::kMaxHeaderFieldsBytes)) == std::string_view::npos)
      Fail("a 431 that does not say the limit", body);
    answer.remove_prefix(head_end + 4 + length);
  }
  (void)request;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view request = setdiag::fuzz::AsText(data, size);
  const std::string answer = Exchange(Server().port(), request);
  CheckResponses(answer, request);
  std::lock_guard lock(g_mu);
  if (!g_bad_request.empty()) Fail("the handler saw a request over the limits", g_bad_request);
  return 0;
}
