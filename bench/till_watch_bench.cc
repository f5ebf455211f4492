// End-to-end benchmarks of the till watch with real processes on this
// machine (results and commands in docs/benchmarks.md):
//
//   push-latency  20 tills push UDP heartbeats every second; 11 fall silent;
//                 time from the 11th heartbeat becoming overdue (the floor)
//                 and from the tills going silent, to the critical event
//                 stored at the collector. 1 s timeout, no confirm window.
//   poll-latency  the store simulator on a real PostgreSQL, the agent polling
//                 SET's database every second; time from the majority's
//                 heartbeats being overdue to the event (decided, stored).
//   stall-latency a stalled import server: the stuck package crossing its
//                 threshold to the loading.halted event.
//   footprint     200 tills polled every second: agent CPU and RSS.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "tests/integration/harness.h"
#include "tests/integration/pg_server.h"

using namespace setdiag::testing;
using namespace std::chrono_literals;
using json = nlohmann::json;

namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

void Report(const char* what, const std::vector<double>& v) {
  std::printf("%-58s n=%zu median=%.1f p90=%.1f min=%.1f max=%.1f\n", what, v.size(),
              Percentile(v, 0.5), Percentile(v, 0.9),
              v.empty() ? 0 : *std::min_element(v.begin(), v.end()),
              v.empty() ? 0 : *std::max_element(v.begin(), v.end()));
}

std::vector<json> Raised(Deployment& d, const std::string& store, int64_t after_id) {
  auto r = d.Cli({"--json", "events", "list", "--store", store, "--kind", "tills.majority_stopped",
                  "--after", std::to_string(after_id), "--limit", "100"});
  std::vector<json> out;
  if (r.exit_code != 0) return out;
  json body = json::parse(r.out);
  for (const auto& e : body["events"]) out.push_back(e);
  return out;
}

int PushLatency(int runs) {
  Deployment d("bench-push");
  d.StartCollector();
  int udp_port = FreePort();
  std::ostringstream extra;
  extra << "[tills]\npoll_interval = \"1s\"\nheartbeat_timeout = \"1s\"\nconfirm_window = \"0s\"\n"
        << "clear_window = \"1s\"\n[tills.roster]\n";
  for (int t = 1; t <= 20; ++t) extra << t << " = \"127.0.0.1\"\n";
  extra << "[push]\nudp_listen = \"127.0.0.1:" << udp_port << "\"\n[server]\ncheck = false\n";
  auto& agent = d.AddAgent("3042", d.CreateStoreToken("3042", "bench"), extra.str());
  // The benchmark measures the product, not debug logging.
  std::string cfg = ReadFile(agent.config_path);
  cfg.replace(cfg.find("log_level = \"debug\""), 19, "log_level = \"info\"");
  WriteFile(agent.config_path, cfg);
  d.StartAgent(agent);

  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(udp_port));
  inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  std::atomic<bool> stop{false};
  std::atomic<bool> silent{false};
  std::atomic<int64_t> last_beat_of_silent{0};
  // The tills: each beats once a second, all at the same tick.
  std::thread tills([&] {
    auto next = std::chrono::steady_clock::now();
    while (!stop) {
      bool quiet = silent.load();
      for (int t = 1; t <= 20; ++t) {
        if (quiet && t <= 11) continue;
        std::string b = "{\"store\":\"3042\",\"till\":" + std::to_string(t) + "}";
        sendto(fd, b.data(), b.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
      }
      if (!quiet) last_beat_of_silent = NowMs();
      next += 1s;
      std::this_thread::sleep_until(next);
    }
  });
  std::vector<double> from_floor, from_silent, floor_check;
  int64_t after_id = 0;
  std::this_thread::sleep_for(3s);
  for (int run = 0; run < runs; ++run) {
    // Go silent right after a tick: the last heartbeat of tills 1..11 is it.
    int64_t before = last_beat_of_silent.load();
    while (last_beat_of_silent.load() == before) std::this_thread::sleep_for(1ms);
    silent = true;
    int64_t silent_at = last_beat_of_silent.load();
    std::vector<json> raised;
    WaitFor(
        [&] {
          raised.clear();
          for (auto& e : Raised(d, "3042", after_id)) {
            if (e["payload"]["state"] == "raised" || e["payload"]["state"] == "escalated")
              raised.push_back(e);
          }
          return !raised.empty();
        },
        30s, 20ms);
    if (raised.empty()) {
      std::fprintf(stderr, "run %d: no critical event\n%s\n", run, agent.process->Log().c_str());
      return 1;
    }
    const json& e = raised.front();
    int64_t onset = e["payload"]["onset_ms"];
    int64_t stored = e["received_at_ms"];
    from_floor.push_back(static_cast<double>(stored - onset));
    from_silent.push_back(static_cast<double>(stored - silent_at));
    floor_check.push_back(static_cast<double>(onset - silent_at));
    silent = false;
    // Wait for the clear before the next run.
    WaitFor(
        [&] {
          for (auto& x : Raised(d, "3042", e["id"].get<int64_t>())) {
            if (x["payload"]["state"] == "cleared") {
              after_id = x["id"];
              return true;
            }
          }
          return false;
        },
        30s, 50ms);
    std::this_thread::sleep_for(1500ms);
  }
  stop = true;
  tills.join();
  close(fd);
  Report("push: heartbeat overdue (floor) -> stored at collector, ms", from_floor);
  Report("push: tills silent (last heartbeat) -> stored at collector, ms", from_silent);
  Report("push: (check) last heartbeat -> overdue instant, ms", floor_check);
  return 0;
}

