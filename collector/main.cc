// setdiag-collector: the composition root of the support-side collector.

#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <condition_variable>
#include <cstring>
#include <future>
#include <iostream>
#include <mutex>
#include <thread>

#include "absl/time/clock.h"
#include "collector/api/admin_api.h"
#include "collector/bundles/bundle_store.h"
#include "collector/commands/check.h"
#include "collector/commands/collector_schema.h"
#include "collector/config/collector_config.h"
#include "collector/link/link_service.h"
#include "collector/store/commit_queue.h"
#include "collector/store/storage.h"
#include "collector/tickets/tickets.h"
#include "common/clock.h"
#include "common/files.h"
#include "common/http_server.h"
#include "common/log.h"
#include "common/strings.h"
#include "common/version.h"

namespace setdiag::collector {
namespace {

absl::StatusOr<sql::Db> OpenDatabase(const CollectorConfig& cfg) {
  if (::mkdir(cfg.data_dir.c_str(), 0750) != 0 && errno != EEXIST) {
    return absl::UnavailableError(Cat("cannot create ", cfg.data_dir, ": ", std::strerror(errno)));
  }
  auto db = sql::Db::Open(cfg.DatabasePath());
  if (!db.ok()) return db.status();
  // Acknowledged means on disk: FULL fsyncs each (group) commit.
  if (auto st = db->Exec("PRAGMA synchronous=FULL"); !st.ok()) return st;
  if (auto st = MigrateCollectorDb(*db, cfg.DatabasePath()); !st.ok()) return st;
  return db;
}

// Calls `fn` every `interval_ms` on its own thread until stopped or destroyed.
class Ticker {
 public:
  Ticker(int64_t interval_ms, std::function<void()> fn)
      : interval_ms_(interval_ms), fn_(std::move(fn)), thread_([this] { Loop(); }) {}
  ~Ticker() { Stop(); }
  void Stop() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

