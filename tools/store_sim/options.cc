#include "tools/store_sim/options.h"

#include <arpa/inet.h>

#include <algorithm>

#include "common/strings.h"

namespace setdiag::store_sim {

std::string HttpUrl::ToString() const { return Cat("http://", host, ":", port, target); }

absl::StatusOr<HttpUrl> ParseHttpUrl(const std::string& text) {
  std::string_view u = text;
  if (!u.starts_with("http://")) {
    return absl::InvalidArgumentError(Cat("URL '", text, "' must start with http://"));
  }
  u.remove_prefix(7);
  HttpUrl url;
  auto slash = u.find('/');
  std::string_view authority = u.substr(0, slash);
  if (slash != std::string_view::npos) url.target = std::string(u.substr(slash));
  auto colon = authority.rfind(':');
  url.host = std::string(authority.substr(0, colon));
  if (colon != std::string_view::npos &&
      !ParsePort(authority.substr(colon + 1), false, &url.port)) {
    return absl::InvalidArgumentError(Cat("URL '", text, "' has no valid port"));
  }
  if (url.host.empty()) return absl::InvalidArgumentError(Cat("URL '", text, "' has no host"));
  return url;
}

absl::Status ValidateIpBase(const std::string& base) {
  in_addr addr{};
  if (base.empty() || base.back() != '.' || std::count(base.begin(), base.end(), '.') != 3 ||
      inet_pton(AF_INET, (base + "11").c_str(), &addr) != 1) {
    return absl::InvalidArgumentError(
        Cat("till IP base '", base, "' must be three IPv4 octets and a dot, e.g. 127.0.1."));
  }
  return absl::OkStatus();
}

}  // namespace setdiag::store_sim
