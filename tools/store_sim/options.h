#pragma once
// What `setdiag-store-sim run` is told on its command line, validated.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/host_port.h"

namespace setdiag::store_sim {

using setdiag::HostPort;

struct HttpUrl {
  std::string host;
  uint16_t port = 80;
  std::string target = "/";  // path and query
  std::string ToString() const;
};

struct SimOptions {
  std::string pg_conninfo;  // libpq key=value string or URI, without a database
  // The zone SET's server writes its local timestamps in (session TimeZone
  // of the simulator's connections); empty: the PostgreSQL server's default.
  std::string time_zone;
  int store = 0;  // shop_number
  int tills = 0;  // tills 1..tills
  int64_t interval_ms = 1000;
  HostPort control;
  std::optional<HostPort> push_udp;
  std::optional<HttpUrl> push_http;
  std::string till_ip_base;    // "127.0.1." -> till n at 127.0.1.(10+n)
  uint16_t probe_port = 2222;  // 0: no probe listeners
  std::vector<int> mothballed;

  // Goods and prices (docs/simulator.md, "Goods and prices").
  int64_t erp_every_ms = 0;         // ERP package cadence; 0: the ERP starts stopped
  std::string erp_type = "GOODS";   // erp_transport_package.importtype
  int64_t process_delay_ms = 1000;  // arrival -> processed by the server
  int64_t load_delay_ms = 1000;     // product file produced -> loaded by a till
  std::string inbox;                // file exchange folder; "" = none
  std::optional<HostPort> soap;     // where the import web services' WSDL answers

  std::string StoreId() const { return std::to_string(store); }
  std::string TillIp(int number) const { return till_ip_base + std::to_string(10 + number); }
};

// "http://host[:port]/path". Only plain http: the simulator talks to loopback.
absl::StatusOr<HttpUrl> ParseHttpUrl(const std::string& text);
// Largest till count an IP base allows: the last octet is 10 + n <= 254.
inline constexpr int kMaxTills = 244;
// "127.0.1." (three octets and a dot).
absl::Status ValidateIpBase(const std::string& base);

}  // namespace setdiag::store_sim
