#include "collector/commands/check.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "collector/notify/notifications.h"
#include "collector/tickets/production_calendar.h"
#include "common/digest.h"
#include "common/files.h"
#include "common/host_port.h"
#include "common/strings.h"
#include "common/time_format.h"
#include "common/version.h"

namespace setdiag::collector {
namespace {

using json = nlohmann::json;

constexpr int64_t kDayMs = 86'400'000;
// Connects and greetings wait at most this long (or notify.timeout if shorter).
constexpr int64_t kProbeTimeoutMs = 5'000;
constexpr size_t kMaxShown = 160;

CheckLine Warn(std::string id, std::string en, std::string ru, std::string fix_en,
               std::string fix_ru) {
  return CheckFail(std::move(id), std::move(en), std::move(ru), std::move(fix_en),
                   std::move(fix_ru), CheckVerdict::kWarn);
}

std::string EnDays(int64_t n) { return Cat(n, n == 1 ? " day" : " days"); }

std::string RuDays(int64_t n) {
  const int64_t m100 = n % 100, m10 = n % 10;
  const char* word = (m100 >= 11 && m100 <= 14) ? "дней"
                     : m10 == 1                 ? "день"
                     : (m10 >= 2 && m10 <= 4)   ? "дня"
                                                : "дней";
  return Cat(n, " ", word);
}

std::string UtcText(int64_t ms) { return FormatUnixMs(ms, "%Y-%m-%d %H:%M UTC"); }

// At most kMaxShown bytes of what a server said, on one line, no control characters.
std::string Shown(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (out.size() >= kMaxShown) {
      out += "...";
      break;
    }
    const auto u = static_cast<unsigned char>(c);
    out.push_back(u < 0x20 || u == 0x7F ? ' ' : c);
  }
  return std::string(Trim(out));
}

std::string ErrnoText(int err) { return std::strerror(err); }

std::string OpenSslError() {
  unsigned long e = ERR_get_error();
  if (e == 0) return "unknown error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

// ---- sockets ----

struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(o.fd) { o.fd = -1; }
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      if (fd >= 0) ::close(fd);
      fd = o.fd;
      o.fd = -1;
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  bool ok() const { return fd >= 0; }
};

void SetIoTimeout(int fd, int64_t ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms % 1000) * 1000);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// A TCP connection to one address within `timeout_ms`; the socket comes back
// blocking, with send and receive timeouts of `timeout_ms`.
Fd ConnectAddress(const sockaddr* addr, socklen_t len, int64_t timeout_ms, std::string* err) {
  Fd s(::socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!s.ok()) {
    *err = ErrnoText(errno);
    return {};
  }
  if (::connect(s.fd, addr, len) != 0) {
    if (errno != EINPROGRESS) {
      *err = ErrnoText(errno);
      return {};
    }
    pollfd p{s.fd, POLLOUT, 0};
    int r = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(timeout_ms, 1)));
    if (r == 0) {
      *err = Cat("no answer within ", timeout_ms, " ms");
      return {};
    }
    int so_error = 0;
    socklen_t so_len = sizeof so_error;
    if (r < 0 || getsockopt(s.fd, SOL_SOCKET, SO_ERROR, &so_error, &so_len) != 0) {
      *err = ErrnoText(errno);
      return {};
    }
    if (so_error != 0) {
      *err = ErrnoText(so_error);
      return {};
    }
  }
  int flags = fcntl(s.fd, F_GETFL, 0);
  fcntl(s.fd, F_SETFL, flags & ~O_NONBLOCK);
  SetIoTimeout(s.fd, timeout_ms);
  return s;
}

// host (a name or an IP literal) and port, every address it resolves to in
// turn, within `timeout_ms` overall.
Fd ConnectHost(const std::string& host, uint16_t port, int64_t timeout_ms, std::string* err) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string service = std::to_string(port);
  if (int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &res); rc != 0) {
    *err = Cat("cannot resolve ", host, ": ", gai_strerror(rc));
    return {};
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(res, &freeaddrinfo);
  const int64_t deadline = SteadyMs() + timeout_ms;
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    const int64_t left = deadline - SteadyMs();
    if (left <= 0) {
      *err = Cat("no answer within ", timeout_ms, " ms");
      break;
    }
    Fd s = ConnectAddress(a->ai_addr, a->ai_addrlen, left, err);
    if (s.ok()) return s;
  }
  return {};
}

// A TLS client session on a connected socket, verified against this
// server's CA store and for `host`, as libcurl does for deliveries.
struct Tls {
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx{nullptr, &SSL_CTX_free};
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl{nullptr, &SSL_free};
  ~Tls() {
    if (ssl) SSL_shutdown(ssl.get());
  }
};