std::unique_ptr<Process> StartSim(PgServer& pg, Deployment& d, int tills, int control_port,
                                  int probe_port) {
  auto sim = std::make_unique<Process>(
      std::vector<std::string>{SETDIAG_STORE_SIM_BIN, "run", "--pg", pg.ServerConnString(),
                               "--store", "1042", "--tills", std::to_string(tills), "--interval",
                               "1s", "--control", "127.0.0.1:" + std::to_string(control_port),
                               "--probe-port", std::to_string(probe_port)},
      d.dir() + "/sim.log");
  auto ok = WaitFor([&] { return SimCtl(control_port, {"status"}).exit_code == 0; }, 30s);
  if (!ok) throw std::runtime_error("simulator did not start: " + sim->Log());
  return sim;
}

std::string DbAgentConfig(PgServer& pg, int probe_port, const char* confirm) {
  return std::string(
             "[tills]\npoll_interval = \"1s\"\nheartbeat_timeout = \"3s\"\nconfirm_window = \"") +
         confirm + "\"\nclear_window = \"2s\"\nprobe_port = " + std::to_string(probe_port) +
         "\n[set_db]\nenabled = true\nport = " + std::to_string(pg.port()) +
         "\n[server]\ncheck = false\n";
}

int PollLatency(int runs) {
  auto pg = PgServer::Start();
  Deployment d("bench-poll");
  int control = FreePort(), probe = FreePort();
  auto sim = StartSim(*pg, d, 20, control, probe);
  d.StartCollector();
  auto& agent =
      d.AddAgent("1042", d.CreateStoreToken("1042", "bench"), DbAgentConfig(*pg, probe, "5s"));
  d.StartAgent(agent);
  auto ctl = [&](const char* verb) { return SimCtl(control, {verb, "1-11"}); };
  std::vector<double> decided, stored;
  int64_t after_id = 0;
  std::this_thread::sleep_for(4s);
  for (int run = 0; run < runs; ++run) {
    ctl("stop");
    std::vector<json> raised;
    WaitFor(
        [&] {
          raised.clear();
          for (auto& e : Raised(d, "1042", after_id)) {
            if (e["payload"]["state"] != "cleared") raised.push_back(e);
          }
          return !raised.empty();
        },
        60s, 50ms);
    if (raised.empty()) {
      std::fprintf(stderr, "run %d: no critical event\n%s\n", run, agent.process->Log().c_str());
      return 1;
    }
    const json& e = raised.front();
    int64_t onset = e["payload"]["onset_ms"];
    decided.push_back(static_cast<double>(e["detected_at_ms"].get<int64_t>() - onset));
    stored.push_back(static_cast<double>(e["received_at_ms"].get<int64_t>() - onset));
    ctl("start");
    WaitFor(
        [&] {
          for (auto& x : Raised(d, "1042", e["id"].get<int64_t>())) {
            if (x["payload"]["state"] == "cleared") {
              after_id = x["id"];
              return true;
            }
          }
          return false;
        },
        60s, 100ms);
    std::this_thread::sleep_for(2s);
  }
  Report("poll 1 s, confirm 5 s: overdue -> decided (outbox), ms", decided);
  Report("poll 1 s, confirm 5 s: overdue -> stored at collector, ms", stored);
  return 0;
}

