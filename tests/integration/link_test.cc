// The agent-collector link with real processes on loopback: nothing detected
// is ever lost, nothing is stored twice, and bad peers are turned away while
// everyone else keeps streaming.

#include <fcntl.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <thread>

#include "common/sqlite.h"
#include "setdiag/v1/link.grpc.pb.h"
#include "tests/integration/harness.h"
#include "tests/integration/latency_proxy.h"
#include "tests/integration/raw_link.h"

namespace setdiag::testing {
namespace {

using namespace std::chrono_literals;
namespace v1 = ::setdiag::v1;
using json = nlohmann::json;

// Highest sequence the collector committed for the agents of a store.
uint64_t Committed(Deployment& d, const std::string& store) {
  auto r = d.Cli({"--json", "agents", "list", "--store", store});
  if (r.exit_code != 0) {
    std::cerr << "setdiag agents list failed (" << r.exit_code << "): " << r.err << "\n";
    return 0;
  }
  uint64_t best = 0;
  if (std::getenv("SETDIAG_DEBUG")) std::cerr << r.out << "\n";
  json body = json::parse(r.out);
  for (const auto& a : body["agents"]) {
    best = std::max(best, a["last_committed_sequence"].get<uint64_t>());
  }
  return best;
}

// Asserts the store's events are exactly sequences 1..n of `kind`, each once,
// in arrival order.
void ExpectExactlyOnceInOrder(const json& events, const std::string& kind, uint64_t n) {
  std::vector<uint64_t> seqs;
  for (const auto& e : events) {
    if (e["kind"] == kind) seqs.push_back(e["sequence"].get<uint64_t>());
  }
  ASSERT_EQ(seqs.size(), n);
  std::set<uint64_t> unique(seqs.begin(), seqs.end());
  EXPECT_EQ(unique.size(), n) << "an event was stored twice";
  for (size_t i = 0; i < seqs.size(); ++i) {
    ASSERT_EQ(seqs[i], i + 1) << "arrival order broken at position " << i;
  }
}

TEST(Link, CollectorDownWhileAgentRecordsTenThousandEvents) {
  Deployment d("down");
  auto& agent = d.AddAgent("1001", d.CreateStoreToken("1001", "acme"));
  d.StartAgent(agent);  // collector is not running: the agent keeps retrying
  d.Emit(agent, "test.offline", "normal", 10'000,
         R"({"note":"recorded while the collector was down"})");
  EXPECT_EQ(d.AgentStatus(agent)["depth"], 10'000);
  d.StartCollector();
  ASSERT_TRUE(WaitFor([&] { return Committed(d, "1001") >= 10'000; }, 120s))
      << agent.process->Log();
  ExpectExactlyOnceInOrder(d.Events("1001"), "test.offline", 10'000);
  // Acknowledged events leave the outbox.
  EXPECT_TRUE(WaitFor([&] { return d.AgentStatus(agent)["depth"] == 0; }, 20s));
}

// A store on a slow link: 1.5 s each way (3 s round trip, a congested EDGE
// or 3G modem), so the HTTP/2 handshake alone takes several seconds. The
// agent used to give gRPC at most 2 s per connection attempt (gRPC reads its
// minimum connect timeout from GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, which was
// 200 ms) and such a store never connected; it gets 20 s now.
TEST(Link, AnAgentOnALinkWithAThreeSecondRoundTripConnectsAndDelivers) {
  Deployment d("slowlink");
  d.StartCollector();
  LatencyProxy proxy(d.grpc_port(), 1500ms);
  auto& agent = d.AddAgent("1003", d.CreateStoreToken("1003", "acme"));
  std::string cfg = ReadFile(agent.config_path);
  const std::string direct = "127.0.0.1:" + std::to_string(d.grpc_port()) + "\"";
  ASSERT_NE(cfg.find(direct), std::string::npos) << cfg;
  cfg.replace(cfg.find(direct), direct.size(), "127.0.0.1:" + std::to_string(proxy.port()) + "\"");
  WriteFile(agent.config_path, cfg);
  d.StartAgent(agent);
  d.Emit(agent, "test.slow_link", "normal", 3, R"({"note":"over a slow link"})");
  ASSERT_TRUE(WaitFor([&] { return Committed(d, "1003") >= 3; }, 60s))
      << "connections through the proxy: " << proxy.connections() << "\n"
      << agent.process->Log();
  ExpectExactlyOnceInOrder(d.Events("1003"), "test.slow_link", 3);
}

TEST(Link, AgentKilledDuringSendingLosesNothingAndSendsNothingTwice) {
  Deployment d("killagent");
  auto& agent = d.AddAgent("1002", d.CreateStoreToken("1002", "acme"));
  d.Emit(agent, "test.burst", "normal", 20'000);
  d.StartCollector();
  d.StartAgent(agent);
  ASSERT_TRUE(WaitFor([&] { return Committed(d, "1002") > 0; }, 60s, 5ms)) << agent.process->Log();
  agent.process->Kill();
  uint64_t at_kill = Committed(d, "1002");
  EXPECT_LT(at_kill, 20'000u) << "the agent finished before it could be killed mid-stream";
  d.StartAgent(agent);
  ASSERT_TRUE(WaitFor([&] { return Committed(d, "1002") >= 20'000; }, 120s))
      << agent.process->Log();
  ExpectExactlyOnceInOrder(d.Events("1002"), "test.burst", 20'000);
  EXPECT_TRUE(WaitFor([&] { return d.AgentStatus(agent)["depth"] == 0; }, 20s));
}

TEST(Link, CollectorKilledDuringIngestLosesNothingAndStoresNothingTwice) {
  Deployment d("killcollector");
  auto& agent = d.AddAgent("1003", d.CreateStoreToken("1003", "acme"));
  d.Emit(agent, "test.burst", "normal", 20'000);
  d.StartCollector();
  d.StartAgent(agent);
  ASSERT_TRUE(WaitFor([&] { return Committed(d, "1003") > 0; }, 60s, 5ms));
  d.KillCollector();
  d.StartCollector();
  ASSERT_TRUE(WaitFor([&] { return Committed(d, "1003") >= 20'000; }, 120s))
      << agent.process->Log();
  ExpectExactlyOnceInOrder(d.Events("1003"), "test.burst", 20'000);
  EXPECT_NE(d.collector().Log().find("resume after"), std::string::npos);
}

v1::AgentMessage Batch(uint64_t seq, v1::Severity severity, std::string payload = "{}") {
  v1::AgentMessage m;
  auto* e = m.mutable_batch()->add_events();
  e->set_sequence(seq);
  e->set_kind("test.raw");
  e->set_severity(severity);
  e->set_detected_at_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count());
  e->set_payload(std::move(payload));
  return m;
}

TEST(Link, WrongTokenAndStoreMismatchAreRejectedWhileOthersKeepWorking) {
  Deployment d("auth");
  std::string token_a = d.CreateStoreToken("2001", "acme");
  d.CreateStoreToken("2002", "acme");
  d.StartCollector();
  auto& good = d.AddAgent("2001", token_a);
  d.StartAgent(good);

  {  // unknown token
    RawLink link(d.grpc_port(), "sdst_not-a-real-token");
    link.Write(Hello("2001", "intruder"));
    auto st = link.Finish();
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAUTHENTICATED) << st.error_message();
  }
  {  // no token at all
    RawLink link(d.grpc_port(), "");
    link.Write(Hello("2001", "anonymous"));
    EXPECT_EQ(link.Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  {  // a real token of store 2001 claiming to be store 2002
    RawLink link(d.grpc_port(), token_a);
    link.Write(Hello("2002", "impostor"));
    auto st = link.Finish();
    EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED) << st.error_message();
  }
  // The same through a real agent process configured for the wrong store.
  auto& impostor = d.AddAgent("2001", token_a, "", std::string("2002"));
  d.StartAgent(impostor);
  d.Emit(good, "test.good", "normal", 50);
  d.Emit(impostor, "test.impostor", "critical", 5);
  ASSERT_TRUE(WaitFor([&] { return Committed(d, "2001") >= 50; }, 30s)) << good.process->Log();
  ASSERT_TRUE(WaitFor(
      [&] { return impostor.process->Log().find("PERMISSION_DENIED") != std::string::npos; }, 30s))
      << impostor.process->Log();
  EXPECT_EQ(d.EventCount("2002"), 0u);
  std::string log = d.collector().Log();
  EXPECT_NE(log.find("claiming store 2002"), std::string::npos) << log;
  EXPECT_EQ(log.find(token_a), std::string::npos) << "a token leaked into the collector log";
  EXPECT_EQ(good.process->Log().find(token_a), std::string::npos)
      << "a token leaked into the agent log";

  // Revocation takes effect at the next connect.
  auto r = RunCommand({SETDIAG_COLLECTOR_BIN, "--config", d.collector_config(), "token", "revoke",
                       "--store", "2001"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  RawLink after(d.grpc_port(), token_a);
  after.Write(Hello("2001", "after-revoke"));
  EXPECT_EQ(after.Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
}

TEST(Link, MalformedAndOversizedFramesGetAClearStatus) {
  Deployment d("frames");
  std::string token = d.CreateStoreToken("3001", "acme");
  d.StartCollector();
  {  // events before Hello
    RawLink link(d.grpc_port(), token);
    link.Write(Batch(1, v1::SEVERITY_NORMAL));
    auto st = link.Finish();
    EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_NE(st.error_message().find("Hello"), std::string::npos) << st.error_message();
  }
  {  // severity missing
    RawLink link(d.grpc_port(), token);
    link.Write(Hello("3001", "raw-1"));
    link.Write(Batch(1, v1::SEVERITY_UNSPECIFIED));
    auto st = link.Finish();
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(st.error_message().find("severity"), std::string::npos) << st.error_message();
  }
  {  // payload that is not JSON
    RawLink link(d.grpc_port(), token);
    link.Write(Hello("3001", "raw-2"));
    link.Write(Batch(1, v1::SEVERITY_NORMAL, "\x01\x02 not json"));
    auto st = link.Finish();
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(st.error_message().find("JSON"), std::string::npos) << st.error_message();
  }
  {  // a frame over the 4 MiB limit
    RawLink link(d.grpc_port(), token);
    link.Write(Hello("3001", "raw-3"));
    link.Write(
        Batch(1, v1::SEVERITY_NORMAL, "{\"x\":\"" + std::string(5 * 1024 * 1024, 'a') + "\"}"));
    auto st = link.Finish();
    EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << st.error_message();
  }
  {  // bytes that are not a protobuf message at all
    auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(d.grpc_port()),
                                       grpc::InsecureChannelCredentials());
    grpc::GenericStub generic(channel);
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + token);
    grpc::CompletionQueue cq;
    auto call = generic.PrepareCall(&ctx, "/setdiag.v1.AgentLink/Connect", &cq);
    void* tag = nullptr;
    bool ok = false;
    call->StartCall(reinterpret_cast<void*>(1));
    cq.Next(&tag, &ok);
    grpc::Slice garbage(std::string("\xff\xff\xff\xff garbage \x07\x08", 15));
    grpc::ByteBuffer buf(&garbage, 1);
    call->Write(buf, reinterpret_cast<void*>(2));
    cq.Next(&tag, &ok);
    call->WritesDone(reinterpret_cast<void*>(3));
    cq.Next(&tag, &ok);
    grpc::Status st;
    call->Finish(&st, reinterpret_cast<void*>(4));
    while (cq.Next(&tag, &ok) && tag != reinterpret_cast<void*>(4)) {
    }
    EXPECT_FALSE(st.ok());
    EXPECT_NE(st.error_code(), grpc::StatusCode::UNAVAILABLE) << "the collector must not crash";
    cq.Shutdown();
    while (cq.Next(&tag, &ok)) {
    }
  }
  // After all of that the collector still serves a real agent.
  auto& agent = d.AddAgent("3001", token);
  d.Emit(agent, "test.after-garbage", "normal", 10);
  d.StartAgent(agent);
  ASSERT_TRUE(WaitFor([&] { return Committed(d, "3001") >= 10; }, 30s)) << agent.process->Log();
  EXPECT_TRUE(d.collector().Running());
}

TEST(Link, FullOutboxEvictsOrdinaryEventsFirstAndTheGapRecordArrives) {
  Deployment d("full");
  auto& agent =
      d.AddAgent("4001", d.CreateStoreToken("4001", "acme"), "[outbox]\nmax_bytes = \"64KiB\"\n");
  std::string filler = R"({"filler":")" + std::string(500, 'x') + R"("})";
  d.Emit(agent, "test.critical", "critical", 40, filler);
  d.Emit(agent, "test.ordinary", "normal", 300, filler);
  d.StartCollector();
  d.StartAgent(agent);
  ASSERT_TRUE(WaitFor(
      [&] {
        auto s = d.AgentStatus(agent);
        return s["depth"] == 0 && Committed(d, "4001") > 0;
      },
      60s))
      << agent.process->Log();

  json events = d.Events("4001");
  std::set<uint64_t> present;
  size_t critical = 0;
  std::set<uint64_t> reported_lost;
  int64_t gap_count = 0;
  for (const auto& e : events) {
    present.insert(e["sequence"].get<uint64_t>());
    if (e["kind"] == "test.critical") ++critical;
    if (e["kind"] == "setdiag.gap") {
      EXPECT_EQ(e["payload"]["reason"], "outbox_full");
      EXPECT_EQ(e["payload"]["by_severity"].value("critical", 0), 0)
          << "a critical event was evicted";
      gap_count += e["payload"]["count"].get<int64_t>();
      for (const auto& range : e["payload"]["sequences"]) {
        for (uint64_t s = range[0].get<uint64_t>(); s <= range[1].get<uint64_t>(); ++s)
          reported_lost.insert(s);
      }
    }
  }
  EXPECT_EQ(critical, 40u) << "every critical event must survive";
  ASSERT_GT(gap_count, 0) << "nothing was evicted: the test did not fill the outbox";
  // Every sequence the agent ever assigned is either stored or named in a gap.
  uint64_t max_seq = *present.rbegin();
  for (uint64_t s = 1; s <= max_seq; ++s) {
    EXPECT_TRUE(present.contains(s) != reported_lost.contains(s)) << "sequence " << s;
  }
  EXPECT_EQ(static_cast<size_t>(gap_count), reported_lost.size());
}

TEST(Link, CorruptOutboxIsMovedAsideAndReported) {
  Deployment d("corrupt");
  auto& agent = d.AddAgent("5001", d.CreateStoreToken("5001", "acme"));
  std::filesystem::create_directories(agent.state_dir);
  WriteFile(agent.state_dir + "/outbox.db", std::string(8192, '\x5a'));
  d.StartCollector();
  d.StartAgent(agent);
  ASSERT_TRUE(WaitFor(
      [&] {
        for (const auto& e : d.Events("5001")) {
          if (e["kind"] == "agent.outbox_reset") return true;
        }
        return false;
      },
      30s))
      << agent.process->Log();
  bool moved = false;
  for (const auto& f : std::filesystem::directory_iterator(agent.state_dir)) {
    if (f.path().filename().string().starts_with("outbox.db.corrupt-")) moved = true;
  }
  EXPECT_TRUE(moved);
  EXPECT_TRUE(agent.process->Running());
}

TEST(Link, FreshOutboxIsRenumberedAboveWhatTheCollectorHas) {
  Deployment d("renumber");
  auto& agent = d.AddAgent("6001", d.CreateStoreToken("6001", "acme"));
  d.Emit(agent, "test.before", "normal", 100);
  d.StartCollector();
  d.StartAgent(agent);
  ASSERT_TRUE(WaitFor([&] { return Committed(d, "6001") >= 100; }, 30s));
  agent.process->Stop();
  // The outbox is lost (disk replaced); the agent keeps its id and starts over.
  std::filesystem::remove(agent.state_dir + "/outbox.db");
  std::filesystem::remove(agent.state_dir + "/outbox.db-wal");
  std::filesystem::remove(agent.state_dir + "/outbox.db-shm");
  d.Emit(agent, "test.after", "normal", 30);
  d.StartAgent(agent);
  ASSERT_TRUE(WaitFor([&] { return Committed(d, "6001") >= 130; }, 30s)) << agent.process->Log();
  size_t after = 0;
  for (const auto& e : d.Events("6001")) after += e["kind"] == "test.after";
  EXPECT_EQ(after, 30u) << "new events were mistaken for duplicates";
}

TEST(Link, TlsLinkWithServerCertificate) {
  std::string pki = MakeTempDir("pki");
  MakeTestPki(pki, "collector.test");
  Deployment d("tls", "tls_cert_file = \"" + pki + "/server.pem\"\ntls_key_file = \"" + pki +
                          "/server.key\"\n");
  auto& agent = d.AddAgent("7001", d.CreateStoreToken("7001", "acme"), "");
  // Point the agent at the CA and the certificate's name.
  std::string cfg = ReadFile(agent.config_path);
  cfg.replace(cfg.find("[backoff]"), 0,
              "ca_file = \"" + pki + "/ca.pem\"\nserver_name = \"collector.test\"\n");
  WriteFile(agent.config_path, cfg);
  d.StartCollector();
  d.Emit(agent, "test.tls", "normal", 20);
  d.StartAgent(agent);
  ASSERT_TRUE(WaitFor([&] { return Committed(d, "7001") >= 20; }, 30s)) << agent.process->Log();
  EXPECT_NE(agent.process->Log().find("(TLS)"), std::string::npos);
  {  // plaintext against the TLS port fails
    RawLink link(d.grpc_port(), "x");
    link.Write(Hello("7001", "plain"));
    EXPECT_EQ(link.Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
  }
  std::filesystem::remove_all(pki);
}

// Lines of `log` that contain every one of `parts`.
size_t CountLines(const std::string& log, const std::vector<std::string>& parts) {
  std::istringstream lines(log);
  std::string line;
  size_t n = 0;
  while (std::getline(lines, line)) {
    bool all = true;
    for (const auto& p : parts) all = all && line.find(p) != std::string::npos;
    n += all;
  }
  return n;
}

const json* CheckLine(const json& report, const std::string& id) {
  for (const auto& c : report["checks"])
    if (c["id"] == id) return &c;
  return nullptr;
}

// Issue 13: a plaintext agent (loopback, no ca_file) against a TLS port
// logged only "Socket closed", as a warning at every reconnect. It says the
// collector probably expects TLS, as an error, once (repeats are counted),
// and `check` says the same on its collector.tls line.
TEST(Link, PlaintextAgentAgainstATlsCollectorSaysItProbablyExpectsTlsAsAnError) {
  std::string pki = MakeTempDir("pki");
  MakeTestPki(pki, "collector.test");
  Deployment d("tls-plain", "tls_cert_file = \"" + pki + "/server.pem\"\ntls_key_file = \"" + pki +
                                "/server.key\"\n");
  auto& agent = d.AddAgent("7101", d.CreateStoreToken("7101", "acme"));
  d.StartCollector();
  d.StartAgent(agent);
  // Several attempts, each starting with a Hello (backoff.max is 500 ms).
  ASSERT_TRUE(
      WaitFor([&] { return CountLines(agent.process->Log(), {"uplink: hello: "}) >= 4; }, 20s))
      << agent.process->Log();
  const std::string log = agent.process->Log();
  EXPECT_EQ(CountLines(log, {"ERROR uplink: link to 127.0.0.1:" + std::to_string(d.grpc_port()),
                             "it probably expects TLS; set collector.ca_file", "Socket closed"}),
            1u)
      << log;
  EXPECT_GE(CountLines(log, {"DEBUG uplink:", "the same TLS failure"}), 2u)
      << "repeats are counted:\n"
      << log;
  EXPECT_EQ(CountLines(log, {"WARN", "uplink: link to"}), 0u) << "a TLS mismatch is no warning:\n"
                                                              << log;

  CommandResult r = RunCommand({SETDIAG_AGENT_BIN, "--config", agent.config_path, "check",
                                "--timeout", AgentCheckTimeout(), "--json"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  json report = json::parse(r.out);
  const json* tls = CheckLine(report, "collector.tls");
  ASSERT_NE(tls, nullptr) << report.dump(2);
  EXPECT_EQ((*tls)["verdict"], "fail");
  EXPECT_NE((*tls)["text_en"].get<std::string>().find("it probably expects TLS"), std::string::npos)
      << tls->dump(2);
  EXPECT_NE((*tls)["text_ru"].get<std::string>().find("вероятно, он ждёт TLS"), std::string::npos)
      << tls->dump(2);
  EXPECT_NE((*tls)["fix_en"].get<std::string>().find("collector.ca_file"), std::string::npos)
      << tls->dump(2);
  EXPECT_EQ(CheckLine(report, "collector"), nullptr) << "not the firewall hint: " << report.dump(2);
  std::filesystem::remove_all(pki);
}

// The reverse: a TLS agent against a plaintext port.
TEST(Link, TlsAgentAgainstAPlaintextCollectorSaysItDoesNotSpeakTls) {
  std::string pki = MakeTempDir("pki");
  MakeTestPki(pki, "collector.test");
  Deployment d("plain-tls");
  auto& agent = d.AddAgent("7102", d.CreateStoreToken("7102", "acme"));
  std::string cfg = ReadFile(agent.config_path);
  cfg.replace(cfg.find("[backoff]"), 0,
              "ca_file = \"" + pki + "/ca.pem\"\nserver_name = \"collector.test\"\n");
  WriteFile(agent.config_path, cfg);
  d.StartCollector();
  d.StartAgent(agent);
  ASSERT_TRUE(
      WaitFor([&] { return CountLines(agent.process->Log(), {"uplink: hello: "}) >= 4; }, 20s))
      << agent.process->Log();
  const std::string log = agent.process->Log();
  EXPECT_EQ(
      CountLines(log, {"ERROR uplink: link to", "the collector does not speak TLS on this port"}),
      1u)
      << log;
  EXPECT_GE(CountLines(log, {"DEBUG uplink:", "the same TLS failure"}), 2u) << log;
  EXPECT_EQ(CountLines(log, {"WARN", "uplink: link to"}), 0u) << log;

  CommandResult r = RunCommand({SETDIAG_AGENT_BIN, "--config", agent.config_path, "check",
                                "--timeout", AgentCheckTimeout(), "--json"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  json report = json::parse(r.out);
  const json* tls = CheckLine(report, "collector.tls");
  ASSERT_NE(tls, nullptr) << report.dump(2);
  EXPECT_NE((*tls)["text_en"].get<std::string>().find("does not speak TLS on this port"),
            std::string::npos)
      << tls->dump(2);
  EXPECT_NE((*tls)["text_ru"].get<std::string>().find("не использует TLS"), std::string::npos)
      << tls->dump(2);
  std::filesystem::remove_all(pki);
}

// Issue 13: a CA file that holds no certificate (garbage, or the private key
// copied instead) made the agent retry forever with "empty address list".
TEST(Link, ACaFileWithoutACertificateExitsTwoNamingKeyFileAndWhatIsWrong) {
  Deployment d("badca");
  auto& agent = d.AddAgent("7103", "sdst_unused");
  const std::string ca = d.dir() + "/ca.pem";
  std::string cfg = ReadFile(agent.config_path);
  cfg.replace(cfg.find("[backoff]"), 0, "ca_file = \"" + ca + "\"\n");
  WriteFile(agent.config_path, cfg);
  for (const std::string& content :
       {std::string("not a certificate\n"),
        std::string("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n")}) {
    WriteFile(ca, content);
    d.StartAgent(agent);
    ASSERT_TRUE(WaitFor([&] { return !agent.process->Running(); }, 10s))
        << "the agent runs on with " << ca << ":\n"
        << agent.process->Log();
    EXPECT_EQ(agent.process->Stop(), 2);
    const std::string log = agent.process->Log();
    EXPECT_NE(log.find("key 'collector.ca_file': " + ca + " holds no PEM certificate"),
              std::string::npos)
        << log;
    CommandResult r = RunCommand({SETDIAG_AGENT_BIN, "--config", agent.config_path, "check",
                                  "--timeout", AgentCheckTimeout()});
    EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
    EXPECT_NE(r.err.find("key 'collector.ca_file': " + ca + " holds no PEM certificate"),
              std::string::npos)
        << r.err;
    std::filesystem::remove(agent.log_path);
  }
}

// Issue 13: the `setdiag` CLI warns about an API token file others can read.
TEST(Link, CliWarnsWhenItsTokenFileIsOpenToOthers) {
  Deployment d("clitoken");
  d.StartCollector();
  const std::string home = d.dir() + "/home";
  std::filesystem::create_directories(home + "/.config/setdiag");
  const std::string token = home + "/.config/setdiag/token";
  WriteFile(token, d.support_token() + "\n");
  auto cli = [&] {
    return RunCommand({"/usr/bin/env", "-u", "SETDIAG_TOKEN", "HOME=" + home, SETDIAG_CLI_BIN,
                       "--collector", "http://127.0.0.1:" + std::to_string(d.http_port()), "agents",
                       "list"});
  };
  chmod(token.c_str(), 0644);
  CommandResult r = cli();
  EXPECT_EQ(r.exit_code, 0) << r.err << "a warning, the command still runs";
  EXPECT_NE(r.err.find("setdiag: warning: the API token file " + token +
                       " is open to group or others (mode 0644)"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("chmod 600 " + token), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find(d.support_token()), std::string::npos) << "the token is never printed";
  chmod(token.c_str(), 0600);
  r = cli();
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.find("warning"), std::string::npos) << r.err;
}

TEST(Link, BadConfigNamesKeyAndLineAndExitsTwo) {
  std::string dir = MakeTempDir("badcfg");
  WriteFile(dir + "/agent.toml",
            "[agent]\nstore_id = \"1\"\nstatus_interval = \"soon\"\n[collector]\naddress = "
            "\"127.0.0.1:1\"\ntoken = \"t\"\n");
  auto r = RunCommand({SETDIAG_AGENT_BIN, "--config", dir + "/agent.toml", "status"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("agent.toml:3"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("agent.status_interval"), std::string::npos) << r.err;
  // Issue 13: a roster address that is no IPv4 address.
  WriteFile(dir + "/roster.toml",
            "[agent]\nstore_id = \"1\"\n[collector]\naddress = \"127.0.0.1:1\"\ntoken = \"t\"\n"
            "[tills.roster]\n7 = \"999.1.1.1\"\n");
  r = RunCommand({SETDIAG_AGENT_BIN, "--config", dir + "/roster.toml", "status"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("roster.toml:7: key 'tills.roster.7': '999.1.1.1' is not an IPv4 address"),
            std::string::npos)
      << r.err;

  WriteFile(dir + "/collector.toml", "[grpc]\nlisten = \"127.0.0.1:1\"\nlisten_typo = 5\n");
  r = RunCommand({SETDIAG_COLLECTOR_BIN, "--config", dir + "/collector.toml"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("collector.toml:3"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("grpc.listen_typo"), std::string::npos) << r.err;

  WriteFile(dir + "/remote.toml", "[grpc]\nlisten = \"0.0.0.0:7443\"\n");
  r = RunCommand({SETDIAG_COLLECTOR_BIN, "--config", dir + "/remote.toml"});
  EXPECT_EQ(r.exit_code, 2) << "plaintext on a public address must be refused";
  EXPECT_NE(r.err.find("tls_cert_file"), std::string::npos) << r.err;

  for (const char* bin : {SETDIAG_AGENT_BIN, SETDIAG_COLLECTOR_BIN, SETDIAG_CLI_BIN}) {
    EXPECT_EQ(RunCommand({bin, "--version"}).exit_code, 0) << bin;
    auto help = RunCommand({bin, "--help"});
    EXPECT_EQ(help.exit_code, 0) << bin;
    EXPECT_NE(help.out.find("Usage"), std::string::npos) << bin;
  }
  std::filesystem::remove_all(dir);
}

// Issue 11, item 9: the agent's state directory on a small tmpfs that fills
// up. A critical finding the disk refuses is held in memory and reaches the
// collector once space returns, with the agent's own agent.disk_full.
TEST(Link, FullStateDiskHoldsTheCriticalFindingAndDeliversItWhenSpaceReturns) {
  Deployment d("diskfull");
  const std::string mnt = d.dir() + "/small";
  std::filesystem::create_directories(mnt);
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=4m,mode=0755") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs on " << mnt << " (" << std::strerror(errno)
                 << "): the test needs root or CAP_SYS_ADMIN";
  }
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{mnt};
  // Three tills that never send a heartbeat: the majority is stopped some
  // seconds after the start, by then the disk is full.
  std::string extra =
      "[tills]\npoll_interval = \"500ms\"\nheartbeat_timeout = \"5s\"\nconfirm_window = \"1s\"\n"
      "clear_window = \"1s\"\n[tills.roster]\n1 = \"127.0.0.1\"\n2 = \"127.0.0.1\"\n3 = "
      "\"127.0.0.1\"\n"
      "[server]\ncheck = false\n";
  auto& agent = d.AddAgent("8001", d.CreateStoreToken("8001", "acme"), extra);
  std::string cfg = ReadFile(agent.config_path);
  cfg.replace(cfg.find(agent.state_dir), agent.state_dir.size(), mnt + "/state");
  agent.state_dir = mnt + "/state";
  WriteFile(agent.config_path, cfg);
  d.StartCollector();
  d.StartAgent(agent);
  ASSERT_TRUE(
      WaitFor([&] { return agent.process->Log().find("connected to") != std::string::npos; }, 20s))
      << agent.process->Log();
  // Fill the file system.
  const std::string filler = mnt + "/filler";
  {
    int fd = ::open(filler.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT_GE(fd, 0);
    std::string chunk(64 * 1024, 'f');
    while (::write(fd, chunk.data(), chunk.size()) > 0) {
    }
    std::string byte(1, 'f');
    while (::write(fd, byte.data(), 1) > 0) {
    }
    ::close(fd);
  }
  // The watch raises the condition while the disk is full (today's agent
  // logs "cannot record", this one "not yet committed").
  ASSERT_TRUE(WaitFor(
      [&] {
        std::string log = agent.process->Log();
        return log.find("tills.majority_stopped raised (critical) not yet committed") !=
                   std::string::npos ||
               log.find("cannot record tills.majority_stopped") != std::string::npos;
      },
      30s))
      << agent.process->Log();
  EXPECT_TRUE(FindEvents(d.Events("8001"), "tills.majority_stopped", "raised").empty());
  // Space returns: within seconds the held finding is committed and sent.
  std::filesystem::remove(filler);
  ASSERT_TRUE(WaitFor(
      [&] { return !FindEvents(d.Events("8001"), "tills.majority_stopped", "raised").empty(); },
      20s, 200ms))
      << agent.process->Log();
  ASSERT_TRUE(
      WaitFor([&] { return !FindEvents(d.Events("8001"), "agent.disk_full", "cleared").empty(); },
              20s, 200ms))
      << agent.process->Log();
  EXPECT_NE(agent.process->Log().find("is full"), std::string::npos) << agent.process->Log();
  auto raised = FindEvents(d.Events("8001"), "agent.disk_full", "raised");
  ASSERT_EQ(raised.size(), 1u);
  EXPECT_EQ(raised[0]["payload"]["path"], mnt + "/state");
  EXPECT_TRUE(raised[0]["payload"]["free_bytes"].is_number_integer());
  EXPECT_NE(raised[0]["payload"]["fix_en"].get<std::string>().find("Free space"),
            std::string::npos);
  EXPECT_TRUE(agent.process->Running());
  agent.process->Stop();
}

// Issue 11, item 10: the outbox file is damaged between two runs of the
// agent. What can be read comes back; the collector names the rest as a gap
// on the store and on its open tickets.
TEST(Link, CorruptOutboxBetweenRunsIsRecoveredAndTheCollectorRecordsWhatWasLost) {
  Deployment d("corruptgap");
  auto& agent = d.AddAgent("5002", d.CreateStoreToken("5002", "acme"));
  d.Emit(agent, "tills.majority_stopped", "critical", 1,
         R"({"state":"raised","episode":"ep-gap","summary_en":"3 of 3 tills stopped"})");
  d.Emit(agent, "test.sent", "normal", 49);
  d.StartCollector();
  d.StartAgent(agent);
  ASSERT_TRUE(WaitFor([&] { return Committed(d, "5002") >= 50; }, 30s)) << agent.process->Log();
  agent.process->Stop();
  d.StopCollector();
  // 100 events wait (sequences 51..150), then a page near the end is damaged.
  std::string filler = R"({"filler":")" + std::string(500, 'x') + R"("})";
  d.Emit(agent, "test.waiting", "normal", 90, filler);
  d.Emit(agent, "test.waiting-critical", "critical", 10, filler);
  const std::string outbox = agent.state_dir + "/outbox.db";
  ASSERT_FALSE(std::filesystem::exists(outbox + "-wal") &&
               std::filesystem::file_size(outbox + "-wal") > 0)
      << "the outbox must be checkpointed when no process has it open";
  const auto pages = std::filesystem::file_size(outbox) / 4096;
  ASSERT_GT(pages, 8u);
  {
    std::fstream f(outbox, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>((pages - 3) * 4096));
    std::string junk(4096, '\xff');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  d.StartCollector();
  d.StartAgent(agent);
  json gap;
  ASSERT_TRUE(WaitFor(
      [&] {
        for (const auto& e : d.Events("5002")) {
          if (e["kind"] == "setdiag.gap" && e["payload"].value("reason", "") == "outbox_reset")
            gap = e;
        }
        return !gap.is_null();
      },
      30s))
      << agent.process->Log() << d.collector().Log();
  const json& p = gap["payload"];
  EXPECT_EQ(gap["agent_id"], "(collector)");
  EXPECT_EQ(gap["severity"], "important");
  EXPECT_EQ(p["collector_last_committed_sequence"], 50);
  EXPECT_EQ(p["previous_next_sequence"], 151);
  const int64_t recovered = p["recovered_count"].get<int64_t>();
  EXPECT_GT(recovered, 0) << "most of the file was readable";
  EXPECT_EQ(p["count"].get<int64_t>() + recovered, 100) << p.dump();
  EXPECT_NE(p["summary_en"].get<std::string>().find("51.."), std::string::npos) << p.dump();
  // The recovered events arrive, marked.
  ASSERT_TRUE(WaitFor(
      [&] {
        int64_t n = 0;
        for (const auto& e : d.Events("5002")) n += e["payload"].contains("recovered_from");
        return n == recovered;
      },
      30s))
      << agent.process->Log();
  json reset;
  for (const auto& e : d.Events("5002")) {
    if (e["kind"] == "agent.outbox_reset") reset = e;
  }
  ASSERT_FALSE(reset.is_null());
  EXPECT_EQ(reset["payload"]["previous_next_sequence"], 151);
  EXPECT_EQ(reset["payload"]["reappended"], recovered);
  // The open ticket of the store says so in its timeline.
  auto list = d.Cli({"--json", "tickets", "list", "--store", "5002", "--state", "active"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  auto tickets = json::parse(list.out)["tickets"];
  ASSERT_EQ(tickets.size(), 1u) << list.out;
  auto show = d.Cli({"--json", "tickets", "show", std::to_string(tickets[0]["id"].get<int64_t>())});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  bool on_timeline = false;
  const json shown = json::parse(show.out);
  for (const auto& t : shown["timeline"]) on_timeline |= t["type"] == "gap";
  EXPECT_TRUE(on_timeline) << show.out;
}

// Issue 11, item 11: a collector whose database is damaged welcomes the
// agent and fails every batch. The agent backs off instead of reconnecting
// every few hundred milliseconds, and its log names the storage error.
TEST(Link, DamagedCollectorDatabaseSlowsTheAgentDownAndItsLogNamesTheCause) {
  Deployment d("baddb");
  auto& agent = d.AddAgent("9001", d.CreateStoreToken("9001", "acme"));
  std::string cfg = ReadFile(agent.config_path);
  cfg.replace(cfg.find("max = \"500ms\""), 13, "max = \"4s\"");
  WriteFile(agent.config_path, cfg);
  d.Emit(agent, "test.first", "normal", 1);
  d.StartCollector();
  d.StartAgent(agent);
  ASSERT_TRUE(WaitFor([&] { return Committed(d, "9001") >= 1; }, 30s)) << agent.process->Log();
  d.StopCollector();
  // Damage every page of the events table and its indexes; tokens and
  // agents stay readable, so the Hello still succeeds.
  const std::string db_path = d.dir() + "/collector/collector.db";
  std::vector<int64_t> roots;
  int64_t page_size = 0;
  {
    auto db = sql::Db::Open(db_path);
    ASSERT_TRUE(db.ok()) << db.status();
    ASSERT_TRUE(db->Exec("PRAGMA wal_checkpoint(TRUNCATE)").ok());
    auto ps = db->QueryInt("PRAGMA page_size");
    ASSERT_TRUE(ps.ok());
    page_size = *ps;
    auto st =
        db->Prepare("SELECT rootpage FROM sqlite_master WHERE tbl_name='events' AND rootpage > 0");
    ASSERT_TRUE(st.ok());
    while (true) {
      auto row = st->Step();
      ASSERT_TRUE(row.ok());
      if (!*row) break;
      roots.push_back(st->Int(0));
    }
  }
  ASSERT_GE(roots.size(), 2u);
  {
    std::fstream f(db_path, std::ios::in | std::ios::out | std::ios::binary);
    std::string junk(static_cast<size_t>(page_size), '\xff');
    for (int64_t page : roots) {
      f.seekp(static_cast<std::streamoff>((page - 1) * page_size));
      f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
    }
  }
  d.Emit(agent, "test.second", "normal", 5);
  const size_t log_before = agent.process->Log().size();
  d.StartCollector();
  std::this_thread::sleep_for(8s);  // the measurement: reconnects in 8 s
  std::string log = agent.process->Log().substr(log_before);
  size_t sessions = 0;
  for (size_t pos = log.find("connected to"); pos != std::string::npos;
       pos = log.find("connected to", pos + 1)) {
    ++sessions;
  }
  EXPECT_GE(sessions, 2u) << log;
  EXPECT_LE(sessions, 10u) << "the agent must back off after sessions that fail at once:\n" << log;
  EXPECT_NE(log.find("collector storage failed"), std::string::npos) << log;
  EXPECT_NE(log.find("malformed"), std::string::npos) << "the agent's log names SQLite's error:\n"
                                                      << log;
  EXPECT_EQ(log.find("CANCELLED"), std::string::npos) << log;
  // The collector logs the same error once per 10 s, not once per attempt.
  std::string clog = d.collector().Log();
  size_t errors = 0;
  for (size_t pos = clog.find("storing a batch failed"); pos != std::string::npos;
       pos = clog.find("storing a batch failed", pos + 1)) {
    ++errors;
  }
  EXPECT_LE(errors, 2u) << clog;
}

}  // namespace
}  // namespace setdiag::testing