bool IsIpLiteral(const std::string& host) {
  unsigned char buf[sizeof(in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

bool TlsHandshake(int fd, const std::string& host, Tls* tls, std::string* err) {
  ERR_clear_error();
  tls->ctx.reset(SSL_CTX_new(TLS_client_method()));
  if (!tls->ctx) {
    *err = OpenSslError();
    return false;
  }
  SSL_CTX_set_default_verify_paths(tls->ctx.get());
  SSL_CTX_set_verify(tls->ctx.get(), SSL_VERIFY_PEER, nullptr);
  tls->ssl.reset(SSL_new(tls->ctx.get()));
  if (!tls->ssl) {
    *err = OpenSslError();
    return false;
  }
  X509_VERIFY_PARAM* param = SSL_get0_param(tls->ssl.get());
  if (IsIpLiteral(host)) {
    X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str());
  } else {
    X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
    // SSL_set_tlsext_host_name, without the macro's C cast.
    SSL_ctrl(tls->ssl.get(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(host.c_str()));
  }
  SSL_set_fd(tls->ssl.get(), fd);
  if (SSL_connect(tls->ssl.get()) != 1) {
    const long verify = SSL_get_verify_result(tls->ssl.get());
    if (verify != X509_V_OK) {
      *err = Cat("TLS: the certificate is not accepted: ", X509_verify_cert_error_string(verify));
    } else {
      *err = Cat("TLS handshake failed: ", OpenSslError());
    }
    tls->ssl.reset();
    return false;
  }
  return true;
}

// ---- listening addresses ----

struct SockAddr {
  sockaddr_storage storage{};
  socklen_t len = 0;
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

bool MakeSockAddr(const std::string& ip, uint16_t port, SockAddr* out) {
  auto* v4 = reinterpret_cast<sockaddr_in*>(&out->storage);
  if (inet_pton(AF_INET, ip.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    out->len = sizeof(sockaddr_in);
    return true;
  }
  out->storage = {};
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&out->storage);
  if (inet_pton(AF_INET6, ip.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    out->len = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

// host:port of a listening address as an IP literal. The collector's own
// parser first (IP literals, localhost); for grpc.listen a name is resolved.
absl::StatusOr<ListenAddress> ResolveListen(const std::string& listen) {
  auto parsed = ParseListen(listen);
  if (parsed.ok()) return parsed;
  auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) return parsed.status();
  std::string host = listen.substr(0, colon);
  if (host.size() > 1 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  const std::string service = listen.substr(colon + 1);
  if (int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &res); rc != 0) {
    return absl::InvalidArgumentError(Cat("cannot resolve '", host, "': ", gai_strerror(rc)));
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(res, &freeaddrinfo);
  char ip[INET6_ADDRSTRLEN] = {};
  char port[16] = {};
  if (getnameinfo(res->ai_addr, res->ai_addrlen, ip, sizeof ip, port, sizeof port,
                  NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return absl::InvalidArgumentError(Cat("cannot resolve '", host, "'"));
  }
  return ParseListen(res->ai_family == AF_INET6 ? Cat("[", ip, "]:", port) : Cat(ip, ":", port));
}

// Whether GET /healthz on a connected socket is answered by the collector's
// admin API (common/http_server.cc sets "Server: setdiag-collector").
bool AnswersAsCollector(int fd) {
  const std::string request =
      "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size()))
    return false;
  std::string answer;
  char buf[1024];
  while (answer.size() < 8192) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    answer.append(buf, static_cast<size_t>(n));
    if (answer.find("\r\n\r\n") != std::string::npos) break;
  }
  std::string lower = answer.substr(0, answer.find("\r\n\r\n"));
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower.starts_with("http/1.") &&
         lower.find("\r\nserver: setdiag-collector") != std::string::npos;
}

std::string ProgramOf(int pid) {
  std::string cmdline = ReadWholeFile(Cat("/proc/", pid, "/cmdline")).value_or("");
  std::string argv0 = cmdline.substr(0, cmdline.find('\0'));
  if (!argv0.empty()) return argv0.substr(argv0.rfind('/') + 1);
  std::string comm = ReadWholeFile(Cat("/proc/", pid, "/comm")).value_or("");
  return std::string(Trim(comm));
}

// ---- notification targets ----

std::string TargetTable(const NotificationTarget& t) {
  auto colon = t.name.find(':');
  return colon == std::string::npos ? t.name : t.name.substr(colon + 1);
}

size_t CollectAnswer(char* data, size_t size, size_t n, void* user) {
  auto* out = static_cast<std::string*>(user);
  const size_t bytes = size * n;
  if (out->size() < 512) out->append(data, std::min(bytes, 512 - out->size()));
  return bytes;
}

struct MailRead {
  const std::string* data = nullptr;
  size_t pos = 0;
};

size_t ReadMail(char* buf, size_t size, size_t n, void* user) {
  auto* st = static_cast<MailRead*>(user);
  const size_t len = std::min(size * n, st->data->size() - st->pos);
  std::copy_n(st->data->data() + st->pos, len, buf);
  st->pos += len;
  return len;
}

std::string HostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

constexpr char kTestTextRu[] =
    "ТЕСТ. Это проверочное уведомление setdiag-collector (команда «setdiag-collector check "
    "--send-test»). "
    "Оно подтверждает, что уведомления для этой цели доходят. Тикета нет, делать ничего не нужно.";
constexpr char kTestTextEn[] =
    "TEST. This is a test notification from setdiag-collector ('setdiag-collector check "
    "--send-test'). "
    "It confirms that notifications for this target arrive. There is no ticket; nothing needs to "
    "be done.";
constexpr char kTestSubjectRu[] = "ТЕСТ: проверка уведомлений setdiag";
constexpr char kTestSubjectEn[] = "TEST: setdiag notification check";

void CurlInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// The --send-test webhook POST: ✓ when the receiver answered 2xx.
CheckLine SendTestWebhook(const NotificationTarget& t, const std::string& table, int64_t timeout_ms,
                          Clock& clock) {
  const std::string id_key = Cat("notify.webhook.", table, ".test");
  const std::string id = NotificationId(Cat("test-", RandomHex(6)), t.name);
  const int64_t now = clock.NowMs();
  const std::string body = TestWebhookBody(id, now, HostName());
  CurlInitOnce();
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> h(curl_easy_init(), &curl_easy_cleanup);
  curl_slist* headers = nullptr;
  for (const std::string& line :
       {std::string("Content-Type: application/json"), std::string("X-Setdiag-Event: setdiag.test"),
        Cat("X-Setdiag-Signature: ", SignBody(t.secret, body)), Cat("X-Setdiag-Timestamp: ", now),
        std::string("X-Setdiag-Attempt: 1"), Cat("Idempotency-Key: ", id),
        std::string("X-Setdiag-Test: true"), std::string("Expect:")}) {
    headers = curl_slist_append(headers, line.c_str());
  }
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> header_guard(headers,
                                                                           &curl_slist_free_all);
  static const std::string agent = Cat("setdiag-collector/", kVersion);
  std::string answer;
  char error[CURL_ERROR_SIZE] = {};
  CURL* e = h.get();
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(e, CURLOPT_URL, t.url.c_str());
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_USERAGENT, agent.c_str());
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_ms));
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeout_ms));
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, body.c_str());
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, CollectAnswer);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &answer);
  CURLcode code = curl_easy_perform(e);
  long status = 0;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  const std::string who_en = Cat("webhook ", table), who_ru = Cat("вебхук ", table);
  if (code != CURLE_OK) {
    std::string err = error[0] != '\0' ? std::string(error) : std::string(curl_easy_strerror(code));
    return CheckFail(id_key, Cat(who_en, ": test notification not delivered: ", err),
                     Cat(who_ru, ": тестовое уведомление не доставлено: ", err),
                     Cat("check notify.webhook.", table, ".url and that the receiver runs"),
                     Cat("проверьте notify.webhook.", table, ".url и что приёмник запущен"));
  }
  if (status < 200 || status > 299) {
    std::string said = Shown(answer);
    std::string what = Cat("HTTP ", status, said.empty() ? "" : ": ", said);
    return CheckFail(
        id_key, Cat(who_en, ": test notification refused: ", what),
        Cat(who_ru, ": тестовое уведомление отклонено: ", what),
        Cat("the receiver answered but refused it: it must accept the type setdiag.test and verify "
            "X-Setdiag-Signature with the secret in notify.webhook.",
            table, ".secret_file (docs/notifications.md); see the receiver's log"),
        Cat("приёмник ответил, но отказал: он должен принимать тип setdiag.test и проверять "
            "X-Setdiag-Signature секретом из notify.webhook.",
            table, ".secret_file (docs/notifications.md); посмотрите журнал приёмника"));
  }
  return CheckOk(
      id_key,
      Cat(who_en, ": test notification delivered (HTTP ", status, ", Idempotency-Key ", id, ")"),
      Cat(who_ru, ": тестовое уведомление доставлено (HTTP ", status, ", Idempotency-Key ", id,
          ")"));
}

