// A model-based test of the outbox: random sequences of appends of every
// severity, sends, acks (some lost), reconnects that resume from the
// collector's last committed sequence, evictions under a small byte limit,
// expiry under a short age limit and restarts, played against a simple
// model of the collector. After each run everything is drained and checked:
//   - nothing is lost that no gap reports: every event that got a sequence
//     reached the collector, or its sequence is listed by a setdiag.gap that
//     reached it (or by a gap that was itself lost and is listed so);
//   - every event refused on arrival is counted by an
//     outbox_full_dropped_on_arrival gap;
//   - nothing twice: one sequence never carries two events, one event never
//     arrives under two sequences;
//   - eviction takes the least important, oldest events first and never one
//     more important than the newcomer: a critical event is never evicted
//     while an ordinary one waits.
// 10 seeds x 1,500 steps = 15,000 random steps (FakeClock, no sleeps).

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "agent/store/outbox.h"
#include "common/clock.h"
#include "common/strings.h"
#include "temp_dir.h"

namespace setdiag::agent {
namespace {

using nlohmann::json;

constexpr size_t kAll = 1'000'000;
constexpr int kSeeds = 10;
constexpr int kSteps = 1500;

struct Sent {
  int64_t id = -1;  // the model's event id; -1 for the outbox's own records
  Severity severity = Severity::kNormal;
};

// What the collector holds: sequence -> the event it carried.
struct Collector {
  std::map<uint64_t, StoredEvent> stored;
  uint64_t last_committed() const { return stored.empty() ? 0 : stored.rbegin()->first; }
};

// The outbox's accounting (agent/store/outbox.cc): a row counts its kind and
// payload plus 64 bytes, and an eviction keeps 4 KiB for its gap record.
constexpr int64_t kRowOverhead = 64;
constexpr int64_t kGapReserve = 4096;
int64_t RowBytes(const std::string& kind, const std::string& payload) {
  return static_cast<int64_t>(kind.size() + payload.size()) + kRowOverhead;
}

int64_t IdOf(const StoredEvent& e) {
  if (e.kind == kGapKind) return -1;
  auto j = json::parse(e.payload, nullptr, false);
  return j.is_object() && j.contains("id") ? j["id"].get<int64_t>() : -1;
}

struct Totals {
  int64_t accepted = 0, refused = 0, reopened = 0;
  std::map<std::string, int64_t> gap_reasons;  // delivered gap records by reason
};

class OutboxModel {
 public:
  explicit OutboxModel(uint64_t seed) : rng_(seed) {
    limits_.max_bytes = 24 * 1024;
    limits_.max_age_ms = 3'600'000;
    Reopen();
  }

  void AddTo(Totals& t) const {
    t.accepted += static_cast<int64_t>(accepted_.size());
    t.refused += refused_;
    t.reopened += reopened_;
    for (const auto& [seq, e] : collector_.stored) {
      if (e.kind == kGapKind) t.gap_reasons[json::parse(e.payload)["reason"].get<std::string>()]++;
    }
  }

  void Run(int steps) {
    Renumbering();
    for (int i = 0; i < steps && !::testing::Test::HasFatalFailure(); ++i) {
      Step();
      ScanGaps();
    }
    Drain();
    Check();
  }

 private:
  int Pick(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }

  void Reopen() {
    box_.reset();
    box_ = Outbox::Open(path_, limits_, clock_);
    ASSERT_NE(box_, nullptr);
    ASSERT_FALSE(box_->in_memory()) << box_->reset_reason();
  }

  // The agent's first connect: its earlier outbox (same agent id) already
  // delivered 1..K, so the collector answers renumber_from = K + 1.
  void Renumbering() {
    const auto earlier = static_cast<uint64_t>(1 + Pick(40));
    for (uint64_t s = 1; s <= earlier; ++s) {
      collector_.stored[s] =
          StoredEvent{s, "earlier.outbox", Severity::kNormal, clock_.NowMs(), "{}"};
    }
    for (int i = Pick(5); i > 0; --i) Append();
    ASSERT_TRUE(box_->fresh());
    ASSERT_TRUE(box_->Renumber(earlier + 1).ok());
    // Renumbering shifts what waits so that the first becomes earlier + 1.
    if (!accepted_.empty()) {
      uint64_t first = UINT64_MAX;
      for (const auto& [id, seq] : accepted_) first = std::min(first, seq);
      const uint64_t delta = earlier + 1 - first;
      std::map<uint64_t, Severity> shifted;
      for (auto& [id, seq] : accepted_) {
        shifted[seq + delta] = severity_of_seq_[seq];
        seq += delta;
      }
      severity_of_seq_ = shifted;
    }
    ASSERT_TRUE(box_->MarkSynced().ok());
    renumbered_from_ = earlier + 1;
  }

