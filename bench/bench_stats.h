#pragma once
// Latency statistics shared by the benchmarks: nearest-rank percentiles and
// one printed line (and JSON object) per measured series.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace setdiag::bench {

inline int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}
inline int64_t NowMs() { return NowUs() / 1000; }

// Nearest rank.
inline double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  auto rank = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size())));
  return v[std::clamp<size_t>(rank, 1, v.size()) - 1];
}

struct Summary {
  size_t n = 0;
  double p50 = 0, p90 = 0, p99 = 0, max = 0, min = 0;
};

inline Summary Summarize(const std::vector<double>& v) {
  Summary s;
  s.n = v.size();
  if (v.empty()) return s;
  s.p50 = Percentile(v, 0.5);
  s.p90 = Percentile(v, 0.9);
  s.p99 = Percentile(v, 0.99);
  s.max = *std::max_element(v.begin(), v.end());
  s.min = *std::min_element(v.begin(), v.end());
  return s;
}

inline void Report(const std::string& what, const std::vector<double>& v) {
  Summary s = Summarize(v);
  std::printf("%-66s n=%-4zu p50=%7.1f p90=%7.1f p99=%7.1f max=%7.1f min=%7.1f\n", what.c_str(),
              s.n, s.p50, s.p90, s.p99, s.max, s.min);
}

inline nlohmann::json SummaryJson(const std::vector<double>& v) {
  Summary s = Summarize(v);
  auto r1 = [](double x) { return std::round(x * 10) / 10; };
  return {{"n", s.n},         {"p50", r1(s.p50)}, {"p90", r1(s.p90)},
          {"p99", r1(s.p99)}, {"max", r1(s.max)}, {"min", r1(s.min)}};
}

}  // namespace setdiag::bench