CheckLine SendTestMail(const NotificationTarget& t, const std::string& table, int64_t timeout_ms,
                       Clock& clock) {
  const std::string id_key = Cat("notify.email.", table, ".test");
  const std::string id = NotificationId(Cat("test-", RandomHex(6)), t.name);
  const std::string message = TestMailMessage(t.from, t.to, id, t.name, clock.NowMs(), HostName());
  CurlInitOnce();
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> h(curl_easy_init(), &curl_easy_cleanup);
  curl_slist* rcpt = nullptr;
  std::string to_list;
  for (const auto& a : t.to) {
    rcpt = curl_slist_append(rcpt, Cat("<", BareAddress(a), ">").c_str());
    Append(&to_list, to_list.empty() ? "" : ", ", BareAddress(a));
  }
  std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> rcpt_guard(rcpt,
                                                                         &curl_slist_free_all);
  const std::string mail_from = Cat("<", BareAddress(t.from), ">");
  MailRead read{&message, 0};
  char error[CURL_ERROR_SIZE] = {};
  CURL* e = h.get();
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(e, CURLOPT_URL, t.smtp_url.c_str());
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_ms));
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeout_ms));
  curl_easy_setopt(e, CURLOPT_MAIL_FROM, mail_from.c_str());
  curl_easy_setopt(e, CURLOPT_MAIL_RCPT, rcpt);
  curl_easy_setopt(e, CURLOPT_READFUNCTION, ReadMail);
  curl_easy_setopt(e, CURLOPT_READDATA, &read);
  curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(message.size()));
  if (!t.smtp_user.empty()) {
    curl_easy_setopt(e, CURLOPT_USERNAME, t.smtp_user.c_str());
    curl_easy_setopt(e, CURLOPT_PASSWORD, t.smtp_password.c_str());
  }
  // The notifier's rule: a password never crosses the network in clear.
  if (!t.smtp_url.starts_with("smtps://")) {
    curl_easy_setopt(e, CURLOPT_USE_SSL,
                     static_cast<long>(t.smtp_user.empty() ? CURLUSESSL_TRY : CURLUSESSL_ALL));
  }
  CURLcode code = curl_easy_perform(e);
  long status = 0;
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  const std::string who_en = Cat("e-mail ", table), who_ru = Cat("почта ", table);
  if (code != CURLE_OK) {
    std::string err = error[0] != '\0' ? std::string(error) : std::string(curl_easy_strerror(code));
    if (status != 0) Append(&err, " (SMTP ", status, ")");
    return CheckFail(
        id_key, Cat(who_en, ": test message not sent: ", err),
        Cat(who_ru, ": тестовое письмо не отправлено: ", err),
        Cat("check notify.email.", table,
            ".from, .to, .user and .password_file, and the mail server's log: "
            "it must accept mail from this sender to these recipients"),
        Cat("проверьте notify.email.", table,
            ".from, .to, .user и .password_file и журнал почтового "
            "сервера: он должен принимать письма от этого отправителя этим получателям"));
  }
  return CheckOk(id_key, Cat(who_en, ": test message accepted by the SMTP server for ", to_list),
                 Cat(who_ru, ": тестовое письмо принято SMTP-сервером для ", to_list));
}

