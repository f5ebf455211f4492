#include "collector/api/admin_api.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "collector/api/handlers.h"
#include "common/status.h"
#include "common/strings.h"

namespace setdiag::collector {
namespace {

using api::Error;

// The routes under /api/v1/: a method, the path's segments ("{id}" matches
// any one segment) and the handler. A path that matches a route only with
// another method answers 405 naming the methods it takes; one that matches
// none answers 404.
struct Route {
  std::string_view method;
  std::string_view pattern;
  HttpResponse (*handle)(const api::Request&);
};

constexpr Route kRoutes[] = {
    {"GET", "events", api::ListEventsHandler},
    {"GET", "agents", api::ListAgentsHandler},
    {"GET", "tickets", api::ListTicketsHandler},
    {"GET", "tickets/{id}", api::GetTicketHandler},
    {"POST", "tickets/{id}/ack", api::TicketActionHandler},
    {"POST", "tickets/{id}/notes", api::TicketActionHandler},
    {"POST", "tickets/{id}/error", api::TicketActionHandler},
    {"POST", "tickets/{id}/workaround", api::TicketActionHandler},
    {"POST", "tickets/{id}/resolve", api::TicketActionHandler},
    {"POST", "stores/{id}/bundles", api::RequestBundleHandler},
    {"GET", "bundles", api::ListBundlesHandler},
    {"GET", "bundles/{id}", api::GetBundleHandler},
    {"GET", "bundles/{id}/content", api::BundleContentHandler},
    {"GET", "stores", api::ListStoresHandler},
    {"GET", "stores/{id}", api::GetStoreHandler},
};

bool Matches(std::string_view pattern, const std::vector<std::string_view>& path) {
  std::vector<std::string_view> want = Split(pattern, '/', false);
  if (want.size() != path.size()) return false;
  for (size_t i = 0; i < want.size(); ++i) {
    if (want[i] != "{id}" && want[i] != path[i]) return false;
  }
  return true;
}

}  // namespace

AdminApi::AdminApi(sql::Db read_db, Clock& clock, ActFn act) {
  hooks_.clock = &clock;
  hooks_.act = std::move(act);
  idle_.push_back(std::make_unique<sql::Db>(std::move(read_db)));
}

void AdminApi::set_reader_pool(OpenReader open, size_t max_readers) {
  MutexLock lock(&readers_mu_);
  open_reader_ = std::move(open);
  max_readers_ = std::max<size_t>(1, max_readers);
}

absl::StatusOr<AdminApi::Reader> AdminApi::Acquire() {
  OpenReader open;
  {
    MutexLock lock(&readers_mu_);
    for (;;) {
      if (!idle_.empty()) {
        sql::Db* db = idle_.back().release();
        idle_.pop_back();
        return Reader(db, ReturnReader{this});
      }
      if (open_reader_ && readers_open_ < max_readers_) break;
      readers_free_.Wait(&readers_mu_);
    }
    ++readers_open_;
    open = open_reader_;
  }
  // Opened without the lock: other requests take and return readers meanwhile.
  auto db = open();
  if (!db.ok()) {
    MutexLock lock(&readers_mu_);
    --readers_open_;
    readers_free_.Signal();
    return db.status();
  }
  return Reader(new sql::Db(std::move(*db)), ReturnReader{this});
}

void AdminApi::Release(sql::Db* db) {
  MutexLock lock(&readers_mu_);
  idle_.emplace_back(db);
  readers_free_.Signal();
}

std::optional<HttpResponse> AdminApi::HandleInline(const HttpRequest& request) {
  if (ParseRequestTarget(request.target).path == "/healthz")
    return HttpResponse{200, R"({"status":"ok"})"};
  return std::nullopt;
}

HttpResponse AdminApi::Handle(const HttpRequest& request) {
  if (auto quick = HandleInline(request)) return *quick;
  RequestTarget target = ParseRequestTarget(request.target);
  constexpr std::string_view kPrefix = "/api/v1/";
  if (!target.path.starts_with(kPrefix)) return Error(404, "no such endpoint");

  auto reader = Acquire();
  if (!reader.ok()) return api::StorageError(reader.status());
  sql::Db& db = **reader;  // this request's own read connection
  constexpr std::string_view kBearer = "Bearer ";
  if (!std::string_view(request.authorization).starts_with(kBearer)) {
    return Error(401,
                 "missing 'Authorization: Bearer <token>' (create one with 'setdiag-collector user "
                 "create')");
  }
  auto user = LookupUser(db, std::string_view(request.authorization).substr(kBearer.size()));
  if (!user.ok()) return api::StorageError(user.status());
  if (!*user) return Error(401, "unknown or revoked token");
  return Dispatch(db, **user, request, target);
}

HttpResponse AdminApi::HandleAs(const User& who, const HttpRequest& request) {
  RequestTarget target = ParseRequestTarget(request.target);
  if (!target.path.starts_with("/api/v1/")) return Error(404, "no such endpoint");
  auto reader = Acquire();
  if (!reader.ok()) return api::StorageError(reader.status());
  return Dispatch(**reader, who, request, target);
}

absl::StatusOr<std::optional<User>> AdminApi::Authenticate(std::string_view token) {
  ASSIGN_OR_RETURN(Reader reader, Acquire());
  return LookupUser(*reader, token);
}

absl::StatusOr<std::optional<User>> AdminApi::UserById(const std::string& user_id) {
  ASSIGN_OR_RETURN(Reader reader, Acquire());
  return LookupUserById(*reader, user_id);
}

HttpResponse AdminApi::Dispatch(sql::Db& db, const User& who, const HttpRequest& request,
                                const RequestTarget& target) {
  constexpr std::string_view kPrefix = "/api/v1/";
  const std::string& method = request.method;
  const std::string& path = target.path;
  // The segments point into `path`: it is not moved from below.
  std::vector<std::string_view> segments =
      Split(std::string_view(path).substr(kPrefix.size()), '/', false);
  for (std::string_view s : segments) {
    if (s.empty()) return Error(404, Cat("no endpoint ", method, " ", path));
  }
  std::string allowed;
  for (const Route& route : kRoutes) {
    if (!Matches(route.pattern, segments)) continue;
    if (route.method != method) {
      if (allowed.find(route.method) == std::string::npos)
        Append(&allowed, allowed.empty() ? "" : ", ", route.method);
      continue;
    }
    const api::Request r{request, target, segments, db, who, hooks_};
    return route.handle(r);
  }
  if (!allowed.empty()) return api::MethodNotAllowed(method, path, allowed);
  return Error(404, Cat("no endpoint ", method, " ", path));
}

}  // namespace setdiag::collector
