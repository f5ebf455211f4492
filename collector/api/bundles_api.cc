// Diagnostic bundles: POST /api/v1/stores/{id}/bundles, GET /api/v1/bundles,
// GET /api/v1/bundles/{id} and its /content (docs/api.md, docs/bundles.md).

#include "collector/api/handlers.h"
#include "common/config.h"
#include "common/log.h"
#include "common/strings.h"
#include "common/utf8.h"

namespace setdiag::collector::api {
namespace {

using json = nlohmann::json;

// The body of a bundle request: {} or {"ticket_id": 42, "window": "24h",
// "exclude_logs": false, "reason": "..."}; empty counts as {}.
bool ParseBundleBody(const std::string& body, NewBundleRequest* req, std::string* err) {
  if (Trim(body).empty()) return true;
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    *err = R"(request body must be a JSON object like {"ticket_id": 42, "window": "24h"})";
    return false;
  }
  for (const auto& [key, value] : j.items()) {
    if (key == "ticket_id") {
      if (value.is_null()) continue;
      if (!value.is_number_integer() || value.get<int64_t>() <= 0) {
        *err = "field 'ticket_id' must be a positive integer";
        return false;
      }
      req->ticket_id = value.get<int64_t>();
    } else if (key == "window") {
      if (value.is_null()) continue;
      auto ms = value.is_string() ? ConfigReader::ParseDurationMs(value.get<std::string>())
                                  : std::nullopt;
      if (!ms || *ms < 60'000 || *ms > 31LL * 24 * 3'600'000) {
        *err = "field 'window' must be a duration from 1m to 31d, like \"24h\"";
        return false;
      }
      req->window_ms = *ms;
    } else if (key == "exclude_logs") {
      if (!value.is_boolean()) {
        *err = "field 'exclude_logs' must be true or false";
        return false;
      }
      req->exclude_logs = value.get<bool>();
    } else if (key == "reason") {
      if (!value.is_string() || Utf8Length(value.get_ref<const std::string&>()) > 500) {
        *err = "field 'reason' must be a string of at most 500 characters";
        return false;
      }
      req->reason = std::string(Trim(value.get_ref<const std::string&>()));
    } else {
      *err = Cat("unknown field '", key,
                 "' in the request body (ticket_id, window, exclude_logs, reason)");
      return false;
    }
  }
  return true;
}

// The bundle {id} of the path into `*out` when it is valid and the person
// may see it; otherwise the answer (400, 404 as for one that does not
// exist, 503).
std::optional<HttpResponse> LoadVisibleBundle(const Request& r, BundleRow* out) {
  const std::string id = r.Param(1);
  std::string err;
  if (!CheckIdentifier("bundle id", id, &err)) return Error(400, err);
  auto row = GetBundle(r.db, id);
  if (!row.ok()) return StorageError(row.status());
  if (!*row || (r.who.role != Role::kSupport && (*row)->partner != r.who.partner))
    return Error(404, Cat("no bundle ", id, " visible to you"));
  *out = std::move(**row);
  return std::nullopt;
}

}  // namespace

HttpResponse RequestBundleHandler(const Request& r) {
  const std::string store = r.Param(1);
  std::string err;
  if (!CheckIdentifier("store id", store, &err)) return Error(400, err);
  auto may =
      r.who.role == Role::kSupport ? StoreExists(r.db, store) : UserMaySeeStore(r.db, r.who, store);
  if (!may.ok()) return StorageError(may.status());
  if (!*may) return NoStore(store);
  NewBundleRequest req;
  req.store_id = store;
  if (!ParseBundleBody(r.http.body, &req, &err)) return Error(400, err);
  if (req.ticket_id > 0) {
    auto ticket = GetTicket(r.db, r.who, req.ticket_id);
    if (!ticket.ok()) return StorageError(ticket.status());
    if (!*ticket) return NoTicket(req.ticket_id);
    if ((*ticket)->store_id != store) {
      return Error(400, Cat("ticket ", req.ticket_id, " is about store ", (*ticket)->store_id,
                            ", not ", store));
    }
  }
  if (!r.hooks.bundles.request) return Error(503, "this collector does not take bundle requests");
  auto row = r.hooks.bundles.request(r.who, req);
  if (!row.ok()) {
    log::Warn("admin-api", Cat(r.http.method, " ", r.target.path, " by ", r.who.name, ": ",
                               row.status().ToString()));
    return Error(503, Cat("the request was not recorded (", std::string(row.status().message()),
                          "); try again"));
  }
  log::Info("admin-api",
            Cat("bundle ", row->id, " of store ", store, " requested by ", r.who.name));
  return Answer(200, json{{"bundle", BundleJson(*row)}});
}

HttpResponse ListBundlesHandler(const Request& r) {
  BundleQuery q;
  std::string err;
  q.store_id = r.Query("store");
  if (!ParseInt(r.target.query, "ticket", 0, 0, INT64_MAX, &q.ticket_id, &err) ||
      !ParseInt(r.target.query, "limit", 100, 1, 1'000, &q.limit, &err)) {
    return Error(400, err);
  }
  if (auto bad = CheckStoreParam(r, q.store_id)) return *bad;
  if (q.ticket_id > 0) {
    auto ticket = GetTicket(r.db, r.who, q.ticket_id);
    if (!ticket.ok()) return StorageError(ticket.status());
    if (!*ticket) return NoTicket(q.ticket_id);
  }
  auto rows = ListBundles(r.db, r.who, q);
  if (!rows.ok()) return StorageError(rows.status());
  json list = json::array();
  for (const auto& b : *rows) list.push_back(BundleJson(b, r.LiveBytes(b)));
  return Answer(200, json{{"bundles", list}});
}

HttpResponse GetBundleHandler(const Request& r) {
  BundleRow b;
  if (auto answer = LoadVisibleBundle(r, &b)) return *answer;
  return Answer(200, json{{"bundle", BundleJson(b, r.LiveBytes(b), /*with_manifest=*/true)}});
}

HttpResponse BundleContentHandler(const Request& r) {
  BundleRow b;
  if (auto answer = LoadVisibleBundle(r, &b)) return *answer;
  const std::string& id = b.id;
  if (b.state != "complete" || !r.hooks.bundles.file_path) {
    return Error(409, Cat("bundle ", id, " is ", b.state,
                          b.state == "expired" ? " (deleted by retention)" : ", not complete"));
  }
  HttpResponse file;
  file.file_path = r.hooks.bundles.file_path(id);
  file.content_type = "application/gzip";
  file.download_name = Cat("bundle-", b.store_id, "-", id, ".tar.gz");
  return file;
}

}  // namespace setdiag::collector::api
