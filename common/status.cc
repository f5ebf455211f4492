#include "common/status.h"

#include <cstring>

#include "common/strings.h"

namespace setdiag {

absl::StatusCode ErrnoCode(int err) {
  switch (err) {
    case 0:
      return absl::StatusCode::kOk;
    case ENOENT:
    case ENOTDIR:
      return absl::StatusCode::kNotFound;
    case EACCES:
    case EPERM:
    case EROFS:
      return absl::StatusCode::kPermissionDenied;
    case EEXIST:
      return absl::StatusCode::kAlreadyExists;
    case ENOSPC:
    case EDQUOT:
    case EMFILE:
    case ENFILE:
    case ENOMEM:
      return absl::StatusCode::kResourceExhausted;
    case EINVAL:
    case ENAMETOOLONG:
    case ELOOP:
      return absl::StatusCode::kInvalidArgument;
    case EISDIR:
    case ENOTEMPTY:
    case EBUSY:
    case EXDEV:
      return absl::StatusCode::kFailedPrecondition;
    case ETIMEDOUT:
      return absl::StatusCode::kDeadlineExceeded;
    default:
      return absl::StatusCode::kUnavailable;
  }
}

absl::Status ErrnoStatus(int err, std::string_view what, std::string_view path) {
  // An errno of 0 (a caller that lost it) is still a failure.
  const absl::StatusCode code = err == 0 ? absl::StatusCode::kUnknown : ErrnoCode(err);
  return absl::Status(code,
                      Cat(what, " ", path, ": ", err == 0 ? "unknown error" : std::strerror(err)));
}

}  // namespace setdiag
