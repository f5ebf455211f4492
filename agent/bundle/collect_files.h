#pragma once
// Bundle steps that copy files, redacted: "config" (the agent's config file,
// the effective config, other config files of the store server) and "logs"
// (the SET server's logs by glob, newest first, the tail of each within a
// per-file and a total cap). Files are streamed in 64 KiB chunks through a
// StreamRedactor into scratch files; nothing is held whole in memory.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/bundle/step.h"

namespace setdiag::agent::bundle {

struct CopyStats {
  uint64_t source_size = 0;  // at the time of reading
  uint64_t from_offset = 0;  // where reading started (a tail, aligned to a line)
  uint64_t bytes_read = 0;
  uint64_t bytes_written = 0;
  uint64_t lines_split = 0;
  bool truncated = false;  // only the tail was taken
  RedactionCounts redactions;
};

// Copies at most the last `cap` bytes of `source` (from the first line start
// in that tail) into `dest`, redacted. Reads only up to the size the file
// had when opened, so a growing log cannot exceed the cap. Stops with
// Cancelled when `cancelled` turns true. FailedPrecondition for a
// compressed file (gzip, bzip2, xz, zstd, zip), which cannot be redacted.
absl::StatusOr<CopyStats> CopyRedacted(const std::string& source, const std::string& dest,
                                       uint64_t cap, const StepContext* cancel_from);

struct LogCandidate {
  std::string path;
  int64_t mtime_ms = 0;
  uint64_t size = 0;
};

// Regular files matching the globs, modified at or after not_before_ms,
// newest first, each once. `older` counts the files left out for their age.
std::vector<LogCandidate> FindLogFiles(const std::vector<std::string>& globs, int64_t not_before_ms,
                                       int* older);

BundleStep MakeConfigStep(std::string agent_config_path, nlohmann::json effective_config,
                          std::vector<std::string> other_config_files, std::string config_error);
BundleStep MakeLogsStep(std::vector<std::string> globs, uint64_t file_cap, uint64_t total_cap,
                        int64_t timeout_ms);

}  // namespace setdiag::agent::bundle
