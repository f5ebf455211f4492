// Diagnostic bundles through the collector, with real processes on this
// machine (results and commands in docs/benchmarks.md, "Bundles"):
//
//   A store server with one log file of random base64 text, sized so that
//   the gzipped bundle is ~100 MB (6 random bits per character: gzip keeps
//   about 76 %). Each run asks for a bundle
//   through the collector (`setdiag bundle pull --no-wait`), then measures
//   - build: request to the first byte at the collector (the agent builds
//     the .tar.gz; not the link);
//   - transfer: first byte to the verified file renamed in place
//     (<data_dir>/bundles/<id>.tar.gz), by watching the collector's files;
//   - the agent's VmRSS (/proc/<pid>/status, sampled every 50 ms) when the
//     transfer starts and its peak during the transfer: the growth is what
//     streaming costs (the goal: at most 20 MiB);
//   - the download of the finished bundle with `setdiag bundle get`.
//
//   bench_bundles [--runs 3] [--megabytes 100]

#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/harness.h"

using namespace setdiag::testing;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

int64_t SteadyUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t FileSize(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : -1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"bench_bundles: a ~100 MB diagnostic bundle pulled through the collector"};
  int runs = 3;
  int megabytes = 100;
  app.add_option("--runs", runs, "How many bundles")->capture_default_str();
  app.add_option("--megabytes", megabytes, "Size of the bundle (the log file is a third larger)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  Deployment d("bench-bundles",
               "[bundles]\nmax_bundle_bytes = \"2GiB\"\nmax_total_bytes = \"20GiB\"\n");
  d.StartCollector();
  const std::string logs = d.dir() + "/store-logs";
  std::filesystem::create_directories(logs);
  WriteIncompressibleLog(logs + "/server.log", static_cast<size_t>(megabytes) * 1000 * 1000 / 3 * 4,
                         7);
  std::string token = d.CreateStoreToken("1042", "acme");
  AgentSetup& a =
      d.AddAgent("1042", token,
                 "[bundle]\nlog_globs = [\"" + logs +
                     "/*.log\"]\nstep_timeout = \"10s\"\n"
                     "log_file_cap = \"2GiB\"\nlog_total_cap = \"2GiB\"\nlogs_timeout = \"5m\"\n");
  d.StartAgent(a);
  if (!WaitFor(
          [&] {
            return d.Cli({"--json", "agents", "list"}).out.find("\"connected\": true") !=
                   std::string::npos;
          },
          20s)) {
    std::fprintf(stderr, "the agent did not connect:\n%s\n", ReadFile(a.log_path).c_str());
    return 1;
  }
  const pid_t agent_pid = a.process->pid();
  std::printf("bundles of ~%d MB, %d run(s); agent pid %d; RSS in MiB\n", megabytes, runs,
              static_cast<int>(agent_pid));
  std::printf("%-4s %8s %8s %10s %8s %9s %10s %10s %10s %10s %9s\n", "run", "size MB", "build s",
              "transfer s", "MB/s", "RSS idle", "build peak", "send start", "send peak",
              "send grow", "get MB/s");
  bool all_ok = true;
  double worst_rate = 1e9, worst_growth = 0;
  for (int run = 1; run <= runs; ++run) {
    auto r = d.Cli({"bundle", "pull", "--store", "1042", "--no-wait"});
    if (r.exit_code != 0) {
      std::fprintf(stderr, "pull failed: %s\n", r.err.c_str());
      return 1;
    }
    std::string id = r.out.substr(0, r.out.find('\n'));
    const std::string part = d.dir() + "/collector/bundles/" + id + ".part";
    const std::string final_path = d.dir() + "/collector/bundles/" + id + ".tar.gz";
    const int64_t requested = SteadyUs();

    // RSS sampler: every 50 ms, into the current phase's peak.
    std::atomic<bool> sampling{true}, transferring{false}, first_byte_seen{false};
    std::atomic<int64_t> peak_transfer{0}, at_start{0}, peak_build{0};
    const int64_t idle = SampleProcess(agent_pid).rss_kib;
    std::thread sampler([&] {
      while (sampling) {
        int64_t kib = SampleProcess(agent_pid).rss_kib;
        if (transferring)
          peak_transfer = std::max<int64_t>(peak_transfer, kib);
        else if (first_byte_seen == false)
          peak_build = std::max<int64_t>(peak_build, kib);
        std::this_thread::sleep_for(50ms);
      }
    });
    int64_t first_byte = 0, done = 0, last_check = SteadyUs();
    const int64_t deadline = SteadyUs() + 600'000'000;
    while (SteadyUs() < deadline) {
      if (first_byte == 0 && FileSize(part) > 0) {
        first_byte = SteadyUs();
        first_byte_seen = true;
        at_start = SampleProcess(agent_pid).rss_kib;
        peak_transfer = at_start.load();
        transferring = true;
      }
      if (FileSize(final_path) > 0 && FileSize(part) < 0) {
        done = SteadyUs();
        break;
      }
      if (first_byte == 0 && SteadyUs() - last_check > 1'000'000) {
        last_check = SteadyUs();
        auto show = d.Cli({"--json", "bundle", "show", id});
        if (show.out.find("\"failed\"") != std::string::npos) {
          std::fprintf(stderr, "run %d: the bundle failed:\n%s\n", run, show.out.c_str());
          break;
        }
      }
      std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    transferring = false;
    sampling = false;
    sampler.join();
    if (done == 0 || first_byte == 0) {
      std::fprintf(stderr, "run %d: the bundle did not arrive\n%s\n", run,
                   ReadFile(a.log_path).c_str());
      return 1;
    }
    // Let the row commit before downloading.
    WaitFor(
        [&] {
          return d.Cli({"--json", "bundle", "show", id}).out.find("\"complete\"") !=
                 std::string::npos;
        },
        30s);
    const double size_mb = static_cast<double>(FileSize(final_path)) / 1e6;
    const double transfer_s = static_cast<double>(done - first_byte) / 1e6;
    const double rate = size_mb / transfer_s;
    const double start_mib = static_cast<double>(at_start) / 1024.0;
    const double peak_mib = static_cast<double>(peak_transfer) / 1024.0;
    const std::string out = d.dir() + "/got.tar.gz";
    const int64_t get_start = SteadyUs();
    auto get = d.Cli({"bundle", "get", id, "-o", out});
    const double get_rate = size_mb / (static_cast<double>(SteadyUs() - get_start) / 1e6);
    if (get.exit_code != 0) {
      std::fprintf(stderr, "get failed: %s\n", get.err.c_str());
      all_ok = false;
    }
    std::filesystem::remove(out);
    std::printf("%-4d %8.1f %8.2f %10.2f %8.1f %9.1f %10.1f %10.1f %10.1f %10.1f %9.1f\n", run,
                size_mb, static_cast<double>(first_byte - requested) / 1e6, transfer_s, rate,
                static_cast<double>(idle) / 1024.0, static_cast<double>(peak_build) / 1024.0,
                start_mib, peak_mib, peak_mib - start_mib, get_rate);
    std::fflush(stdout);
    worst_rate = std::min(worst_rate, rate);
    worst_growth = std::max(worst_growth, peak_mib - start_mib);
  }
  std::printf(
      "worst: %.1f MB/s through the collector (goal >= 50), agent RSS growth %.1f MiB while "
      "sending "
      "(goal <= 20)\n",
      worst_rate, worst_growth);
  return all_ok && worst_rate >= 50 && worst_growth <= 20 ? 0 : 1;
}