// Connects to a target (and does the TLS handshake for https/smtps); for
// SMTP reads the greeting and says QUIT. Sends nothing else.
CheckLine ProbeTarget(const NotificationTarget& t, int64_t timeout_ms, bool* reachable) {
  const bool webhook = t.kind == NotificationTarget::Kind::kWebhook;
  const std::string table = TargetTable(t);
  const std::string id = Cat(webhook ? "notify.webhook." : "notify.email.", table);
  const std::string url_key = Cat(id, webhook ? ".url" : ".smtp_url");
  const std::string who_en = Cat(webhook ? "webhook " : "e-mail ", table);
  const std::string who_ru = Cat(webhook ? "вебхук " : "почта ", table);
  *reachable = false;
  auto ep = ParseTargetUrl(webhook ? t.url : t.smtp_url);
  if (!ep.ok()) {
    std::string msg(ep.status().message());
    return CheckFail(id, Cat(who_en, ": ", msg), Cat(who_ru, ": ", msg), Cat("fix ", url_key),
                     Cat("исправьте ", url_key));
  }
  const std::string where = ep->Display();
  const std::string name_en = Cat(who_en, " (", where, ")"),
                    name_ru = Cat(who_ru, " (", where, ")");
  const std::string unreachable_fix_en =
      Cat("check ", url_key, ", that the ", webhook ? "receiver" : "mail server",
          " runs, and that the firewall lets this "
          "server out to ",
          ep->host, " TCP port ", ep->port);
  const std::string unreachable_fix_ru =
      Cat("проверьте ", url_key, ", что ", webhook ? "приёмник" : "почтовый сервер",
          " запущен и что межсетевой экран "
          "выпускает этот сервер на ",
          ep->host, ", TCP-порт ", ep->port);
  const int64_t started = SteadyMs();
  std::string err;
  Fd s = ConnectHost(ep->host, ep->port, timeout_ms, &err);
  if (!s.ok()) {
    return CheckFail(id, Cat(name_en, ": not reachable: ", err),
                     Cat(name_ru, webhook ? ": недоступен: " : ": недоступна: ", err),
                     unreachable_fix_en, unreachable_fix_ru);
  }
  Tls tls;
  if (ep->tls && !TlsHandshake(s.fd, ep->host, &tls, &err)) {
    return CheckFail(
        id, Cat(name_en, ": ", err), Cat(name_ru, ": ", err),
        Cat("this server must trust the ", webhook ? "receiver's" : "mail server's",
            " certificate (its CA in /etc/ssl/certs, update-ca-certificates) and the certificate "
            "must name ",
            ep->host),
        Cat("этот сервер должен доверять сертификату ", webhook ? "приёмника" : "почтового сервера",
            " (его УЦ в /etc/ssl/certs, update-ca-certificates), а сертификат должен содержать "
            "имя ",
            ep->host));
  }
  const int64_t connect_ms = SteadyMs() - started;
  if (webhook) {
    *reachable = true;
    return CheckOk(
        id,
        Cat(name_en, ": reachable (", ep->tls ? "TLS certificate verified" : "TCP connect", ", ",
            connect_ms, " ms)"),
        Cat(name_ru, ": доступен (", ep->tls ? "сертификат TLS проверен" : "TCP-соединение", ", ",
            connect_ms, " мс)"));
  }
  // SMTP: the server speaks first.
  auto read_some = [&](char* buf, size_t n) -> ssize_t {
    if (tls.ssl) {
      int r = SSL_read(tls.ssl.get(), buf, static_cast<int>(n));
      return r;
    }
    return ::recv(s.fd, buf, n, 0);
  };
  auto write_all = [&](const std::string& data) {
    if (tls.ssl) {
      SSL_write(tls.ssl.get(), data.data(), static_cast<int>(data.size()));
    } else {
      (void)::send(s.fd, data.data(), data.size(), MSG_NOSIGNAL);
    }
  };
  std::string got;
  SmtpReply reply;
  char buf[512];
  while (got.size() < 4096) {
    ssize_t n = read_some(buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
    reply = ParseSmtpReply(got);
    if (reply.complete) break;
  }
  if (!reply.complete || reply.code < 0) {
    std::string what = got.empty() ? std::string("nothing") : Cat("'", Shown(got), "'");
    std::string what_ru = got.empty() ? std::string("ничего") : Cat("«", Shown(got), "»");
    return CheckFail(
        id, Cat(name_en, ": no SMTP greeting within ", timeout_ms, " ms (got ", what, ")"),
        Cat(name_ru, ": нет приветствия SMTP за ", timeout_ms, " мс (получено: ", what_ru, ")"),
        Cat("is ", ep->host, ":", ep->port,
            " an SMTP server? smtp:// is usually port 25 or 587, smtps:// "
            "port 465 (TLS from the first byte); fix ",
            url_key),
        Cat("это SMTP-сервер? Для smtp:// обычно порт 25 или 587, для smtps:// — 465 (TLS с "
            "первого байта); "
            "исправьте ",
            url_key));
  }
  write_all("QUIT\r\n");
  const std::string greeting = Shown(Cat(reply.code, " ", reply.text));
  if (reply.code != 220) {
    return CheckFail(
        id, Cat(name_en, ": the SMTP server refuses: ", greeting),
        Cat(name_ru, ": SMTP-сервер отказывает: ", greeting),
        Cat("ask the mail server's administrator to accept connections from this server, "
            "or name another "
            "relay in ",
            url_key),
        Cat("попросите администратора почтового сервера принимать соединения с этого "
            "сервера или укажите "
            "другой сервер в ",
            url_key));
  }
  *reachable = true;
  return CheckOk(id, Cat(name_en, ": the SMTP server answers: ", greeting),
                 Cat(name_ru, ": SMTP-сервер отвечает: ", greeting));
}

// ---- the config's parts ----

void CheckListen(const CollectorConfig& cfg, std::vector<CheckLine>* out) {
  ListenProbe grpc = ProbeListen(cfg.grpc_listen, /*http=*/false, 1000);
  ListenProbe http = ProbeListen(cfg.http_listen, /*http=*/true, 1000);
  out->push_back(ListenLine("grpc.listen", cfg.grpc_listen, grpc, http.collector));
  out->push_back(ListenLine("http.listen", cfg.http_listen, http, grpc.collector));
}

void CheckTls(const CollectorConfig& cfg, int64_t now_ms, std::vector<CheckLine>* out) {
  if (!cfg.tls()) {
    auto listen = ParseListen(cfg.grpc_listen);
    if (listen.ok() && listen->loopback) {
      out->push_back(CheckOk(
          "grpc.tls",
          Cat("gRPC ", cfg.grpc_listen, ": plaintext, loopback only (no grpc.tls_cert_file)"),
          Cat("gRPC ", cfg.grpc_listen,
              ": без шифрования, только loopback (grpc.tls_cert_file не задан)")));
    } else {
      out->push_back(Warn(
          "grpc.tls",
          Cat("gRPC ", cfg.grpc_listen,
              ": plaintext beyond this host (grpc.allow_insecure = true): store tokens and events "
              "cross the network unencrypted"),
          Cat("gRPC ", cfg.grpc_listen,
              ": без шифрования за пределами этого сервера (grpc.allow_insecure = true): токены "
              "магазинов и события идут по сети открыто"),
          "set grpc.tls_cert_file and grpc.tls_key_file (docs/security.md)",
          "задайте grpc.tls_cert_file и grpc.tls_key_file (docs/security.md)"));
    }
    return;
  }
  auto cert = ReadWholeFile(cfg.tls_cert_file);
  auto key = ReadWholeFile(cfg.tls_key_file);
  for (const auto& [read, path, key_name] :
       {std::tuple{&cert, cfg.tls_cert_file, "grpc.tls_cert_file"},
        std::tuple{&key, cfg.tls_key_file, "grpc.tls_key_file"}}) {
    if (read->ok()) continue;
    std::string msg(read->status().message());
    out->push_back(
        CheckFail("grpc.tls", Cat("TLS file ", path, ": cannot read: ", msg),
                  Cat("файл TLS ", path, ": не читается: ", msg),
                  Cat("check ", key_name, " and that the collector's user may read the file"),
                  Cat("проверьте ", key_name, " и что пользователь коллектора может читать файл")));
    return;
  }
  for (auto& line : TlsLines(cfg.tls_cert_file, *cert, cfg.tls_key_file, *key, now_ms))
    out->push_back(std::move(line));
}

void CheckCalendar(const CollectorConfig& cfg, const CheckOptions& options, int64_t now_ms,
                   std::vector<CheckLine>* out) {
  absl::TimeZone zone;
  if (!absl::LoadTimeZone(cfg.business_zone, &zone)) {
    out->push_back(
        CheckFail("sla.calendar", Cat("sla.time_zone: unknown time zone '", cfg.business_zone, "'"),
                  Cat("sla.time_zone: неизвестный часовой пояс «", cfg.business_zone, "»"),
                  "name a zone such as Europe/Moscow, and install tzdata",
                  "укажите пояс вида Europe/Moscow и установите пакет tzdata"));
    return;
  }
  const std::string dir = ResolveCalendarDir(cfg.calendar_dir, options.source_calendar_dir);
  auto calendar = ProductionCalendar::LoadDirectory(dir);
  if (!calendar.ok()) {
    std::string msg(calendar.status().message());
    if (absl::IsNotFound(calendar.status())) {
      out->push_back(CheckFail(
          "sla.calendar", Cat("production calendar: ", msg),
          Cat("производственный календарь: ", msg),
          "set sla.calendar_dir to the directory with the ru-YYYY.txt files (the package installs "
          "them in share/setdiag/calendars)",
          "укажите в sla.calendar_dir каталог с файлами ru-YYYY.txt (пакет ставит их в "
          "share/setdiag/calendars)"));
    } else {
      out->push_back(CheckFail(
          "sla.calendar", Cat("production calendar: ", msg),
          Cat("производственный календарь: ", msg),
          "fix that line (the format is in docs/sla.md): the collector does not start with a bad "
          "calendar file",
          "исправьте эту строку (формат описан в docs/sla.md): с ошибочным файлом календаря "
          "коллектор не запускается"));
    }
    return;
  }
  const int64_t this_year = absl::ToCivilYear(absl::FromUnixMillis(now_ms), zone).year();
  out->push_back(CalendarLine(dir, calendar->Years(), this_year));
}

void CheckTargets(const CollectorConfig& cfg, const CheckOptions& options, Clock& clock,
                  std::vector<CheckLine>* out) {
  if (cfg.notify.targets.empty()) {
    out->push_back(
        Warn("notify",
             "notifications: no webhook or e-mail target: tickets are opened, but nobody is told",
             "уведомления: нет ни вебхука, ни почты: тикеты открываются, но никто о них не узнаёт",
             "add a [notify.webhook.<name>] or [notify.email.<name>] table (docs/config.md)",
             "добавьте таблицу [notify.webhook.<имя>] или [notify.email.<имя>] (docs/config.md)"));
    return;
  }
  const int64_t probe_timeout = std::min(cfg.notify.timeout_ms, kProbeTimeoutMs);
  for (const auto& t : cfg.notify.targets) {
    bool reachable = false;
    out->push_back(ProbeTarget(t, probe_timeout, &reachable));
    if (!options.send_test) continue;
    const bool webhook = t.kind == NotificationTarget::Kind::kWebhook;
    const std::string table = TargetTable(t);
    if (!reachable) {
      const std::string id = Cat(webhook ? "notify.webhook." : "notify.email.", table, ".test");
      out->push_back(CheckFail(id,
                               Cat(webhook ? "webhook " : "e-mail ", table,
                                   ": test notification not sent (not reachable)"),
                               Cat(webhook ? "вебхук " : "почта ", table,
                                   ": тестовое уведомление не отправлено (цель недоступна)"),
                               "make the target reachable first (the line above)",
                               "сначала сделайте цель доступной (строка выше)"));
      continue;
    }
    out->push_back(webhook ? SendTestWebhook(t, table, cfg.notify.timeout_ms, clock)
                           : SendTestMail(t, table, cfg.notify.timeout_ms, clock));
  }
}

// Unix ms of an ASN1_TIME.
int64_t AsnTimeMs(const ASN1_TIME* t) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<int64_t>(timegm(&tm)) * 1000;
}

// "DNS:a.example, IP:10.0.0.1", or "CN=..." without a subjectAltName.
std::string CertNames(X509* cert) {
  std::string names;
  auto* sans =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (sans != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* n = sk_GENERAL_NAME_value(sans, i);
      if (n->type == GEN_DNS) {
        const auto* s = n->d.dNSName;
        Append(&names, names.empty() ? "" : ", ", "DNS:",
               std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                static_cast<size_t>(ASN1_STRING_length(s))));
      } else if (n->type == GEN_IPADD) {
        const auto* s = n->d.iPAddress;
        char ip[INET6_ADDRSTRLEN] = {};
        const int len = ASN1_STRING_length(s);
        if ((len == 4 || len == 16) &&
            inet_ntop(len == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(s), ip, sizeof ip) !=
                nullptr) {
          Append(&names, names.empty() ? "" : ", ", "IP:", ip);
        }
      }
    }
    GENERAL_NAMES_free(sans);
  }
  if (!names.empty()) return names;
  char cn[256] = {};
  if (X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn) > 0) {
    return Cat("CN=", cn);
  }
  return "no name";
}

