#include "agent/config/agent_config.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <cctype>
#include <charconv>
#include <cstdio>
#include <set>

#include "absl/time/time.h"
#include "common/config.h"
#include "common/files.h"
#include "common/host_port.h"
#include "common/status.h"
#include "common/strings.h"

namespace setdiag::agent {

bool IsLoopbackTarget(const std::string& host_port) {
  std::string_view host = host_port;
  if (auto colon = host.rfind(':'); colon != std::string_view::npos) host = host.substr(0, colon);
  if (host.starts_with('[') && host.ends_with(']')) host = host.substr(1, host.size() - 2);
  return IsLoopbackHost(host);
}

absl::Status CheckCaPem(const std::string& pem) {
  size_t certificates = 0;
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (bio == nullptr) return absl::ResourceExhaustedError("out of memory");
  ERR_clear_error();
  // PEM_read_bio_X509 skips blocks that are not certificates (a key) and
  // fails with "no start line" after the last certificate.
  bool damaged = false;
  while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    X509_free(cert);
    ++certificates;
  }
  const unsigned long err = ERR_peek_last_error();
  if (err != 0 && !(ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE))
    damaged = true;
  ERR_clear_error();
  BIO_free(bio);
  if (damaged) {
    return absl::InvalidArgumentError(
        Cat("holds a damaged PEM certificate",
            certificates > 0 ? Cat(" (after ", certificates, " good one(s))") : "",
            ": copy the collector's CA certificate (ca.pem from support) again"));
  }
  if (certificates > 0) return absl::OkStatus();
  const bool key = pem.find("PRIVATE KEY-----") != std::string::npos;
  return absl::InvalidArgumentError(
      Cat("holds no PEM certificate (no -----BEGIN CERTIFICATE----- block)",
          key ? "; it holds a private key, which never goes to a store" : "",
          ": put the collector's CA certificate there (ca.pem from support)"));
}

namespace {

// Empty when group and others have no access to `file` (or it cannot be
// looked at: reading it then says why); otherwise why it is refused. A
// secret that others may read or write is refused, as ssh does with a
// private key, so that one left 0644 is fixed at install instead of leaking.
std::string OpenToOthers(const std::string& file, const char* secret) {
  struct stat st {};
  if (stat(file.c_str(), &st) != 0 || (st.st_mode & (S_IRWXG | S_IRWXO)) == 0) return "";
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
  return Cat(file, " is open to group or others (mode ", mode, "); ", secret,
             " is a secret: chmod 600 ", file,
             " (owned by the user the agent runs as: chown setdiag ", file, ")");
}

// A push listener: "IPv4:port" with a port 1..65535 (empty: off).
void CheckListenAddress(ConfigReader& r, const char* key, const std::string& value,
                        const char* example) {
  if (value.empty()) return;
  auto listen = ParseHostPort(value, {.host = HostForm::kIpv4, .allow_port_zero = true});
  std::string what;
  if (!listen.ok()) {
    auto colon = value.rfind(':');
    what = colon != std::string::npos && !IsIpv4Literal(value.substr(0, colon))
               ? Cat("'", value.substr(0, colon), "' is not an IPv4 address (four numbers 0..255)")
               : std::string("not an IPv4 address and port");
  } else if (listen->port == 0) {
    what = "port 0 is not a port to listen on";
  } else {
    return;
  }
  r.Invalid(key, Cat("'", value, "': ", what, "; expected e.g. \"", example,
                     "\" (names such as localhost are not "
                     "accepted)"));
}

// A zone absl (the system tzdata) knows, spelled so it can go into SQL.
bool IsKnownTimeZone(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  for (char ch : name) {
    if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '/' && ch != '_' && ch != '-' &&
        ch != '+')
      return false;
  }
  absl::TimeZone tz;
  return absl::LoadTimeZone(name, &tz);
}

