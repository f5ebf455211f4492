#pragma once
// The collector's HTTP JSON API under /api/v1/ (docs/api.md). Every request
// carries a person's bearer token; support sees every store, a partner only
// its own, and a ticket or store the person may not see answers exactly like
// one that does not exist (404).
//
// Reads go through the read-only SQLite connection the API owns. Changes to
// tickets (acknowledge, note, error, workaround, resolve) are handed to `act`,
// which the composition root wires to TicketEngine::Act on the writer thread
// (through the CommitQueue) and which blocks until the change is committed or
// refused. Handle() is called on the HTTP thread; it serialises itself.

#include <functional>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "collector/bundle_store.h"
#include "collector/storage.h"
#include "collector/tickets.h"
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

  HttpResponse Handle(const HttpRequest& request);

  // The longest note, error description or resolution accepted, in Unicode
  // code points.
  static constexpr size_t kMaxTextChars = 10'000;

 private:
  std::mutex mu_;  // guards db_
  sql::Db db_;
  Clock& clock_;
  ActFn act_;
  BundleHooks bundles_;
  std::string default_tariff_;
};

}  // namespace setdiag::collector
