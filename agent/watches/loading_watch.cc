#include "agent/watches/loading_watch.h"

#include <fnmatch.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <charconv>
#include <cstring>
#include <filesystem>

#include "absl/time/time.h"
#include "agent/sources/resolve.h"
#include "agent/watches/findings.h"
#include "common/host_port.h"
#include "common/http_client.h"
#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"

namespace setdiag::agent {

namespace fs = std::filesystem;

namespace {

// The rows of the packages query (ti, arrived_ms, status, status name,
// import type, message); rows without a time are skipped.
std::vector<PackageObservation> PackagesOf(const std::vector<std::vector<std::string>>& rows) {
  std::vector<PackageObservation> packages;
  for (const auto& r : rows) {
    int64_t arrived_ms = 0;
    if (std::from_chars(r[1].data(), r[1].data() + r[1].size(), arrived_ms).ec != std::errc())
      continue;
    PackageObservation& p = packages.emplace_back();
    p.ti = r[0];
    p.arrived_ms = arrived_ms;
    std::from_chars(r[2].data(), r[2].data() + r[2].size(), p.status);
    p.status_name = r[3];
    p.import_type = r[4];
    p.message = r[5];
  }
  return packages;
}

// The rows of the transport query (till, last load, products not loaded,
// oldest pending) for the tills in the roster; mothballed ones are not
// expected.
std::vector<TransportObservation> TransportOf(const std::vector<RosterRow>& roster,
                                              const std::vector<std::vector<std::string>>& rows) {
  std::map<int, bool> expected;
  for (const auto& r : roster) {
    RosterStatus rs = ParseRosterStatus(r.status);
    if (rs != RosterStatus::kDeleted) expected[r.number] = rs == RosterStatus::kActive;
  }
  std::vector<TransportObservation> transport;
  for (const auto& r : rows) {
    TransportObservation t;
    if (std::from_chars(r[0].data(), r[0].data() + r[0].size(), t.till).ec != std::errc()) continue;
    auto e = expected.find(t.till);
    if (e == expected.end()) continue;  // not in the roster
    t.expected = e->second;
    int64_t ms = 0;
    if (!r[1].empty() &&
        std::from_chars(r[1].data(), r[1].data() + r[1].size(), ms).ec == std::errc()) {
      t.last_load_ms = ms;
    }
    std::from_chars(r[2].data(), r[2].data() + r[2].size(), t.not_loaded);
    if (!r[3].empty() &&
        std::from_chars(r[3].data(), r[3].data() + r[3].size(), ms).ec == std::errc()) {
      t.oldest_pending_ms = ms;
    }
    transport.push_back(t);
  }
  return transport;
}

}  // namespace

bool ParseDailyWindow(std::string_view text, int* start_min, int* end_min) {
  auto parse = [](std::string_view hhmm, int* out) {
    if (hhmm.size() != 5 || hhmm[2] != ':') return false;
    int h = 0, m = 0;
    if (std::from_chars(hhmm.data(), hhmm.data() + 2, h).ec != std::errc() ||
        std::from_chars(hhmm.data() + 3, hhmm.data() + 5, m).ec != std::errc() || h > 24 ||
        m > 59 || (h == 24 && m != 0)) {
      return false;
    }
    *out = h * 60 + m;
    return true;
  };
  auto dash = text.find('-');
  if (dash == std::string_view::npos) return false;
  return parse(Trim(text.substr(0, dash)), start_min) &&
         parse(Trim(text.substr(dash + 1)), end_min) && *start_min < *end_min;
}

absl::Status CheckWsdl(const std::string& url, int timeout_ms) {
  std::string_view u = url;
  if (!u.starts_with("http://"))
    return absl::InvalidArgumentError(Cat(url, ": only http:// is supported"));
  u.remove_prefix(7);
  auto slash = u.find('/');
  std::string_view hostport = u.substr(0, slash);
  std::string target = slash == std::string_view::npos ? "/" : std::string(u.substr(slash));
  auto colon = hostport.rfind(':');
  std::string host(hostport.substr(0, colon));
  std::string port =
      colon == std::string_view::npos ? "80" : std::string(hostport.substr(colon + 1));
  uint16_t port_number = 0;
  if (!ParsePort(port, /*allow_zero=*/false, &port_number))
    return absl::InvalidArgumentError(Cat(url, ": bad port '", port, "'"));
  // c-ares, not getaddrinfo (which loads NSS modules in the static agent):
  // agent/sources/resolve.h.
  HttpClientOptions options{
      .timeout = std::chrono::milliseconds(timeout_ms),
      .user_agent = "setdiag-agent",
      .body_limit = 4 * 1024 * 1024,
      .resolve = [port_number](const std::string& name, std::chrono::milliseconds timeout)
          -> absl::StatusOr<std::vector<std::string>> {
        ASSIGN_OR_RETURN(auto resolved, ResolveTcp(name, port_number, timeout));
        std::vector<std::string> out;
        for (const ResolvedAddress& a : resolved) out.push_back(a.text);
        return out;
      }};
  HttpClient http(host, port_number, std::move(options));
  auto reply = http.Request("GET", target);
  if (!reply.ok()) {
    // "cannot reach http://host:port/path: why" -> "url: why"
    const std::string message(reply.status().message());
    std::string_view why = message;
    if (auto sep = why.find(": "); why.starts_with("cannot reach ") && sep != why.npos)
      why.remove_prefix(sep + 2);
    return absl::UnavailableError(Cat(url, ": ", why));
  }
  if (reply->status != 200)
    return absl::UnavailableError(Cat(url, " answered HTTP ", reply->status));
  if (reply->body.find("definitions") == std::string::npos) {
    return absl::UnavailableError(Cat(url, " answered 200 but not with a WSDL"));
  }
  return absl::OkStatus();
}

InboxObservation LoadingWatch::ListInbox(const std::string& path, const std::string& pattern) {
  InboxObservation in;
  in.path = path;
  std::error_code ec;
  fs::directory_iterator it(path, ec);
  if (ec) {
    in.readable = false;
    in.error = ec.message();
    return in;
  }
  for (; it != fs::directory_iterator(); it.increment(ec)) {
    if (ec) {  // the share dropped or permissions changed mid-listing
      in.readable = false;
      in.error = ec.message();
      return in;
    }
    const auto& entry = *it;
    std::error_code e2;
    if (!entry.is_regular_file(e2)) continue;
    std::string name = entry.path().filename().string();
    if (fnmatch(pattern.c_str(), name.c_str(), 0) != 0) continue;
    struct stat st {};
    if (::stat(entry.path().c_str(), &st) != 0) continue;  // consumed meanwhile
    int64_t ms = int64_t{st.st_mtim.tv_sec} * 1000 + st.st_mtim.tv_nsec / 1'000'000;
    ++in.files;
    if (!in.oldest_mtime_ms || ms < *in.oldest_mtime_ms) {
      in.oldest_mtime_ms = ms;
      in.oldest_name = name;
    }
  }
  return in;
}

std::pair<bool, int64_t> LoadingWatch::ErpWindow(int64_t now_ms, const std::string& tz_name,
                                                 int start_min, int end_min) {
  absl::TimeZone tz;
  if (!absl::LoadTimeZone(tz_name, &tz)) tz = absl::UTCTimeZone();
  absl::Time now = absl::FromUnixMillis(now_ms);
  absl::CivilSecond cs = absl::ToCivilSecond(now, tz);
  int minute = cs.hour() * 60 + cs.minute();
  absl::CivilDay day(cs);
  absl::CivilSecond opened = absl::CivilSecond(day) + start_min * 60;
  int64_t opened_ms = absl::ToUnixMillis(absl::FromCivil(opened, tz));
  return {minute >= start_min && minute < end_min, opened_ms};
}

LoadingWatch::LoadingWatch(LoadingWatchOptions options, std::string agent_id, Outbox& outbox,
                           std::function<void()> on_committed,
                           std::function<LoadingContext(int64_t)> context, Clock& clock)
    : options_(std::move(options)),
      outbox_(outbox),
      on_committed_(std::move(on_committed)),
      context_(std::move(context)),
      clock_(clock),
      detector_(options_.policy, agent_id),
      sources_(agent_id, options_.set_db ? options_.set_db->failure_confirm_ms : 30'000) {
  if (options_.set_db) db_ = std::make_unique<SetDatabase>(*options_.set_db);
}

LoadingWatch::~LoadingWatch() { Stop(); }

void LoadingWatch::Start() {
  if (options_.state) {
    state_.emplace(options_.state, "loading", "loading");
    if (auto previous = state_->Load()) {
      if (auto st = detector_.RestoreState(*previous); !st.ok()) {
        log::Warn("loading",
                  Cat("the conditions raised before the restart are not restored: ", st.message()));
      } else {
        for (const auto& h : HeldEpisodesOf(*previous)) {
          log::Info("loading", Cat("restored ", h.kind, " (episode ", h.episode,
                                   ") raised before the restart: cleared once it no longer holds"));
        }
      }
    }
    state_->Update(detector_.ExportState(), clock_.NowMs(), clock_.MonotonicMs());
  }
  if (options_.state) {
    checks_state_.emplace(options_.state, "loading.checks", "loading");
    if (auto previous = checks_state_->Load())
      RestoreChecksState(*previous, &sources_, nullptr, nullptr);
    checks_state_->Update(ExportChecksState(&sources_, nullptr, nullptr), clock_.NowMs(),
                          clock_.MonotonicMs());
  }
  thread_ = std::thread([this] { Loop(); });
}

void LoadingWatch::Stop() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  cv_.SignalAll();
  if (thread_.joinable()) thread_.join();
}

