// The collector closes streams that hold a connection and say nothing: no
// Hello within ingest.hello_timeout, or nothing at all (not even the status
// an agent sends every status interval) for ingest.idle_timeout. A stream
// that keeps talking stays open. Real collector, raw gRPC clients.

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/sqlite.h"
#include "common/strings.h"
#include "setdiag/v1/link.grpc.pb.h"
#include "tests/integration/harness.h"
#include "tests/integration/raw_link.h"

namespace setdiag::testing {
namespace {

namespace v1 = ::setdiag::v1;
using namespace std::chrono_literals;

// Also: Overloaded answers (LinkOverload) with the queue held full.

// A collector with short timeouts: no Hello within 1 s, nothing for 2 s.
std::string ShortTimeouts(Deployment& d) {
  std::string cfg = ReadFile(d.collector_config());
  const std::string section = "[ingest]\n";
  auto at = cfg.find(section);
  if (at == std::string::npos) throw std::runtime_error("no [ingest] in the test config");
  cfg.insert(at + section.size(), "hello_timeout = \"1s\"\nidle_timeout = \"2s\"\n");
  WriteFile(d.collector_config(), cfg);
  return cfg;
}

// A small receive window and no BDP probing: a client that does not read
// fills it after a few KiB of replies.
grpc::ChannelArguments SmallWindow() {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 1024);
  return args;
}

v1::AgentMessage Status() {
  v1::AgentMessage m;
  m.mutable_status();
  return m;
}

TEST(LinkTimeouts, AStreamThatSendsNoHelloIsClosedAndSaysWhy) {
  Deployment d("hello-timeout");
  const std::string token = d.CreateStoreToken("8101", "acme");
  ShortTimeouts(d);
  d.StartCollector();
  RawLink silent(d.grpc_port(), token, {}, 30s);
  const auto started = std::chrono::steady_clock::now();
  grpc::Status st = silent.Ended();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << st.error_message();
  EXPECT_NE(st.error_message().find("no Hello within 1 s of connecting"), std::string::npos)
      << st.error_message();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 25s)
      << "closed by the collector, not by the client's deadline";
  EXPECT_NE(d.collector().Log().find("no Hello within 1 s; closing the stream"), std::string::npos)
      << d.collector().Log();
}

TEST(LinkTimeouts, AnAgentThatFallsSilentAfterHelloIsClosedOneThatTalksStaysOpen) {
  Deployment d("idle-timeout");
  const std::string token = d.CreateStoreToken("8102", "acme");
  ShortTimeouts(d);
  d.StartCollector();

  RawLink talking(d.grpc_port(), token, {}, 30s);
  ASSERT_TRUE(talking.Write(Hello("8102", "agent-talking")));
  v1::CollectorMessage welcome;
  ASSERT_TRUE(talking.Read(&welcome));
  ASSERT_TRUE(welcome.has_welcome());
  // Twice the idle timeout, a status every 300 ms: the stream stays open.
  const auto until = std::chrono::steady_clock::now() + 4s;
  while (std::chrono::steady_clock::now() < until) {
    ASSERT_TRUE(talking.Write(Status())) << "closed although it talks";
    std::this_thread::sleep_for(300ms);  // the agent's pace, not a wait for a result
  }
  // Then it falls silent, and is closed.
  grpc::Status st = talking.Ended();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << st.error_message();
  EXPECT_NE(st.error_message().find("nothing received for 2 s"), std::string::npos)
      << st.error_message();
  EXPECT_NE(d.collector().Log().find("agent agent-talking (store 8102): nothing received for 2 s"),
            std::string::npos)
      << d.collector().Log();
}

v1::AgentMessage Batch(uint64_t seq) {
  v1::AgentMessage m;
  auto* e = m.mutable_batch()->add_events();
  e->set_sequence(seq);
  e->set_kind("test.unread");
  e->set_severity(v1::SEVERITY_INFO);
  e->set_detected_at_ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count());
  e->set_payload("{}");
  return m;
}

