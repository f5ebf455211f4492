#include "tools/store_sim/soap_stub.h"

#include "common/status.h"
#include "common/strings.h"

namespace setdiag::store_sim {

namespace {

constexpr const char* kXml = "text/xml; charset=utf-8";

// One operation: its request and response messages.
std::string Operation(const std::string& name) {
  return Cat("  <message name=\"", name, "\"><part name=\"parameters\" element=\"tns:", name,
             "\"/></message>\n  <message name=\"", name,
             "Response\"><part name=\"parameters\" element=\"tns:", name,
             "Response\"/></message>\n");
}

}  // namespace

std::string WsdlFor(const std::string& service, const std::string& location) {
  std::vector<std::string> ops;
  std::string ns;
  if (service == "FeedbackWS") {
    ops = {"getPackageStatus"};
    ns = "http://feedback.erpi.crystals.ru/";
  } else {
    ops = {"getGoodsCatalog", "getGoodsCatalogWithTi"};
    ns = "http://goods.plugins.erpi.crystals.ru/";
  }
  std::string out =
      Cat("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
          "<definitions xmlns=\"http://schemas.xmlsoap.org/wsdl/\""
          " xmlns:soap=\"http://schemas.xmlsoap.org/wsdl/soap/\"",
          " xmlns:tns=\"", ns, "\" targetNamespace=\"", ns, "\" name=\"", service, "\">\n");
  for (const auto& op : ops) Append(&out, Operation(op));
  Append(&out, "  <portType name=\"", service, "\">\n");
  for (const auto& op : ops) {
    Append(&out, "    <operation name=\"", op, "\"><input message=\"tns:", op,
           "\"/><output message=\"tns:", op, "Response\"/></operation>\n");
  }
  Append(&out, "  </portType>\n  <binding name=\"", service, "Binding\" type=\"tns:", service,
         "\">\n    <soap:binding style=\"document\" "
         "transport=\"http://schemas.xmlsoap.org/soap/http\"/>\n");
  for (const auto& op : ops) {
    Append(&out, "    <operation name=\"", op,
           "\"><soap:operation soapAction=\"\"/><input><soap:body use=\"literal\"/></input>"
           "<output><soap:body use=\"literal\"/></output></operation>\n");
  }
  Append(&out, "  </binding>\n  <service name=\"", service, "\">\n    <port name=\"", service,
         "Port\" binding=\"tns:", service, "Binding\"><soap:address location=\"", location,
         "\"/></port>\n  </service>\n</definitions>");
  return out;
}

SoapStub::SoapStub(boost::asio::io_context& io) : server_(io) {
  for (const char* path : {kGoodsImportPath, kFeedbackPath}) {
    std::string p = path;
    std::string service = p.substr(p.rfind('/') + 1);
    server_.Route("GET", p, [this, p, service](const ControlRequest& req) -> ControlResponse {
      if (req.query.count("wsdl") == 0 && req.query.count("WSDL") == 0)
        return {404, "Not Found", "text/plain"};
      return {200, WsdlFor(service, Cat("http://", address_.host, ":", address_.port, p)), kXml};
    });
  }
  server_.Fallback([](const ControlRequest&) {
    return ControlResponse{404, "Not Found", "text/plain"};
  });
}

absl::Status SoapStub::Open(const HostPort& at) {
  RETURN_IF_ERROR(server_.Listen(at));
  address_ = at;
  address_.port = server_.port();
  return absl::OkStatus();
}

absl::Status SoapStub::Reopen() {
  if (up()) return absl::OkStatus();
  return server_.Listen(address_);
}

}  // namespace setdiag::store_sim
