#include "tools/store_sim/till_set.h"

#include <algorithm>
#include <charconv>

#include "common/strings.h"

namespace setdiag::store_sim {

namespace {

bool ParseNumber(std::string_view s, int* out) {
  s = Trim(s);
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

}  // namespace

absl::StatusOr<std::vector<int>> ParseTillSet(std::string_view spec, int max_till) {
  std::string_view trimmed = Trim(spec);
  if (trimmed.empty())
    return absl::InvalidArgumentError("empty till selection (use e.g. 1-11, 1,3,5 or all)");
  std::vector<int> out;
  if (trimmed == "all") {
    for (int n = 1; n <= max_till; ++n) out.push_back(n);
    return out;
  }
  for (std::string_view part : Split(trimmed, ',', /*skip_empty=*/false)) {
    int lo = 0, hi = 0;
    auto dash = part.find('-');
    bool ok = dash == std::string_view::npos ? ParseNumber(part, &lo) && (hi = lo, true)
                                             : ParseNumber(part.substr(0, dash), &lo) &&
                                                   ParseNumber(part.substr(dash + 1), &hi);
    if (!ok || lo > hi) {
      return absl::InvalidArgumentError(
          Cat("bad till selection '", part, "' in '", trimmed, "' (use e.g. 1-11, 1,3,5 or all)"));
    }
    if (lo < 1 || hi > max_till) {
      return absl::InvalidArgumentError(Cat("till selection '", part, "' is outside 1-", max_till));
    }
    for (int n = lo; n <= hi; ++n) out.push_back(n);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::string FormatTillSet(const std::vector<int>& numbers) {
  std::string out;
  for (size_t i = 0; i < numbers.size();) {
    size_t j = i;
    while (j + 1 < numbers.size() && numbers[j + 1] == numbers[j] + 1) ++j;
    if (!out.empty()) out += ',';
    if (j == i)
      Append(&out, numbers[i]);
    else
      Append(&out, numbers[i], '-', numbers[j]);
    i = j + 1;
  }
  return out.empty() ? "none" : out;
}

}  // namespace setdiag::store_sim
