// The collector under load, with a real setdiag-collector process on this
// machine (results and commands in docs/benchmarks.md, "Collector under
// load"):
//
//   lists        10,000 stores (one agent each, 20 partners) and 100,000
//                tickets written straight into collector.db (the schema the
//                collector made), then the admin API read the way people
//                read it: pages of GET /api/v1/stores and /api/v1/tickets as
//                support and as a partner, and `setdiag stores list` /
//                `tickets list` as processes. Then four clients read the
//                largest pages as fast as they can while a fifth measures
//                GET /healthz, against /healthz on the idle collector.
//   storm        N agents with M events each waiting in their outboxes
//                reconnect at the same instant (after an outage). Each is
//                this benchmark speaking the link protocol on its own
//                connection, as setdiag-agent does: Hello, batches of 500
//                with at most 5,000 unacknowledged, and on Overloaded the
//                agent's own Backoff (common/backoff.h) with the collector's
//                hint. Time until every event is acknowledged; then the
//                database must hold each agent's 1..M exactly once.
//                --old-agents runs the same storm with agents that wait 15 s
//                after Overloaded as 0.1.0 did (the herd), for the ratio.
//   slow-reader  one agent sends batches as fast as the collector reads them
//                and never reads an ack; the collector's resident memory is
//                sampled every second.

#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <barrier>
#include <cstdio>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_stats.h"
#include "cli/api_client.h"
#include "collector/store/storage.h"
#include "common/backoff.h"
#include "common/clock.h"
#include "common/sqlite.h"
#include "common/strings.h"
#include "setdiag/v1/link.grpc.pb.h"
#include "tests/integration/harness.h"

using namespace setdiag::testing;
using namespace setdiag::bench;
using namespace std::chrono_literals;
using json = nlohmann::json;
using setdiag::Cat;
namespace v1 = setdiag::v1;
namespace sql = setdiag::sql;

