#pragma once
// The collector's HTTP JSON API under /api/v1/ (docs/api.md): the reader
// pool, authentication and the route table; each resource's handlers are in
// a file of their own (collector/api/handlers.h). Every request
// carries a person's bearer token; support sees every store, a partner only
// its own, and a ticket or store the person may not see answers exactly like
// one that does not exist (404).
//
// Reads go through read-only SQLite connections the API owns. Changes to
// tickets (acknowledge, note, error, workaround, resolve) are handed to `act`,
// which the composition root wires to TicketEngine::Act on the writer thread
// (through the CommitQueue) and which blocks until the change is committed or
// refused. Handle() is thread-safe: the HTTP server calls it from several
// worker threads, each request on a read connection of its own from a small
// pool (set_reader_pool), so a slow list or a wait for the writer does not
// hold up the other requests. /healthz (HandleInline) needs no database.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "collector/api/handlers.h"
#include "common/clock.h"
#include "common/http_server.h"
#include "common/mutex.h"
#include "common/sqlite.h"

namespace setdiag::collector {

class AdminApi {
 public:
  using ActFn = api::ActFn;
  using BundleHooks = api::BundleHooks;

  // `read_db`: a read-only connection the API owns. `act` may be empty: the
  // API is then read-only and every POST answers 503.
  AdminApi(sql::Db read_db, Clock& clock, ActFn act = nullptr);
  // Diagnostic bundles (api::BundleHooks).
  void set_bundles(BundleHooks hooks) { hooks_.bundles = std::move(hooks); }
  // The tariff shown for partners without one of their own.
  void set_default_tariff(std::string tariff) { hooks_.default_tariff = std::move(tariff); }

  // More read-only connections, opened as concurrent requests need them, up
  // to `max_readers` in all (the one given to the constructor included).
  using OpenReader = std::function<absl::StatusOr<sql::Db>()>;
  void set_reader_pool(OpenReader open, size_t max_readers);

  HttpResponse Handle(const HttpRequest& request);
  // The same routes for a person already authenticated another way (the
  // console's session): `request.authorization` is not looked at. Every
  // check of what `who` may see is the same as for Handle().
  HttpResponse HandleAs(const User& who, const HttpRequest& request);
  // The active user with this API token; nullopt if unknown or revoked.
  absl::StatusOr<std::optional<User>> Authenticate(std::string_view token);
  // The active user with this id (revoked: nullopt), for a session.
  absl::StatusOr<std::optional<User>> UserById(const std::string& user_id);
  // What can be answered without the database, at once (/healthz); nullopt
  // otherwise. For HttpServer::Options::inline_handler.
  static std::optional<HttpResponse> HandleInline(const HttpRequest& request);

  // The longest note, error description or resolution accepted, in Unicode
  // code points.
  static constexpr size_t kMaxTextChars = api::kMaxTextChars;

 private:
  struct ReturnReader {
    AdminApi* api;
    void operator()(sql::Db* db) const { api->Release(db); }
  };

 public:
  using Reader = std::unique_ptr<sql::Db, ReturnReader>;
  // A read connection of the pool, back to it when the Reader goes; waits
  // while all are in use.
  absl::StatusOr<Reader> Acquire();

 private:
  void Release(sql::Db* db);
  HttpResponse Dispatch(sql::Db& db, const User& who, const HttpRequest& request,
                        const RequestTarget& target);

  Mutex readers_mu_;
  CondVar readers_free_;  // a reader went back to idle_, or one may be opened
  std::vector<std::unique_ptr<sql::Db>> idle_ ABSL_GUARDED_BY(readers_mu_);
  size_t readers_open_ ABSL_GUARDED_BY(readers_mu_) = 1;
  size_t max_readers_ ABSL_GUARDED_BY(readers_mu_) = 1;
  OpenReader open_reader_ ABSL_GUARDED_BY(readers_mu_);
  api::Hooks hooks_;
};

}  // namespace setdiag::collector
