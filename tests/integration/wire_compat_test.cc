// Wire compatibility with the first release (0.1.0, tests/fixtures/release-0.1.0):
// an agent speaking the 0.1.0 contract against today's collector, and today's
// agent against a collector speaking the 0.1.0 contract. The 0.1.0 side is
// built from the 0.1.0 schema itself (tests/fixtures/release-0.1.0/proto/
// link.proto, package renamed to setdiag.release_0_1_0.v1; the gRPC path is
// set by hand), not from today's guess of it, so a change of today's
// proto/setdiag/v1/link.proto that breaks the wire fails here:
//
// - a renumbered field reads as zero (or as another field) on the other side:
//   Hello.store_id/agent_id -> the collector refuses the 0.1.0 Hello, and the
//   fake 0.1.0 collector sees empty ids; Hello.outbox_fresh/
//   first_unacked_sequence/next_sequence -> the fake's Hello checks, and the
//   collector's renumber_from (7 for the replaced outbox) differs;
//   Welcome.last_committed_sequence -> the 0.1.0 client reads 0 instead of
//   5 and 6, and today's agent sends 4..5 again although the 0.1.0 collector
//   said they were stored; Welcome.renumber_from -> the fresh-outbox
//   handshake expects 7; Ack.up_to_sequence -> the 0.1.0 client reads 0,
//   today's agent never empties its outbox; Event fields -> the events listed
//   through the CLI, or those the fake parsed, differ from those sent;
//   AgentStatus fields -> the status the collector keeps differs;
//   Overloaded.retry_after_ms -> today's agent comes back after its own
//   backoff (< 1 s here) instead of the 3 s the 0.1.0 collector asked for;
// - a changed type (another wire type) makes the field unknown, so it reads
//   as zero (same checks), or the message does not parse;
// - a renamed package, service or method changes the HTTP/2 path: the real
//   collector answers UNIMPLEMENTED, the fake sees another method;
// - a tightened validation rule refuses the 0.1.0 frames (the streams end
//   with an error instead of Welcome and Ack).
// (Tried by renumbering Welcome.last_committed_sequence, Hello.outbox_fresh
// and Overloaded.retry_after_ms in the fixture: each fails both directions.)
// A field added the compatible way (a new number, zero meaning "as before")
// passes: OldAgentParsesTodaysOverloaded shows it for Overloaded.retry_spread_ms.

#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "release-0.1.0/proto/link.pb.h"
#include "setdiag/v1/link.pb.h"
#include "tests/integration/harness.h"

namespace setdiag::testing {
namespace {

using namespace std::chrono_literals;
namespace old = ::setdiag::release_0_1_0::v1;
using json = nlohmann::json;

// The HTTP/2 path of AgentLink.Connect, the same in every release.
constexpr char kConnectMethod[] = "/setdiag.v1.AgentLink/Connect";
// The protocol version a 0.1.0 agent offers and a 0.1.0 collector speaks at most.
constexpr uint32_t kReleaseProtocolVersion = 2;
// One message or one connect of a real process on a busy CI machine.
constexpr std::chrono::seconds kStep = 30s;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

grpc::ByteBuffer Encode(const google::protobuf::MessageLite& m) {
  grpc::Slice bytes(m.SerializeAsString());
  return grpc::ByteBuffer(&bytes, 1);
}

bool Decode(const grpc::ByteBuffer& buffer, google::protobuf::MessageLite* m) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return false;
  std::string bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return m->ParseFromString(bytes);
}

// Blocking use of a completion queue by one thread: waits for one tag and
// keeps what completes for other tags meanwhile.
class Completions {
 public:
  explicit Completions(grpc::CompletionQueue* cq) : cq_(cq) {}

  // Whether the operation of `tag` completed, and succeeded, within `timeout`.
  bool Wait(void* tag, std::chrono::seconds timeout) {
    const auto deadline = std::chrono::system_clock::now() + timeout;
    while (true) {
      if (auto it = done_.find(tag); it != done_.end()) {
        const bool ok = it->second;
        done_.erase(it);
        return ok;
      }
      void* got = nullptr;
      bool ok = false;
      if (cq_->AsyncNext(&got, &ok, deadline) != grpc::CompletionQueue::GOT_EVENT) return false;
      done_[got] = ok;
    }
  }

