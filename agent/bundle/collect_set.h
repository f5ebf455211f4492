#pragma once
// Bundle steps with a live snapshot of SET:
//   "set_db"      SET's PostgreSQL, read-only, with the same queries the
//                 watches use (replacements from the config included):
//                 set/tills.json (roster with each till's last activity),
//                 set/packages.json (recent import packages and statuses),
//                 set/transport.json (per-till transport progress). A dead
//                 database fails fast (connect timeout at most 5 s, statement
//                 timeout at most 10 s) and is reported, never retried.
//   "set_server"  what needs no database: set/server.json (deployment
//                 markers, the deployments folder, SET's ports) and
//                 set/inboxes.json (the import inbox folders, oldest first).

#include <string>
#include <vector>

#include "agent/bundle/step.h"
#include "agent/sources/net_probe.h"
#include "agent/sources/set_db.h"

namespace setdiag::agent::bundle {

BundleStep MakeSetDbStep(SetDbConfig db);
BundleStep MakeSetServerStep(ServerCheckConfig server, std::vector<std::string> inboxes,
                             std::string inbox_pattern);

}  // namespace setdiag::agent::bundle
