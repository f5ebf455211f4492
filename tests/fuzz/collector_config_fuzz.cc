// Fuzz target: the collector's TOML config reader, LoadCollectorConfig
// (collector/config/collector_config.h), on a file holding the input: toml++
// parsing and every key's validation (listen addresses, ingest limits,
// tariffs and SLA spans, business hours, notification targets, bundles),
// once as the admin commands load it and once as `serve` does
// (read_tls_files: the certificate and key files it names are read and
// checked with OpenSSL).
//
// Oracles beyond the sanitizers (and no exception escaping): an error is
// InvalidArgument or NotFound and names the file; a loaded config keeps
// the limits the loader enforces (grpc.max_message_bytes at most 64 MiB,
// bundles.max_bundle_bytes at most bundles.max_total_bytes, an http.listen
// that ParseListen accepts, TLS files both or neither, plaintext only on
// loopback unless grpc.allow_insecure).

#include <string>

#include "collector/config/collector_config.h"
#include "config_fuzz_common.h"

using setdiag::fuzz::Fail;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text = setdiag::fuzz::AsText(data, size);
  if (setdiag::fuzz::NamesSpecialFiles(text)) return 0;
  const std::string path = setdiag::fuzz::WriteScratchFile("collector.toml", text);
  for (bool read_tls_files : {false, true}) {
    auto c = setdiag::collector::LoadCollectorConfig(path, read_tls_files);
    if (!c.ok()) {
      const auto code = c.status().code();
      if (code != absl::StatusCode::kInvalidArgument && code != absl::StatusCode::kNotFound)
        Fail("LoadCollectorConfig failed with an unexpected code", c.status().ToString());
      if (std::string(c.status().message()).find(path) == std::string::npos)
        Fail("a config error that does not name the file", std::string(c.status().message()));
      continue;
    }
    if (c->max_message_bytes > 64 * 1024 * 1024)
      Fail("grpc.max_message_bytes over 64 MiB accepted", text);
    if (c->bundles.max_bundle_bytes > c->bundles.max_total_bytes)
      Fail("bundles.max_bundle_bytes over bundles.max_total_bytes accepted", text);
    if (!setdiag::collector::ParseListen(c->http_listen).ok())
      Fail("a bad http.listen accepted", text);
    if (c->tls_cert_file.empty() != c->tls_key_file.empty())
      Fail("half a TLS configuration accepted", text);
    if (c->DatabasePath().empty() || c->BundleDir().empty())
      Fail("no database or bundle path", text);
  }
  return 0;
}
