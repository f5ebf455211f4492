#pragma once
// `setdiag-store-sim ctl`: a client of the control API that prints the JSON
// reply. Exit codes: 0 done, 1 simulator unreachable or failed, 2 bad
// arguments (including a selection the simulator rejects).

#include <string>
#include <vector>

#include "tools/store_sim/options.h"

namespace setdiag::store_sim {

// words: the command and its arguments, e.g. {"stop", "1-11"}, {"status"},
// {"erp", "start", "15s"}, {"server", "fail", "5", "message"},
// {"transport", "stall", "1-11"} (docs/simulator.md lists them all).
int RunCtl(const HostPort& control, const std::vector<std::string>& words);

}  // namespace setdiag::store_sim
