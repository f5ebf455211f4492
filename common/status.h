#pragma once
// Status plumbing every part shares: early returns, errno turned into a
// Status in one place, and gRPC statuses read as absl ones.
//
//   RETURN_IF_ERROR(db.Exec("BEGIN"));                // Status or StatusOr
//   ASSIGN_OR_RETURN(auto stmt, db.Prepare(sql));     // stmt is the value
//   return ErrnoStatus(errno, "cannot open", path);   // "cannot open P: ..."
//
// The macros return the failed Status unchanged (a function returning
// StatusOr<T> converts it); ASSIGN_OR_RETURN moves the value into `lhs`.

#include <cerrno>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace setdiag {

namespace status_internal {
inline const absl::Status& AsStatus(const absl::Status& s) { return s; }
template <typename T>
const absl::Status& AsStatus(const absl::StatusOr<T>& s) {
  return s.status();
}
}  // namespace status_internal

#define SETDIAG_STATUS_CONCAT_INNER(a, b) a##b
#define SETDIAG_STATUS_CONCAT(a, b) SETDIAG_STATUS_CONCAT_INNER(a, b)

// Variadic, so that an expression with braces ({a, b}) or template
// arguments (F<A, B>()) needs no extra parentheses.
#define RETURN_IF_ERROR(...)                                                                \
  do {                                                                                      \
    if (::absl::Status setdiag_status_ = ::setdiag::status_internal::AsStatus(__VA_ARGS__); \
        !setdiag_status_.ok())                                                              \
      return setdiag_status_;                                                               \
  } while (0)

#define ASSIGN_OR_RETURN(lhs, ...)                                                        \
  SETDIAG_ASSIGN_OR_RETURN_IMPL(SETDIAG_STATUS_CONCAT(setdiag_status_or_, __LINE__), lhs, \
                                __VA_ARGS__)
#define SETDIAG_ASSIGN_OR_RETURN_IMPL(tmp, lhs, ...) \
  auto tmp = (__VA_ARGS__);                          \
  if (!tmp.ok()) return std::move(tmp).status();     \
  lhs = std::move(tmp).value()

// The code for an errno value: NotFound (ENOENT, ENOTDIR), PermissionDenied
// (EACCES, EPERM, EROFS), AlreadyExists (EEXIST), ResourceExhausted (ENOSPC,
// EDQUOT, EMFILE, ENFILE, ENOMEM), InvalidArgument (EINVAL, ENAMETOOLONG,
// ELOOP), FailedPrecondition (EISDIR, ENOTEMPTY, EBUSY, EXDEV), DeadlineExceeded
// (ETIMEDOUT), Unavailable otherwise (EIO, EAGAIN, EINTR, ...): worth a retry.
absl::StatusCode ErrnoCode(int err);

// "<what> <path>: <strerror(err)>" with ErrnoCode(err), e.g.
// ErrnoStatus(ENOSPC, "cannot write", "/var/lib/setdiag/outbox.db").
absl::Status ErrnoStatus(int err, std::string_view what, std::string_view path);

}  // namespace setdiag
