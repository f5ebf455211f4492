#pragma once
// What people read of a ticket: its title (Russian and English), the
// notification a change sends, durations in words, and the JSON the API
// and the notifications carry (TicketJson, TimelineJson in tickets.h).

#include <cstdint>
#include <string>

#include "collector/notify/notifications.h"
#include "collector/tickets/tickets.h"

namespace setdiag::collector::tickets_internal {

struct Titles {
  std::string en, ru;
};

// "Store 1042: more than 50% of tills stopped" / "Магазин 1042: ...".
Titles TitleFor(const std::string& condition, Priority priority, const std::string& store);

// "90 s", "15 min", "4 h".
std::string HumanDuration(int64_t ms);

// The notice of a change of `t` (whose evidence is loaded): `type` and
// `key_suffix` make its idempotency key, `what_en`/`what_ru` head the
// subject ("Opened" / "Открыта").
TicketNotice ComposeNotice(const Ticket& t, const std::string& type, const std::string& key_suffix,
                           const std::string& what_en, const std::string& what_ru);

}  // namespace setdiag::collector::tickets_internal