int NoPassphrase(char*, int, int, void*) { return 0; }

struct CloseDir {
  void operator()(DIR* d) const { closedir(d); }
};

}  // namespace

// ---- exposed pieces ----

CheckLine ConfigFailedLine(const std::string& config_path, const absl::Status& status) {
  std::string msg(status.message());
  if (!msg.starts_with(config_path)) msg = Cat(config_path, ": ", msg);
  return CheckFail(
      "config", Cat("config ", msg), Cat("конфигурация ", msg),
      "fix that key (docs/config.md lists every key) and run the check again; nothing else was "
      "checked",
      "исправьте этот ключ (все ключи описаны в docs/config.md) и повторите проверку; остальное не "
      "проверялось");
}

CheckLine CertExpiryLine(const std::string& cert_path, int64_t not_before_ms, int64_t not_after_ms,
                         int64_t now_ms) {
  const std::string id = "grpc.tls_expiry";
  const std::string until = UtcText(not_after_ms);
  const std::string renew_en =
      "put a new certificate for the collector's name at grpc.tls_cert_file (its key at "
      "grpc.tls_key_file) and "
      "restart the collector";
  const std::string renew_ru =
      "положите новый сертификат на имя коллектора в grpc.tls_cert_file (ключ — в "
      "grpc.tls_key_file) и "
      "перезапустите коллектор";
  if (now_ms >= not_after_ms) {
    return CheckFail(id, Cat("TLS certificate ", cert_path, ": expired on ", until),
                     Cat("сертификат TLS ", cert_path, ": истёк ", until),
                     Cat(renew_en, ": until then every agent refuses the TLS handshake"),
                     Cat(renew_ru, ": до тех пор ни один агент не пройдёт TLS-рукопожатие"));
  }
  if (now_ms < not_before_ms) {
    const std::string from = UtcText(not_before_ms);
    return CheckFail(
        id, Cat("TLS certificate ", cert_path, ": not valid before ", from),
        Cat("сертификат TLS ", cert_path, ": действует только с ", from),
        "check this server's clock (NTP); if it is right, the certificate was issued with "
        "a future start: "
        "issue it again",
        "проверьте часы этого сервера (NTP); если они верны, сертификат выпущен с будущей "
        "датой начала: "
        "выпустите его заново");
  }
  const int64_t left = not_after_ms - now_ms;
  const int64_t days = left / kDayMs;
  if (left < kCertWarnDays * kDayMs) {
    const std::string in_en =
        days == 0 ? std::string("in less than a day") : Cat("in ", EnDays(days));
    const std::string in_ru =
        days == 0 ? std::string("менее чем через сутки") : Cat("через ", RuDays(days));
    return Warn(id, Cat("TLS certificate ", cert_path, ": expires on ", until, ", ", in_en),
                Cat("сертификат TLS ", cert_path, ": истекает ", until, ", ", in_ru),
                Cat("renew it before then: ", renew_en),
                Cat("обновите его до этого срока: ", renew_ru));
  }
  return CheckOk(
      id, Cat("TLS certificate ", cert_path, ": valid until ", until, " (", EnDays(days), " left)"),
      Cat("сертификат TLS ", cert_path, ": действует до ", until, " (осталось ", RuDays(days),
          ")"));
}

std::vector<CheckLine> TlsLines(const std::string& cert_path, const std::string& cert_pem,
                                const std::string& key_path, const std::string& key_pem,
                                int64_t now_ms) {
  std::vector<CheckLine> out;
  ERR_clear_error();
  std::vector<std::unique_ptr<X509, decltype(&X509_free)>> chain;
  {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(
        BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size())), &BIO_free);
    while (X509* c = PEM_read_bio_X509(bio.get(), nullptr, NoPassphrase, nullptr))
      chain.emplace_back(c, &X509_free);
    ERR_clear_error();  // the end of the file reads as an error
  }
  if (chain.empty()) {
    out.push_back(CheckFail("grpc.tls",
                            Cat("TLS certificate ", cert_path, ": no PEM certificate in it"),
                            Cat("сертификат TLS ", cert_path, ": в файле нет сертификата PEM"),
                            "grpc.tls_cert_file must hold the collector's certificate in PEM "
                            "(-----BEGIN CERTIFICATE-----), "
                            "then any intermediate certificates",
                            "grpc.tls_cert_file должен содержать сертификат коллектора в PEM "
                            "(-----BEGIN CERTIFICATE-----), "
                            "за ним промежуточные сертификаты"));
    return out;
  }
  X509* leaf = chain.front().get();
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(nullptr, &EVP_PKEY_free);
  {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(
        BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())), &BIO_free);
    key.reset(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
    ERR_clear_error();
  }
  const std::string names = CertNames(leaf);
  if (!key) {
    out.push_back(CheckFail(
        "grpc.tls",
        Cat("TLS key ", key_path, ": not a PEM private key, or protected by a passphrase"),
        Cat("ключ TLS ", key_path, ": не закрытый ключ PEM или защищён паролем"),
        "grpc.tls_key_file must hold the certificate's private key in PEM without a passphrase "
        "(openssl pkey -in KEY -out KEY.plain)",
        "grpc.tls_key_file должен содержать закрытый ключ сертификата в PEM без пароля "
        "(openssl pkey -in KEY -out KEY.plain)"));
  } else if (X509_check_private_key(leaf, key.get()) != 1) {
    ERR_clear_error();
    out.push_back(CheckFail(
        "grpc.tls",
        Cat("TLS key ", key_path, " does not belong to certificate ", cert_path, " (", names, ")"),
        Cat("ключ TLS ", key_path, " не подходит к сертификату ", cert_path, " (", names, ")"),
        "put the key the certificate was issued for at grpc.tls_key_file, or the certificate of "
        "this "
        "key first in grpc.tls_cert_file (compare openssl x509 -noout -pubkey -in CERT with "
        "openssl "
        "pkey -pubout -in KEY)",
        "положите в grpc.tls_key_file ключ, на который выпущен сертификат, или первым в "
        "grpc.tls_cert_file сертификат этого ключа (сравните openssl x509 -noout -pubkey -in CERT "
        "и "
        "openssl pkey -pubout -in KEY)"));
  } else {
    const std::string more_en =
        chain.size() > 1 ? Cat(", ", chain.size(), " certificates in the chain") : "";
    const std::string more_ru =
        chain.size() > 1 ? Cat(", сертификатов в цепочке: ", chain.size()) : "";
    out.push_back(CheckOk("grpc.tls",
                          Cat("TLS certificate ", cert_path, " (", names, ") and key ", key_path,
                              ": load and match", more_en),
                          Cat("сертификат TLS ", cert_path, " (", names, ") и ключ ", key_path,
                              ": читаются и подходят друг к другу", more_ru)));
  }
  out.push_back(CertExpiryLine(cert_path, AsnTimeMs(X509_get0_notBefore(leaf)),
                               AsnTimeMs(X509_get0_notAfter(leaf)), now_ms));
  return out;
}

