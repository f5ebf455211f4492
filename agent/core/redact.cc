#include "agent/core/redact.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "common/status.h"
#include "common/strings.h"

namespace setdiag::agent::bundle {
namespace {

constexpr std::string_view kRuleKeyValue = "key_value";
constexpr std::string_view kRuleUri = "uri_credentials";
constexpr std::string_view kRuleHttpAuth = "http_auth";
constexpr std::string_view kRuleSetdiag = "setdiag_token";
constexpr std::string_view kRuleJwt = "jwt";
constexpr std::string_view kRuleAws = "aws_access_key";
constexpr std::string_view kRulePrivateKey = "private_key";
constexpr std::string_view kRuleCard = "card_number";
constexpr std::string_view kRuleSqlPassword = "sql_password";

// A PEM block that has not ended after this many lines was not a key.
constexpr int kMaxPrivateKeyLines = 400;
// An SQL literal that has not ended after this many more lines was not one.
constexpr int kMaxSqlLiteralLines = 20;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsUpper(char c) { return c >= 'A' && c <= 'Z'; }
bool IsLower(char c) { return c >= 'a' && c <= 'z'; }
bool IsAlpha(char c) { return IsUpper(c) || IsLower(c); }
bool IsAlnum(char c) { return IsDigit(c) || IsAlpha(c); }
bool IsHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool IsB64Url(char c) { return IsAlnum(c) || c == '-' || c == '_'; }
bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}
// Characters of a key name: db.password, api-key, --password, PGPASSWORD.
bool IsKeyChar(char c) { return IsAlnum(c) || c == '_' || c == '.' || c == '-'; }
char Lower(char c) { return IsUpper(c) ? static_cast<char>(c - 'A' + 'a') : c; }

}  // namespace

namespace internal {

// One value to remove: [begin, end) becomes `replacement`, counted under
// `rule` (not counted when empty). A streaming split must not fall strictly
// inside (guard_begin, guard_end): that is the text the rule needs to see
// whole, the key or prefix in front of the value included. `carry`: when a
// split does cut through the span (only a secret longer than a window, or
// a span the line state decides), its rest is removed from the next piece.
inline constexpr int kUntilTag = 1;
inline constexpr int kRestOfLine = 2;
inline constexpr int kToLineEndAll = 3;

struct Span {
  size_t begin;
  size_t end;
  std::string replacement;
  std::string_view rule;
  size_t guard_begin;
  size_t guard_end;
  bool carry;
  // The value runs to the end of the line: when cut, the rest of the line
  // goes too, or the rest up to a tag (kUntilTag: the text of an XML
  // element, up to the next '<' or the end of the line, without the blanks
  // before; kRestOfLine: after a key at the start of a line, which takes the
  // rest of the line but trailing blanks, keys in it included;
  // kToLineEndAll: all of it, as after an unclosed quote).
  int to_line_end = 0;
};

class Spans {
 public:
  void Add(size_t begin, size_t end, std::string replacement, std::string_view rule,
           size_t guard_begin, size_t guard_end, bool carry = true) {
    if (end > begin)
      spans_.push_back({begin, end, std::move(replacement), rule, guard_begin, guard_end, carry});
  }
  void Add(size_t begin, size_t end, std::string replacement, std::string_view rule) {
    Add(begin, end, std::move(replacement), rule, begin, end);
  }
  void Redact(size_t begin, size_t end, std::string_view rule, size_t context_begin,
              size_t context_end) {
    Add(begin, end, std::string(kRedacted), rule, std::min(begin, context_begin),
        std::max(end, context_end));
  }
  void Redact(size_t begin, size_t end, std::string_view rule) {
    Add(begin, end, std::string(kRedacted), rule);
  }
  void Redact(size_t begin, size_t end, std::string_view rule, size_t context_begin) {
    Redact(begin, end, rule, context_begin, end);
  }

  std::vector<Span>& spans() { return spans_; }
  const std::vector<Span>& spans() const { return spans_; }

  // Applies the spans; overlapping ones are merged (their union is removed),
  // a span inside another counts nothing.
  std::string Apply(std::string_view line, RedactionCounts* counts) {
    if (spans_.empty()) return std::string(line);
    std::stable_sort(spans_.begin(), spans_.end(), [](const Span& a, const Span& b) {
      return a.begin != b.begin ? a.begin < b.begin : a.end > b.end;
    });
    std::string out;
    out.reserve(line.size() + 16);
    size_t pos = 0;
    size_t i = 0;
    auto count = [&](std::string_view rule) {
      if (!rule.empty()) ++(*counts)[std::string(rule)];
    };
    while (i < spans_.size()) {
      Span cur = spans_[i++];
      if (cur.begin >= line.size()) break;
      cur.end = std::min(cur.end, line.size());
      count(cur.rule);
      while (i < spans_.size() && spans_[i].begin < cur.end) {
        if (spans_[i].end > cur.end) {
          cur.end = std::min(spans_[i].end, line.size());
          // A masked card merged with more: the union is one [REDACTED].
          // A removal without a marker (the rest of a secret cut at the
          // previous piece, which has the marker) stays without one.
          if (!cur.replacement.empty()) cur.replacement = std::string(kRedacted);
          count(spans_[i].rule);
        }
        ++i;
      }
      out.append(line.substr(pos, cur.begin - pos));
      out.append(cur.replacement);
      pos = cur.end;
    }
    out.append(line.substr(pos));
    return out;
  }

 private:
  std::vector<Span> spans_;
};

}  // namespace internal

