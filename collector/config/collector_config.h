#pragma once
// The collector's configuration file (TOML), documented in docs/config.md.

#include <string>

#include "absl/status/statusor.h"
#include "collector/bundles/bundle_store.h"
#include "collector/link/link_service.h"
#include "collector/notify/notifications.h"
#include "collector/tickets/tickets.h"

namespace setdiag::collector {

struct CollectorConfig {
  std::string data_dir = "/var/lib/setdiag-collector";
  std::string log_level = "info";
  std::string grpc_listen = "0.0.0.0:7443";
  std::string tls_cert_file, tls_key_file;
  // Their contents, read and checked only when loaded for serving (below).
  std::string tls_cert_pem, tls_key_pem;
  bool allow_insecure = false;
  int64_t max_message_bytes = 4 * 1024 * 1024;
  std::string http_listen = "127.0.0.1:8088";
  // Threads that answer admin API requests (each with its own read
  // connection): one slow request leaves the others these to run on.
  int64_t http_workers = 4;
  // A second listener for the support console (and the API), for people's
  // browsers on the network: HTTPS with the collector's certificate
  // (grpc.tls_cert_file / grpc.tls_key_file); plain HTTP only on loopback.
  // Empty: the console is served on http.listen only.
  std::string console_listen;
  size_t max_pending_events = 200'000;
  IngestLimits limits;
  TicketPolicy tickets;
  // Production calendar files (docs/sla.md); business hours in `zone`.
  std::string calendar_dir = "/usr/share/setdiag/calendars";
  std::string business_zone = "Europe/Moscow";
  int business_start_minute = 10 * 60, business_end_minute = 19 * 60;
  int64_t tick_interval_ms = 1000;
  NotifyConfig notify;
  // Diagnostic bundles: retention and size limits; files in BundleDir().
  BundleRetention bundles;
  std::string bundle_dir;  // empty: <data_dir>/bundles

  std::string DatabasePath() const { return data_dir + "/collector.db"; }
  std::string BundleDir() const { return bundle_dir.empty() ? data_dir + "/bundles" : bundle_dir; }
  bool tls() const { return !tls_cert_file.empty(); }
};

// With `read_tls_files` (the collector about to serve), also reads
// grpc.tls_cert_file and grpc.tls_key_file into tls_cert_pem / tls_key_pem
// and refuses, naming the key and its line, a certificate file without a PEM
// certificate, a key file without a PEM private key (or one protected by a
// passphrase), and a key that is not the first certificate's. Without it
// (admin commands, `check`, which reports these itself) the files are not
// opened.
absl::StatusOr<CollectorConfig> LoadCollectorConfig(const std::string& path,
                                                    bool read_tls_files = false);

struct ListenAddress {
  std::string host;  // IP literal ("localhost" becomes 127.0.0.1)
  uint16_t port = 0;
  bool loopback = false;
};
// Parses "host:port" / "[v6]:port" of a listening socket.
absl::StatusOr<ListenAddress> ParseListen(const std::string& listen);

}  // namespace setdiag::collector
