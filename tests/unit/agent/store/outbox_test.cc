#include "agent/store/outbox.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "common/sqlite.h"
#include "common/strings.h"
#include "temp_dir.h"

namespace setdiag::agent {
namespace {

using std::chrono::milliseconds;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int64_t kRowOverhead = 64;  // documented in outbox.cc, counted per row
constexpr size_t kAll = std::numeric_limits<size_t>::max();

// A JSON object payload of exactly `size` bytes (size >= 10).
std::string Payload(size_t size) {
  std::string p = "{\"pad\":\"";
  p.append(size - p.size() - 2, 'x');
  p += "\"}";
  return p;
}

NewEvent Ev(std::string kind, Severity sev, size_t payload_size = 100,
            int64_t detected = 1'700'000'000'000) {
  return NewEvent{std::move(kind), sev, detected, Payload(payload_size)};
}

int64_t RowSize(const std::string& kind, const std::string& payload) {
  return static_cast<int64_t>(kind.size() + payload.size()) + kRowOverhead;
}

std::vector<StoredEvent> ReadAll(Outbox& box) {
  auto r = box.ReadAfter(0, kAll, kAll);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : std::vector<StoredEvent>{};
}

std::vector<uint64_t> Seqs(const std::vector<StoredEvent>& events) {
  std::vector<uint64_t> out;
  for (const auto& e : events) out.push_back(e.sequence);
  return out;
}

uint64_t MustAppend(Outbox& box, const NewEvent& e) {
  auto seq = box.Append(e);
  EXPECT_TRUE(seq.ok()) << seq.status().ToString();
  return seq.ok() ? *seq : 0;
}

// Expands a gap payload's [[a,b],...] ranges into sequences.
std::vector<uint64_t> Expand(const nlohmann::json& ranges) {
  std::vector<uint64_t> out;
  for (const auto& r : ranges) {
    for (uint64_t s = r[0].get<uint64_t>(); s <= r[1].get<uint64_t>(); ++s) out.push_back(s);
  }
  return out;
}

class OutboxTest : public ::testing::Test {
 protected:
  std::unique_ptr<Outbox> OpenBox(OutboxLimits limits = {}) {
    auto box = Outbox::Open(path_, limits, clock_);
    EXPECT_NE(box, nullptr);
    EXPECT_FALSE(box->in_memory()) << box->reset_reason();
    EXPECT_EQ(box->reset_reason(), "");
    return box;
  }

