#pragma once
// Diagnostic bundles: the store's evidence in one .tar.gz for the engineer
// (docs/bundles.md). BuildBundle collects, in parallel steps each bounded by
// a timeout, the agent's config (redacted), the SET server's logs (redacted,
// newest first, capped), the agent's recent history, a live snapshot of SET
// (tills with their last activity, import packages, transport, inbox
// listings, deployment markers, ports), the host (uptime, load, memory,
// disks, listening ports, relevant processes, clock sync) and the agent's
// own health (outbox depth, oldest unsent, gaps, maintenance windows), and
// ends the archive with manifest.json: every file with its size, SHA-256,
// step and collection time; every step with its status (ok, failed: why,
// timed_out, skipped); what could not be collected and why; and the
// redaction report (counts per file and rule, never values).
//
// Who calls it: `setdiag-agent bundle` (on site, no daemon or collector
// needed) and, later, the transfer to the collector. Any thread may call
// it; concurrent calls need different output paths. It needs no running
// agent: it reads SET's database (read-only), the agent's state files
// (SQLite, read-only use beside a running daemon) and the file system.
//
// Time: `clock` gives the bundle's creation instant and thus its window.
// Step timeouts are real time (steady clock), because they bound real
// blocking in the system being diagnosed; a step that has not finished by
// its timeout is recorded as timed_out, its later output is ignored and its
// thread is left to finish (or hang) on its own, touching only state it
// shares through StepContext. BuildBundle therefore returns within about the
// longest step timeout plus the time to write the archive.
//
// Memory: files are streamed into the archive in 64 KiB chunks from scratch
// files written beside the output (<out>.tmp-XXXXXX/, removed afterwards);
// only small generated outputs (JSON) are held in memory. Disk: up to the
// log caps in scratch files plus the archive itself.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/bundle/step.h"
#include "agent/config/agent_config.h"
#include "agent/config/bundle_config.h"
#include "common/clock.h"

namespace setdiag::agent::bundle {

inline constexpr int kBundleFormatVersion = 1;

struct BundleOptions {
  // From [bundle]: window, log globs and caps, config files, timeouts.
  BundleConfig config;
  // The agent's own config file, included redacted; empty: not included.
  std::string agent_config_path;
  // Why the config could not be loaded, when the caller builds a bundle
  // from defaults instead (recorded in the manifest).
  std::string config_error;

  bool include_config = true;
  bool include_logs = true;
  bool include_history = true;
  bool include_set = true;    // SET's database, server markers, ports, inboxes
  bool include_host = true;   // system, processes, ports, disks, clock
  bool include_agent = true;  // outbox, maintenance windows, state files

  // Run in addition to the built-in steps (after them in the archive); for
  // tests, and for callers with their own evidence.
  std::vector<BundleStep> extra_steps;

  // The [bundle] section of `config`, everything included, and the file the
  // config was loaded from (config.config_path).
  static BundleOptions FromConfig(const AgentConfig& config);
};

struct BundleResult {
  std::string path;    // the finished .tar.gz
  uint64_t size = 0;   // bytes
  std::string sha256;  // of the whole .tar.gz
  nlohmann::json manifest;
  int steps_ok = 0;
  int steps_failed = 0;
  int steps_timed_out = 0;
  int steps_skipped = 0;
  int64_t files = 0;
  int64_t redactions = 0;  // values removed, all files and rules
};

// A step that never returns (a dead NFS mount in statvfs, a wedged driver)
// keeps its thread: each such bundle leaks one blocked thread, and a process
// exiting meanwhile may wait for the kernel to let it go.
//
// Builds the bundle into out_path + ".part" and renames it to out_path when
// complete, so a reader never sees half a bundle. Failed or timed-out steps
// do not fail the bundle: they are reported in the manifest. Errors:
// InvalidArgument for bad options (duplicate step names), Unavailable or
// ResourceExhausted when the archive cannot be written (disk full...).
absl::StatusOr<BundleResult> BuildBundle(const AgentConfig& config, const BundleOptions& options,
                                         const std::string& out_path, Clock& clock);

// The built-in steps for this config and these options, in archive order.
std::vector<BundleStep> DefaultSteps(const AgentConfig& config, const BundleOptions& options);

// The effective configuration without secrets (token, passwords), as JSON.
nlohmann::json EffectiveConfigJson(const AgentConfig& config);

}  // namespace setdiag::agent::bundle
