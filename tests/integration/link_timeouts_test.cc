// The collector closes streams that hold a connection and say nothing: no
// Hello within ingest.hello_timeout, or nothing at all (not even the status
// an agent sends every status interval) for ingest.idle_timeout. A stream
// that keeps talking stays open. Real collector, raw gRPC clients.

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "setdiag/v1/link.grpc.pb.h"
#include "tests/integration/harness.h"
#include "tests/integration/raw_link.h"

namespace setdiag::testing {
namespace {

namespace v1 = ::setdiag::v1;
using namespace std::chrono_literals;

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
  EXPECT_NE(st.error_message().find("no Hello within 1 s of connecting"), std::string::npos) << st.error_message();
  EXPECT_LT(std::chrono::steady_clock::now() - started, 25s) << "closed by the collector, not by the client's deadline";
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
  EXPECT_NE(st.error_message().find("nothing received for 2 s"), std::string::npos) << st.error_message();
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
                            std::chrono::system_clock::now().time_since_epoch()).count());
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
  EXPECT_NE(d.collector().Log().find("agent agent-greedy (store 8103): has not read what the collector sent"),
            std::string::npos)
      << d.collector().Log();
  const size_t stored = d.EventCount("8103");
  EXPECT_LT(stored, 20'000u) << "stored while nobody read the acks (written " << written << ")";
}

}  // namespace
}  // namespace setdiag::testing
