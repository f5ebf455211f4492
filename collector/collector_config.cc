#include "collector/collector_config.h"

#include "common/strings.h"
#include "common/config.h"

namespace setdiag::collector {
namespace {
bool IsLoopbackListen(const std::string& listen) {
  return listen.starts_with("127.") || listen.starts_with("localhost:") || listen.starts_with("[::1]:");
}
}  // namespace

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