// [set_db]: SET's database as the till watch reads it; nullopt when it is
// off (its keys still count as known, and are checked).
std::optional<SetDbConfig> ReadSetDb(ConfigReader& r) {
  if (r.Bool("set_db.enabled", false)) {
    SetDbConfig db;
    db.host = r.String("set_db.host", db.host);
    db.port = static_cast<int>(r.Int("set_db.port", db.port, 1, 65535));
    db.user = r.String("set_db.user", db.user);
    db.password = r.String("set_db.password", "");
    if (auto file = r.OptionalString("set_db.password_file")) {
      if (std::string open = OpenToOthers(*file, "the database password"); !open.empty()) {
        r.Invalid("set_db.password_file", open);
      } else if (auto pw = ReadWholeFile(*file); !pw.ok()) {
        r.Invalid("set_db.password_file", std::string(pw.status().message()));
      } else {
        db.password = std::string(Trim(*pw));
      }
    }
    db.database_set = r.String("set_db.database_set", db.database_set);
    db.database_operday = r.String("set_db.database_operday", db.database_operday);
    db.connect_timeout_ms = r.DurationMs("set_db.connect_timeout", db.connect_timeout_ms, 1000);
    db.query_timeout_ms = r.DurationMs("set_db.query_timeout", db.query_timeout_ms, 100);
    int64_t shop = r.Int("set_db.shop_number", -1, -1, INT32_MAX);
    if (shop >= 0) db.shop_number = static_cast<int>(shop);
    db.roster_query = r.String("set_db.roster_query", "");
    db.activity_query = r.String("set_db.activity_query", "");
    // Empty here: calendar.time_zone, else the session's (LoadAgentConfig).
    db.time_zone = r.String("set_db.time_zone", "");
    if (r.Has("set_db.time_zone") && !IsKnownTimeZone(db.time_zone)) {
      r.Invalid(
          "set_db.time_zone",
          Cat("unknown time zone '", db.time_zone,
              "': expected the IANA name of the zone SET's server runs in, e.g. Europe/Moscow"));
    }
    db.clock_tolerance_ms = r.DurationMs("set_db.clock_tolerance", db.clock_tolerance_ms, 1000);
    db.failure_confirm_ms = r.DurationMs("set_db.failure_confirm", db.failure_confirm_ms, 0);
    return db;
  }
  // Keys of a disabled section still count as known (and are checked).
  for (const char* k : {"set_db.host", "set_db.user", "set_db.password", "set_db.password_file",
                        "set_db.database_set", "set_db.database_operday", "set_db.roster_query",
                        "set_db.activity_query", "set_db.time_zone"}) {
    (void)r.OptionalString(k);
  }
  (void)r.Int("set_db.port", 5432, 1, 65535);
  (void)r.Int("set_db.shop_number", -1, -1, INT32_MAX);
  (void)r.DurationMs("set_db.connect_timeout", 0, 0);
  (void)r.DurationMs("set_db.query_timeout", 0, 0);
  (void)r.DurationMs("set_db.clock_tolerance", 0, 0);
  (void)r.DurationMs("set_db.failure_confirm", 0, 0);
  return std::nullopt;
}