  testutil::TempDir dir_;
  std::string path_ = dir_.File("outbox.db");
  FakeClock clock_;
};

TEST_F(OutboxTest, AppendAssignsOneTwoThree) {
  auto box = OpenBox();
  EXPECT_EQ(MustAppend(*box, Ev("a.one", Severity::kInfo)), 1u);
  EXPECT_EQ(MustAppend(*box, Ev("a.two", Severity::kNormal)), 2u);
  EXPECT_EQ(MustAppend(*box, Ev("a.three", Severity::kCritical)), 3u);
  OutboxStats s = box->Stats();
  EXPECT_EQ(s.depth, 3u);
  EXPECT_EQ(s.next_sequence, 4u);
  EXPECT_EQ(box->FirstUnacked(), 1u);
  EXPECT_FALSE(box->outbox_id().empty());
}

TEST_F(OutboxTest, ReadAfterReturnsAscendingContentAndRespectsMaxEvents) {
  auto box = OpenBox();
  for (int i = 1; i <= 10; ++i) {
    NewEvent e{Cat("k.e", i), i % 2 ? Severity::kInfo : Severity::kImportant, 1'690'000'000'000 + i,
               Cat("{\"i\":", i, "}")};
    ASSERT_EQ(MustAppend(*box, e), static_cast<uint64_t>(i));
  }
  auto first3 = box->ReadAfter(0, 3, kAll);
  ASSERT_TRUE(first3.ok());
  EXPECT_THAT(Seqs(*first3), ElementsAre(1u, 2u, 3u));
  EXPECT_EQ((*first3)[1].kind, "k.e2");
  EXPECT_EQ((*first3)[1].severity, Severity::kImportant);
  EXPECT_EQ((*first3)[1].detected_at_ms, 1'690'000'000'002);
  EXPECT_EQ((*first3)[1].payload, "{\"i\":2}");

  auto rest = box->ReadAfter(3, 100, kAll);
  ASSERT_TRUE(rest.ok());
  EXPECT_THAT(Seqs(*rest), ElementsAre(4u, 5u, 6u, 7u, 8u, 9u, 10u));

  auto after7 = box->ReadAfter(7, 2, kAll);
  ASSERT_TRUE(after7.ok());
  EXPECT_THAT(Seqs(*after7), ElementsAre(8u, 9u));

  auto none = box->ReadAfter(10, 100, kAll);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST_F(OutboxTest, ReadAfterStopsNearMaxBytesButReturnsAtLeastOne) {
  auto box = OpenBox();
  for (int i = 0; i < 5; ++i) MustAppend(*box, Ev("k", Severity::kInfo, 999));  // 1000 bytes each
  auto two = box->ReadAfter(0, 100, 2000);
  ASSERT_TRUE(two.ok());
  EXPECT_THAT(Seqs(*two), ElementsAre(1u, 2u));
  auto one = box->ReadAfter(0, 100, 1);
  ASSERT_TRUE(one.ok());
  EXPECT_THAT(Seqs(*one), ElementsAre(1u)) << "one oversized event must still make progress";
}

TEST_F(OutboxTest, AckUpToDeletesAndBytesDrop) {
  auto box = OpenBox();
  std::vector<NewEvent> events;
  for (int i = 0; i < 5; ++i)
    events.push_back(Ev("ack.test", Severity::kNormal, 200 + static_cast<size_t>(i)));
  int64_t total = 0;
  for (const auto& e : events) {
    MustAppend(*box, e);
    total += RowSize(e.kind, e.payload);
  }
  EXPECT_EQ(box->Stats().bytes, total);

  ASSERT_TRUE(box->AckUpTo(3).ok());
  int64_t remaining =
      RowSize(events[3].kind, events[3].payload) + RowSize(events[4].kind, events[4].payload);
  OutboxStats s = box->Stats();
  EXPECT_EQ(s.depth, 2u);
  EXPECT_EQ(s.bytes, remaining);
  EXPECT_EQ(box->FirstUnacked(), 4u);
  EXPECT_THAT(Seqs(ReadAll(*box)), ElementsAre(4u, 5u));

  // Acking something already gone changes nothing.
  ASSERT_TRUE(box->AckUpTo(2).ok());
  EXPECT_EQ(box->Stats().bytes, remaining);
  EXPECT_EQ(box->Stats().depth, 2u);

  ASSERT_TRUE(box->AckUpTo(5).ok());
  s = box->Stats();
  EXPECT_EQ(s.depth, 0u);
  EXPECT_EQ(s.bytes, 0);
  EXPECT_EQ(s.oldest_enqueued_ms, 0);
  EXPECT_EQ(box->FirstUnacked(), 0u);
  EXPECT_EQ(s.next_sequence, 6u) << "acking must not rewind the sequence counter";
}

TEST_F(OutboxTest, SequencesKeepIncreasingAcrossReopenAndFullAck) {
  std::string id;
  {
    auto box = OpenBox();
    id = box->outbox_id();
    EXPECT_EQ(MustAppend(*box, Ev("r", Severity::kInfo)), 1u);
    EXPECT_EQ(MustAppend(*box, Ev("r", Severity::kInfo)), 2u);
    EXPECT_EQ(MustAppend(*box, Ev("r", Severity::kCritical)), 3u);
  }
  {
    auto box = OpenBox();
    EXPECT_EQ(box->outbox_id(), id) << "the outbox id is stable across restarts";
    EXPECT_THAT(Seqs(ReadAll(*box)), ElementsAre(1u, 2u, 3u));
    EXPECT_EQ(MustAppend(*box, Ev("r", Severity::kInfo)), 4u);
    ASSERT_TRUE(box->AckUpTo(4).ok());
    EXPECT_EQ(box->Stats().depth, 0u);
  }
  {
    auto box = OpenBox();
    EXPECT_EQ(box->Stats().next_sequence, 5u);
    EXPECT_EQ(MustAppend(*box, Ev("r", Severity::kInfo)), 5u) << "sequences are never reused";
  }
}

TEST_F(OutboxTest, FreshUntilMarkedSyncedAndThatPersists) {
  {
    auto box = OpenBox();
    EXPECT_TRUE(box->fresh());
    ASSERT_TRUE(box->MarkSynced().ok());
    EXPECT_FALSE(box->fresh());
  }
  auto box = OpenBox();
  EXPECT_FALSE(box->fresh());
}

TEST_F(OutboxTest, StatsTrackOldestEnqueueTime) {
  auto box = OpenBox();
  int64_t t0 = clock_.NowMs();
  MustAppend(*box, Ev("s", Severity::kInfo));
  clock_.Advance(milliseconds(5000));
  MustAppend(*box, Ev("s", Severity::kInfo));
  EXPECT_EQ(box->Stats().oldest_enqueued_ms, t0);
  ASSERT_TRUE(box->AckUpTo(1).ok());
  EXPECT_EQ(box->Stats().oldest_enqueued_ms, t0 + 5000);
}

TEST_F(OutboxTest, OversizedEventIsRejectedWithInvalidArgument) {
  OutboxLimits limits;
  limits.max_event_bytes = 2048;
  auto box = OpenBox(limits);
  auto too_big = box->Append(Ev("big", Severity::kCritical, 4000));
  ASSERT_FALSE(too_big.ok());
  EXPECT_EQ(too_big.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(box->Stats().depth, 0u);
  EXPECT_EQ(box->Stats().next_sequence, 1u) << "a rejected event consumes no sequence";

  // Exactly at the limit (kind + payload + row overhead) is accepted.
  NewEvent fits = Ev("big", Severity::kCritical, static_cast<size_t>(2048 - 3 - kRowOverhead));
  ASSERT_EQ(RowSize(fits.kind, fits.payload), 2048);
  EXPECT_EQ(MustAppend(*box, fits), 1u);
  NewEvent one_more =
      Ev("big", Severity::kCritical, static_cast<size_t>(2048 - 3 - kRowOverhead + 1));
  EXPECT_EQ(box->Append(one_more).status().code(), absl::StatusCode::kInvalidArgument);
}

// The full-outbox scenario: 64 KiB with ~1 KiB events of mixed severity.
TEST_F(OutboxTest, WhenFullEvictsInfoAndNormalBeforeCriticalAndRecordsExactGaps) {
  OutboxLimits limits;
  limits.max_bytes = 64 * 1024;
  auto box = OpenBox(limits);

  std::set<uint64_t> critical, normal, info;
  std::map<uint64_t, int64_t> size_of;  // every event we appended, by sequence
  uint64_t dropped_on_arrival = 0;
  for (int i = 0; i < 200; ++i) {
    Severity sev =
        i % 8 == 0 ? Severity::kCritical : (i % 2 == 1 ? Severity::kNormal : Severity::kInfo);
    NewEvent e = Ev(Cat("load.", SeverityName(sev)), sev, 1000);
    auto appended = box->Append(e);
    if (!appended.ok()) {
      // Only an info event may be turned away, when nothing of its own rank
      // is left to make room: it never displaces a more important event.
      ASSERT_EQ(appended.status().code(), absl::StatusCode::kResourceExhausted)
          << appended.status();
      ASSERT_EQ(sev, Severity::kInfo);
      ++dropped_on_arrival;
      continue;
    }
    uint64_t seq = *appended;
    ASSERT_NE(seq, 0u);
    size_of[seq] = RowSize(e.kind, e.payload);
    (sev == Severity::kCritical ? critical : sev == Severity::kNormal ? normal : info).insert(seq);
    ASSERT_LE(box->Stats().bytes, limits.max_bytes) << "after append " << i;
  }

  auto present = ReadAll(*box);
  std::set<uint64_t> present_seqs;
  std::vector<StoredEvent> gaps;
  int64_t present_bytes = 0;
  for (const auto& e : present) {
    present_seqs.insert(e.sequence);
    present_bytes += RowSize(e.kind, e.payload);
    if (e.kind == kGapKind) gaps.push_back(e);
  }
  OutboxStats stats = box->Stats();
  EXPECT_EQ(stats.bytes, present_bytes) << "byte accounting must match what is stored";
  EXPECT_EQ(stats.depth, present.size());

  // All criticals survive.
  for (uint64_t s : critical)
    EXPECT_TRUE(present_seqs.count(s)) << "critical " << s << " was evicted";

  // What is missing: every sequence ever assigned that is not in the outbox.
  std::set<uint64_t> missing;
  for (uint64_t s = 1; s < stats.next_sequence; ++s) {
    if (!present_seqs.count(s)) missing.insert(s);
  }
  ASSERT_FALSE(missing.empty()) << "the outbox should have overflowed";
  ASSERT_FALSE(gaps.empty());
  for (uint64_t s : missing) {
    EXPECT_TRUE(info.count(s) || normal.count(s))
        << "sequence " << s << " is neither info nor normal";
  }

  // The gap records account for exactly the missing sequences.
  std::multiset<uint64_t> covered;
  int64_t counted = 0;
  bool saw_normal_evicted = false;
  for (const auto& g : gaps) {
    EXPECT_EQ(g.severity, Severity::kImportant);
    auto j = nlohmann::json::parse(g.payload, nullptr, false);
    ASSERT_TRUE(j.is_object()) << g.payload;
    EXPECT_EQ(j["reason"], "outbox_full");
    EXPECT_EQ(j["sequences_truncated"], false);
    std::vector<uint64_t> seqs = Expand(j["sequences"]);
    EXPECT_EQ(j["count"].get<int64_t>(), static_cast<int64_t>(seqs.size())) << g.payload;
    int64_t freed = 0;
    for (uint64_t s : seqs) {
      covered.insert(s);
      EXPECT_LT(s, g.sequence) << "a gap names only sequences before itself";
      if (size_of.count(s)) freed += size_of[s];
    }
    EXPECT_EQ(j["bytes"].get<int64_t>(), freed);
    counted += j["count"].get<int64_t>();
    EXPECT_FALSE(j["by_severity"].contains("critical")) << g.payload;
    // Info goes before normal: when this gap evicted normal events, no info
    // event older than the gap may still be waiting.
    if (j["by_severity"].contains("normal")) {
      saw_normal_evicted = true;
      for (uint64_t s : info) {
        if (s < g.sequence) {
          EXPECT_FALSE(present_seqs.count(s)) << "info " << s << " outlived gap " << g.sequence;
        }
      }
    }
  }
  EXPECT_TRUE(saw_normal_evicted) << "the scenario should reach normal events";
  EXPECT_EQ(counted, static_cast<int64_t>(missing.size()));
  EXPECT_EQ(std::set<uint64_t>(covered.begin(), covered.end()), missing);
  EXPECT_EQ(covered.size(), missing.size()) << "no sequence is reported twice";
  EXPECT_EQ(stats.gaps_total, missing.size() + dropped_on_arrival);
}

TEST_F(OutboxTest, FullOfCriticalEventsTurnsAwayLesserOnesAndReportsThemLater) {
  OutboxLimits limits;
  limits.max_bytes = 64 * 1024;
  auto box = OpenBox(limits);
  std::vector<uint64_t> critical;
  for (int i = 0; i < 80; ++i)
    critical.push_back(MustAppend(*box, Ev("c.crit", Severity::kCritical, 1000)));
  // Full of critical events: a normal one is refused, no critical goes.
  // A normal event bigger than the free space left.
  size_t free_bytes = static_cast<size_t>(limits.max_bytes - box->Stats().bytes);
  const uint64_t gaps_before = box->Stats().gaps_total;  // older criticals made room for newer ones
  auto refused = box->Append(Ev("n.normal", Severity::kNormal, free_bytes + 100));
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted) << refused.status();
  EXPECT_EQ(box->Stats().gaps_total, gaps_before + 1);
  auto all = ReadAll(*box);
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(all.back().sequence, critical.back()) << "the newest critical event is kept";
  for (const auto& e : all) EXPECT_TRUE(e.kind == "c.crit" || e.kind == kGapKind) << e.kind;
  // Once the collector acknowledged some, housekeeping reports the loss.
  ASSERT_TRUE(box->AckUpTo(critical[50]).ok());
  ASSERT_TRUE(box->ExpireOld().ok());
  auto after = ReadAll(*box);
  ASSERT_FALSE(after.empty());
  const StoredEvent& gap = after.back();
  ASSERT_EQ(gap.kind, kGapKind);
  auto j = nlohmann::json::parse(gap.payload);
  EXPECT_EQ(j["reason"], "outbox_full_dropped_on_arrival");
  EXPECT_EQ(j["count"], 1);
  EXPECT_EQ(j["by_kind"]["n.normal"], 1);
  EXPECT_TRUE(j["sequences"].empty());
  // Reported once, not again at the next sweep.
  ASSERT_TRUE(box->ExpireOld().ok());
  EXPECT_EQ(ReadAll(*box).size(), after.size());
}

TEST_F(OutboxTest, RejectsEventsTheCollectorWouldReject) {
  auto box = OpenBox(OutboxLimits{});
  EXPECT_EQ(box->Append(Ev("bad kind!", Severity::kNormal)).status().code(),
            absl::StatusCode::kInvalidArgument);
  NewEvent not_json = Ev("ok.kind", Severity::kNormal);
  not_json.payload = "not json";
  EXPECT_EQ(box->Append(not_json).status().code(), absl::StatusCode::kInvalidArgument);
  NewEvent array = Ev("ok.kind", Severity::kNormal);
  array.payload = "[1,2]";
  EXPECT_EQ(box->Append(array).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(box->Stats().depth, 0u);
}

TEST_F(OutboxTest, ExpireOldRemovesOnlyEventsPastMaxAgeAndRecordsAGap) {
  OutboxLimits limits;
  limits.max_age_ms = 3'600'000;
  auto box = OpenBox(limits);
  for (int i = 0; i < 3; ++i) MustAppend(*box, Ev("old", Severity::kCritical, 50));
  clock_.Advance(milliseconds(1'800'000));
  MustAppend(*box, Ev("newer", Severity::kInfo, 50));
  MustAppend(*box, Ev("newer", Severity::kInfo, 50));

  // Exactly max_age old: not yet expired.
  clock_.Advance(milliseconds(1'800'000));
  ASSERT_TRUE(box->ExpireOld().ok());
  EXPECT_THAT(Seqs(ReadAll(*box)), ElementsAre(1u, 2u, 3u, 4u, 5u));
  EXPECT_EQ(box->Stats().gaps_total, 0u);

  clock_.Advance(milliseconds(1));
  ASSERT_TRUE(box->ExpireOld().ok());
  auto events = ReadAll(*box);
  ASSERT_THAT(Seqs(events), ElementsAre(4u, 5u, 6u));
  const StoredEvent& gap = events[2];
  EXPECT_EQ(gap.kind, kGapKind);
  auto j = nlohmann::json::parse(gap.payload);
  EXPECT_EQ(j["reason"], "expired");
  EXPECT_EQ(j["count"], 3);
  EXPECT_EQ(j["sequences"], nlohmann::json::parse("[[1,3]]"));
  EXPECT_EQ(j["by_severity"]["critical"], 3);
  EXPECT_EQ(box->Stats().gaps_total, 3u);

  // Later the two newer events expire too; the fresh gap record does not.
  clock_.Advance(milliseconds(1'800'000));
  ASSERT_TRUE(box->ExpireOld().ok());
  events = ReadAll(*box);
  ASSERT_THAT(Seqs(events), ElementsAre(6u, 7u));
  auto j2 = nlohmann::json::parse(events[1].payload);
  EXPECT_EQ(j2["reason"], "expired");
  EXPECT_EQ(j2["count"], 2);
  EXPECT_EQ(j2["sequences"], nlohmann::json::parse("[[4,5]]"));
  EXPECT_EQ(box->Stats().gaps_total, 5u);
  // Byte accounting after expiry: only the two gap records remain.
  EXPECT_EQ(box->Stats().bytes, RowSize(events[0].kind, events[0].payload) +
                                    RowSize(events[1].kind, events[1].payload));
}

TEST_F(OutboxTest, ExpireOldOnAYoungOutboxDoesNothing) {
  OutboxLimits limits;
  limits.max_age_ms = 3'600'000;
  auto box = OpenBox(limits);
  MustAppend(*box, Ev("young", Severity::kInfo));
  clock_.Advance(milliseconds(60'000));
  ASSERT_TRUE(box->ExpireOld().ok());
  EXPECT_THAT(Seqs(ReadAll(*box)), ElementsAre(1u));
  EXPECT_EQ(box->Stats().next_sequence, 2u) << "no gap record when nothing expired";
}

TEST_F(OutboxTest, RenumberShiftsWaitingEventsAndNextSequence) {
  auto box = OpenBox();
  MustAppend(*box, NewEvent{"a", Severity::kInfo, 1, "{\"n\":1}"});
  MustAppend(*box, NewEvent{"b", Severity::kNormal, 2, "{\"n\":2}"});
  MustAppend(*box, NewEvent{"c", Severity::kCritical, 3, "{\"n\":3}"});
  ASSERT_TRUE(box->Renumber(101).ok());
  auto events = ReadAll(*box);
  ASSERT_THAT(Seqs(events), ElementsAre(101u, 102u, 103u));
  EXPECT_EQ(events[0].kind, "a");
  EXPECT_EQ(events[1].payload, "{\"n\":2}");
  EXPECT_EQ(events[2].severity, Severity::kCritical);
  EXPECT_EQ(box->Stats().next_sequence, 104u);
  EXPECT_EQ(box->FirstUnacked(), 101u);
  EXPECT_EQ(MustAppend(*box, Ev("d", Severity::kInfo)), 104u);
}

TEST_F(OutboxTest, RenumberNeverMovesSequencesDown) {
  auto box = OpenBox();
  for (int i = 0; i < 5; ++i) MustAppend(*box, Ev("x", Severity::kInfo));
  ASSERT_TRUE(box->AckUpTo(2).ok());   // 3, 4, 5 wait
  ASSERT_TRUE(box->Renumber(3).ok());  // already there
  EXPECT_THAT(Seqs(ReadAll(*box)), ElementsAre(3u, 4u, 5u));
  ASSERT_TRUE(box->Renumber(1).ok());  // below: would reuse 1 and 2
  EXPECT_THAT(Seqs(ReadAll(*box)), ElementsAre(3u, 4u, 5u));
  EXPECT_EQ(box->Stats().next_sequence, 6u);
  EXPECT_EQ(MustAppend(*box, Ev("x", Severity::kInfo)), 6u);
}

TEST_F(OutboxTest, RenumberOfAnEmptyOutboxMovesNextSequence) {
  auto box = OpenBox();
  ASSERT_TRUE(box->Renumber(40).ok());
  EXPECT_EQ(box->Stats().next_sequence, 40u);
  EXPECT_EQ(MustAppend(*box, Ev("x", Severity::kInfo)), 40u);
}

TEST_F(OutboxTest, RenumberShiftsTheRangesInsideGapPayloads) {
  OutboxLimits limits;
  limits.max_age_ms = 3'600'000;
  auto box = OpenBox(limits);
  MustAppend(*box, Ev("x", Severity::kInfo));  // 1
  MustAppend(*box, Ev("x", Severity::kInfo));  // 2
  clock_.Advance(milliseconds(3'600'001));
  ASSERT_TRUE(box->ExpireOld().ok());          // gap 3 names [[1,2]]
  MustAppend(*box, Ev("y", Severity::kInfo));  // 4
  ASSERT_THAT(Seqs(ReadAll(*box)), ElementsAre(3u, 4u));

  ASSERT_TRUE(box->Renumber(50).ok());  // delta 47
  auto events = ReadAll(*box);
  ASSERT_THAT(Seqs(events), ElementsAre(50u, 51u));
  ASSERT_EQ(events[0].kind, kGapKind);
  auto j = nlohmann::json::parse(events[0].payload);
  EXPECT_EQ(j["sequences"], nlohmann::json::parse("[[48,49]]"));
  EXPECT_EQ(j["count"], 2);
  EXPECT_EQ(j["reason"], "expired");
  EXPECT_EQ(events[1].kind, "y");
  EXPECT_EQ(box->Stats().next_sequence, 52u);
}

TEST_F(OutboxTest, CorruptFileIsMovedAsideAndAFreshOutboxWorks) {
  std::string garbage;
  for (int i = 0; i < 512; ++i) garbage += "this is not an SQLite database";
  testutil::WriteBytes(path_, garbage);

  auto box = Outbox::Open(path_, {}, clock_);
  ASSERT_NE(box, nullptr);
  EXPECT_FALSE(box->reset_reason().empty());
  EXPECT_THAT(box->reset_reason(), HasSubstr("outbox.db.corrupt-"));
  EXPECT_FALSE(box->in_memory()) << "a corrupt file is replaced on disk, not by memory";

  std::vector<std::string> aside;
  for (const auto& entry : std::filesystem::directory_iterator(dir_.path())) {
    std::string name = entry.path().filename().string();
    if (name.starts_with("outbox.db.corrupt-")) aside.push_back(name);
  }
  ASSERT_EQ(aside.size(), 1u);
  EXPECT_EQ(testutil::ReadBytes(dir_.File(aside[0])), garbage)
      << "the old bytes are kept for inspection";

  EXPECT_EQ(MustAppend(*box, Ev("after.reset", Severity::kCritical)), 1u);
  EXPECT_THAT(Seqs(ReadAll(*box)), ElementsAre(1u));
  EXPECT_TRUE(box->fresh());
  box.reset();

  // The fresh file is a real, durable outbox.
  auto again = OpenBox();
  EXPECT_THAT(Seqs(ReadAll(*again)), ElementsAre(1u));
}

// A downgraded agent meets an outbox written by a newer build: it keeps
// watching with events in memory and says why, and the newer file with its
// unsent events is never moved aside, rewritten or migrated.
TEST_F(OutboxTest, AnOutboxFromANewerBuildIsLeftAsItIsAndTheAgentRunsInMemory) {
  {
    auto box = OpenBox();
    MustAppend(*box, Ev("unsent.by.the.newer.build", Severity::kCritical));
  }
  {
    auto db = sql::Db::Open(path_);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE(db->Exec("PRAGMA user_version = 99").ok());
    ASSERT_TRUE(db->Exec("PRAGMA wal_checkpoint(TRUNCATE)").ok());
  }
  const std::string bytes = testutil::ReadBytes(path_);

  auto box = Outbox::Open(path_, {}, clock_);
  ASSERT_NE(box, nullptr);
  EXPECT_TRUE(box->in_memory());
  EXPECT_THAT(box->reset_reason(),
              HasSubstr("has schema version 99, newer than this build knows (1)"));
  EXPECT_THAT(box->reset_reason(), HasSubstr("left unchanged"));
  box.reset();
  EXPECT_EQ(testutil::ReadBytes(path_), bytes);
  for (const auto& entry : std::filesystem::directory_iterator(dir_.path())) {
    EXPECT_FALSE(entry.path().filename().string().starts_with("outbox.db.corrupt-"))
        << entry.path();
  }
}

// The first release's outbox (no user_version) opens as version 1 with its
// events, sequences and outbox id as they were.
TEST_F(OutboxTest, AnOutboxOfTheFirstReleaseIsMigratedWithEverythingInIt) {
  std::string id;
  {
    auto box = OpenBox();
    MustAppend(*box, Ev("a", Severity::kNormal));
    MustAppend(*box, Ev("b", Severity::kCritical));
    id = box->outbox_id();
  }
  {
    auto db = sql::Db::Open(path_);
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE(db->Exec("PRAGMA user_version = 0").ok());  // as 0.1.0 left it
  }
  auto box = OpenBox();
  EXPECT_EQ(box->outbox_id(), id);
  EXPECT_THAT(Seqs(ReadAll(*box)), ElementsAre(1u, 2u));
  EXPECT_EQ(MustAppend(*box, Ev("c", Severity::kNormal)), 3u);
  auto db = sql::Db::Open(path_);
  ASSERT_TRUE(db.ok());
  EXPECT_EQ(*db->QueryInt("PRAGMA user_version"), 1);
}

TEST_F(OutboxTest, UnwritableDirectoryFallsBackToMemory) {
  // We may run as root, so permissions prove nothing: put the file under a
  // path component that is a regular file instead.
  std::string blocker = dir_.File("not-a-dir");
  testutil::WriteBytes(blocker, "x");
  auto box = Outbox::Open(blocker + "/outbox.db", {}, clock_);
  ASSERT_NE(box, nullptr);
  EXPECT_TRUE(box->in_memory());
  EXPECT_FALSE(box->reset_reason().empty());
  EXPECT_EQ(MustAppend(*box, Ev("mem", Severity::kInfo)), 1u);
  EXPECT_EQ(MustAppend(*box, Ev("mem", Severity::kInfo)), 2u);
  EXPECT_THAT(Seqs(ReadAll(*box)), ElementsAre(1u, 2u));
}

TEST_F(OutboxTest, InMemoryOutboxOnRequest) {
  auto box = Outbox::Open(":memory:", {}, clock_);
  ASSERT_NE(box, nullptr);
  EXPECT_TRUE(box->in_memory());
  EXPECT_EQ(box->reset_reason(), "");
  EXPECT_EQ(MustAppend(*box, Ev("m", Severity::kInfo)), 1u);
}

TEST_F(OutboxTest, TwoHandlesOnOneFileNeverShareASequence) {
  auto a = OpenBox();
  auto b = OpenBox();
  EXPECT_EQ(a->outbox_id(), b->outbox_id());
  std::set<uint64_t> seen;
  uint64_t prev = 0;
  for (int i = 0; i < 10; ++i) {
    Outbox& box = i % 2 ? *a : *b;
    uint64_t s = MustAppend(box, Ev("multi", Severity::kNormal));
    EXPECT_GT(s, prev);
    prev = s;
    EXPECT_TRUE(seen.insert(s).second) << "sequence " << s << " assigned twice";
  }
  EXPECT_EQ(ReadAll(*a).size(), 10u);
  EXPECT_EQ(a->Stats().next_sequence, 11u);
}

TEST_F(OutboxTest, ConcurrentAppendsFromThreadsGetDistinctSequences) {
  auto box = OpenBox();
  constexpr int kThreads = 4, kPerThread = 50;
  std::vector<std::vector<uint64_t>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&box, &got, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto s = box->Append(Ev(Cat("thread.", t), Severity::kNormal, 50));
        if (s.ok()) got[static_cast<size_t>(t)].push_back(*s);
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<uint64_t> all;
  for (const auto& v : got) {
    EXPECT_EQ(v.size(), static_cast<size_t>(kPerThread));
    for (size_t i = 1; i < v.size(); ++i) EXPECT_LT(v[i - 1], v[i]) << "per-thread order";
    all.insert(v.begin(), v.end());
  }
  EXPECT_EQ(all.size(), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_EQ(*all.begin(), 1u);
  EXPECT_EQ(*all.rbegin(), static_cast<uint64_t>(kThreads * kPerThread));
  EXPECT_EQ(ReadAll(*box).size(), static_cast<size_t>(kThreads * kPerThread));
}

// ---- issue 11, item 9: a disk that refuses writes loses nothing silently ----

// A full disk: a second handle (a tool, which never holds) fills every page
// of the file under SQLite's page limit with ever smaller events, then `box`
// gets the same limit, so that nothing it writes fits any more. Returns how
// many filler events were committed.
int FillTheDisk(const std::string& path, Outbox& box, Clock& clock) {
  auto filler = Outbox::OpenWithoutRepair(path, {}, clock);
  EXPECT_TRUE(filler.ok()) << filler.status();
  if (!filler.ok()) return -1;
  EXPECT_TRUE((*filler)->LimitPagesForTest(1).ok());
  int n = 0;
  for (size_t size :
       {size_t{3000}, size_t{1000}, size_t{300}, size_t{100}, size_t{30}, size_t{10}}) {
    while (n < 5000) {
      auto r = (*filler)->Append(Ev("test.fill", Severity::kNormal, size));
      if (!r.ok()) {
        EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted) << r.status();
        break;
      }
      ++n;
    }
  }
  EXPECT_TRUE(box.LimitPagesForTest(1).ok());
  return n;
}

std::vector<std::string> Kinds(const std::vector<StoredEvent>& events) {
  std::vector<std::string> out;
  for (const auto& e : events) out.push_back(e.kind);
  return out;
}

TEST_F(OutboxTest, FindingsTheDiskRefusesAreHeldAndCommittedInOrderWhenSpaceReturns) {
  auto box = OpenBox();
  int fitted = FillTheDisk(path_, *box, clock_);
  ASSERT_GT(fitted, 0);
  auto refused = box->Append(Ev("test.fill", Severity::kNormal));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable) << refused.status();
  EXPECT_EQ(box->held(), 2u) << "the refused event and the agent's own notice";
  auto crit = box->Append(Ev("tills.majority_stopped", Severity::kCritical));
  ASSERT_FALSE(crit.ok());
  EXPECT_EQ(crit.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(crit.status().message()), HasSubstr("held in memory"));
  EXPECT_EQ(box->held(), 3u);
  EXPECT_FALSE(box->CommitHeld().ok()) << "still full";
  EXPECT_EQ(box->held(), 3u);
  EXPECT_EQ(box->Stats().held, 3u);
  EXPECT_EQ(box->Stats().gaps_total, 0u) << "nothing is lost yet";

  ASSERT_TRUE(box->LimitPagesForTest(1'000'000).ok());  // space returns
  size_t committed = 0;
  ASSERT_TRUE(box->CommitHeld(&committed).ok());
  EXPECT_EQ(committed, 3u);
  EXPECT_EQ(box->held(), 0u);
  auto events = ReadAll(*box);
  ASSERT_EQ(events.size(), static_cast<size_t>(fitted) + 4);
  std::vector<StoredEvent> tail(events.end() - 4, events.end());
  EXPECT_THAT(Kinds(tail), ElementsAre("agent.disk_full", "test.fill", "tills.majority_stopped",
                                       "agent.disk_full"));
  auto raised = nlohmann::json::parse(tail[0].payload);
  auto cleared = nlohmann::json::parse(tail[3].payload);
  EXPECT_EQ(tail[0].severity, Severity::kImportant);
  EXPECT_EQ(raised["state"], "raised");
  EXPECT_EQ(raised["path"], dir_.path());
  EXPECT_TRUE(raised["free_bytes"].is_number_integer());
  EXPECT_THAT(raised["fix_en"].get<std::string>(), HasSubstr("Free space"));
  EXPECT_FALSE(raised["summary_ru"].get<std::string>().empty());
  EXPECT_EQ(cleared["state"], "cleared");
  EXPECT_EQ(cleared["episode"], raised["episode"]);
  EXPECT_EQ(tail[2].severity, Severity::kCritical);
  EXPECT_EQ(box->Stats().gaps_total, 0u);
  // And the outbox works as before.
  EXPECT_EQ(MustAppend(*box, Ev("after", Severity::kInfo)), tail[3].sequence + 1);
}

TEST_F(OutboxTest, HeldEventsAreBoundedCriticalFirstAndWhatIsLostBecomesAGap) {
  OutboxLimits limits;
  limits.max_held_events = 4;
  auto box = OpenBox(limits);
  ASSERT_GT(FillTheDisk(path_, *box, clock_), 0);
  EXPECT_FALSE(box->Append(Ev("test.fill", Severity::kNormal))
                   .ok());  // held: notice (important), fill (normal)
  EXPECT_FALSE(box->Append(Ev("i.one", Severity::kInfo)).ok());
  EXPECT_FALSE(box->Append(Ev("i.two", Severity::kInfo)).ok());
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(box->Append(Ev(Cat("c.", i), Severity::kCritical)).ok());
  EXPECT_FALSE(box->Append(Ev("i.three", Severity::kInfo)).ok())
      << "refused: only criticals are held";
  EXPECT_EQ(box->held(), 4u);
  EXPECT_EQ(box->Stats().gaps_total, 5u) << "lost events count at once";

  ASSERT_TRUE(box->LimitPagesForTest(1'000'000).ok());
  ASSERT_TRUE(box->CommitHeld().ok());
  auto events = ReadAll(*box);
  std::vector<StoredEvent> tail(events.end() - 6, events.end());
  EXPECT_THAT(Kinds(tail), ElementsAre("c.0", "c.1", "c.2", "c.3", kGapKind, "agent.disk_full"));
  auto gap = nlohmann::json::parse(tail[4].payload);
  EXPECT_EQ(gap["reason"], "disk_full");
  EXPECT_EQ(gap["count"], 5);
  EXPECT_EQ(gap["by_severity"]["info"], 3);
  EXPECT_EQ(gap["by_severity"]["normal"], 1);
  EXPECT_EQ(gap["by_severity"]["important"], 1);
  EXPECT_FALSE(gap["by_severity"].contains("critical"));
  EXPECT_EQ(gap["by_kind"]["i.three"], 1);
  EXPECT_EQ(box->Stats().gaps_total, 5u) << "recorded once, not twice";
}

TEST_F(OutboxTest, EventsHeldWhenTheAgentStopsAreAppendedAtTheNextStart) {
  {
    auto box = OpenBox();
    ASSERT_GT(FillTheDisk(path_, *box, clock_), 0);
    EXPECT_FALSE(box->Append(Ev("test.fill", Severity::kNormal)).ok());
    EXPECT_FALSE(box->Append(Ev("tills.majority_stopped", Severity::kCritical)).ok());
  }  // stops while the "disk" is full: the held events go to outbox.db.held.json
  EXPECT_TRUE(std::filesystem::exists(path_ + ".held.json"));
  auto box = OpenBox();
  EXPECT_FALSE(std::filesystem::exists(path_ + ".held.json"));
  auto events = ReadAll(*box);
  std::vector<StoredEvent> tail(events.end() - 4, events.end());
  EXPECT_THAT(Kinds(tail), ElementsAre("agent.disk_full", "test.fill", "tills.majority_stopped",
                                       "agent.disk_full"));
  EXPECT_EQ(box->held(), 0u);
}

TEST_F(OutboxTest, ToolsWithoutRepairDoNotHoldButFail) {
  auto made = OpenBox();
  made.reset();
  auto tool = Outbox::OpenWithoutRepair(path_, {}, clock_);
  ASSERT_TRUE(tool.ok());
  ASSERT_TRUE((*tool)->LimitPagesForTest(1).ok());
  absl::Status last;
  for (int i = 0; i < 500 && last.ok(); ++i)
    last = (*tool)->Append(Ev("emit", Severity::kNormal, 3000)).status();
  EXPECT_EQ(last.code(), absl::StatusCode::kResourceExhausted) << last.ToString();
  EXPECT_EQ((*tool)->held(), 0u);
}

// ---- issue 11, item 10: a damaged outbox is read before it is given up ----

TEST_F(OutboxTest, DamagedOutboxIsReadBeforeItIsGivenUpAndItsEventsComeBack) {
  std::string old_id;
  {
    auto box = OpenBox();
    old_id = box->outbox_id();
    for (int i = 1; i <= 100; ++i) {
      MustAppend(*box, Ev(i % 10 == 0 ? "tills.majority_stopped" : "test.waiting",
                          i % 10 == 0 ? Severity::kCritical : Severity::kNormal, 500));
    }
  }  // closed: the WAL is checkpointed into the file
  const auto size = std::filesystem::file_size(path_);
  const size_t pages = size / 4096;
  ASSERT_GT(pages, 10u);
  {  // one page in the middle of the events is overwritten
    std::fstream f(path_, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>((pages / 2) * 4096));
    std::string junk(4096, '\xff');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  auto box = Outbox::Open(path_, {}, clock_);
  ASSERT_NE(box, nullptr);
  EXPECT_FALSE(box->in_memory());
  EXPECT_THAT(box->reset_reason(), HasSubstr("moved aside"));
  auto d = nlohmann::json::parse(box->reset_details());
  EXPECT_EQ(d["previous_outbox_id"], old_id);
  EXPECT_EQ(d["previous_next_sequence"], 101);
  const int64_t recovered = d["recovered"]["count"].get<int64_t>();
  const int64_t unreadable = d["unreadable_rows"].get<int64_t>();
  EXPECT_GT(recovered, 0);
  EXPECT_GT(unreadable, 0) << "the damaged page held some events";
  EXPECT_EQ(recovered + unreadable, 100);
  EXPECT_EQ(d["reappended"], recovered);
  EXPECT_THAT(d["moved_to"].get<std::string>(), HasSubstr("outbox.db.corrupt-"));
  // The readable events wait in the fresh outbox, in their old order, marked.
  auto events = ReadAll(*box);
  ASSERT_EQ(static_cast<int64_t>(events.size()), recovered);
  uint64_t prev = 0;
  std::vector<uint64_t> old_seqs;
  for (const auto& e : events) {
    auto p = nlohmann::json::parse(e.payload);
    ASSERT_TRUE(p.contains("recovered_from")) << e.payload;
    EXPECT_EQ(p["recovered_from"]["outbox_id"], old_id);
    uint64_t old_seq = p["recovered_from"]["sequence"].get<uint64_t>();
    EXPECT_GT(old_seq, prev);
    prev = old_seq;
    old_seqs.push_back(old_seq);
    EXPECT_EQ(e.severity, old_seq % 10 == 0 ? Severity::kCritical : Severity::kNormal);
  }
  EXPECT_EQ(Expand(d["recovered"]["sequences"]), old_seqs);
  EXPECT_NE(box->outbox_id(), old_id);
}

}  // namespace
}  // namespace setdiag::agent