LoadingSnapshot LoadingWatch::Gather(int64_t now_ms) {
  LoadingSnapshot s;
  s.now_ms = now_ms;
  if (db_) GatherDatabase(now_ms, s);
  GatherInboxes(now_ms, s);
  if (context_) {
    LoadingContext c = context_(now_ms);
    s.maintenance = c.maintenance;
    s.tills_expected = c.tills_expected;
  }
  GatherImportService(s);
  s.server = CheckServer(options_.server, 1000);
  GatherDisks(s);
  auto [open, opened_ms] = ErpWindow(now_ms, options_.time_zone, options_.erp_window_start_min,
                                     options_.erp_window_end_min);
  s.erp_window_open = open;
  s.erp_window_opened_ms = opened_ms;
  return s;
}

void LoadingWatch::NoteChecks(const std::vector<Finding>& f) {
  check_findings_.insert(check_findings_.end(), f.begin(), f.end());
}

LoadingWatch::DatabaseReads LoadingWatch::ReadDatabase(int64_t now_ms) {
  DatabaseReads r;
  r.packages = db_->ReadPackages();
  NoteChecks(
      sources_.Observe(QuerySource("loading", SetSource::kPackages), r.packages.status(), now_ms));
  // Transport has queries of its own: one that does not fit this SET
  // version leaves transport unwatched, not the packages.
  if (r.packages.ok() && options_.watch_transport) {
    r.roster = db_->ReadRoster();
    NoteChecks(
        sources_.Observe(QuerySource("loading", SetSource::kRoster), r.roster.status(), now_ms));
    if (r.roster.ok()) {
      r.transport = db_->ReadTransport();
      NoteChecks(sources_.Observe(QuerySource("loading", SetSource::kTransport),
                                  r.transport.status(), now_ms));
    } else {
      r.transport = r.roster.status();
    }
  }
  return r;
}