 private:
  void Loop() {
    std::unique_lock lock(mu_);
    while (!cv_.wait_for(lock, std::chrono::milliseconds(interval_ms_),
                         [this] { return stopping_; })) {
      lock.unlock();
      fn_();
      lock.lock();
    }
  }
  const int64_t interval_ms_;
  std::function<void()> fn_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
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
  auto calendar = ProductionCalendar::LoadDirectory(dir);
  if (!calendar.ok()) return calendar.status();
  BusinessHours hours;
  hours.start_minute = cfg.business_start_minute;
  hours.end_minute = cfg.business_end_minute;
  if (!absl::LoadTimeZone(cfg.business_zone, &hours.zone)) {
    return absl::InvalidArgumentError(
        Cat("sla.time_zone: unknown time zone '", cfg.business_zone, "'"));
  }
  std::string years;
  for (int64_t y : calendar->Years()) Append(&years, years.empty() ? "" : ", ", y);
  log::Info("collector",
            Cat("production calendar from ", dir, ": ", years.empty() ? "no years" : years));
  const int64_t this_year = absl::ToCivilYear(absl::Now(), hours.zone).year();
  for (int64_t y : {this_year, this_year + 1}) {
    if (!calendar->Covers(y)) {
      log::Warn("collector", Cat("no production calendar for ", y, " in ", dir,
                                 ": business hours that year follow the plain week (no holidays); "
                                 "add ru-",
                                 y, ".txt (docs/sla.md)"));
    }
  }
  return BusinessClock(std::move(*calendar), hours);
}

// Runs the ticket engine on a batch's new events inside its own savepoint: a
// ticket that cannot be worked out is logged and the events are still
// stored and acknowledged (they are on record and the next event retries),
// unless storage itself failed, in which case the batch fails and the agent
// resends it.
absl::Status ApplyToTickets(TicketEngine& engine, sql::Db& db, const std::string& agent,
                            const std::string& store, const std::vector<EventRow>& added,
                            int64_t now) {
  if (auto st = db.Exec("SAVEPOINT tickets"); !st.ok()) return st;
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
  if (auto st = db.Exec("SAVEPOINT reconcile"); !st.ok()) return st;
  absl::Status st = engine.OnHello(db, agent, store, conditions, now);
  if (!st.ok()) {
    if (absl::IsUnavailable(st) || absl::IsResourceExhausted(st) || absl::IsDataLoss(st)) return st;
    log::Error("tickets", Cat("store ", store, ": agent ", agent,
                              " said Hello, but its tickets were not reconciled: ", st.ToString()));
    (void)db.Exec("ROLLBACK TO reconcile");
  }
  return db.Exec("RELEASE reconcile");
}

int Serve(const CollectorConfig& cfg) {
  log::Level level;
  log::ParseLevel(cfg.log_level, &level);
  log::SetLevel(level);
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  SystemClock clock;
  auto writer_db = OpenDatabase(cfg);
  if (!writer_db.ok()) {
    log::Error("collector", writer_db.status().ToString());
    return 1;
  }
  if (auto st = ResetConnections(*writer_db); !st.ok()) {
    log::Error("collector", st.ToString());
    return 1;
  }
  auto reader_db = sql::Db::Open(cfg.DatabasePath());
  if (!reader_db.ok() || !reader_db->Exec("PRAGMA query_only=ON").ok()) {
    log::Error("collector", reader_db.ok() ? "cannot make the API connection read-only"
                                           : reader_db.status().ToString());
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
  if (auto st = bundle_files.Start(); !st.ok()) {
    log::Error("collector", st.ToString());
    return 1;
  }
  queue.Start();
  notifier.Start();
  BundleLinkLimits bundle_limits;
  bundle_limits.max_bundle_bytes = cfg.bundles.max_bundle_bytes;
  LinkService link(
      queue, clock, cfg.limits,
      [&engine, &clock](sql::Db& db, const std::string& agent, const std::string& store,
                        const std::vector<EventRow>& added) {
        return ApplyToTickets(engine, db, agent, store, added, clock.NowMs());
      },
      &bundle_files, bundle_limits);
  link.SetHelloSink([&engine, &clock](sql::Db& db, const std::string& agent,
                                      const std::string& store, const HeldEpisodes& held) {
    return ReconcileTickets(engine, db, agent, store, held, clock.NowMs());
  });
  // On every way out, the writer finishes its queued work while everything
  // its jobs use (the engine, the notifier, the bundle files, the link's
  // sink and counters) still exists: declared after them, destroyed before.
  struct StopQueueFirst {
    CommitQueue& queue;
    ~StopQueueFirst() { queue.Stop(); }
  } stop_queue_first{queue};
  // Bundle retention: expire rows on the writer thread, then delete files
  // (and orphans) on the files thread.
  Ticker bundle_sweeper(cfg.bundles.sweep_interval_ms,
                        [&queue, &bundle_files, &clock, policy = cfg.bundles] {
                          auto plan = std::make_shared<SweepPlan>();
                          queue.Submit(
                              [plan, policy, &clock](sql::Db& db) -> absl::Status {
                                auto p = ExpireBundles(db, policy, clock.NowMs());
                                if (!p.ok()) return p.status();
                                *plan = std::move(*p);
                                return absl::OkStatus();
                              },
                              [plan, &bundle_files](absl::Status st) {
                                if (!st.ok()) {
                                  log::Error("bundles", Cat("retention failed: ", st.ToString()));
                                  return;
                                }
                                bundle_files.Sweep(std::move(plan->remove), std::move(plan->keep));
                              });
                        });
  // Time-driven ticket work (SLA warnings and breaches, automatic
  // resolution, silent stores) runs on the writer thread too.
  Ticker ticker(cfg.tick_interval_ms, [&queue, &engine, &clock] {
    queue.Submit([&engine, &clock](sql::Db& db) { return engine.Tick(db, clock.NowMs()); },
                 [](absl::Status st) {
                   if (!st.ok())
                     log::Error("tickets", Cat("periodic ticket work failed: ", st.ToString()));
                 });
  });

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
  if (!server || grpc_port == 0) {
    log::Error("collector", Cat("cannot listen on ", cfg.grpc_listen));
    return 1;
  }

  AdminApi api(std::move(*reader_db), clock,
               [&queue, &engine, &clock](const User& user,
                                         const ActionRequest& request) -> absl::StatusOr<Ticket> {
                 auto result = std::make_shared<std::promise<absl::StatusOr<Ticket>>>();
                 auto answer =
                     std::make_shared<absl::StatusOr<Ticket>>(absl::UnavailableError("not run"));
                 bool queued = queue.Submit(
                     [&engine, &clock, user, request, answer](sql::Db& db) {
                       *answer = engine.Act(db, user, request, clock.NowMs());
                       return answer->status();
                     },
                     [result, answer](absl::Status st) {
                       if (!st.ok()) *answer = st;  // e.g. the commit failed
                       result->set_value(*answer);
                     });
                 if (!queued)
                   return absl::UnavailableError("the collector is overloaded; try again");
                 return result->get_future().get();
               });
  api.set_default_tariff(cfg.tickets.default_tariff);
  AdminApi::BundleHooks bundle_hooks;
  bundle_hooks.request = [&queue, &link, &clock](
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
  bundle_hooks.live_bytes = [&bundle_files](const std::string& id) {
    return bundle_files.LiveBytes(id);
  };
  bundle_hooks.file_path = [&bundle_files](const std::string& id) {
    return bundle_files.FinalPath(id);
  };
  api.set_bundles(std::move(bundle_hooks));
  const size_t http_workers = static_cast<size_t>(cfg.http_workers);
  api.set_reader_pool(
      [path = cfg.DatabasePath()]() -> absl::StatusOr<sql::Db> {
        auto db = sql::Db::Open(path);
        if (!db.ok()) return db.status();
        if (auto st = db->Exec("PRAGMA query_only=ON"); !st.ok()) return st;
        return db;
      },
      http_workers);
  HttpServer::Options http_options;
  http_options.workers = http_workers;
  http_options.inline_handler = &AdminApi::HandleInline;
  HttpServer http([&api](const HttpRequest& r) { return api.Handle(r); }, http_options);
  auto http_addr = ParseListen(cfg.http_listen);  // validated with the config
  if (!http_addr->loopback) {
    log::Warn("collector", Cat("the admin API listens on ", cfg.http_listen,
                               " without TLS; keep it on loopback or behind a TLS proxy"));
  }
  if (auto st = http.Start(http_addr->host, http_addr->port); !st.ok()) {
    log::Error("collector", st.ToString());
    server->Shutdown();
    return 1;
  }
  log::Info("collector", Cat("setdiag-collector ", kVersion, ": agents on ", cfg.grpc_listen,
                             cfg.tls() ? " (TLS)" : " (plaintext)", ", admin API on http://",
                             cfg.http_listen, ", database ", cfg.DatabasePath()));
  int sig = 0;
  sigwait(&signals, &sig);
  log::Info("collector", "stopping");
  http.Stop();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  ticker.Stop();
  bundle_sweeper.Stop();
  queue.Stop();
  bundle_files.Stop();
  notifier.Stop();
  return 0;
}

}  // namespace
}  // namespace setdiag::collector

int main(int argc, char** argv) {
  using namespace setdiag;
  using namespace setdiag::collector;
  CLI::App app{
      "setdiag-collector: receives diagnostics from setdiag agents in SET Retail 10 stores.\n"
      "Without a subcommand it serves (same as 'serve')."};
  app.set_version_flag("--version", std::string("setdiag-collector ") + kVersion);
  // Options may follow the subcommand ("token list --config FILE"):
  // subcommands inherit this and pass unknown options upwards.
  app.fallthrough();
  std::string config_path = "/etc/setdiag/collector.toml";
  app.add_option("-c,--config", config_path, "Configuration file (TOML)")->capture_default_str();
  auto* serve = app.add_subcommand("serve", "Accept agents and serve the admin API (the default)");
  (void)serve;

  auto* token = app.add_subcommand("token", "Store tokens that agents authenticate with");
  token->require_subcommand(1);
  std::string store, partner, token_id;
  auto* token_create = token->add_subcommand("create", "Create a token for a store; printed once");
  token_create->add_option("--store", store, "Store id (as in the agent's agent.store_id)")
      ->required();
  token_create->add_option("--partner", partner, "Partner that looks after the store")->required();
  auto* token_revoke =
      token->add_subcommand("revoke", "Revoke a token (effective at the next connect)");
  token_revoke->add_option("--id", token_id, "Token id from 'token list'");
  token_revoke->add_option("--store", store, "Revoke every token of this store");
  auto* token_list = token->add_subcommand("list", "List tokens (ids only, never secrets)");

  auto* user = app.add_subcommand("user", "People who use the admin API and the setdiag CLI");
  user->require_subcommand(1);
  std::string name, role = "support";
  auto* user_create = user->add_subcommand("create", "Create a user; prints an API token once");
  user_create->add_option("--name", name, "User name")->required();
  user_create->add_option("--role", role, "support (sees all stores) or partner")
      ->check(CLI::IsMember({"support", "partner"}))
      ->capture_default_str();
  auto* user_partner = user_create->add_option("--partner", partner,
                                               "Partner, for role partner (known: a store's "
                                               "partner, or one made with 'partner set')");
  std::string user_id;
  auto* user_list = user->add_subcommand("list", "List users (ids, names, roles; never tokens)");
  auto* user_revoke =
      user->add_subcommand("revoke", "Revoke a user's API token (effective at its next request)");
  user_revoke->add_option("--id", user_id, "User id from 'user list'");
  user_revoke->add_option("--name", name, "User name");
  auto* user_delete = user->add_subcommand("delete", "Delete a user (its name can be used again)");
  user_delete->add_option("--id", user_id, "User id from 'user list'");
  user_delete->add_option("--name", name, "User name");
  auto* partner_cmd =
      app.add_subcommand("partner", "Partners and their support tariff (SLA policy)");
  partner_cmd->require_subcommand(1);
  std::string tariff;
  auto* partner_set = partner_cmd->add_subcommand(
      "set", "Set a partner's tariff (applies to tickets opened from now on)");
  partner_set->add_option("--name", partner, "Partner (as given to 'token create --partner')")
      ->required();
  partner_set->add_option("--tariff", tariff, "expert, free, or a [tariffs.<name>] of the config")
      ->required();
  auto* partner_list =
      partner_cmd->add_subcommand("list", "List partners, their tariff and stores");
  auto* check = app.add_subcommand("check",
                                   "Preflight of the support side: the config, the listening "
                                   "addresses, the TLS certificate, the "
                                   "production calendars, the database and every notification "
                                   "target; without --send-test it sends "
                                   "nothing and changes nothing. Exit 0 when every check passes, 1 "
                                   "when one fails, 2 for a bad config");
  bool check_json = false, check_send_test = false;
  std::string check_lang;
  check->add_flag("--json", check_json, "JSON output for scripts");
  check->add_option("--lang", check_lang, "ru or en (default from $LANG)")
      ->check(CLI::IsMember({"ru", "en"}));
  check->add_flag(
      "--send-test", check_send_test,
      "Also send one test notification (marked TEST) to each webhook and e-mail target");
  app.require_subcommand(0, 1);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }

