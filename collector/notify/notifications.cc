#include "collector/notify/notifications.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <map>
#include <optional>
#include <random>
#include <set>

#include "common/digest.h"
#include "common/log.h"
#include "common/mutex.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/utf8.h"
#include "common/version.h"

namespace setdiag::collector {
namespace {

constexpr std::string_view kLog = "notify";
// Same shape as common/backoff.h's defaults. Backoff itself keeps the attempt
// count in memory; here it lives in the row, so retries survive a restart.
constexpr double kBackoffMultiplier = 2.0;
constexpr double kBackoffJitter = 0.3;
// A Wake() is the normal trigger; this only bounds how long a lost one (or a
// row written by another process) can wait, and paces the orphan check.
constexpr int64_t kIdlePollMs = 30'000;
// Kept of a receiver's answer for last_error; the rest is read and dropped so
// the connection stays reusable.
constexpr size_t kMaxResponseKept = 512;
constexpr size_t kMaxErrorBody = 200;

std::once_flag g_curl_init;

}  // namespace

// Mail headers (notifications.h), shared with `setdiag-collector check --send-test`.
bool IsAscii(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

// Header values must not carry line breaks (header injection), and subjects
// are one line by contract; enforce it rather than trust it.
std::string OneLine(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c == '\r' || c == '\n' || c == '\t') c = ' ';
  }
  return out;
}

// RFC 2047 encoded words, each at most 75 characters (45 bytes of input),
// split on UTF-8 character boundaries, folded onto continuation lines.
std::string EncodeHeaderText(std::string_view text) {
  if (IsAscii(text) && text.size() <= 900) return std::string(text);
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    size_t end = i + Utf8PrefixBytes(text.substr(i), 45).size();
    if (end == i) end = std::min(i + 45, text.size());  // not UTF-8; split anywhere
    if (!out.empty()) out += "\r\n ";
    Append(&out, "=?UTF-8?B?", Base64(text.substr(i, end - i)), "?=");
    i = end;
  }
  return out;
}

// "Name <a@b>" or "a@b" -> "a@b".
std::string BareAddress(std::string_view addr) {
  auto lt = addr.find('<');
  auto gt = addr.rfind('>');
  if (lt != std::string_view::npos && gt != std::string_view::npos && gt > lt) {
    return std::string(Trim(addr.substr(lt + 1, gt - lt - 1)));
  }
  return std::string(Trim(addr));
}

// A non-ASCII display name must be an encoded word in a header.
std::string HeaderAddress(std::string_view addr) {
  auto lt = addr.find('<');
  if (lt == std::string_view::npos || lt == 0) return std::string(Trim(addr));
  std::string_view name = Trim(addr.substr(0, lt));
  if (IsAscii(name)) return std::string(Trim(addr));
  return Cat(EncodeHeaderText(name), " ", addr.substr(lt));
}

std::string RfcDate(int64_t ms) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d +0000",
                kDays[static_cast<size_t>(tm.tm_wday)], tm.tm_mday,
                kMonths[static_cast<size_t>(tm.tm_mon)], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                tm.tm_sec);
  return buf;
}

namespace {

// A Message-ID part: letters, digits, '-' and '_' stay; anything else becomes
// "=XX" ('=' is valid atext), so distinct keys stay distinct.
std::string MessageIdPart(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_') {
      out.push_back(c);
    } else {
      out.push_back('=');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 0xF]);
    }
  }
  return out;
}

std::string CrLf(std::string_view text) {
  std::string out;
  out.reserve(text.size() + text.size() / 16);
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\r') continue;
    if (text[i] == '\n') {
      out += "\r\n";
    } else {
      out.push_back(text[i]);
    }
  }
  return out;
}

std::string MailText(const TicketNotice& n) {
  std::string out;
  Append(&out, OneLine(n.subject_ru), "\n\n");
  if (!n.text_ru.empty()) Append(&out, n.text_ru, "\n\n");
  Append(&out, "Тикет №", n.ticket_id, ", магазин ", n.store_id, ", партнёр ", n.partner, ".\n",
         "Письмо отправлено автоматически (setdiag-collector), отвечать на него не нужно.\n\n",
         "----------------------------------------------------------------------\n\n");
  Append(&out, OneLine(n.subject_en), "\n\n");
  if (!n.text_en.empty()) Append(&out, n.text_en, "\n\n");
  Append(&out, "Ticket #", n.ticket_id, ", store ", n.store_id, ", partner ", n.partner, ".\n",
         "This message was sent automatically by setdiag-collector; there is no need to reply.\n");
  return out;
}

