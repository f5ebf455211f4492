#include "agent/sources/resolve.h"

#include <ares.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>

#include <cstring>
#include <mutex>

#include "absl/strings/str_cat.h"

namespace setdiag::agent {
namespace {

using Clock = std::chrono::steady_clock;

struct Lookup {
  bool done = false;
  int status = ARES_SUCCESS;
  std::vector<ResolvedAddress> out;
};

void OnResult(void* arg, int status, int /*timeouts*/, ares_addrinfo* result) {
  auto* l = static_cast<Lookup*>(arg);
  l->done = true;
  l->status = status;
  if (status != ARES_SUCCESS || result == nullptr) {
    if (result != nullptr) ares_freeaddrinfo(result);
    return;
  }
  for (ares_addrinfo_node* n = result->nodes; n != nullptr; n = n->ai_next) {
    if (n->ai_addr == nullptr || n->ai_addrlen > sizeof(sockaddr_storage)) continue;
    if (n->ai_family != AF_INET && n->ai_family != AF_INET6) continue;
    ResolvedAddress a;
    std::memcpy(&a.addr, n->ai_addr, n->ai_addrlen);
    a.len = n->ai_addrlen;
    a.family = n->ai_family;
    char text[INET6_ADDRSTRLEN] = "?";
    const void* in =
        n->ai_family == AF_INET6
            ? static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(n->ai_addr)->sin6_addr)
            : static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(n->ai_addr)->sin_addr);
    inet_ntop(n->ai_family, in, text, sizeof text);
    a.text = text;
    l->out.push_back(std::move(a));
  }
  ares_freeaddrinfo(result);
}

// An IP literal, parsed without the resolver.
bool ParseLiteral(const std::string& host, int port, ResolvedAddress* a) {
  std::string h = host;
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  sockaddr_in v4{};
  if (inet_pton(AF_INET, h.c_str(), &v4.sin_addr) == 1) {
    v4.sin_family = AF_INET;
    v4.sin_port = htons(static_cast<uint16_t>(port));
    std::memcpy(&a->addr, &v4, sizeof v4);
    a->len = sizeof v4;
    a->family = AF_INET;
    a->text = h;
    return true;
  }
  sockaddr_in6 v6{};
  if (inet_pton(AF_INET6, h.c_str(), &v6.sin6_addr) == 1) {
    v6.sin6_family = AF_INET6;
    v6.sin6_port = htons(static_cast<uint16_t>(port));
    std::memcpy(&a->addr, &v6, sizeof v6);
    a->len = sizeof v6;
    a->family = AF_INET6;
    a->text = h;
    return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<std::vector<ResolvedAddress>> ResolveTcp(const std::string& host, int port,
                                                        std::chrono::milliseconds timeout) {
  ResolvedAddress literal;
  if (ParseLiteral(host, port, &literal)) return std::vector<ResolvedAddress>{literal};
  if (host.empty()) return absl::InvalidArgumentError("empty host name");

  static std::once_flag once;
  static int init_rc = ARES_SUCCESS;
  std::call_once(once, [] { init_rc = ares_library_init(ARES_LIB_INIT_ALL); });
  if (init_rc != ARES_SUCCESS)
    return absl::InternalError(absl::StrCat("c-ares: ", ares_strerror(init_rc)));

  const Clock::time_point deadline = Clock::now() + timeout;
  ares_options opts{};
  int mask = ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_LOOKUPS;
  // Per try; the overall deadline below bounds the whole lookup anyway.
  opts.timeout = static_cast<int>(std::max<int64_t>(100, std::min<int64_t>(timeout.count(), 2000)));
  opts.tries = 2;
  char lookups[] = "fb";  // /etc/hosts first, then DNS, as nsswitch's "files dns"
  opts.lookups = lookups;
  ares_channel channel = nullptr;
  int rc = ares_init_options(&channel, &opts, mask);
  if (rc != ARES_SUCCESS) return absl::InternalError(absl::StrCat("c-ares: ", ares_strerror(rc)));

  Lookup lookup;
  ares_addrinfo_hints hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = ARES_AI_NUMERICSERV;
  std::string service = absl::StrCat(port);
  ares_getaddrinfo(channel, host.c_str(), service.c_str(), &hints, OnResult, &lookup);

  while (!lookup.done) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) break;
    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    int bits = ares_getsock(channel, socks, ARES_GETSOCK_MAXNUM);
    pollfd fds[ARES_GETSOCK_MAXNUM];
    int n = 0;
    for (int i = 0; i < ARES_GETSOCK_MAXNUM; ++i) {
      short events = 0;
      if (ARES_GETSOCK_READABLE(bits, i)) events |= POLLIN;
      if (ARES_GETSOCK_WRITABLE(bits, i)) events |= POLLOUT;
      if (events == 0) continue;
      fds[n].fd = socks[i];
      fds[n].events = events;
      fds[n].revents = 0;
      ++n;
    }
    timeval max{left.count() / 1000, static_cast<suseconds_t>((left.count() % 1000) * 1000)};
    timeval tv{};
    timeval* t = ares_timeout(channel, &max, &tv);
    int wait_ms = static_cast<int>(t->tv_sec * 1000 + t->tv_usec / 1000);
    if (n == 0 && wait_ms <= 0) wait_ms = 1;
    int ready = poll(fds, static_cast<nfds_t>(n), wait_ms);
    if (ready <= 0) {
      ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);  // timeouts
      continue;
    }
    for (int i = 0; i < n; ++i) {
      ares_socket_t r =
          (fds[i].revents & (POLLIN | POLLERR | POLLHUP)) ? fds[i].fd : ARES_SOCKET_BAD;
      ares_socket_t w = (fds[i].revents & POLLOUT) ? fds[i].fd : ARES_SOCKET_BAD;
      if (r != ARES_SOCKET_BAD || w != ARES_SOCKET_BAD) ares_process_fd(channel, r, w);
    }
  }
  // Cancels a lookup still running; its callback runs with ARES_ECANCELLED.
  ares_destroy(channel);
  if (!lookup.done || lookup.status == ARES_ECANCELLED || lookup.status == ARES_EDESTRUCTION)
    return absl::DeadlineExceededError(
        absl::StrCat("could not resolve host \"", host, "\" within ", timeout.count(), " ms"));
  if (lookup.status != ARES_SUCCESS)
    return absl::UnavailableError(
        absl::StrCat("could not resolve host \"", host, "\": ", ares_strerror(lookup.status)));
  if (lookup.out.empty())
    return absl::UnavailableError(absl::StrCat("no address for host \"", host, "\""));
  return lookup.out;
}

}  // namespace setdiag::agent