void LoadingWatch::GatherDatabase(int64_t now_ms, LoadingSnapshot& s) {
  DatabaseReads r = ReadDatabase(now_ms);
  absl::Status st = r.packages.status();
  if (st.ok() && options_.watch_transport && absl::IsUnavailable(r.transport.status()))
    st = r.transport.status();
  std::string transport_error;
  if (st.ok() && options_.watch_transport) {
    transport_error = TransportError(r);
    s.transport_unknown = !transport_error.empty();
  }
  if (!st.ok()) {
    s.db_ok = false;
    s.db_error = std::string(st.message());
    if (s.db_error != last_db_error_)
      log::Warn("loading", Cat("cannot read SET's database: ", s.db_error));
    last_db_error_ = s.db_error;
    return;
  }
  last_db_error_.clear();
  s.packages = PackagesOf(*r.packages);
  if (options_.watch_transport && transport_error.empty())
    s.transport = TransportOf(*r.roster, *r.transport);
}

std::string LoadingWatch::TransportError(const DatabaseReads& r) {
  std::string transport_error;
  if (!r.transport.ok()) {
    transport_error = std::string(r.transport.status().message());
  } else if (auto shops = CheckShops(ShopsIn(*r.roster), options_.set_db->shop_number.has_value());
             !shops.ok()) {
    transport_error = std::string(shops.message());
  }
  if (!transport_error.empty() && transport_error != transport_error_) {
    log::Warn("loading", Cat("transport to the tills is not watched: ", transport_error));
  }
  transport_error_ = transport_error;
  return transport_error;
}

