#include "collector/commands/serve.h"

#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <functional>
#include <future>
#include <memory>
#include <thread>

#include "absl/time/clock.h"
#include "collector/api/admin_api.h"
#include "collector/bundles/bundle_store.h"
#include "collector/commands/collector_schema.h"
#include "collector/console/console.h"
#include "collector/link/link_service.h"
#include "collector/notify/notifications.h"
#include "collector/store/commit_queue.h"
#include "collector/store/storage.h"
#include "collector/tickets/tickets.h"
#include "common/clock.h"
#include "common/http_server.h"
#include "common/log.h"
#include "common/mutex.h"
#include "common/signals.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/version.h"

namespace setdiag::collector {
namespace {

// Calls `fn` every `interval_ms` on its own thread until stopped or destroyed.
class Ticker {
 public:
  Ticker(int64_t interval_ms, std::function<void()> fn)
      : interval_ms_(interval_ms), fn_(std::move(fn)), thread_([this] { Loop(); }) {}
  ~Ticker() { Stop(); }
  void Stop() {
    {
      MutexLock lock(&mu_);
      stopping_ = true;
    }
    cv_.SignalAll();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Loop() {
    const auto interval = std::chrono::milliseconds(interval_ms_);
    while (true) {
      {
        MutexLock lock(&mu_);
        const auto next = std::chrono::steady_clock::now() + interval;
        while (!stopping_ && cv_.WaitUntil(&mu_, next)) {
        }
        if (stopping_) return;
      }
      fn_();
    }
  }
  const int64_t interval_ms_;
  std::function<void()> fn_;
  Mutex mu_;
  CondVar cv_;  // stopping_ changed
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: started once the rest is built
};

// The production calendar: sla.calendar_dir; when that is the default and
// absent, the calendars installed next to the binary (<prefix>/share/...),
// then the copy in the source tree (a build that was not installed).
absl::StatusOr<BusinessClock> LoadBusinessClock(const CollectorConfig& cfg) {
  std::string dir = cfg.calendar_dir;
  auto exists = [](const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
  };
  if (!exists(dir) && dir == CollectorConfig{}.calendar_dir) {
    char self[4096];
    ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
    std::string beside;
    if (n > 0) {
      std::string exe(self, static_cast<size_t>(n));
      beside = exe.substr(0, exe.rfind('/')) + "/../share/setdiag/calendars";
    }
    dir = !beside.empty() && exists(beside) ? beside : SETDIAG_SOURCE_CALENDAR_DIR;
  }
  ASSIGN_OR_RETURN(auto calendar, ProductionCalendar::LoadDirectory(dir));
  BusinessHours hours;
  hours.start_minute = cfg.business_start_minute;
  hours.end_minute = cfg.business_end_minute;
  if (!absl::LoadTimeZone(cfg.business_zone, &hours.zone)) {
    return absl::InvalidArgumentError(
        Cat("sla.time_zone: unknown time zone '", cfg.business_zone, "'"));
  }
  std::string years;
  for (int64_t y : calendar.Years()) Append(&years, years.empty() ? "" : ", ", y);
  log::Info("collector",
            Cat("production calendar from ", dir, ": ", years.empty() ? "no years" : years));
  const int64_t this_year = absl::ToCivilYear(absl::Now(), hours.zone).year();
  for (int64_t y : {this_year, this_year + 1}) {
    if (!calendar.Covers(y)) {
      log::Warn("collector", Cat("no production calendar for ", y, " in ", dir,
                                 ": business hours that year follow the plain week (no holidays); "
                                 "add ru-",
                                 y, ".txt (docs/sla.md)"));
    }
  }
  return BusinessClock(std::move(calendar), hours);
}

// Runs the ticket engine on a batch's new events inside its own savepoint: a
// ticket that cannot be worked out is logged and the events are still
// stored and acknowledged (they are on record and the next event retries),
// unless storage itself failed, in which case the batch fails and the agent
// resends it.
absl::Status ApplyToTickets(TicketEngine& engine, sql::Db& db, const std::string& agent,
                            const std::string& store, const std::vector<EventRow>& added,
                            int64_t now) {
  RETURN_IF_ERROR(db.Exec("SAVEPOINT tickets"));
  absl::Status st = engine.OnEvents(db, agent, store, added, now);
  if (!st.ok()) {
    if (absl::IsUnavailable(st) || absl::IsResourceExhausted(st) || absl::IsDataLoss(st)) return st;
    log::Error("tickets", Cat("store ", store, ": events ", added.front().id, "..", added.back().id,
                              " stored, but tickets were not updated: ", st.ToString()));
    (void)db.Exec("ROLLBACK TO tickets");
  }
  return db.Exec("RELEASE tickets");
}

// On Hello: the conditions the agent no longer holds (it restarted) are
// cleared, in their own savepoint like ApplyToTickets: a failure other than
// storage is logged and the agent is still welcomed.
absl::Status ReconcileTickets(TicketEngine& engine, sql::Db& db, const std::string& agent,
                              const std::string& store, const HeldEpisodes& held, int64_t now) {
  if (!held.known) return absl::OkStatus();
  std::vector<HeldCondition> conditions;
  for (const auto& [kind, episode] : held.episodes) conditions.push_back({kind, episode});
  RETURN_IF_ERROR(db.Exec("SAVEPOINT reconcile"));
  absl::Status st = engine.OnHello(db, agent, store, conditions, now);
  if (!st.ok()) {
    if (absl::IsUnavailable(st) || absl::IsResourceExhausted(st) || absl::IsDataLoss(st)) return st;
    log::Error("tickets", Cat("store ", store, ": agent ", agent,
                              " said Hello, but its tickets were not reconciled: ", st.ToString()));
    (void)db.Exec("ROLLBACK TO reconcile");
  }
  return db.Exec("RELEASE reconcile");
}

absl::StatusOr<sql::Db> OpenReadOnly(const std::string& path) {
  ASSIGN_OR_RETURN(auto db, sql::Db::Open(path));
  RETURN_IF_ERROR(db.Exec("PRAGMA query_only=ON"));
  return db;
}

// The agents' gRPC service on grpc.listen, with TLS when configured; null
// when the address cannot be bound.
std::unique_ptr<grpc::Server> StartAgentServer(const CollectorConfig& cfg, LinkService& link) {
  std::shared_ptr<grpc::ServerCredentials> creds;
  if (cfg.tls()) {
    // Read and checked with the config (LoadCollectorConfig).
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({cfg.tls_key_pem, cfg.tls_cert_pem});
    creds = grpc::SslServerCredentials(ssl);
  } else {
    creds = grpc::InsecureServerCredentials();
  }
  grpc::ServerBuilder builder;
  int grpc_port = 0;
  builder.AddListeningPort(cfg.grpc_listen, creds, &grpc_port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(cfg.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(cfg.max_message_bytes));
  // Agents keep idle links alive with pings every 30 s; allow that.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10'000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 60'000);
  builder.RegisterService(&link);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || grpc_port == 0) return nullptr;
  return server;
}

// A person's action on a ticket, run by the engine on the writer thread;
// the API's worker waits for the commit.
AdminApi::ActFn MakeTicketActions(CommitQueue& queue, TicketEngine& engine, Clock& clock) {
  return [&queue, &engine, &clock](const User& user,
                                   const ActionRequest& request) -> absl::StatusOr<Ticket> {
    auto result = std::make_shared<std::promise<absl::StatusOr<Ticket>>>();
    auto answer = std::make_shared<absl::StatusOr<Ticket>>(absl::UnavailableError("not run"));
    bool queued = queue.Submit(
        [&engine, &clock, user, request, answer](sql::Db& db) {
          *answer = engine.Act(db, user, request, clock.NowMs());
          return answer->status();
        },
        [result, answer](absl::Status st) {
          if (!st.ok()) *answer = st;  // e.g. the commit failed
          result->set_value(*answer);
        });
    if (!queued) return absl::UnavailableError("the collector is overloaded; try again");
    return result->get_future().get();
  };
}

// Bundle requests committed on the writer thread and handed to the store's
// stream; what a transfer holds and where a complete file is.
AdminApi::BundleHooks MakeBundleHooks(CommitQueue& queue, LinkService& link, BundleFiles& files,
                                      Clock& clock) {
  AdminApi::BundleHooks hooks;
  hooks.request = [&queue, &link, &clock](
                      const User& user,
                      const NewBundleRequest& request) -> absl::StatusOr<BundleRow> {
    auto result = std::make_shared<std::promise<absl::StatusOr<BundleRow>>>();
    auto row = std::make_shared<absl::StatusOr<BundleRow>>(absl::UnavailableError("not run"));
    bool queued = queue.Submit(
        [&clock, user, request, row](sql::Db& db) {
          *row = CreateBundleRequest(db, request, user.name, clock.NowMs());
          return row->status();
        },
        [result, row, &link](absl::Status st) {
          if (!st.ok()) *row = st;
          // On the writer thread, ordered with Hellos: a store connecting
          // now either reads this row as pending or is found here.
          if (row->ok()) link.DispatchBundle(**row);
          result->set_value(*row);
        });
    if (!queued) return absl::UnavailableError("the collector is overloaded; try again");
    return result->get_future().get();
  };
  hooks.live_bytes = [&files](const std::string& id) { return files.LiveBytes(id); };
  hooks.file_path = [&files](const std::string& id) { return files.FinalPath(id); };
  return hooks;
}

// Bundle retention: expire rows on the writer thread, then delete files
// (and orphans) on the files thread.
std::function<void()> RetentionSweep(CommitQueue& queue, BundleFiles& files, Clock& clock,
                                     const BundleRetention& policy) {
  return [&queue, &files, &clock, policy] {
    auto plan = std::make_shared<SweepPlan>();
    queue.Submit(
        [plan, policy, &clock](sql::Db& db) -> absl::Status {
          ASSIGN_OR_RETURN(*plan, ExpireBundles(db, policy, clock.NowMs()));
          return absl::OkStatus();
        },
        [plan, &files](absl::Status st) {
          if (!st.ok()) {
            log::Error("bundles", Cat("retention failed: ", st.ToString()));
            return;
          }
          files.Sweep(std::move(plan->remove), std::move(plan->keep));
        });
  };
}

// Time-driven ticket work (SLA warnings and breaches, automatic
// resolution, silent stores), on the writer thread too.
std::function<void()> TicketTick(CommitQueue& queue, TicketEngine& engine, Clock& clock) {
  return [&queue, &engine, &clock] {
    queue.Submit([&engine, &clock](sql::Db& db) { return engine.Tick(db, clock.NowMs()); },
                 [](absl::Status st) {
                   if (!st.ok())
                     log::Error("tickets", Cat("periodic ticket work failed: ", st.ToString()));
                 });
  };
}

// The writer's side of the link: new events go through the ticket engine,
// a Hello reconciles what the agent no longer holds.
std::unique_ptr<LinkService> MakeLink(const CollectorConfig& cfg, CommitQueue& queue,
                                      TicketEngine& engine, BundleFiles& files, Clock& clock) {
  BundleLinkLimits bundle_limits;
  bundle_limits.max_bundle_bytes = cfg.bundles.max_bundle_bytes;
  auto link = std::make_unique<LinkService>(
      queue, clock, cfg.limits,
      [&engine, &clock](sql::Db& db, const std::string& agent, const std::string& store,
                        const std::vector<EventRow>& added) {
        return ApplyToTickets(engine, db, agent, store, added, clock.NowMs());
      },
      &files, bundle_limits);
  link->SetHelloSink([&engine, &clock](sql::Db& db, const std::string& agent,
                                       const std::string& store, const HeldEpisodes& held) {
    return ReconcileTickets(engine, db, agent, store, held, clock.NowMs());
  });
  return link;
}

}  // namespace

// console.listen: the same pages and API for browsers on the network,
// HTTPS with the collector's certificate. nullptr when it is not set.
absl::StatusOr<std::unique_ptr<HttpServer>> StartConsoleListener(const CollectorConfig& cfg,
                                                                 HttpServer::Handler handler,
                                                                 HttpServer::Options options) {
  if (cfg.console_listen.empty()) return std::unique_ptr<HttpServer>();
  options.tls_cert_pem = cfg.tls_cert_pem;
  options.tls_key_pem = cfg.tls_key_pem;
  auto server = std::make_unique<HttpServer>(std::move(handler), std::move(options));
  auto addr = ParseListen(cfg.console_listen);  // validated with the config
  if (absl::Status st = server->Start(addr->host, addr->port); !st.ok())
    return absl::UnavailableError(Cat("console.listen: ", st.message()));
  log::Info("collector", Cat("console on ", cfg.tls() ? "https://" : "http://", cfg.console_listen,
                             "/console/"));
  return server;
}

int Serve(const CollectorConfig& cfg) {
  log::Level level;
  log::ParseLevel(cfg.log_level, &level);
  log::SetLevel(level);
  sigset_t signals = BlockStopSignals();

  SystemClock clock;
  auto writer_db = OpenCollectorDb(cfg);
  if (!writer_db.ok()) {
    log::Error("collector", writer_db.status().ToString());
    return 1;
  }
  if (absl::Status st = ResetConnections(*writer_db); !st.ok()) {
    log::Error("collector", st.ToString());
    return 1;
  }
  auto reader_db = OpenReadOnly(cfg.DatabasePath());
  if (!reader_db.ok()) {
    log::Error("collector", reader_db.status().ToString());
    return 1;
  }
  auto business = LoadBusinessClock(cfg);
  if (!business.ok()) {
    log::Error("collector", business.status().ToString());
    return 2;
  }
  TicketEngine engine(cfg.tickets, *business, cfg.notify);
  CommitQueue queue(std::move(*writer_db), cfg.max_pending_events);
  Notifier notifier(cfg.DatabasePath(), queue, cfg.notify, clock);
  queue.SetAfterCommit([&notifier, &engine] {
    // Only the writer thread touches the engine; a commit with new notices wakes the notifier.
    if (engine.TakeNoticesEnqueued() > 0) notifier.Wake();
  });
  // Diagnostic bundle files: their own thread appends what agents stream.
  BundleFiles bundle_files(cfg.BundleDir());
  if (absl::Status st = bundle_files.Start(); !st.ok()) {
    log::Error("collector", st.ToString());
    return 1;
  }
  queue.Start();
  notifier.Start();
  std::unique_ptr<LinkService> link = MakeLink(cfg, queue, engine, bundle_files, clock);
  // On every way out, the writer finishes its queued work while everything
  // its jobs use (the engine, the notifier, the bundle files, the link's
  // sink and counters) still exists: declared after them, destroyed before.
  struct StopQueueFirst {
    CommitQueue& queue;
    ~StopQueueFirst() { queue.Stop(); }
  } stop_queue_first{queue};
  Ticker bundle_sweeper(cfg.bundles.sweep_interval_ms,
                        RetentionSweep(queue, bundle_files, clock, cfg.bundles));
  Ticker ticker(cfg.tick_interval_ms, TicketTick(queue, engine, clock));

  std::unique_ptr<grpc::Server> server = StartAgentServer(cfg, *link);
  if (!server) {
    log::Error("collector", Cat("cannot listen on ", cfg.grpc_listen));
    return 1;
  }
  AdminApi api(std::move(*reader_db), clock, MakeTicketActions(queue, engine, clock));
  api.set_default_tariff(cfg.tickets.default_tariff);
  api.set_bundles(MakeBundleHooks(queue, *link, bundle_files, clock));
  const size_t http_workers = static_cast<size_t>(cfg.http_workers);
  api.set_reader_pool([path = cfg.DatabasePath()] { return OpenReadOnly(path); }, http_workers);
  HttpServer::Options http_options;
  http_options.workers = http_workers;
  http_options.inline_handler = &AdminApi::HandleInline;
  // The console shares the listener and the workers: its pages are the API's
  // answers as the signed-in person (collector/console/console.h).
  console::Console console(api, cfg.tickets, *business, clock, console::Console::Options{});
  auto http_addr = ParseListen(cfg.http_listen);  // validated with the config
  // Sign-in tokens and session cookies never cross a network in plaintext:
  // on a non-loopback http.listen the console is not served (console.listen
  // is, with TLS).
  HttpServer::Handler console_and_api = [&api, &console](const HttpRequest& r) {
    return console::Console::Owns(r) ? console.Handle(r) : api.Handle(r);
  };
  HttpServer::Handler api_only = [&api](const HttpRequest& r) {
    if (console::Console::Owns(r))
      return HttpResponse{
          404,
          R"x({"error":"the console is not served on a non-loopback http.listen: use console.listen (HTTPS)"})x"};
    return api.Handle(r);
  };
  HttpServer http(http_addr->loopback ? console_and_api : api_only, http_options);
  if (!http_addr->loopback) {
    log::Warn("collector", Cat("the admin API listens on ", cfg.http_listen,
                               " without TLS; keep it on loopback or behind a TLS proxy"));
  }
  if (absl::Status st = http.Start(http_addr->host, http_addr->port); !st.ok()) {
    log::Error("collector", st.ToString());
    server->Shutdown();
    return 1;
  }
  auto console_http = StartConsoleListener(cfg, console_and_api, http_options);
  if (!console_http.ok()) {
    log::Error("collector", console_http.status().ToString());
    http.Stop();
    server->Shutdown();
    return 1;
  }
  log::Info("collector", Cat("setdiag-collector ", kVersion, ": agents on ", cfg.grpc_listen,
                             cfg.tls() ? " (TLS)" : " (plaintext)", ", admin API on http://",
                             cfg.http_listen, ", console on http://", cfg.http_listen,
                             "/console/, database ", cfg.DatabasePath()));
  int sig = 0;
  sigwait(&signals, &sig);
  log::Info("collector", "stopping");
  if (*console_http) (*console_http)->Stop();
  http.Stop();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  ticker.Stop();
  bundle_sweeper.Stop();
  queue.Stop();
  bundle_files.Stop();
  notifier.Stop();
  return 0;
}

}  // namespace setdiag::collector
