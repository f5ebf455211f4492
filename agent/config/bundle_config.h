#pragma once
// The [bundle] section of the agent's config (docs/config.md, docs/bundles.md):
// what a diagnostic bundle collects and how long each collection step may
// take. Plain values; read by agent/config/agent_config.cc.

#include <cstdint>
#include <string>
#include <vector>

namespace setdiag::agent {

struct BundleConfig {
  // How far back logs (by modification time) and the agent's history reach.
  int64_t window_ms = int64_t{24} * 3'600'000;
  // SET's WildFly logs (current and rotated), PostgreSQL's (Debian's rotated
  // ones too; their statements pass the sql_password rule) and nginx's, on
  // CentOS and Debian layouts. Globs that match nothing are skipped quietly;
  // compressed rotations are listed as left out.
  std::vector<std::string> log_globs = {
      "/var/lib/jboss/standalone/log/*.log",
      "/var/lib/jboss/standalone/log/*.log.*",
      "/var/log/postgresql/*.log",
      "/var/log/postgresql/*.log.*",
      "/var/lib/pgsql/data/log/*.log",
      "/var/lib/pgsql/*/data/log/*.log",
      "/var/lib/pgsql/data/pg_log/*.log",
      "/var/lib/pgsql/*/data/pg_log/*.log",
      "/var/log/nginx/*.log",
  };
  int64_t log_file_cap_bytes = int64_t{20} * 1024 * 1024;    // the tail of each file
  int64_t log_total_cap_bytes = int64_t{200} * 1024 * 1024;  // all logs together
  // Other config files of the store server, redacted like the agent's own.
  std::vector<std::string> config_files = {
      "/var/lib/jboss/standalone/configuration/standalone.xml"};
  int64_t step_timeout_ms = 20'000;
  int64_t logs_timeout_ms = 120'000;  // the logs step reads up to log_total_cap_bytes
  // When the daemon stops during a build, how long the build may go on to
  // finish (a flight-recorder capture is not taken again) before it is ended.
  int64_t stop_grace_ms = 10'000;
};

}  // namespace setdiag::agent
