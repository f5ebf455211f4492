// The collector's single writer (collector/store/commit_queue.h). Jobs are queued
// before Start() and Stop() drains them, so no test needs to wait on time.

#include "collector/store/commit_queue.h"

#include <gtest/gtest.h>

#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/sqlite.h"
#include "common/strings.h"
#include "temp_dir.h"

namespace setdiag::collector {
namespace {

class CommitQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto db = sql::Db::Open(path_);
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    ASSERT_TRUE(
        db->Exec("CREATE TABLE t(id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT NOT NULL)").ok());
    auto reader = sql::Db::Open(path_);
    ASSERT_TRUE(reader.ok());
    reader_ = std::move(*reader);
    writer_ = std::move(*db);
  }

  // Values in table t, in insertion order, as seen by a separate connection
  // (so only committed rows are visible).
  std::vector<std::string> Committed() {
    std::vector<std::string> out;
    auto stmt = reader_.Prepare("SELECT v FROM t ORDER BY id");
    EXPECT_TRUE(stmt.ok());
    if (!stmt.ok()) return out;
    while (true) {
      auto row = stmt->Step();
      EXPECT_TRUE(row.ok()) << row.status().ToString();
      if (!row.ok() || !*row) break;
      out.push_back(stmt->Text(0));
    }
    return out;
  }

  static CommitQueue::Work Insert(std::string v) {
    return [v](sql::Db& db) -> absl::Status {
      auto stmt = db.Prepare("INSERT INTO t(v) VALUES (?)");
      if (!stmt.ok()) return stmt.status();
      return stmt->Bind(1, v).Run();
    };
  }

  testutil::TempDir dir_;
  std::string path_ = dir_.File("queue.db");
  sql::Db writer_;  // handed to the queue
  sql::Db reader_;  // a second connection, used only from the test thread
};

TEST_F(CommitQueueTest, RunsJobsInOrderAndCallsDoneAfterCommit) {
  CommitQueue q(std::move(writer_), 1000);
  std::mutex mu;
  std::vector<std::string> work_order, done_order;
  std::vector<std::vector<std::string>> visible_at_done;
  std::vector<absl::Status> statuses;
  for (int i = 0; i < 20; ++i) {
    std::string v = Cat("job-", i);
    auto work = [v, &mu, &work_order](sql::Db& db) -> absl::Status {
      {
        std::lock_guard lock(mu);
        work_order.push_back(v);
      }
      return Insert(v)(db);
    };
    auto done = [this, v, &mu, &done_order, &visible_at_done, &statuses](absl::Status st) {
      // Read through another connection: the row must already be committed.
      std::vector<std::string> seen = Committed();
      std::lock_guard lock(mu);
      done_order.push_back(v);
      visible_at_done.push_back(std::move(seen));
      statuses.push_back(st);
    };
    ASSERT_TRUE(q.Submit(work, done));
  }
  q.Start();
  q.Stop();

  std::vector<std::string> want;
  for (int i = 0; i < 20; ++i) want.push_back(Cat("job-", i));
  EXPECT_EQ(work_order, want);
  EXPECT_EQ(done_order, want);
  EXPECT_EQ(Committed(), want);
  ASSERT_EQ(visible_at_done.size(), 20u);
  for (size_t i = 0; i < visible_at_done.size(); ++i) {
    EXPECT_TRUE(statuses[i].ok()) << statuses[i].ToString();
    bool found = false;
    for (const auto& s : visible_at_done[i]) found = found || s == done_order[i];
    EXPECT_TRUE(found) << done_order[i] << " was not committed when its done() ran";
  }
  EXPECT_GE(q.commits(), 1u);
}

