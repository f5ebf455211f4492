// Frame validation of the agent link (collector/link/link_service.h).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "collector/link/link_service.h"
#include "collector/store/storage.h"
#include "temp_dir.h"

namespace setdiag::collector {
namespace {

using ::testing::HasSubstr;
namespace v1 = ::setdiag::v1;

constexpr int64_t kNow = 1'700'000'000'000;  // 2023-11-14
constexpr int64_t kHour = 3'600'000;

v1::Hello GoodHello() {
  v1::Hello h;
  h.set_protocol_version(1);
  h.set_store_id("store-0042");
  h.set_agent_id("agent_A.1");
  h.set_agent_version("0.1.0");
  h.set_outbox_id("0123456789abcdef");
  return h;
}

void AddEvent(v1::EventBatch& b, uint64_t seq, std::string kind = "tills.majority_stopped",
              v1::Severity sev = v1::SEVERITY_CRITICAL, int64_t detected = kNow - 1000,
              std::string payload = "{\"tills\":3}") {
  auto* e = b.add_events();
  e->set_sequence(seq);
  e->set_kind(kind);
  e->set_severity(sev);
  e->set_detected_at_ms(detected);
  e->set_payload(payload);
}

v1::EventBatch GoodBatch() {
  v1::EventBatch b;
  AddEvent(b, 1);
  AddEvent(b, 2, "setdiag.gap", v1::SEVERITY_IMPORTANT, kNow,
           "{\"count\":2,\"sequences\":[[7,8]]}");
  AddEvent(b, 5, "disk-free_low", v1::SEVERITY_INFO);
  return b;
}

std::string Check(const v1::EventBatch& b, const IngestLimits& limits = {}) {
  return ValidateBatch(b, limits, kNow);
}

// ---- Hello ----

TEST(ValidateHelloTest, GoodHelloPasses) { EXPECT_EQ(ValidateHello(GoodHello(), {}), ""); }

TEST(ValidateHelloTest, ProtocolVersionIsRequired) {
  auto h = GoodHello();
  h.set_protocol_version(0);
  EXPECT_THAT(ValidateHello(h, {}), HasSubstr("protocol_version"));
}

TEST(ValidateHelloTest, StoreAndAgentIdsAreRequired) {
  auto h = GoodHello();
  h.clear_store_id();
  EXPECT_THAT(ValidateHello(h, {}), HasSubstr("store_id is required"));
  h = GoodHello();
  h.clear_agent_id();
  EXPECT_THAT(ValidateHello(h, {}), HasSubstr("agent_id is required"));
}

TEST(ValidateHelloTest, IdsWithBadCharactersAreRejected) {
  for (const char* bad : {"store 42", "store/42", "store;drop", "st\xc3\xb6re", "a\nb", "x:y"}) {
    auto h = GoodHello();
    h.set_store_id(bad);
    EXPECT_THAT(ValidateHello(h, {}), HasSubstr("store_id")) << bad;
    h = GoodHello();
    h.set_agent_id(bad);
    EXPECT_THAT(ValidateHello(h, {}), HasSubstr("agent_id")) << bad;
  }
}

TEST(ValidateHelloTest, HeldEpisodesAreBounded) {
  auto h = GoodHello();
  h.set_held_episodes_known(true);
  auto* e = h.add_held_episodes();
  e->set_kind("tills.majority_stopped");
  e->set_episode("agent-1-tills-1764000000000");
  EXPECT_EQ(ValidateHello(h, {}), "");
  e->set_kind("bad kind");
  EXPECT_THAT(ValidateHello(h, {}), HasSubstr("held_episodes[0].kind"));
  e->set_kind("loading.halted");
  e->set_episode("");
  EXPECT_THAT(ValidateHello(h, {}), HasSubstr("held_episodes[0].episode"));
  e->set_episode(std::string(kMaxEpisodeBytes + 1, 'e'));
  EXPECT_THAT(ValidateHello(h, {}), HasSubstr("held_episodes[0].episode"));
  h = GoodHello();
  for (size_t i = 0; i <= kMaxHeldEpisodes; ++i) {
    auto* x = h.add_held_episodes();
    x->set_kind("loading.halted");
    x->set_episode("ep");
  }
  EXPECT_THAT(ValidateHello(h, {}), HasSubstr("the limit is"));
}

TEST(ValidateHelloTest, OverlongFieldsAreRejected) {
  IngestLimits limits;
  std::string at_limit(limits.max_id_bytes, 'a');
  std::string too_long(limits.max_id_bytes + 1, 'a');
  auto h = GoodHello();
  h.set_store_id(at_limit);
  h.set_agent_id(at_limit);
  h.set_agent_version(at_limit);
  h.set_outbox_id(at_limit);
  EXPECT_EQ(ValidateHello(h, limits), "");

  h = GoodHello();
  h.set_store_id(too_long);
  EXPECT_THAT(ValidateHello(h, limits), HasSubstr("store_id"));
  h = GoodHello();
  h.set_agent_id(too_long);
  EXPECT_THAT(ValidateHello(h, limits), HasSubstr("agent_id"));
  h = GoodHello();
  h.set_agent_version(too_long);
  EXPECT_THAT(ValidateHello(h, limits), HasSubstr("agent_version"));
  h = GoodHello();
  h.set_outbox_id(too_long);
  EXPECT_THAT(ValidateHello(h, limits), HasSubstr("outbox_id"));
}

// ---- EventBatch ----

TEST(ValidateBatchTest, GoodBatchPasses) { EXPECT_EQ(Check(GoodBatch()), ""); }

TEST(ValidateBatchTest, EmptyBatchIsRejected) {
  EXPECT_THAT(Check(v1::EventBatch()), HasSubstr("no events"));
}

TEST(ValidateBatchTest, TooManyEventsAreRejected) {
  IngestLimits limits;
  limits.max_events_per_batch = 10;
  v1::EventBatch b;
  for (uint64_t s = 1; s <= 10; ++s) AddEvent(b, s);
  EXPECT_EQ(Check(b, limits), "") << "exactly the limit is fine";
  AddEvent(b, 11);
  EXPECT_THAT(Check(b, limits), HasSubstr("limit is 10"));
}

TEST(ValidateBatchTest, DefaultLimitIsAThousandEvents) {
  v1::EventBatch b;
  for (uint64_t s = 1; s <= 1001; ++s) AddEvent(b, s);
  EXPECT_THAT(Check(b), HasSubstr("1001 events"));
}

TEST(ValidateBatchTest, ZeroSequenceIsRejected) {
  v1::EventBatch b;
  AddEvent(b, 0);
  EXPECT_THAT(Check(b), HasSubstr("sequence is required"));
}

TEST(ValidateBatchTest, SequencesMustStrictlyIncrease) {
  v1::EventBatch equal;
  AddEvent(equal, 5);
  AddEvent(equal, 5);
  EXPECT_THAT(Check(equal), HasSubstr("strictly increase"));

  v1::EventBatch down;
  AddEvent(down, 5);
  AddEvent(down, 6);
  AddEvent(down, 4);
  std::string err = Check(down);
  EXPECT_THAT(err, HasSubstr("strictly increase"));
  EXPECT_THAT(err, HasSubstr("event 2"));
}

TEST(ValidateBatchTest, KindMustBeShortAndUseIdCharacters) {
  for (const char* bad : {"", "tills majority", "tills/stopped", "k\xc3\xa9", "a,b", "x\ty"}) {
    v1::EventBatch b;
    AddEvent(b, 1, bad);
    EXPECT_THAT(Check(b), HasSubstr("kind")) << "'" << bad << "'";
  }
  IngestLimits limits;
  v1::EventBatch ok, too_long;
  AddEvent(ok, 1, std::string(limits.max_kind_bytes, 'k'));
  AddEvent(too_long, 1, std::string(limits.max_kind_bytes + 1, 'k'));
  EXPECT_EQ(Check(ok, limits), "");
  EXPECT_THAT(Check(too_long, limits), HasSubstr("kind"));
}

TEST(ValidateBatchTest, SeverityMustBeSpecifiedAndKnown) {
  v1::EventBatch unspecified;
  AddEvent(unspecified, 1, "k", v1::SEVERITY_UNSPECIFIED);
  EXPECT_THAT(Check(unspecified), HasSubstr("severity"));

  v1::EventBatch unknown;
  AddEvent(unknown, 1, "k", static_cast<v1::Severity>(9));
  EXPECT_THAT(Check(unknown), HasSubstr("severity"));

  for (auto sev :
       {v1::SEVERITY_INFO, v1::SEVERITY_NORMAL, v1::SEVERITY_IMPORTANT, v1::SEVERITY_CRITICAL}) {
    v1::EventBatch b;
    AddEvent(b, 1, "k", sev);
    EXPECT_EQ(Check(b), "") << sev;
  }
}

TEST(ValidateBatchTest, DetectedTimeBefore2020IsRejected) {
  IngestLimits limits;
  v1::EventBatch old, epoch, boundary;
  AddEvent(old, 1, "k", v1::SEVERITY_INFO, limits.min_detected_at_ms - 1);
  AddEvent(epoch, 1, "k", v1::SEVERITY_INFO, 0);
  AddEvent(boundary, 1, "k", v1::SEVERITY_INFO, limits.min_detected_at_ms);
  EXPECT_THAT(Check(old, limits), HasSubstr("before 2020"));
  EXPECT_THAT(Check(epoch, limits), HasSubstr("before 2020"));
  EXPECT_EQ(Check(boundary, limits), "");
  EXPECT_EQ(limits.min_detected_at_ms, 1'577'836'800'000) << "2020-01-01T00:00:00Z";
}

TEST(ValidateBatchTest, DetectedTimeMoreThanADayAheadIsRejected) {
  v1::EventBatch ahead, at_limit;
  AddEvent(ahead, 1, "k", v1::SEVERITY_INFO, kNow + 24 * kHour + 1);
  AddEvent(at_limit, 1, "k", v1::SEVERITY_INFO, kNow + 24 * kHour);
  EXPECT_THAT(Check(ahead), HasSubstr("in the future"));
  EXPECT_EQ(Check(at_limit), "");
}

TEST(ValidateBatchTest, PayloadOverTheLimitIsRejected) {
  IngestLimits limits;
  auto object_of = [](size_t size) {
    std::string p = "{\"a\":\"";
    p.append(size - p.size() - 2, 'x');
    return p + "\"}";
  };
  v1::EventBatch fits, too_big;
  AddEvent(fits, 1, "k", v1::SEVERITY_INFO, kNow, object_of(limits.max_payload_bytes));
  AddEvent(too_big, 1, "k", v1::SEVERITY_INFO, kNow, object_of(limits.max_payload_bytes + 1));
  EXPECT_EQ(Check(fits, limits), "");
  EXPECT_THAT(Check(too_big, limits), HasSubstr("payload is 65537 bytes"));
}

TEST(ValidateBatchTest, PayloadMustBeAJsonObject) {
  for (const char* bad : {"", "[1,2,3]", "\"text\"", "42", "null", "{\"a\":", "not json", "{} {}",
                          "{\"a\":\"\xff\xfe\"}"}) {
    v1::EventBatch b;
    AddEvent(b, 1, "k", v1::SEVERITY_INFO, kNow, bad);
    EXPECT_THAT(Check(b), HasSubstr("JSON object")) << "'" << bad << "'";
  }
  v1::EventBatch empty_object;
  AddEvent(empty_object, 1, "k", v1::SEVERITY_INFO, kNow, "{}");
  EXPECT_EQ(Check(empty_object), "");
}

TEST(ValidateBatchTest, OneBadEventRejectsTheBatchAndIsNamed) {
  v1::EventBatch b = GoodBatch();
  AddEvent(b, 9, "k", v1::SEVERITY_INFO, kNow, "[]");
  std::string err = Check(b);
  EXPECT_THAT(err, HasSubstr("event 3"));
  EXPECT_THAT(err, HasSubstr("sequence 9"));
}

// ---- sequences the store cannot hold ----
// Sequences are SQLite INTEGERs: 2^63 and above used to wrap to negative, so
// the collector acknowledged 2^63 and the next Welcome resumed from 1.

constexpr uint64_t k2p63 = uint64_t{1} << 63;

TEST(ValidateBatchTest, SequencesAboveTheHighestStorableAreRefused) {
  v1::EventBatch highest;
  AddEvent(highest, k2p63 - 1);
  EXPECT_EQ(Check(highest), "");

  v1::EventBatch wraps;
  AddEvent(wraps, k2p63 - 1);
  AddEvent(wraps, k2p63);
  EXPECT_THAT(
      Check(wraps),
      HasSubstr("event 1 (sequence 9223372036854775808): sequence is above 9223372036854775807"));

  v1::EventBatch top;
  AddEvent(top, UINT64_MAX);
  EXPECT_THAT(Check(top), HasSubstr("the highest the collector can store"));
}

TEST(ValidateHelloTest, ResumePointsAboveTheHighestStorableSequenceAreRefused) {
  auto h = GoodHello();
  h.set_first_unacked_sequence(k2p63 - 1);
  h.set_next_sequence(k2p63);  // one past the highest: an outbox that used it up
  EXPECT_EQ(ValidateHello(h, {}), "");

  h.set_next_sequence(k2p63 + 1);
  EXPECT_THAT(ValidateHello(h, {}), HasSubstr("hello.next_sequence 9223372036854775809 is above"));

  h = GoodHello();
  h.set_first_unacked_sequence(k2p63);
  h.set_next_sequence(k2p63);
  EXPECT_THAT(ValidateHello(h, {}),
              HasSubstr("hello.first_unacked_sequence 9223372036854775808 is above"));
}

TEST(SequenceEdgeTest, TheHighestAcceptedSequenceIsStoredAndResumedFromExactly) {
  testutil::TempDir dir;
  auto db = sql::Db::Open(dir.File("collector.db"));
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  ASSERT_TRUE(InitSchema(*db).ok());
  ASSERT_TRUE(CreateStoreToken(*db, "store-1", "partner-a", kNow).ok());
  ASSERT_TRUE(RecordHello(*db, AgentHello{"agent-1", "store-1", "0.1.0", "ob1"}, 1, kNow).ok());

  std::vector<IncomingEvent> edge = {{k2p63 - 2, "tills.majority_stopped", 3, kNow, "{}"},
                                     {k2p63 - 1, "tills.majority_stopped", 3, kNow, "{}"}};
  auto added = InsertEvents(*db, "agent-1", "store-1", edge, kNow);
  ASSERT_TRUE(added.ok()) << added.status().ToString();
  EXPECT_EQ(*added, 2);

  auto resumed = RecordHello(*db, AgentHello{"agent-1", "store-1", "0.1.0", "ob1"}, 2, kNow + 1);
  ASSERT_TRUE(resumed.ok()) << resumed.status().ToString();
  EXPECT_EQ(*resumed, k2p63 - 1) << "the next Welcome resumes after the highest stored sequence";
}

}  // namespace
}  // namespace setdiag::collector