namespace {

void Check(const absl::Status& st, const std::string& what) {
  if (!st.ok()) throw std::runtime_error(what + ": " + st.ToString());
}

// The benchmark measures the product, not debug logging.
void QuietCollector(Deployment& d, const std::string& extra = "") {
  std::string cfg = ReadFile(d.collector_config());
  cfg.replace(cfg.find("log_level = \"debug\""), 19, "log_level = \"info\"");
  const std::string si = "status_interval = \"1s\"";
  if (auto at = cfg.find(si); at != std::string::npos)
    cfg.replace(at, si.size(), "status_interval = \"30s\"");
  WriteFile(d.collector_config(), cfg + extra);
}

std::string DbPath(Deployment& d) { return d.dir() + "/collector/collector.db"; }

// ---- lists --------------------------------------------------------------

std::string StoreId(int i) { return Cat("S", 100000 + i); }
std::string PartnerOf(int i, int partners) { return Cat("partner-", 10 + i % partners); }

// Stores, their agents, partners with tariffs, and tickets: `per_store`
// each, all resolved but the store's current one for every fifth store.
void Seed(const std::string& path, int stores, int tickets, int partners) {
  auto db = sql::Db::Open(path);
  Check(db.status(), "open " + path);
  Check(db->Exec("BEGIN"), "begin");
  const int64_t now = NowMs();
  {
    auto p = db->Prepare("INSERT INTO partners(partner, tariff, updated_at_ms) VALUES (?,?,?)");
    Check(p.status(), "prepare partners");
    for (int i = 0; i < partners; ++i) {
      p->Bind(1, PartnerOf(i, partners)).Bind(2, i % 3 == 0 ? "standard" : "expert").Bind(3, now);
      Check(p->Run(), "partner");
      p->Reset();
    }
  }
  auto st = db->Prepare("INSERT INTO stores(store_id, partner, created_at_ms) VALUES (?,?,?)");
  auto ag = db->Prepare(
      "INSERT INTO agents(agent_id, store_id, agent_version, outbox_id, last_committed_seq, "
      "first_seen_ms, "
      "last_seen_ms, connected, connection, status_json) VALUES (?,?,?,?,?,?,?,?,0,'{}')");
  Check(st.status(), "prepare stores");
  Check(ag.status(), "prepare agents");
  for (int i = 0; i < stores; ++i) {
    st->Bind(1, StoreId(i)).Bind(2, PartnerOf(i, partners)).Bind(3, now - 86'400'000);
    Check(st->Run(), "store");
    st->Reset();
    ag->Bind(1, Cat("store-", StoreId(i), "-a1"))
        .Bind(2, StoreId(i))
        .Bind(3, "0.2.0")
        .Bind(4, Cat("ob", i));
    ag->Bind(5, int64_t{1000 + i}).Bind(6, now - 86'400'000).Bind(7, now - (i % 600) * 1000);
    ag->Bind(8, int64_t{i % 10 != 0});
    Check(ag->Run(), "agent");
    ag->Reset();
  }
  auto tk = db->Prepare(
      "INSERT INTO tickets(store_id, partner, tariff, condition, priority, state, "
      "condition_active, paged, late, "
      "title_en, title_ru, summary_en, summary_ru, detected_at_ms, registered_at_ms, "
      "updated_at_ms, "
      "cleared_at_ms, acknowledged_at_ms, acknowledged_by, resolved_at_ms, resolved_by, "
      "resolution, "
      "error_registered_at_ms, reopen_count, last_episode, reg_due, reg_warn, reg_met, reg_warned, "
      "reg_breached, resp_due, resp_warn, resp_met, resp_warned, resp_breached, wa_due, wa_warn, "
      "wa_met, "
      "wa_warned, wa_breached, next_due_ms) VALUES "
      "(?1,?2,'expert',?3,?4,?5,?6,1,0,?7,?8,?9,?10,?11,?11,?11,"
      "0,0,'',?12,?13,'',0,0,?14,?11,?11,?11,0,0,?11,?11,0,0,0,?11,?11,0,0,0,?15)");
  Check(tk.status(), "prepare tickets");
  const char* conditions[] = {"tills", "loading", "agent.unreachable", "set.server_down"};
  const int per_store = std::max(1, tickets / std::max(stores, 1));
  int written = 0;
  for (int i = 0; i < stores && written < tickets; ++i) {
    for (int k = 0; k < per_store && written < tickets; ++k, ++written) {
      const bool current = k == per_store - 1 && i % 5 == 0;
      const int64_t at = now - int64_t{per_store - k} * 3'600'000;
      const std::string cond = conditions[k % 4];
      tk->Bind(1, StoreId(i))
          .Bind(2, PartnerOf(i, partners))
          .Bind(3, cond)
          .Bind(4, int64_t{k % 4 == 0 ? 3 : 2});
      tk->Bind(5, current ? (i % 10 == 0 ? "acknowledged" : "open") : "resolved")
          .Bind(6, int64_t{current});
      tk->Bind(7, Cat("Store ", StoreId(i), ": ", cond))
          .Bind(8, Cat("Магазин ", StoreId(i), ": ", cond));
      tk->Bind(9, "bench").Bind(10, "бенчмарк").Bind(11, at);
      tk->Bind(12, current ? int64_t{0} : at + 1'800'000).Bind(13, current ? "" : "collector");
      tk->Bind(14, Cat("ep-", i, "-", k)).Bind(15, current ? at + 7'200'000 : int64_t{0});
      Check(tk->Run(), "ticket");
      tk->Reset();
    }
  }
  Check(db->Exec("COMMIT"), "commit");
}

struct Timed {
  std::vector<double> ms;
  int failures = 0;
};

// One request per sample, each on a fresh connection, as the CLI makes them.
Timed TimeGets(setdiag::cli::ApiClient& client, int n,
               const std::function<std::string(int)>& path) {
  Timed t;
  for (int i = 0; i < n; ++i) {
    const std::string p = path(i);
    const auto t0 = std::chrono::steady_clock::now();
    auto r = client.Get(p);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (!r.ok() || r->status != 200) {
      if (++t.failures == 1)
        std::fprintf(stderr, "GET %s: %s\n", p.c_str(),
                     r.ok() ? r->body.substr(0, 200).c_str() : r.status().ToString().c_str());
      continue;
    }
    t.ms.push_back(ms);
  }
  return t;
}

Timed TimeCli(Deployment& d, int n, const std::vector<std::string>& args,
              const std::string& token = "") {
  Timed t;
  for (int i = 0; i < n; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    CommandResult r = d.Cli(args, token);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (r.exit_code != 0) {
      if (++t.failures == 1)
        std::fprintf(stderr, "setdiag %s: %s\n", args[0].c_str(), r.err.c_str());
      continue;
    }
    t.ms.push_back(ms);
  }
  return t;
}

int Lists(int stores, int tickets, int partners, int samples, double load_seconds) {
  Deployment d("bench-lists");
  QuietCollector(d);
  std::printf("lists: seeding %d stores (%d partners, one agent each) and %d tickets\n", stores,
              partners, tickets);
  std::fflush(stdout);
  const auto s0 = std::chrono::steady_clock::now();
  Seed(DbPath(d), stores, tickets, partners);
  std::printf("lists: seeded in %.1f s\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - s0).count());
  const std::string partner_token =
      d.CreateUser("bench-partner", "partner", PartnerOf(3, partners));
  d.StartCollector();
  const std::string base = Cat("http://127.0.0.1:", d.http_port());
  setdiag::cli::ApiClient support(base, d.support_token()), partner(base, partner_token);
  std::mt19937 rng(42);
  auto random_store = [&] {
    return StoreId(static_cast<int>(rng() % static_cast<unsigned>(stores)));
  };
  auto random_ticket = [&] { return 1 + rng() % static_cast<unsigned>(tickets); };

  json results = json::object();
  bool all_under = true;
  auto report = [&](const std::string& name, const Timed& t, bool target) {
    Report(Cat(name, target ? " [p99 < 200 ms]" : "", ", ms"), t.ms);
    Summary s = Summarize(t.ms);
    if (target && (s.p99 >= 200 || t.failures > 0)) all_under = false;
    results[name] = SummaryJson(t.ms);
    results[name]["failures"] = t.failures;
  };
  // Every sample of a series asks for the same path.
  auto Fixed = [](std::string path) { return [path](int) { return path; }; };
  // Warm the page cache and the connections' statement caches.
  (void)TimeGets(support, 5, Fixed("/api/v1/stores?limit=1000"));

  report("GET /stores?limit=100 (support, first page)",
         TimeGets(support, samples, Fixed("/api/v1/stores?limit=100")), true);
  report("GET /stores?limit=100&after=<random> (support)",
         TimeGets(support, samples,
                  [&](int) { return Cat("/api/v1/stores?limit=100&after=", random_store()); }),
         true);
  report("GET /stores?limit=1000 (support, largest page)",
         TimeGets(support, samples / 4, Fixed("/api/v1/stores?limit=1000")), true);
  report("GET /stores?limit=100 (partner, 1 of 20)",
         TimeGets(partner, samples, Fixed("/api/v1/stores?limit=100")), true);
  report("GET /stores/<random> (support)",
         TimeGets(support, samples, [&](int) { return Cat("/api/v1/stores/", random_store()); }),
         true);
  report("GET /tickets?state=active&limit=100 (support)",
         TimeGets(support, samples, Fixed("/api/v1/tickets?state=active&limit=100")), true);
  report("GET /tickets?limit=100&after=<random> (support, all states)",
         TimeGets(support, samples,
                  [&](int) { return Cat("/api/v1/tickets?limit=100&after=", random_ticket()); }),
         true);
  report("GET /tickets?limit=1000 (support, largest page)",
         TimeGets(support, samples / 4, Fixed("/api/v1/tickets?limit=1000")), true);
  report("GET /tickets?limit=100 (partner, all states)",
         TimeGets(partner, samples, Fixed("/api/v1/tickets?limit=100")), true);
  report("GET /tickets?store=<random>&state=all (support)",
         TimeGets(support, samples,
                  [&](int) { return Cat("/api/v1/tickets?state=all&store=", random_store()); }),
         true);
  report("GET /tickets?state=resolved&priority=critical&limit=100",
         TimeGets(support, samples,
                  Fixed("/api/v1/tickets?state=resolved&priority=critical&limit=100")),
         true);
  const int cli_runs = std::max(5, samples / 10);
  report("setdiag stores list (process, first 100)", TimeCli(d, cli_runs, {"stores", "list"}),
         true);
  report("setdiag tickets list (process, active, first 100)",
         TimeCli(d, cli_runs, {"tickets", "list"}), true);
  report("setdiag stores list --all (process, every store)",
         TimeCli(d, 3, {"stores", "list", "--all", "--limit", "1000"}), false);

  // /healthz idle, then while four clients read the largest pages.
  auto probe = [&](std::atomic<bool>& stop) {
    Timed t;
    setdiag::cli::ApiClient c(base, "");
    while (!stop) {
      Timed one = TimeGets(c, 1, [](int) { return std::string("/healthz"); });
      t.failures += one.failures;
      t.ms.insert(t.ms.end(), one.ms.begin(), one.ms.end());
      std::this_thread::sleep_for(10ms);
    }
    return t;
  };
  Timed idle;
  {
    std::atomic<bool> stop{false};
    std::thread stopper([&] {
      std::this_thread::sleep_for(std::chrono::duration<double>(load_seconds / 2));
      stop = true;
    });
    idle = probe(stop);
    stopper.join();
  }
  report("GET /healthz, collector idle", idle, false);
  std::atomic<bool> stop{false};
  std::vector<Timed> loaded(4);
  std::vector<std::thread> loaders;
  for (size_t k = 0; k < loaded.size(); ++k) {
    loaders.emplace_back([&, k] {
      setdiag::cli::ApiClient c(base, d.support_token());
      while (!stop) {
        Timed one = TimeGets(c, 1, [k](int) {
          return std::string(k % 2 == 0 ? "/api/v1/stores?limit=1000"
                                        : "/api/v1/tickets?limit=1000&state=all");
        });
        loaded[k].failures += one.failures;
        loaded[k].ms.insert(loaded[k].ms.end(), one.ms.begin(), one.ms.end());
      }
    });
  }
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::duration<double>(load_seconds));
    stop = true;
  });
  Timed busy = probe(stop);
  stopper.join();
  for (auto& t : loaders) t.join();
  Timed pages;
  for (const auto& t : loaded) {
    pages.ms.insert(pages.ms.end(), t.ms.begin(), t.ms.end());
    pages.failures += t.failures;
  }
  report("GET /healthz while 4 clients read 1000-row pages", busy, false);
  report("  the 4 clients' pages (stores and tickets, limit=1000)", pages, false);
  const double ratio = Summarize(busy.ms).p99 / std::max(Summarize(idle.ms).p99, 0.001);
  std::printf("healthz p99 under load / idle: %.2f\n", ratio);
  results["healthz_p99_ratio"] = std::round(ratio * 100) / 100;
  const auto cpu = SampleProcess(d.collector().pid());
  std::printf("collector: %.0f MiB resident at the end\n", static_cast<double>(cpu.rss_kib) / 1024);
  std::printf("RESULT %s\n",
              json{{"lists", results}, {"all_under_200ms", all_under}}.dump().c_str());
  d.StopCollector();
  return all_under ? 0 : 1;
}

