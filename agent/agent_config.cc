#include "agent/agent_config.h"

#include <arpa/inet.h>

#include "common/strings.h"
#include "common/config.h"
#include "common/files.h"

namespace setdiag::agent {

bool IsLoopbackTarget(const std::string& host_port) {
  std::string_view host = host_port;
  if (auto colon = host.rfind(':'); colon != std::string_view::npos) host = host.substr(0, colon);
  if (host.starts_with('[') && host.ends_with(']')) host = host.substr(1, host.size() - 2);
  if (host == "localhost" || host == "::1") return true;
  // Only a literal address in 127.0.0.0/8; a name such as 127.example.com is
  // resolved elsewhere and is not loopback.
  in_addr addr{};
  std::string h(host);
  return inet_pton(AF_INET, h.c_str(), &addr) == 1 && (ntohl(addr.s_addr) >> 24) == 127;
}

absl::StatusOr<AgentConfig> LoadAgentConfig(const std::string& path) {
  std::unique_ptr<ConfigReader> r;
  if (auto st = ConfigReader::Load(path, &r); !st.ok()) return st;
  AgentConfig c;
  c.store_id = r->RequireString("agent.store_id");
  c.agent_id = r->String("agent.agent_id", "");
  c.state_dir = r->String("agent.state_dir", c.state_dir);
  c.log_level = r->String("agent.log_level", c.log_level);
  c.status_interval_ms = r->DurationMs("agent.status_interval", c.status_interval_ms, 1000);

  c.collector_address = r->RequireString("collector.address");
  auto token_file = r->OptionalString("collector.token_file");
  auto token = r->OptionalString("collector.token");
  c.ca_file = r->String("collector.ca_file", "");
  c.server_name = r->String("collector.server_name", "");
  c.allow_insecure = r->Bool("collector.allow_insecure", false);

  c.outbox.max_bytes = r->Bytes("outbox.max_bytes", c.outbox.max_bytes, 64 * 1024);
  c.outbox.max_age_ms = r->DurationMs("outbox.max_age", c.outbox.max_age_ms, 60'000);
  // Unset: the default, but never more than a quarter of a small outbox.
  c.outbox.max_event_bytes = r->Bytes("outbox.max_event_bytes", -1, 1024);
  bool event_limit_given = c.outbox.max_event_bytes != -1;
  if (!event_limit_given) {
    c.outbox.max_event_bytes = std::min(OutboxLimits{}.max_event_bytes, c.outbox.max_bytes / 4);
  }

  c.backoff.initial_ms = r->DurationMs("backoff.initial", c.backoff.initial_ms, 10);
  c.backoff.max_ms = r->DurationMs("backoff.max", c.backoff.max_ms, 10);
  c.backoff.overloaded_min_ms = r->DurationMs("backoff.overloaded_min", c.backoff.overloaded_min_ms, 0);
  if (auto st = r->Finish(); !st.ok()) return st;

  if (!c.store_id.empty() && !IsValidIdentifier(c.store_id)) {
    return absl::InvalidArgumentError(
        Cat(path, ": key 'agent.store_id': must be 1..128 characters of [A-Za-z0-9._-]"));
  }
  if (!c.agent_id.empty() && !IsValidIdentifier(c.agent_id)) {
    return absl::InvalidArgumentError(
        Cat(path, ": key 'agent.agent_id': must be 1..128 characters of [A-Za-z0-9._-]"));
  }
  if (event_limit_given && c.outbox.max_event_bytes * 4 > c.outbox.max_bytes) {
    return absl::InvalidArgumentError(
        Cat(path, ": key 'outbox.max_event_bytes': must be at most a quarter of outbox.max_bytes"));
  }
  if (c.log_level != "debug" && c.log_level != "info" && c.log_level != "warn" &&
      c.log_level != "error") {
    return absl::InvalidArgumentError(
        Cat(path, ": key 'agent.log_level': expected debug, info, warn or error"));
  }
  if (token_file) {
    auto t = ReadWholeFile(*token_file);
    if (!t.ok()) {
      return absl::InvalidArgumentError(
          Cat(path, ": key 'collector.token_file': ", t.status().message()));
    }
    c.token = std::string(Trim(*t));
  } else if (token) {
    c.token = *token;
  }
  if (c.token.empty()) {
    return absl::InvalidArgumentError(Cat(
        path, ": key 'collector.token_file' (or 'collector.token') is required: the store token "
              "printed by 'setdiag-collector token create'"));
  }
  if (c.ca_file.empty() && !c.allow_insecure && !IsLoopbackTarget(c.collector_address)) {
    return absl::InvalidArgumentError(Cat(
        path, ": key 'collector.ca_file': required for a non-loopback collector (",
        c.collector_address, "); plaintext needs 'collector.allow_insecure = true'"));
  }
  return c;
}

}  // namespace setdiag::agent
