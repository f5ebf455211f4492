#pragma once
// The admin API's resources, one file each (docs/api.md has the contract):
//   events_api.cc   GET events, GET agents
//   tickets_api.cc  GET tickets, GET tickets/{id}, POST tickets/{id}/{action}
//   bundles_api.cc  POST stores/{id}/bundles, GET bundles, GET bundles/{id}[/content]
//   stores_api.cc   GET stores, GET stores/{id}
// Each handler gets a request whose path matched its route (admin_api.cc
// has the table) and whose person is authenticated; it checks what that
// person may see.

#include "collector/api/request.h"

namespace setdiag::collector::api {

HttpResponse ListEventsHandler(const Request& r);
HttpResponse ListAgentsHandler(const Request& r);

HttpResponse ListTicketsHandler(const Request& r);
HttpResponse GetTicketHandler(const Request& r);
// The action is the last path segment: ack, notes, error, workaround, resolve.
HttpResponse TicketActionHandler(const Request& r);

HttpResponse RequestBundleHandler(const Request& r);
HttpResponse ListBundlesHandler(const Request& r);
HttpResponse GetBundleHandler(const Request& r);
HttpResponse BundleContentHandler(const Request& r);

HttpResponse ListStoresHandler(const Request& r);
HttpResponse GetStoreHandler(const Request& r);

// The longest note, error description or resolution accepted, in Unicode
// code points.
inline constexpr size_t kMaxTextChars = 10'000;

}  // namespace setdiag::collector::api
