// Fuzz target: the collector's validation of agent frames. The input is one
// gRPC message as the collector's raw Connect method receives it: bytes ->
// grpc::SerializationTraits<AgentMessage>::Deserialize (what LinkSession's
// HandleRead calls) -> ValidateHello / ValidateBatch (collector/link/link_service.h,
// the pure checks LinkSession runs on every Hello and EventBatch).
//
// Oracles beyond the sanitizers: whatever ValidateHello / ValidateBatch
// accept satisfies the rules of docs/protocol.md, checked here again
// independently (ids 1..128 of [A-Za-z0-9._-], sequences strictly
// increasing in 1..2^63-1, severities INFO..CRITICAL, detection times from
// 2020 to 24 h ahead, payloads at most 64 KiB and a JSON object, at most
// 1000 events and 1000 held episodes), and an accepted frame serialized
// again and parsed back is accepted again.
//
// Not reached: the bundle offer and chunk checks (request id, sha256,
// offset/size arithmetic) are inline in LinkSession::HandleBundleOffer /
// HandleBundleChunk in link_service.cc, not exposed as functions, and need
// a live stream with a CommitQueue and BundleFiles behind it.

#include <google/protobuf/stubs/logging.h>
#include <grpcpp/support/byte_buffer.h>

#include <nlohmann/json.hpp>
#include <string>

#include "collector/link/link_service.h"  // and link.grpc.pb.h: SerializationTraits
#include "fuzz_util.h"

namespace {

namespace v1 = setdiag::v1;
using setdiag::collector::IngestLimits;
using setdiag::fuzz::Fail;

constexpr int64_t kNowMs = 1'800'000'000'000;  // 2027-01-15

bool Identifier(const std::string& s, size_t max) {
  if (s.empty() || s.size() > max) return false;
  for (char c : s) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

void CheckHello(const v1::Hello& h, const IngestLimits& limits, std::string_view input) {
  if (!setdiag::collector::ValidateHello(h, limits).empty()) return;
  if (h.protocol_version() == 0) Fail("accepted a Hello without protocol_version", input);
  if (!Identifier(h.store_id(), limits.max_id_bytes) ||
      !Identifier(h.agent_id(), limits.max_id_bytes))
    Fail("accepted a Hello with a bad store_id or agent_id", input);
  if (h.agent_version().size() > limits.max_id_bytes || h.outbox_id().size() > limits.max_id_bytes)
    Fail("accepted a Hello with an over-long agent_version or outbox_id", input);
  if (h.first_unacked_sequence() > setdiag::collector::kMaxSequence ||
      h.next_sequence() > setdiag::collector::kMaxSequence + 1)
    Fail("accepted a Hello with a sequence the store cannot hold", input);
  if (static_cast<size_t>(h.held_episodes_size()) > setdiag::collector::kMaxHeldEpisodes)
    Fail("accepted too many held episodes", input);
  for (const auto& e : h.held_episodes()) {
    if (!Identifier(e.kind(), limits.max_kind_bytes) || e.episode().empty() ||
        e.episode().size() > setdiag::collector::kMaxEpisodeBytes)
      Fail("accepted a malformed held episode", input);
  }
}

void CheckBatch(const v1::EventBatch& b, const IngestLimits& limits, std::string_view input) {
  if (!setdiag::collector::ValidateBatch(b, limits, kNowMs).empty()) return;
  if (b.events_size() == 0 || static_cast<size_t>(b.events_size()) > limits.max_events_per_batch)
    Fail("accepted a batch with a bad number of events", input);
  uint64_t prev = 0;
  for (const auto& e : b.events()) {
    if (e.sequence() == 0 || e.sequence() <= prev ||
        e.sequence() > setdiag::collector::kMaxSequence)
      Fail("accepted a bad sequence", input);
    prev = e.sequence();
    if (!Identifier(e.kind(), limits.max_kind_bytes)) Fail("accepted a bad kind", input);
    if (e.severity() < v1::SEVERITY_INFO || e.severity() > v1::SEVERITY_CRITICAL)
      Fail("accepted a bad severity", input);
    if (e.detected_at_ms() < limits.min_detected_at_ms ||
        e.detected_at_ms() > kNowMs + limits.max_future_skew_ms)
      Fail("accepted a detection time out of range", input);
    if (e.payload().size() > limits.max_payload_bytes) Fail("accepted an over-long payload", input);
    auto j = nlohmann::json::parse(e.payload(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object())
      Fail("accepted a payload that is not a JSON object", input);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input = setdiag::fuzz::AsText(data, size);
  // Frames with invalid UTF-8 in string fields are refused by protobuf,
  // which logs each one: the log is noise here and slows the fuzzer down.
  static const bool quiet = [] {
    google::protobuf::SetLogHandler(nullptr);
    return true;
  }();
  (void)quiet;
  grpc::Slice slice(data, size);
  grpc::ByteBuffer buffer(&slice, 1);
  v1::AgentMessage msg;
  grpc::Status parsed = grpc::SerializationTraits<v1::AgentMessage>::Deserialize(&buffer, &msg);
  if (!parsed.ok()) return 0;
  const IngestLimits limits;
  for (int round = 0; round < 2; ++round) {
    switch (msg.body_case()) {
      case v1::AgentMessage::kHello:
        CheckHello(msg.hello(), limits, input);
        break;
      case v1::AgentMessage::kBatch:
        CheckBatch(msg.batch(), limits, input);
        break;
      default:
        return 0;
    }
    // Once more from its own serialization: what we accept must stay accepted.
    std::string again;
    if (!msg.SerializeToString(&again)) Fail("an accepted AgentMessage does not serialize", input);
    const bool hello_ok =
        msg.has_hello() && setdiag::collector::ValidateHello(msg.hello(), limits).empty();
    const bool batch_ok =
        msg.has_batch() && setdiag::collector::ValidateBatch(msg.batch(), limits, kNowMs).empty();
    v1::AgentMessage reparsed;
    if (!reparsed.ParseFromString(again))
      Fail("a serialized AgentMessage does not parse back", input);
    if (hello_ok && !setdiag::collector::ValidateHello(reparsed.hello(), limits).empty())
      Fail("a Hello accepted once is refused after a round trip", input);
    if (batch_ok && !setdiag::collector::ValidateBatch(reparsed.batch(), limits, kNowMs).empty())
      Fail("a batch accepted once is refused after a round trip", input);
    msg = std::move(reparsed);
  }
  return 0;
}
