#include "collector/config/collector_config.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <memory>

#include "common/config.h"
#include "common/files.h"
#include "common/host_port.h"
#include "common/status.h"
#include "common/strings.h"

namespace setdiag::collector {
namespace {
bool IsLoopbackListen(const std::string& listen) {
  auto parsed = ParseListen(listen);
  return parsed.ok() && parsed->loopback;
}
}  // namespace

absl::StatusOr<ListenAddress> ParseListen(const std::string& listen) {
  ASSIGN_OR_RETURN(HostPort hp,
                   ParseHostPort(listen, {.host = HostForm::kIpLiteral, .allow_port_zero = true}));
  ListenAddress out;
  out.host = hp.host == "localhost" ? "127.0.0.1" : hp.host;
  out.port = hp.port;
  out.loopback = IsLoopbackHost(out.host);
  return out;
}

namespace {

// "HH:MM" -> minutes since midnight, or -1.
int ParseClockTime(const std::string& s) {
  int h = 0, m = 0;
  if (s.size() != 5 || s[2] != ':' || std::sscanf(s.c_str(), "%2d:%2d", &h, &m) != 2 || h > 24 ||
      m > 59) {
    return -1;
  }
  return h * 60 + m;
}

SlaSpan ReadSpan(ConfigReader& r, const std::string& key, SlaSpan def) {
  SlaSpan s = def;
  s.duration_ms = r.DurationMs(key, def.duration_ms, 60'000);
  s.business = r.Bool(key + "_business", def.business);
  return s;
}

std::string ReadSecretFile(ConfigReader& r, const std::string& key) {
  auto path = r.OptionalString(key);
  if (!path) return {};
  auto text = ReadWholeFile(*path);
  if (!text.ok()) {
    r.Invalid(key, Cat("cannot read '", *path, "': ", std::string(text.status().message())));
    return {};
  }
  return std::string(Trim(*text));
}

int NoPassphrase(char*, int, int, void*) { return 0; }

// Reads the certificate and key files and checks that gRPC can use them, so
// that a wrong file is a config error naming its key instead of a failure to
// listen. The same checks as `check` (TlsLines in check.cc), which reports
// them with hints instead of refusing.
void ReadTlsFiles(ConfigReader& r, CollectorConfig* c) {
  auto cert = ReadWholeFile(c->tls_cert_file);
  if (!cert.ok()) {
    r.Invalid("grpc.tls_cert_file",
              std::string(cert.status().message()));  // "cannot read PATH: why"
  }
  auto key = ReadWholeFile(c->tls_key_file);
  if (!key.ok()) {
    r.Invalid("grpc.tls_key_file", std::string(key.status().message()));
  }
  if (!cert.ok() || !key.ok()) return;
  ERR_clear_error();
  std::unique_ptr<X509, decltype(&X509_free)> leaf(nullptr, &X509_free);
  {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(
        BIO_new_mem_buf(cert->data(), static_cast<int>(cert->size())), &BIO_free);
    leaf.reset(PEM_read_bio_X509(bio.get(), nullptr, NoPassphrase, nullptr));
  }
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> pkey(nullptr, &EVP_PKEY_free);
  {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(
        BIO_new_mem_buf(key->data(), static_cast<int>(key->size())), &BIO_free);
    pkey.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  }
  ERR_clear_error();
  if (!leaf) {
    r.Invalid("grpc.tls_cert_file",
              Cat("'", c->tls_cert_file,
                  "' holds no PEM certificate (-----BEGIN CERTIFICATE-----): put the "
                  "collector's certificate there, then any intermediate certificates"));
  }
  if (!pkey) {
    r.Invalid("grpc.tls_key_file",
              Cat("'", c->tls_key_file,
                  "' is not a PEM private key (-----BEGIN PRIVATE KEY-----), or it is protected "
                  "by a passphrase (remove it: openssl pkey -in KEY -out KEY.plain)"));
  }
  if (leaf && pkey && X509_check_private_key(leaf.get(), pkey.get()) != 1) {
    ERR_clear_error();
    r.Invalid("grpc.tls_key_file",
              Cat("'", c->tls_key_file, "' does not match the certificate in '", c->tls_cert_file,
                  "' (grpc.tls_cert_file): put the key the certificate was issued for here "
                  "(compare openssl x509 "
                  "-noout -pubkey -in CERT with openssl pkey -pubout -in KEY)"));
  }
  c->tls_cert_pem = std::move(*cert);
  c->tls_key_pem = std::move(*key);
}

void ReadFilters(ConfigReader& r, const std::string& prefix, NotificationTarget* t) {
  t->partners = r.StringList(prefix + ".partners");
  t->events = r.StringList(prefix + ".events");
  static const std::vector<std::string> kTypes = {"opened",    "reopened",    "recurred",
                                                  "escalated", "sla_warning", "sla_breached",
                                                  "cleared",   "resolved"};
  for (const auto& e : t->events) {
    if (std::find(kTypes.begin(), kTypes.end(), e) == kTypes.end()) {
      r.Invalid(prefix + ".events",
                Cat("unknown event '", e,
                    "' (opened, reopened, recurred, escalated, sla_warning, sla_breached, "
                    "cleared, resolved)"));
    }
  }
  std::string min = r.String(prefix + ".min_priority", "normal");
  if (min == "normal")
    t->min_priority = 1;
  else if (min == "important")
    t->min_priority = 2;
  else if (min == "critical")
    t->min_priority = 3;
  else
    r.Invalid(prefix + ".min_priority", "expected normal, important or critical");
}

void LoadTicketSections(ConfigReader& r, CollectorConfig* c) {
  TicketPolicy& p = c->tickets;
  p.auto_resolve_after_ms = r.DurationMs("tickets.auto_resolve_after", p.auto_resolve_after_ms, 0);
  p.reopen_within_ms = r.DurationMs("tickets.reopen_within", p.reopen_within_ms, 0);
  p.unreachable_after_ms = r.DurationMs("tickets.unreachable_after", p.unreachable_after_ms, 1000);
  p.late_after_ms = r.DurationMs("tickets.late_after", p.late_after_ms, 1000);
  p.late_settle_ms = r.DurationMs("tickets.late_settle", p.late_settle_ms, 0);
  p.default_tariff = r.String("tickets.default_tariff", p.default_tariff);
  c->tick_interval_ms = r.DurationMs("tickets.tick_interval", c->tick_interval_ms, 100);

  c->calendar_dir = r.String("sla.calendar_dir", c->calendar_dir);
  c->business_zone = r.String("sla.time_zone", c->business_zone);
  std::string start = r.String("sla.business_start", "10:00"),
              end = r.String("sla.business_end", "19:00");
  c->business_start_minute = ParseClockTime(start);
  c->business_end_minute = ParseClockTime(end);
  if (c->business_start_minute < 0) r.Invalid("sla.business_start", "expected HH:MM");
  if (c->business_end_minute < 0) r.Invalid("sla.business_end", "expected HH:MM");
  if (c->business_start_minute >= 0 && c->business_end_minute >= 0 &&
      c->business_end_minute <= c->business_start_minute + 60) {
    r.Invalid("sla.business_end", "must be more than an hour after sla.business_start");
  }

  p.tariffs["expert"] = ExpertPolicy();
  p.tariffs["free"] = FreePolicy();
  for (const auto& name : r.TableKeys("tariffs")) {
    if (!IsValidIdentifier(name)) {
      r.Invalid(Cat("tariffs.", name), "a tariff name is 1..128 characters of [A-Za-z0-9._-]");
      continue;
    }
    const std::string k = Cat("tariffs.", name, ".");
    SlaPolicy def = p.tariffs.contains(name) ? p.tariffs[name] : ExpertPolicy();
    SlaPolicy s = def;
    s.tariff = name;
    s.registration = ReadSpan(r, k + "registration", def.registration);
    s.first_response_critical =
        ReadSpan(r, k + "first_response_critical", def.first_response_critical);
    s.first_response = ReadSpan(r, k + "first_response", def.first_response);
    s.workaround_working_days =
        static_cast<int>(r.Int(k + "workaround_working_days", def.workaround_working_days, 0, 365));
    s.warn_fraction =
        static_cast<double>(
            r.Int(k + "warn_at_percent", static_cast<int64_t>(def.warn_fraction * 100), 1, 99)) /
        100.0;
    p.tariffs[name] = s;
  }
  if (!p.tariffs.contains(p.default_tariff)) {
    r.Invalid("tickets.default_tariff", Cat("no tariff '", p.default_tariff,
                                            "' (expert, free, or a [tariffs.<name>] table)"));
  }

  NotifyConfig& n = c->notify;
  n.timeout_ms = r.DurationMs("notify.timeout", n.timeout_ms, 100);
  n.initial_backoff_ms = r.DurationMs("notify.initial_backoff", n.initial_backoff_ms, 10);
  n.max_backoff_ms = r.DurationMs("notify.max_backoff", n.max_backoff_ms, 10);
  n.give_up_after_ms = r.DurationMs("notify.give_up_after", n.give_up_after_ms, 1000);
  for (const auto& name : r.TableKeys("notify.webhook")) {
    const std::string k = Cat("notify.webhook.", name);
    NotificationTarget t;
    t.name = Cat("webhook:", name);
    t.kind = NotificationTarget::Kind::kWebhook;
    t.url = r.RequireString(k + ".url");
    if (!t.url.empty() && !t.url.starts_with("http://") && !t.url.starts_with("https://")) {
      r.Invalid(k + ".url", "expected an http:// or https:// URL");
    }
    t.secret = ReadSecretFile(r, k + ".secret_file");
    if (t.secret.empty())
      r.Invalid(k + ".secret_file", "a webhook needs a signing secret (a file holding it)");
    ReadFilters(r, k, &t);
    n.targets.push_back(std::move(t));
  }
  for (const auto& name : r.TableKeys("notify.email")) {
    const std::string k = Cat("notify.email.", name);
    NotificationTarget t;
    t.name = Cat("email:", name);
    t.kind = NotificationTarget::Kind::kEmail;
    t.smtp_url = r.RequireString(k + ".smtp_url");
    if (!t.smtp_url.empty() && !t.smtp_url.starts_with("smtp://") &&
        !t.smtp_url.starts_with("smtps://")) {
      r.Invalid(k + ".smtp_url", "expected smtp://host:port or smtps://host:port");
    }
    t.smtp_user = r.String(k + ".user", "");
    t.smtp_password = ReadSecretFile(r, k + ".password_file");
    if (!t.smtp_user.empty() && t.smtp_password.empty()) {
      r.Invalid(k + ".password_file", "an SMTP 'user' needs its password in a file");
    }
    t.from = r.RequireString(k + ".from");
    t.to = r.StringList(k + ".to");
    if (t.to.empty()) r.Invalid(k + ".to", "at least one recipient");
    ReadFilters(r, k, &t);
    n.targets.push_back(std::move(t));
  }
}

}  // namespace

absl::StatusOr<CollectorConfig> LoadCollectorConfig(const std::string& path, bool read_tls_files) {
  std::unique_ptr<ConfigReader> r;
  RETURN_IF_ERROR(ConfigReader::Load(path, &r));
  CollectorConfig c;
  c.data_dir = r->String("collector.data_dir", c.data_dir);
  c.log_level = r->String("collector.log_level", c.log_level);
  c.grpc_listen = r->String("grpc.listen", c.grpc_listen);
  c.tls_cert_file = r->String("grpc.tls_cert_file", "");
  c.tls_key_file = r->String("grpc.tls_key_file", "");
  c.allow_insecure = r->Bool("grpc.allow_insecure", false);
  c.max_message_bytes = r->Bytes("grpc.max_message_bytes", c.max_message_bytes, 64 * 1024);
  c.http_listen = r->String("http.listen", c.http_listen);
  c.http_workers = r->Int("http.workers", c.http_workers, 1, 64);
  c.console_listen = r->String("console.listen", "");
  c.max_pending_events = static_cast<size_t>(r->Int(
      "ingest.max_pending_events", static_cast<int64_t>(c.max_pending_events), 1000, 100'000'000));
  c.limits.max_events_per_batch =
      static_cast<size_t>(r->Int("ingest.max_events_per_batch",
                                 static_cast<int64_t>(c.limits.max_events_per_batch), 1, 100'000));
  c.limits.max_payload_bytes = static_cast<size_t>(
      r->Bytes("ingest.max_payload_bytes", static_cast<int64_t>(c.limits.max_payload_bytes), 1024));
  c.limits.status_interval_s = static_cast<uint32_t>(
      r->DurationMs("ingest.status_interval", int64_t{c.limits.status_interval_s} * 1000, 1000) /
      1000);
  c.limits.hello_timeout_ms =
      r->DurationMs("ingest.hello_timeout", c.limits.hello_timeout_ms, 1000);
  if (c.limits.hello_timeout_ms > 600'000)
    r->Invalid("ingest.hello_timeout", "must be at most 10m");
  c.limits.idle_timeout_ms = r->DurationMs("ingest.idle_timeout", c.limits.idle_timeout_ms, 0);
  if (c.limits.idle_timeout_ms != 0 &&
      (c.limits.idle_timeout_ms < 1000 || c.limits.idle_timeout_ms > 3'600'000)) {
    r->Invalid("ingest.idle_timeout",
               "must be 1s..1h, or 0s for 3 x ingest.status_interval + 10 s");
  }
  LoadTicketSections(*r, &c);
  c.bundle_dir = r->String("bundles.dir", "");
  c.bundles.keep_for_ms = r->DurationMs("bundles.keep_for", c.bundles.keep_for_ms, 60'000);
  c.bundles.max_total_bytes = static_cast<uint64_t>(r->Bytes(
      "bundles.max_total_bytes", static_cast<int64_t>(c.bundles.max_total_bytes), 1024 * 1024));
  c.bundles.max_bundle_bytes = static_cast<uint64_t>(r->Bytes(
      "bundles.max_bundle_bytes", static_cast<int64_t>(c.bundles.max_bundle_bytes), 1024 * 1024));
  c.bundles.sweep_interval_ms =
      r->DurationMs("bundles.sweep_interval", c.bundles.sweep_interval_ms, 100);
  if (read_tls_files && !c.tls_cert_file.empty() && !c.tls_key_file.empty()) ReadTlsFiles(*r, &c);
  RETURN_IF_ERROR(r->Finish());
  if (c.log_level != "debug" && c.log_level != "info" && c.log_level != "warn" &&
      c.log_level != "error") {
    return absl::InvalidArgumentError(
        Cat(path, ": key 'collector.log_level': expected debug, info, warn or error"));
  }
  if (c.max_message_bytes > 64 * 1024 * 1024) {
    return absl::InvalidArgumentError(Cat(path, ": key 'grpc.max_message_bytes': at most 64MiB"));
  }
  if (c.bundles.max_bundle_bytes > c.bundles.max_total_bytes) {
    return absl::InvalidArgumentError(
        Cat(path, ": key 'bundles.max_bundle_bytes': must not exceed bundles.max_total_bytes"));
  }
  if (!ParseListen(c.http_listen).ok()) {
    return absl::InvalidArgumentError(
        Cat(path, ": key 'http.listen': ", ParseListen(c.http_listen).status().message()));
  }
  if (c.tls_cert_file.empty() != c.tls_key_file.empty()) {
    return absl::InvalidArgumentError(
        Cat(path, ": keys 'grpc.tls_cert_file' and 'grpc.tls_key_file' go together"));
  }
  if (!c.console_listen.empty()) {
    auto listen = ParseListen(c.console_listen);
    if (!listen.ok())
      return absl::InvalidArgumentError(
          Cat(path, ": key 'console.listen': ", listen.status().message()));
    if (!c.tls() && !listen->loopback) {
      return absl::InvalidArgumentError(
          Cat(path, ": key 'console.listen' = '", c.console_listen,
              "' is not loopback: the console serves HTTPS with the collector's certificate; set "
              "'grpc.tls_cert_file' and 'grpc.tls_key_file'"));
    }
    if (c.console_listen == c.http_listen)
      return absl::InvalidArgumentError(
          Cat(path, ": key 'console.listen': the same address as http.listen"));
  }
  if (!c.tls() && !c.allow_insecure && !IsLoopbackListen(c.grpc_listen)) {
    return absl::InvalidArgumentError(
        Cat(path, ": key 'grpc.listen' = '", c.grpc_listen,
            "' is not loopback: set 'grpc.tls_cert_file' and 'grpc.tls_key_file', or "
            "'grpc.allow_insecure = true' to accept plaintext"));
  }
  return c;
}

}  // namespace setdiag::collector
