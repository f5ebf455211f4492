#include "cli/output.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <iostream>

#include "common/strings.h"
#include "common/utf8.h"

namespace setdiag::cli {

using json = nlohmann::json;

std::string Dump(const json& j, int indent) {
  return j.dump(indent, ' ', false, json::error_handler_t::replace);
}

std::string Str(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

int64_t Int(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<int64_t>() : 0;
}

bool Bool(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_boolean() && it->get<bool>();
}

std::optional<json> Parse(const absl::StatusOr<ApiResponse>& res, int* exit_code) {
  if (!res.ok()) {
    std::cerr << "setdiag: " << res.status().message() << "\n";
    *exit_code = kExitError;
    return std::nullopt;
  }
  if (res->status != 200) {
    auto body = json::parse(res->body, nullptr, false);
    std::string msg = Str(body, "error");
    std::cerr << "setdiag: the collector answered " << res->status << ": "
              << (msg.empty() ? res->body : msg) << "\n";
    switch (res->status) {
      case 400:
        *exit_code = kExitUsage;
        break;
      case 401:
      case 403:
        *exit_code = kExitAuth;
        break;
      case 404:
        *exit_code = kExitNotFound;
        break;
      default:
        *exit_code = kExitError;
    }
    return std::nullopt;
  }
  auto body = json::parse(res->body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    std::cerr << "setdiag: the collector sent something that is not a JSON object\n";
    *exit_code = kExitError;
    return std::nullopt;
  }
  return body;
}

std::string FormatDuration(int64_t ms) {
  int64_t minutes = (ms < 0 ? -ms : ms) / 60'000;
  if (minutes < 1) return "<1 min";
  int64_t d = minutes / 1440, h = minutes % 1440 / 60, m = minutes % 60;
  if (d > 0) return h > 0 ? Cat(d, " d ", h, " h") : Cat(d, " d");
  if (h > 0) return m > 0 ? Cat(h, " h ", m, " min") : Cat(h, " h");
  return Cat(m, " min");
}

std::string Shorten(std::string s, size_t n) {
  if (Utf8Length(s) <= n) return s;
  return Cat(Utf8PrefixChars(s, n > 3 ? n - 3 : 0), "...");
}

std::string OneLine(std::string s) {
  for (char& c : s) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  return s;
}

std::string Or(std::string s, const char* fallback) { return s.empty() ? fallback : s; }

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void Table::Print(std::FILE* out) const {
  std::vector<size_t> width;
  for (const auto& r : rows_) {
    for (size_t i = 0; i < r.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      if (i + 1 < r.size()) width[i] = std::max(width[i], Utf8Length(r[i]));
    }
  }
  bool skip_header =
      std::all_of(rows_[0].begin(), rows_[0].end(), [](const auto& c) { return c.empty(); });
  for (size_t n = skip_header ? 1 : 0; n < rows_.size(); ++n) {
    const auto& r = rows_[n];
    std::string line;
    size_t indent = 0;
    for (size_t i = 0; i < r.size(); ++i) {
      if (i + 1 < r.size()) {
        line += r[i];
        line.append(width[i] - Utf8Length(r[i]) + 2, ' ');
        indent += width[i] + 2;
        continue;
      }
      std::vector<std::string_view> lines = Split(r[i], '\n', false);
      for (size_t k = 0; k < lines.size(); ++k) {
        if (k > 0) line += "\n" + std::string(indent, ' ');
        line += lines[k];
      }
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::fprintf(out, "%s\n", line.c_str());
  }
}

std::optional<json> Fetch(ApiClient& client, const std::string& path, int* exit_code) {
  return Parse(client.Get(path), exit_code);
}

std::optional<json> PostJson(ApiClient& client, const std::string& path, const json& body,
                             int* exit_code) {
  return Parse(client.Post(path, Dump(body)), exit_code);
}

std::optional<Pages> FetchPages(ApiClient& client, const std::string& key, int64_t limit, bool all,
                                json cursor, const std::function<std::string(const json&)>& path,
                                int* exit_code) {
  Pages p;
  while (true) {
    auto body = Fetch(client, path(cursor), exit_code);
    if (!body) return std::nullopt;
    const json page = (*body)[key];
    for (const auto& item : page) p.items.push_back(item);
    // A collector before 0.1.1 sent every store at once, without next_after.
    p.more = static_cast<int64_t>(page.size()) == limit && body->contains("next_after");
    if (p.more) cursor = (*body)["next_after"];
    p.next = cursor;
    if (!all || !p.more) return p;
  }
}

}  // namespace setdiag::cli