std::string WebhookBody(const TicketNotice& n, const std::string& id, int64_t now_ms) {
  nlohmann::ordered_json body;
  body["id"] = id;
  body["type"] = Cat("ticket.", n.type);
  body["occurred_at_ms"] = now_ms;
  body["ticket_id"] = n.ticket_id;
  body["store_id"] = n.store_id;
  body["partner"] = n.partner;
  body["priority"] = n.priority;
  body["subject_en"] = OneLine(n.subject_en);
  body["subject_ru"] = OneLine(n.subject_ru);
  body["text_en"] = n.text_en;
  body["text_ru"] = n.text_ru;
  // What people act on (the stopped tills, the stuck package, ...): the
  // same object as ticket.evidence, at the top for receivers that map fields.
  body["evidence"] = nlohmann::ordered_json(n.evidence);
  body["ticket"] = nlohmann::ordered_json(n.ticket);
  // Invalid UTF-8 from a store must not make the ticket transaction throw.
  return body.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

bool Matches(const NotificationTarget& t, const TicketNotice& n) {
  auto allowed = [](const std::vector<std::string>& list, const std::string& v) {
    return list.empty() || std::find(list.begin(), list.end(), v) != list.end();
  };
  return allowed(t.partners, n.partner) && allowed(t.events, n.type) &&
         n.priority >= t.min_priority;
}

size_t WriteToString(char* data, size_t size, size_t n, void* user) {
  auto* out = static_cast<std::string*>(user);
  size_t bytes = size * n;
  if (out != nullptr && out->size() < kMaxResponseKept) {
    out->append(data, std::min(bytes, kMaxResponseKept - out->size()));
  }
  return bytes;
}

struct ReadState {
  const std::string* data;
  size_t pos = 0;
};

size_t ReadFromString(char* buf, size_t size, size_t n, void* user) {
  auto* st = static_cast<ReadState*>(user);
  size_t len = std::min(size * n, st->data->size() - st->pos);
  std::copy_n(st->data->data() + st->pos, len, buf);
  st->pos += len;
  return len;
}

// A receiver's answer as kept in last_error (and shown by the API as JSON):
// at most kMaxErrorBody bytes of valid UTF-8 on one line.
std::string Printable(std::string_view s) {
  std::string out;
  size_t i = 0;
  while (i < s.size() && out.size() < kMaxErrorBody) {
    const size_t len = Utf8SequenceAt(s, i);
    const auto c = static_cast<unsigned char>(s[i]);
    if (len == 0) {
      out.push_back('?');
      ++i;
    } else if (len == 1) {
      out.push_back(c < 0x20 || c == 0x7F ? ' ' : s[i]);
      ++i;
    } else {
      out.append(s.substr(i, len));
      i += len;
    }
  }
  return std::string(Trim(out));
}

struct Row {
  int64_t id = 0;
  std::string notice_key, target, type, body, subject, text;
  int64_t created_at_ms = 0;
  int64_t attempts = 0;
};

struct AttemptResult {
  bool ok = false;
  std::string error;
  int64_t retry_after_ms = 0;
};

// One easy handle per target: each keeps its connection warm, and carries at
// most one delivery at a time, so a target's rows go out one by one.
struct Channel {
  const NotificationTarget* target = nullptr;
  CURL* easy = nullptr;
  char error[CURL_ERROR_SIZE] = {};
  // The delivery under way, valid while `busy`.
  bool busy = false;
  Row row;
  curl_slist* list = nullptr;  // headers (webhook) or recipients (e-mail)
  std::string response;        // webhook answer, first kMaxResponseKept bytes
  std::string message;         // e-mail as sent
  ReadState read{&message, 0};
  std::string mail_from;

  Channel() = default;
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;
  ~Channel() {
    if (list != nullptr) curl_slist_free_all(list);
    if (easy != nullptr) curl_easy_cleanup(easy);
  }
};

// What the worker shares with Wake(), Stop() and commit callbacks; the
// callbacks may run after the Notifier is gone (the queue outlives it), so
// this owns the multi handle they wake.
struct Shared {
  Shared() : multi(curl_multi_init()) {}
  ~Shared() {
    if (multi != nullptr) curl_multi_cleanup(multi);
  }
  Shared(const Shared&) = delete;
  Shared& operator=(const Shared&) = delete;
  void Wake() {
    if (multi != nullptr) curl_multi_wakeup(multi);
  }

  CURLM* const multi;
  Mutex mu;
  std::set<int64_t> in_flight ABSL_GUARDED_BY(mu);  // outcome submitted, not yet committed
  // Rows whose outcome could not be committed (e.g. a full disk) rest until
  // then instead of being delivered again at once, over and over.
  std::map<int64_t, std::chrono::steady_clock::time_point> resting ABSL_GUARDED_BY(mu);
};

// The options every target's handle has, whatever the kind.
void SetCommonOptions(Channel& ch, int64_t timeout_ms) {
  CURL* h = ch.easy;
  const bool webhook = ch.target->kind == NotificationTarget::Kind::kWebhook;
  // Worker threads must not get SIGALRM from the resolver's timeout.
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ch.error);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_ms));
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeout_ms));
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, webhook ? "http,https" : "smtp,smtps");
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, WriteToString);
}