  // Shuts the queue down and waits until every pending operation completed.
  void Drain() {
    cq_->Shutdown();
    void* got = nullptr;
    bool ok = false;
    while (cq_->Next(&got, &ok)) {
    }
  }

 private:
  grpc::CompletionQueue* cq_;
  std::map<void*, bool> done_;
};

// ---- a 0.1.0 agent: today's gRPC, the 0.1.0 messages --------------------

class OldAgentLink {
 public:
  OldAgentLink(int port, const std::string& token)
      : channel_(grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                     grpc::InsecureChannelCredentials())),
        stub_(channel_),
        done_(&cq_) {
    ctx_.AddMetadata("authorization", "Bearer " + token);
    ctx_.set_deadline(std::chrono::system_clock::now() + 120s);  // nothing hangs the test
    call_ = stub_.PrepareCall(&ctx_, kConnectMethod, &cq_);
    call_->StartCall(Tag(kStart));
    started_ = done_.Wait(Tag(kStart), kStep);
  }
  ~OldAgentLink() {
    ctx_.TryCancel();
    done_.Drain();
  }
  OldAgentLink(const OldAgentLink&) = delete;
  OldAgentLink& operator=(const OldAgentLink&) = delete;

  bool Write(const old::AgentMessage& m) {
    if (!started_) return false;
    out_ = Encode(m);
    call_->Write(out_, Tag(kWrite));
    return done_.Wait(Tag(kWrite), kStep);
  }
  bool Read(old::CollectorMessage* m) {
    if (!started_) return false;
    call_->Read(&in_, Tag(kRead));
    return done_.Wait(Tag(kRead), kStep) && Decode(in_, m);
  }
  // Half-closes, reads until the collector ends the stream; its status.
  grpc::Status Finish() {
    call_->WritesDone(Tag(kWritesDone));
    if (!done_.Wait(Tag(kWritesDone), kStep))
      return grpc::Status(grpc::StatusCode::UNKNOWN, "WritesDone failed");
    old::CollectorMessage ignored;
    while (Read(&ignored)) {
    }
    grpc::Status st;
    call_->Finish(&st, Tag(kFinish));
    if (!done_.Wait(Tag(kFinish), kStep))
      return grpc::Status(grpc::StatusCode::UNKNOWN, "no status");
    return st;
  }

 private:
  enum Op { kStart, kWrite, kRead, kWritesDone, kFinish, kOps };
  void* Tag(Op op) { return &tags_[op]; }

  std::shared_ptr<grpc::Channel> channel_;
  grpc::GenericStub stub_;
  grpc::CompletionQueue cq_;
  Completions done_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call_;
  grpc::ByteBuffer out_;
  grpc::ByteBuffer in_;
  bool started_ = false;
  char tags_[kOps] = {};
};

constexpr char kOldAgentVersion[] = "0.1.0";
constexpr char kOldKind[] = "test.compat-0.1.0";

// A Hello as 0.1.0's Uplink::RunSession filled it.
old::AgentMessage OldHello(const std::string& store, const std::string& agent,
                           const std::string& outbox_id, uint64_t first_unacked, uint64_t next,
                           bool fresh) {
  old::AgentMessage m;
  auto* h = m.mutable_hello();
  h->set_protocol_version(kReleaseProtocolVersion);
  h->set_store_id(store);
  h->set_agent_id(agent);
  h->set_agent_version(kOldAgentVersion);
  h->set_first_unacked_sequence(first_unacked);
  h->set_next_sequence(next);
  h->set_outbox_id(outbox_id);
  h->set_outbox_fresh(fresh);
  h->set_held_episodes_known(true);  // and holding nothing
  return m;
}

// The event of sequence `seq` as the 0.1.0 agent sends it (and as the
// collector must list it).
old::Event OldEvent(uint64_t seq, int64_t detected_at_ms) {
  old::Event e;
  e.set_sequence(seq);
  e.set_kind(kOldKind);
  e.set_severity(seq % 2 == 0 ? old::SEVERITY_IMPORTANT : old::SEVERITY_INFO);
  e.set_detected_at_ms(detected_at_ms + static_cast<int64_t>(seq));
  e.set_payload(json{{"seq", seq}, {"from", "0.1.0"}}.dump());
  return e;
}

old::AgentMessage OldBatch(const std::vector<old::Event>& events) {
  old::AgentMessage m;
  for (const auto& e : events) *m.mutable_batch()->add_events() = e;
  return m;
}