// A stalled import server: the first package stuck "in process" crosses the
// 3 s threshold; time to the loading.halted event.
int StallLatency(int runs) {
  auto pg = PgServer::Start();
  Deployment d("bench-stall");
  int control = FreePort();
  auto sim = std::make_unique<Process>(
      std::vector<std::string>{SETDIAG_STORE_SIM_BIN, "run", "--pg", pg->ServerConnString(),
                               "--store", "1042", "--tills", "5", "--interval", "1s", "--control",
                               "127.0.0.1:" + std::to_string(control), "--probe-port", "0",
                               "--erp-every", "1s", "--process-delay", "200ms"},
      d.dir() + "/sim.log");
  auto sim_ctl = [&](const std::vector<std::string>& args) { return SimCtl(control, args); };
  if (!WaitFor([&] { return sim_ctl({"status"}).exit_code == 0; }, 30s)) {
    std::fprintf(stderr, "simulator did not start: %s\n", sim->Log().c_str());
    return 1;
  }
  d.StartCollector();
  std::string extra =
      "[tills]\nenabled = false\n[loading]\npoll_interval = \"1s\"\nstuck_threshold = \"3s\"\n"
      "clear_window = \"1s\"\ntransport = false\n[set_db]\nenabled = true\nport = " +
      std::to_string(pg->port()) + "\n[server]\ncheck = false\n";
  auto& agent = d.AddAgent("1042", d.CreateStoreToken("1042", "bench"), extra);
  d.StartAgent(agent);
  std::this_thread::sleep_for(3s);
  std::vector<double> decided, stored;
  int64_t after_id = 0;
  auto events = [&](int64_t after) {
    auto r = d.Cli({"--json", "events", "list", "--store", "1042", "--kind", "loading.halted",
                    "--after", std::to_string(after)});
    std::vector<json> out;
    if (r.exit_code == 0) {
      json body = json::parse(r.out);
      for (const auto& e : body["events"]) out.push_back(e);
    }
    return out;
  };
  for (int run = 0; run < runs; ++run) {
    sim_ctl({"server", "stall"});
    std::optional<json> raised;
    WaitFor(
        [&] {
          for (auto& e : events(after_id)) {
            if (e["payload"]["state"] == "raised") raised = e;
          }
          return raised.has_value();
        },
        60s, 50ms);
    if (!raised) {
      std::fprintf(stderr, "run %d: no loading.halted\n%s\n", run, agent.process->Log().c_str());
      return 1;
    }
    int64_t since = (*raised)["payload"]["stuck_packages"][0]["since_ms"];
    int64_t crossing = since + 3000;
    decided.push_back(static_cast<double>((*raised)["detected_at_ms"].get<int64_t>() - crossing));
    stored.push_back(static_cast<double>((*raised)["received_at_ms"].get<int64_t>() - crossing));
    sim_ctl({"server", "resume"});
    int64_t raised_id = (*raised)["id"];
    WaitFor(
        [&] {
          for (auto& e : events(raised_id)) {
            if (e["payload"]["state"] == "cleared") {
              after_id = e["id"];
              return true;
            }
          }
          return false;
        },
        60s, 100ms);
    std::this_thread::sleep_for(1s);
  }
  Report("stall: threshold crossed -> decided (outbox), ms", decided);
  Report("stall: threshold crossed -> stored at collector, ms", stored);
  return 0;
}