void SetWebhookOptions(CURL* h, const NotificationTarget& t) {
  static const std::string agent = Cat("setdiag-collector/", kVersion);
  curl_easy_setopt(h, CURLOPT_USERAGENT, agent.c_str());
  curl_easy_setopt(h, CURLOPT_URL, t.url.c_str());
  // A redirect would re-POST the signed body somewhere not configured.
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
}

void SetMailOptions(CURL* h, const NotificationTarget& t) {
  curl_easy_setopt(h, CURLOPT_URL, t.smtp_url.c_str());
  curl_easy_setopt(h, CURLOPT_READFUNCTION, ReadFromString);
  curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
  if (!t.smtp_user.empty()) {
    curl_easy_setopt(h, CURLOPT_USERNAME, t.smtp_user.c_str());
    curl_easy_setopt(h, CURLOPT_PASSWORD, t.smtp_password.c_str());
  }
  // A password never crosses the network in clear: with one, smtp://
  // requires STARTTLS. Without one, encrypt when the server offers it.
  if (t.smtp_url.rfind("smtps://", 0) != 0) {
    curl_easy_setopt(h, CURLOPT_USE_SSL,
                     static_cast<long>(t.smtp_user.empty() ? CURLUSESSL_TRY : CURLUSESSL_ALL));
  }
}

}  // namespace

absl::Status InitNotificationSchema(sql::Db& db) {
  return db.Exec(R"sql(
CREATE TABLE IF NOT EXISTS notifications (
  id INTEGER PRIMARY KEY,
  notice_key TEXT NOT NULL,
  target TEXT NOT NULL,
  type TEXT NOT NULL,
  ticket_id INTEGER NOT NULL,
  body TEXT NOT NULL,
  subject TEXT NOT NULL,
  text TEXT NOT NULL,
  created_at_ms INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_ms INTEGER NOT NULL,
  delivered_at_ms INTEGER,
  gave_up_at_ms INTEGER,
  last_error TEXT NOT NULL DEFAULT '',
  UNIQUE (notice_key, target)
);
CREATE INDEX IF NOT EXISTS notifications_pending ON notifications (target, next_attempt_ms)
  WHERE delivered_at_ms IS NULL AND gave_up_at_ms IS NULL;
)sql");
}

std::string NotificationId(std::string_view notice_key, std::string_view target) {
  return Cat(notice_key, ":", target);
}

absl::Status EnqueueNotification(sql::Db& db, const NotifyConfig& config,
                                 const TicketNotice& notice, int64_t now_ms) {
  // An empty key would make every later notice a duplicate of the first.
  // The type is not checked against the list: rejecting here would roll back
  // the ticket change (and the events with it) over a label.
  if (notice.key.empty() || notice.type.empty()) {
    return absl::InvalidArgumentError(Cat("notification for ticket ", notice.ticket_id,
                                          ": the key and the type must not be empty"));
  }
  std::optional<sql::Stmt> insert;
  std::string subject, text;
  for (const auto& target : config.targets) {
    if (!Matches(target, notice)) continue;
    if (!insert) {
      auto stmt = db.Prepare(
          "INSERT OR IGNORE INTO notifications (notice_key, target, type, ticket_id, body, "
          "subject, text, "
          "created_at_ms, next_attempt_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)");
      if (!stmt.ok()) return stmt.status();
      insert.emplace(std::move(*stmt));
      subject = Cat("[setdiag] ", OneLine(notice.subject_ru), " / ", OneLine(notice.subject_en));
      text = MailText(notice);
    }
    std::string body = WebhookBody(notice, NotificationId(notice.key, target.name), now_ms);
    insert->Reset();
    insert->Bind(1, notice.key)
        .Bind(2, target.name)
        .Bind(3, notice.type)
        .Bind(4, notice.ticket_id)
        .Bind(5, body)
        .Bind(6, subject)
        .Bind(7, text)
        .Bind(8, now_ms);
    RETURN_IF_ERROR(insert->Run());
  }
  return absl::OkStatus();
}