TEST_F(CommitQueueTest, DoneRunsAfterCommitWhileRunning) {
  CommitQueue q(std::move(writer_), 1000);
  q.Start();
  std::promise<std::vector<std::string>> seen;
  ASSERT_TRUE(q.Submit(Insert("live"), [this, &seen](absl::Status st) {
    EXPECT_TRUE(st.ok()) << st.ToString();
    seen.set_value(Committed());
  }));
  std::vector<std::string> at_done = seen.get_future().get();
  EXPECT_EQ(at_done, std::vector<std::string>{"live"});
  q.Stop();
}

TEST_F(CommitQueueTest, GroupsAreBoundedByMaxJobsPerCommit) {
  CommitQueue q(std::move(writer_), 1000, /*max_jobs_per_commit=*/2);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(q.Submit(Insert(Cat(i)), nullptr));
  q.Start();
  q.Stop();
  EXPECT_EQ(q.commits(), 3u);
  EXPECT_EQ(Committed(), (std::vector<std::string>{"0", "1", "2", "3", "4"}));
}

TEST_F(CommitQueueTest, RefusesWeightedWorkBeyondMaxPending) {
  CommitQueue q(std::move(writer_), /*max_pending_events=*/10);
  int ran = 0, done_calls = 0;
  auto work = [&ran](sql::Db&) -> absl::Status {
    ++ran;
    return absl::OkStatus();
  };
  auto done = [&done_calls](absl::Status) { ++done_calls; };
  EXPECT_TRUE(q.Submit(work, done, 6));
  EXPECT_FALSE(q.Submit(work, done, 5)) << "6 + 5 > 10";
  EXPECT_TRUE(q.Submit(work, done, 4)) << "6 + 4 == 10 still fits";
  EXPECT_FALSE(q.Submit(work, done, 1));
  EXPECT_TRUE(q.Submit(work, done, 0)) << "unweighted work is never refused";
  EXPECT_EQ(q.pending_weight(), 10u);
  q.Start();
  q.Stop();
  EXPECT_EQ(ran, 3) << "refused work never runs";
  EXPECT_EQ(done_calls, 3) << "refused work gets no callback (Submit said no)";
  EXPECT_EQ(q.pending_weight(), 0u) << "weight is released after the commit";
}

// What is committed is no longer pending while its Done callbacks (the
// acks to agents) run: a full queue accepts new work from then on, so an
// agent is not told Overloaded for events already stored.
TEST_F(CommitQueueTest, CommittedWorkIsNotPendingWhileItsDoneRuns) {
  CommitQueue q(std::move(writer_), /*max_pending_events=*/10);
  size_t seen_pending = 99;
  bool resubmitted = false;
  std::promise<void> done;
  ASSERT_TRUE(q.Submit(
      Insert("a"),
      [&](absl::Status st) {
        EXPECT_TRUE(st.ok());
        seen_pending = q.pending_weight();
        resubmitted = q.Submit(Insert("b"), nullptr, 10);
        done.set_value();
      },
      10));
  q.Start();
  done.get_future().wait();  // Stop() refuses new work, so not before this
  q.Stop();
  EXPECT_EQ(seen_pending, 0u);
  EXPECT_TRUE(resubmitted) << "the committed job's weight was still counted";
  EXPECT_EQ(Committed(), (std::vector<std::string>{"a", "b"}));
}

// A full queue still takes handshakes (token look-ups, Hellos) into a
// reserve of an eighth of the bound, so that a returning agent can be
// answered with when to come back instead of a bare refusal.
TEST_F(CommitQueueTest, HandshakesUseAReserveAboveTheBound) {
  CommitQueue q(std::move(writer_), /*max_pending_events=*/80);
  auto work = [](sql::Db&) { return absl::OkStatus(); };
  ASSERT_TRUE(q.Submit(work, nullptr, 80));
  EXPECT_FALSE(q.Submit(work, nullptr, 1)) << "ordinary work: the queue is full";
  for (int i = 0; i < 10; ++i)
    EXPECT_TRUE(q.Submit(work, nullptr, 1, CommitQueue::Kind::kHandshake)) << i;
  EXPECT_FALSE(q.Submit(work, nullptr, 1, CommitQueue::Kind::kHandshake))
      << "80 + 80/8 is the reserve's end";
  EXPECT_EQ(q.pending_weight(), 90u);
  q.Start();
  q.Stop();
}

