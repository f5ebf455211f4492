#pragma once
// Host name resolution for the agent without the C library's resolver.
//
// The agent is one static executable for every store server (docs/portability.md).
// glibc's getaddrinfo() in a static binary still loads the host's NSS
// modules (libnss_files, libnss_dns) with dlopen at run time: on CentOS 7
// those are glibc 2.17's, which a binary linked against glibc 2.36 cannot
// load, and in an empty root there are none. This resolver is c-ares: it reads
// /etc/hosts and /etc/resolv.conf itself ("files, then DNS", as the default
// nsswitch.conf says) and never dlopens anything. gRPC resolves the
// collector's name with the same c-ares (its default resolver).
//
// Unlike getaddrinfo(), the lookup is bounded by a deadline.

#include <sys/socket.h>

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace setdiag::agent {

struct ResolvedAddress {
  sockaddr_storage addr{};
  socklen_t len = 0;
  int family = AF_UNSPEC;
  std::string text;  // the address as numbers ("10.0.0.5", "::1")
};

// Every address of `host` (a name, an IPv4 or an IPv6 literal) for TCP
// `port`, in the order the resolver gives them. An IP literal is never sent
// to DNS. Fails with UNAVAILABLE when the name does not resolve, and with
// DEADLINE_EXCEEDED when `timeout` passes first.
absl::StatusOr<std::vector<ResolvedAddress>> ResolveTcp(const std::string& host, int port,
                                                        std::chrono::milliseconds timeout);

}  // namespace setdiag::agent
