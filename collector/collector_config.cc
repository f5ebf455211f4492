#include "collector/collector_config.h"

#include <arpa/inet.h>

#include <charconv>

#include "common/strings.h"
#include "common/config.h"

namespace setdiag::collector {
namespace {
bool IsLoopbackListen(const std::string& listen) {
  auto parsed = ParseListen(listen);
  return parsed.ok() && parsed->loopback;
}
}  // namespace

absl::StatusOr<ListenAddress> ParseListen(const std::string& listen) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon + 1 == listen.size()) {
    return absl::InvalidArgumentError(Cat("'", listen, "' must be host:port"));
  }
  ListenAddress out;
  std::string host = listen.substr(0, colon);
  if (host.size() > 1 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "localhost") host = "127.0.0.1";
  unsigned char buf[sizeof(in6_addr)];
  if (inet_pton(AF_INET, host.c_str(), buf) == 1) {
    out.loopback = buf[0] == 127;
  } else if (inet_pton(AF_INET6, host.c_str(), buf) == 1) {
    out.loopback = host == "::1";
  } else {
    return absl::InvalidArgumentError(Cat("'", listen, "': the host must be an IP address or localhost"));
  }
  int port = 0;
  auto [p, ec] = std::from_chars(listen.data() + colon + 1, listen.data() + listen.size(), port);
  if (ec != std::errc() || p != listen.data() + listen.size() || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(Cat("'", listen, "': bad port"));
  }
  out.host = host;
  out.port = static_cast<uint16_t>(port);
  return out;
}

absl::StatusOr<CollectorConfig> LoadCollectorConfig(const std::string& path) {
  std::unique_ptr<ConfigReader> r;
  if (auto st = ConfigReader::Load(path, &r); !st.ok()) return st;
  CollectorConfig c;
  c.data_dir = r->String("collector.data_dir", c.data_dir);
  c.log_level = r->String("collector.log_level", c.log_level);
  c.grpc_listen = r->String("grpc.listen", c.grpc_listen);
  c.tls_cert_file = r->String("grpc.tls_cert_file", "");
  c.tls_key_file = r->String("grpc.tls_key_file", "");
  c.allow_insecure = r->Bool("grpc.allow_insecure", false);
  c.max_message_bytes = r->Bytes("grpc.max_message_bytes", c.max_message_bytes, 64 * 1024);
  c.http_listen = r->String("http.listen", c.http_listen);
  c.max_pending_events = static_cast<size_t>(
      r->Int("ingest.max_pending_events", static_cast<int64_t>(c.max_pending_events), 1000, 100'000'000));
  c.limits.max_events_per_batch = static_cast<size_t>(
      r->Int("ingest.max_events_per_batch", static_cast<int64_t>(c.limits.max_events_per_batch), 1, 100'000));
  c.limits.max_payload_bytes = static_cast<size_t>(
      r->Bytes("ingest.max_payload_bytes", static_cast<int64_t>(c.limits.max_payload_bytes), 1024));
  c.limits.status_interval_s = static_cast<uint32_t>(
      r->DurationMs("ingest.status_interval", int64_t{c.limits.status_interval_s} * 1000, 1000) / 1000);
  if (auto st = r->Finish(); !st.ok()) return st;
  if (c.log_level != "debug" && c.log_level != "info" && c.log_level != "warn" && c.log_level != "error") {
    return absl::InvalidArgumentError(
        Cat(path, ": key 'collector.log_level': expected debug, info, warn or error"));
  }
  if (c.max_message_bytes > 64 * 1024 * 1024) {
    return absl::InvalidArgumentError(Cat(path, ": key 'grpc.max_message_bytes': at most 64MiB"));
  }
  if (!ParseListen(c.http_listen).ok()) {
    return absl::InvalidArgumentError(Cat(path, ": key 'http.listen': ", ParseListen(c.http_listen).status().message()));
  }
  if (c.tls_cert_file.empty() != c.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        Cat(path, ": keys 'grpc.tls_cert_file' and 'grpc.tls_key_file' go together"));
  }
  if (!c.tls() && !c.allow_insecure && !IsLoopbackListen(c.grpc_listen)) {
    return absl::InvalidArgumentError(Cat(
        path, ": key 'grpc.listen' = '", c.grpc_listen,
        "' is not loopback: set 'grpc.tls_cert_file' and 'grpc.tls_key_file', or "
        "'grpc.allow_insecure = true' to accept plaintext"));
  }
  return c;
}

}  // namespace setdiag::collector
