// setdiag-store-sim: a SET Retail 10-like store on this machine for tests, the
// demo and benchmarks: a real PostgreSQL with SET's till tables, tills that
// ping, answer network probes and push heartbeats, and a control API to stop,
// mothball or unplug them; an ERP, the server's goods import and the tills'
// product loading, with knobs to stall or break each. See docs/simulator.md.

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <iostream>
#include <tuple>

#include "absl/time/time.h"
#include "common/config.h"
#include "common/log.h"
#include "common/strings.h"
#include "common/version.h"
#include "tools/store_sim/control_client.h"
#include "tools/store_sim/options.h"
#include "tools/store_sim/simulator.h"
#include "tools/store_sim/till_set.h"

namespace {

using namespace setdiag;
using namespace setdiag::store_sim;

int BadArgs(const std::string& message) {
  std::cerr << "setdiag-store-sim: " << message << "\n";
  return 2;
}

struct RunArgs {
  std::string pg = "host=127.0.0.1 port=5432 user=postgres";
  int store = 0;
  int tills = 20;
  std::string interval = "1s";
  std::string control;
  std::string push_udp;
  std::string push_http;
  std::string till_ip_base = "127.0.1.";
  int probe_port = 2222;
  std::string mothballed;
  std::string log_level = "info";
  std::string erp_every;
  std::string erp_type = "GOODS";
  std::string process_delay = "1s";
  std::string load_delay = "1s";
  std::string inbox;
  std::string soap;
  std::string time_zone;
};

// Validates everything before anything is opened: bad input exits 2.
absl::StatusOr<SimOptions> Validate(const RunArgs& a) {
  SimOptions o;
  o.pg_conninfo = a.pg;
  if (!a.time_zone.empty()) {
    absl::TimeZone tz;
    bool plain = std::all_of(a.time_zone.begin(), a.time_zone.end(), [](char ch) {
      return std::isalnum(static_cast<unsigned char>(ch)) || ch == '/' || ch == '_' || ch == '-' ||
             ch == '+';
    });
    if (!plain || !absl::LoadTimeZone(a.time_zone, &tz)) {
      return absl::InvalidArgumentError(
          Cat("--time-zone '", a.time_zone, "': expected an IANA name such as Europe/Moscow"));
    }
    o.time_zone = a.time_zone;
  }
  if (a.store <= 0) return absl::InvalidArgumentError("--store must be a positive SET shop number");
  o.store = a.store;
  if (a.tills < 1 || a.tills > kMaxTills) {
    return absl::InvalidArgumentError(
        Cat("--tills must be 1-", kMaxTills, " (the last IP octet is 10 + till)"));
  }
  o.tills = a.tills;
  auto interval = ConfigReader::ParseDurationMs(a.interval);
  if (!interval || *interval < 50) {
    return absl::InvalidArgumentError(
        Cat("--interval '", a.interval, "': expected a duration of at least 50ms, e.g. 1s"));
  }
  o.interval_ms = *interval;
  auto control = ParseHostPort(a.control, {.allow_port_zero = true});
  if (!control.ok())
    return absl::InvalidArgumentError(Cat("--control: ", control.status().message()));
  o.control = *control;
  if (!a.push_udp.empty()) {
    auto udp = ParseHostPort(a.push_udp);
    if (!udp.ok()) return absl::InvalidArgumentError(Cat("--push-udp: ", udp.status().message()));
    o.push_udp = *udp;
  }
  if (!a.push_http.empty()) {
    auto url = ParseHttpUrl(a.push_http);
    if (!url.ok()) return absl::InvalidArgumentError(Cat("--push-http: ", url.status().message()));
    o.push_http = *url;
  }
  if (absl::Status st = ValidateIpBase(a.till_ip_base); !st.ok()) {
    return absl::InvalidArgumentError(Cat("--till-ip-base: ", st.message()));
  }
  o.till_ip_base = a.till_ip_base;
  if (a.probe_port < 0 || a.probe_port > 65535)
    return absl::InvalidArgumentError("--probe-port must be 0-65535");
  o.probe_port = static_cast<uint16_t>(a.probe_port);
  if (!a.mothballed.empty()) {
    auto m = ParseTillSet(a.mothballed, a.tills);
    if (!m.ok()) return absl::InvalidArgumentError(Cat("--mothballed: ", m.status().message()));
    o.mothballed = *m;
  }
  if (!a.erp_every.empty()) {
    auto every = ConfigReader::ParseDurationMs(a.erp_every);
    if (!every || *every < 100) {
      return absl::InvalidArgumentError(
          Cat("--erp-every '", a.erp_every, "': expected a duration of at least 100ms, e.g. 15s"));
    }
    o.erp_every_ms = *every;
  }
  if (a.erp_type.empty() || a.erp_type.size() > 64)
    return absl::InvalidArgumentError("--erp-type must be 1-64 characters");
  o.erp_type = a.erp_type;
  for (auto [flag, text, out] :
       {std::tuple{"--process-delay", &a.process_delay, &o.process_delay_ms},
        std::tuple{"--load-delay", &a.load_delay, &o.load_delay_ms}}) {
    auto d = ConfigReader::ParseDurationMs(*text);
    if (!d)
      return absl::InvalidArgumentError(
          Cat(flag, " '", *text, "': expected a duration, e.g. 1s, 500ms or 0s"));
    *out = *d;
  }
  o.inbox = a.inbox;
  if (!a.soap.empty()) {
    auto soap = ParseHostPort(a.soap, {.allow_port_zero = true});
    if (!soap.ok()) return absl::InvalidArgumentError(Cat("--soap: ", soap.status().message()));
    o.soap = *soap;
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "setdiag-store-sim: a SET Retail 10-like store on this machine, for tests, the demo and "
      "benchmarks.\n"
      "'run' plays a store against a real PostgreSQL (tills, goods import and loading); 'ctl' "
      "changes it while it runs.\n"
      "See docs/simulator.md."};
  app.set_version_flag("--version", std::string("setdiag-store-sim ") + kVersion);
  app.require_subcommand(1);

  RunArgs r;
  auto* run =
      app.add_subcommand("run", "Play a store: registry, till pings, probe listeners, control API");
  run->add_option("--pg", r.pg, "libpq connection string of the PostgreSQL server, without dbname")
      ->capture_default_str();
  run->add_option("--store", r.store, "SET shop number, e.g. 1042")->required();
  run->add_option("--tills", r.tills, "number of tills (1-244)")->capture_default_str();
  run->add_option("--interval", r.interval, "ping interval, e.g. 1s or 500ms")
      ->capture_default_str();
  run->add_option("--control", r.control, "HOST:PORT of the control API, e.g. 127.0.0.1:18090")
      ->required();
  run->add_option("--push-udp", r.push_udp,
                  "HOST:PORT: send each till's heartbeat as a UDP datagram");
  run->add_option("--push-http", r.push_http,
                  "URL: POST each till's heartbeat, e.g. http://127.0.0.1:8099/v1/heartbeat");
  run->add_option("--till-ip-base", r.till_ip_base,
                  "first three octets of cash_ip; till n is at BASE(10+n)")
      ->capture_default_str();
  run->add_option("--probe-port", r.probe_port,
                  "TCP port each plugged-in till answers on (0: none)")
      ->capture_default_str();
  run->add_option("--mothballed", r.mothballed, "tills that start CLOSED_DOWN, e.g. 19,20");
  run->add_option("--log-level", r.log_level, "debug, info, warn or error")->capture_default_str();
  run->add_option("--erp-every", r.erp_every,
                  "ERP import package cadence, e.g. 15s (default: the ERP starts stopped)");
  run->add_option("--erp-type", r.erp_type, "importtype of the packages")->capture_default_str();
  run->add_option("--process-delay", r.process_delay, "package arrival -> processed by the server")
      ->capture_default_str();
  run->add_option("--load-delay", r.load_delay, "product file produced -> loaded by a running till")
      ->capture_default_str();
  run->add_option("--inbox", r.inbox,
                  "file exchange folder: the ERP drops catalog-goods_<n>.xml there");
  run->add_option("--time-zone", r.time_zone,
                  "zone SET's server writes local timestamps in, e.g. Europe/Moscow (default: "
                  "PostgreSQL's TimeZone)");
  run->add_option("--soap", r.soap,
                  "HOST:PORT where the import web services' WSDL answers, e.g. 127.0.0.1:18095");

  std::string ctl_control;
  std::vector<std::string> ctl_words;
  auto* ctl =
      app.add_subcommand("ctl", "Change a running simulator's tills and goods side, or show them");
  ctl->add_option("--control", ctl_control, "HOST:PORT of the simulator's control API")->required();
  ctl->add_option("command", ctl_words,
                  "status | start|stop|mothball|unplug TILLS | erp start [EVERY] | erp stop | "
                  "server stall|resume | server fail [STATUS [MESSAGE]] | soap stop|start | "
                  "transport stall|resume TILLS")
      ->required();
  std::string ctl_status, ctl_message;
  auto* ctl_status_opt =
      ctl->add_option("--status", ctl_status, "with 'server fail': the failure status, 1, 4 or 5");
  auto* ctl_message_opt =
      ctl->add_option("--message", ctl_message, "with 'server fail': the failure message");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }

  if (ctl->parsed()) {
    auto control = ParseHostPort(ctl_control);
    if (!control.ok()) return BadArgs(Cat("--control: ", control.status().message()));
    // `server fail --status S --message M` is `server fail S M`.
    if (ctl_status_opt->count() > 0 || ctl_message_opt->count() > 0) {
      if (ctl_words != std::vector<std::string>{"server", "fail"}) {
        return BadArgs(
            "ctl: --status and --message go with 'server fail' (or give them as its arguments)");
      }
      ctl_words.push_back(ctl_status_opt->count() > 0 ? ctl_status : "5");
      if (ctl_message_opt->count() > 0) ctl_words.push_back(ctl_message);
    }
    return RunCtl(*control, ctl_words);
  }

  log::Level level;
  if (!log::ParseLevel(r.log_level, &level))
    return BadArgs(Cat("--log-level '", r.log_level, "' is not debug, info, warn or error"));
  log::SetLevel(level);
  auto options = Validate(r);
  if (!options.ok()) return BadArgs(std::string(SV(options.status().message())));

  Simulator sim(*options);
  if (absl::Status st = sim.Start(); !st.ok()) {
    log::Error("sim", std::string(SV(st.message())));
    return 1;
  }
  sim.Run();
  return 0;
}
