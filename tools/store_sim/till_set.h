#pragma once
// Till selections as people type them: "all", "7", "1-11", "1,3,5", "1-3,7".

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace setdiag::store_sim {

// Parses a selection of till numbers within 1..max_till. Returns the numbers
// sorted and without duplicates; an error names the offending part.
absl::StatusOr<std::vector<int>> ParseTillSet(std::string_view spec, int max_till);

// The reverse, compact: {1,2,3,7} -> "1-3,7".
std::string FormatTillSet(const std::vector<int>& sorted_numbers);

}  // namespace setdiag::store_sim
