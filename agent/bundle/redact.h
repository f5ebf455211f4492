#pragma once
// Redaction of secrets in text that goes into a diagnostic bundle: the
// agent's and the SET server's config files, logs, command lines and
// database text. Pure code, no I/O: a LineRedactor takes one line at a time
// and returns it with secrets replaced; a StreamRedactor feeds arbitrary
// chunks through a LineRedactor with a bounded line length. Rules and their
// names (the keys of RedactionCounts) are documented in docs/bundles.md:
//
//   key_value         values of keys named like password|passwd|pwd|secret|
//                     token|api_key|private_key|credential... in TOML, INI,
//                     properties, YAML, JSON, shell, libpq conninfo, URL query
//                     (JDBC), XML attributes and elements, name/value pairs;
//                     and long hex/base64 values of keys named like *key
//   uri_credentials   the password of scheme://user:password@host
//   http_auth         the credentials after "Bearer" / "Basic"
//   setdiag_token     setdiag store and user tokens (sdst_..., sdu_...)
//   jwt               JSON web tokens (eyJ....eyJ....sig)
//   aws_access_key    AKIA... / ASIA... access key ids
//   private_key       the body of a PEM "PRIVATE KEY" block
//   card_number       13..19 digits passing Luhn with a card's first digit
//                     (2-6), masked to the last four digits
//
// Secrets become "[REDACTED]" (a token's prefix such as "sdst_" is kept);
// card numbers keep their separators and last four digits. The counts say
// how many values each rule removed, never the values.
//
// Not thread-safe; one redactor per file. Redaction is idempotent: text
// already redacted comes out unchanged and counts nothing.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace setdiag::agent::bundle {

inline constexpr std::string_view kRedacted = "[REDACTED]";

// Rule name -> how many values it removed.
using RedactionCounts = std::map<std::string, int64_t>;

void AddCounts(RedactionCounts* into, const RedactionCounts& from);
int64_t TotalCount(const RedactionCounts& counts);

// Whether a key or column name holds a secret by its name alone (password,
// db.password, apiToken; not token_file). For structured data, where a value
// has no "key=" in front of it.
bool IsSecretKeyName(std::string_view key);

// Luhn checksum over the digits of `digits` (other characters ignored).
bool PassesLuhn(std::string_view digits);

class LineRedactor {
 public:
  // Redacts one line (without its newline; a trailing '\r' is kept as is).
  // `continuation` marks the second and later pieces of a line that was too
  // long and split: a key there is not at the start of a line.
  std::string Line(std::string_view line, bool continuation = false);

  const RedactionCounts& counts() const { return counts_; }

 private:
  // Set while inside a multi-line PEM private key block.
  bool in_private_key_ = false;
  int private_key_lines_ = 0;
  bool private_key_counted_ = false;
  // Set when a secret XML element opened at the end of the previous line
  // (<password> newline value): the next line's text is its value.
  bool pending_xml_value_ = false;
  RedactionCounts counts_;
};

// Whole text in, redacted text out; line endings are preserved.
std::string RedactText(std::string_view text, RedactionCounts* counts);

// Line-oriented streaming: Feed() any chunks, Finish() at the end; redacted
// output goes to `sink` a line (or a piece of an over-long line) at a time.
// Memory is bounded by max_line: a line longer than that is split, at the
// last blank or delimiter in its final 4 KiB when there is one. A secret
// that straddles such a split can only be caught by the rules that need no
// context (tokens, cards are not split across pieces by design: the split
// prefers a delimiter). A sink error stops the stream and is returned.
class StreamRedactor {
 public:
  using Sink = std::function<absl::Status(std::string_view)>;
  static constexpr size_t kDefaultMaxLine = 64 * 1024;

  explicit StreamRedactor(Sink sink, size_t max_line = kDefaultMaxLine);
  absl::Status Feed(std::string_view chunk);
  absl::Status Finish();

  const RedactionCounts& counts() const { return line_.counts(); }
  uint64_t bytes_in() const { return bytes_in_; }
  uint64_t bytes_out() const { return bytes_out_; }
  uint64_t lines_split() const { return lines_split_; }

 private:
  absl::Status Emit(std::string_view piece, bool newline);

  Sink sink_;
  size_t max_line_;
  LineRedactor line_;
  std::string pending_;        // the current line so far, at most max_line_
  bool continuation_ = false;  // pending_ continues a split line
  absl::Status status_;
  uint64_t bytes_in_ = 0;
  uint64_t bytes_out_ = 0;
  uint64_t lines_split_ = 0;
};

}  // namespace setdiag::agent::bundle