CheckLine CalendarLine(const std::string& dir, const std::vector<int64_t>& years,
                       int64_t this_year) {
  const int64_t next_year = this_year + 1;
  const bool has_this = std::find(years.begin(), years.end(), this_year) != years.end();
  const bool has_next = std::find(years.begin(), years.end(), next_year) != years.end();
  std::string list;
  for (int64_t y : years) Append(&list, list.empty() ? "" : ", ", y);
  const std::string has_en = list.empty() ? std::string("no files") : Cat("files for ", list);
  const std::string has_ru = list.empty() ? std::string("файлов нет") : Cat("файлы на ", list);
  if (!has_this) {
    const std::string missing = has_next ? Cat(this_year) : Cat(this_year, " and ", next_year);
    const std::string missing_ru = has_next ? Cat(this_year) : Cat(this_year, " и ", next_year);
    return CheckFail(
        "sla.calendar",
        Cat("production calendar ", dir, ": no file for ", missing, " (", has_en, ")"),
        Cat("производственный календарь ", dir, ": нет файла на ", missing_ru, " (", has_ru, ")"),
        Cat("add ru-", this_year,
            ".txt to sla.calendar_dir (format and sources in docs/sla.md) and restart "
            "the collector: until then SLA business hours follow the plain week, without holidays"),
        Cat("добавьте ru-", this_year,
            ".txt в sla.calendar_dir (формат и источники в docs/sla.md) и "
            "перезапустите коллектор: до тех пор рабочее время SLA считается по обычной неделе, "
            "без "
            "праздников"));
  }
  if (!has_next) {
    return Warn("sla.calendar",
                Cat("production calendar ", dir, ": ", this_year, " covered, ", next_year,
                    " not yet (", has_en, ")"),
                Cat("производственный календарь ", dir, ": ", this_year, " есть, ", next_year,
                    " ещё нет (", has_ru, ")"),
                Cat("add ru-", next_year, ".txt before ", next_year,
                    " begins (docs/sla.md, \"Adding next year's "
                    "calendar\")"),
                Cat("добавьте ru-", next_year, ".txt до начала ", next_year,
                    " года (docs/sla.md, раздел «Adding next "
                    "year's calendar»)"));
  }
  return CheckOk("sla.calendar",
                 Cat("production calendar ", dir, ": ", this_year, " and ", next_year, " covered (",
                     has_en, ")"),
                 Cat("производственный календарь ", dir, ": ", this_year, " и ", next_year,
                     " есть (", has_ru, ")"));
}

std::string ResolveCalendarDir(const std::string& configured, const std::string& source_dir) {
  auto exists = [](const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
  };
  if (exists(configured) || configured != CollectorConfig{}.calendar_dir) return configured;
  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) {
    std::string exe(self, static_cast<size_t>(n));
    std::string beside = exe.substr(0, exe.rfind('/')) + "/../share/setdiag/calendars";
    if (exists(beside)) return beside;
  }
  return source_dir.empty() ? configured : source_dir;
}

CheckLine ListenLine(const std::string& key, const std::string& listen, const ListenProbe& p,
                     bool collector_elsewhere) {
  const std::string what_en = Cat(key, " ", listen), what_ru = Cat(key, " ", listen);
  if (!p.error.empty()) {
    return CheckFail(key, Cat(what_en, ": ", p.error), Cat(what_ru, ": ", p.error),
                     Cat("set ", key, " to host:port with an address of this server (or 0.0.0.0)"),
                     Cat("укажите в ", key, " host:port с адресом этого сервера (или 0.0.0.0)"));
  }
  if (p.bind_errno == 0) {
    return CheckOk(key, Cat(what_en, ": free, can be bound"),
                   Cat(what_ru, ": свободен, можно занять"));
  }
  const bool collector =
      p.collector || (p.answered && collector_elsewhere &&
                      (p.owner.empty() || p.owner.starts_with("setdiag-collector ")));
  if (collector) {
    // "setdiag-collector (pid 42)" reads " (pid 42)" after "the running collector".
    constexpr std::string_view kSelf = "setdiag-collector ";
    const std::string owner = p.owner.empty()              ? ""
                              : p.owner.starts_with(kSelf) ? Cat(" ", p.owner.substr(kSelf.size()))
                                                           : Cat(" (", p.owner, ")");
    return Warn(key, Cat(what_en, ": in use by the running collector", owner),
                Cat(what_ru, ": занят работающим коллектором", owner),
                "expected while the collector runs; to check that the address itself can be bound, "
                "stop the collector "
                "and run the check again",
                "так и должно быть, пока коллектор работает; чтобы проверить сам адрес, остановите "
                "коллектор и "
                "повторите проверку");
  }
  const std::string err = ErrnoText(p.bind_errno);
  if (p.bind_errno == EADDRINUSE) {
    const std::string by_en =
        p.owner.empty() ? (p.answered ? std::string("another program") : Cat("? (", err, ")"))
                        : p.owner;
    const std::string by_ru =
        p.owner.empty() ? (p.answered ? std::string("другой программой") : Cat("? (", err, ")"))
                        : p.owner;
    return CheckFail(key, Cat(what_en, ": in use by ", by_en), Cat(what_ru, ": занят: ", by_ru),
                     Cat("stop that program, or give ", key, " another port"),
                     Cat("остановите эту программу или укажите в ", key, " другой порт"));
  }
  if (p.bind_errno == EACCES) {
    return CheckFail(
        key, Cat(what_en, ": cannot be bound: ", err), Cat(what_ru, ": не занять: ", err),
        "ports below 1024 need root or CAP_NET_BIND_SERVICE (systemd: AmbientCapabilities="
        "CAP_NET_BIND_SERVICE); or use a port from 1024 up",
        "порты ниже 1024 требуют root или CAP_NET_BIND_SERVICE (systemd: AmbientCapabilities="
        "CAP_NET_BIND_SERVICE); или возьмите порт от 1024");
  }
  if (p.bind_errno == EADDRNOTAVAIL) {
    return CheckFail(
        key, Cat(what_en, ": cannot be bound: ", err), Cat(what_ru, ": не занять: ", err),
        Cat("the address is not one of this server's: put one of them (ip -br addr) or 0.0.0.0 in ",
            key),
        Cat("это не адрес этого сервера: укажите в ", key,
            " один из его адресов (ip -br addr) или 0.0.0.0"));
  }
  return CheckFail(key, Cat(what_en, ": cannot be bound: ", err),
                   Cat(what_ru, ": не занять: ", err), Cat("check ", key), Cat("проверьте ", key));
}

ListenProbe ProbeListen(const std::string& listen, bool http, int64_t timeout_ms) {
  ListenProbe p;
  auto addr = ResolveListen(listen);
  if (!addr.ok()) {
    p.error = std::string(addr.status().message());
    return p;
  }
  SockAddr sa;
  if (!MakeSockAddr(addr->host, addr->port, &sa)) {
    p.error = Cat("not an IP address: ", addr->host);
    return p;
  }
  {
    Fd s(::socket(sa.storage.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!s.ok()) {
      p.bind_errno = errno;
      return p;
    }
    // As the collector's listeners do; it does not let two listeners share a port.
    int one = 1;
    setsockopt(s.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(s.fd, sa.get(), sa.len) == 0) return p;
    p.bind_errno = errno;
  }
  if (p.bind_errno != EADDRINUSE) return p;
  // Who holds it: connect (to loopback for a wildcard address).
  std::string target = addr->host;
  if (target == "0.0.0.0") target = "127.0.0.1";
  if (target == "::") target = "::1";
  SockAddr to;
  std::string err;
  if (MakeSockAddr(target, addr->port, &to)) {
    Fd c = ConnectAddress(to.get(), to.len, timeout_ms, &err);
    p.answered = c.ok();
    if (p.answered && http) p.collector = AnswersAsCollector(c.fd);
  }
  if (auto owner = FindListener(addr->port)) {
    p.owner = Cat(owner->program, " (pid ", owner->pid, ")");
    if (owner->program == "setdiag-collector") p.collector = true;
  }
  return p;
}

std::optional<SocketOwner> FindListener(uint16_t port) {
  std::set<std::string> inodes;
  char port_hex[8];
  std::snprintf(port_hex, sizeof port_hex, ":%04X", static_cast<unsigned>(port));
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string sl, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
      if (!(fields >> sl >> local >> remote >> state >> queues >> timer >> retransmits >> uid >>
            timeout >> inode)) {
        continue;
      }
      if (state == "0A" && local.ends_with(port_hex) && inode != "0")
        inodes.insert(Cat("socket:[", inode, "]"));
    }
  }
  if (inodes.empty()) return std::nullopt;
  std::unique_ptr<DIR, CloseDir> proc(opendir("/proc"));
  if (!proc) return std::nullopt;
  while (dirent* e = readdir(proc.get())) {
    const std::string_view name = e->d_name;
    if (name.empty() ||
        !std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; }))
      continue;
    const std::string fd_dir = Cat("/proc/", name, "/fd");
    std::unique_ptr<DIR, CloseDir> fds(opendir(fd_dir.c_str()));
    if (!fds) continue;  // another user's process
    while (dirent* f = readdir(fds.get())) {
      if (f->d_name[0] == '.') continue;
      char link[128];
      const std::string path = Cat(fd_dir, "/", f->d_name);
      ssize_t n = ::readlink(path.c_str(), link, sizeof link - 1);
      if (n <= 0) continue;
      if (inodes.contains(std::string(link, static_cast<size_t>(n)))) {
        SocketOwner owner;
        owner.pid = std::atoi(std::string(name).c_str());
        owner.program = ProgramOf(owner.pid);
        return owner;
      }
    }
  }
  return std::nullopt;
}

