#pragma once
// `setdiag-collector check`: the preflight support runs on the collector's
// server (docs/collector-check.md). It reads the collector's config and
// prints one line per check, each ✓ (ok), ✗ (fails: with what to do) or !
// (works, but look at it), in Russian or English, or JSON for scripts, in
// the same form as `setdiag-agent check`.
//
// What it checks, in order: the config (the loader names the line and key
// of a bad or unknown key), the listening addresses grpc.listen and
// http.listen (bound and closed at once; one the running collector holds is
// a "!", found by connecting), the TLS certificate and key (they load and
// belong together) and the certificate's expiry (✗ expired, ! within 30
// days), the production calendars (✗ this year missing, ! next year
// missing), the database in collector.data_dir (opened read-write, a write
// lock taken and rolled back: nothing is written), and each notification
// target: a webhook's receiver accepts a TCP connection (and a TLS
// handshake for https), an SMTP server answers with its 220 greeting.
//
// Without `send_test` it sends nothing and changes nothing. With it, each
// webhook gets one signed test POST (type "setdiag.test", "test": true) and
// each e-mail target one test message, both marked TEST / ТЕСТ; neither
// goes through the notification outbox.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "collector/config/collector_config.h"
#include "common/check_report.h"
#include "common/clock.h"

namespace setdiag::collector {

using setdiag::CheckLine;
using setdiag::CheckVerdict;
using setdiag::PrintChecks;

struct CheckOptions {
  // Send one test notification to every target.
  bool send_test = false;
  // Where the calendars are when sla.calendar_dir is the default and absent
  // and none are installed beside the binary (the collector's own rule).
  std::string source_calendar_dir;
};

// The whole command: loads the config at `config_path`, runs the checks and
// prints them. Returns the exit code: 0 nothing failed, 1 a check failed, 2
// the config does not load (its line is printed as ✗ and the loader's
// message goes to stderr as for every subcommand).
int RunCheckCommand(const std::string& config_path, const CheckOptions& options, bool ru, bool json,
                    Clock& clock);

// Every check against a config that loaded, in order.
std::vector<CheckLine> RunChecks(const CollectorConfig& cfg, const std::string& config_path,
                                 const CheckOptions& options, Clock& clock);

// ---- The pieces, exposed for tests. ----

// The config line for a file that did not load.
CheckLine ConfigFailedLine(const std::string& config_path, const absl::Status& status);

// The certificate's validity at `now_ms`: ✗ expired or not yet valid, !
// expiring within kCertWarnDays, ✓ otherwise; the line names the date (UTC).
constexpr int64_t kCertWarnDays = 30;
CheckLine CertExpiryLine(const std::string& cert_path, int64_t not_before_ms, int64_t not_after_ms,
                         int64_t now_ms);

// The TLS certificate chain and key as PEM text: a "grpc.tls" line (they
// parse and the key belongs to the first certificate) and, when the
// certificate parsed, a "grpc.tls_expiry" line.
std::vector<CheckLine> TlsLines(const std::string& cert_path, const std::string& cert_pem,
                                const std::string& key_path, const std::string& key_pem,
                                int64_t now_ms);

// Which of this year and the next the calendars cover: ✗ this year
// missing, ! only next year missing.
CheckLine CalendarLine(const std::string& dir, const std::vector<int64_t>& years,
                       int64_t this_year);

// The calendar directory the collector loads: sla.calendar_dir, or, when
// that is the default and absent, share/setdiag/calendars beside the
// binary, then `source_dir`.
std::string ResolveCalendarDir(const std::string& configured, const std::string& source_dir);

// What binding one listening address found.
struct ListenProbe {
  int bind_errno = 0;     // 0: it could be bound (and was closed again)
  bool answered = false;  // bind failed and a TCP connect to it succeeded
  bool collector =
      false;  // what answered is setdiag-collector (its HTTP Server header or the program's name)
  std::string owner;  // "python3 (pid 123)" when the owning process could be found
  std::string error;  // set when the address cannot be used at all (not host:port, unknown host)
};
// `collector_elsewhere`: the other listening address is held by the running
// collector, so an unidentified program answering here is taken to be it.
CheckLine ListenLine(const std::string& key, const std::string& listen, const ListenProbe& probe,
                     bool collector_elsewhere);
// Binds and closes `listen` (host:port), and if that fails connects to it
// and looks for the program holding it; with `http`, asks GET /healthz
// whether it is the collector's admin API.
ListenProbe ProbeListen(const std::string& listen, bool http, int64_t timeout_ms);

// The process listening on TCP `port` (from /proc), when this user may see it.
struct SocketOwner {
  int pid = 0;
  std::string program;  // basename of argv[0]
};
std::optional<SocketOwner> FindListener(uint16_t port);

// The database in `data_dir`: writable and opening read-write, or not yet
// there with a place to create it.
CheckLine DatabaseLine(const std::string& data_dir, const std::string& db_path);

// host and port of a notification target's URL (http, https, smtp, smtps;
// default ports 80, 443, 25, 465). Never the path or user: a URL may carry
// a token or a password.
struct Endpoint {
  std::string scheme, host;
  uint16_t port = 0;
  bool tls = false;             // https, smtps
  std::string Display() const;  // "https://host:443"
};
absl::StatusOr<Endpoint> ParseTargetUrl(std::string_view url);

// An SMTP reply read so far: complete once a line "ddd text" (not "ddd-")
// arrived; code -1 when what arrived is not an SMTP reply.
struct SmtpReply {
  bool complete = false;
  int code = 0;
  std::string text;  // the first line, without CR LF
};
SmtpReply ParseSmtpReply(std::string_view data);

// The test notifications (--send-test).
std::string TestWebhookBody(const std::string& id, int64_t now_ms, const std::string& host_name);
// The whole message (headers and base64 body, CR LF) for `target`.
std::string TestMailMessage(const std::string& from, const std::vector<std::string>& to,
                            const std::string& id, const std::string& target_name, int64_t now_ms,
                            const std::string& host_name);
extern const char kTestSubject[];  // "[setdiag] ТЕСТ: ... / TEST: ..."

}  // namespace setdiag::collector