// Reads until an Ack; fails the test on anything else the collector sends.
uint64_t ReadAck(OldAgentLink& link) {
  old::CollectorMessage in;
  if (!link.Read(&in)) {
    ADD_FAILURE() << "the collector ended the stream instead of acknowledging: "
                  << link.Finish().error_message();
    return 0;
  }
  EXPECT_TRUE(in.has_ack()) << "expected an Ack, got body " << in.body_case();
  return in.ack().up_to_sequence();
}

// The agent rows of a store through the CLI (`setdiag agents list`).
json AgentRow(Deployment& d, const std::string& store, const std::string& agent_id) {
  auto r = d.Cli({"--json", "agents", "list", "--store", store});
  if (r.exit_code != 0) return json();
  const json body = json::parse(r.out);
  for (const auto& a : body["agents"]) {
    if (a["agent_id"] == agent_id) return a;
  }
  return json();
}

TEST(WireCompat, OldAgentAgainstNewCollector) {
  Deployment d("wirecompat-old-agent");
  const std::string store = "7101";
  const std::string token = d.CreateStoreToken(store, "acme");
  d.StartCollector();
  const std::string agent_id = "agent-0.1.0";
  const int64_t t0 = NowMs();
  std::map<uint64_t, old::Event> sent;  // by sequence, as the collector must list them
  for (uint64_t seq = 1; seq <= 8; ++seq) sent[seq] = OldEvent(seq, t0);

  {  // First connect: a fresh outbox holding sequences 1..5.
    OldAgentLink link(d.grpc_port(), token);
    ASSERT_TRUE(
        link.Write(OldHello(store, agent_id, "0123456789abcdef0123456789abcdef", 1, 6, true)));
    old::CollectorMessage in;
    ASSERT_TRUE(link.Read(&in)) << link.Finish().error_message();
    ASSERT_TRUE(in.has_welcome()) << "body " << in.body_case();
    const old::Welcome& w = in.welcome();
    EXPECT_EQ(w.protocol_version(), kReleaseProtocolVersion);
    EXPECT_EQ(w.last_committed_sequence(), 0u);
    EXPECT_EQ(w.renumber_from(), 0u);
    EXPECT_NEAR(static_cast<double>(w.server_time_ms()), static_cast<double>(NowMs()), 60'000.0);
    EXPECT_EQ(w.status_interval_s(), 1u);  // the harness's ingest.status_interval

    old::AgentMessage status;
    auto* s = status.mutable_status();
    s->set_uptime_s(12);
    s->set_agent_version(kOldAgentVersion);
    s->set_outbox_depth(5);
    s->set_outbox_bytes(640);
    s->set_oldest_unsent_age_s(3);
    s->set_gaps_total(1);
    s->set_sent_at_ms(t0);
    ASSERT_TRUE(link.Write(status));
    old::AgentMessage pong;  // ignored wherever it comes
    pong.mutable_pong()->set_nonce(7);
    ASSERT_TRUE(link.Write(pong));
    ASSERT_TRUE(link.Write(OldBatch({sent[1], sent[2], sent[3]})));
    ASSERT_TRUE(link.Write(OldBatch({sent[4], sent[5]})));
    EXPECT_EQ(ReadAck(link), 3u);
    EXPECT_EQ(ReadAck(link), 5u);
    // The 0.1.0 agent dies here, before it deleted what was acknowledged:
    // the link is cut (the destructor cancels the stream).
  }

  // The status it sent is what the collector keeps, field by field.
  json row;
  ASSERT_TRUE(WaitFor(
      [&] {
        row = AgentRow(d, store, agent_id);
        return row.is_object() && row["status"].is_object() && !row["status"].empty();
      },
      kStep))
      << d.Cli({"--json", "agents", "list", "--store", store}).out;
  EXPECT_EQ(row["version"], kOldAgentVersion);
  EXPECT_EQ(row["status"], (json{{"uptime_s", 12},
                                 {"agent_version", kOldAgentVersion},
                                 {"outbox_depth", 5},
                                 {"outbox_bytes", 640},
                                 {"oldest_unsent_age_s", 3},
                                 {"gaps_total", 1},
                                 {"sent_at_ms", t0}}));

  {  // Back with the same outbox, still holding 1..5: the resume point is 5.
    OldAgentLink link(d.grpc_port(), token);
    ASSERT_TRUE(
        link.Write(OldHello(store, agent_id, "0123456789abcdef0123456789abcdef", 1, 6, false)));
    old::CollectorMessage in;
    ASSERT_TRUE(link.Read(&in)) << link.Finish().error_message();
    ASSERT_TRUE(in.has_welcome()) << "body " << in.body_case();
    EXPECT_EQ(in.welcome().last_committed_sequence(), 5u);
    EXPECT_EQ(in.welcome().renumber_from(), 0u);
    // A 0.1.0 agent deletes 1..5 and sends from 6.
    ASSERT_TRUE(link.Write(OldBatch({sent[6]})));
    EXPECT_EQ(ReadAck(link), 6u);
    auto st = link.Finish();
    EXPECT_TRUE(st.ok()) << st.error_code() << " " << st.error_message();
  }

  {  // Its outbox was replaced (a fresh one holding 1..2): renumbered above 6.
    OldAgentLink link(d.grpc_port(), token);
    ASSERT_TRUE(
        link.Write(OldHello(store, agent_id, "fedcba9876543210fedcba9876543210", 1, 3, true)));
    old::CollectorMessage in;
    ASSERT_TRUE(link.Read(&in)) << link.Finish().error_message();
    ASSERT_TRUE(in.has_welcome()) << "body " << in.body_case();
    EXPECT_EQ(in.welcome().last_committed_sequence(), 6u);
    EXPECT_EQ(in.welcome().renumber_from(), 7u);
    ASSERT_TRUE(link.Write(OldBatch({sent[7], sent[8]})));
    EXPECT_EQ(ReadAck(link), 8u);
    auto st = link.Finish();
    EXPECT_TRUE(st.ok()) << st.error_code() << " " << st.error_message();
  }

  // Every event once, as sent.
  std::map<uint64_t, json> listed;
  for (const auto& e : d.Events(store)) {
    ASSERT_EQ(e["agent_id"], agent_id) << e.dump();
    const auto seq = e["sequence"].get<uint64_t>();
    EXPECT_TRUE(listed.emplace(seq, e).second) << "sequence " << seq << " was stored twice";
  }
  ASSERT_EQ(listed.size(), sent.size());
  static const char* const kSeverityText[] = {"unspecified", "info", "normal", "important",
                                              "critical"};
  for (const auto& [seq, e] : sent) {
    SCOPED_TRACE("sequence " + std::to_string(seq));
    ASSERT_EQ(listed.count(seq), 1u);
    const json& got = listed[seq];
    EXPECT_EQ(got["kind"], e.kind());
    EXPECT_EQ(got["severity"], kSeverityText[e.severity()]);
    EXPECT_EQ(got["detected_at_ms"], e.detected_at_ms());
    EXPECT_EQ(got["payload"], json::parse(e.payload()));
  }
  EXPECT_EQ(d.collector().Log().find("rejected"), std::string::npos) << d.collector().Log();
}

TEST(WireCompat, OldAgentParsesTodaysOverloaded) {
  // Today's collector sends Overloaded with retry_spread_ms (field 3, 0.1.1).
  v1::CollectorMessage today;
  today.mutable_overloaded()->set_retry_after_ms(15'000);
  today.mutable_overloaded()->set_retry_spread_ms(15'000);
  today.mutable_overloaded()->set_reason("ingest queue full");
  const std::string bytes = today.SerializeAsString();

  old::CollectorMessage then;
  ASSERT_TRUE(then.ParseFromString(bytes));
  ASSERT_TRUE(then.has_overloaded());
  EXPECT_EQ(then.overloaded().retry_after_ms(), 15'000u);
  EXPECT_EQ(then.overloaded().reason(), "ingest queue full");
  // The field 0.1.0 does not know is kept as an unknown field, not lost.
  EXPECT_EQ(then.SerializeAsString(), bytes);

  // And today's agent reads a 0.1.0 Overloaded as "no spread": zero means
  // as before (the agent picks the spread itself).
  old::CollectorMessage old_overloaded;
  old_overloaded.mutable_overloaded()->set_retry_after_ms(15'000);
  old_overloaded.mutable_overloaded()->set_reason("ingest queue full");
  v1::CollectorMessage read;
  ASSERT_TRUE(read.ParseFromString(old_overloaded.SerializeAsString()));
  ASSERT_TRUE(read.has_overloaded());
  EXPECT_EQ(read.overloaded().retry_after_ms(), 15'000u);
  EXPECT_EQ(read.overloaded().retry_spread_ms(), 0u);
}

// ---- a 0.1.0 collector: a gRPC server that knows only the 0.1.0 messages --

// Listens on 127.0.0.1:port, plaintext (as the harness's agents dial), with
// the channel arguments of the 0.1.0 collector. One thread (the test's) uses it.
class OldCollector {
 public:
  class Stream {
   public:
    bool Read(old::AgentMessage* m) {
      rw_.Read(&in_, Tag(kRead));
      return done_->Wait(Tag(kRead), kStep) && Decode(in_, m);
    }
    bool Write(const old::CollectorMessage& m) {
      out_ = Encode(m);
      rw_.Write(out_, Tag(kWrite));
      return done_->Wait(Tag(kWrite), kStep);
    }
    bool Finish(const grpc::Status& st) {
      rw_.Finish(st, Tag(kFinish));
      return done_->Wait(Tag(kFinish), kStep);
    }
    std::string method() const { return ctx_.method(); }
    std::string Metadata(const std::string& key) const {
      auto it = ctx_.client_metadata().find(key);
      return it == ctx_.client_metadata().end() ? ""
                                                : std::string(it->second.data(), it->second.size());
    }

   private:
    friend class OldCollector;
    enum Op { kAccept, kRead, kWrite, kFinish, kOps };
    explicit Stream(Completions* done) : done_(done) {}
    void* Tag(Op op) { return &tags_[op]; }

    Completions* done_;
    grpc::GenericServerContext ctx_;
    grpc::GenericServerAsyncReaderWriter rw_{&ctx_};
    grpc::ByteBuffer in_;
    grpc::ByteBuffer out_;
    char tags_[kOps] = {};
  };

  explicit OldCollector(int port) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:" + std::to_string(port),
                             grpc::InsecureServerCredentials());
    builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10'000);
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 60'000);
    builder.RegisterAsyncGenericService(&service_);
    cq_ = builder.AddCompletionQueue();
    server_ = builder.BuildAndStart();
    done_ = std::make_unique<Completions>(cq_.get());
  }
  ~OldCollector() {
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + 1s);
    if (cq_) done_->Drain();
  }
  OldCollector(const OldCollector&) = delete;
  OldCollector& operator=(const OldCollector&) = delete;

  bool listening() const { return server_ != nullptr; }

  // The next stream an agent opened; nullptr if none came within `timeout`.
  Stream* Accept(std::chrono::seconds timeout) {
    streams_.push_back(std::unique_ptr<Stream>(new Stream(done_.get())));
    Stream* s = streams_.back().get();
    service_.RequestCall(&s->ctx_, &s->rw_, cq_.get(), cq_.get(), s->Tag(Stream::kAccept));
    return done_->Wait(s->Tag(Stream::kAccept), timeout) ? s : nullptr;
  }

 private:
  grpc::AsyncGenericService service_;
  std::unique_ptr<grpc::ServerCompletionQueue> cq_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<Completions> done_;
  std::vector<std::unique_ptr<Stream>> streams_;  // alive until the queue is drained
};

// What the fake collector read from today's agent until it saw `through`.
struct Received {
  std::vector<old::Event> events;
  std::vector<old::AgentStatus> statuses;
  bool ok = true;
};

// Reads until an event with sequence >= `through` arrived; with `ack`, each
// batch is acknowledged (0.1.0: one Ack per batch, its highest sequence) as
// if committed.
Received ReadEvents(OldCollector::Stream* s, uint64_t through, bool ack) {
  Received r;
  while (r.events.empty() || r.events.back().sequence() < through) {
    old::AgentMessage in;
    if (!s->Read(&in)) {
      ADD_FAILURE() << "the stream ended (or was silent for " << kStep.count()
                    << " s) before sequence " << through;
      r.ok = false;
      return r;
    }
    if (in.has_status()) {
      r.statuses.push_back(in.status());
    } else if (in.has_batch()) {
      EXPECT_GT(in.batch().events_size(), 0);
      for (const auto& e : in.batch().events()) r.events.push_back(e);
      if (ack && in.batch().events_size() > 0) {
        old::CollectorMessage m;
        m.mutable_ack()->set_up_to_sequence(in.batch().events().rbegin()->sequence());
        if (!s->Write(m)) {
          ADD_FAILURE() << "cannot write the Ack";
          r.ok = false;
          return r;
        }
      }
    } else if (!in.has_pong()) {
      ADD_FAILURE() << "unexpected message from the agent, body " << in.body_case();
    }
  }
  return r;
}

std::vector<uint64_t> Sequences(const std::vector<old::Event>& events) {
  std::vector<uint64_t> out;
  for (const auto& e : events) out.push_back(e.sequence());
  return out;
}

// Reads the Hello and answers with a Welcome as the 0.1.0 collector did.
old::Hello Handshake(OldCollector::Stream* s, uint64_t last_committed) {
  old::AgentMessage in;
  if (!s->Read(&in)) {
    ADD_FAILURE() << "no Hello";
    return {};
  }
  EXPECT_TRUE(in.has_hello()) << "the first message has body " << in.body_case();
  old::CollectorMessage m;
  auto* w = m.mutable_welcome();
  w->set_protocol_version(std::min(in.hello().protocol_version(), kReleaseProtocolVersion));
  w->set_last_committed_sequence(last_committed);
  w->set_server_time_ms(NowMs());
  w->set_status_interval_s(1);
  EXPECT_TRUE(s->Write(m)) << "cannot write the Welcome";
  return in.hello();
}

// Lines of `log` that contain `text`.
std::vector<std::string> LinesWith(const std::string& log, const std::string& text) {
  std::vector<std::string> out;
  std::istringstream lines(log);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.find(text) != std::string::npos) out.push_back(line);
  }
  return out;
}

TEST(WireCompat, NewAgentAgainstOldCollector) {
  // The deployment's collector is never started: the 0.1.0 one listens on its port.
  Deployment d("wirecompat-new-agent");
  const std::string store = "7201";
  const std::string token = d.CreateStoreToken(store, "acme");
  auto& agent = d.AddAgent(store, token);
  OldCollector collector(d.grpc_port());
  ASSERT_TRUE(collector.listening()) << "cannot listen on port " << d.grpc_port();
  const int64_t t0 = NowMs();
  d.Emit(agent, "test.compat", "important", 3, R"({"part":"first"})");
  d.StartAgent(agent);

  // First connect: Hello, Welcome, 1..3 delivered and acknowledged.
  OldCollector::Stream* s1 = collector.Accept(60s);
  ASSERT_NE(s1, nullptr) << "the agent did not connect: " << agent.process->Log();
  EXPECT_EQ(s1->method(), kConnectMethod);
  EXPECT_EQ(s1->Metadata("authorization"), "Bearer " + token);
  const old::Hello hello1 = Handshake(s1, 0);
  std::string agent_id = ReadFile(agent.state_dir + "/agent-id");
  while (!agent_id.empty() && agent_id.back() == '\n') agent_id.pop_back();
  EXPECT_GE(hello1.protocol_version(), 1u);
  EXPECT_EQ(hello1.store_id(), store);
  EXPECT_FALSE(agent_id.empty());
  EXPECT_EQ(hello1.agent_id(), agent_id);
  EXPECT_FALSE(hello1.agent_version().empty());
  EXPECT_EQ(hello1.first_unacked_sequence(), 1u);
  EXPECT_EQ(hello1.next_sequence(), 4u);
  EXPECT_EQ(hello1.outbox_id().size(), 32u) << hello1.outbox_id();
  EXPECT_TRUE(hello1.outbox_fresh());
  EXPECT_EQ(hello1.held_episodes_size(), 0);
  EXPECT_FALSE(hello1.probe());

  Received first = ReadEvents(s1, 3, /*ack=*/true);
  ASSERT_TRUE(first.ok);
  EXPECT_EQ(Sequences(first.events), (std::vector<uint64_t>{1, 2, 3}));
  for (const auto& e : first.events) {
    EXPECT_EQ(e.kind(), "test.compat");
    EXPECT_EQ(e.severity(), old::SEVERITY_IMPORTANT);
    EXPECT_EQ(json::parse(e.payload(), nullptr, false), (json{{"part", "first"}})) << e.payload();
    EXPECT_GE(e.detected_at_ms(), t0 - 60'000);
    EXPECT_LE(e.detected_at_ms(), NowMs());
  }
  // AgentStatus comes at once after Welcome, before the first batch.
  ASSERT_FALSE(first.statuses.empty());
  EXPECT_EQ(first.statuses[0].agent_version(), hello1.agent_version());
  EXPECT_EQ(first.statuses[0].outbox_depth(), 3u);
  EXPECT_EQ(first.statuses[0].gaps_total(), 0u);
  EXPECT_GE(first.statuses[0].sent_at_ms(), t0 - 60'000);
  // The 0.1.0 Ack empties the outbox.
  EXPECT_TRUE(WaitFor([&] { return d.AgentStatus(agent)["depth"] == 0; }, kStep))
      << d.AgentStatus(agent).dump();

  // 4..5 arrive and are committed, but their Ack is never sent; 6 arrives
  // and is not committed. Then the 0.1.0 collector turns the agent away,
  // with an Overloaded that has no retry_spread_ms, and ends the stream.
  d.Emit(agent, "test.compat", "info", 2, R"({"part":"second"})");
  Received committed = ReadEvents(s1, 5, /*ack=*/false);
  ASSERT_TRUE(committed.ok);
  EXPECT_EQ(Sequences(committed.events), (std::vector<uint64_t>{4, 5}));
  d.Emit(agent, "test.compat", "normal", 1, R"({"part":"third"})");
  Received uncommitted = ReadEvents(s1, 6, /*ack=*/false);
  ASSERT_TRUE(uncommitted.ok);
  EXPECT_EQ(Sequences(uncommitted.events), (std::vector<uint64_t>{6}));
  old::CollectorMessage overloaded;
  overloaded.mutable_overloaded()->set_retry_after_ms(3'000);
  overloaded.mutable_overloaded()->set_reason("ingest queue full");
  ASSERT_TRUE(s1->Write(overloaded));
  ASSERT_TRUE(s1->Finish(
      grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "collector overloaded, retry later")));

  // It comes back, drops 4..5 on the Welcome's resume point and sends 6
  // again, and nothing else: 1..6 each stored once.
  OldCollector::Stream* s2 = collector.Accept(60s);
  ASSERT_NE(s2, nullptr) << "the agent did not come back: " << agent.process->Log();
  const old::Hello hello2 = Handshake(s2, 5);
  EXPECT_EQ(hello2.agent_id(), agent_id);
  EXPECT_EQ(hello2.outbox_id(), hello1.outbox_id());
  EXPECT_FALSE(hello2.outbox_fresh());
  EXPECT_EQ(hello2.first_unacked_sequence(), 4u);
  EXPECT_EQ(hello2.next_sequence(), 7u);
  Received second = ReadEvents(s2, 6, /*ack=*/true);
  ASSERT_TRUE(second.ok);
  EXPECT_EQ(Sequences(second.events), (std::vector<uint64_t>{6}))
      << "an event committed before was sent again";
  for (const auto& e : second.events) {
    EXPECT_EQ(e.kind(), "test.compat");
    EXPECT_EQ(e.severity(), old::SEVERITY_NORMAL);
    EXPECT_EQ(json::parse(e.payload(), nullptr, false), (json{{"part", "third"}})) << e.payload();
  }
  EXPECT_TRUE(WaitFor([&] { return d.AgentStatus(agent)["depth"] == 0; }, kStep))
      << d.AgentStatus(agent).dump();

  // The agent understood the Overloaded: it waited the 3 s asked for (its
  // own backoff here is at most 500 ms), spread over [3 s, 6 s] as for any
  // collector without retry_spread_ms. And it logged no protocol trouble.
  const std::string log = agent.process->Log();
  auto overloaded_lines = LinesWith(log, "collector is overloaded; reconnecting in ");
  ASSERT_EQ(overloaded_lines.size(), 1u) << log;
  const std::string& line = overloaded_lines[0];
  const auto delay_at = line.find("reconnecting in ") + std::string("reconnecting in ").size();
  const long long delay_ms = std::stoll(line.substr(delay_at));
  EXPECT_GE(delay_ms, 3'000) << line;
  EXPECT_LE(delay_ms, 6'000) << line;
  EXPECT_TRUE(LinesWith(log, " ERROR ").empty()) << log;
  EXPECT_TRUE(LinesWith(log, " ended: ").empty()) << log;
  agent.process->Stop();
}

}  // namespace
}  // namespace setdiag::testing