CheckLine DatabaseLine(const std::string& data_dir, const std::string& db_path) {
  const std::string id = "database";
  struct stat st {};
  if (::stat(data_dir.c_str(), &st) != 0) {
    const int err = errno;
    const std::string trimmed = data_dir.substr(0, data_dir.find_last_not_of('/') + 1);
    const size_t slash = trimmed.rfind('/');
    const std::string parent = slash == std::string::npos ? "."
                               : slash == 0               ? "/"
                                                          : trimmed.substr(0, slash);
    struct stat pst {};
    if (err == ENOENT && ::stat(parent.c_str(), &pst) == 0 && S_ISDIR(pst.st_mode) &&
        ::access(parent.c_str(), W_OK | X_OK) == 0) {
      return CheckOk(
          id,
          Cat("database: collector.data_dir ", data_dir,
              " does not exist yet; the collector creates it at start (", parent, " is writable)"),
          Cat("база данных: collector.data_dir ", data_dir,
              " ещё не создан; коллектор создаст его при запуске (", parent,
              " доступен для записи)"));
    }
    const std::string why =
        err == ENOENT ? Cat(parent, " is missing or not writable") : ErrnoText(err);
    const std::string why_ru =
        err == ENOENT ? Cat(parent, " нет или он не доступен для записи") : ErrnoText(err);
    return CheckFail(
        id, Cat("database: collector.data_dir ", data_dir, " cannot be created: ", why),
        Cat("база данных: collector.data_dir ", data_dir, " не создать: ", why_ru),
        Cat("create it for the collector's user: install -d -m 0750 -o <user> -g <group> ",
            data_dir, "; or change collector.data_dir"),
        Cat("создайте его для пользователя коллектора: install -d -m 0750 -o <user> -g <group> ",
            data_dir, "; или измените collector.data_dir"));
  }
  const std::string owner_fix_en =
      Cat("give the collector's user the directory: chown -R <user>:<group> ", data_dir,
          " && chmod 0750 ", data_dir);
  const std::string owner_fix_ru =
      Cat("отдайте каталог пользователю коллектора: chown -R <user>:<group> ", data_dir,
          " && chmod 0750 ", data_dir);
  if (!S_ISDIR(st.st_mode)) {
    return CheckFail(id, Cat("database: collector.data_dir ", data_dir, " is not a directory"),
                     Cat("база данных: collector.data_dir ", data_dir, " — не каталог"),
                     "point collector.data_dir at a directory",
                     "укажите в collector.data_dir каталог");
  }
  if (::access(data_dir.c_str(), W_OK | X_OK) != 0) {
    const std::string err = ErrnoText(errno);
    return CheckFail(id,
                     Cat("database: collector.data_dir ", data_dir,
                         " is not writable for this user (uid ", geteuid(), "): ", err),
                     Cat("база данных: collector.data_dir ", data_dir,
                         " недоступен для записи этому пользователю (uid ", geteuid(), "): ", err),
                     owner_fix_en, owner_fix_ru);
  }
  struct stat dst {};
  if (::stat(db_path.c_str(), &dst) != 0) {
    return CheckOk(
        id,
        Cat("database ", db_path, ": not created yet; the collector creates it at first start (",
            data_dir, " is writable)"),
        Cat("база данных ", db_path, ": ещё не создана; коллектор создаст её при первом запуске (",
            data_dir, " доступен для записи)"));
  }
  sqlite3* raw = nullptr;
  // No SQLITE_OPEN_CREATE: the file is there. Nothing below writes to it.
  int rc =
      sqlite3_open_v2(db_path.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  std::unique_ptr<sqlite3, decltype(&sqlite3_close)> db(raw, &sqlite3_close);
  std::string failed;
  int failed_rc = rc;
  if (rc != SQLITE_OK) {
    failed = raw != nullptr ? sqlite3_errmsg(raw) : sqlite3_errstr(rc);
  } else {
    sqlite3_busy_timeout(raw, 5000);
    for (const char* sql : {"SELECT count(*) FROM sqlite_master", "BEGIN IMMEDIATE", "ROLLBACK"}) {
      rc = sqlite3_exec(raw, sql, nullptr, nullptr, nullptr);
      if (rc != SQLITE_OK) {
        failed = Cat(sqlite3_errmsg(raw), " (", sql, ")");
        failed_rc = rc;
        break;
      }
    }
  }
  if (!failed.empty()) {
    const int primary = failed_rc & 0xFF;
    if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) {
      return Warn(
          id, Cat("database ", db_path, ": another process held the write lock for 5 s: ", failed),
          Cat("база данных ", db_path, ": другой процесс 5 с держал блокировку записи: ", failed),
          "the running collector may be busy; run the check again",
          "возможно, работающий коллектор занят; повторите проверку");
    }
    if (primary == SQLITE_NOTADB || primary == SQLITE_CORRUPT) {
      return CheckFail(
          id, Cat("database ", db_path, ": damaged: ", failed),
          Cat("база данных ", db_path, ": повреждена: ", failed),
          "stop the collector, move the file (and its -wal, -shm) aside and restore the "
          "last backup",
          "остановите коллектор, отложите файл (и его -wal, -shm) и восстановите последнюю "
          "резервную копию");
    }
    return CheckFail(id, Cat("database ", db_path, ": cannot be opened for writing: ", failed),
                     Cat("база данных ", db_path, ": не открывается на запись: ", failed),
                     owner_fix_en, owner_fix_ru);
  }
  const double mib = static_cast<double>(dst.st_size) / (1024.0 * 1024.0);
  char size[32];
  std::snprintf(size, sizeof size, "%.1f", mib);
  return CheckOk(id, Cat("database ", db_path, ": opens read-write (", size, " MiB)"),
                 Cat("база данных ", db_path, ": открывается на чтение и запись (", size, " МиБ)"));
}

std::string Endpoint::Display() const {
  const bool v6 = host.find(':') != std::string::npos;
  return Cat(scheme, "://", v6 ? "[" : "", host, v6 ? "]" : "", ":", port);
}

