#include "collector/api/request.h"

#include <charconv>

#include "common/log.h"
#include "common/strings.h"

namespace setdiag::collector::api {

using json = nlohmann::json;

std::string Request::Query(const std::string& key) const {
  auto it = target.query.find(key);
  return it == target.query.end() ? std::string() : it->second;
}

std::optional<uint64_t> Request::LiveBytes(const BundleRow& b) const {
  if (b.state != "transferring" || !hooks.bundles.live_bytes) return std::nullopt;
  return hooks.bundles.live_bytes(b.id);
}

// Stored text comes from agents and people, and messages may quote what the
// client sent: a stray invalid UTF-8 byte is replaced, never a reason for a
// 500.
HttpResponse Answer(int status, const json& body) {
  return {status, body.dump(-1, ' ', false, json::error_handler_t::replace)};
}

HttpResponse Error(int status, std::string_view message) {
  return Answer(status, json{{"error", message}});
}

HttpResponse StorageError(const absl::Status& st) {
  log::Warn("admin-api", Cat("database read failed: ", st.ToString()));
  return Error(503, "storage unavailable");
}

HttpResponse MethodNotAllowed(std::string_view method, std::string_view path,
                              std::string_view allowed) {
  return Error(405, Cat("method ", method, " is not allowed on ", path, " (use ", allowed, ")"));
}

HttpResponse NoTicket(int64_t id) { return Error(404, Cat("no ticket ", id, " visible to you")); }

HttpResponse NoStore(std::string_view id) {
  return Error(404, Cat("no store ", id, " visible to you"));
}

HttpResponse BadTicketId(std::string_view s) {
  return Error(400, Cat("ticket id '", s, "' must be a positive integer"));
}

bool ParseInt(const std::map<std::string, std::string>& q, const char* key, int64_t def,
              int64_t min, int64_t max, int64_t* out, std::string* err) {
  auto it = q.find(key);
  if (it == q.end() || it->second.empty()) {
    *out = def;
    return true;
  }
  int64_t v = 0;
  auto [p, ec] = std::from_chars(it->second.data(), it->second.data() + it->second.size(), v);
  if (ec != std::errc() || p != it->second.data() + it->second.size() || v < min || v > max) {
    *err = Cat("query parameter '", key, "' must be an integer from ", min, " to ", max);
    return false;
  }
  *out = v;
  return true;
}

std::optional<int64_t> ParseTicketId(std::string_view s) {
  if (s.empty() || s.front() < '0' || s.front() > '9') return std::nullopt;
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v <= 0) return std::nullopt;
  return v;
}

bool CheckIdentifier(std::string_view what, std::string_view value, std::string* err) {
  if (IsValidIdentifier(value)) return true;
  *err = Cat(what, " '", value, "' is not valid: use 1 to 128 characters of A-Z a-z 0-9 . _ -");
  return false;
}

std::optional<HttpResponse> CheckStoreParam(const Request& r, const std::string& store) {
  if (store.empty()) return std::nullopt;
  std::string err;
  if (!CheckIdentifier("store", store, &err)) return Error(400, err);
  auto may = UserMaySeeStore(r.db, r.who, store);
  if (!may.ok()) return StorageError(may.status());
  if (!*may) return NoStore(store);
  return std::nullopt;
}

json PayloadJson(const std::string& payload) {
  auto j = json::parse(payload, nullptr, false);
  return j.is_discarded() ? json(payload) : j;
}

}  // namespace setdiag::collector::api
