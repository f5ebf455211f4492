#include "tools/store_sim/simulator.h"

#include <boost/asio.hpp>
#include <csignal>
#include <map>

#include "common/clock.h"
#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"
#include "tools/store_sim/till_set.h"

namespace setdiag::store_sim {

namespace asio = boost::asio;
using json = nlohmann::json;

namespace {
int64_t WallMs() { return SystemClock().NowMs(); }

std::string FormatInterval(int64_t ms) {
  return ms % 1000 == 0 ? Cat(ms / 1000, "s") : Cat(ms, "ms");
}
}  // namespace

Simulator::Simulator(SimOptions options)
    : opt_(std::move(options)),
      board_(opt_.tills, opt_.mothballed, [this](int n) { return opt_.TillIp(n); }),
      probes_(io_, opt_.probe_port),
      control_(io_),
      signals_(io_),
      db_(opt_.pg_conninfo, opt_.store, opt_.time_zone),
      pusher_(opt_.StoreId(), opt_.push_udp, opt_.push_http),
      goods_(opt_, board_, io_) {}

Simulator::~Simulator() { Shutdown(); }

absl::Status Simulator::Start() {
  for (const Till& t : board_.Snapshot()) {
    if (!t.plugged) continue;
    RETURN_IF_ERROR(probes_.Open(t.number, t.cash_ip));
  }
  RegisterRoutes();
  RETURN_IF_ERROR(control_.Listen(opt_.control));
  RETURN_IF_ERROR(goods_.Start());
  signals_.add(SIGTERM);
  signals_.add(SIGINT);
  signals_.async_wait([this](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    log::Info("sim", Cat("signal ", sig, ": stopping"));
    RequestStop();
  });
  io_thread_ = std::thread([this] { io_.run(); });

  std::string pushes;
  if (opt_.push_udp) Append(&pushes, " udp://", opt_.push_udp->ToString());
  if (opt_.push_http) Append(&pushes, " ", opt_.push_http->ToString());
  log::Info("sim", Cat("store ", opt_.store, ": ", opt_.tills, " tills at ", opt_.TillIp(1), "..",
                       opt_.TillIp(opt_.tills),
                       opt_.probe_port ? Cat(" (probe port ", opt_.probe_port, ")")
                                       : std::string(" (no probe listeners)"),
                       ", mothballed ", FormatTillSet(opt_.mothballed), ", interval ",
                       FormatInterval(opt_.interval_ms)));
  log::Info("sim", Cat("control API on http://", opt_.control.host, ":", control_.port(),
                       "; heartbeat pushes:", pushes.empty() ? std::string(" none") : pushes));
  return absl::OkStatus();
}

void Simulator::RegisterRoutes() {
  control_.Route("GET", "/status", [this](const ControlRequest&) {
    return ControlResponse{200, StatusJson().dump()};
  });
  for (TillAction a :
       {TillAction::kStart, TillAction::kStop, TillAction::kMothball, TillAction::kUnplug}) {
    control_.Route("POST", Cat("/tills/", TillActionName(a)),
                   [this, a](const ControlRequest& req) { return HandleAction(a, req); });
  }
  goods_.RegisterRoutes(control_, [this] { return StatusJson(); });
}

ControlResponse Simulator::HandleAction(TillAction action, const ControlRequest& req) {
  auto it = req.query.find("tills");
  if (it == req.query.end()) return JsonError(400, "missing ?tills= (e.g. 1-11, 1,3,5 or all)");
  auto numbers = ParseTillSet(it->second, board_.count());
  if (!numbers.ok()) return JsonError(400, std::string(SV(numbers.status().message())));

  std::map<int, TillState> before;
  for (const Till& t : board_.Snapshot()) before[t.number] = t.state();
  ApplyResult result = board_.Apply(action, *numbers);

  json warnings = json::array();
  for (int n : *numbers) {
    if (action == TillAction::kUnplug) {
      probes_.Close(n);
    } else if (action == TillAction::kStart) {
      if (absl::Status st = probes_.Open(n, opt_.TillIp(n)); !st.ok()) {
        log::Error("tills", std::string(SV(st.message())));
        warnings.push_back(std::string(SV(st.message())));
      }
    }
  }
  // One log line per action: the new state, and where each till came from.
  TillState after = TillState::kRunning;
  std::map<TillState, std::vector<int>> from;
  auto snapshot = board_.Snapshot();
  for (int n : result.changed) {
    from[before[n]].push_back(n);
    after = snapshot[static_cast<size_t>(n - 1)].state();
  }
  std::string line = Cat(TillActionName(action), " ", FormatTillSet(*numbers), ":");
  if (result.changed.empty())
    Append(&line, " nothing to change");
  else
    Append(&line, " -> ", TillStateName(after), " (was");
  for (const auto& [state, tills] : from)
    Append(&line, " ", TillStateName(state), " ", FormatTillSet(tills));
  if (!result.changed.empty()) Append(&line, ")");
  if (!result.unchanged.empty()) Append(&line, "; already so: ", FormatTillSet(result.unchanged));
  log::Info("tills", line);

  Wake();
  json out = StatusJson();
  out["action"] = std::string(TillActionName(action));
  out["selected"] = *numbers;
  out["changed"] = result.changed;
  if (!warnings.empty()) out["warnings"] = warnings;
  return {200, out.dump()};
}

json Simulator::StatusJson() {
  json tills = json::array();
  for (const Till& t : board_.Snapshot()) {
    json j = {{"number", t.number},
              {"state", std::string(TillStateName(t.state()))},
              {"status", t.status},
              {"cash_ip", t.cash_ip},
              {"probe", probes_.enabled() ? (probes_.IsOpen(t.number) ? "listening" : "closed")
                                          : "disabled"},
              {"last_activity_ms", nullptr}};
    if (t.last_activity_ms) j["last_activity_ms"] = *t.last_activity_ms;
    tills.push_back(std::move(j));
  }
  json out = {{"store", opt_.StoreId()},
              {"db", db_connected_ ? "connected" : "down"},
              {"interval_ms", opt_.interval_ms},
              {"probe_port", opt_.probe_port},
              {"tills", std::move(tills)}};
  goods_.AddStatus(out);
  return out;
}

void Simulator::Wake() {
  MutexLock lock(&mu_);
  wake_ = true;
  cv_.SignalAll();
}

void Simulator::RequestStop() {
  goods_.RequestStop();
  MutexLock lock(&mu_);
  stop_ = true;
  cv_.SignalAll();
}

void Simulator::Run() {
  using Steady = std::chrono::steady_clock;
  const auto interval = std::chrono::milliseconds(opt_.interval_ms);
  auto next = Steady::now();
  while (true) {
    {
      MutexLock lock(&mu_);
      while (!stop_ && !wake_ && cv_.WaitUntil(&mu_, next)) {
      }
      if (stop_) break;
      wake_ = false;
    }
    std::vector<Till> tills = board_.Snapshot();
    uint64_t roster_version = board_.roster_version();
    auto now = Steady::now();
    if (now < next) {
      // Woken by a state change: the registry now, last activity on the tick.
      db_connected_ = db_.SyncRoster(tills, roster_version);
      continue;
    }
    std::vector<int> pinging;
    for (const Till& t : tills) {
      if (t.Pings()) pinging.push_back(t.number);
    }
    int64_t wall = WallMs();
    // Pushes first: a slow database must not delay heartbeats.
    if (pusher_.enabled()) pusher_.Push(pinging, wall);
    db_connected_ = db_.Tick(tills, roster_version, pinging);
    if (db_connected_) board_.MarkActivity(pinging, wall);
    next += interval;
    if (next <= Steady::now()) next = Steady::now() + interval;
  }
  log::Info("sim", "stopped");
}

void Simulator::Shutdown() {
  goods_.RequestStop();
  goods_.Join();
  if (!io_thread_.joinable()) return;
  asio::post(io_, [this] {
    boost::system::error_code ignored;
    signals_.cancel(ignored);
    control_.Close();
    goods_.CloseSoap();
    probes_.CloseAll();
    io_.stop();  // open control connections are dropped with the context
  });
  io_thread_.join();
}

}  // namespace setdiag::store_sim