// The rate Overloaded answers are scheduled by comes from busy groups only.
TEST_F(CommitQueueTest, DrainRateIsMeasuredOnBusyGroupsOnly) {
  CommitQueue q(std::move(writer_), 100'000);
  auto work = [](sql::Db&) { return absl::OkStatus(); };
  ASSERT_TRUE(q.Submit(work, nullptr, CommitQueue::kRateMinWeight - 1));
  q.Start();
  q.Stop();
  EXPECT_EQ(q.drain_rate(), CommitQueue::kInitialRate)
      << "a small group says nothing about capacity";
  CommitQueue busy(sql::Db::Open(path_).value(), 100'000);
  ASSERT_TRUE(busy.Submit(work, nullptr, 50'000));
  busy.Start();
  busy.Stop();
  EXPECT_NE(busy.drain_rate(), CommitQueue::kInitialRate);
  EXPECT_GT(busy.drain_rate(), 0.0);
}

TEST_F(CommitQueueTest, SubmitAfterStopIsRefused) {
  CommitQueue q(std::move(writer_), 10);
  q.Start();
  q.Stop();
  bool ran = false;
  EXPECT_FALSE(q.Submit(
      [&ran](sql::Db&) {
        ran = true;
        return absl::OkStatus();
      },
      nullptr));
  EXPECT_FALSE(ran);
}

TEST_F(CommitQueueTest, AFailingJobRollsBackAloneWhileTheOthersCommit) {
  CommitQueue q(std::move(writer_), 1000);
  std::vector<absl::Status> results(3);
  ASSERT_TRUE(q.Submit(Insert("first"), [&](absl::Status st) { results[0] = st; }));
  ASSERT_TRUE(q.Submit(
      [](sql::Db& db) -> absl::Status {
        // Writes, then fails: its write must disappear.
        if (auto st = Insert("doomed-1")(db); !st.ok()) return st;
        if (auto st = Insert("doomed-2")(db); !st.ok()) return st;
        return absl::InternalError("job failed on purpose");
      },
      [&](absl::Status st) { results[1] = st; }));
  ASSERT_TRUE(q.Submit(Insert("third"), [&](absl::Status st) { results[2] = st; }));
  q.Start();
  q.Stop();

  EXPECT_TRUE(results[0].ok()) << results[0].ToString();
  EXPECT_EQ(results[1].code(), absl::StatusCode::kInternal);
  EXPECT_EQ(std::string(results[1].message()), "job failed on purpose");
  EXPECT_TRUE(results[2].ok()) << results[2].ToString();
  EXPECT_EQ(Committed(), (std::vector<std::string>{"first", "third"}));
  EXPECT_EQ(q.commits(), 1u) << "all three ran in one group transaction";
}

TEST_F(CommitQueueTest, AFailingSqlStatementRollsBackAloneToo) {
  CommitQueue q(std::move(writer_), 1000);
  absl::Status bad;
  ASSERT_TRUE(q.Submit(Insert("a"), nullptr));
  ASSERT_TRUE(q.Submit(
      [](sql::Db& db) -> absl::Status {
        if (auto st = Insert("half")(db); !st.ok()) return st;
        return db.Exec("INSERT INTO t(v) VALUES (NULL)");  // NOT NULL constraint
      },
      [&bad](absl::Status st) { bad = st; }));
  ASSERT_TRUE(q.Submit(Insert("b"), nullptr));
  q.Start();
  q.Stop();
  EXPECT_FALSE(bad.ok());
  EXPECT_EQ(Committed(), (std::vector<std::string>{"a", "b"}));
}

}  // namespace
}  // namespace setdiag::collector
