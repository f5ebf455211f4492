// SystemResolver() apart from common/http_client.cc, so that a binary that
// never calls it (the static agent) does not link getaddrinfo().

#include <netdb.h>
#include <sys/socket.h>

#include <cstring>

#include "common/http_client.h"
#include "common/strings.h"

namespace setdiag {

Resolver SystemResolver() {
  return [](const std::string& host,
            std::chrono::milliseconds) -> absl::StatusOr<std::vector<std::string>> {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res); rc != 0) {
      return absl::UnavailableError(Cat("cannot resolve ", host, ": ", gai_strerror(rc)));
    }
    std::vector<std::string> out;
    for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
      char text[NI_MAXHOST];
      if (getnameinfo(a->ai_addr, a->ai_addrlen, text, sizeof text, nullptr, 0, NI_NUMERICHOST) ==
          0) {
        out.emplace_back(text);
      }
    }
    freeaddrinfo(res);
    if (out.empty()) return absl::UnavailableError(Cat("cannot resolve ", host));
    return out;
  };
}

}  // namespace setdiag
