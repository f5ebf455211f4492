#pragma once
// What every `setdiag` command shares: exit codes, reading the collector's
// JSON answers, and turning a failed answer into a message and an exit code.

#include <cstdint>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cli/api_client.h"
#include "common/time_format.h"

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

// A time for people, in Moscow time: FormatMsk (common/time_format.h).

// "2 d 3 h", "1 h 20 min", "12 min", "<1 min" (the sign is ignored).
std::string FormatDuration(int64_t ms);
// At most `n` columns (code points); never cuts a UTF-8 sequence.
std::string Shorten(std::string s, size_t n);
// Line breaks and tabs as blanks.
std::string OneLine(std::string s);
// `s`, or `fallback` when it is empty.
std::string Or(std::string s, const char* fallback);
// The wall clock, Unix milliseconds.
int64_t NowMs();

// An aligned table: columns separated by two spaces, the last one not
// padded. A cell of the last column may hold several lines; they are
// indented under it. A header of empty cells is not printed.
class Table {
 public:
  explicit Table(std::vector<std::string> header) : rows_{std::move(header)} {}
  void Add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  size_t size() const { return rows_.size() - 1; }
  void Print(std::FILE* out = stdout) const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

// How to print: JSON for scripts, and in which language titles come first.
struct Output {
  bool json = false;
  bool ru = false;
};

// GET `path` and parse; explains a failure on stderr, sets `exit_code`
// and returns nullopt.
std::optional<nlohmann::json> Fetch(ApiClient& client, const std::string& path, int* exit_code);
// POST a JSON body, likewise.
std::optional<nlohmann::json> PostJson(ApiClient& client, const std::string& path,
                                       const nlohmann::json& body, int* exit_code);

// The items of a list endpoint (under `key`), page by page: `path(cursor)`
// for each, the cursor being the previous page's next_after. One page, or
// with `all` every page: a page shorter than `limit` is the last. `more`:
// the server may hold more after what was fetched (`next` is where).
struct Pages {
  nlohmann::json items = nlohmann::json::array();
  nlohmann::json next;
  bool more = false;
};
std::optional<Pages> FetchPages(ApiClient& client, const std::string& key, int64_t limit, bool all,
                                nlohmann::json cursor,
                                const std::function<std::string(const nlohmann::json&)>& path,
                                int* exit_code);

}  // namespace setdiag::cli