namespace {

using internal::kRestOfLine;
using internal::kToLineEndAll;
using internal::kUntilTag;
using internal::Spans;

bool StartsWithAt(std::string_view s, size_t pos, std::string_view prefix) {
  return pos <= s.size() && s.substr(pos, prefix.size()) == prefix;
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool IsAlreadyRedacted(std::string_view v) {
  if (v.empty()) return false;
  if (std::all_of(v.begin(), v.end(), [](char c) { return c == '*'; })) return true;
  // One marker, or several side by side: two rules that met on one value
  // (PASSWORD '...' whose quote a one-line private key swallowed) leave
  // "[REDACTED][REDACTED]", and a second pass must leave that alone.
  // Around them, only quotes, blanks and separators the first pass left
  // ("[REDACTED]'" at the end of a line whose key took the rest).
  auto punct = [](char c) { return std::strchr(" \t'\";,)", c) != nullptr; };
  while (!v.empty() && punct(v.front())) v.remove_prefix(1);
  if (!v.starts_with(kRedacted)) return false;
  while (v.starts_with(kRedacted)) v.remove_prefix(kRedacted.size());
  return std::all_of(v.begin(), v.end(), punct);
}

// ---- tokens recognisable by their shape --------------------------------------

void FindSetdiagTokens(std::string_view line, Spans* spans) {
  for (std::string_view prefix : {"sdst_", "sds_", "sdu_"}) {
    size_t pos = 0;
    while ((pos = line.find(prefix, pos)) != std::string_view::npos) {
      size_t start = pos + prefix.size();
      size_t end = start;
      while (end < line.size() && IsHex(line[end])) ++end;
      bool boundary_before = pos == 0 || !(IsAlnum(line[pos - 1]) || line[pos - 1] == '_');
      bool boundary_after = end == line.size() || !IsAlnum(line[end]);
      if (boundary_before && boundary_after && end - start >= 16)
        spans->Redact(start, end, kRuleSetdiag, pos);
      pos = std::max(end, pos + 1);
    }
  }
}

void FindJwts(std::string_view line, Spans* spans) {
  size_t pos = 0;
  while ((pos = line.find("eyJ", pos)) != std::string_view::npos) {
    // Not inside a longer word; after '_' or '-' it may start (token_eyJ...).
    if (pos > 0 && (IsAlnum(line[pos - 1]) || line[pos - 1] == '.')) {
      ++pos;
      continue;
    }
    size_t e1 = pos;
    while (e1 < line.size() && IsB64Url(line[e1])) ++e1;
    bool ok = e1 - pos >= 10 && e1 < line.size() && line[e1] == '.';
    size_t e2 = e1 + 1;
    if (ok) {
      while (e2 < line.size() && IsB64Url(line[e2])) ++e2;
      ok = e2 - (e1 + 1) >= 10 && e2 < line.size() && line[e2] == '.';
    }
    if (!ok) {
      pos = e1 + 1;
      continue;
    }
    size_t e3 = e2 + 1;
    while (e3 < line.size() && IsB64Url(line[e3])) ++e3;
    spans->Redact(pos, e3, kRuleJwt);
    pos = e3;
  }
}

void FindAwsKeys(std::string_view line, Spans* spans) {
  for (std::string_view prefix : {"AKIA", "ASIA"}) {
    size_t pos = 0;
    while ((pos = line.find(prefix, pos)) != std::string_view::npos) {
      size_t end = pos + 4;
      while (end < line.size() && (IsUpper(line[end]) || IsDigit(line[end]))) ++end;
      bool boundary_before = pos == 0 || !IsAlnum(line[pos - 1]);
      bool boundary_after = end == line.size() || !IsAlnum(line[end]);
      if (boundary_before && boundary_after && end - pos == 20) spans->Redact(pos, end, kRuleAws);
      pos = end;
    }
  }
}

// A credential after "Bearer"/"Basic" must look like one, so that prose such
// as "Basic authentication failed" stays readable.
bool LooksLikeCredential(std::string_view t) {
  if (t.size() < 8) return false;
  bool digit = false, symbol = false, inner_upper = false, lower = false;
  for (size_t i = 0; i < t.size(); ++i) {
    char c = t[i];
    if (IsDigit(c))
      digit = true;
    else if (IsLower(c))
      lower = true;
    else if (IsUpper(c))
      inner_upper = inner_upper || i > 0;
    else
      symbol = true;
  }
  return digit || symbol || (inner_upper && lower);
}

void FindHttpAuth(std::string_view line, std::string_view lower, Spans* spans) {
  for (std::string_view word : {"bearer", "basic"}) {
    size_t pos = 0;
    while ((pos = lower.find(word, pos)) != std::string_view::npos) {
      size_t after = pos + word.size();
      bool boundary_before = pos == 0 || !IsAlnum(line[pos - 1]);
      size_t start = after;
      while (start < line.size() && (line[start] == ' ' || line[start] == '\t')) ++start;
      size_t end = start;
      while (end < line.size() &&
             (IsAlnum(line[end]) || std::strchr("._~+/=-", line[end]) != nullptr))
        ++end;
      if (boundary_before && start > after && end > start &&
          LooksLikeCredential(line.substr(start, end - start)) &&
          !IsAlreadyRedacted(line.substr(start, end - start))) {
        spans->Redact(start, end, kRuleHttpAuth, pos);
      }
      pos = std::max(end, after);
    }
  }
}

// scheme://user:password@host -> scheme://user:[REDACTED]@host
void FindUriCredentials(std::string_view line, Spans* spans) {
  size_t pos = 0;
  while ((pos = line.find("://", pos)) != std::string_view::npos) {
    size_t start = pos + 3;
    size_t end = start;
    while (end < line.size() && !IsSpace(line[end]) &&
           std::strchr("/?#\"'<>", line[end]) == nullptr)
      ++end;
    std::string_view authority = line.substr(start, end - start);
    size_t at = authority.rfind('@');
    if (at != std::string_view::npos) {
      size_t colon = authority.find(':');
      if (colon != std::string_view::npos && colon < at && colon + 1 < at &&
          !IsAlreadyRedacted(authority.substr(colon + 1, at - colon - 1))) {
        spans->Redact(start + colon + 1, start + at, kRuleUri, pos, start + at + 1);
      }
    }
    pos = end > pos + 3 ? end : pos + 3;
  }
}

// ---- key = value ------------------------------------------------------------

enum class KeyKind { kNone, kSecret, kKeyLike };

KeyKind Classify(std::string_view key) {
  while (!key.empty() && (key.back() == '.' || key.back() == '-')) key.remove_suffix(1);
  while (!key.empty() && key.front() == '-') key.remove_prefix(1);
  if (key.empty()) return KeyKind::kNone;
  // Keys naming where a secret is kept or how it behaves hold no secret:
  // token_file = "/etc/setdiag/agent.token" is useful evidence.
  static constexpr std::array<std::string_view, 14> kNotSecret = {
      "file", "files",   "filename", "path",    "dir",    "type",  "length",
      "len",  "timeout", "ttl",      "expires", "expiry", "count", "size"};
  for (auto suffix : kNotSecret) {
    if (EndsWith(key, suffix)) return KeyKind::kNone;
  }
  static constexpr std::array<std::string_view, 18> kSecretWords = {
      "password",  "passwd",     "passphrase", "pwd",        "secret",      "token",
      "apikey",    "api_key",    "api-key",    "privatekey", "private_key", "private-key",
      "accesskey", "access_key", "access-key", "credential", "authkey",     "auth_key"};
  for (auto word : kSecretWords) {
    if (key.find(word) != std::string_view::npos) return KeyKind::kSecret;
  }
  if (key == "pass" || EndsWith(key, "_pass") || EndsWith(key, ".pass") || EndsWith(key, "-pass")) {
    return KeyKind::kSecret;
  }
  if (EndsWith(key, "key")) return KeyKind::kKeyLike;
  return KeyKind::kNone;
}

// For keys merely ending in "key" (key=, signingKey=): only values that look
// like generated secrets, not "primaryKey=number".
bool LooksLikeSecretValue(std::string_view v) {
  if (v.size() < 20) return false;
  bool all_hex = true, digit = false, upper = false, lower = false;
  for (char c : v) {
    if (!IsAlnum(c) && std::strchr("+/=_-", c) == nullptr) return false;
    all_hex = all_hex && IsHex(c);
    digit = digit || IsDigit(c);
    upper = upper || IsUpper(c);
    lower = lower || IsLower(c);
  }
  return (all_hex && v.size() >= 24) || (digit && upper && lower);
}

// The quoted value of attribute `name` within [from, to), as [begin, end).
bool FindAttribute(std::string_view line, std::string_view lower, size_t from, size_t to,
                   std::string_view name, size_t* begin, size_t* end) {
  size_t pos = from;
  while ((pos = lower.find(name, pos)) != std::string_view::npos && pos < to) {
    size_t j = pos + name.size();
    bool boundary = pos == 0 || !IsKeyChar(line[pos - 1]);
    while (j < to && line[j] == ' ') ++j;
    if (boundary && j < to && line[j] == '=') {
      ++j;
      while (j < to && line[j] == ' ') ++j;
      if (j < to && (line[j] == '"' || line[j] == '\'')) {
        char q = line[j];
        size_t close = line.find(q, j + 1);
        if (close == std::string_view::npos || close > to) close = to;
        *begin = j + 1;
        *end = close;
        return true;
      }
    }
    pos = j;
  }
  return false;
}

// The text of an element whose start tag ends at `gt`: up to the next '<'.
void ElementText(std::string_view line, size_t gt, size_t* begin, size_t* end) {
  size_t b = gt + 1;
  size_t e = line.find('<', b);
  if (e == std::string_view::npos) e = line.size();
  while (b < e && IsSpace(line[b])) ++b;
  while (e > b && IsSpace(line[e - 1])) --e;
  *begin = b;
  *end = e;
}

class KeyValueScanner {
 public:
  KeyValueScanner(std::string_view line, std::string_view lower, bool continuation, Spans* spans,
                  bool* pending_xml_value)
      : line_(line),
        lower_(lower),
        continuation_(continuation),
        spans_(spans),
        pending_(pending_xml_value) {}

  void Run() {
    size_t i = 0;
    const size_t n = line_.size();
    while (i < n) {
      if (!IsKeyChar(line_[i])) {
        ++i;
        continue;
      }
      size_t s = i;
      while (i < n && IsKeyChar(line_[i])) ++i;
      KeyKind kind = Classify(lower_.substr(s, i - s));
      if (kind == KeyKind::kNone) continue;
      context_ = s > 0 ? s - 1 : 0;  // with the quote or '<' in front
      size_t resume = Value(s, i, kind);
      i = std::max(i, resume);
    }
  }

 private:
  void Take(size_t b, size_t e, KeyKind kind) {
    if (e <= b) return;
    std::string_view v = line_.substr(b, e - b);
    if (IsAlreadyRedacted(v)) return;
    if (kind == KeyKind::kKeyLike && !LooksLikeSecretValue(v)) return;
    spans_->Redact(b, e, kRuleKeyValue, context_);
  }

  // Element form: <password>value</password>, <password value="x"/>.
  // Scanning resumes right after the tag's name: the start tag's other
  // attributes are text like any other (<pass password=x> has a key too).
  size_t Element(size_t e, KeyKind kind) {
    size_t gt = line_.find('>', e);
    if (gt == std::string_view::npos) return e;
    size_t b = 0, v = 0;
    if (FindAttribute(line_, lower_, e, gt, "value", &b, &v)) {
      Take(b, v, kind);
      return e;
    }
    if (line_[gt - 1] == '/') return e;
    ElementText(line_, gt, &b, &v);
    if (b == v && v == line_.size() && kind == KeyKind::kSecret) *pending_ = true;
    Take(b, v, kind);
    return e;
  }

  // name="password" value="x", or <property name="password">x</property>.
  bool NamedAttribute(size_t s, size_t e, KeyKind kind, size_t* resume) {
    char q = line_[s - 1];
    if (e >= line_.size() || line_[e] != q || s < 2) return false;
    size_t j = s - 2;
    while (j > 0 && line_[j] == ' ') --j;
    if (line_[j] != '=') return false;
    size_t name_end = j;
    while (name_end > 0 && line_[name_end - 1] == ' ') --name_end;
    size_t name_begin = name_end;
    while (name_begin > 0 && IsKeyChar(line_[name_begin - 1])) --name_begin;
    std::string_view attr = lower_.substr(name_begin, name_end - name_begin);
    if (attr != "name" && attr != "key" && attr != "id" && attr != "property") return false;
    context_ = name_begin;
    size_t gt = line_.find('>', e);
    if (gt == std::string_view::npos) gt = line_.size();
    size_t b = 0, v = 0;
    if (FindAttribute(line_, lower_, e + 1, gt, "value", &b, &v)) {
      Take(b, v, kind);
      *resume = v;
      return true;
    }
    if (gt < line_.size() && line_[gt - 1] != '/') {
      ElementText(line_, gt, &b, &v);
      Take(b, v, kind);
      *resume = v;
      return true;
    }
    return false;
  }

  bool AtLineStart(size_t s) const {
    if (continuation_) return false;
    std::string_view before = line_.substr(0, s);
    while (!before.empty() && IsSpace(before.front())) before.remove_prefix(1);
    if (before.starts_with("export ")) before.remove_prefix(7);
    while (!before.empty() && IsSpace(before.front())) before.remove_prefix(1);
    return before.empty() || before == "\"" || before == "'";
  }

  // Returns where scanning resumes.
  size_t Value(size_t s, size_t e, KeyKind kind) {
    const size_t n = line_.size();
    char pre = s > 0 ? line_[s - 1] : '\0';
    if (pre == '<') return Element(e, kind);
    if (pre == '"' || pre == '\'') {
      size_t resume = e;
      if (NamedAttribute(s, e, kind, &resume)) return resume;
    }
    size_t j = e;
    if (j + 1 < n && line_[j] == '\\' && (line_[j + 1] == '"' || line_[j + 1] == '\''))
      j += 2;  // \"key\": in JSON text
    else if ((pre == '"' || pre == '\'') && j < n && line_[j] == pre)
      ++j;
    size_t before_blank = j;
    while (j < n && (line_[j] == ' ' || line_[j] == '\t')) ++j;
    bool blank_sep = false;
    if (j < n && line_[j] == '=') {
      if (j + 1 < n && line_[j + 1] == '=') return j + 2;
      j += (j + 1 < n && line_[j + 1] == '>') ? 2u : 1u;
    } else if (j < n && line_[j] == ':') {
      if (j + 1 < n && line_[j + 1] == ':') return j + 2;
      if (StartsWithAt(line_, j, "://")) return j + 3;
      j += (j + 1 < n && line_[j + 1] == '=') ? 2u : 1u;
    } else if (line_[s] == '-' && j > before_blank && j < n && line_[j] != '-') {
      blank_sep = true;  // --password secret
    } else {
      return e;
    }
    while (j < n && (line_[j] == ' ' || line_[j] == '\t')) ++j;
    if (j >= n) {
      return j;
    }
    // Quoted values, also with escaped quotes inside JSON text: \"secret\".
    if (line_[j] == '"' || line_[j] == '\'' ||
        (j + 1 < n && line_[j] == '\\' && (line_[j + 1] == '"' || line_[j + 1] == '\''))) {
      bool escaped = line_[j] == '\\';
      char q = escaped ? line_[j + 1] : line_[j];
      size_t b = j + (escaped ? 2u : 1u);
      size_t v = b;
      if (escaped) {
        v = line_.find(std::string{'\\', q}, b);
        if (v == std::string_view::npos) v = n;
      } else {
        while (v < n && line_[v] != q) v += (line_[v] == '\\' && v + 1 < n) ? 2u : 1u;
        v = std::min(v, n);
      }
      size_t before = spans_->spans().size();
      Take(b, v, kind);
      // A *key value that is not a secret ("primaryKey: 'id password=x'")
      // is text like any other: the keys in it are looked at.
      if (spans_->spans().size() == before) return b;
      // Never closed: the value is the rest of the line.
      if (v == n) spans_->spans().back().to_line_end = kToLineEndAll;
      return v;
    }
    if (line_.substr(j).starts_with(kRedacted)) return j + kRedacted.size();
    size_t v = j;
    if (!blank_sep && AtLineStart(s)) {
      v = n;
      while (v > j && IsSpace(line_[v - 1])) --v;
      size_t before = spans_->spans().size();
      Take(j, v, kind);
      // Not taken (a *key whose value is no generated secret, as in
      // "primaryKey: id password=x"): the rest of the line is scanned.
      if (spans_->spans().size() == before) return j;
      spans_->spans().back().to_line_end = kRestOfLine;
      return v;
    }
    while (v < n && !IsSpace(line_[v]) && std::strchr("&;,\"'<>)]}|", line_[v]) == nullptr) ++v;
    Take(j, v, kind);
    return v;
  }

  std::string_view line_;
  std::string_view lower_;
  bool continuation_;
  Spans* spans_;
  bool* pending_;
  size_t context_ = 0;  // where the key (with what makes it one) begins
};

bool MayHoldKeys(std::string_view lower) {
  for (std::string_view w : {"pass", "pwd", "secret", "token", "key", "credential"}) {
    if (lower.find(w) != std::string_view::npos) return true;
  }
  return false;
}

// ---- card numbers -----------------------------------------------------------

bool PassesGtin(std::string_view digits) {
  int sum = 0;
  bool three = true;
  for (size_t i = digits.size() - 1; i-- > 0;) {
    sum += (digits[i] - '0') * (three ? 3 : 1);
    three = !three;
  }
  return (10 - sum % 10) % 10 == digits.back() - '0';
}

bool IsCardNumber(const std::string& digits) {
  if (digits.size() < 13 || digits.size() > 19) return false;
  if (digits[0] < '2' || digits[0] > '6') return false;  // not a bank card's industry digit
  if (!PassesLuhn(digits)) return false;
  // A 13/14-digit number with a valid GTIN check digit is a barcode (EAN-13,
  // GTIN-14): 13-digit cards are long gone, and SET's logs are full of goods.
  if (digits.size() <= 14 && PassesGtin(digits)) return false;
  return true;
}

void FindCards(std::string_view line, Spans* spans) {
  const size_t n = line.size();
  size_t i = 0;
  while (i < n) {
    if (!IsDigit(line[i]) || (i > 0 && (IsAlnum(line[i - 1]) || line[i - 1] == '_'))) {
      ++i;
      continue;
    }
    std::vector<std::pair<size_t, size_t>> groups;
    char sep = 0;
    size_t p = i;
    while (true) {
      size_t gs = p;
      while (p < n && IsDigit(line[p])) ++p;
      groups.emplace_back(gs, p);
      if (groups.size() < 8 && p + 1 < n && (line[p] == ' ' || line[p] == '-') &&
          IsDigit(line[p + 1]) && (sep == 0 || sep == line[p])) {
        sep = line[p];
        ++p;
        continue;
      }
      break;
    }
    bool tail_ok = p == n || !(IsAlnum(line[p]) || line[p] == '_');
    bool found = false;
    for (size_t k = groups.size(); k >= 1 && !found; --k) {
      if (k == groups.size() && !tail_ok) continue;
      std::string digits;
      bool shape = true;
      for (size_t g = 0; g < k; ++g) {
        size_t len = groups[g].second - groups[g].first;
        if (k > 1 && (len < 3 || len > 6)) shape = false;
        digits.append(line.substr(groups[g].first, len));
      }
      if (!shape || !IsCardNumber(digits)) continue;
      size_t end = groups[k - 1].second;
      std::string masked(line.substr(i, end - i));
      size_t keep = 4;
      for (size_t c = masked.size(); c-- > 0;) {
        if (!IsDigit(masked[c])) continue;
        if (keep > 0) {
          --keep;
        } else {
          masked[c] = '*';
        }
      }
      spans->Add(i, end, std::move(masked), kRuleCard);
      i = end;
      found = true;
    }
    // Not a card from here: maybe from the next group on ("till 3 4276 ...").
    if (!found) i = groups.size() > 1 ? groups[1].first : p;
  }
}

// ---- SQL: ... PASSWORD 'secret' ----------------------------------------------

// Where the literal that ends with `closer` ends, from `from`: the position
// of its closing delimiter, or npos. In '...' a doubled quote is a quote;
// with `backslash` a backslash escapes too (E'...'; plain strings also when
// standard_conforming_strings is off, so both readings are tried and the
// longer literal wins: better a little more removed than a password's tail
// left).
size_t SqlLiteralEnd(std::string_view line, size_t from, const std::string& closer,
                     bool backslash) {
  if (closer != "'") return line.find(closer, from);
  auto scan = [&](bool escapes) -> size_t {
    for (size_t v = from; v < line.size(); ++v) {
      if (escapes && line[v] == '\\') {
        ++v;
        continue;
      }
      if (line[v] != '\'') continue;
      if (v + 1 < line.size() && line[v + 1] == '\'') {
        ++v;
        continue;
      }
      return v;
    }
    return std::string_view::npos;
  };
  size_t with_escapes = scan(true);
  if (backslash) return with_escapes;
  size_t plain = scan(false);
  if (with_escapes == std::string_view::npos) return plain;
  return std::max(with_escapes, plain);
}

// A string literal starting at `j`: '...', E'...', U&'...', $$...$$ or
// $tag$...$tag$. Sets where its text begins, what closes it and whether a
// backslash escapes in it (undecided for plain strings: false).
bool SqlLiteralStart(std::string_view line, size_t j, size_t* body, std::string* closer,
                     bool* backslash) {
  const size_t n = line.size();
  if (j >= n) return false;
  *backslash = false;
  if (line[j] == '\'') {
    *body = j + 1;
    *closer = "'";
    return true;
  }
  if ((line[j] == 'E' || line[j] == 'e') && j + 1 < n && line[j + 1] == '\'') {
    *body = j + 2;
    *closer = "'";
    *backslash = true;
    return true;
  }
  if ((line[j] == 'U' || line[j] == 'u') && j + 2 < n && line[j + 1] == '&' &&
      line[j + 2] == '\'') {
    *body = j + 3;
    *closer = "'";
    return true;
  }
  if (line[j] == '$') {
    size_t k = j + 1;
    if (k < n && IsDigit(line[k])) return false;  // $1: a parameter
    while (k < n && (IsAlnum(line[k]) || line[k] == '_')) ++k;
    if (k < n && line[k] == '$') {
      *body = k + 1;
      *closer = std::string(line.substr(j, k + 1 - j));
      return true;
    }
  }
  return false;
}

// [ENCRYPTED] PASSWORD 'x' of CREATE/ALTER ROLE/USER/GROUP, in a statement
// as PostgreSQL logs it ("LOG:  statement: ...", "STATEMENT:  ..."). A
// literal left open at the end of the line sets `closer`/`backslash` for
// the next lines; PASSWORD NULL and [REDACTED] pass.
void FindSqlPasswords(std::string_view line, std::string_view lower, Spans* spans,
                      std::string* open_closer, bool* open_backslash, bool* open_counted) {
  constexpr std::string_view kWord = "password";
  size_t pos = 0;
  while ((pos = lower.find(kWord, pos)) != std::string_view::npos) {
    size_t j = pos + kWord.size();
    bool boundary_before = pos == 0 || !(IsAlnum(line[pos - 1]) || line[pos - 1] == '_');
    if (!boundary_before || j >= line.size() || (line[j] != ' ' && line[j] != '\t')) {
      pos = j;
      continue;
    }
    while (j < line.size() && (line[j] == ' ' || line[j] == '\t')) ++j;
    size_t body = 0;
    std::string closer;
    bool backslash = false;
    if (!SqlLiteralStart(line, j, &body, &closer, &backslash)) {
      pos = j;
      continue;
    }
    size_t end = SqlLiteralEnd(line, body, closer, backslash);
    if (end == std::string_view::npos) {
      std::string_view text = Trim(line.substr(body));
      if (IsAlreadyRedacted(text)) return;
      if (!text.empty()) spans->Redact(body, line.size(), kRuleSqlPassword, pos);
      *open_closer = closer;  // the rest of the literal is on the next lines
      *open_backslash = backslash;
      *open_counted = !text.empty();
      return;
    }
    size_t close_end = end + closer.size();
    if (end > body && !IsAlreadyRedacted(line.substr(body, end - body)))
      spans->Redact(body, end, kRuleSqlPassword, pos, close_end);
    pos = close_end;
  }
}
}  // namespace

void AddCounts(RedactionCounts* into, const RedactionCounts& from) {
  for (const auto& [rule, n] : from) (*into)[rule] += n;
}

int64_t TotalCount(const RedactionCounts& counts) {
  int64_t total = 0;
  for (const auto& [rule, n] : counts) total += n;
  return total;
}

bool IsSecretKeyName(std::string_view key) {
  std::string lower(key);
  for (char& c : lower) c = Lower(c);
  return Classify(lower) == KeyKind::kSecret;
}

bool PassesLuhn(std::string_view text) {
  int sum = 0;
  int count = 0;
  bool dbl = false;
  for (size_t i = text.size(); i-- > 0;) {
    if (!IsDigit(text[i])) continue;
    int d = text[i] - '0';
    if (dbl) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    dbl = !dbl;
    ++count;
  }
  return count > 0 && sum % 10 == 0;
}

namespace {

constexpr std::string_view kPemBegin = "-----BEGIN", kPemEnd = "-----END",
                           kPemPrivate = "PRIVATE KEY-----";

// The first PEM end marker of a private key at or after `from`:
// "-----END", then only capitals and blanks ("RSA ", "ENCRYPTED "), then
// "PRIVATE KEY-----". Sets *end to where it begins and returns where its
// "PRIVATE KEY-----" begins, or npos. "-----ENDy: ... -----BEGIN PRIVATE
// KEY-----" ends nothing: its PRIVATE KEY belongs to a new BEGIN.
size_t FindPemEnd(std::string_view line, size_t from, size_t* end) {
  for (size_t e = line.find(kPemEnd, from); e != std::string_view::npos;
       e = line.find(kPemEnd, e + 1)) {
    const size_t marker = line.find(kPemPrivate, e);
    if (marker == std::string_view::npos) return marker;
    size_t j = e + kPemEnd.size();
    while (j < marker && (IsUpper(line[j]) || line[j] == ' ')) ++j;
    if (j == marker) {
      *end = e;
      return marker;
    }
  }
  return std::string_view::npos;
}

}  // namespace

void LineRedactor::Collect(std::string_view line, bool continuation, internal::Spans* spans) {
  constexpr std::string_view kBegin = kPemBegin, kPrivate = kPemPrivate;
  const size_t n = line.size();
  size_t scan_keys_from = 0;  // where a new PEM block may begin
  if (in_private_key_) {
    size_t end = 0;
    size_t marker = FindPemEnd(line, 0, &end);
    if (marker != std::string_view::npos) {
      in_private_key_ = false;
      // The key's last line goes; the END marker must not be split. What
      // follows it on the line is scanned like any text.
      spans->Add(0, end, "", "", end, marker + kPrivate.size(), false);
      scan_keys_from = marker + kPrivate.size();
    } else if (continuation || ++private_key_lines_ <= kMaxPrivateKeyLines) {
      // Counted at the first line of key material (not for text redacted before).
      std::string_view rule;
      if (!private_key_counted_ && Trim(line) != kRedacted && !Trim(line).empty()) {
        rule = kRulePrivateKey;
        private_key_counted_ = true;
      }
      // One marker for a line, also when a long one comes in pieces.
      spans->Add(0, n, continuation ? "" : std::string(kRedacted), rule, 0, 0, false);
      return;
    } else {
      in_private_key_ = false;  // never ended: it was not a key after all
    }
  }
  std::string lower(line);
  for (char& c : lower) c = Lower(c);

  if (!sql_closer_.empty()) {
    size_t end = SqlLiteralEnd(line, 0, sql_closer_, sql_backslash_);
    size_t stop = end == std::string_view::npos ? n : end;
    std::string_view text = Trim(line.substr(0, stop));
    std::string_view rule;
    if (!sql_counted_ && !text.empty() && !IsAlreadyRedacted(text)) {
      rule = kRuleSqlPassword;  // the literal began at the end of a line
      sql_counted_ = true;
    }
    if (end != std::string_view::npos) {
      spans->Add(0, end, std::string(kRedacted), rule, end, end + sql_closer_.size(), false);
      sql_closer_.clear();
    } else {
      spans->Add(0, n, continuation ? "" : std::string(kRedacted), rule, 0, 0, false);
      if (!continuation && ++sql_literal_lines_ >= kMaxSqlLiteralLines) sql_closer_.clear();
    }
  }
  if (pending_xml_value_) {
    size_t b = 0, e = line.find('<');
    if (e == std::string_view::npos) e = n;
    while (b < e && IsSpace(line[b])) ++b;
    size_t t = e;
    while (t > b && IsSpace(line[t - 1])) --t;
    // A piece of blanks only (a long line split) leaves the value to come.
    if (t > b || e < n) pending_xml_value_ = false;
    if (t > b && !IsAlreadyRedacted(line.substr(b, t - b))) {
      spans->Add(b, t, std::string(kRedacted), kRuleKeyValue, b, b);
      spans->spans().back().to_line_end = e == n ? kUntilTag : 0;
    }
  }
  // Every key on the line (JSON may hold several, each with \n escapes).
  for (size_t from = scan_keys_from, begin;
       (begin = line.find(kBegin, from)) != std::string_view::npos;) {
    size_t marker = line.find(kPrivate, begin);
    if (marker == std::string_view::npos) break;
    begin = line.rfind(kBegin, marker);  // the BEGIN of this PRIVATE KEY
    size_t body = marker + kPrivate.size();
    size_t end = 0;
    const size_t end_marker = FindPemEnd(line, body, &end);
    if (end_marker != std::string_view::npos) {
      // A whole key on one line.
      if (!IsAlreadyRedacted(line.substr(body, end - body)))
        spans->Redact(body, end, kRulePrivateKey, begin, end_marker + kPrivate.size());
      from = end_marker + kPrivate.size();
      continue;
    }
    in_private_key_ = true;
    private_key_lines_ = 0;
    private_key_counted_ = false;
    if (body < n && !IsAlreadyRedacted(Trim(line.substr(body)))) {
      spans->Redact(body, n, kRulePrivateKey, begin);
      private_key_counted_ = true;
    }
    break;
  }
  FindSetdiagTokens(line, spans);
  FindJwts(line, spans);
  FindAwsKeys(line, spans);
  FindHttpAuth(line, lower, spans);
  FindUriCredentials(line, spans);
  if (MayHoldKeys(lower) && !rest_is_value_)
    KeyValueScanner(line, lower, continuation, spans, &pending_xml_value_).Run();
  if (sql_closer_.empty() && lower.find("password") != std::string::npos) {
    FindSqlPasswords(line, lower, spans, &sql_closer_, &sql_backslash_, &sql_counted_);
    sql_literal_lines_ = 0;
  }
  FindCards(line, spans);
}

std::string LineRedactor::Line(std::string_view line, bool continuation) {
  internal::Spans spans;
  Collect(line, continuation, &spans);
  return spans.Apply(line, &counts_);
}

std::string RedactText(std::string_view text, RedactionCounts* counts) {
  LineRedactor r;
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) {
      out += r.Line(text.substr(pos));
      break;
    }
    out += r.Line(text.substr(pos, nl - pos));
    out += '\n';
    pos = nl + 1;
  }
  if (counts) AddCounts(counts, r.counts());
  return out;
}