// Where the agent's resident memory is: anonymous (heap, stacks, relocated
// data) against file-backed (code and read-only data of the binary and of
// each shared object), from /proc/PID/smaps. A regression in the footprint
// usually shows up here as a new shared object or a bigger binary.
void PrintResidentBreakdown(pid_t pid) {
  std::ifstream smaps("/proc/" + std::to_string(pid) + "/smaps");
  std::map<std::string, long> by_file;
  long anon = 0;
  std::string line, current;
  while (std::getline(smaps, line)) {
    if (!line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) &&
        line.find('-') < line.find(' ')) {
      // "start-end perms offset dev inode   path"
      std::istringstream fields(line);
      std::string range, perms, offset, dev, inode;
      fields >> range >> perms >> offset >> dev >> inode;
      std::getline(fields >> std::ws, current);
      continue;
    }
    long kib = 0;
    if (line.starts_with("Anonymous:")) {
      kib = std::stol(line.substr(10));
      anon += kib;
      if (!current.empty() && current[0] == '/') by_file[current] -= kib;  // counted as anonymous
    } else if (line.starts_with("Rss:") && !current.empty() && current[0] == '/') {
      by_file[current] += std::stol(line.substr(4));
    }
  }
  long files = 0;
  std::vector<std::pair<long, std::string>> sorted;
  for (auto& [path, kib] : by_file) {
    files += kib;
    sorted.emplace_back(kib, path);
  }
  std::sort(sorted.rbegin(), sorted.rend());
  std::printf("  resident at the end: %.1f MiB anonymous, %.1f MiB file-backed in %zu files:\n",
              static_cast<double>(anon) / 1024.0, static_cast<double>(files) / 1024.0,
              sorted.size());
  for (auto& [kib, path] : sorted) {
    if (kib >= 64)
      std::printf("    %7.1f MiB  %s\n", static_cast<double>(kib) / 1024.0, path.c_str());
  }
}

int Footprint(int tills, int seconds) {
  auto pg = PgServer::Start();
  Deployment d("bench-footprint");
  int control = FreePort(), probe = FreePort();
  auto sim = StartSim(*pg, d, tills, control, probe);
  d.StartCollector();
  auto& agent =
      d.AddAgent("1042", d.CreateStoreToken("1042", "bench"), DbAgentConfig(*pg, probe, "30s"));
  std::string cfg = ReadFile(agent.config_path);
  cfg.replace(cfg.find("log_level = \"debug\""), 19, "log_level = \"info\"");
  WriteFile(agent.config_path, cfg);
  d.StartAgent(agent);
  std::this_thread::sleep_for(5s);  // start-up and first polls are not the steady state
  ProcSample a = SampleProcess(agent.process->pid());
  auto t0 = std::chrono::steady_clock::now();
  std::vector<double> rss;
  for (int i = 0; i < seconds; ++i) {
    std::this_thread::sleep_for(1s);
    rss.push_back(static_cast<double>(SampleProcess(agent.process->pid()).rss_kib) / 1024.0);
  }
  ProcSample b = SampleProcess(agent.process->pid());
  double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("footprint: %d tills polled every 1 s for %.0f s\n", tills, wall);
  std::printf("  agent CPU: %.3f s over %.0f s = %.2f%% of one core\n", b.cpu_s - a.cpu_s, wall,
              100.0 * (b.cpu_s - a.cpu_s) / wall);
  Report("  agent RSS, MiB (sampled every second)", rss);
  std::printf("  agent peak RSS (VmHWM): %.1f MiB\n", static_cast<double>(b.hwm_kib) / 1024.0);
  PrintResidentBreakdown(agent.process->pid());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"setdiag till watch benchmarks (see docs/benchmarks.md)"};
  int runs = 10, tills = 200, seconds = 60;
  auto* push =
      app.add_subcommand("push-latency", "push heartbeats, 1 s timeout, no confirm window");
  push->add_option("--runs", runs)->capture_default_str();
  auto* poll = app.add_subcommand("poll-latency", "SET database polled every second");
  poll->add_option("--runs", runs)->capture_default_str();
  auto* stall = app.add_subcommand("stall-latency", "a stalled import server, 3 s stuck threshold");
  stall->add_option("--runs", runs)->capture_default_str();
  auto* foot = app.add_subcommand("footprint", "agent CPU and RSS");
  foot->add_option("--tills", tills)->capture_default_str();
  foot->add_option("--seconds", seconds)->capture_default_str();
  app.require_subcommand(1);
  CLI11_PARSE(app, argc, argv);
  try {
    if (push->parsed()) return PushLatency(runs);
    if (poll->parsed()) return PollLatency(runs);
    if (stall->parsed()) return StallLatency(runs);
    return Footprint(tills, seconds);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "benchmark failed: %s\n", e.what());
    return 1;
  }
}
