#pragma once
// `setdiag bundle ...`: diagnostic bundles pulled from a store through the
// collector (docs/api.md, docs/bundles.md).

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "cli/api_client.h"

namespace setdiag::cli {

struct PullArgs {
  std::string store;
  int64_t ticket_id = 0;
  std::string output;  // empty: bundle-<store>-<id>.tar.gz
  std::string window;  // e.g. "24h"; empty: the agent's default
  bool no_logs = false;
  std::string reason;
  bool wait = true;
  int64_t timeout_ms = 10 * 60'000;
  int64_t poll_ms = 500;
};

// Each returns the process exit code and prints on stdout/stderr.
int BundlePull(ApiClient& client, const PullArgs& args, bool json);
int BundleList(ApiClient& client, const std::string& store, int64_t ticket_id, bool json);
int BundleShow(ApiClient& client, const std::string& id, bool json);
int BundleGet(ApiClient& client, const std::string& id, const std::string& output, bool json);
// `what`: a local .tar.gz, or a bundle id (the manifest the collector kept).
int BundleManifest(ApiClient& client, const std::string& what, bool json);

// manifest.json out of a bundle file (libarchive, streaming).
absl::StatusOr<std::string> ReadManifestFromFile(const std::string& path);
// SHA-256 of a file, lowercase hex, read in pieces.
absl::StatusOr<std::string> FileSha256(const std::string& path);

}  // namespace setdiag::cli