void RedactJsonStrings(nlohmann::json* value, RedactionCounts* counts) {
  if (value->is_string()) {
    const std::string& text = value->get_ref<const std::string&>();
    RedactionCounts local;
    std::string out = RedactText(text, &local);
    if (!local.empty()) {
      if (counts) AddCounts(counts, local);
      *value = std::move(out);
    }
  } else if (value->is_object()) {
    for (auto it = value->begin(); it != value->end(); ++it) {
      // Ids the collector matches on (episode ids hold 13-digit instants
      // that can pass the card check, TIs are digits): never SET's free
      // text, and masking them would split one condition into two.
      static constexpr std::string_view kIdentifiers[] = {"episode", "state",      "kind",
                                                          "source",  "config_key", "ti"};
      if (it->is_string() && std::find(std::begin(kIdentifiers), std::end(kIdentifiers),
                                       it.key()) != std::end(kIdentifiers)) {
        continue;
      }
      if (it->is_string() && IsSecretKeyName(it.key())) {
        const std::string& text = it->get_ref<const std::string&>();
        if (!text.empty() && !IsAlreadyRedacted(text)) {
          *it = std::string(kRedacted);
          if (counts) ++(*counts)[std::string(kRuleKeyValue)];
        }
        continue;
      }
      RedactJsonStrings(&*it, counts);
    }
  } else if (value->is_array()) {
    for (auto& v : *value) RedactJsonStrings(&v, counts);
  }
}

