#pragma once
// Ticket notifications: a durable outbox in the collector's database and a
// worker that delivers it (docs/notifications.md).
//
// The ticket engine calls EnqueueNotification() inside the same transaction
// that changes the ticket, so a notification exists if and only if the
// change was committed, and its idempotency key (ticket, what happened)
// makes a replayed change add nothing. The Notifier thread reads due rows
// through its own read connection, delivers them (webhook: JSON POST signed
// with HMAC-SHA256; e-mail: SMTP through libcurl), and records the outcome
// through the CommitQueue (the single writer). Failed deliveries are retried
// with exponential backoff and jitter until `give_up_after`.
//
// Delivery is at least once: a receiver may see the same notification again
// (same Idempotency-Key, same body) when the collector stops or the outcome
// cannot be committed after a delivery; it must deduplicate by the key.

#include <atomic>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "collector/store/commit_queue.h"
#include "common/clock.h"
#include "common/sqlite.h"

namespace setdiag::collector {

struct NotificationTarget {
  enum class Kind { kWebhook, kEmail };
  // Unique; stored with each notification and part of its idempotency key.
  // collector_config.cc names them "webhook:<table>" / "email:<table>".
  std::string name;
  Kind kind = Kind::kWebhook;
  // Webhook.
  std::string url;     // http:// or https://; may carry a token: never logged
  std::string secret;  // HMAC-SHA256 key; never logged
  // E-mail.
  std::string smtp_url;  // smtp://host:port (STARTTLS when offered) or smtps://host:port
  std::string smtp_user, smtp_password;  // password never logged
  std::string from;                      // "addr@host" or "Name <addr@host>"
  std::vector<std::string> to;           // same forms as `from`
  // Filters: empty means all.
  std::vector<std::string> partners;
  std::vector<std::string> events;  // notice types, e.g. {"opened","escalated","sla_breached"}
  int min_priority = 1;             // 1 normal, 2 important, 3 critical
};

struct NotifyConfig {
  std::vector<NotificationTarget> targets;
  int64_t timeout_ms = 10'000;  // whole attempt: connect, send, answer
  int64_t initial_backoff_ms = 1'000;
  int64_t max_backoff_ms = 300'000;
  // Counted from the enqueue; the last attempt is made at this age at the
  // latest, and if it fails the notification is given up.
  int64_t give_up_after_ms = 3 * 24 * 3600 * 1000LL;
};

// What happened to a ticket. `type` is one of: opened, reopened, recurred
// (the condition came back before the ticket resolved), escalated,
// sla_warning, sla_breached, cleared, resolved.
struct TicketNotice {
  std::string key;  // unique per (ticket, happening), e.g. "t42-opened", "t42-escalated-3"
  std::string type;
  int64_t ticket_id = 0;
  std::string store_id, partner;
  int priority = 1;
  std::string subject_en, subject_ru;  // one line each
  std::string text_en, text_ru;        // a few lines each, for e-mail
  nlohmann::json ticket;               // the ticket as the API shows it
  nlohmann::json evidence;             // collector/tickets/ticket_evidence.h; null: none
};

// Creates the notifications table and its index if missing. Writer thread.
absl::Status InitNotificationSchema(sql::Db& db);
// One row per matching target; a key already present adds nothing. Runs on
// the writer thread inside the caller's transaction. Call Notifier::Wake()
// after the transaction commits.
absl::Status EnqueueNotification(sql::Db& db, const NotifyConfig& config,
                                 const TicketNotice& notice, int64_t now_ms);

// The idempotency key of one notice for one target: "<notice key>:<target>".
// Sent as the Idempotency-Key header and the body's "id"; the e-mail
// Message-ID is derived from it.
std::string NotificationId(std::string_view notice_key, std::string_view target);

// The signature header value of a webhook body:
// "sha256=<lowercase hex of HMAC-SHA256(secret, body)>". Exposed for tests and docs.
std::string SignBody(const std::string& secret, const std::string& body);

// Mail headers, as the notifier writes them (also for the collector check's
// test mail): whether text is ASCII; a line with CR, LF and TAB made spaces
// (no header injection); RFC 2047 encoded words on UTF-8 boundaries, folded;
// "Name <a@b>" -> "a@b"; an address with a non-ASCII display name encoded;
// an RFC 5322 date in UTC.
bool IsAscii(std::string_view s);
std::string OneLine(std::string_view s);
std::string EncodeHeaderText(std::string_view text);
std::string BareAddress(std::string_view addr);
std::string HeaderAddress(std::string_view addr);
std::string RfcDate(int64_t ms);

// Delivers the outbox. One worker thread drives all targets at once through
// libcurl's multi interface, each target one delivery at a time in order of
// due time, so a receiver that hangs delays only its own notifications.
// Start (once), Stop, Wake and stats may be called from any thread. The
// CommitQueue must outlive the Notifier's Stop().
class Notifier {
 public:
  // `db_path`: the collector's database, opened read-only by the worker.
  Notifier(std::string db_path, CommitQueue& queue, NotifyConfig config, Clock& clock);
  ~Notifier();
  void Start();
  // Returns promptly even while a delivery hangs (it is aborted and retried
  // after the next start).
  void Stop();
  // Something was enqueued and committed: look now instead of at the next
  // retry time. Cheap; callable from any thread.
  void Wake();

  // Counted by this process since Start, at attempt time.
  struct Stats {
    uint64_t delivered = 0, failed_attempts = 0, given_up = 0;
  };
  Stats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace setdiag::collector
