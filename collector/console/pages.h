#pragma once
// The console's pages (one file each), and what they share: the backend
// they read through (the admin API as the signed-in person) and the
// policy that the SLA clocks are shown with.

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "collector/api/admin_api.h"
#include "collector/console/render.h"
#include "collector/console/sessions.h"
#include "collector/tickets/production_calendar.h"
#include "collector/tickets/tickets.h"
#include "common/clock.h"

namespace setdiag::collector::console {

struct ApiResult {
  int status = 0;
  nlohmann::json body;  // the answer on 200
  std::string error;    // the API's message otherwise
  bool ok() const { return status == 200; }
};

struct Backend {
  AdminApi& api;
  const TicketPolicy& policy;
  const BusinessClock& business;
  Clock& clock;
  int64_t live_poll_ms = 1000;
  Sessions* sessions = nullptr;  // the live stream ends with its session

  ApiResult Get(const Ctx& ctx, const std::string& target) const;
  ApiResult Post(const Ctx& ctx, const std::string& target, const nlohmann::json& body) const;
  // The raw answer (a bundle's file).
  HttpResponse Raw(const Ctx& ctx, const std::string& method, const std::string& target) const;
};

using Form = std::vector<std::pair<std::string, std::string>>;

// A field of the API's JSON (or of an agent's manifest): a string as it is,
// another scalar as JSON text, "" when absent or null.
std::string Str(const nlohmann::json& j, const char* key);
// A number field, 0 when absent or not a number.
int64_t Int(const nlohmann::json& j, const char* key);

// An API error as a page: 404 and 503 get the console's words, others the
// API's message.
HttpResponse ApiErrorPage(const Ctx& ctx, const ApiResult& r);
// "critical" -> "критический" / "critical"; state and bundle state names too.
std::string PriorityLabel(bool ru, const std::string& priority);
std::string StateLabel(bool ru, const std::string& state);
std::string BundleStateLabel(bool ru, const std::string& state);
std::string Bytes(int64_t n);
// A path safe to send the browser back to: under /console/, else the queue.
std::string SafeBack(const std::string& back);

HttpResponse QueuePage(const Backend& b, const Ctx& ctx, bool rows_only,
                       const std::string& notice = "", const std::string& error = "");
HttpResponse BulkAction(const Backend& b, const Ctx& ctx, const Form& form);

HttpResponse TicketPage(const Backend& b, const Ctx& ctx, int64_t id, const std::string& notice,
                        const std::string& error, int status = 200);
HttpResponse TicketAction(const Backend& b, const Ctx& ctx, int64_t id, const std::string& action,
                          const Form& form);
HttpResponse RequestBundle(const Backend& b, const Ctx& ctx, int64_t id, const Form& form);

// A bundle as the ticket, store and bundle pages show it.
nlohmann::json BundleRowData(const Ctx& ctx, const nlohmann::json& bundle);
HttpResponse BundlePage(const Backend& b, const Ctx& ctx, const std::string& id);
HttpResponse BundleDownload(const Backend& b, const Ctx& ctx, const std::string& id);
HttpResponse BundleStatus(const Backend& b, const Ctx& ctx, const std::string& id);

HttpResponse StoresPage(const Backend& b, const Ctx& ctx);
HttpResponse StorePage(const Backend& b, const Ctx& ctx, const std::string& id);

// The live stream: an event "ticket" (data: {"id": N}) for each ticket the
// person may see whose timeline grew since the stream opened.
HttpResponse LiveEvents(const Backend& b, const Ctx& ctx);

}  // namespace setdiag::collector::console
