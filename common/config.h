#pragma once
// Typed access to a TOML config file that remembers where every value came
// from, so that each error names the file, the line and the key. Reading never
// throws: errors accumulate and Finish() reports the first one, including keys
// nobody asked for (a typo must not silently fall back to a default).
// A binary exits with code 2 when its config is bad (see docs/config.md).

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"

namespace toml {
inline namespace v3 {
class table;
}
}  // namespace toml

namespace setdiag {

class ConfigReader {
 public:
  // Parses a file. On a syntax error, the status names the file and line.
  static absl::Status Load(const std::string& path, std::unique_ptr<ConfigReader>* out);
  // Parses text (for tests); `origin` is used in messages.
  static absl::Status Parse(std::string_view text, const std::string& origin,
                            std::unique_ptr<ConfigReader>* out);
  ~ConfigReader();

  // Dotted keys such as "outbox.max_bytes". A missing key yields `def`.
  std::string String(std::string_view key, std::string def);
  std::optional<std::string> OptionalString(std::string_view key);
  int64_t Int(std::string_view key, int64_t def, int64_t min, int64_t max);
  bool Bool(std::string_view key, bool def);
  // A duration: integer seconds or a string "500ms", "30s", "10m", "2h", "7d".
  // Returned in milliseconds.
  int64_t DurationMs(std::string_view key, int64_t def_ms, int64_t min_ms);
  // A size: integer bytes or "64KiB", "256MiB", "1GiB".
  int64_t Bytes(std::string_view key, int64_t def, int64_t min);
  std::string RequireString(std::string_view key);
  // The keys of a table such as [tills.roster] whose keys are data (till
  // numbers); each counts as known. Empty if the table is absent.
  std::vector<std::string> TableKeys(std::string_view key);
  // An array of integers, each within [min, max].
  std::vector<int64_t> IntList(std::string_view key, int64_t min, int64_t max);
  // An array of strings, e.g. ["2026-01-01", "2026-01-07"]. Empty if absent.
  std::vector<std::string> StringList(std::string_view key);
  // Whether the file sets `key` (it then counts as known).
  bool Has(std::string_view key) { return Find(key) != nullptr; }
  // Records an error for a key found invalid by the caller.
  void Invalid(std::string_view key, std::string_view what) { Fail(key, what); }

  // First error recorded, or unknown keys; OK if the file is good.
  absl::Status Finish();

  // Exposed for tests and for composite values.
  static std::optional<int64_t> ParseDurationMs(std::string_view text);
  static std::optional<int64_t> ParseBytes(std::string_view text);

 private:
  ConfigReader(std::string origin, std::unique_ptr<toml::table> table);
  void Fail(std::string_view key, std::string_view what);
  const void* Find(std::string_view key);  // toml::node*

  std::string origin_;
  std::unique_ptr<toml::table> table_;
  std::set<std::string, std::less<>> known_;
  std::set<std::string, std::less<>> tables_;  // keys that are parents of others
  std::vector<std::string> errors_;
};

}  // namespace setdiag
