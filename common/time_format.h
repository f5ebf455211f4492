#pragma once
// Instants as people and files read them, one set for every binary. All
// take Unix milliseconds and never read $TZ or the time zone database.

#include <cstdint>
#include <string>

namespace setdiag {

// strftime of the instant at UTC + `offset_seconds` (whole seconds). The
// compiler checks `format` as it checks strftime's.
std::string FormatUnixMs(int64_t ms, const char* format, int64_t offset_seconds = 0)
    __attribute__((format(strftime, 2, 0)));

// "2026-11-27 01:56:21Z"; "-" for 0 or less.
std::string FormatUtc(int64_t ms);

// Moscow time for people: "2026-11-23 13:30 MSK" (without " MSK" when
// `with_zone` is false); "-" for 0 or less. Moscow has kept UTC+3 all year
// since 26 October 2014 (no DST), so a fixed offset is exact for every
// instant setdiag holds, with no time zone database on the machine.
std::string FormatMsk(int64_t ms, bool with_zone = true);

// ISO 8601 in UTC, to the second: "2026-11-27T01:56:21Z", or compact
// "20261127T015621Z" for file names.
std::string IsoUtc(int64_t ms, bool compact = false);

}  // namespace setdiag
