#pragma once
// One collection step of a diagnostic bundle ("logs", "set_db", "host"...)
// and what it sees while it runs.
//
// The builder (agent/bundle/bundle.h) runs every step on its own detached
// thread and waits for it at most the step's timeout. A step writes big
// outputs as finished files into its own scratch directory and hands them
// over with AddFile(); small outputs go in memory with AddText()/AddJson(),
// which redact them. Everything a step touches is owned through the
// StepContext, itself shared (shared_ptr) by the step's thread and the
// builder: once the builder gives up (timeout), cancelled() turns true, the
// Add* calls refuse further output, and the step may finish whenever it
// likes without touching freed memory. Files handed over before the timeout
// are kept in the bundle. A step must not capture references to the
// caller's objects (config, clock): copy what it needs into its closure.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "agent/core/redact.h"
#include "common/mutex.h"

namespace setdiag::agent::bundle {

// One file of the bundle, as the manifest describes it.
struct CollectedFile {
  std::string path;  // inside the bundle, e.g. "logs/var/lib/jboss/standalone/log/server.log"
  std::string
      local_path;  // a finished file in the step's scratch directory; empty: `content` is the file
  std::string content;  // small generated text
  std::string source;   // where it came from: a path, "postgresql:set", "/proc"...
  std::string method;   // how: "generated", "redacted_copy", "redacted_tail", "query"...
  int64_t collected_in_ms = 0;
  nlohmann::json details = nlohmann::json::object();  // e.g. source size, offset, truncated
  RedactionCounts redactions;
};

// Something a step could not collect, and why (permission denied, not found,
// over the size cap). The step itself may still be ok.
struct SkippedItem {
  std::string source;
  std::string reason;
};

namespace internal {
// Shared between the step's thread and the builder; guarded by `mu`.
struct StepShared {
  Mutex mu;
  CondVar cv;  // done
  bool done ABSL_GUARDED_BY(mu) = false;
  bool abandoned ABSL_GUARDED_BY(mu) = false;  // the builder stopped waiting
  absl::Status status ABSL_GUARDED_BY(mu);
  std::vector<CollectedFile> files ABSL_GUARDED_BY(mu);
  std::vector<SkippedItem> skipped ABSL_GUARDED_BY(mu);
  std::vector<std::string> notes ABSL_GUARDED_BY(mu);
  std::chrono::steady_clock::time_point finished ABSL_GUARDED_BY(mu);  // set with done
  std::atomic<bool> cancelled{false};
};
}  // namespace internal

class StepContext {
 public:
  StepContext(std::string name, std::string scratch_dir, int64_t now_ms, int64_t window_ms,
              std::shared_ptr<internal::StepShared> shared);

  const std::string& name() const { return name_; }
  // A directory for this step alone (created before the step starts).
  const std::string& scratch_dir() const { return scratch_dir_; }
  // The bundle's creation time (wall clock, Unix ms, from the builder's
  // Clock) and the start of its window.
  int64_t now_ms() const { return now_ms_; }
  int64_t window_start_ms() const { return now_ms_ - window_ms_; }
  int64_t window_ms() const { return window_ms_; }
  // True once the builder gave up on this step: stop early.
  bool cancelled() const { return shared_->cancelled.load(std::memory_order_relaxed); }

  // Hands over a finished file (local_path in scratch_dir(), or content).
  // collected_in_ms defaults to the time since the previous hand-over. False
  // when the builder no longer takes output (the file is not in the bundle).
  bool AddFile(CollectedFile file);
  // Generated text, redacted line by line here.
  bool AddText(std::string path, std::string_view text, std::string source,
               std::string method = "generated");
  // JSON, pretty-printed; every string redacted, and strings under a key
  // named like a secret (password, token...) replaced whole.
  bool AddJson(std::string path, const nlohmann::json& value, std::string source,
               std::string method = "generated");
  // An item the step could not collect, and why (redacted).
  void Skip(std::string source, std::string_view reason);
  // A remark for the manifest's step entry (e.g. "3 of 5 queries failed").
  void Note(std::string_view text);

 private:
  std::string name_;
  std::string scratch_dir_;
  int64_t now_ms_;
  int64_t window_ms_;
  std::shared_ptr<internal::StepShared> shared_;
  std::chrono::steady_clock::time_point last_add_;
};

// A step's body: returns OK, or why it failed (its files so far are kept).
using StepFn = std::function<absl::Status(StepContext&)>;

struct BundleStep {
  std::string name;        // [a-z0-9_]+, unique in a bundle
  int64_t timeout_ms = 0;  // 0: BundleConfig::step_timeout_ms
  StepFn run;
  std::string skip_reason;  // non-empty: not run, reported as skipped (e.g. not configured)
};

inline BundleStep MakeStep(std::string name, int64_t timeout_ms, StepFn run) {
  BundleStep s;
  s.name = std::move(name);
  s.timeout_ms = timeout_ms;
  s.run = std::move(run);
  return s;
}

// Redacts every string of `value` in place (see StepContext::AddJson).
void RedactJson(nlohmann::json* value, RedactionCounts* counts);

}  // namespace setdiag::agent::bundle
