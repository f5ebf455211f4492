// `setdiag-agent bundle`: a diagnostic bundle built here and now, by an
// engineer or, with the hidden --parent-pid and --manifest-out, as the
// daemon's child process (agent/bundle/bundle_child.h).

#include "agent/bundle/bundle.h"

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>

#include "agent/commands/commands.h"
#include "common/clock.h"
#include "common/files.h"
#include "common/log.h"
#include "common/strings.h"

namespace setdiag::agent {
namespace {}  // namespace

int BundleCommand(const std::string& config_path, const BundleArgs& args) {
  log::SetLevel(log::Level::kWarn);
  if (args.parent_pid > 0) {
    // Built for the daemon: a daemon killed outright must not leave a build
    // writing into its bundle directory (a restarted daemon builds again).
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    // Started through /proc/self/fd/N, the process would be named "N".
    ::prctl(PR_SET_NAME, "setdiag-agent");
    if (::getppid() != static_cast<pid_t>(args.parent_pid)) {
      std::cerr << "setdiag-agent bundle: the agent that asked for this bundle is gone\n";
      return 1;
    }
  }
  AgentConfig cfg;
  std::string config_error;
  if (auto loaded = LoadAgentConfig(config_path); loaded.ok()) {
    cfg = std::move(*loaded);
  } else {
    config_error = std::string(loaded.status().message());
    std::cerr << "setdiag-agent bundle: bad config: " << config_error
              << "\n  collecting with default settings instead (no SET database access)\n";
  }
  auto options = bundle::BundleOptions::FromConfig(cfg);
  options.agent_config_path = config_path;
  options.config_error = config_error;
  if (!args.window.empty()) {
    int64_t ms = ParseDurationArg(args.window);
    if (ms < 60'000) {
      std::cerr
          << "setdiag-agent bundle: --window needs a duration of at least 1m, such as 6h or 2d\n";
      return kExitConfig;
    }
    options.config.window_ms = ms;
  }
  if (!args.step_timeout.empty()) {
    int64_t ms = ParseDurationArg(args.step_timeout);
    if (ms < 100) {
      std::cerr << "setdiag-agent bundle: --step-timeout needs a duration of at least 100ms, such "
                   "as 20s\n";
      return kExitConfig;
    }
    options.config.step_timeout_ms = ms;
  }
  options.include_logs = !args.no_logs;
  SystemClock clock;
  std::string out = args.output;
  if (out.empty()) {
    out = Cat("setdiag-bundle-", cfg.store_id.empty() ? "unknown" : cfg.store_id, "-",
              IsoUtc(clock.NowMs(), /*compact=*/true), ".tar.gz");
  }
  std::cerr << "setdiag-agent bundle: collecting (each step at most "
            << options.config.step_timeout_ms / 1000 << " s, logs "
            << options.config.logs_timeout_ms / 1000 << " s)...\n";
  auto result = bundle::BuildBundle(cfg, options, out, clock);
  if (!result.ok()) {
    std::cerr << "setdiag-agent bundle: " << result.status().message() << "\n";
    return result.status().code() == absl::StatusCode::kInvalidArgument ? kExitConfig : 1;
  }
  const auto& m = result->manifest;
  if (!args.manifest_out.empty()) {
    if (auto st = WriteFileAtomically(
            args.manifest_out, m.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
            0640);
        !st.ok()) {
      std::cerr << "setdiag-agent bundle: --manifest-out: " << st.message() << "\n";
      return 1;
    }
  }
  if (args.json) {
    nlohmann::json summary = {{"path", result->path},
                              {"size", result->size},
                              {"sha256", result->sha256},
                              {"summary", m["summary"]},
                              {"steps", m["steps"]},
                              {"redactions", m["redactions"]["by_rule"]},
                              {"not_collected", m["not_collected"].size()}};
    std::cout << summary.dump(2) << "\n";
    if (result->steps_timed_out > 0) {
      std::cout.flush();
      std::_Exit(0);
    }
    return 0;
  }
  std::cout << "bundle written: " << result->path << " (" << HumanBytes(result->size) << ", sha256 "
            << result->sha256 << ")\n";
  std::cout << "steps: " << result->steps_ok << " ok, " << result->steps_failed << " failed, "
            << result->steps_timed_out << " timed out, " << result->steps_skipped << " skipped\n";
  for (const auto& s : m["steps"]) {
    if (s["status"] == "ok") continue;
    std::cout << "  " << s["name"].get<std::string>() << ": " << s["status"].get<std::string>();
    if (s["error"].is_string()) std::cout << ": " << s["error"].get<std::string>();
    std::cout << "\n";
  }
  std::cout << "files: " << result->files << "; values redacted: " << result->redactions;
  if (result->redactions > 0) {
    std::string rules;
    for (const auto& [rule, n] : m["redactions"]["by_rule"].items()) {
      Append(&rules, rules.empty() ? "" : ", ", rule, " ", n.get<int64_t>());
    }
    std::cout << " (" << rules << ")";
  }
  std::cout << "\n";
  if (!m["not_collected"].empty()) {
    std::cout << "not collected: " << m["not_collected"].size() << " item(s), see manifest.json\n";
  }
  if (result->steps_timed_out > 0) {
    // A timed-out step's thread may still be running (or stuck in the
    // kernel): leave without running static destructors under its feet.
    std::cout.flush();
    std::_Exit(0);
  }
  return 0;
}

}  // namespace setdiag::agent