std::string SignBody(const std::string& secret, const std::string& body) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(body.data()), body.size(), mac, &len);
  return "sha256=" + Hex(std::string_view(reinterpret_cast<const char*>(mac), len));
}

struct Notifier::Impl {
  Impl(std::string path, CommitQueue& q, NotifyConfig c, Clock& clk)
      : db_path(std::move(path)), queue(q), config(std::move(c)), clock(clk) {}

  void Run();
  void OpenChannels();
  std::set<int64_t> RowsToSkip();
  absl::Status StartDueRows(int64_t now_ms, const std::set<int64_t>& skip, int64_t* wait_ms);
  void CloseDb();
  bool DriveTransfers();
  bool OpenDb();
  void Poll(int64_t ms);
  absl::StatusOr<std::optional<Row>> DueRow(const std::string& target, int64_t now_ms,
                                            const std::set<int64_t>& skip);
  absl::StatusOr<std::optional<int64_t>> NextDue(const std::string& target);
  absl::Status GiveUpOrphans(int64_t now_ms);
  void Begin(Channel& ch, Row row);
  void Finish(Channel& ch, CURLcode code);
  void AbortAll();
  void Outcome(const Row& row, const AttemptResult& result);
  int64_t BackoffMs(int64_t attempts);
  void Record(int64_t id, CommitQueue::Work work);
  void PrepareWebhook(Channel& ch);
  void PrepareMail(Channel& ch);

  const std::string db_path;
  CommitQueue& queue;
  const NotifyConfig config;
  Clock& clock;

  std::shared_ptr<Shared> shared = std::make_shared<Shared>();
  std::atomic<bool> stopping{false};
  std::atomic<uint64_t> delivered{0}, failed_attempts{0}, given_up{0};

  // Worker thread only. Statements are declared after the connection so they
  // are finalized first.
  std::optional<sql::Db> db;
  std::optional<sql::Stmt> due_stmt, next_stmt, targets_stmt;
  std::map<std::string, std::unique_ptr<Channel>> channels;  // by target name
  std::mt19937_64 rng{std::random_device{}()};
  std::thread thread;
};

void Notifier::Impl::Poll(int64_t ms) {
  // Returns early on socket activity, on a Wake()/Stop()/commit callback
  // (curl_multi_wakeup), or when libcurl's own timers need attention.
  curl_multi_poll(shared->multi, nullptr, 0,
                  static_cast<int>(std::clamp<int64_t>(ms, 0, kIdlePollMs)), nullptr);
}

bool Notifier::Impl::OpenDb() {
  auto opened = sql::Db::Open(db_path);
  absl::Status st = opened.ok() ? opened->Exec("PRAGMA query_only=ON") : opened.status();
  if (st.ok()) {
    auto due = opened->Prepare(
        "SELECT id, notice_key, target, type, body, subject, text, created_at_ms, attempts FROM "
        "notifications "
        "WHERE delivered_at_ms IS NULL AND gave_up_at_ms IS NULL AND target = ?1 AND "
        "next_attempt_ms <= ?2 "
        "ORDER BY next_attempt_ms, id LIMIT ?3");
    auto next = opened->Prepare(
        "SELECT MIN(next_attempt_ms) FROM notifications "
        "WHERE delivered_at_ms IS NULL AND gave_up_at_ms IS NULL AND target = ?1");
    auto targets = opened->Prepare(
        "SELECT target, COUNT(*) FROM notifications WHERE delivered_at_ms IS NULL AND "
        "gave_up_at_ms IS NULL "
        "GROUP BY target");
    st = !due.ok() ? due.status() : !next.ok() ? next.status() : targets.status();
    if (st.ok()) {
      due_stmt.reset();
      next_stmt.reset();
      targets_stmt.reset();
      db = std::move(*opened);
      due_stmt.emplace(std::move(*due));
      next_stmt.emplace(std::move(*next));
      targets_stmt.emplace(std::move(*targets));
      return true;
    }
  }
  log::Error(kLog, Cat("cannot read the notification outbox (", db_path,
                       "), retrying in 5 s: ", st.ToString()));
  return false;
}

