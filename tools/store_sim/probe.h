#pragma once
// The tills' network side: a TCP listener per plugged-in till on
// cash_ip:probe_port that accepts and closes connections, so a network probe
// sees the machine answer. On Linux every 127.0.0.0/8 address works on the
// loopback interface without configuration. All calls on the I/O thread (or
// before it starts).

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"

namespace setdiag::store_sim {

class ProbeListeners {
 public:
  ProbeListeners(boost::asio::io_context& io, uint16_t port) : io_(io), port_(port) {}
  ~ProbeListeners() { CloseAll(); }

  // Listens for till `number` on ip:port; a no-op if open or if port is 0.
  absl::Status Open(int number, const std::string& ip);
  void Close(int number);
  void CloseAll();
  bool IsOpen(int number) const { return acceptors_.count(number) > 0; }
  bool enabled() const { return port_ != 0; }

 private:
  void Accept(std::shared_ptr<boost::asio::ip::tcp::acceptor> acceptor);

  boost::asio::io_context& io_;
  uint16_t port_;
  std::map<int, std::shared_ptr<boost::asio::ip::tcp::acceptor>> acceptors_;
};

}  // namespace setdiag::store_sim
