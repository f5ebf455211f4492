#pragma once
// Small file helpers shared by the binaries.

#include <string>

#include "absl/status/statusor.h"

namespace setdiag {

// The whole file. Errors name the path, with the code of the errno
// (common/status.h ErrnoCode): NotFound only when it is missing.
absl::StatusOr<std::string> ReadWholeFile(const std::string& path);
// Writes `path` through `path`.tmp (created with `mode`): the temporary file
// is written and fsynced, renamed over `path`, and the directory is synced,
// so readers never see half a file and a crash leaves the old content or
// the new one. On failure the temporary file is removed and the error names
// the step and the file; `path` keeps its old content.
absl::Status WriteFileAtomically(const std::string& path, const std::string& content, int mode);
// fsync of a directory, after a rename or a new file in it. A file system
// that cannot sync directories (EINVAL) is not an error.
absl::Status SyncDirectory(const std::string& dir);
// 32 random bytes from the OS as 64 hex characters.
std::string RandomHex(size_t bytes);
// SHA-256 as lowercase hex.
std::string Sha256Hex(std::string_view data);

}  // namespace setdiag