absl::StatusOr<std::optional<Row>> Notifier::Impl::DueRow(const std::string& target, int64_t now_ms,
                                                          const std::set<int64_t>& skip) {
  sql::Stmt& s = *due_stmt;
  s.Reset();
  s.Bind(1, target).Bind(2, now_ms).Bind(3, 1 + static_cast<int64_t>(skip.size()));
  std::optional<Row> out;
  while (!out) {
    ASSIGN_OR_RETURN(auto more, s.Step());
    if (!more) break;
    if (skip.contains(s.Int(0))) continue;
    Row r;
    r.id = s.Int(0);
    r.notice_key = s.Text(1);
    r.target = s.Text(2);
    r.type = s.Text(3);
    r.body = s.Text(4);
    r.subject = s.Text(5);
    r.text = s.Text(6);
    r.created_at_ms = s.Int(7);
    r.attempts = s.Int(8);
    out = std::move(r);
  }
  // Resetting ends the read transaction, so checkpoints are not held back.
  s.Reset();
  return out;
}

absl::StatusOr<std::optional<int64_t>> Notifier::Impl::NextDue(const std::string& target) {
  sql::Stmt& s = *next_stmt;
  s.Reset();
  s.Bind(1, target);
  ASSIGN_OR_RETURN(auto row, s.Step());
  std::optional<int64_t> out;
  if (row && !s.IsNull(0)) out = s.Int(0);
  s.Reset();
  return out;
}

// Rows for a target that is no longer configured (the config changed across
// a restart) could never be delivered: give them up at once, loudly.
absl::Status Notifier::Impl::GiveUpOrphans(int64_t now_ms) {
  sql::Stmt& s = *targets_stmt;
  s.Reset();
  std::vector<std::pair<std::string, int64_t>> orphans;
  while (true) {
    ASSIGN_OR_RETURN(auto row, s.Step());
    if (!row) break;
    if (!channels.contains(s.Text(0))) orphans.emplace_back(s.Text(0), s.Int(1));
  }
  s.Reset();
  for (const auto& [target, count] : orphans) {
    log::Error(kLog, Cat("giving up ", count, " notification(s) to target '", target,
                         "', which is no longer in [notify.targets]"));
    given_up += static_cast<uint64_t>(count);
    std::string error = Cat("target '", target, "' is no longer in [notify.targets]");
    queue.Submit(
        [target = target, now_ms, error](sql::Db& w) -> absl::Status {
          auto u = w.Prepare(
              "UPDATE notifications SET gave_up_at_ms = ?2, last_error = ?3 "
              "WHERE target = ?1 AND delivered_at_ms IS NULL AND gave_up_at_ms IS NULL");
          if (!u.ok()) return u.status();
          return u->Bind(1, target).Bind(2, now_ms).Bind(3, error).Run();
        },
        nullptr);
  }
  return absl::OkStatus();
}

void Notifier::Impl::Run() {
  OpenChannels();
  std::optional<int64_t> last_orphan_check;
  while (!stopping) {
    if (!db && !OpenDb()) {
      Poll(5000);
      continue;
    }
    const std::set<int64_t> skip = RowsToSkip();
    const int64_t now = clock.NowMs();
    absl::Status st;
    if (!last_orphan_check || now - *last_orphan_check >= kIdlePollMs) {
      st = GiveUpOrphans(now);
      last_orphan_check = now;
    }
    int64_t wait_ms = kIdlePollMs;
    if (st.ok()) st = StartDueRows(now, skip, &wait_ms);
    if (!st.ok()) {
      log::Error(kLog,
                 Cat("reading the notification outbox failed, retrying in 1 s: ", st.ToString()));
      CloseDb();
      Poll(1000);
      continue;
    }
    // A finished delivery frees its target for the next row.
    if (DriveTransfers() || stopping) continue;
    Poll(wait_ms);
  }
  // Interrupted deliveries are not recorded: the rows stay due and go again
  // (same key, same body) after the next start.
  AbortAll();
}

// One channel per configured target; a target whose handle cannot be made
// gets nothing (logged).
void Notifier::Impl::OpenChannels() {
  for (const auto& t : config.targets) {
    auto ch = std::make_unique<Channel>();
    ch->target = &t;
    ch->easy = curl_easy_init();
    if (ch->easy == nullptr) {
      log::Error(kLog,
                 Cat("cannot create a libcurl handle for target '", t.name, "'; it gets nothing"));
      continue;
    }
    SetCommonOptions(*ch, config.timeout_ms);
    if (t.kind == NotificationTarget::Kind::kWebhook) {
      SetWebhookOptions(ch->easy, t);
    } else {
      SetMailOptions(ch->easy, t);
    }
    channels[t.name] = std::move(ch);
  }
}

