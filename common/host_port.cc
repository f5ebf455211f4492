#include "common/host_port.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <charconv>

#include "common/strings.h"

namespace setdiag {

std::string HostPort::ToString() const {
  return host.find(':') != std::string::npos ? Cat("[", host, "]:", port) : Cat(host, ":", port);
}

bool ParsePort(std::string_view text, bool allow_zero, uint16_t* port) {
  unsigned v = 0;
  if (text.empty() || text.size() > 5) return false;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size() || v > 65535 || (v == 0 && !allow_zero))
    return false;
  *port = static_cast<uint16_t>(v);
  return true;
}

bool IsIpv4Literal(std::string_view text) {
  in_addr addr{};
  return inet_pton(AF_INET, std::string(text).c_str(), &addr) == 1;
}

bool IsLoopbackHost(std::string_view host) {
  if (host == "localhost" || host == "::1") return true;
  in_addr addr{};
  return inet_pton(AF_INET, std::string(host).c_str(), &addr) == 1 &&
         (ntohl(addr.s_addr) >> 24) == 127;
}

absl::StatusOr<HostPort> ParseHostPort(std::string_view text, const HostPortRules& rules) {
  const std::string quoted = Cat("'", text, "'");
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    return absl::InvalidArgumentError(Cat(quoted, " is not host:port (e.g. 127.0.0.1:7443)"));
  }
  HostPort out;
  std::string_view host = text.substr(0, colon);
  const bool bracketed = host.size() > 2 && host.front() == '[' && host.back() == ']';
  if (bracketed) {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return absl::InvalidArgumentError(
        Cat(quoted, ": an IPv6 address needs brackets, e.g. [::1]:7443"));
  }
  out.host = std::string(host);
  if (!ParsePort(text.substr(colon + 1), rules.allow_port_zero, &out.port)) {
    return absl::InvalidArgumentError(
        Cat(quoted, " has no valid port (", rules.allow_port_zero ? "0" : "1", "..65535)"));
  }
  switch (rules.host) {
    case HostForm::kAny:
      break;
    case HostForm::kIpLiteral: {
      in6_addr v6{};
      if (out.host != "localhost" && !IsIpv4Literal(out.host) &&
          inet_pton(AF_INET6, out.host.c_str(), &v6) != 1) {
        return absl::InvalidArgumentError(
            Cat(quoted, ": the host must be an IP address or localhost"));
      }
      break;
    }
    case HostForm::kIpv4:
      if (bracketed || !IsIpv4Literal(out.host)) {
        return absl::InvalidArgumentError(
            Cat(quoted, ": '", out.host, "' is not an IPv4 address (four numbers 0..255)"));
      }
      break;
  }
  return out;
}

}  // namespace setdiag
