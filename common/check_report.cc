#include "common/check_report.h"

#include <iostream>
#include <nlohmann/json.hpp>

namespace setdiag {
namespace {

const char* Mark(CheckVerdict v) {
  switch (v) {
    case CheckVerdict::kOk:
      return "✓";
    case CheckVerdict::kWarn:
      return "!";
    case CheckVerdict::kFail:
      return "✗";
  }
  return "?";
}

const char* VerdictName(CheckVerdict v) {
  switch (v) {
    case CheckVerdict::kOk:
      return "ok";
    case CheckVerdict::kWarn:
      return "warn";
    case CheckVerdict::kFail:
      return "fail";
  }
  return "?";
}

}  // namespace

int PrintChecks(const std::vector<CheckLine>& lines, bool ru, bool as_json) {
  using json = nlohmann::json;
  bool failed = false;
  for (const auto& l : lines) failed = failed || l.verdict == CheckVerdict::kFail;
  if (as_json) {
    json checks = json::array();
    for (const auto& l : lines) {
      json c = {{"id", l.id},
                {"verdict", VerdictName(l.verdict)},
                {"text_en", l.text_en},
                {"text_ru", l.text_ru}};
      if (!l.fix_en.empty()) {
        c["fix_en"] = l.fix_en;
        c["fix_ru"] = l.fix_ru;
      }
      checks.push_back(std::move(c));
    }
    std::cout << json{{"ok", !failed}, {"checks", checks}}.dump(2, ' ', false,
                                                                json::error_handler_t::replace)
              << "\n";
    return failed ? 1 : 0;
  }
  for (const auto& l : lines) {
    std::cout << Mark(l.verdict) << " " << (ru ? l.text_ru : l.text_en) << "\n";
    const std::string& fix = ru ? l.fix_ru : l.fix_en;
    if (!fix.empty()) std::cout << "    " << (ru ? "что сделать: " : "what to do: ") << fix << "\n";
  }
  std::cout << (failed ? (ru ? "есть ошибки\n" : "some checks failed\n")
                       : (ru ? "всё в порядке\n" : "all checks passed\n"));
  return failed ? 1 : 0;
}

CheckLine CheckOk(std::string id, std::string en, std::string ru) {
  return {std::move(id), CheckVerdict::kOk, std::move(en), std::move(ru), "", ""};
}

CheckLine CheckFail(std::string id, std::string en, std::string ru, std::string fix_en,
                    std::string fix_ru, CheckVerdict verdict) {
  return {std::move(id), verdict,           std::move(en),
          std::move(ru), std::move(fix_en), std::move(fix_ru)};
}

}  // namespace setdiag
