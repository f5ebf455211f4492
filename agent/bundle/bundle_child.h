#pragma once
// The daemon builds diagnostic bundles in a child process: its own binary
// run as `setdiag-agent --config <file> bundle -o <out> ... --json
// --manifest-out <file>` (docs/bundles.md). The memory a build takes (heap
// the allocator keeps, the steps' code) goes back to the OS when the child
// exits; a step wedged in the kernel (a hard NFS mount) or crashing takes
// the child with it, never the daemon's watches.
//
// The binary is the one the daemon runs: /proc/self/exe is opened once at
// construction and the child is started through /proc/self/fd/<fd>, so a
// package upgrade replacing the file mid-run still runs the same version
// (whose command line this code knows) until the daemon is restarted.
//
// Build() waits for the child up to a deadline (then SIGKILL,
// DeadlineExceeded) or until Stop() (SIGTERM, SIGKILL after a grace period,
// Cancelled). The child is always reaped; one that SIGKILL cannot end at
// once (uninterruptible kernel sleep) is polled later without blocking and
// left to init when the daemon exits. The child dies with the daemon
// (PR_SET_PDEATHSIG through the hidden `--parent-pid` option).

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/link/uplink.h"
#include "common/mutex.h"

namespace setdiag::agent {

struct BundleChildOptions {
  std::string config_path;          // the daemon's config file, passed to the child
  int64_t deadline_ms = 0;          // the child is killed after this long
  int64_t finish_grace_ms = 0;      // Stop(): a running build may finish within this
  int64_t term_grace_ms = 2000;     // then SIGTERM, and SIGKILL after this
  int64_t kill_reap_ms = 5000;      // after SIGKILL, wait at most this long to reap
  size_t stderr_keep_bytes = 4096;  // of the child's stderr, for errors
};

class BundleChild {
 public:
  explicit BundleChild(BundleChildOptions options);
  ~BundleChild();
  BundleChild(const BundleChild&) = delete;
  BundleChild& operator=(const BundleChild&) = delete;

  // Builds in a child. `*not_started` is set, with the reason in the
  // status, when no child could be started (no config file path, the config
  // file is gone, the binary could not be opened, spawning failed): the
  // caller may then build in-process. After Stop() returns Cancelled at
  // once, not_started unset.
  absl::StatusOr<BuiltBundle> Build(const BundleBuildRequest& r, bool* not_started);
  // Ends a build in progress (SIGTERM, then SIGKILL) and refuses new ones.
  void Stop();

  // max(logs_timeout, step_timeout) * 2 + 10 min.
  static int64_t DefaultDeadlineMs(int64_t step_timeout_ms, int64_t logs_timeout_ms);

 private:
  // How the wait for a child ended.
  struct ChildExit {
    bool reaped = false;  // waited for; `status` is its wait status
    int status = 0;
    bool stopped = false;       // Stop() ended it (SIGTERM, maybe SIGKILL)
    bool deadline_hit = false;  // the deadline ended it (SIGKILL)
  };

  void ReapLeftovers() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Waits for child `pid`, started at `started`, until it ends; sends
  // SIGTERM/SIGKILL on Stop() or the deadline, and leaves a child that
  // SIGKILL does not end in unreaped_.
  ChildExit WaitForChild(pid_t pid, const std::string& request_id,
                         std::chrono::steady_clock::time_point started);
  // Why the build failed, from how the child ended and the tail of its
  // stderr; OK when it exited 0.
  absl::Status ExitError(const ChildExit& ended, const std::string& tail) const;
  // Empty when a child can be started now; otherwise why not.
  std::string Unavailable() const;

  BundleChildOptions options_;
  int exe_fd_ = -1;
  std::string exe_error_;

  Mutex mu_;
  CondVar cv_;  // stopping_ changed
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<pid_t> unreaped_ ABSL_GUARDED_BY(mu_);  // SIGKILLed children not yet gone
};

}  // namespace setdiag::agent