  if (check->parsed()) {
    if (check_lang.empty()) check_lang = LanguageFromEnvironment();
    CheckOptions check_options;
    check_options.send_test = check_send_test;
    check_options.source_calendar_dir = SETDIAG_SOURCE_CALENDAR_DIR;
    SystemClock check_clock;
    return RunCheckCommand(config_path, check_options, check_lang == "ru", check_json, check_clock);
  }
  // Serving reads the TLS files with the config, so that a wrong one is a
  // config error; the admin commands do not need them.
  const bool serving = !token->parsed() && !user->parsed() && !partner_cmd->parsed();
  auto cfg = LoadCollectorConfig(config_path, /*read_tls_files=*/serving);
  if (!cfg.ok()) {
    std::cerr << "setdiag-collector: bad config: " << cfg.status().message() << "\n";
    return 2;
  }
  if (serving) return Serve(*cfg);

  // Usage errors of the user commands, before the database is touched.
  if (user_create->parsed()) {
    if (!IsValidIdentifier(name)) {
      std::cerr << "setdiag-collector user create: --name must be 1..128 characters of "
                   "[A-Za-z0-9._-] (the rule "
                   "of store ids)\n";
      return 2;
    }
    if (role == "support" && user_partner->count() > 0) {
      std::cerr << "setdiag-collector user create: --partner is for role partner; a support user "
                   "sees every "
                   "store (drop --partner, or add --role partner)\n";
      return 2;
    }
    if (role == "partner" && partner.empty()) {
      std::cerr << "setdiag-collector user create: --partner is required for role partner\n";
      return 2;
    }
    if (role == "partner" && !IsValidIdentifier(partner)) {
      std::cerr << "setdiag-collector user create: --partner must be 1..128 characters of "
                   "[A-Za-z0-9._-], as "
                   "given to 'token create --partner'\n";
      return 2;
    }
  }
  for (const auto& [command, verb] :
       {std::pair{user_revoke, "revoke"}, std::pair{user_delete, "delete"}}) {
    if (command->parsed() && user_id.empty() == name.empty()) {
      std::cerr << "setdiag-collector user " << verb << ": give exactly one of --id or --name\n";
      return 2;
    }
  }