StreamRedactor::StreamRedactor(Sink sink, size_t max_line)
    : sink_(std::move(sink)), max_line_(max_line) {
  if (max_line_ < 4096) max_line_ = 4096;
}

namespace {

// What a token is made of: a cut between two of these would split a word.
bool IsWordChar(char c) {
  return IsAlnum(c) || c == '_' || c == '-' || c == '.' || c == '+' || c == '/' || c == '=' ||
         c == '%' || c == '*';
}

// Where an unquoted value ends.
bool EndsValue(char c) { return IsSpace(c) || std::strchr("&;,\"'<>)]}|", c) != nullptr; }

}  // namespace

void StreamRedactor::AddCarry(std::string_view piece, bool last, internal::Spans* spans) const {
  if (carry_bytes_ == 0 && !carry_open_ && !carry_to_line_end_) return;
  size_t end = std::min(carry_bytes_, piece.size());
  if (carry_to_line_end_ == internal::kUntilTag) {
    size_t lt = piece.find('<');
    end = lt == std::string_view::npos ? piece.size() : lt;
    if (lt != std::string_view::npos || last) {
      while (end > 0 && IsSpace(piece[end - 1])) --end;
    }
  } else if (carry_to_line_end_) {
    end = piece.size();
    if (last && carry_to_line_end_ != internal::kToLineEndAll) {
      while (end > 0 && IsSpace(piece[end - 1])) --end;  // as a whole line's value
    }
  } else if (carry_open_) {
    while (end < piece.size() && piece[end] != '\0' && !EndsValue(piece[end])) ++end;
  }
  if (end == 0) return;
  spans->Add(0, end, "", "", 0, 0, true);  // counted where it began
  spans->spans().back().to_line_end = carry_to_line_end_;
}