// ---- storm --------------------------------------------------------------

constexpr size_t kBatchEvents = 500;      // the agent's batch_max_events
constexpr uint64_t kMaxInflight = 5'000;  // the agent's max_inflight

struct StormAgent {
  std::string store, agent_id, token, outbox_id;
  uint64_t acked = 0;
  int sessions = 0, overloaded = 0;
  int64_t done_us = 0;
  std::vector<double> hints_s;  // retry_after of each Overloaded, seconds
};

// One agent's whole life in the storm on its own thread: sessions until
// every event is acknowledged, with the agent's backoff between them.
void RunStormAgent(StormAgent& a, const std::string& target, uint64_t events,
                   const std::string& payload, bool old_agent, uint64_t seed) {
  setdiag::SystemClock clock;
  setdiag::Backoff backoff(setdiag::BackoffPolicy{}, clock, seed);
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL,
              1);  // one connection per agent, as with real stores
  auto channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  auto stub = v1::AgentLink::NewStub(channel);
  while (a.acked < events) {
    ++a.sessions;
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + a.token);
    auto stream = stub->Connect(&ctx);
    v1::AgentMessage hello;
    auto* h = hello.mutable_hello();
    h->set_protocol_version(1);
    h->set_store_id(a.store);
    h->set_agent_id(a.agent_id);
    h->set_agent_version("bench-storm");
    h->set_first_unacked_sequence(a.acked + 1);
    h->set_next_sequence(events + 1);
    h->set_outbox_id(a.outbox_id);
    int64_t retry_after = -1, spread = 0;
    auto overloaded = [&](const v1::CollectorMessage& msg) {
      retry_after = msg.overloaded().retry_after_ms();
      spread = msg.overloaded().retry_spread_ms();
    };
    bool ok = stream->Write(hello);
    v1::CollectorMessage m;
    ok = ok && stream->Read(&m);
    if (ok && m.has_welcome()) {
      a.acked = std::max(a.acked, m.welcome().last_committed_sequence());
      uint64_t next = a.acked + 1;
      bool writing = true;
      while (a.acked < events && writing) {
        while (next <= events && next - a.acked - 1 < kMaxInflight) {
          v1::AgentMessage b;
          const int64_t now = NowMs();
          for (size_t k = 0; k < kBatchEvents && next <= events; ++k, ++next) {
            auto* e = b.mutable_batch()->add_events();
            e->set_sequence(next);
            e->set_kind("bench.storm");
            e->set_severity(v1::SEVERITY_NORMAL);
            e->set_payload(payload);
            e->set_detected_at_ms(now);
          }
          if (!stream->Write(b)) {
            writing = false;
            break;
          }
        }
        if (!writing || !stream->Read(&m)) break;
        if (m.has_ack()) a.acked = std::max(a.acked, m.ack().up_to_sequence());
        if (m.has_overloaded()) {
          overloaded(m);
          break;
        }
      }
    } else if (ok && m.has_overloaded()) {
      overloaded(m);
    }
    stream->WritesDone();
    while (stream->Read(&m)) {
      if (m.has_ack()) a.acked = std::max(a.acked, m.ack().up_to_sequence());
      if (m.has_overloaded()) overloaded(m);
    }
    grpc::Status st = stream->Finish();
    if (a.acked >= events) break;
    int64_t delay;
    if (retry_after >= 0 || st.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      ++a.overloaded;
      if (retry_after >= 0) a.hints_s.push_back(static_cast<double>(retry_after) / 1000.0);
      // 0.1.0: the 15 s floor with jitter that only shortened the delay, so
      // every agent came back at 15 s exactly.
      delay = old_agent ? 15'000 : backoff.Overloaded(std::max<int64_t>(0, retry_after), spread);
    } else {
      delay = backoff.Failed();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(delay));
  }
  a.done_us = NowUs();
}