  auto db = OpenDatabase(*cfg);
  if (!db.ok()) {
    std::cerr << "setdiag-collector: " << db.status().message() << "\n";
    return 1;
  }
  SystemClock clock;
  if (token_create->parsed()) {
    if (!IsValidIdentifier(store) || !IsValidIdentifier(partner)) {
      std::cerr
          << "setdiag-collector token create: --store and --partner must be 1..128 characters of "
             "[A-Za-z0-9._-] (the agent's agent.store_id follows the same rule)\n";
      return 2;
    }
    auto t = CreateStoreToken(*db, store, partner, clock.NowMs());
    if (!t.ok()) {
      std::cerr << "setdiag-collector: " << t.status().message() << "\n";
      return 1;
    }
    std::cerr << "Token " << t->id << " for store " << store << " (partner " << partner
              << "). It is shown only this once; put it in the agent's token file.\n";
    std::cout << t->secret << "\n";
    return 0;
  }
  if (token_revoke->parsed()) {
    if (token_id.empty() == store.empty()) {
      std::cerr << "setdiag-collector token revoke: give exactly one of --id or --store\n";
      return 2;
    }
    auto n = RevokeStoreTokens(*db, token_id, store, clock.NowMs());
    if (!n.ok()) {
      std::cerr << "setdiag-collector: " << n.status().message() << "\n";
      return 1;
    }
    std::cout << "revoked " << *n << " token(s)\n";
    return *n > 0 ? 0 : 1;
  }
  if (token_list->parsed()) {
    auto rows = ListStoreTokens(*db);
    if (!rows.ok()) {
      std::cerr << "setdiag-collector: " << rows.status().message() << "\n";
      return 1;
    }
    std::printf("%-10s %-12s %-16s %s\n", "ID", "STORE", "PARTNER", "STATE");
    for (const auto& r : *rows) {
      std::printf("%-10s %-12s %-16s %s\n", r.id.c_str(), r.store_id.c_str(), r.partner.c_str(),
                  r.revoked_at_ms ? "revoked" : "active");
    }
    return 0;
  }
  if (partner_set->parsed()) {
    if (!IsValidIdentifier(partner)) {
      std::cerr
          << "setdiag-collector partner set: --name must be 1..128 characters of [A-Za-z0-9._-]\n";
      return 2;
    }
    if (!cfg->tickets.tariffs.contains(tariff)) {
      std::string known;
      for (const auto& [tariff_name, policy] : cfg->tickets.tariffs)
        Append(&known, known.empty() ? "" : ", ", tariff_name);
      std::cerr << "setdiag-collector partner set: no tariff '" << tariff << "' (known: " << known
                << ")\n";
      return 2;
    }
    if (auto st = SetPartnerTariff(*db, partner, tariff, clock.NowMs()); !st.ok()) {
      std::cerr << "setdiag-collector: " << st.message() << "\n";
      return 1;
    }
    std::cout << "partner " << partner << ": tariff " << tariff << "\n";
    return 0;
  }
  if (partner_list->parsed()) {
    auto s = db->Prepare(
        "SELECT p.partner, COALESCE(t.tariff, ''), COUNT(DISTINCT s.store_id) FROM "
        "(SELECT partner FROM stores UNION SELECT partner FROM partners) p "
        "LEFT JOIN partners t USING (partner) LEFT JOIN stores s USING (partner) GROUP BY "
        "p.partner ORDER BY 1");
    if (!s.ok()) {
      std::cerr << "setdiag-collector: " << s.status().message() << "\n";
      return 1;
    }
    std::printf("%-20s %-12s %s\n", "PARTNER", "TARIFF", "STORES");
    while (true) {
      auto row = s->Step();
      if (!row.ok() || !*row) break;
      std::string t = s->Text(1);
      std::printf("%-20s %-12s %lld\n", s->Text(0).c_str(),
                  t.empty() ? Cat(cfg->tickets.default_tariff, " (default)").c_str() : t.c_str(),
                  static_cast<long long>(s->Int(2)));
    }
    return 0;
  }
  if (user_create->parsed()) {
    Role r = role == "support" ? Role::kSupport : Role::kPartner;
    if (r == Role::kPartner) {
      auto known = PartnerIsKnown(*db, partner);
      if (!known.ok()) {
        std::cerr << "setdiag-collector: " << known.status().message() << "\n";
        return 1;
      }
      if (!*known) {
        std::string tariffs;
        for (const auto& [tariff_name, policy] : cfg->tickets.tariffs) {
          Append(&tariffs, tariffs.empty() ? "" : ", ", tariff_name);
        }
        std::cerr << "setdiag-collector user create: no partner '" << partner
                  << "': no store has it and it has no tariff. Create it first with "
                     "'setdiag-collector partner set "
                     "--name "
                  << partner << " --tariff T' (T: " << tariffs
                  << "), or give its first store a token with "
                  << "'token create --store S --partner " << partner << "'\n";
        return 2;
      }
    }
    auto t = CreateUser(*db, name, r, partner, clock.NowMs());
    if (!t.ok()) {
      std::cerr << "setdiag-collector: " << t.status().message() << "\n";
      return absl::IsInvalidArgument(t.status()) ? 2 : 1;
    }
    std::cerr << "User " << name << " (" << role << "). The API token is shown only this once.\n";
    std::cout << t->secret << "\n";
    return 0;
  }
  if (user_list->parsed()) {
    auto rows = ListUsers(*db);
    if (!rows.ok()) {
      std::cerr << "setdiag-collector: " << rows.status().message() << "\n";
      return 1;
    }
    // A name from before names were checked (empty, a newline) is shown
    // quoted and escaped; revoke or delete such a user by its id.
    auto shown = [](const std::string& text) -> std::string {
      if (IsValidIdentifier(text)) return text;
      std::string out = "\"";
      for (char ch : text) {
        const auto c = static_cast<unsigned char>(ch);
        if (c == '"' || c == '\\') {
          out += '\\';
          out += static_cast<char>(c);
        } else if (c == '\n') {
          out += "\\n";
        } else if (c < 0x20 || c == 0x7f) {
          char hex[8];
          std::snprintf(hex, sizeof hex, "\\x%02x", c);
          out += hex;
        } else {
          out += static_cast<char>(c);
        }
      }
      return out + "\"";
    };
    std::printf("%-10s %-24s %-8s %-16s %s\n", "ID", "NAME", "ROLE", "PARTNER", "STATE");
    for (const auto& u : *rows) {
      std::printf("%-10s %-24s %-8s %-16s %s\n", u.id.c_str(), shown(u.name).c_str(),
                  u.role == Role::kSupport ? "support" : "partner",
                  u.role == Role::kSupport ? "-" : shown(u.partner).c_str(),
                  u.revoked_at_ms ? "revoked" : "active");
    }
    return 0;
  }
  if (user_revoke->parsed() || user_delete->parsed()) {
    const bool revoke = user_revoke->parsed();
    auto n =
        revoke ? RevokeUser(*db, user_id, name, clock.NowMs()) : DeleteUser(*db, user_id, name);
    if (!n.ok()) {
      std::cerr << "setdiag-collector: " << n.status().message() << "\n";
      return 1;
    }
    if (*n == 0) {
      std::cerr << "setdiag-collector user " << (revoke ? "revoke" : "delete") << ": no "
                << (revoke ? "active " : "") << "user with " << (user_id.empty() ? "name " : "id ")
                << (user_id.empty() ? name : user_id) << " (see 'user list')\n";
      return 1;
    }
    std::cout << (revoke ? "revoked " : "deleted ") << *n << " user(s)\n";
    return 0;
  }
  return 0;
}
