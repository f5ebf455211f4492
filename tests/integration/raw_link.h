#pragma once
// A raw client of the agent link, for frames and behaviour no well-behaved
// agent shows (malformed frames, silence, acks never read), and the Hello
// such a client opens with. Shared by the link tests.

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>

#include "setdiag/v1/link.grpc.pb.h"

namespace setdiag::testing {

class RawLink {
 public:
  // `deadline`: the client gives up after it, so that a test waiting for
  // the collector to end a stream cannot hang (0: none).
  RawLink(int port, const std::string& token, const grpc::ChannelArguments& args = {},
          std::chrono::seconds deadline = std::chrono::seconds(0))
      : channel_(grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port),
                                           grpc::InsecureChannelCredentials(), args)),
        stub_(v1::AgentLink::NewStub(channel_)) {
    if (!token.empty()) ctx_.AddMetadata("authorization", "Bearer " + token);
    if (deadline.count() > 0) ctx_.set_deadline(std::chrono::system_clock::now() + deadline);
    stream_ = stub_->Connect(&ctx_);
  }
  bool Write(const v1::AgentMessage& m) { return stream_->Write(m); }
  bool Read(v1::CollectorMessage* m) { return stream_->Read(m); }
  // Says it is done writing, then reads until the collector ends the stream.
  grpc::Status Finish() {
    stream_->WritesDone();
    return Ended();
  }
  // Reads until the collector ends the stream; its status.
  grpc::Status Ended() {
    v1::CollectorMessage ignored;
    while (stream_->Read(&ignored)) {
    }
    return stream_->Finish();
  }

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::AgentLink::Stub> stub_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::AgentMessage, v1::CollectorMessage>> stream_;
};

inline v1::AgentMessage Hello(const std::string& store, const std::string& agent) {
  v1::AgentMessage m;
  auto* h = m.mutable_hello();
  h->set_protocol_version(1);
  h->set_store_id(store);
  h->set_agent_id(agent);
  h->set_agent_version("test");
  h->set_next_sequence(1);
  return m;
}

}  // namespace setdiag::testing
