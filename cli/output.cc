#include "cli/output.h"

#include <cstdio>
#include <ctime>
#include <iostream>

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

std::string FormatUtc(int64_t ms) {
  if (ms <= 0) return "-";
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%SZ", &tm);
  return buf;
}

std::string HumanSize(uint64_t bytes) {
  char buf[32];
  if (bytes >= 1024 * 1024) {
    std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  } else if (bytes >= 1024) {
    std::snprintf(buf, sizeof buf, "%.1f KiB", static_cast<double>(bytes) / 1024.0);
  } else {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
  }
  return buf;
}

}  // namespace setdiag::cli
