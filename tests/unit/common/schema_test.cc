// Schema versions and forward migrations (common/schema.h).

#include "common/schema.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/sqlite.h"
#include "temp_dir.h"

namespace setdiag::sql {
namespace {

using ::testing::HasSubstr;

// Three versions of a small "notes" database: 1 creates it, 2 adds a
// column, 3 rewrites every row (so it backs the file up first).
std::vector<Migration> Steps(std::vector<int>* ran = nullptr, bool third_fails = false) {
  std::vector<Migration> steps;
  steps.push_back({1, "notes", [ran](Db& db) {
                     if (ran) ran->push_back(1);
                     return db.Exec(
                         "CREATE TABLE notes(id INTEGER PRIMARY KEY, text TEXT NOT NULL)");
                   }});
  steps.push_back({2, "notes.author", [ran](Db& db) {
                     if (ran) ran->push_back(2);
                     return db.Exec("ALTER TABLE notes ADD COLUMN author TEXT NOT NULL DEFAULT ''");
                   }});
  steps.push_back({3, "upper-case texts",
                   [ran, third_fails](Db& db) -> absl::Status {
                     if (ran) ran->push_back(3);
                     if (auto st = db.Exec("UPDATE notes SET text = upper(text)"); !st.ok())
                       return st;
                     if (auto st = db.Exec("CREATE TABLE half_done(x)"); !st.ok()) return st;
                     if (third_fails) return absl::InternalError("the disk went away");
                     return absl::OkStatus();
                   },
                   /*rewrites_data=*/true});
  return steps;
}

std::vector<Migration> FirstTwo() {
  auto all = Steps();
  all.pop_back();
  return all;
}

Db MustOpen(const std::string& path) {
  auto db = Db::Open(path);
  EXPECT_TRUE(db.ok()) << db.status().ToString();
  return std::move(*db);
}

int64_t Int(Db& db, const std::string& sql) {
  auto v = db.QueryInt(sql);
  EXPECT_TRUE(v.ok()) << sql << ": " << v.status().ToString();
  return v.ok() ? *v : -1;
}

TEST(SchemaTest, AFreshDatabaseGetsEveryStepAndTheLastVersion) {
  testutil::TempDir dir;
  Db db = MustOpen(dir.File("n.db"));
  std::vector<int> ran;
  auto r = Migrate(db, "notes", dir.File("n.db"), Steps(&ran));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(ran, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(r->from_version, 0);
  EXPECT_EQ(r->to_version, 3);
  EXPECT_EQ(*SchemaVersion(db), 3);
}

TEST(SchemaTest, AnOlderDatabaseRunsOnlyTheMissingStepsOnceAndKeepsItsRows) {
  testutil::TempDir dir;
  const std::string path = dir.File("n.db");
  {
    Db db = MustOpen(path);
    ASSERT_TRUE(Migrate(db, "notes", path, FirstTwo()).ok());
    ASSERT_TRUE(db.Exec("INSERT INTO notes(text, author) VALUES ('till 7 down', 'ivanov')").ok());
  }
  Db db = MustOpen(path);
  std::vector<int> ran;
  auto r = Migrate(db, "notes", path, Steps(&ran));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(ran, (std::vector<int>{3}));
  EXPECT_EQ(r->from_version, 2);
  EXPECT_EQ(r->to_version, 3);
  EXPECT_EQ(*db.QueryText("SELECT text || '/' || author FROM notes"), "TILL 7 DOWN/ivanov");

  ran.clear();
  auto again = Migrate(db, "notes", path, Steps(&ran));
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(ran.empty()) << "a migrated database runs nothing at the next open";
}

TEST(SchemaTest, AStepThatRewritesRowsBacksTheOldFileUpFirst) {
  testutil::TempDir dir;
  const std::string path = dir.File("n.db");
  Db db = MustOpen(path);
  ASSERT_TRUE(Migrate(db, "notes", path, FirstTwo()).ok());
  ASSERT_TRUE(db.Exec("INSERT INTO notes(text) VALUES ('price list 12 stuck')").ok());
  auto r = Migrate(db, "notes", path, Steps());
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->backup_path, path + ".v2.bak");

  Db backup = MustOpen(r->backup_path);
  EXPECT_EQ(*SchemaVersion(backup), 2);
  EXPECT_EQ(*backup.QueryText("SELECT text FROM notes"), "price list 12 stuck");
}

TEST(SchemaTest, AStepThatAddsOnlyASchemaMakesNoBackup) {
  testutil::TempDir dir;
  const std::string path = dir.File("n.db");
  Db db = MustOpen(path);
  auto one = Steps();
  one.resize(1);
  ASSERT_TRUE(Migrate(db, "notes", path, one).ok());
  auto r = Migrate(db, "notes", path, FirstTwo());
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->backup_path, "");
  EXPECT_TRUE(testutil::ReadBytes(path + ".v1.bak").empty());
}

TEST(SchemaTest, AFailedStepLeavesTheOldVersionAndNoTraceOfTheStep) {
  testutil::TempDir dir;
  const std::string path = dir.File("n.db");
  Db db = MustOpen(path);
  ASSERT_TRUE(Migrate(db, "notes", path, FirstTwo()).ok());
  ASSERT_TRUE(db.Exec("INSERT INTO notes(text) VALUES ('kept as it was')").ok());

  auto r = Migrate(db, "notes", path, Steps(nullptr, /*third_fails=*/true));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(),
              HasSubstr("notes " + path + ": migrating to schema version 3 (upper-case texts)"));
  EXPECT_THAT(r.status().message(), HasSubstr("the disk went away"));
  EXPECT_EQ(*SchemaVersion(db), 2);
  EXPECT_EQ(*db.QueryText("SELECT text FROM notes"), "kept as it was");
  EXPECT_EQ(Int(db, "SELECT count(*) FROM sqlite_master WHERE name = 'half_done'"), 0);