int Storm(int agents, int events, bool old_agents) {
  if (agents <= 0 || events <= 0) throw std::runtime_error("--agents and --events must be > 0");
  Deployment d(old_agents ? "bench-storm-old" : "bench-storm");
  QuietCollector(d);
  std::vector<StormAgent> fleet(static_cast<size_t>(agents));
  {
    // Tokens through the collector's own storage code, straight into its
    // database: 1,000 `token create` processes would outlast the storm.
    auto db = sql::Db::Open(DbPath(d));
    Check(db.status(), "open");
    std::mt19937_64 rng(7);
    for (int i = 0; i < agents; ++i) {
      StormAgent& a = fleet[static_cast<size_t>(i)];
      a.store = StoreId(i);
      a.agent_id = Cat("store-", a.store, "-storm");
      a.outbox_id = Cat("ob", rng(), rng());
      auto t = setdiag::collector::CreateStoreToken(*db, a.store, "bench", NowMs());
      Check(t.status(), "token");
      a.token = t->secret;
    }
  }
  d.StartCollector();
  const std::string target = Cat("127.0.0.1:", d.grpc_port());
  // A payload the size of a typical till or loading observation. No
  // "state": these are not condition changes (1,000 raises of one condition
  // per store would measure the ticket engine's updates, not the drain).
  const std::string payload =
      json{{"tills_total", 20}, {"stopped", {3, 7, 11}}, {"note", std::string(160, 'x')}}.dump();
  std::printf("storm: %d agents with %d events each reconnect at once (%s agents)\n", agents,
              events, old_agents ? "0.1.0" : "today's");
  std::fflush(stdout);
  const double cpu0 = SampleProcess(d.collector().pid()).cpu_s;
  std::barrier start(agents + 1);
  std::vector<std::thread> threads;
  threads.reserve(fleet.size());
  for (size_t i = 0; i < fleet.size(); ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      RunStormAgent(fleet[i], target, static_cast<uint64_t>(events), payload, old_agents, 1000 + i);
    });
  }
  start.arrive_and_wait();
  const int64_t t0 = NowUs();
  for (auto& t : threads) t.join();
  const int64_t t1 = NowUs();
  const double cpu1 = SampleProcess(d.collector().pid()).cpu_s;
  const double drain_s = static_cast<double>(t1 - t0) / 1e6;
  std::vector<double> done_s;
  int sessions = 0, overloaded = 0, turned_away = 0;
  for (const auto& a : fleet) {
    done_s.push_back(static_cast<double>(a.done_us - t0) / 1e6);
    sessions += a.sessions;
    overloaded += a.overloaded;
    turned_away += a.overloaded > 0 ? 1 : 0;
  }
  // Nothing lost, nothing twice: each agent's 1..events, once.
  auto db = sql::Db::Open(DbPath(d));
  Check(db.status(), "open");
  auto q = db->Prepare(
      "SELECT COUNT(*), COALESCE(SUM(n = ?1 AND lo = 1 AND hi = ?1), 0), COALESCE(SUM(n), 0) FROM "
      "(SELECT agent_id, COUNT(*) AS n, MIN(seq) AS lo, MAX(seq) AS hi FROM events WHERE kind = "
      "'bench.storm' "
      "GROUP BY agent_id)");
  Check(q.status(), "prepare");
  q->Bind(1, int64_t{events});
  auto row = q->Step();
  Check(row.status(), "count");
  const int64_t agents_seen = q->Int(0), agents_exact = q->Int(1), stored = q->Int(2);
  const bool exact =
      agents_seen == agents && agents_exact == agents && stored == int64_t{agents} * events;
  std::printf("storm: drained in %.2f s: %lld events stored (%s), %.0f events/s\n", drain_s,
              static_cast<long long>(stored),
              exact ? "each agent's 1..M exactly once" : "NOT EXACT",
              static_cast<double>(stored) / drain_s);
  std::printf("storm: %d sessions; %d agents were turned away (Overloaded) %d times in all\n",
              sessions, turned_away, overloaded);
  Report("storm: seconds until an agent's last event was acknowledged", done_s);
  std::vector<double> hints;
  for (const auto& a : fleet) hints.insert(hints.end(), a.hints_s.begin(), a.hints_s.end());
  Report("storm: retry_after of the Overloaded answers, s", hints);
  std::printf("storm: collector CPU %.1f s (%.0f%% of one core over the drain)\n", cpu1 - cpu0,
              100 * (cpu1 - cpu0) / drain_s);
  std::printf("RESULT %s\n", json{{"storm",
                                   {{"agents", agents},
                                    {"events", events},
                                    {"old_agents", old_agents},
                                    {"drain_s", std::round(drain_s * 100) / 100},
                                    {"stored", stored},
                                    {"exact", exact},
                                    {"sessions", sessions},
                                    {"turned_away", turned_away},
                                    {"overloaded", overloaded},
                                    {"done_s", SummaryJson(done_s)}}}}
                                 .dump()
                                 .c_str());
  d.StopCollector();
  return exact ? 0 : 1;
}

