#pragma once
// The collector's HTTP JSON API under /api/v1/ (docs/api.md). Every request
// carries a person's bearer token; support sees every store, a partner only
// its own. Owns a read-only SQLite connection; called on the HTTP thread.

#include <mutex>
#include <string>

#include "common/http_server.h"
#include "common/clock.h"
#include "common/sqlite.h"

namespace setdiag::collector {

class AdminApi {
 public:
  AdminApi(sql::Db db, Clock& clock);
  HttpResponse Handle(const HttpRequest& request);

 private:
  std::mutex mu_;
  sql::Db db_;
  Clock& clock_;
};

}  // namespace setdiag::collector
