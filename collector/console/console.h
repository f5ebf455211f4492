#pragma once
// The support console: HTML pages under /console/ on the admin API's HTTP
// server (same process, same listener, same worker threads). Every page is
// made from the admin API's own JSON, fetched in-process as the signed-in
// person (AdminApi::HandleAs), so a partner sees in the console exactly what
// the API would show it: its stores, tickets and bundles, nothing else,
// also in the live stream. docs/console.md has the pages and the security
// model; the templates and static files are in collector/console/.
//
//   /console/signin, /console/signout     a session cookie from an API token
//   /console/queue[?filters]              open tickets by next SLA deadline
//   /console/queue/rows[?filters]         the queue's rows (live refresh)
//   /console/tickets/{id}                 a ticket, its evidence, actions, bundles
//   /console/tickets/{id}/{action}        POST ack, notes, error, workaround, resolve, bundle
//   /console/tickets/bulk                 POST one action on several tickets
//   /console/bundles/{id}[/download|/status]
//   /console/stores[/{id}]
//   /console/events                       Server-Sent Events: tickets that changed
//   /console/static/<name>.<hash>.<ext>   style sheet and script, cached for ever

#include <memory>
#include <string>

#include "collector/api/admin_api.h"
#include "collector/console/sessions.h"
#include "collector/tickets/production_calendar.h"
#include "collector/tickets/tickets.h"
#include "common/clock.h"
#include "common/http_server.h"

namespace setdiag::collector::console {

class Console {
 public:
  struct Options {
    // Secure on every cookie, also for requests that came in plain HTTP
    // (the collector sets none: it marks the cookies of requests that came
    // over TLS, on console.listen).
    bool tls = false;
    int64_t session_lifetime_ms = Sessions::kDefaultLifetimeMs;
    // How long the live stream waits between looks at the database.
    int64_t live_poll_ms = 1000;
  };
  Console(AdminApi& api, TicketPolicy policy, const BusinessClock& business, Clock& clock,
          Options options);
  ~Console();

  // Whether the request is the console's: "/", "/console" and below.
  static bool Owns(const HttpRequest& request);
  // Thread-safe: the HTTP server's workers call it.
  HttpResponse Handle(const HttpRequest& request);

  Sessions& sessions();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace setdiag::collector::console