absl::StatusOr<Endpoint> ParseTargetUrl(std::string_view url) {
  Endpoint ep;
  auto sep = url.find("://");
  if (sep == std::string_view::npos)
    return absl::InvalidArgumentError("not a URL (scheme://host[:port])");
  ep.scheme = std::string(url.substr(0, sep));
  for (char& c : ep.scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (ep.scheme == "http") {
    ep.port = 80;
  } else if (ep.scheme == "https") {
    ep.port = 443;
    ep.tls = true;
  } else if (ep.scheme == "smtp") {
    ep.port = 25;
  } else if (ep.scheme == "smtps") {
    ep.port = 465;
    ep.tls = true;
  } else {
    return absl::InvalidArgumentError(Cat("unsupported scheme '", ep.scheme, "'"));
  }
  std::string_view rest = url.substr(sep + 3);
  std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  if (auto at = authority.rfind('@'); at != std::string_view::npos) authority.remove_prefix(at + 1);
  std::string_view port_text;
  if (authority.starts_with('[')) {
    auto close = authority.find(']');
    if (close == std::string_view::npos)
      return absl::InvalidArgumentError("unclosed '[' in the host");
    ep.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return absl::InvalidArgumentError("unexpected text after the host");
      port_text = after.substr(1);
    }
  } else {
    auto colon = authority.rfind(':');
    ep.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
  }
  if (ep.host.empty()) return absl::InvalidArgumentError("no host in the URL");
  if (!port_text.empty()) {
    if (!ParsePort(port_text, /*allow_zero=*/false, &ep.port)) {
      return absl::InvalidArgumentError(Cat("bad port '", port_text, "'"));
    }
  }
  return ep;
}

SmtpReply ParseSmtpReply(std::string_view data) {
  SmtpReply r;
  bool first = true;
  while (true) {
    auto nl = data.find('\n');
    if (nl == std::string_view::npos) return r;  // the line is not complete yet
    std::string_view line = data.substr(0, nl);
    if (line.ends_with('\r')) line.remove_suffix(1);
    data.remove_prefix(nl + 1);
    const bool digits = line.size() >= 3 && std::all_of(line.begin(), line.begin() + 3, [](char c) {
                          return c >= '0' && c <= '9';
                        });
    if (!digits || (line.size() > 3 && line[3] != ' ' && line[3] != '-')) {
      r.complete = true;
      r.code = -1;
      r.text = std::string(line);
      return r;
    }
    const int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (first) {
      r.code = code;
      r.text = line.size() > 4 ? std::string(line.substr(4)) : "";
      first = false;
    }
    if (line.size() == 3 || line[3] == ' ') {
      r.code = code;  // the last line's code is the reply's
      r.complete = true;
      return r;
    }
  }
}

const char kTestSubject[] = "[setdiag] ТЕСТ: проверка уведомлений / TEST: notification check";

std::string TestWebhookBody(const std::string& id, int64_t now_ms, const std::string& host_name) {
  nlohmann::ordered_json body;
  body["id"] = id;
  body["type"] = "setdiag.test";
  body["test"] = true;
  body["occurred_at_ms"] = now_ms;
  body["ticket_id"] = 0;
  body["store_id"] = "";
  body["partner"] = "";
  body["priority"] = 1;
  body["subject_en"] = kTestSubjectEn;
  body["subject_ru"] = kTestSubjectRu;
  body["text_en"] = Cat(kTestTextEn, "\nSent ", IsoUtc(now_ms), " from ", host_name, ".");
  body["text_ru"] =
      Cat(kTestTextRu, "\nОтправлено ", IsoUtc(now_ms), " с сервера ", host_name, ".");
  body["evidence"] = nullptr;
  body["ticket"] = nullptr;
  return body.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::string TestMailMessage(const std::string& from, const std::vector<std::string>& to,
                            const std::string& id, const std::string& target_name, int64_t now_ms,
                            const std::string& host_name) {
  std::string domain;
  const std::string bare_from = BareAddress(from);
  if (auto at = bare_from.rfind('@'); at != std::string::npos) {
    for (char c : bare_from.substr(at + 1)) {
      if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '-') {
        domain.push_back(c);
      }
    }
  }
  if (domain.empty()) domain = "setdiag.invalid";
  std::string id_part;
  for (char c : id) {
    id_part.push_back((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                              c == '-'
                          ? c
                          : '.');
  }
  std::string to_header;
  for (const auto& a : to) Append(&to_header, to_header.empty() ? "" : ",\r\n ", HeaderAddress(a));
  std::string text;
  Append(&text, kTestSubjectRu, "\r\n\r\n", kTestTextRu, "\r\n", "Цель: ", target_name,
         ". Отправлено ", IsoUtc(now_ms), " с сервера ", host_name, ".\r\n\r\n",
         "----------------------------------------------------------------------\r\n\r\n",
         kTestSubjectEn, "\r\n\r\n", kTestTextEn, "\r\n", "Target: ", target_name, ". Sent ",
         IsoUtc(now_ms), " from ", host_name, ".\r\n");
  std::string msg;
  Append(&msg, "Date: ", RfcDate(now_ms), "\r\n", "From: ", HeaderAddress(from), "\r\n",
         "To: ", to_header, "\r\n", "Subject: ", EncodeHeaderText(kTestSubject), "\r\n",
         "Message-ID: <setdiag.", id_part, "@", domain, ">\r\n", "MIME-Version: 1.0\r\n",
         "Content-Type: text/plain; charset=utf-8\r\n", "Content-Transfer-Encoding: base64\r\n",
         "Auto-Submitted: auto-generated\r\n", "X-Setdiag-Event: setdiag.test\r\n",
         "X-Setdiag-Test: true\r\n", "X-Setdiag-Id: ", id, "\r\n", "\r\n");
  const std::string encoded = Base64(text);
  for (size_t i = 0; i < encoded.size(); i += 76) Append(&msg, encoded.substr(i, 76), "\r\n");
  return msg;
}

// ---- the command ----

std::vector<CheckLine> RunChecks(const CollectorConfig& cfg, const std::string& config_path,
                                 const CheckOptions& options, Clock& clock) {
  std::vector<CheckLine> out;
  size_t webhooks = 0, mails = 0;
  for (const auto& t : cfg.notify.targets)
    ++(t.kind == NotificationTarget::Kind::kWebhook ? webhooks : mails);
  out.push_back(CheckOk("config",
                        Cat("config ", config_path, ": every key valid (", webhooks,
                            " webhook(s), ", mails, " e-mail target(s))"),
                        Cat("конфигурация ", config_path, ": все ключи в порядке (вебхуков: ",
                            webhooks, ", почтовых целей: ", mails, ")")));
  const int64_t now = clock.NowMs();
  CheckListen(cfg, &out);
  CheckTls(cfg, now, &out);
  CheckCalendar(cfg, options, now, &out);
  out.push_back(DatabaseLine(cfg.data_dir, cfg.DatabasePath()));
  CheckTargets(cfg, options, clock, &out);
  return out;
}

int RunCheckCommand(const std::string& config_path, const CheckOptions& options, bool ru,
                    bool as_json, Clock& clock) {
  // A probed server that closes first must not kill the check on a write
  // (SSL_write and SSL_shutdown write without MSG_NOSIGNAL).
  ::signal(SIGPIPE, SIG_IGN);
  auto cfg = LoadCollectorConfig(config_path);
  if (!cfg.ok()) {
    std::cerr << "setdiag-collector: bad config: " << cfg.status().message() << "\n";
    PrintChecks({ConfigFailedLine(config_path, cfg.status())}, ru, as_json);
    return 2;
  }
  return PrintChecks(RunChecks(*cfg, config_path, options, clock), ru, as_json);
}

}  // namespace setdiag::collector
