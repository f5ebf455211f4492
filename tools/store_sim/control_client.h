#pragma once
// `setdiag-store-sim ctl`: a client of the control API that prints the JSON
// reply. Exit codes: 0 done, 1 simulator unreachable or failed, 2 bad
// arguments (including a selection the simulator rejects).

#include <string>

#include "tools/store_sim/options.h"

namespace setdiag::store_sim {

// action: start, stop, mothball, unplug (with `tills`) or status.
int RunCtl(const HostPort& control, const std::string& action, const std::string& tills);

}  // namespace setdiag::store_sim
