#pragma once
// Redaction of secrets in text that leaves the store: what goes into a
// diagnostic bundle (the agent's and the SET server's config files, logs,
// command lines and database text) and every event's payload (what the
// watches read from SET, RedactJsonStrings). Pure code, no I/O: a
// LineRedactor takes one line at a time and returns it with secrets
// replaced; a StreamRedactor feeds arbitrary chunks through a LineRedactor
// with a bounded line length. Rules and their names (the keys of
// RedactionCounts) are documented in docs/bundles.md:
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
//   sql_password      the string literal after PASSWORD in SQL as PostgreSQL
//                     logs it (CREATE/ALTER ROLE|USER ... [ENCRYPTED] PASSWORD
//                     '...'): '' and \' escapes, E'...', $tag$...$tag$, also
//                     a literal continued on the next lines
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
#include <nlohmann/json.hpp>
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

namespace internal {
class Spans;  // what one piece of a line redacts (redact.cc)
}  // namespace internal

class LineRedactor {
 public:
  // Redacts one line (without its newline; a trailing '\r' is kept as is).
  // `continuation` marks the second and later pieces of a line that was too
  // long and split: a key there is not at the start of a line.
  std::string Line(std::string_view line, bool continuation = false);

  const RedactionCounts& counts() const { return counts_; }

 private:
  friend class StreamRedactor;
  // Finds what `line` redacts and updates the state carried between lines.
  void Collect(std::string_view line, bool continuation, internal::Spans* spans);

  // Set while inside a multi-line PEM private key block.
  bool in_private_key_ = false;
  int private_key_lines_ = 0;
  bool private_key_counted_ = false;
  // Set when a secret XML element opened at the end of the previous line
  // (<password> newline value): the next line's text is its value.
  bool pending_xml_value_ = false;
  // Set while inside an SQL password literal that did not end on its line:
  // what closes it (' or $tag$) and whether a backslash escapes.
  std::string sql_closer_;
  bool sql_backslash_ = false;
  bool sql_counted_ = false;  // its first line had text (and counted it)
  int sql_literal_lines_ = 0;
  // Set by a StreamRedactor for a piece that is all the value of a key at
  // the start of its line: no key in it counts (as in the whole line).
  bool rest_is_value_ = false;
  RedactionCounts counts_;
};

// Whole text in, redacted text out; line endings are preserved.
std::string RedactText(std::string_view text, RedactionCounts* counts);

// Redacts every string of a JSON value in place (object members and array
// elements, recursively; member names are left alone) with the rules above,
// and replaces whole any non-empty string under a member named like a secret
// (IsSecretKeyName). Numbers, booleans and strings without secrets are left
// as they are. Every text the agent takes from SET (error messages, file
// names, cashier names) passes here before it becomes an event: the payload
// of each finding, on its way to the outbox (agent/watches/findings.cc), and of
// `setdiag-agent emit`.
void RedactJsonStrings(nlohmann::json* value, RedactionCounts* counts);

// Line-oriented streaming: Feed() any chunks, Finish() at the end; redacted
// output goes to `sink` a line (or a piece of an over-long line) at a time.
// Memory is bounded by max_line: a line longer than that is redacted in
// windows of max_line bytes. Of each window only the front is emitted, up to
// a cut at least kHoldBack before its end that falls neither inside a secret
// nor between a secret and what its rule needs to see (the key in front of
// a value, "Bearer", "://user:", PASSWORD); the rest starts the next window.
// So a secret with its context up to kHoldBack long is seen whole at any
// offset. Only a single secret longer than max_line - kHoldBack is cut; its
// remainder is then removed up to the next blank or delimiter (to the end
// of the line for a value that takes the rest of its line). The counts
// are of what was removed in the output, each value once. A sink error
// stops the stream and is returned.
class StreamRedactor {
 public:
  using Sink = std::function<absl::Status(std::string_view)>;
  static constexpr size_t kDefaultMaxLine = 64 * 1024;
  // How much of a window is held back for the next one (at most a quarter
  // of max_line).
  static constexpr size_t kHoldBack = 8 * 1024;

  explicit StreamRedactor(Sink sink, size_t max_line = kDefaultMaxLine);
  absl::Status Feed(std::string_view chunk);
  absl::Status Finish();

  const RedactionCounts& counts() const { return line_.counts(); }
  uint64_t bytes_in() const { return bytes_in_; }
  uint64_t bytes_out() const { return bytes_out_; }
  uint64_t lines_split() const { return lines_split_; }

 private:
  absl::Status Emit(std::string_view piece, bool newline);
  // Emits the front of the full window pending_ and keeps the rest.
  absl::Status Split();
  // What a secret cut at the end of the previous piece leaves to remove at
  // the start of `piece` (`last`: the piece ends the line).
  void AddCarry(std::string_view piece, bool last, internal::Spans* spans) const;
  absl::Status Send(std::string out);

  Sink sink_;
  size_t max_line_;
  LineRedactor line_;
  std::string pending_;        // the current line so far, at most max_line_
  bool continuation_ = false;  // pending_ continues a split line
  // A secret cut by the last split: its known rest (bytes), whether it ran
  // on past the window that saw it, and whether it takes the rest of the
  // line (a value after a key at the start of the line).
  size_t carry_bytes_ = 0;
  bool carry_open_ = false;
  int carry_to_line_end_ = 0;  // how it ends (redact.cc: kUntilTag...)
  absl::Status status_;
  uint64_t bytes_in_ = 0;
  uint64_t bytes_out_ = 0;
  uint64_t lines_split_ = 0;
};

}  // namespace setdiag::agent::bundle
