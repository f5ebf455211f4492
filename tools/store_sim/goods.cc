#include "tools/store_sim/goods.h"

#include <algorithm>
#include <charconv>

#include "common/clock.h"
#include "common/config.h"
#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"
#include "tools/store_sim/till_set.h"

namespace setdiag::store_sim {

using json = nlohmann::json;

namespace {

int64_t WallMs() { return SystemClock().NowMs(); }
std::string Duration(int64_t ms) { return ms % 1000 == 0 ? Cat(ms / 1000, "s") : Cat(ms, "ms"); }

// How often the loop looks at the knobs and the tills at the latest, and
// how long it waits after a database failure.
constexpr auto kPoll = std::chrono::milliseconds(100);
constexpr auto kRetry = std::chrono::seconds(1);

}  // namespace

GoodsSim::GoodsSim(const SimOptions& options, const TillBoard& tills, boost::asio::io_context& io)
    : opt_(options),
      till_board_(tills),
      board_(options.tills, options.erp_every_ms, options.erp_type),
      db_(options.pg_conninfo, options.store, options.tills, options.time_zone),
      inbox_(options.inbox),
      soap_(io) {}

GoodsSim::~GoodsSim() {
  RequestStop();
  Join();
}

absl::Status GoodsSim::Start() {
  if (inbox_.enabled()) {
    RETURN_IF_ERROR(inbox_.Prepare());
  }
  if (opt_.soap) {
    RETURN_IF_ERROR(soap_.Open(*opt_.soap));
  }
  ErpState erp = board_.erp();
  log::Info("goods", Cat("ERP ", erp.type, " packages ",
                         erp.sending ? Cat("every ", Duration(erp.every_ms))
                                     : std::string("off (POST /erp/start)"),
                         "; server processes after ", Duration(opt_.process_delay_ms),
                         ", tills load after ", Duration(opt_.load_delay_ms), "; inbox ",
                         inbox_.enabled() ? inbox_.dir() : std::string("none"), "; SOAP ",
                         opt_.soap ? Cat("http://", soap_.address().host, ":", soap_.address().port,
                                         kGoodsImportPath, "?wsdl")
                                   : std::string("off")));
  thread_ = std::thread([this] { Loop(); });
  return absl::OkStatus();
}

void GoodsSim::RequestStop() {
  MutexLock lock(&mu_);
  stop_ = true;
  cv_.SignalAll();
}

void GoodsSim::Join() {
  if (thread_.joinable()) thread_.join();
}

void GoodsSim::Wake() {
  MutexLock lock(&mu_);
  wake_ = true;
  cv_.SignalAll();
}

void GoodsSim::Loop() {
  while (true) {
    Steady::time_point next = Step();
    MutexLock lock(&mu_);
    while (!stop_ && !wake_ && cv_.WaitUntil(&mu_, next)) {
    }
    if (stop_) break;
    wake_ = false;
  }
}

GoodsSim::Steady::time_point GoodsSim::Step() {
  bool reconnected = false;
  bool ok = db_.Ensure(&reconnected);
  if (ok && reconnected) ok = Reload();
  db_connected_ = ok;
  if (!ok) return Steady::now() + kRetry;

  auto now = Steady::now();
  ErpState erp = board_.erp();
  if (erp.sending && erp.every_ms > 0) {
    uint64_t gen = board_.erp_generation();
    if (gen != erp_generation_seen_) {  // just started (or a new cadence): send at once
      erp_generation_seen_ = gen;
      next_send_ = now;
    }
    if (now >= next_send_) {
      if (!SendPackage()) return Steady::now() + kRetry;
      next_send_ += std::chrono::milliseconds(erp.every_ms);
      if (next_send_ <= now) next_send_ = now + std::chrono::milliseconds(erp.every_ms);
    }
  }
  if (!ProcessDue(now) || !LoadDue(now)) return Steady::now() + kRetry;

  // Wake for the next due event, and look at the knobs and tills regularly.
  Steady::time_point next = Steady::now() + kPoll;
  if (erp.sending && erp.every_ms > 0) next = std::min(next, next_send_);
  if (board_.server().mode != ServerMode::kStalled && !pending_.empty())
    next = std::min(next, pending_.front().due);
  return next;
}

bool GoodsSim::Reload() {
  auto last = db_.LastPackageNumber();
  if (!last) return false;
  seq_ = std::max(seq_, *last);
  auto pending = db_.PendingPackages();
  if (!pending) return false;
  auto now = Steady::now();
  for (const auto& p : *pending) {
    bool known = std::any_of(pending_.begin(), pending_.end(),
                             [&](const Pending& q) { return q.pkg.ti == p.ti; });
    if (!known) pending_.push_back({p, now + std::chrono::milliseconds(opt_.process_delay_ms)});
  }
  board_.SetInProcess(static_cast<int64_t>(pending_.size()));
  auto rows = db_.Activity();
  if (!rows) return false;
  for (const auto& row : *rows) {
    board_.SetNotLoaded(row.cashnum, row.notloaded);
    board_.SetLastLoad(row.cashnum, row.last_load_ms);
    max_file_id_[row.cashnum] = std::max(max_file_id_[row.cashnum], row.max_file_id);
    if (row.notloaded > 0)
      load_since_.emplace(row.cashnum, now);
    else
      load_since_.erase(row.cashnum);
  }
  return true;
}

bool GoodsSim::SendPackage() {
  ErpState erp = board_.erp();
  for (int attempt = 0; attempt < 100; ++attempt) {
    int64_t n = seq_ + 1;
    std::string ti = db_.Ti(n);
    auto inserted = db_.InsertPackage(ti, erp.type);
    if (!inserted) return false;  // database down: the same number next time
    seq_ = n;
    if (!*inserted) continue;  // taken (another simulator on this database)
    std::string file;
    if (inbox_.enabled()) {
      if (absl::Status st = inbox_.Drop(ti, opt_.store, n); st.ok()) {
        file = Cat(", ", InboxFileName(n), " in the inbox");
        inbox_warned_ = false;
      } else if (!inbox_warned_) {
        inbox_warned_ = true;
        log::Warn("erp", Cat(ti, ": ", st.message()));
      }
    }
    pending_.push_back({{ti, n}, Steady::now() + std::chrono::milliseconds(opt_.process_delay_ms)});
    board_.NoteSent(ti);
    board_.SetInProcess(static_cast<int64_t>(pending_.size()));
    log::Info("erp", Cat("sent ", ti, " (", erp.type, "): status 2 in process", file));
    return true;
  }
  log::Warn("erp", "100 package numbers in a row were taken; trying again later");
  return true;
}

bool GoodsSim::ProcessDue(Steady::time_point now) {
  while (!pending_.empty() && pending_.front().due <= now) {
    ServerState server = board_.server();
    if (server.mode == ServerMode::kStalled) return true;
    const PendingPackage& pkg = pending_.front().pkg;
    int status = server.mode == ServerMode::kFailing ? server.fail_status : kPkgCorrect;
    std::optional<std::string> message;
    if (status != kPkgCorrect) message = server.fail_message;
    std::vector<int> tills;
    if (status == kPkgCorrect) {
      for (const Till& t : till_board_.Snapshot()) {
        if (t.Pings()) tills.push_back(t.number);
      }
    }
    // The rejection message is SET's FeedbackWS answer, not a column: it is
    // logged and shown in the control API's status only.
    auto files = db_.FinishPackage(pkg.ti, status, tills, kCatalogGoods);
    if (!files) return false;
    auto since = Steady::now();
    for (const ProducedFile& f : *files) {
      board_.SetNotLoaded(f.cashnum, f.notloaded);
      max_file_id_[f.cashnum] = std::max(max_file_id_[f.cashnum], f.file_id);
      load_since_.emplace(f.cashnum, since);
    }
    std::string consumed;
    if (inbox_.enabled() && inbox_.Has(pkg.n)) {
      if (absl::Status st = inbox_.Consume(pkg.n); st.ok())
        consumed = Cat("; deleted ", InboxFileName(pkg.n));
      else
        log::Warn("server", std::string(SV(st.message())));
    }
    std::string outcome = Cat(pkg.ti, " -> ", status, " ", PackageStatusName(status));
    if (message) Append(&outcome, ": ", *message);
    if (status == kPkgCorrect) {
      Append(&outcome, tills.empty() ? std::string("; no running tills, no product files")
                                     : Cat("; product files for tills ", FormatTillSet(tills)));
    }
    log::Info("server", Cat(outcome, consumed));
    pending_.pop_front();
    board_.NoteProcessed();
    board_.SetInProcess(static_cast<int64_t>(pending_.size()));
  }
  return true;
}

bool GoodsSim::LoadDue(Steady::time_point now) {
  if (load_since_.empty()) return true;
  std::vector<Till> tills = till_board_.Snapshot();
  std::vector<TillLoad> loads = board_.tills();
  std::vector<int> numbers;
  std::vector<int64_t> ids;
  for (const auto& [n, since] : load_since_) {
    const Till& t = tills.at(static_cast<size_t>(n - 1));
    if (!t.Pings() || loads.at(static_cast<size_t>(n - 1)).transport_stalled) continue;
    if (now < since + std::chrono::milliseconds(opt_.load_delay_ms)) continue;
    numbers.push_back(n);
    ids.push_back(max_file_id_[n]);
  }
  if (numbers.empty()) return true;
  if (!db_.Load(numbers, ids)) return false;
  board_.NoteLoaded(numbers, WallMs());
  for (int n : numbers) load_since_.erase(n);
  log::Debug("transport", Cat("tills ", FormatTillSet(numbers), " loaded their product files"));
  return true;
}

ControlResponse GoodsSim::Reply(const std::string& action) {
  Wake();
  json out = status_();
  out["action"] = action;
  return {200, out.dump()};
}

void GoodsSim::RegisterRoutes(ControlServer& control, std::function<json()> status_fn) {
  status_ = std::move(status_fn);

  control.Route("POST", "/erp/start", [this](const ControlRequest& req) {
    std::optional<int64_t> every;
    if (auto it = req.query.find("every"); it != req.query.end()) {
      every = ConfigReader::ParseDurationMs(it->second);
      if (!every || *every < 100)
        return JsonError(400,
                         Cat("every '", it->second, "': expected a duration of at least 100ms"));
    }
    if (!every && board_.erp().every_ms <= 0) {
      return JsonError(400, "no ERP cadence: give ?every=15s (or start with --erp-every)");
    }
    std::string change = board_.StartErp(every);
    log::Info("erp", change.empty() ? std::string("start: already sending") : change);
    return Reply("erp/start");
  });
  control.Route("POST", "/erp/stop", [this](const ControlRequest&) {
    std::string change = board_.StopErp();
    log::Info("erp", change.empty() ? std::string("stop: already stopped") : change);
    return Reply("erp/stop");
  });
  control.Route("POST", "/server/stall", [this](const ControlRequest&) {
    std::string change = board_.Stall();
    log::Info("server", change.empty() ? std::string("stall: already stalled") : change);
    return Reply("server/stall");
  });
  control.Route("POST", "/server/resume", [this](const ControlRequest&) {
    std::string change = board_.Resume();
    log::Info("server", change.empty() ? std::string("resume: already processing") : change);
    return Reply("server/resume");
  });
  control.Route("POST", "/server/fail", [this](const ControlRequest& req) {
    int status = kPkgInternalError;
    if (auto it = req.query.find("status"); it != req.query.end()) {
      const std::string& v = it->second;
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), status);
      if (ec != std::errc() || p != v.data() + v.size() ||
          (status != kPkgXmlError && status != kPkgInvalidItem && status != kPkgInternalError)) {
        return JsonError(
            400, Cat("status '", v,
                     "': a failure is 1 (XML error), 4 (invalid item) or 5 (internal error)"));
      }
    }
    std::string message = Cat("simulated ", PackageStatusName(status));
    if (auto it = req.query.find("message"); it != req.query.end() && !it->second.empty())
      message = it->second;
    std::string change = board_.Fail(status, message);
    log::Info("server", change.empty() ? std::string("fail: already so") : change);
    return Reply("server/fail");
  });
  control.Route("POST", "/soap/stop", [this](const ControlRequest&) {
    if (!opt_.soap)
      return JsonError(400, "no SOAP port: start the simulator with --soap HOST:PORT");
    if (soap_.up()) {
      soap_.Close();
      log::Info("soap", Cat("-> down: ", soap_.address().ToString(), " closed (was up)"));
    } else {
      log::Info("soap", "stop: already down");
    }
    return Reply("soap/stop");
  });
  control.Route("POST", "/soap/start", [this](const ControlRequest&) {
    if (!opt_.soap)
      return JsonError(400, "no SOAP port: start the simulator with --soap HOST:PORT");
    if (soap_.up()) {
      log::Info("soap", "start: already up");
      return Reply("soap/start");
    }
    if (absl::Status st = soap_.Reopen(); !st.ok()) {
      log::Error("soap", std::string(SV(st.message())));
      return JsonError(500, std::string(SV(st.message())));
    }
    log::Info("soap", Cat("-> up on ", soap_.address().ToString(), " (was down)"));
    return Reply("soap/start");
  });
  for (bool stall : {true, false}) {
    control.Route("POST", stall ? "/transport/stall" : "/transport/resume",
                  [this, stall](const ControlRequest& req) {
                    auto it = req.query.find("tills");
                    if (it == req.query.end())
                      return JsonError(400, "missing ?tills= (e.g. 1-11, 1,3,5 or all)");
                    auto numbers = ParseTillSet(it->second, opt_.tills);
                    if (!numbers.ok())
                      return JsonError(400, std::string(SV(numbers.status().message())));
                    std::vector<int> changed = board_.SetTransportStalled(*numbers, stall);
                    std::string line =
                        Cat(stall ? "stall " : "resume ", FormatTillSet(*numbers), ": ");
                    if (changed.empty())
                      Append(&line, "nothing to change");
                    else
                      Append(&line, "tills ", FormatTillSet(changed),
                             stall ? " -> stalled (stop loading products, still ping)"
                                   : " -> loading (was stalled)");
                    log::Info("transport", line);
                    Wake();
                    json out = status_();
                    out["action"] = stall ? "transport/stall" : "transport/resume";
                    out["selected"] = *numbers;
                    out["changed"] = changed;
                    return ControlResponse{200, out.dump()};
                  });
  }
}

