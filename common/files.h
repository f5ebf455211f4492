#pragma once
// Small file helpers shared by the binaries.

#include <string>

#include "absl/status/statusor.h"

namespace setdiag {

absl::StatusOr<std::string> ReadWholeFile(const std::string& path);
// Writes via a temporary file and rename, so readers never see half a file.
absl::Status WriteFileAtomically(const std::string& path, const std::string& content, int mode);
// 32 random bytes from the OS as 64 hex characters.
std::string RandomHex(size_t bytes);
// SHA-256 as lowercase hex.
std::string Sha256Hex(std::string_view data);

}  // namespace setdiag
