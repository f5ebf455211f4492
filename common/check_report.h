#pragma once
// The preflight report both `setdiag-agent check` and `setdiag-collector
// check` print: one line per check, ✓ (ok), ✗ (fails: with what to do) or !
// (works, but look at it), in Russian or English, or JSON for scripts.

#include <string>
#include <vector>

namespace setdiag {

enum class CheckVerdict { kOk, kWarn, kFail };

struct CheckLine {
  std::string id;  // "set_db.roster", "grpc.listen", ...: stable, for --json
  CheckVerdict verdict = CheckVerdict::kOk;
  std::string text_en, text_ru;  // what was found
  std::string fix_en, fix_ru;    // what to do (✗ and !)
};

// A line that passed, and one that failed (or only warns) with what to do.
CheckLine CheckOk(std::string id, std::string en, std::string ru);
CheckLine CheckFail(std::string id, std::string en, std::string ru, std::string fix_en,
                    std::string fix_ru, CheckVerdict verdict = CheckVerdict::kFail);

// Prints the lines (ru or en, or with `json`
// {"ok", "checks": [{"id", "verdict": "ok|warn|fail", "text_en", "text_ru",
// "fix_en", "fix_ru"}]}); returns 0 when nothing failed, 1 otherwise.
int PrintChecks(const std::vector<CheckLine>& lines, bool ru, bool json);

}  // namespace setdiag