void LoadingWatch::GatherInboxes(int64_t now_ms, LoadingSnapshot& s) {
  for (const auto& path : options_.inboxes) {
    s.inboxes.push_back(ListInbox(path, options_.inbox_pattern));
    const auto& in = s.inboxes.back();
    NoteChecks(sources_.Observe(
        InboxSource(path), in.readable ? absl::OkStatus() : absl::FailedPreconditionError(in.error),
        now_ms));
    if (!in.readable && unreadable_inboxes_.insert(path).second) {
      log::Warn("loading",
                Cat("cannot list inbox ", path, ": ", in.error, "; its files are not watched"));
    } else if (in.readable) {
      unreadable_inboxes_.erase(path);
    }
  }
}

void LoadingWatch::GatherImportService(LoadingSnapshot& s) {
  if (options_.service_urls.empty()) return;
  if (clock_.MonotonicMs() >= next_service_check_ms_) {
    service_ok_ = true;
    service_error_.clear();
    for (const auto& url : options_.service_urls) {
      if (auto st = CheckWsdl(url, options_.service_timeout_ms); !st.ok()) {
        service_ok_ = false;
        service_error_ = std::string(st.message());
        break;
      }
    }
    next_service_check_ms_ = clock_.MonotonicMs() + options_.service_every_ms;
  }
  s.import_service_ok = service_ok_;
  s.import_service_error = service_error_;
}

void LoadingWatch::GatherDisks(LoadingSnapshot& s) {
  for (const auto& d : options_.disks) {
    struct statvfs v {};
    if (statvfs(d.c_str(), &v) != 0) {
      if (unreadable_inboxes_.insert("disk:" + d).second)
        log::Warn("loading", Cat("cannot stat volume ", d));
      continue;
    }
    s.disks.push_back({d, static_cast<uint64_t>(v.f_bavail) * v.f_frsize,
                       static_cast<uint64_t>(v.f_blocks) * v.f_frsize});
  }
}

void LoadingWatch::Loop() {
  int64_t next_poll_mono = 0;  // monotonic: wall clock steps must not stall it
  while (true) {
    int64_t now = clock_.NowMs();
    if (clock_.MonotonicMs() >= next_poll_mono)
      next_poll_mono = clock_.MonotonicMs() + options_.poll_interval_ms;
    auto findings = detector_.Evaluate(Gather(now));
    findings.insert(findings.begin(), check_findings_.begin(), check_findings_.end());
    check_findings_.clear();
    if (CommitFindings(outbox_, findings, "loading", options_.history.get()) > 0 && on_committed_)
      on_committed_();
    if (checks_state_ && outbox_.held() == 0)
      checks_state_->Update(ExportChecksState(&sources_, nullptr, nullptr), now,
                            clock_.MonotonicMs());
    // After the commit: a crash in between may forget a raise, never invent
    // one. Not while the outbox holds findings in memory (full disk): a
    // restart would then restore a raise that was never stored or sent.
    if (state_ && outbox_.held() == 0)
      state_->Update(detector_.ExportState(), now, clock_.MonotonicMs());
    int64_t wait_ms = WaitBeforeNextEvaluation(clock_, next_poll_mono, detector_.NextDeadline(now),
                                               options_.poll_interval_ms);
    MutexLock lock(&mu_);
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
    while (!stopping_ && cv_.WaitUntil(&mu_, until)) {
    }
    if (stopping_) return;
  }
}

}  // namespace setdiag::agent