  // Once the cause is gone the same step runs.
  auto retry = Migrate(db, "notes", path, Steps());
  ASSERT_TRUE(retry.ok()) << retry.status().ToString();
  EXPECT_EQ(*db.QueryText("SELECT text FROM notes"), "KEPT AS IT WAS");
}

TEST(SchemaTest, ADatabaseNewerThanTheBuildIsRefusedAndLeftByteForByte) {
  testutil::TempDir dir;
  const std::string path = dir.File("n.db");
  {
    Db db = MustOpen(path);
    ASSERT_TRUE(Migrate(db, "notes", path, Steps()).ok());
    ASSERT_TRUE(db.Exec("INSERT INTO notes(text) VALUES ('from the newer build')").ok());
    ASSERT_TRUE(db.Exec("PRAGMA wal_checkpoint(TRUNCATE)").ok());
  }
  const std::string bytes = testutil::ReadBytes(path);
  {
    Db db = MustOpen(path);
    auto r = Migrate(db, "notes", path, FirstTwo());  // an older build knows versions 1..2
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(r.status().message(),
                HasSubstr("has schema version 3, newer than this build knows (2)"));
    EXPECT_THAT(r.status().message(), HasSubstr("left unchanged"));
    EXPECT_EQ(*SchemaVersion(db), 3);
  }
  EXPECT_EQ(testutil::ReadBytes(path), bytes);
}

TEST(SchemaTest, ASecondConnectionFindsTheWorkDoneAndRunsNothing) {
  // Two connections stand for the daemon and the CLI: the second finds the
  // work done inside its transaction and runs nothing.
  testutil::TempDir dir;
  const std::string path = dir.File("n.db");
  Db a = MustOpen(path);
  Db b = MustOpen(path);
  std::vector<int> ran_a, ran_b;
  ASSERT_TRUE(Migrate(a, "notes", path, Steps(&ran_a)).ok());
  auto r = Migrate(b, "notes", path, Steps(&ran_b));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(ran_a, (std::vector<int>{1, 2, 3}));
  EXPECT_TRUE(ran_b.empty());
  EXPECT_EQ(r->to_version, 3);
}

}  // namespace
}  // namespace setdiag::sql
