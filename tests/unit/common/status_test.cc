#include "common/status.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <memory>
#include <string>

#include "common/files.h"
#include "common/grpc_status.h"
#include "temp_dir.h"

namespace setdiag {
namespace {

using ::testing::HasSubstr;

absl::Status Step(bool ok, int* reached) {
  ++*reached;
  return ok ? absl::OkStatus() : absl::DataLossError("step failed");
}

absl::Status TwoSteps(bool first_ok, int* reached) {
  RETURN_IF_ERROR(Step(first_ok, reached));
  RETURN_IF_ERROR(Step(true, reached));
  return absl::OkStatus();
}

TEST(StatusMacrosTest, ReturnIfErrorStopsAtTheFirstFailureAndReturnsIt) {
  int reached = 0;
  EXPECT_TRUE(TwoSteps(true, &reached).ok());
  EXPECT_EQ(reached, 2);
  reached = 0;
  absl::Status st = TwoSteps(false, &reached);
  EXPECT_EQ(st.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(st.message(), "step failed");
  EXPECT_EQ(reached, 1) << "the second step never ran";
}

absl::StatusOr<std::unique_ptr<int>> Make(bool ok, int v) {
  if (!ok) return absl::NotFoundError("no value");
  return std::make_unique<int>(v);
}

absl::StatusOr<int> Sum(bool a_ok, bool b_ok) {
  ASSIGN_OR_RETURN(std::unique_ptr<int> a, Make(a_ok, 2));  // move-only values are moved
  ASSIGN_OR_RETURN(auto b, Make(b_ok, 3));
  RETURN_IF_ERROR(Make(true, 0));  // a StatusOr's status
  return *a + *b;
}

TEST(StatusMacrosTest, AssignOrReturnMovesTheValueOrReturnsTheStatus) {
  auto sum = Sum(true, true);
  ASSERT_TRUE(sum.ok()) << sum.status();
  EXPECT_EQ(*sum, 5);
  EXPECT_EQ(Sum(true, false).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(Sum(false, true).status().message(), "no value");
}

TEST(ErrnoStatusTest, CodesSayWhetherToRetryAndTheMessageNamesThePath) {
  EXPECT_EQ(ErrnoCode(ENOENT), absl::StatusCode::kNotFound);
  EXPECT_EQ(ErrnoCode(EACCES), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(ErrnoCode(ENOSPC), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ErrnoCode(EISDIR), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(ErrnoCode(EIO), absl::StatusCode::kUnavailable);
  absl::Status st = ErrnoStatus(ENOSPC, "cannot write", "/var/lib/setdiag/outbox.db");
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(st.message(), "cannot write /var/lib/setdiag/outbox.db: No space left on device");
  EXPECT_EQ(ErrnoStatus(0, "cannot read", "x").code(), absl::StatusCode::kUnknown)
      << "a lost errno is still a failure";
}

TEST(FilesTest, ReadWholeFileSaysNotFoundOnlyForAMissingFile) {
  testutil::TempDir dir;
  auto missing = ReadWholeFile(dir.File("nope"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr(dir.File("nope")));
  auto directory = ReadWholeFile(dir.path());
  EXPECT_EQ(directory.status().code(), absl::StatusCode::kFailedPrecondition) << directory.status();
  std::string big(200'000, 'x');  // more than one read
  ASSERT_TRUE(WriteFileAtomically(dir.File("big"), big, 0600).ok());
  auto back = ReadWholeFile(dir.File("big"));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, big);
}

TEST(FilesTest, WriteFileAtomicallyReplacesWithTheModeAndLeavesNoTemporaryFileOnFailure) {
  testutil::TempDir dir;
  const std::string path = dir.File("token");
  ASSERT_TRUE(WriteFileAtomically(path, "old", 0600).ok());
  ASSERT_TRUE(WriteFileAtomically(path, "new", 0600).ok());
  EXPECT_EQ(*ReadWholeFile(path), "new");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_NE(::stat((path + ".tmp").c_str(), &st), 0) << "the temporary file was renamed";

  // The rename fails (a directory is in the way): the error names both, the
  // temporary file is gone, the directory untouched.
  const std::string blocked = dir.File("blocked");
  ASSERT_EQ(::mkdir(blocked.c_str(), 0700), 0);
  ASSERT_EQ(::mkdir((blocked + "/inside").c_str(), 0700), 0);
  absl::Status failed = WriteFileAtomically(blocked, "x", 0600);
  EXPECT_FALSE(failed.ok());
  EXPECT_THAT(failed.message(), HasSubstr("cannot rename " + blocked + ".tmp to " + blocked));
  EXPECT_NE(::stat((blocked + ".tmp").c_str(), &st), 0) << "no half-done file left behind";

  absl::Status no_dir = WriteFileAtomically(dir.File("missing/file"), "x", 0600);
  EXPECT_EQ(no_dir.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(no_dir.message(), HasSubstr(dir.File("missing/file.tmp")));
  EXPECT_TRUE(SyncDirectory(dir.path()).ok());
  EXPECT_EQ(SyncDirectory(dir.File("missing")).code(), absl::StatusCode::kNotFound);
}

TEST(GrpcStatusTest, CodesAndMessagesCrossUnchanged) {
  const grpc::Status overloaded(grpc::StatusCode::RESOURCE_EXHAUSTED, "collector overloaded");
  absl::Status a = FromGrpcStatus(overloaded);
  EXPECT_EQ(a.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(a.message(), "collector overloaded");
  grpc::Status back = ToGrpcStatus(absl::UnauthenticatedError("unknown or revoked store token"));
  EXPECT_EQ(back.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(back.error_message(), "unknown or revoked store token");
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
  EXPECT_EQ(GrpcCodeName(grpc::StatusCode::UNAVAILABLE), "UNAVAILABLE");
  EXPECT_EQ(GrpcCodeName(grpc::StatusCode::DEADLINE_EXCEEDED), "DEADLINE_EXCEEDED");
}

}  // namespace
}  // namespace setdiag