void ReadTillWatch(ConfigReader& r, AgentConfig* c) {
  TillWatchOptions& t = c->tills;
  // On unless there is nothing to watch; explicitly on without a roster is
  // an error (below).
  const bool tills_explicit = r.Has("tills.enabled");
  c->tills_enabled = r.Bool("tills.enabled", true);
  t.poll_interval_ms = r.DurationMs("tills.poll_interval", t.poll_interval_ms, 100);
  t.policy.heartbeat_timeout_ms =
      r.DurationMs("tills.heartbeat_timeout", t.policy.heartbeat_timeout_ms, 100);
  t.policy.confirm_ms = r.DurationMs("tills.confirm_window", t.policy.confirm_ms, 0);
  t.policy.clear_ms = r.DurationMs("tills.clear_window", t.policy.clear_ms, 0);
  t.policy.single_till_ms =
      r.DurationMs("tills.single_till_threshold", t.policy.single_till_ms, 1000);
  t.policy.unreachable_confirm_ms =
      r.DurationMs("tills.unreachable_confirm", t.policy.unreachable_confirm_ms, 0);
  t.probe_port = static_cast<uint16_t>(r.Int("tills.probe_port", t.probe_port, 1, 65535));
  t.probe_timeout_ms =
      static_cast<int>(r.DurationMs("tills.probe_timeout", t.probe_timeout_ms, 10));
  t.probe_every_ms = r.DurationMs("tills.probe_every", t.probe_every_ms, 1000);
  std::set<int64_t> mothballed;
  for (int64_t n : r.IntList("tills.mothballed", 1, 99'999)) mothballed.insert(n);
  for (const std::string& key : r.TableKeys("tills.roster")) {
    int number = 0;
    auto [p, ec] = std::from_chars(key.data(), key.data() + key.size(), number);
    std::string full = Cat("tills.roster.", key);
    if (ec != std::errc() || p != key.data() + key.size() || number < 1) {
      r.Invalid(full, "roster keys are till numbers, e.g. 7 = \"10.0.0.17\"");
      continue;
    }
    std::string address = r.String(full, "");
    if (!address.empty() && !IsIpv4Literal(address)) {
      r.Invalid(full, Cat("'", address,
                          "' is not an IPv4 address: expected four numbers 0..255 such as "
                          "\"10.0.0.17\", or \"\" for none (the till is then not probed)"));
      continue;
    }
    t.roster.push_back({number, address, mothballed.erase(number) > 0});
  }
  // Mothballed tills not listed with an address: with [set_db] this marks a
  // database till mothballed; without, it adds one to the roster.
  for (int64_t n : mothballed) t.roster.push_back({static_cast<int>(n), "", true});

  t.set_db = ReadSetDb(r);
  c->push_udp_listen = r.String("push.udp_listen", "");
  c->push_http_listen = r.String("push.http_listen", "");
  CheckListenAddress(r, "push.udp_listen", c->push_udp_listen, "0.0.0.0:7555");
  CheckListenAddress(r, "push.http_listen", c->push_http_listen, "0.0.0.0:7556");
  ServerCheckConfig& sc = t.server;
  sc.enabled = r.Bool("server.check", sc.enabled);
  sc.host = r.String("server.host", sc.host);
  // Probed over IPv4 without resolving names: anything else would make
  // every port look closed.
  if (!IsIpv4Literal(sc.host)) {
    r.Invalid("server.host",
              Cat("'", sc.host,
                  "' is not an IPv4 address: expected four numbers 0..255 such "
                  "as \"127.0.0.1\" (the ports are probed over IPv4; names are not resolved)"));
  }
  sc.port_soap = static_cast<uint16_t>(r.Int("server.port_soap", sc.port_soap, 1, 65535));
  sc.port_transport =
      static_cast<uint16_t>(r.Int("server.port_transport", sc.port_transport, 1, 65535));
  // PostgreSQL's port is SET's database's unless given: a store whose
  // database listens elsewhere must not look like a server that is down.
  if (t.set_db && !r.Has("server.port_db")) sc.port_db = static_cast<uint16_t>(t.set_db->port);
  sc.port_db = static_cast<uint16_t>(r.Int("server.port_db", sc.port_db, 1, 65535));
  sc.deployed_marker = r.String("server.deployed_marker", sc.deployed_marker);
  sc.failed_marker = r.String("server.failed_marker", sc.failed_marker);
  if (c->tills_enabled && !t.set_db && t.roster.empty()) {
    if (tills_explicit) {
      r.Invalid(
          "tills.enabled",
          "the till watch needs a roster: enable [set_db] or list tills under [tills.roster]");
    } else {
      c->tills_enabled = false;  // nothing configured to watch
    }
  }
}

void ReadLoadingWatch(ConfigReader& r, AgentConfig* c) {
  LoadingWatchOptions& l = c->loading;
  l.set_db = c->tills.set_db;
  if (l.set_db) {
    l.set_db->packages_query = r.String("set_db.packages_query", "");
    l.set_db->transport_query = r.String("set_db.transport_query", "");
    c->tills.set_db->packages_query = l.set_db->packages_query;
    c->tills.set_db->transport_query = l.set_db->transport_query;
  } else {
    (void)r.OptionalString("set_db.packages_query");
    (void)r.OptionalString("set_db.transport_query");
  }
  l.inboxes = r.StringList("loading.inboxes");
  const bool has_source = l.set_db.has_value() || !l.inboxes.empty();
  c->loading_enabled = r.Bool("loading.enabled", has_source);
  if (c->loading_enabled && !has_source) {
    r.Invalid("loading.enabled", "the loading watch needs [set_db] or loading.inboxes");
  }
  l.poll_interval_ms = r.DurationMs("loading.poll_interval", l.poll_interval_ms, 100);
  l.policy.stuck_ms = r.DurationMs("loading.stuck_threshold", l.policy.stuck_ms, 1000);
  l.policy.inbox_age_ms = r.DurationMs("loading.inbox_threshold", l.policy.inbox_age_ms, 1000);
  l.policy.transport_lag_ms =
      r.DurationMs("loading.transport_threshold", l.policy.transport_lag_ms, 1000);
  l.watch_transport = r.Bool("loading.transport", l.watch_transport);
  l.policy.erp_every_ms = r.DurationMs("loading.erp_every", 0, 0);
  if (l.policy.erp_every_ms > 0 && !l.set_db) {
    r.Invalid("loading.erp_every",
              "watching the ERP's cadence needs [set_db] (packages are read there)");
  }
  std::string window = r.String("loading.erp_window", "00:00-24:00");
  if (!ParseDailyWindow(window, &l.erp_window_start_min, &l.erp_window_end_min)) {
    r.Invalid("loading.erp_window",
              "expected a daily window such as \"06:00-23:00\" (store time zone)");
  }
  l.policy.server_confirm_ms =
      r.DurationMs("loading.server_confirm", l.policy.server_confirm_ms, 0);
  l.policy.service_confirm_ms =
      r.DurationMs("loading.service_confirm", l.policy.service_confirm_ms, 0);
  l.policy.clear_ms = r.DurationMs("loading.clear_window", l.policy.clear_ms, 0);
  l.inbox_pattern = r.String("loading.inbox_pattern", l.inbox_pattern);
  l.server = c->tills.server;
  std::vector<std::string> def_urls;
  if (l.server.enabled) {
    for (const char* svc : {"WSGoodsCatalogImport", "FeedbackWS"}) {
      def_urls.push_back(Cat("http://", l.server.host, ":", l.server.port_soap,
                             "/SET-ERPIntegration/SET/", svc, "?wsdl"));
    }
  }
  auto urls = r.StringList("loading.import_services");
  l.service_urls = urls.empty() ? def_urls : urls;
  l.service_every_ms = r.DurationMs("loading.service_every", l.service_every_ms, 1000);
  l.disks = r.StringList("loading.disks");
  if (l.disks.empty() && l.server.enabled) l.disks = {"/"};
  l.policy.disk_min_free_fraction =
      static_cast<double>(r.Int("loading.disk_min_free_percent", 5, 0, 99)) / 100.0;
  l.policy.disk_min_free_bytes = static_cast<uint64_t>(
      r.Bytes("loading.disk_min_free", static_cast<int64_t>(l.policy.disk_min_free_bytes), 0));
}

void ReadBundle(ConfigReader& r, AgentConfig* c) {
  BundleConfig& b = c->bundle;
  constexpr int64_t kMaxWindowMs = int64_t{30} * 86'400'000;
  b.window_ms = r.DurationMs("bundle.window", b.window_ms, 60'000);
  if (b.window_ms > kMaxWindowMs) r.Invalid("bundle.window", "at most 30d");
  if (r.Has("bundle.log_globs")) b.log_globs = r.StringList("bundle.log_globs");
  for (const auto& g : b.log_globs) {
    if (!g.starts_with('/')) {
      r.Invalid("bundle.log_globs",
                "each glob must be an absolute path, e.g. \"/var/log/nginx/*.log\"");
    }
  }
  b.log_file_cap_bytes = r.Bytes("bundle.log_file_cap", b.log_file_cap_bytes, 64 * 1024);
  b.log_total_cap_bytes = r.Bytes("bundle.log_total_cap", b.log_total_cap_bytes, 64 * 1024);
  if (r.Has("bundle.config_files")) b.config_files = r.StringList("bundle.config_files");
  b.step_timeout_ms = r.DurationMs("bundle.step_timeout", b.step_timeout_ms, 100);
  b.logs_timeout_ms = r.DurationMs("bundle.logs_timeout", b.logs_timeout_ms, 100);
  b.stop_grace_ms = r.DurationMs("bundle.stop_grace", b.stop_grace_ms, 0);
  if (b.stop_grace_ms > 60'000)
    r.Invalid("bundle.stop_grace", "at most 60s: a stopping agent must not hang");
}

}  // namespace

absl::StatusOr<AgentConfig> LoadAgentConfig(const std::string& path) {
  std::unique_ptr<ConfigReader> r;
  RETURN_IF_ERROR(ConfigReader::Load(path, &r));
  AgentConfig c;
  c.config_path = path;
  c.store_id = r->RequireString("agent.store_id");
  c.agent_id = r->String("agent.agent_id", "");
  c.state_dir = r->String("agent.state_dir", c.state_dir);
  c.log_level = r->String("agent.log_level", c.log_level);
  c.status_interval_ms = r->DurationMs("agent.status_interval", c.status_interval_ms, 1000);

  c.collector_address = r->RequireString("collector.address");
  auto token_file = r->OptionalString("collector.token_file");
  auto token = r->OptionalString("collector.token");
  c.ca_file = r->String("collector.ca_file", "");
  if (!c.ca_file.empty()) {
    // Read here, not when the link starts: a file without a certificate
    // would otherwise make gRPC retry forever with "empty address list".
    auto pem = ReadWholeFile(c.ca_file);
    if (!pem.ok()) {
      r->Invalid("collector.ca_file",
                 Cat(pem.status().message(),
                     ": install the collector's CA certificate there (ca.pem from support)"));
    } else if (auto st = CheckCaPem(*pem); !st.ok()) {
      r->Invalid("collector.ca_file", Cat(c.ca_file, " ", st.message()));
    } else {
      c.ca_pem = std::move(*pem);
    }
  }
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
  c.backoff.overloaded_min_ms =
      r->DurationMs("backoff.overloaded_min", c.backoff.overloaded_min_ms, 0);
  ReadTillWatch(*r, &c);
  ReadLoadingWatch(*r, &c);
  ReadBundle(*r, &c);
  const bool calendar_zone = r->Has("calendar.time_zone");
  auto calendar = StoreCalendar::FromConfig(*r);
  RETURN_IF_ERROR(r->Finish());
  if (!calendar.ok()) return calendar.status();
  c.calendar = std::make_shared<const StoreCalendar>(std::move(*calendar));

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
    if (std::string open = OpenToOthers(*token_file, "the store token"); !open.empty()) {
      return absl::InvalidArgumentError(Cat(path, ": key 'collector.token_file': ", open));
    }
    auto t = ReadWholeFile(*token_file);
    if (!t.ok()) {
      return absl::InvalidArgumentError(
          Cat(path, ": key 'collector.token_file': ", t.status().message()));
    }
    c.token = std::string(Trim(*t));
    c.token_file = *token_file;
  } else if (token) {
    c.token = *token;
  }
  if (c.token.empty()) {
    return absl::InvalidArgumentError(
        Cat(path,
            ": key 'collector.token_file' (or 'collector.token') is required: the store token "
            "printed by 'setdiag-collector token create'"));
  }
  c.loading.time_zone = c.calendar->time_zone_name();
  // SET's naive timestamps are read in the store's zone: set_db.time_zone,
  // else the calendar's; with neither, in the session's TimeZone.
  for (auto* db : {&c.tills.set_db, &c.loading.set_db}) {
    if (*db && (*db)->time_zone.empty() && calendar_zone)
      (*db)->time_zone = c.calendar->time_zone_name();
  }
  if (c.ca_file.empty() && !c.allow_insecure && !IsLoopbackTarget(c.collector_address)) {
    return absl::InvalidArgumentError(
        Cat(path, ": key 'collector.ca_file': required for a non-loopback collector (",
            c.collector_address, "); plaintext needs 'collector.allow_insecure = true'"));
  }
  return c;
}

}  // namespace setdiag::agent
