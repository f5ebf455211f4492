// Fuzz target: the agent's TOML config reader, LoadAgentConfig
// (agent/config/agent_config.h), on a file holding the input: toml++ parsing and
// every key's validation (durations, byte sizes, listen addresses, the
// roster, the store calendar, [set_db], [loading], [bundle]...).
//
// Oracles beyond the sanitizers (and no exception escaping: an uncaught
// one aborts): an error is InvalidArgument or NotFound and names the file
// (docs/config.md: "errors name the file, line and key"); a loaded config
// has a store id and a collector address, and its outbox limits hold
// (max_event_bytes at most a quarter of max_bytes, as the loader enforces).

#include <string>

#include "agent/config/agent_config.h"
#include "config_fuzz_common.h"

using setdiag::fuzz::Fail;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text = setdiag::fuzz::AsText(data, size);
  if (setdiag::fuzz::NamesSpecialFiles(text)) return 0;
  const std::string path = setdiag::fuzz::WriteScratchFile("agent.toml", text);
  auto c = setdiag::agent::LoadAgentConfig(path);
  if (!c.ok()) {
    const auto code = c.status().code();
    if (code != absl::StatusCode::kInvalidArgument && code != absl::StatusCode::kNotFound)
      Fail("LoadAgentConfig failed with an unexpected code", c.status().ToString());
    if (std::string(c.status().message()).find(path) == std::string::npos)
      Fail("a config error that does not name the file", std::string(c.status().message()));
    return 0;
  }
  if (c->store_id.empty() || c->collector_address.empty())
    Fail("a config loaded without agent.store_id or collector.address", text);
  if (c->outbox.max_event_bytes > c->outbox.max_bytes / 4)
    Fail("a config loaded with outbox.max_event_bytes over a quarter of outbox.max_bytes", text);
  if (!c->calendar) Fail("a config loaded without a calendar", text);
  return 0;
}