absl::Status StreamRedactor::Send(std::string out) {
  bytes_out_ += out.size();
  status_ = sink_(out);
  return status_;
}

absl::Status StreamRedactor::Emit(std::string_view piece, bool newline) {
  internal::Spans spans;
  AddCarry(piece, true, &spans);
  carry_bytes_ = 0;
  carry_open_ = false;
  line_.rest_is_value_ = carry_to_line_end_ == internal::kRestOfLine;
  carry_to_line_end_ = 0;
  line_.Collect(piece, continuation_, &spans);
  line_.rest_is_value_ = false;
  std::string out = spans.Apply(piece, &line_.counts_);
  if (newline) out += '\n';
  return Send(std::move(out));
}

absl::Status StreamRedactor::Split() {
  const std::string_view window(pending_);
  const size_t n = window.size();
  const size_t hold = std::min(kHoldBack, max_line_ / 4);
  // What the whole window would redact, on a copy of the line state.
  internal::Spans found;
  AddCarry(window, false, &found);
  LineRedactor probe = line_;
  probe.rest_is_value_ = carry_to_line_end_ == internal::kRestOfLine;
  probe.Collect(window, continuation_, &found);

  // The cut: at least `hold` before the end, between words when there is
  // such a place in the 1 KiB before...
  size_t cut = n - hold;
  for (size_t k = cut; k > 0 && k + 1024 > cut; --k) {
    if (!IsWordChar(window[k - 1]) || !IsWordChar(window[k])) {
      cut = k;
      break;
    }
  }
  const size_t preferred = cut;
  // ...and never inside a secret or its context: before them instead.
  for (bool moved = true; moved;) {
    moved = false;
    for (const auto& sp : found.spans()) {
      if (sp.guard_begin < cut && cut < sp.guard_end) {
        cut = sp.guard_begin;
        moved = true;
      }
    }
  }
  // A single secret (with its context) filling most of the window cannot be
  // seen whole: cut through it, remove its front here and its rest after.
  const bool forced = cut < n / 4;
  if (forced) cut = preferred;

  const std::string_view front = window.substr(0, cut);
  internal::Spans spans;
  AddCarry(front, false, &spans);
  line_.rest_is_value_ = carry_to_line_end_ == internal::kRestOfLine;
  line_.Collect(front, continuation_, &spans);
  line_.rest_is_value_ = false;
  size_t carry = 0;
  bool open = false;
  int to_line_end = 0;
  std::vector<internal::Span> clipped;
  for (const auto& sp : found.spans()) {
    if (sp.begin >= cut || sp.end <= cut) continue;  // does not cross the cut
    if (forced && sp.guard_begin < sp.guard_end) {
      clipped.push_back(sp);
      clipped.back().end = cut;
      clipped.back().replacement = std::string(kRedacted);
    }
    if (!sp.carry) continue;  // the line state carries it on
    carry = std::max(carry, sp.end - cut);
    open = open || sp.end >= n;
    to_line_end = std::max(to_line_end, sp.to_line_end);
  }
  if (!clipped.empty()) {
    // Counted once, under the rule that saw it whole: what the front alone
    // found of it joins it.
    auto& front_spans = spans.spans();
    for (auto& c : clipped) {
      for (auto it = front_spans.begin(); it != front_spans.end();) {
        // (A removal without a marker, the rest of an earlier secret, stays
        // as it is: it covers what it covers.)
        if (it->begin < c.end && c.begin < it->end && it->carry && !it->replacement.empty()) {
          c.begin = std::min(c.begin, it->begin);
          c.end = std::max(c.end, it->end);
          it = front_spans.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& c : clipped) front_spans.push_back(std::move(c));
  }
  std::string out = spans.Apply(front, &line_.counts_);
  carry_bytes_ = carry;
  carry_open_ = open;
  carry_to_line_end_ = to_line_end;
  ++lines_split_;
  pending_.erase(0, cut);
  continuation_ = true;
  return Send(std::move(out));
}

absl::Status StreamRedactor::Feed(std::string_view chunk) {
  if (!status_.ok()) return status_;
  bytes_in_ += chunk.size();
  while (!chunk.empty()) {
    size_t nl = chunk.find('\n');
    size_t take = nl == std::string_view::npos ? chunk.size() : nl;
    size_t room = max_line_ - pending_.size();
    if (take <= room && nl != std::string_view::npos) {
      pending_.append(chunk.substr(0, take));
      RETURN_IF_ERROR(Emit(pending_, true));
      pending_.clear();
      continuation_ = false;
      chunk.remove_prefix(take + 1);
      continue;
    }
    if (take <= room) {  // no newline yet: keep the partial line
      pending_.append(chunk);
      return absl::OkStatus();
    }
    // The line is longer than a window: emit its front, keep the rest.
    pending_.append(chunk.substr(0, room));
    chunk.remove_prefix(room);
    RETURN_IF_ERROR(Split());
  }
  return absl::OkStatus();
}

absl::Status StreamRedactor::Finish() {
  if (!status_.ok()) return status_;
  if (!pending_.empty()) {
    RETURN_IF_ERROR(Emit(pending_, false));
    pending_.clear();
  }
  return absl::OkStatus();
}

}  // namespace setdiag::agent::bundle
