#include "common/config.h"

#include <toml++/toml.h>

#include <charconv>
#include <cstdio>
#include <filesystem>

#include "absl/status/statusor.h"
#include "common/files.h"
#include "common/status.h"
#include "common/strings.h"

namespace setdiag {
namespace {

std::string Where(const std::string& origin, const toml::node* node) {
  if (node == nullptr) return origin;
  return Cat(origin, ":", node->source().begin.line);
}

std::optional<int64_t> ParseNumberWithUnit(
    std::string_view text, std::initializer_list<std::pair<std::string_view, int64_t>> units) {
  size_t i = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9') ++i;
  if (i == 0) return std::nullopt;
  int64_t n = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + i, n);
  if (ec != std::errc()) return std::nullopt;
  std::string_view unit = text.substr(i);
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  for (const auto& [name, mult] : units) {
    if (unit == name) {
      if (n > INT64_MAX / mult) return std::nullopt;
      return n * mult;
    }
  }
  return std::nullopt;
}

// toml++ 3.3.0 (Debian 12) has undefined behaviour on some non-ASCII
// characters: its is_unicode_whitespace() reaches __builtin_unreachable for
// U+00A1..U+0499 (Latin-1 letters, Greek, most of Cyrillic) and
// U+FB46..U+FEFE, and it asks about the character after a value, a key or
// '=' ("max_message_bytes = 5б"), after a backslash in a multi-line basic
// string, and the first one after a line-ending backslash there (valid
// TOML: "motd = \"\"\"\\" then "    Магазин\"\"\""). TOML 1.0 allows
// non-ASCII only inside strings and comments, so outside them a file is
// refused here, before toml++ sees it, naming the line and the character;
// after a backslash it is refused too (no escape starts with one); and the
// first character after a line-ending backslash is handed to toml++ as the
// \uXXXX escape that means the same. Found by tests/fuzz (agent_config,
// collector_config).
absl::StatusOr<std::string> PrepareForToml(std::string_view text, const std::string& origin) {
  size_t line = 1;
  size_t i = 0;
  std::string out;
  out.reserve(text.size() + 16);
  if (text.starts_with("\xEF\xBB\xBF")) {  // UTF-8 byte order mark
    out.append(text.substr(0, 3));
    i = 3;
  }
  const size_t n = text.size();
  // The code point at `at` and its length in bytes; 0 if not UTF-8.
  auto decode = [&](size_t at, size_t* len) -> uint32_t {
    auto c = static_cast<unsigned char>(text[at]);
    *len = (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (*len == 0 || at + *len > n) return 0;
    uint32_t cp = c & (0x7fu >> *len);
    for (size_t k = 1; k < *len; ++k) {
      auto cc = static_cast<unsigned char>(text[at + k]);
      if ((cc & 0xc0) != 0x80) return 0;
      cp = (cp << 6) | (cc & 0x3fu);
    }
    return cp;
  };
  auto refuse = [&](size_t at, std::string_view where) {
    size_t len = 0;
    const uint32_t cp = decode(at, &len);
    char hex[16];
    std::snprintf(hex, sizeof hex, "U+%04X", cp);
    return absl::InvalidArgumentError(Cat(
        origin, ":", line, ": ",
        cp == 0 ? std::string("a byte that is not UTF-8 ")
                : Cat("a non-ASCII character (", hex, ") "),
        where, "; TOML allows letters other than Latin only inside quoted strings and comments"));
  };
  auto non_ascii = [&](size_t k) { return static_cast<unsigned char>(text[k]) >= 0x80; };
  // A quote right after a bare value's character ("0000\"\"\"...") does not
  // start a string for toml++: it scans it as part of that value.
  auto bare = [](char ch) {
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           ch == '_' || ch == '-' || ch == '+' || ch == ':';
  };
  // So is a quote right after such a quote ("0000\"\"b..."): the second one
  // is no string's start either.
  bool bare_quote = false;
  while (i < n) {
    char c = text[i];
    const bool after_bare_quote = bare_quote;
    bare_quote = false;
    if (c == '\n') {
      ++line;
      out.push_back(text[i++]);
    } else if (c == '#') {
      while (i < n && text[i] != '\n') out.push_back(text[i++]);
    } else if ((c == '"' || c == '\'') &&
               (out.empty() || !(bare(out.back()) || after_bare_quote))) {
      const bool multi = text.substr(i, 3) == std::string(3, c);
      const bool basic = c == '"';
      const size_t open = multi ? 3 : 1;
      out.append(text.substr(i, open));
      i += open;
      while (i < n) {
        if (multi ? text.substr(i, 3) == std::string(3, c) : text[i] == c) {
          out.append(text.substr(i, multi ? 3 : 1));
          i += multi ? 3 : 1;
          // A multi-line string may end in up to two more quotes.
          while (multi && i < n && text[i] == c) out.push_back(text[i++]);
          break;
        }
        if (text[i] == '\n') {
          ++line;
          if (!multi) break;  // unterminated: toml++ names it
        }
        if (basic && text[i] == '\\' && i + 1 < n) {
          if (!multi) {
            out.append(text.substr(i, 2));
            if (text[i + 1] == '\n') ++line;
            i += 2;
            continue;
          }
          size_t j = i + 1;
          while (j < n && (text[j] == ' ' || text[j] == '\t' || text[j] == '\r')) ++j;
          if (j < n && non_ascii(j)) return refuse(j, "after a backslash in a string");
          if (j < n && text[j] == '\n') {
            // A line-ending backslash: toml++ skips the blanks and line
            // breaks after it, asking about the first other character.
            size_t k = j;
            while (k < n &&
                   (text[k] == ' ' || text[k] == '\t' || text[k] == '\r' || text[k] == '\n')) {
              if (text[k] == '\n') ++line;
              ++k;
            }
            out.append(text.substr(i, k - i));
            i = k;
            if (i < n && non_ascii(i)) {
              size_t len = 0;
              const uint32_t cp = decode(i, &len);
              if (cp == 0) return refuse(i, "in a string");
              char esc[16];
              std::snprintf(esc, sizeof esc, cp > 0xffff ? "\\U%08X" : "\\u%04X", cp);
              out.append(esc);
              i += len;
            }
            continue;
          }
          out.append(text.substr(i, 2));
          i += 2;
          continue;
        }
        out.push_back(text[i++]);
      }
    } else if (non_ascii(i)) {
      return refuse(i, "outside a string or comment");
    } else {
      bare_quote = c == '"' || c == '\'';  // here only as part of a bare value
      out.push_back(text[i++]);
    }
  }
  return out;
}

}  // namespace

ConfigReader::ConfigReader(std::string origin, std::unique_ptr<toml::table> table)
    : origin_(std::move(origin)), table_(std::move(table)) {}
ConfigReader::~ConfigReader() = default;

absl::Status ConfigReader::Parse(std::string_view text, const std::string& origin,
                                 std::unique_ptr<ConfigReader>* out) {
  ASSIGN_OR_RETURN(auto prepared, PrepareForToml(text, origin));
  try {
    auto tbl = std::make_unique<toml::table>(toml::parse(prepared, origin));
    out->reset(new ConfigReader(origin, std::move(tbl)));
    return absl::OkStatus();
  } catch (const toml::parse_error& e) {
    return absl::InvalidArgumentError(
        Cat(origin, ":", e.source().begin.line, ": ", e.description()));
  }
}

absl::Status ConfigReader::Load(const std::string& path, std::unique_ptr<ConfigReader>* out) {
  std::error_code ec;
  if (!std::filesystem::is_directory(path, ec)) {
    if (auto text = ReadWholeFile(path); text.ok()) return Parse(*text, path, out);
  }
  try {  // cannot be opened: toml++ says why, as before
    auto tbl = std::make_unique<toml::table>(toml::parse_file(path));
    out->reset(new ConfigReader(path, std::move(tbl)));
    return absl::OkStatus();
  } catch (const toml::parse_error& e) {
    if (e.source().begin.line == 0) {
      return absl::NotFoundError(Cat(path, ": ", e.description()));
    }
    return absl::InvalidArgumentError(Cat(path, ":", e.source().begin.line, ": ", e.description()));
  }
}

const void* ConfigReader::Find(std::string_view key) {
  known_.insert(std::string(key));
  // Every parent table counts as known too, and must be a table.
  for (size_t pos = key.find('.'); pos != std::string_view::npos; pos = key.find('.', pos + 1)) {
    known_.insert(std::string(key.substr(0, pos)));
    tables_.insert(std::string(key.substr(0, pos)));
  }
  return table_->at_path(key).node();
}

void ConfigReader::Fail(std::string_view key, std::string_view what) {
  const auto* node = static_cast<const toml::node*>(Find(key));
  errors_.push_back(Cat(Where(origin_, node), ": key '", key, "': ", what));
}

std::string ConfigReader::String(std::string_view key, std::string def) {
  const auto* node = static_cast<const toml::node*>(Find(key));
  if (node == nullptr) return def;
  if (auto v = node->value<std::string>(); v && node->is_string()) return *v;
  Fail(key, "expected a string");
  return def;
}

std::optional<std::string> ConfigReader::OptionalString(std::string_view key) {
  const auto* node = static_cast<const toml::node*>(Find(key));
  if (node == nullptr) return std::nullopt;
  if (node->is_string()) return *node->value<std::string>();
  Fail(key, "expected a string");
  return std::nullopt;
}

std::string ConfigReader::RequireString(std::string_view key) {
  const auto* node = static_cast<const toml::node*>(Find(key));
  if (node == nullptr) {
    errors_.push_back(Cat(origin_, ": key '", key, "' is required but missing"));
    return {};
  }
  if (!node->is_string() || node->value<std::string>()->empty()) {
    Fail(key, "expected a non-empty string");
    return {};
  }
  return *node->value<std::string>();
}

std::vector<std::string> ConfigReader::TableKeys(std::string_view key) {
  const auto* node = static_cast<const toml::node*>(Find(key));
  std::vector<std::string> out;
  if (node == nullptr) return out;
  const auto* tbl = node->as_table();
  if (tbl == nullptr) {
    Fail(key, "expected a table");
    return out;
  }
  for (const auto& [k, v] : *tbl) {
    out.emplace_back(k.str());
    known_.insert(Cat(key, ".", k.str()));
  }
  return out;
}

std::vector<int64_t> ConfigReader::IntList(std::string_view key, int64_t min, int64_t max) {
  const auto* node = static_cast<const toml::node*>(Find(key));
  std::vector<int64_t> out;
  if (node == nullptr) return out;
  const auto* arr = node->as_array();
  if (arr == nullptr) {
    Fail(key, "expected an array of integers");
    return out;
  }
  for (const auto& v : *arr) {
    if (!v.is_integer() || *v.value<int64_t>() < min || *v.value<int64_t>() > max) {
      Fail(key, Cat("every element must be an integer from ", min, " to ", max));
      return {};
    }
    out.push_back(*v.value<int64_t>());
  }
  return out;
}

std::vector<std::string> ConfigReader::StringList(std::string_view key) {
  const auto* node = static_cast<const toml::node*>(Find(key));
  std::vector<std::string> out;
  if (node == nullptr) return out;
  const auto* arr = node->as_array();
  if (arr == nullptr) {
    Fail(key, "expected an array of strings, e.g. [\"a\", \"b\"]");
    return out;
  }
  for (const auto& v : *arr) {
    if (!v.is_string()) {
      Fail(key, "every element must be a string");
      return {};
    }
    out.push_back(*v.value<std::string>());
  }
  return out;
}

int64_t ConfigReader::Int(std::string_view key, int64_t def, int64_t min, int64_t max) {
  const auto* node = static_cast<const toml::node*>(Find(key));
  if (node == nullptr) return def;
  if (!node->is_integer()) {
    Fail(key, "expected an integer");
    return def;
  }
  int64_t v = *node->value<int64_t>();
  if (v < min || v > max) {
    Fail(key, Cat("must be between ", min, " and ", max, ", got ", v));
    return def;
  }
  return v;
}

bool ConfigReader::Bool(std::string_view key, bool def) {
  const auto* node = static_cast<const toml::node*>(Find(key));
  if (node == nullptr) return def;
  if (!node->is_boolean()) {
    Fail(key, "expected true or false");
    return def;
  }
  return *node->value<bool>();
}

std::optional<int64_t> ConfigReader::ParseDurationMs(std::string_view text) {
  return ParseNumberWithUnit(text, {{"ms", 1},
                                    {"s", 1000},
                                    {"m", 60'000},
                                    {"min", 60'000},
                                    {"h", 3'600'000},
                                    {"d", 86'400'000}});
}

std::optional<int64_t> ConfigReader::ParseBytes(std::string_view text) {
  return ParseNumberWithUnit(text, {{"", 1},
                                    {"B", 1},
                                    {"KiB", 1024},
                                    {"MiB", 1024 * 1024},
                                    {"GiB", int64_t{1024} * 1024 * 1024}});
}

int64_t ConfigReader::DurationMs(std::string_view key, int64_t def_ms, int64_t min_ms) {
  const auto* node = static_cast<const toml::node*>(Find(key));
  if (node == nullptr) return def_ms;
  std::optional<int64_t> v;
  if (node->is_integer()) {
    int64_t secs = *node->value<int64_t>();
    if (secs >= 0 && secs <= INT64_MAX / 1000) v = secs * 1000;
  } else if (node->is_string()) {
    v = ParseDurationMs(*node->value<std::string>());
  }
  if (!v) {
    Fail(key, "expected a duration such as 30s, 10m, 2h or 7d");
    return def_ms;
  }
  if (*v < min_ms) {
    Fail(key, Cat("must be at least ", min_ms, " ms"));
    return def_ms;
  }
  return *v;
}

int64_t ConfigReader::Bytes(std::string_view key, int64_t def, int64_t min) {
  const auto* node = static_cast<const toml::node*>(Find(key));
  if (node == nullptr) return def;
  std::optional<int64_t> v;
  if (node->is_integer()) {
    v = *node->value<int64_t>();
  } else if (node->is_string()) {
    v = ParseBytes(*node->value<std::string>());
  }
  if (!v) {
    Fail(key, "expected a size such as 64KiB, 256MiB or 1GiB");
    return def;
  }
  if (*v < min) {
    Fail(key, Cat("must be at least ", min, " bytes"));
    return def;
  }
  return *v;
}

absl::Status ConfigReader::Finish() {
  // Unknown keys: walk every leaf and parent table.
  std::vector<std::string> unknown;
  auto walk = [&](auto&& self, const toml::table& tbl, const std::string& prefix) -> void {
    for (const auto& [k, v] : tbl) {
      std::string full = prefix.empty() ? std::string(k.str()) : Cat(prefix, ".", k.str());
      if (!known_.contains(full)) {
        unknown.push_back(Cat(Where(origin_, &v), ": unknown key '", full, "'"));
        continue;
      }
      if (tables_.contains(full) && !v.is_table()) {
        errors_.push_back(
            Cat(Where(origin_, &v), ": key '", full, "' must be a table ([", full, "])"));
        continue;
      }
      if (const auto* sub = v.as_table()) self(self, *sub, full);
    }
  };
  walk(walk, *table_, "");
  if (!errors_.empty()) return absl::InvalidArgumentError(errors_.front());
  if (!unknown.empty()) return absl::InvalidArgumentError(unknown.front());
  return absl::OkStatus();
}

}  // namespace setdiag
