#pragma once
// What every `setdiag` command shares: exit codes, reading the collector's
// JSON answers, and turning a failed answer into a message and an exit code.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "cli/api_client.h"

namespace setdiag::cli {

// Exit codes (docs/api.md).
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitAuth = 3;
inline constexpr int kExitNotFound = 4;
inline constexpr int kExitStillWaiting = 5;  // a bundle is not complete yet

// JSON text that never throws on invalid UTF-8 (replaced).
std::string Dump(const nlohmann::json& j, int indent = -1);
// A member of the expected type, or "", 0, false.
std::string Str(const nlohmann::json& j, const char* key);
int64_t Int(const nlohmann::json& j, const char* key);
bool Bool(const nlohmann::json& j, const char* key);

// The JSON object of a 200 answer; otherwise explains the failure on stderr,
// sets `exit_code` and returns nullopt.
std::optional<nlohmann::json> Parse(const absl::StatusOr<ApiResponse>& res, int* exit_code);

// "2026-11-27 01:56:21Z"; "-" for 0.
std::string FormatUtc(int64_t ms);
// "8.3 KiB", "101.3 MiB".
std::string HumanSize(uint64_t bytes);

}  // namespace setdiag::cli