void GoodsSim::AddStatus(json& status) {
  ErpState erp = board_.erp();
  ServerState server = board_.server();
  std::vector<TillLoad> loads = board_.tills();

  json e = {{"state", erp.sending ? "sending" : "stopped"},
            {"every_ms", nullptr},
            {"type", erp.type},
            {"last_ti", nullptr},
            {"sent", erp.sent}};
  if (erp.every_ms > 0) e["every_ms"] = erp.every_ms;
  if (!erp.last_ti.empty()) e["last_ti"] = erp.last_ti;
  status["erp"] = std::move(e);

  json s = {{"state", std::string(ServerModeName(server.mode))},
            {"process_delay_ms", opt_.process_delay_ms},
            {"in_process", server.in_process},
            {"processed", server.processed},
            {"db", db_connected_ ? "connected" : "down"}};
  if (server.mode == ServerMode::kFailing) {
    s["fail_status"] = server.fail_status;
    s["fail_message"] = server.fail_message;
  }
  status["server"] = std::move(s);

  json soap = {{"state", !opt_.soap   ? "disabled"
                         : soap_.up() ? "up"
                                      : "down"},
               {"address", nullptr}};
  if (opt_.soap) soap["address"] = soap_.address().ToString();
  status["soap"] = std::move(soap);

  if (inbox_.enabled()) {
    InboxScan scan = inbox_.Scan();
    json in = {{"dir", inbox_.dir()}, {"count", scan.count}, {"oldest_age_ms", nullptr}};
    if (scan.oldest_age_ms) in["oldest_age_ms"] = *scan.oldest_age_ms;
    status["inbox"] = std::move(in);
  } else {
    status["inbox"] = nullptr;
  }

  std::vector<int> stalled;
  for (size_t i = 0; i < loads.size(); ++i) {
    if (loads[i].transport_stalled) stalled.push_back(static_cast<int>(i + 1));
  }
  status["transport"] = {{"load_delay_ms", opt_.load_delay_ms}, {"stalled", stalled}};

  if (status.contains("tills")) {
    for (auto& t : status["tills"]) {
      int n = t["number"].get<int>();
      if (n < 1 || static_cast<size_t>(n) > loads.size()) continue;
      const TillLoad& l = loads[static_cast<size_t>(n - 1)];
      t["transport"] = l.transport_stalled ? "stalled" : "loading";
      t["notloaded"] = l.notloaded;
      t["lastproductsloaddate_ms"] = l.last_load_ms ? json(*l.last_load_ms) : json(nullptr);
    }
  }
}

}  // namespace setdiag::store_sim