// Rows not to start now: those whose outcome is being committed, and those
// resting after a failed commit (a rest that is over ends here).
std::set<int64_t> Notifier::Impl::RowsToSkip() {
  MutexLock lock(&shared->mu);
  std::set<int64_t> skip = shared->in_flight;
  const auto steady_now = std::chrono::steady_clock::now();
  for (auto it = shared->resting.begin(); it != shared->resting.end();) {
    if (it->second <= steady_now) {
      it = shared->resting.erase(it);
    } else {
      skip.insert(it->first);
      ++it;
    }
  }
  return skip;
}

// Each idle target takes its earliest due row: a target that hangs holds up
// only its own rows. Lowers *wait_ms to when the next row is due.
absl::Status Notifier::Impl::StartDueRows(int64_t now_ms, const std::set<int64_t>& skip,
                                          int64_t* wait_ms) {
  for (auto& [name, ch] : channels) {
    if (ch->busy) continue;
    ASSIGN_OR_RETURN(std::optional<Row> row, DueRow(name, now_ms, skip));
    if (row.has_value()) {
      Begin(*ch, std::move(*row));
      if (!ch->busy) *wait_ms = 0;  // failed to start; already recorded
      continue;
    }
    ASSIGN_OR_RETURN(std::optional<int64_t> next, NextDue(name));
    if (!next.has_value()) continue;
    // Due but skipped: its outcome is being committed, and the commit
    // callback wakes us. Nothing in flight means it just became due.
    int64_t until = *next - now_ms;
    if (until <= 0) until = skip.empty() ? 0 : 1000;
    *wait_ms = std::min(*wait_ms, until);
  }
  return absl::OkStatus();
}

// After a read error: deliveries under way are dropped with the connection,
// which the next round opens again.
void Notifier::Impl::CloseDb() {
  AbortAll();
  due_stmt.reset();
  next_stmt.reset();
  targets_stmt.reset();
  db.reset();
}

// Lets libcurl move the transfers on and finishes those that are done;
// true when any did.
bool Notifier::Impl::DriveTransfers() {
  int running = 0;
  curl_multi_perform(shared->multi, &running);
  bool finished = false;
  int left = 0;
  while (CURLMsg* msg = curl_multi_info_read(shared->multi, &left)) {
    if (msg->msg != CURLMSG_DONE) continue;
    CURL* easy = msg->easy_handle;
    CURLcode code = msg->data.result;  // msg is invalid once the handle is removed
    for (auto& [name, ch] : channels) {
      if (ch->easy == easy && ch->busy) Finish(*ch, code);
    }
    finished = true;
  }
  return finished;
}

void Notifier::Impl::AbortAll() {
  for (auto& [name, ch] : channels) {
    if (!ch->busy) continue;
    curl_multi_remove_handle(shared->multi, ch->easy);
    curl_slist_free_all(ch->list);
    ch->list = nullptr;
    ch->busy = false;
  }
}

int64_t Notifier::Impl::BackoffMs(int64_t attempts) {
  double base =
      static_cast<double>(config.initial_backoff_ms) *
      std::pow(kBackoffMultiplier, static_cast<double>(std::clamp<int64_t>(attempts - 1, 0, 62)));
  base = std::min(base, static_cast<double>(config.max_backoff_ms));
  std::uniform_real_distribution<double> jitter(1.0 - kBackoffJitter, 1.0);
  return std::max<int64_t>(1, static_cast<int64_t>(base * jitter(rng)));
}

void Notifier::Impl::Record(int64_t id, CommitQueue::Work work) {
  {
    MutexLock lock(&shared->mu);
    shared->in_flight.insert(id);
  }
  std::shared_ptr<Shared> s = shared;
  bool queued = queue.Submit(std::move(work), [s, id](absl::Status st) {
    if (!st.ok()) {
      log::Warn(kLog,
                Cat("cannot record the outcome of notification ", id,
                    " (it will be attempted again; receivers deduplicate by Idempotency-Key): ",
                    st.ToString()));
    }
    {
      MutexLock lock(&s->mu);
      s->in_flight.erase(id);
      if (!st.ok()) s->resting[id] = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    }
    s->Wake();
  });
  if (!queued) {
    MutexLock lock(&shared->mu);
    shared->in_flight.erase(id);
    log::Warn(kLog, Cat("the writer is stopping; notification ", id,
                        " will be attempted again after a restart"));
  }
}

