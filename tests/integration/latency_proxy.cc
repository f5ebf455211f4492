#include "tests/integration/latency_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <string>

namespace setdiag::testing {

LatencyProxy::LatencyProxy(int upstream_port, std::chrono::milliseconds one_way)
    : upstream_port_(upstream_port), one_way_(one_way) {
  listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (listen_fd_ < 0 || bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(listen_fd_, 16) != 0) {
    throw std::runtime_error("LatencyProxy: cannot listen on loopback");
  }
  socklen_t len = sizeof addr;
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

LatencyProxy::~LatencyProxy() {
  stop_ = true;
  acceptor_.join();  // polls with a timeout, sees stop_
  for (int fd : fds_) shutdown(fd, SHUT_RDWR);
  for (auto& t : pipes_) t.join();
  for (int fd : fds_) close(fd);
  close(listen_fd_);
}

void LatencyProxy::AcceptLoop() {
  while (!stop_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    int client = accept(listen_fd_, nullptr, nullptr);
    if (client < 0) continue;
    int upstream = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(upstream_port_));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(upstream, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      close(client);
      close(upstream);
      continue;
    }
    ++connections_;
    fds_.push_back(client);
    fds_.push_back(upstream);
    pipes_.emplace_back([this, client, upstream] { Pipe(client, upstream); });
    pipes_.emplace_back([this, client, upstream] { Pipe(upstream, client); });
  }
}

// One direction: a reader queues each chunk with its arrival time, a writer
// sends it one_way_ later. EOF or an error on either side ends both.
void LatencyProxy::Pipe(int from, int to) {
  using Clock = std::chrono::steady_clock;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::pair<Clock::time_point, std::string>> queue;
  bool done = false;
  std::thread writer([&] {
    std::unique_lock<std::mutex> lock(mu);
    while (true) {
      cv.wait(lock, [&] { return done || !queue.empty(); });
      if (queue.empty()) break;
      auto [arrived, bytes] = std::move(queue.front());
      queue.pop_front();
      lock.unlock();
      std::this_thread::sleep_until(arrived + one_way_);
      size_t off = 0;
      while (off < bytes.size()) {
        ssize_t n = send(to, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
        if (n <= 0) break;
        off += static_cast<size_t>(n);
      }
      lock.lock();
    }
    shutdown(to, SHUT_WR);
  });
  char buf[16384];
  while (true) {
    ssize_t n = recv(from, buf, sizeof buf, 0);
    if (n <= 0) break;
    std::lock_guard<std::mutex> lock(mu);
    queue.emplace_back(Clock::now(), std::string(buf, static_cast<size_t>(n)));
    cv.notify_one();
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    done = true;
    cv.notify_one();
  }
  writer.join();
}

}  // namespace setdiag::testing
