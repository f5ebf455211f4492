#pragma once
// The one parser of "host:port" and of a port number, for every address in
// setdiag's configs and flags: the agent's collector and push listeners, the
// collector's listeners, the simulator's flags, a notification URL's port.
// Each caller says which hosts it takes; the errors quote the input and say
// what is wrong with it, so a config error can add its key and line.

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace setdiag {

struct HostPort {
  std::string host;  // without the brackets of "[v6]:port"
  uint16_t port = 0;
  // "host:port", "[v6]:port" for an IPv6 literal.
  std::string ToString() const;
};

enum class HostForm {
  kAny,        // a name or an address, not checked (resolved later)
  kIpLiteral,  // an IPv4 or IPv6 literal, or localhost
  kIpv4,       // a dotted quad, each part 0..255 ("999.1.1.1" is refused)
};

struct HostPortRules {
  HostForm host = HostForm::kAny;
  bool allow_port_zero = false;  // "pick a free port" (listeners of tests and tools)
};

// Parses "host:port" or "[v6]:port". The port is decimal, 1..65535 (0 too
// when allowed). The error message quotes `text` and says what is wrong.
absl::StatusOr<HostPort> ParseHostPort(std::string_view text, const HostPortRules& rules = {});

// A decimal port, 1..65535 (0 too when allowed); false for anything else.
bool ParsePort(std::string_view text, bool allow_zero, uint16_t* port);

// A dotted-quad IPv4 address, each part 0..255.
bool IsIpv4Literal(std::string_view text);
// localhost, ::1 or a literal address in 127.0.0.0/8. A name such as
// 127.example.com is resolved elsewhere and is not loopback.
bool IsLoopbackHost(std::string_view host);

}  // namespace setdiag
