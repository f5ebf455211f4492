#pragma once
// The collector's HTTP JSON API under /api/v1/ (docs/api.md). Every request
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

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "collector/bundles/bundle_store.h"
#include "collector/store/storage.h"
#include "collector/tickets/tickets.h"
#include "common/clock.h"
#include "common/http_server.h"
#include "common/sqlite.h"

namespace setdiag::collector {

class AdminApi {
 public:
  // Runs one person's action on a ticket and returns the ticket afterwards.
  // Status codes as TicketEngine::Act: NotFound (not visible to the user),
  // FailedPrecondition (the state does not allow it), InvalidArgument;
  // Unavailable when the writer could not commit.
  using ActFn = std::function<absl::StatusOr<Ticket>(const User&, const ActionRequest&)>;

  // `read_db`: a read-only connection the API owns. `act` may be empty: the
  // API is then read-only and every POST answers 503.
  AdminApi(sql::Db read_db, Clock& clock, ActFn act = nullptr);
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
  void set_bundles(BundleHooks hooks) { bundles_ = std::move(hooks); }
  // The tariff shown for partners without one of their own.
  void set_default_tariff(std::string tariff) { default_tariff_ = std::move(tariff); }

  // More read-only connections, opened as concurrent requests need them, up
  // to `max_readers` in all (the one given to the constructor included).
  using OpenReader = std::function<absl::StatusOr<sql::Db>()>;
  void set_reader_pool(OpenReader open, size_t max_readers);

  HttpResponse Handle(const HttpRequest& request);
  // What can be answered without the database, at once (/healthz); nullopt
  // otherwise. For HttpServer::Options::inline_handler.
  static std::optional<HttpResponse> HandleInline(const HttpRequest& request);

  // The longest note, error description or resolution accepted, in Unicode
  // code points.
  static constexpr size_t kMaxTextChars = 10'000;

 private:
  struct ReturnReader {
    AdminApi* api;
    void operator()(sql::Db* db) const { api->Release(db); }
  };
  using Reader = std::unique_ptr<sql::Db, ReturnReader>;
  // A read connection for one request; waits while all are in use.
  absl::StatusOr<Reader> Acquire();
  void Release(sql::Db* db);

  std::mutex readers_mu_;
  std::condition_variable readers_free_;
  std::vector<std::unique_ptr<sql::Db>> idle_;  // guarded by readers_mu_
  size_t readers_open_ = 1;                     // guarded by readers_mu_
  size_t max_readers_ = 1;                      // guarded by readers_mu_
  OpenReader open_reader_;                      // guarded by readers_mu_
  Clock& clock_;
  ActFn act_;
  BundleHooks bundles_;
  std::string default_tariff_;
};

}  // namespace setdiag::collector
