#pragma once
// What people act on, taken from a condition event's payload: the stopped
// tills with their last heartbeat and network probe and the likely cause;
// for loading, the stuck package, the oldest waiting file and the last
// successful import (docs/tickets.md, "Evidence"). The ticket keeps the
// evidence of its latest raising event; the API, `setdiag tickets show`,
// the webhook (`evidence`) and the e-mail show it.
//
// Pure: no clock, no database. Times are the agent's (Unix ms) and are
// shown in Moscow time, like every ticket text.

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/time_format.h"

namespace setdiag::collector {

// At most this many tills (or packages) are listed one by one; the rest are
// counted ("and M more" / "и ещё M").
inline constexpr size_t kEvidenceListed = 10;

// The evidence of one raising event of `kind`, or null when its payload
// carries nothing beyond the summary (free-form events, set.db_unreachable).
// Shape (every key optional):
//   {"kind", "stopped", "expected", "tills": [{"number", "last_heartbeat_ms",
//    "probe", "stopped_since_ms"}], "tills_more", "likely_cause": {"code",
//    "en", "ru"}, "reasons": [..], "stuck_package": {"ti", "since_ms",
//    "stuck_for_s", "import_type"}, "stuck_packages", "oldest_waiting_file":
//    {"path", "name", "mtime_ms", "age_s", "files"}, "import_service": {..},
//    "last_successful_import": {"ti", "arrived_ms"} or null,
//    "failed_packages": [..], "failed_more", "lagging", "lagging_tills": [..],
//    "lagging_more", "last_package", "silent_since_ms", "disks_low": [..],
//    "lines_en": [..], "lines_ru": [..]}
// `lines_en` / `lines_ru` are the same evidence as short human lines.
nlohmann::json EvidenceOf(const std::string& kind, const nlohmann::json& payload,
                          size_t listed = kEvidenceListed);

// The human lines of an evidence object in one language, one per line
// (empty for null evidence).
std::string EvidenceText(const nlohmann::json& evidence, bool ru);

}  // namespace setdiag::collector