void Notifier::Impl::PrepareWebhook(Channel& ch) {
  const Row& row = ch.row;
  for (const std::string& line : {
           std::string("Content-Type: application/json"),
           Cat("X-Setdiag-Event: ticket.", row.type),
           Cat("X-Setdiag-Signature: ", SignBody(ch.target->secret, row.body)),
           Cat("X-Setdiag-Timestamp: ", clock.NowMs()),
           Cat("X-Setdiag-Attempt: ", row.attempts + 1),
           Cat("Idempotency-Key: ", NotificationId(row.notice_key, row.target)),
           // No "100-continue" round trip: it costs latency and some
           // receivers never answer it.
           std::string("Expect:"),
       }) {
    ch.list = curl_slist_append(ch.list, line.c_str());
  }
  ch.response.clear();
  curl_easy_setopt(ch.easy, CURLOPT_HTTPHEADER, ch.list);
  curl_easy_setopt(ch.easy, CURLOPT_POSTFIELDS, row.body.c_str());  // not copied: lives in ch.row
  curl_easy_setopt(ch.easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(row.body.size()));
  curl_easy_setopt(ch.easy, CURLOPT_WRITEDATA, &ch.response);
}

void Notifier::Impl::PrepareMail(Channel& ch) {
  const NotificationTarget& t = *ch.target;
  const Row& row = ch.row;
  std::string domain;
  std::string from = BareAddress(t.from);
  if (auto at = from.rfind('@'); at != std::string::npos) {
    for (char c : from.substr(at + 1)) {
      if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '-') {
        domain.push_back(c);
      }
    }
  }
  if (domain.empty()) domain = "setdiag.invalid";
  std::string to;
  for (const auto& a : t.to) Append(&to, to.empty() ? "" : ",\r\n ", HeaderAddress(a));
  std::string& msg = ch.message;
  msg.clear();
  // Date is the enqueue time and Message-ID comes from the key: every retry
  // is the same message, and mail systems can drop duplicates.
  Append(&msg, "Date: ", RfcDate(row.created_at_ms), "\r\n",  //
         "From: ", HeaderAddress(t.from), "\r\n",             //
         "To: ", to, "\r\n",                                  //
         "Subject: ", EncodeHeaderText(OneLine(row.subject)), "\r\n", "Message-ID: <setdiag.",
         MessageIdPart(row.notice_key), ".", MessageIdPart(row.target), "@", domain, ">\r\n",
         "MIME-Version: 1.0\r\n", "Content-Type: text/plain; charset=utf-8\r\n",
         "Content-Transfer-Encoding: base64\r\n", "Auto-Submitted: auto-generated\r\n",
         "X-Setdiag-Event: ticket.", row.type, "\r\n",
         "X-Setdiag-Id: ", OneLine(NotificationId(row.notice_key, row.target)), "\r\n", "\r\n");
  // base64 rather than 8bit: no dependence on the relay's 8BITMIME.
  std::string encoded = Base64(CrLf(row.text));
  for (size_t i = 0; i < encoded.size(); i += 76) Append(&msg, encoded.substr(i, 76), "\r\n");
  ch.read.pos = 0;
  for (const auto& a : t.to)
    ch.list = curl_slist_append(ch.list, Cat("<", BareAddress(a), ">").c_str());
  ch.mail_from = Cat("<", from, ">");
  curl_easy_setopt(ch.easy, CURLOPT_MAIL_FROM, ch.mail_from.c_str());
  curl_easy_setopt(ch.easy, CURLOPT_MAIL_RCPT, ch.list);
  curl_easy_setopt(ch.easy, CURLOPT_READDATA, &ch.read);
  curl_easy_setopt(ch.easy, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(msg.size()));
}

void Notifier::Impl::Begin(Channel& ch, Row row) {
  ch.row = std::move(row);
  ch.error[0] = '\0';
  if (ch.target->kind == NotificationTarget::Kind::kWebhook) {
    PrepareWebhook(ch);
  } else {
    PrepareMail(ch);
  }
  if (CURLMcode mc = curl_multi_add_handle(shared->multi, ch.easy); mc != CURLM_OK) {
    curl_slist_free_all(ch.list);
    ch.list = nullptr;
    Outcome(ch.row, AttemptResult{false, Cat("libcurl: ", curl_multi_strerror(mc)), 0});
    return;
  }
  ch.busy = true;
}

