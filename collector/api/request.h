#pragma once
// What every admin API handler works with: the request as parsed, the
// person making it (authenticated before any handler runs), that request's
// own read connection, and the hooks the composition root wired in. Plus
// the answers and parameter checks every resource shares, so that each
// says a malformed parameter (400), an unknown or invisible object (404)
// and a failed read (503) the same way.

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "collector/bundles/bundle_store.h"
#include "collector/store/storage.h"
#include "collector/tickets/tickets.h"
#include "common/clock.h"
#include "common/http_server.h"
#include "common/sqlite.h"
#include "common/url.h"

namespace setdiag::collector::api {

// Runs one person's action on a ticket and returns the ticket afterwards.
// Status codes as TicketEngine::Act: NotFound (not visible to the user),
// FailedPrecondition (the state does not allow it), InvalidArgument;
// Unavailable when the writer could not commit.
using ActFn = std::function<absl::StatusOr<Ticket>(const User&, const ActionRequest&)>;

// Diagnostic bundles. `request` commits a new request (on the writer
// thread) and hands it to the store's agent if connected; it blocks until
// committed. `live_bytes`: bytes held of a transfer in progress.
// `file_path`: where a complete bundle's file is. Without `request` the
// bundle endpoints answer 503 for POST.
struct BundleHooks {
  std::function<absl::StatusOr<BundleRow>(const User&, const NewBundleRequest&)> request;
  std::function<std::optional<uint64_t>(const std::string&)> live_bytes;
  std::function<std::string(const std::string&)> file_path;
};

// What the handlers may call beyond the database; set once at start.
struct Hooks {
  Clock* clock = nullptr;
  ActFn act;  // empty: read-only API, every ticket change answers 503
  BundleHooks bundles;
  std::string default_tariff;  // shown for partners without a tariff of their own
};

struct Request {
  const HttpRequest& http;
  const RequestTarget& target;         // path and decoded query
  std::vector<std::string_view> path;  // the segments after /api/v1/, into target.path
  sql::Db& db;                         // this request's own read connection
  const User& who;
  const Hooks& hooks;

  // The i-th path segment, URL-decoded ("tickets/{id}": Param(1)).
  std::string Param(size_t i) const { return UrlDecode(path.at(i)); }
  // A query parameter, "" when absent.
  std::string Query(const std::string& key) const;
  // Bytes held of a bundle in transfer (BundleHooks::live_bytes).
  std::optional<uint64_t> LiveBytes(const BundleRow& b) const;
};

HttpResponse Answer(int status, const nlohmann::json& body);
HttpResponse Error(int status, std::string_view message);
// A failed read: logged, and 503 without the details.
HttpResponse StorageError(const absl::Status& st);
HttpResponse MethodNotAllowed(std::string_view method, std::string_view path,
                              std::string_view allowed);
HttpResponse NoTicket(int64_t id);
HttpResponse NoStore(std::string_view id);
HttpResponse BadTicketId(std::string_view s);

// An integer query parameter within [min, max], `def` when absent; false
// with `err` set otherwise.
bool ParseInt(const std::map<std::string, std::string>& q, const char* key, int64_t def,
              int64_t min, int64_t max, int64_t* out, std::string* err);
// A ticket id in a path: a positive decimal integer that fits int64.
std::optional<int64_t> ParseTicketId(std::string_view s);
// Store, partner, bundle ids and conditions follow IsValidIdentifier.
bool CheckIdentifier(std::string_view what, std::string_view value, std::string* err);
// `store=` of a list: malformed is 400; one the user may not see (for a
// partner also one that does not exist) is 404; nullopt when fine or empty.
std::optional<HttpResponse> CheckStoreParam(const Request& r, const std::string& store);
// A stored JSON payload, or the text as a JSON string if it does not parse.
nlohmann::json PayloadJson(const std::string& payload);

}  // namespace setdiag::collector::api
