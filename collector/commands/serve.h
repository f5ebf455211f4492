#pragma once
// `setdiag-collector serve` (the default): the composition root of the
// running collector. It opens collector.db (migrating it), starts the
// writer (CommitQueue) with the ticket engine on it, the notifier, the
// bundle files thread, the agents' gRPC service and the admin API, and
// stops them in order on SIGINT or SIGTERM (docs/architecture.md, "Threads").

#include "collector/config/collector_config.h"

namespace setdiag::collector {

// Runs until SIGINT or SIGTERM. Exit code: 0 stopped cleanly, 1 could not
// start (database, a port), 2 a configuration error found at start.
int Serve(const CollectorConfig& cfg);

}  // namespace setdiag::collector