  void Step() {
    // The link goes down and comes back: while it is down the outbox fills
    // (evictions) and ages (expiry).
    if (Pick(60) == 0) link_up_ = !link_up_;
    switch (Pick(20)) {
      case 0:
      case 1:
      case 2:
      case 3:
      case 4:
      case 5:
      case 6:
      case 7:
        Append();
        break;
      case 8:
      case 9:
      case 10:
      case 11:
        Send(/*ack=*/true);
        break;
      case 12:
        Send(/*ack=*/false);
        break;  // stored, but the ack is lost
      case 13:
        Reconnect();
        break;
      case 14:
        clock_.Advance(std::chrono::milliseconds(Pick(600'000)));
        break;
      case 15:
        ASSERT_TRUE(box_->ExpireOld().ok());
        break;
      case 16:
        Reopen();
        ++reopened_;
        break;
      default:
        Append();
        break;
    }
  }

  void Append() {
    static constexpr Severity kSev[] = {Severity::kInfo, Severity::kNormal, Severity::kImportant,
                                        Severity::kCritical};
    const Severity sev = kSev[Pick(4)];
    const int64_t id = next_id_++;
    std::string pad(static_cast<size_t>(Pick(1500)), 'x');
    NewEvent e{Cat("model.", static_cast<int>(sev)), sev, clock_.NowMs(),
               json{{"id", id}, {"pad", pad}}.dump()};

    auto before = Waiting();
    const int64_t bytes_before = box_->Stats().bytes;
    auto seq = box_->Append(e);
    auto after = Waiting();
    if (!seq.ok()) {
      ASSERT_EQ(seq.status().code(), absl::StatusCode::kResourceExhausted) << seq.status();
      ++refused_;
      // Refused only when evicting every event no more important than it
      // (the gap record's room kept, as the outbox documents) would still
      // not make room.
      int64_t evictable = 0;
      for (const auto& [s, w] : before) {
        if (w.severity <= sev) evictable += RowBytes(w.kind, w.payload);
      }
      EXPECT_GT(bytes_before - evictable + RowBytes(e.kind, e.payload) + kGapReserve,
                limits_.max_bytes)
          << "refused although evicting lesser events would have made room";
    } else {
      accepted_[id] = *seq;
      severity_of_seq_[*seq] = sev;
    }
    // What this append evicted: least important and oldest first, never
    // more important than the newcomer.
    std::vector<StoredEvent> evicted, kept;
    for (const auto& [s, w] : before) (after.count(s) ? kept : evicted).push_back(w);
    for (const auto& v : evicted) {
      EXPECT_LE(static_cast<int>(v.severity), static_cast<int>(sev))
          << "evicted a more important event";
      for (const auto& k : kept) {
        if (static_cast<int>(k.severity) > static_cast<int>(sev)) continue;  // not a candidate
        const bool k_first =
            k.severity < v.severity || (k.severity == v.severity && k.sequence < v.sequence);
        EXPECT_FALSE(k_first) << "evicted " << v.sequence << " (severity "
                              << static_cast<int>(v.severity) << ") while " << k.sequence
                              << " (severity " << static_cast<int>(k.severity) << ") stayed";
      }
    }
  }

  // Every gap record the outbox wrote, as it wrote it (a later eviction may
  // take the record itself away before it is sent).
  void ScanGaps() {
    for (const auto& [seq, e] : Waiting()) {
      if (e.kind == kGapKind) gaps_written_.emplace(seq, json::parse(e.payload));
    }
  }

  std::map<uint64_t, StoredEvent> Waiting() {
    std::map<uint64_t, StoredEvent> out;
    auto all = box_->ReadAfter(0, kAll, kAll);
    EXPECT_TRUE(all.ok()) << all.status();
    if (all.ok()) {
      for (auto& e : *all) out[e.sequence] = e;
    }
    return out;
  }

  void Receive(const StoredEvent& e) {
    auto [it, inserted] = collector_.stored.emplace(e.sequence, e);
    if (!inserted) {
      EXPECT_EQ(it->second.payload, e.payload)
          << "sequence " << e.sequence << " carried two events";
    }
  }

  void Send(bool ack) {
    if (!link_up_) return;
    auto batch = box_->ReadAfter(sent_up_to_, static_cast<size_t>(1 + Pick(30)), 256 * 1024);
    ASSERT_TRUE(batch.ok()) << batch.status();
    if (batch->empty()) return;
    for (const auto& e : *batch) Receive(e);
    sent_up_to_ = batch->back().sequence;
    if (ack) {
      ASSERT_TRUE(box_->AckUpTo(sent_up_to_).ok());
    }
  }

  // A new stream: the Welcome's last committed sequence; the agent drops
  // what is stored already and sends from there.
  void Reconnect() {
    if (!link_up_) return;
    const uint64_t last = collector_.last_committed();
    ASSERT_TRUE(box_->AckUpTo(last).ok());
    sent_up_to_ = last;
  }

  void Drain() {
    link_up_ = true;
    for (int round = 0; round < 3; ++round) {
      Reconnect();
      ASSERT_TRUE(box_->ExpireOld().ok());  // also reports what was refused on arrival
      while (true) {
        auto batch = box_->ReadAfter(sent_up_to_, kAll, kAll);
        ASSERT_TRUE(batch.ok());
        if (batch->empty()) break;
        for (const auto& e : *batch) Receive(e);
        sent_up_to_ = batch->back().sequence;
        ASSERT_TRUE(box_->AckUpTo(sent_up_to_).ok());
      }
    }
    EXPECT_EQ(box_->Stats().depth, 0u);
  }

  void Check() {
    // Sequences reported lost: those listed by gaps that arrived, and, when
    // such a listed sequence was itself a gap record, those it listed.
    std::set<uint64_t> reported;
    std::vector<json> pending;
    int64_t dropped_on_arrival = 0;
    for (const auto& [seq, e] : collector_.stored) {
      if (e.kind != kGapKind) continue;
      auto p = json::parse(e.payload);
      if (p["reason"] == "outbox_full_dropped_on_arrival")
        dropped_on_arrival += p["count"].get<int64_t>();
      pending.push_back(p);
    }
    while (!pending.empty()) {
      json p = pending.back();
      pending.pop_back();
      EXPECT_FALSE(p.value("sequences_truncated", false))
          << "the model keeps gaps small enough to list";
      for (const auto& r : p["sequences"]) {
        for (uint64_t s = r[0].get<uint64_t>(); s <= r[1].get<uint64_t>(); ++s) {
          if (!reported.insert(s).second) continue;
          auto lost_gap = gaps_written_.find(s);
          if (lost_gap != gaps_written_.end() && !collector_.stored.count(s)) {
            // A gap record lost in turn: what it said is known lost with it.
            if (lost_gap->second["reason"] == "outbox_full_dropped_on_arrival") {
              dropped_on_arrival += lost_gap->second["count"].get<int64_t>();
            }
            pending.push_back(lost_gap->second);
          }
        }
      }
    }
    std::set<int64_t> delivered;
    std::map<int64_t, uint64_t> seq_of_delivered;
    for (const auto& [seq, e] : collector_.stored) {
      if (seq < renumbered_from_) continue;
      const int64_t id = IdOf(e);
      if (id < 0) continue;
      EXPECT_TRUE(delivered.insert(id).second) << "event " << id << " arrived twice";
      seq_of_delivered[id] = seq;
    }
    int lost_unreported = 0;
    for (const auto& [id, seq] : accepted_) {
      if (delivered.count(id)) {
        EXPECT_EQ(seq_of_delivered[id], seq) << "event " << id << " arrived under another sequence";
        continue;
      }
      if (reported.count(seq)) continue;
      ++lost_unreported;
      ADD_FAILURE() << "event " << id << " (sequence " << seq << ") was lost and no gap says so";
    }
    EXPECT_EQ(lost_unreported, 0);
    EXPECT_EQ(dropped_on_arrival, refused_) << "every refused event is counted by a gap";
    EXPECT_GT(accepted_.size(), static_cast<size_t>(kSteps / 4)) << "the run exercised appends";
    EXPECT_GT(reported.size(), 0u) << "the run exercised evictions or expiry";
  }

  std::mt19937_64 rng_;
  testutil::TempDir dir_;
  std::string path_ = dir_.File("outbox.db");
  FakeClock clock_;
  OutboxLimits limits_;
  std::unique_ptr<Outbox> box_;
  Collector collector_;
  uint64_t sent_up_to_ = 0;
  bool link_up_ = true;
  uint64_t renumbered_from_ = 1;
  int64_t next_id_ = 0;
  int64_t refused_ = 0;
  int64_t reopened_ = 0;
  std::map<int64_t, uint64_t> accepted_;  // id -> sequence
  std::map<uint64_t, Severity> severity_of_seq_;
  std::map<uint64_t, json> gaps_written_;
};

TEST(OutboxModelTest, RandomAppendsSendsAcksEvictionsExpiryAndRestartsLoseNothingUnreported) {
  Totals totals;
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    SCOPED_TRACE(Cat("seed ", seed));
    OutboxModel model(seed);
    model.Run(kSteps);
    model.AddTo(totals);
    if (HasFailure()) break;  // one seed's failures are enough to read
  }
  // The runs went through every path the checks are about.
  EXPECT_GT(totals.refused, 0);
  EXPECT_GT(totals.reopened, 0);
  EXPECT_GT(totals.gap_reasons["outbox_full"], 0);
  EXPECT_GT(totals.gap_reasons["expired"], 0);
  EXPECT_GT(totals.gap_reasons["outbox_full_dropped_on_arrival"], 0);
  std::string reasons;
  for (const auto& [r, n] : totals.gap_reasons) reasons += Cat(" ", r, "=", n);
  std::cout << "outbox model: " << kSeeds * kSteps << " steps, " << totals.accepted
            << " events accepted, " << totals.refused << " refused, " << totals.reopened
            << " restarts; gap records:" << reasons << "\n";
}

}  // namespace
}  // namespace setdiag::agent
