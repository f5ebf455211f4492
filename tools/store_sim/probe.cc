#include "tools/store_sim/probe.h"

#include <boost/asio.hpp>

#include "common/strings.h"

namespace setdiag::store_sim {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

absl::Status ProbeListeners::Open(int number, const std::string& ip) {
  if (port_ == 0 || IsOpen(number)) return absl::OkStatus();
  boost::system::error_code ec;
  auto addr = asio::ip::make_address(ip, ec);
  if (ec) return absl::InvalidArgumentError(Cat("till ", number, ": bad cash_ip ", ip));
  tcp::endpoint ep(addr, port_);
  auto acceptor = std::make_shared<tcp::acceptor>(io_);
  acceptor->open(ep.protocol(), ec);
  if (!ec) acceptor->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor->bind(ep, ec);
  if (!ec) acceptor->listen(64, ec);
  if (ec)
    return absl::UnavailableError(
        Cat("till ", number, ": cannot listen on ", ip, ":", port_, ": ", ec.message()));
  acceptors_[number] = acceptor;
  Accept(acceptor);
  return absl::OkStatus();
}

void ProbeListeners::Accept(std::shared_ptr<tcp::acceptor> acceptor) {
  acceptor->async_accept([this, acceptor](boost::system::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !acceptor->is_open()) return;
    boost::system::error_code ignored;
    socket.close(ignored);  // answered: that is all a probe needs
    Accept(acceptor);
  });
}

void ProbeListeners::Close(int number) {
  auto it = acceptors_.find(number);
  if (it == acceptors_.end()) return;
  boost::system::error_code ignored;
  it->second->close(ignored);
  acceptors_.erase(it);
}

void ProbeListeners::CloseAll() {
  while (!acceptors_.empty()) Close(acceptors_.begin()->first);
}

}  // namespace setdiag::store_sim
