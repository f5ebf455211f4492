#pragma once
// The store server's SOAP port as far as a watcher sees it: the WSDL of the
// goods import and feedback web services answers on --soap, anything else is
// 404. /soap/stop closes the port (and open connections), /soap/start reopens
// it on the same port. All calls on the I/O thread (or before it starts).

#include <boost/asio/io_context.hpp>
#include <string>

#include "absl/status/status.h"
#include "tools/store_sim/control_server.h"
#include "tools/store_sim/options.h"

namespace setdiag::store_sim {

inline constexpr const char* kGoodsImportPath = "/SET-ERPIntegration/SET/WSGoodsCatalogImport";
inline constexpr const char* kFeedbackPath = "/SET-ERPIntegration/SET/FeedbackWS";

class SoapStub {
 public:
  explicit SoapStub(boost::asio::io_context& io);

  // Listens on `at` (port 0 picks one; later Open() calls reuse it).
  absl::Status Open(const HostPort& at);
  // Reopens where it listened before.
  absl::Status Reopen();
  void Close() { server_.Close(); }
  bool up() const { return server_.listening(); }
  // The address it listens (or listened) on, with the real port.
  const HostPort& address() const { return address_; }

 private:
  ControlServer server_;
  HostPort address_;
};

// The WSDL documents served (exposed for tests): `service` is
// "WSGoodsCatalogImport" or "FeedbackWS", `location` its URL.
std::string WsdlFor(const std::string& service, const std::string& location);

}  // namespace setdiag::store_sim