void Notifier::Impl::Finish(Channel& ch, CURLcode code) {
  curl_multi_remove_handle(shared->multi, ch.easy);
  ch.busy = false;
  AttemptResult result;
  long status = 0;
  curl_easy_getinfo(ch.easy, CURLINFO_RESPONSE_CODE, &status);
  if (code != CURLE_OK) {
    result.error =
        ch.error[0] != '\0' ? std::string(ch.error) : std::string(curl_easy_strerror(code));
    if (ch.target->kind == NotificationTarget::Kind::kEmail && status != 0) {
      Append(&result.error, " (SMTP ", status, ")");
    }
  } else if (ch.target->kind == NotificationTarget::Kind::kEmail ||
             (status >= 200 && status <= 299)) {
    result.ok = true;
  } else {
    // Every answer but 2xx is retried, 4xx too: a misconfigured receiver gets
    // fixed, and give_up_after bounds the cost.
    result.error = Cat("HTTP ", status);
    if (std::string body = Printable(ch.response); !body.empty()) Append(&result.error, ": ", body);
    curl_off_t retry_after_s = 0;
    curl_easy_getinfo(ch.easy, CURLINFO_RETRY_AFTER, &retry_after_s);
    if (retry_after_s > 0) result.retry_after_ms = static_cast<int64_t>(retry_after_s) * 1000;
  }
  curl_slist_free_all(ch.list);
  ch.list = nullptr;
  Outcome(ch.row, result);
}

void Notifier::Impl::Outcome(const Row& row, const AttemptResult& result) {
  const std::string id = NotificationId(row.notice_key, row.target);
  const int64_t now = clock.NowMs();
  const int64_t attempts = row.attempts + 1;
  if (result.ok) {
    ++delivered;
    log::Debug(kLog, Cat("delivered ", id, " (attempt ", attempts, ")"));
    Record(row.id, [rid = row.id, now](sql::Db& w) -> absl::Status {
      auto s = w.Prepare(
          "UPDATE notifications SET delivered_at_ms = ?2, attempts = attempts + 1, last_error = '' "
          "WHERE id = ?1 AND delivered_at_ms IS NULL");
      if (!s.ok()) return s.status();
      return s->Bind(1, rid).Bind(2, now).Run();
    });
    return;
  }

  ++failed_attempts;
  const int64_t deadline = row.created_at_ms + config.give_up_after_ms;
  if (now >= deadline) {
    ++given_up;
    log::Error(kLog, Cat("giving up on notification ", id, " to target '", row.target, "' after ",
                         attempts, " attempts over ", (now - row.created_at_ms) / 1000,
                         " s; last error: ", result.error));
    Record(row.id, [rid = row.id, now, error = result.error](sql::Db& w) -> absl::Status {
      auto s = w.Prepare(
          "UPDATE notifications SET gave_up_at_ms = ?2, attempts = attempts + 1, last_error = ?3 "
          "WHERE id = ?1 AND delivered_at_ms IS NULL");
      if (!s.ok()) return s.status();
      return s->Bind(1, rid).Bind(2, now).Bind(3, error).Run();
    });
    return;
  }
  int64_t delay =
      std::max(BackoffMs(attempts), std::min(result.retry_after_ms, config.max_backoff_ms));
  // The last attempt is made at the give-up deadline, not skipped past it.
  const int64_t next = std::min(now + delay, deadline);
  log::Warn(kLog, Cat("delivery of ", id, " to target '", row.target, "' failed (attempt ",
                      attempts, "): ", result.error, "; next attempt in ", next - now, " ms"));
  Record(row.id, [rid = row.id, next, error = result.error](sql::Db& w) -> absl::Status {
    auto s = w.Prepare(
        "UPDATE notifications SET attempts = attempts + 1, next_attempt_ms = ?2, last_error = ?3 "
        "WHERE id = ?1 AND delivered_at_ms IS NULL");
    if (!s.ok()) return s.status();
    return s->Bind(1, rid).Bind(2, next).Bind(3, error).Run();
  });
}

Notifier::Notifier(std::string db_path, CommitQueue& queue, NotifyConfig config, Clock& clock) {
  // Before any handle exists (the Impl makes the multi handle).
  std::call_once(g_curl_init, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  impl_ = std::make_unique<Impl>(std::move(db_path), queue, std::move(config), clock);
}

Notifier::~Notifier() { Stop(); }

void Notifier::Start() {
  if (impl_->thread.joinable() || impl_->stopping) return;
  if (impl_->shared->multi == nullptr) {
    log::Error(kLog, "cannot create a libcurl multi handle; notifications will not be sent");
    return;
  }
  impl_->thread = std::thread([this] { impl_->Run(); });
}

void Notifier::Stop() {
  impl_->stopping = true;
  impl_->shared->Wake();
  if (impl_->thread.joinable()) impl_->thread.join();
  // Channels go with the worker; the multi handle may outlive us in Shared.
  impl_->channels.clear();
}

void Notifier::Wake() { impl_->shared->Wake(); }

Notifier::Stats Notifier::stats() const {
  Stats s;
  s.delivered = impl_->delivered.load();
  s.failed_attempts = impl_->failed_attempts.load();
  s.given_up = impl_->given_up.load();
  return s;
}

}  // namespace setdiag::collector
