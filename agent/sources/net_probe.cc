#include "agent/sources/net_probe.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>

namespace setdiag::agent {

std::vector<ProbeResult> ProbeTcp(const std::vector<std::string>& hosts, uint16_t port,
                                  int timeout_ms) {
  std::vector<ProbeResult> out(hosts.size(), ProbeResult::kNoAnswer);
  std::vector<pollfd> fds;
  std::vector<size_t> index;
  for (size_t i = 0; i < hosts.size(); ++i) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    // Not an address, or no socket to try with: we do not know.
    if (inet_pton(AF_INET, hosts[i].c_str(), &addr.sin_addr) != 1) {
      out[i] = ProbeResult::kNotProbed;
      continue;
    }
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      out[i] = ProbeResult::kNotProbed;
      continue;
    }
    int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    if (rc == 0) {
      out[i] = ProbeResult::kAnswers;
      ::close(fd);
    } else if (errno == EINPROGRESS) {
      fds.push_back({fd, POLLOUT, 0});
      index.push_back(i);
    } else {
      out[i] = errno == ECONNREFUSED ? ProbeResult::kRefused : ProbeResult::kNoAnswer;
      ::close(fd);
    }
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  size_t pending = fds.size();
  while (pending > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    int n = ::poll(fds.data(), fds.size(), static_cast<int>(left.count()));
    if (n <= 0) break;
    for (size_t k = 0; k < fds.size(); ++k) {
      if (fds[k].fd < 0 || fds[k].revents == 0) continue;
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(fds[k].fd, SOL_SOCKET, SO_ERROR, &err, &len);
      out[index[k]] = err == 0
                          ? ProbeResult::kAnswers
                          : (err == ECONNREFUSED ? ProbeResult::kRefused : ProbeResult::kNoAnswer);
      ::close(fds[k].fd);
      fds[k].fd = -1;  // poll ignores negative descriptors
      --pending;
    }
  }
  for (auto& p : fds) {
    if (p.fd >= 0) ::close(p.fd);
  }
  return out;
}

ServerState CheckServer(const ServerCheckConfig& config, int timeout_ms) {
  ServerState s;
  if (!config.enabled) return s;
  s.known = true;
  s.port_8090 = ProbeTcp({config.host}, config.port_soap, timeout_ms)[0] == ProbeResult::kAnswers;
  s.port_8091 =
      ProbeTcp({config.host}, config.port_transport, timeout_ms)[0] == ProbeResult::kAnswers;
  s.db_port = config.port_db;
  s.port_5432 = ProbeTcp({config.host}, config.port_db, timeout_ms)[0] == ProbeResult::kAnswers;
  std::error_code ec;
  s.deployed = std::filesystem::exists(config.deployed_marker, ec);
  s.deploy_failed = std::filesystem::exists(config.failed_marker, ec);
  return s;
}

}  // namespace setdiag::agent