// ---- slow-reader ---------------------------------------------------------

int SlowReader(int seconds, bool small_window) {
  Deployment d("bench-slow-reader");
  QuietCollector(d);
  const std::string token = d.CreateStoreToken("S900001", "bench");
  d.StartCollector();
  const std::string target = Cat("127.0.0.1:", d.grpc_port());
  grpc::ChannelArguments args;
  if (small_window) {
    // The client's receive window stays small (no BDP probing): unread acks
    // fill it after a few KiB, and the collector's writes stall at once.
    args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 1024);
  }
  auto channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  auto stub = v1::AgentLink::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", "Bearer " + token);
  auto stream = stub->Connect(&ctx);
  v1::AgentMessage hello;
  auto* h = hello.mutable_hello();
  h->set_protocol_version(1);
  h->set_store_id("S900001");
  h->set_agent_id("store-S900001-slow");
  h->set_agent_version("bench-slow-reader");
  h->set_next_sequence(1);
  h->set_outbox_id("slowreaderoutbox");
  if (!stream->Write(hello)) throw std::runtime_error("cannot write Hello");
  std::atomic<uint64_t> sent{0};
  std::atomic<bool> stop{false};
  const std::string payload = json{{"note", std::string(200, 'y')}}.dump();
  // Writes batches for as long as the collector takes them; never reads.
  std::thread writer([&] {
    uint64_t seq = 1;
    while (!stop) {
      v1::AgentMessage b;
      for (size_t k = 0; k < kBatchEvents; ++k, ++seq) {
        auto* e = b.mutable_batch()->add_events();
        e->set_sequence(seq);
        e->set_kind("bench.slow_reader");
        e->set_severity(v1::SEVERITY_NORMAL);
        e->set_payload(payload);
        e->set_detected_at_ms(NowMs());
      }
      if (!stream->Write(b)) break;
      sent += kBatchEvents;
    }
  });
  std::printf(
      "slow-reader: one agent writes batches of %zu and never reads its acks, for %d s (%s "
      "window)\n",
      kBatchEvents, seconds, small_window ? "a small receive" : "gRPC's default receive");
  std::printf("%6s %12s %12s\n", "second", "RSS MiB", "events sent");
  std::vector<double> rss;
  double first = 0, peak = 0;
  for (int i = 0; i <= seconds; ++i) {
    const auto s = SampleProcess(d.collector().pid());
    const double mib = static_cast<double>(s.rss_kib) / 1024;
    if (i == 0) first = mib;
    peak = std::max(peak, mib);
    rss.push_back(mib);
    if (i % 5 == 0)
      std::printf("%6d %12.1f %12llu\n", i, mib, static_cast<unsigned long long>(sent.load()));
    std::fflush(stdout);
    std::this_thread::sleep_for(1s);
  }
  stop = true;
  ctx.TryCancel();
  writer.join();
  // What the collector did with the stream: closed it (never read) or not.
  const std::string log = d.collector().Log();
  const bool closed = log.find("has not read what the collector sent") != std::string::npos;
  std::printf("slow-reader: the collector %s the stream for not reading\n",
              closed ? "closed" : "did not close");
  std::printf(
      "slow-reader: RSS %.1f MiB at the start, %.1f MiB at most, %.1f MiB at the end; %llu events "
      "sent\n",
      first, peak, rss.back(), static_cast<unsigned long long>(sent.load()));
  auto db = sql::Db::Open(DbPath(d));
  Check(db.status(), "open");
  auto count = db->QueryInt("SELECT COUNT(*) FROM events WHERE store_id = 'S900001'");
  Check(count.status(), "count");
  const auto stored = static_cast<size_t>(*count);
  std::printf("slow-reader: %zu of them stored (committed) by the collector\n", stored);
  std::printf("RESULT %s\n", json{{"slow_reader",
                                   {{"seconds", seconds},
                                    {"small_window", small_window},
                                    {"stored", stored},
                                    {"rss_first_mib", first},
                                    {"rss_peak_mib", peak},
                                    {"rss_last_mib", rss.back()},
                                    {"events_sent", sent.load()}}}}
                                 .dump()
                                 .c_str());
  d.StopCollector();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"setdiag collector load benchmarks (docs/benchmarks.md, \"Collector under load\")"};
  app.require_subcommand(1);
  int stores = 10'000, tickets = 100'000, partners = 20, samples = 200;
  double load_seconds = 20;
  auto* lists = app.add_subcommand(
      "lists", "Store and ticket lists with many stores and tickets; /healthz meanwhile");
  lists->add_option("--stores", stores)->capture_default_str();
  lists->add_option("--tickets", tickets)->capture_default_str();
  lists->add_option("--partners", partners)->capture_default_str();
  lists->add_option("--samples", samples, "Requests per measured series")->capture_default_str();
  lists
      ->add_option("--load-seconds", load_seconds,
                   "How long the four clients read while /healthz is measured")
      ->capture_default_str();
  int agents = 1000, events = 1000;
  bool old_agents = false;
  auto* storm = app.add_subcommand("storm", "Agents with queued events reconnecting at once");
  storm->add_option("--agents", agents)->capture_default_str();
  storm->add_option("--events", events, "Events waiting in each agent's outbox")
      ->capture_default_str();
  storm->add_flag("--old-agents", old_agents, "Agents wait 15 s after Overloaded, as 0.1.0 did");
  int seconds = 90;
  bool small_window = false;
  auto* slow =
      app.add_subcommand("slow-reader", "Collector memory while an agent never reads its acks");
  slow->add_option("--seconds", seconds)->capture_default_str();
  slow->add_flag("--small-window", small_window, "The client's receive window stays a few KiB");
  CLI11_PARSE(app, argc, argv);
  try {
    if (lists->parsed()) return Lists(stores, tickets, partners, samples, load_seconds);
    if (storm->parsed()) return Storm(agents, events, old_agents);
    if (slow->parsed()) return SlowReader(seconds, small_window);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_collector_load: %s\n", e.what());
    return 2;
  }
  return 0;
}