// Issue 13: a client that sends batches and never reads its acks used to be
// read and committed without end while every ack queued in the collector's
// memory. Now the collector stops reading once 64 replies wait, and closes
// the stream when a write has not completed for the idle timeout.
TEST(LinkTimeouts, AnAgentThatNeverReadsItsAcksIsNoLongerReadAndIsClosed) {
  Deployment d("unread-acks");
  const std::string token = d.CreateStoreToken("8103", "acme");
  ShortTimeouts(d);
  d.StartCollector();
  RawLink greedy(d.grpc_port(), token, SmallWindow(), 30s);
  ASSERT_TRUE(greedy.Write(Hello("8103", "agent-greedy")));
  v1::CollectorMessage welcome;
  ASSERT_TRUE(greedy.Read(&welcome));
  constexpr uint64_t kTries = 200'000;
  uint64_t written = 0;
  while (written < kTries && greedy.Write(Batch(written + 1))) ++written;  // never reads
  EXPECT_LT(written, kTries) << "the collector kept reading a stream whose acks nobody reads";
  EXPECT_NE(d.collector().Log().find(
                "agent agent-greedy (store 8103): has not read what the collector sent"),
            std::string::npos)
      << d.collector().Log();
  const size_t stored = d.EventCount("8103");
  EXPECT_LT(stored, 20'000u) << "stored while nobody read the acks (written " << written << ")";
}

// ---- Overloaded: the collector schedules who comes back when ----

// `n` events from `first` on, in one batch.
v1::AgentMessage BigBatch(uint64_t first, size_t n) {
  v1::AgentMessage m;
  const int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  for (size_t i = 0; i < n; ++i) {
    auto* e = m.mutable_batch()->add_events();
    e->set_sequence(first + i);
    e->set_kind("test.overload");
    e->set_severity(v1::SEVERITY_NORMAL);
    e->set_detected_at_ms(now);
    e->set_payload("{}");
  }
  return m;
}

v1::AgentMessage HelloWithBacklog(const std::string& store, const std::string& agent,
                                  uint64_t next) {
  v1::AgentMessage m = Hello(store, agent);
  m.mutable_hello()->set_first_unacked_sequence(1);
  m.mutable_hello()->set_next_sequence(next);
  return m;
}

// The queue is kept full by holding SQLite's write lock from the test (the
// writer waits for it, up to its 5 s busy timeout). Three agents each send
// a batch as large as the queue: whichever arrives first fills it, the
// other two are turned away, each with its own slot after the previous
// one's, sized by its backlog; a Hello still fits into the handshake
// reserve. Which agent gets in is up to the collector, so the test reads
// all three at once and does not assume an order. Nothing is lost.
TEST(LinkOverload, AgentsTurnedAwayTogetherGetConsecutiveSlotsAndNothingIsLost) {
  Deployment d("overload");
  std::string cfg = ReadFile(d.collector_config());
  cfg.insert(cfg.find("[ingest]\n") + 9, "max_pending_events = 1000\n");
  WriteFile(d.collector_config(), cfg);
  std::vector<std::string> tokens;
  for (int i = 0; i < 4; ++i) tokens.push_back(d.CreateStoreToken(Cat("81", 10 + i), "acme"));
  d.StartCollector();
  constexpr size_t kAgents = 3;
  std::vector<std::unique_ptr<RawLink>> links;
  for (size_t i = 0; i < kAgents; ++i) {
    links.push_back(
        std::make_unique<RawLink>(d.grpc_port(), tokens[i], grpc::ChannelArguments{}, 30s));
    // Each says 100,000 events wait in its outbox: at the writer's initial
    // rate estimate (50,000/s) that is a 2 s slot.
    ASSERT_TRUE(
        links.back()->Write(HelloWithBacklog(Cat("81", 10 + i), Cat("agent-", i), 100'001)));
    v1::CollectorMessage welcome;
    ASSERT_TRUE(links.back()->Read(&welcome));
    ASSERT_TRUE(welcome.has_welcome());
  }
  auto lock = sql::Db::Open(d.dir() + "/collector/collector.db");
  ASSERT_TRUE(lock.ok()) << lock.status();
  ASSERT_TRUE(lock->Exec("BEGIN IMMEDIATE").ok());

  // Each agent's first answer, read on a thread of its own.
  std::mutex mu;
  std::condition_variable answered;
  std::vector<std::optional<v1::CollectorMessage>> first(kAgents);
  std::vector<std::thread> readers;
  struct JoinAll {  // also when an assertion returns early
    std::vector<std::thread>& threads;
    ~JoinAll() {
      for (auto& t : threads)
        if (t.joinable()) t.join();
    }
  } join_readers{readers};
  for (size_t i = 0; i < kAgents; ++i) ASSERT_TRUE(links[i]->Write(BigBatch(1, 1000)));
  for (size_t i = 0; i < kAgents; ++i) {
    readers.emplace_back([&, i] {
      v1::CollectorMessage m;
      if (!links[i]->Read(&m)) m.Clear();  // the stream ended without an answer
      std::lock_guard<std::mutex> g(mu);
      first[i] = m;
      answered.notify_all();
    });
  }
  auto count_answers = [&] {
    size_t n = 0;
    for (const auto& a : first)
      if (a.has_value()) ++n;
    return n;
  };
  std::vector<size_t> turned_away;
  size_t admitted = kAgents;
  {
    std::unique_lock<std::mutex> g(mu);
    // The write lock holds the admitted batch's ack back: two answers come.
    answered.wait_for(g, 20s, [&] { return count_answers() >= 2; });
    ASSERT_EQ(count_answers(), 2u) << "two agents are turned away while the queue is full";
    for (size_t i = 0; i < kAgents; ++i) {
      if (!first[i].has_value()) {
        admitted = i;
        continue;
      }
      ASSERT_TRUE(first[i]->has_overloaded()) << "agent " << i << ": " << first[i]->DebugString();
      turned_away.push_back(i);
    }
  }
  // A new agent arriving now still gets its token looked up (the reserve).
  RawLink late(d.grpc_port(), tokens[3], grpc::ChannelArguments{}, 30s);
  ASSERT_TRUE(late.Write(HelloWithBacklog("8113", "agent-3", 1)));
  ASSERT_TRUE(lock->Exec("COMMIT").ok());
  v1::CollectorMessage welcome;
  ASSERT_TRUE(late.Read(&welcome));
  EXPECT_TRUE(welcome.has_welcome()) << welcome.DebugString();
  for (auto& r : readers) r.join();
  ASSERT_TRUE(first[admitted]->has_ack()) << first[admitted]->DebugString();
  EXPECT_EQ(first[admitted]->ack().up_to_sequence(), 1000u);
  std::vector<v1::Overloaded> told;
  for (size_t i : turned_away) {
    told.push_back(first[i]->overloaded());
    EXPECT_EQ(links[i]->Ended().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << i;
  }
  for (const auto& o : told) {
    EXPECT_GE(o.retry_after_ms(), 250u);
    EXPECT_LE(o.retry_after_ms(), 60'000u);
    EXPECT_GE(o.retry_spread_ms(), 1'000u) << "a slot sized by the 100,000 events still to send";
  }
  // The agent told later comes back after the other one's slot, less the
  // time between the two answers (well under a second).
  std::sort(told.begin(), told.end(), [](const v1::Overloaded& a, const v1::Overloaded& b) {
    return a.retry_after_ms() < b.retry_after_ms();
  });
  EXPECT_GE(told[1].retry_after_ms() + 1'000, told[0].retry_after_ms() + told[0].retry_spread_ms())
      << "consecutive slots, not one instant for both";
  // The two come back and deliver; each store holds its events once.
  for (size_t i : turned_away) {
    RawLink again(d.grpc_port(), tokens[i], grpc::ChannelArguments{}, 30s);
    ASSERT_TRUE(again.Write(HelloWithBacklog(Cat("81", 10 + i), Cat("agent-", i), 1001)));
    v1::CollectorMessage m;
    ASSERT_TRUE(again.Read(&m));
    ASSERT_TRUE(m.has_welcome()) << m.DebugString();
    EXPECT_EQ(m.welcome().last_committed_sequence(), 0u)
        << "nothing of the refused batch was stored";
    ASSERT_TRUE(again.Write(BigBatch(1, 1000)));
    ASSERT_TRUE(again.Read(&m));
    ASSERT_TRUE(m.has_ack()) << m.DebugString();
    EXPECT_EQ(again.Finish().error_code(), grpc::StatusCode::OK);
  }
  for (size_t i = 0; i < kAgents; ++i) EXPECT_EQ(d.EventCount(Cat("81", 10 + i)), 1000u) << i;
}

}  // namespace
}  // namespace setdiag::testing
