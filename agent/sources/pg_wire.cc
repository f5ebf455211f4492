#include "agent/sources/pg_wire.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "agent/sources/resolve.h"
#include "common/digest.h"
#include "common/status.h"
#include "common/strings.h"

namespace setdiag::agent {
namespace {

using Clock = PgConnection::Clock;

constexpr int32_t kProtocol30 = 3 << 16;
constexpr int32_t kSslRequestCode = 80877103;

// ---- Building frontend messages -------------------------------------------

void PutInt32(std::string* out, int32_t v) {
  uint32_t u = static_cast<uint32_t>(v);
  for (int shift = 24; shift >= 0; shift -= 8)
    out->push_back(static_cast<char>((u >> shift) & 0xff));
}

void PutCString(std::string* out, std::string_view s) {
  out->append(s);
  out->push_back('\0');
}

// type byte (0: none, as in the startup packet), length word, body.
std::string Frame(char type, std::string_view body) {
  std::string out;
  if (type != 0) out.push_back(type);
  PutInt32(&out, static_cast<int32_t>(body.size() + 4));
  out.append(body);
  return out;
}

// ---- Reading backend message bodies ---------------------------------------

class Reader {
 public:
  explicit Reader(std::string_view b) : b_(b) {}
  bool Int32(int32_t* v) {
    if (b_.size() < 4) return false;
    uint32_t u = 0;
    for (int i = 0; i < 4; ++i)
      u = (u << 8) | static_cast<unsigned char>(b_[static_cast<size_t>(i)]);
    *v = static_cast<int32_t>(u);
    b_.remove_prefix(4);
    return true;
  }
  bool Int16(int* v) {
    if (b_.size() < 2) return false;
    *v = (static_cast<unsigned char>(b_[0]) << 8) | static_cast<unsigned char>(b_[1]);
    b_.remove_prefix(2);
    return true;
  }
  bool CString(std::string_view* s) {
    size_t nul = b_.find('\0');
    if (nul == std::string_view::npos) return false;
    *s = b_.substr(0, nul);
    b_.remove_prefix(nul + 1);
    return true;
  }
  bool Bytes(size_t n, std::string_view* s) {
    if (b_.size() < n) return false;
    *s = b_.substr(0, n);
    b_.remove_prefix(n);
    return true;
  }
  std::string_view rest() const { return b_; }

 private:
  std::string_view b_;
};

// ---- Hashing ---------------------------------------------------------------

std::string Digest(const EVP_MD* md, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out, &len, md, nullptr) != 1) return {};
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string Hmac256(std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
           reinterpret_cast<const unsigned char*>(data.data()), data.size(), out,
           &len) == nullptr) {
    return {};
  }
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string OpenSslError() {
  unsigned long e = ERR_get_error();  // NOLINT(runtime/int): OpenSSL's type
  ERR_clear_error();
  if (e == 0) return "unknown TLS error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return buf;
}

// ---- A socket BIO that writes with MSG_NOSIGNAL -----------------------------
// OpenSSL's own socket BIO uses write(), which raises SIGPIPE on a closed
// connection; the agent must not change the process's signal disposition.

int BioWrite(BIO* b, const char* data, int len) {
  int fd = *static_cast<int*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  ssize_t n = send(fd, data, static_cast<size_t>(len), MSG_NOSIGNAL);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) BIO_set_retry_write(b);
  return static_cast<int>(n);
}

int BioRead(BIO* b, char* data, int len) {
  int fd = *static_cast<int*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  ssize_t n = recv(fd, data, static_cast<size_t>(len), 0);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) BIO_set_retry_read(b);
  return static_cast<int>(n);
}

long BioCtrl(BIO*, int cmd, long, void*) {  // NOLINT(runtime/int): OpenSSL's signature
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

int BioCreate(BIO* b) {
  BIO_set_init(b, 1);
  return 1;
}

BIO_METHOD* NoSigpipeBioMethod() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "setdiag pg socket");
    if (m == nullptr) return m;
    BIO_meth_set_write(m, BioWrite);
    BIO_meth_set_read(m, BioRead);
    BIO_meth_set_ctrl(m, BioCtrl);
    BIO_meth_set_create(m, BioCreate);
    return m;
  }();
  return method;
}

std::string ErrnoText(int e) { return std::strerror(e); }

int64_t MsLeft(Clock::time_point deadline) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
}

// Message types in errors: 'X' when printable, else the byte's value.
std::string TypeName(char t) {
  if (t > ' ' && t < 127) return Cat("'", t, "'");
  return Cat("byte ", static_cast<int>(static_cast<unsigned char>(t)));
}

absl::Status ServerErrorStatus(const pgwire::ServerError& e) {
  return absl::UnavailableError(e.text);
}

}  // namespace

// ============================================================================
// Pure parts
// ============================================================================
namespace pgwire {

absl::StatusOr<bool> TakeMessage(std::string_view* buf, uint32_t max_length, char* type,
                                 std::string_view* body) {
  if (buf->size() < 5) return false;
  int32_t len = 0;
  Reader r(buf->substr(1, 4));
  r.Int32(&len);
  if (len < 4) {
    return absl::UnavailableError(
        Cat("protocol error: message ", TypeName((*buf)[0]), " with impossible length ", len));
  }
  if (static_cast<uint32_t>(len) > max_length) {
    return absl::UnavailableError(Cat("protocol error: message ", TypeName((*buf)[0]), " of ", len,
                                      " bytes, more than the limit of ", max_length));
  }
  size_t total = 1 + static_cast<size_t>(len);
  if (buf->size() < total) return false;
  *type = (*buf)[0];
  *body = buf->substr(5, total - 5);
  buf->remove_prefix(total);
  return true;
}

absl::StatusOr<std::vector<std::optional<std::string>>> ParseDataRow(std::string_view body) {
  Reader r(body);
  int n = 0;
  if (!r.Int16(&n)) return absl::UnavailableError("protocol error: short DataRow");
  std::vector<std::optional<std::string>> values;
  values.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    int32_t len = 0;
    if (!r.Int32(&len)) return absl::UnavailableError("protocol error: truncated DataRow");
    if (len == -1) {
      values.emplace_back(std::nullopt);
      continue;
    }
    std::string_view v;
    if (len < 0 || !r.Bytes(static_cast<size_t>(len), &v)) {
      return absl::UnavailableError("protocol error: bad value length in DataRow");
    }
    values.emplace_back(std::string(v));
  }
  if (!r.rest().empty()) return absl::UnavailableError("protocol error: trailing bytes in DataRow");
  return values;
}

ServerError ParseErrorResponse(std::string_view body) {
  ServerError e;
  std::string severity_localized, message;
  Reader r(body);
  while (!r.rest().empty() && r.rest()[0] != '\0') {
    std::string_view field, value;
    if (!r.Bytes(1, &field) || !r.CString(&value)) break;
    switch (field[0]) {
      case 'S':
        severity_localized = value;
        break;
      case 'V':
        e.severity = value;
        break;
      case 'C':
        e.sqlstate = value;
        break;
      case 'M':
        message = value;
        break;
      default:
        break;
    }
  }
  if (e.severity.empty()) e.severity = severity_localized.empty() ? "ERROR" : severity_localized;
  e.text = Cat(e.severity, ": ", message.empty() ? "(no message)" : message);
  if (!e.sqlstate.empty()) Append(&e.text, " (SQLSTATE ", e.sqlstate, ")");
  return e;
}

std::string Md5Password(std::string_view user, std::string_view password, std::string_view salt) {
  std::string inner = Hex(Digest(EVP_md5(), Cat(password, user)));
  return "md5" + Hex(Digest(EVP_md5(), Cat(inner, salt)));
}

ScramSha256::ScramSha256(std::string user, std::string password, std::string client_nonce)
    : password_(std::move(password)), nonce_(std::move(client_nonce)) {
  if (nonce_.empty()) {
    // Without randomness the nonce stays empty and ClientFinal fails: never
    // go ahead with a guessable one.
    unsigned char raw[18];
    if (RAND_bytes(raw, sizeof raw) == 1)
      nonce_ = Base64(std::string_view(reinterpret_cast<char*>(raw), sizeof raw));
  }
  // '=' and ',' in a SCRAM user name are escaped (RFC 5802 5.1).
  std::string escaped;
  for (char c : user) {
    if (c == '=')
      escaped += "=3D";
    else if (c == ',')
      escaped += "=2C";
    else
      escaped += c;
  }
  client_first_bare_ = Cat("n=", escaped, ",r=", nonce_);
}

absl::StatusOr<std::string> ScramSha256::ClientFinal(std::string_view server_first) {
  if (nonce_.empty()) return absl::InternalError("SCRAM: no random nonce available");
  std::string_view nonce, salt_b64, iter_text;
  for (std::string_view attr : Split(server_first, ',')) {
    if (attr.size() < 2 || attr[1] != '=')
      return absl::UnavailableError("SCRAM: malformed server-first-message");
    std::string_view v = attr.substr(2);
    if (attr[0] == 'r')
      nonce = v;
    else if (attr[0] == 's')
      salt_b64 = v;
    else if (attr[0] == 'i')
      iter_text = v;
    else if (attr[0] == 'm')
      return absl::UnavailableError("SCRAM: unsupported mandatory extension");
  }
  if (nonce.size() <= nonce_.size() || nonce.substr(0, nonce_.size()) != nonce_) {
    return absl::UnavailableError("SCRAM: the server's nonce does not extend ours");
  }
  auto salt = Unbase64(salt_b64);
  int iterations = 0;
  auto [p, ec] = std::from_chars(iter_text.data(), iter_text.data() + iter_text.size(), iterations);
  if (!salt || salt->empty() || ec != std::errc() || p != iter_text.data() + iter_text.size() ||
      iterations < 1) {
    return absl::UnavailableError("SCRAM: bad salt or iteration count from the server");
  }
  if (iterations > kMaxScramIterations) {
    return absl::UnavailableError(Cat("SCRAM: the server asks for ", iterations,
                                      " iterations, more than ", kMaxScramIterations));
  }
  unsigned char salted[32];
  if (PKCS5_PBKDF2_HMAC(password_.data(), static_cast<int>(password_.size()),
                        reinterpret_cast<const unsigned char*>(salt->data()),
                        static_cast<int>(salt->size()), iterations, EVP_sha256(), sizeof salted,
                        salted) != 1) {
    return absl::InternalError("SCRAM: PBKDF2 failed");
  }
  std::string_view salted_password(reinterpret_cast<char*>(salted), sizeof salted);
  std::string client_key = Hmac256(salted_password, "Client Key");
  std::string stored_key = Digest(EVP_sha256(), client_key);
  std::string without_proof = Cat("c=biws,r=", nonce);  // biws = base64("n,,")
  std::string auth_message = Cat(client_first_bare_, ",", server_first, ",", without_proof);
  std::string signature = Hmac256(stored_key, auth_message);
  if (client_key.size() != 32 || signature.size() != 32)
    return absl::InternalError("SCRAM: HMAC failed");
  std::string proof(32, '\0');
  for (size_t i = 0; i < 32; ++i) proof[i] = static_cast<char>(client_key[i] ^ signature[i]);
  expected_server_signature_ = Hmac256(Hmac256(salted_password, "Server Key"), auth_message);
  OPENSSL_cleanse(salted, sizeof salted);
  return Cat(without_proof, ",p=", Base64(proof));
}

absl::Status ScramSha256::VerifyServerFinal(std::string_view server_final) const {
  if (expected_server_signature_.empty())
    return absl::UnavailableError("SCRAM: server-final before client-final");
  if (server_final.substr(0, 2) == "e=") {
    return absl::UnavailableError(Cat("SCRAM: the server refused: ", server_final.substr(2)));
  }
  if (server_final.substr(0, 2) != "v=")
    return absl::UnavailableError("SCRAM: malformed server-final-message");
  std::string_view v = server_final.substr(2);
  v = v.substr(0, v.find(','));
  auto sig = Unbase64(v);
  if (!sig || sig->size() != expected_server_signature_.size() ||
      CRYPTO_memcmp(sig->data(), expected_server_signature_.data(), sig->size()) != 0) {
    return absl::UnavailableError(
        "SCRAM: the server's signature is wrong (it does not know the password)");
  }
  return absl::OkStatus();
}

}  // namespace pgwire

// ============================================================================
// The connection
// ============================================================================

absl::StatusOr<std::unique_ptr<PgConnection>> PgConnection::Connect(const PgConnectParams& p) {
  if (p.port <= 0 || p.port > 65535) return absl::InvalidArgumentError(Cat("bad port ", p.port));
  if (p.user.empty()) return absl::InvalidArgumentError("no user name");
  // The startup packet and the password message are NUL-terminated: a NUL
  // inside would cut the value or smuggle in another parameter. Named, the
  // value never shown (it may be the password).
  for (const auto& [name, value] : {std::pair<const char*, const std::string*>{"user", &p.user},
                                    {"database", &p.database},
                                    {"options", &p.options},
                                    {"application_name", &p.application_name},
                                    {"password", &p.password},
                                    {"host", &p.host}}) {
    if (value->find('\0') != std::string::npos)
      return absl::InvalidArgumentError(Cat("the ", name, " contains a NUL byte"));
  }
  const auto timeout = std::chrono::milliseconds(std::max<int64_t>(1, p.connect_timeout_ms));

  if (!p.host.empty() && p.host[0] == '/') {
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    std::string path = Cat(p.host, "/.s.PGSQL.", p.port);
    if (path.size() >= sizeof sun.sun_path)
      return absl::InvalidArgumentError(Cat("socket path too long: ", path));
    std::memcpy(sun.sun_path, path.c_str(), path.size() + 1);
    std::unique_ptr<PgConnection> c(new PgConnection());
    absl::Status st = c->ConnectTo(p, &sun, sizeof sun, AF_UNIX, Clock::now() + timeout);
    if (!st.ok())
      return absl::Status(
          st.code(), Cat("connection to server on socket \"", path, "\" failed: ", st.message()));
    return c;
  }

  // A name is resolved by c-ares within the connect timeout (agent/sources/resolve.h);
  // an IP literal is never looked up.
  ASSIGN_OR_RETURN(auto resolved, ResolveTcp(p.host, p.port, timeout));
  std::vector<std::string> failures;
  absl::StatusCode code = absl::StatusCode::kUnavailable;
  for (const ResolvedAddress& a : resolved) {
    const std::string& text = a.text;
    const auto* addr = reinterpret_cast<const sockaddr*>(&a.addr);
    std::unique_ptr<PgConnection> c(new PgConnection());
    const Clock::time_point deadline = Clock::now() + timeout;
    absl::Status st = c->ConnectTo(p, addr, a.len, a.family, deadline);
    if (st.ok()) return c;
    if (p.sslmode == PgSslMode::kPrefer && c->retry_without_tls_) {
      // As libpq: the same address again without TLS, within the same deadline.
      PgConnectParams plain = p;
      plain.sslmode = PgSslMode::kDisable;
      c.reset(new PgConnection());
      absl::Status again = c->ConnectTo(plain, addr, a.len, a.family, deadline);
      if (again.ok()) return c;
      st =
          absl::Status(again.code(),
                       Cat(st.message(), "; then without TLS (sslmode=prefer): ", again.message()));
    }
    code = st.code();
    // As libpq words it: connection to server at "db" (10.0.0.5), port 5432 failed: ...
    std::string where =
        p.host == text ? Cat("\"", text, "\"") : Cat("\"", p.host, "\" (", text, ")");
    failures.push_back(
        Cat("connection to server at ", where, ", port ", p.port, " failed: ", st.message()));
  }
  if (failures.empty()) return absl::UnavailableError(Cat("no address for host \"", p.host, "\""));
  std::string all;
  for (const auto& f : failures) Append(&all, all.empty() ? "" : "; ", f);
  return absl::Status(code, all);
}

absl::Status PgConnection::ConnectTo(const PgConnectParams& p, const void* addr, unsigned addr_len,
                                     int family, Clock::time_point deadline) {
  fd_ = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return absl::UnavailableError(Cat("socket: ", ErrnoText(errno)));
  if (family != AF_UNIX) {
    int one = 1, idle = 5, interval = 2, count = 3;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd_, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    setsockopt(fd_, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(fd_, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
    setsockopt(fd_, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
    if (p.tcp_user_timeout_ms > 0) {
      auto ms = static_cast<unsigned>(std::min<int64_t>(p.tcp_user_timeout_ms, INT32_MAX));
      setsockopt(fd_, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof ms);
    }
  }
  if (connect(fd_, static_cast<const sockaddr*>(addr), addr_len) != 0) {
    // EAGAIN is not "in progress" (that is EINPROGRESS): on a Unix socket
    // the server's listen queue is full, on TCP the kernel lacks resources.
    if (errno == EAGAIN && family == AF_UNIX) {
      return Broken(
          absl::UnavailableError("the server's listen queue is full (connect: EAGAIN): it is "
                                 "overloaded or not accepting"));
    }
    if (errno == EAGAIN) return Broken(absl::UnavailableError(Cat("connect: ", ErrnoText(EAGAIN))));
    if (errno != EINPROGRESS) return Broken(absl::UnavailableError(ErrnoText(errno)));
    RETURN_IF_ERROR(Wait(POLLOUT, deadline, "connecting"));
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err != 0) return Broken(absl::UnavailableError(ErrnoText(err)));
  }
  if (family != AF_UNIX && p.sslmode != PgSslMode::kDisable) {
    RETURN_IF_ERROR(StartTls(p, deadline));
  }
  return Startup(p, deadline);
}

absl::Status PgConnection::StartTls(const PgConnectParams& p, Clock::time_point deadline) {
  std::string request;
  PutInt32(&request, 8);
  PutInt32(&request, kSslRequestCode);
  RETURN_IF_ERROR(SendAll(request, deadline));
  // Exactly one byte: anything the server sent after it would be unencrypted
  // data injected before the handshake (CVE-2021-23222).
  char answer = 0;
  while (true) {
    ssize_t n = recv(fd_, &answer, 1, 0);
    if (n == 1) break;
    RETURN_IF_ERROR(AfterIo(n, POLLIN, deadline, "waiting for the answer to the SSL request"));
  }
  if (answer == 'N') {
    if (p.sslmode == PgSslMode::kRequire) {
      return Broken(absl::UnavailableError(
          "server does not support SSL, but SSL was required (sslmode=require)"));
    }
    return absl::OkStatus();  // prefer: go on in plain text
  }
  if (answer != 'S') {
    return Broken(absl::UnavailableError(
        Cat("protocol error: unexpected answer ", TypeName(answer), " to the SSL request")));
  }
  // No verification (as libpq's prefer/require): see the header.
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr) return Broken(absl::UnavailableError(Cat("TLS: ", OpenSslError())));
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  // A close without close_notify reads as end of stream; the framing above
  // TLS catches a truncated message anyway.
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
  ssl_ = SSL_new(ctx);
  SSL_CTX_free(ctx);  // the SSL keeps its own reference
  BIO* bio = (ssl_ != nullptr && NoSigpipeBioMethod() != nullptr) ? BIO_new(NoSigpipeBioMethod())
                                                                  : nullptr;
  if (bio == nullptr) return Broken(absl::UnavailableError(Cat("TLS: ", OpenSslError())));
  BIO_set_data(bio, &fd_);
  SSL_set_bio(ssl_, bio, bio);
  in6_addr ip6{};
  in_addr ip4{};
  if (inet_pton(AF_INET, p.host.c_str(), &ip4) != 1 &&
      inet_pton(AF_INET6, p.host.c_str(), &ip6) != 1) {
    // SNI, for names only, as libpq (SSL_set_tlsext_host_name without its C cast).
    SSL_ctrl(ssl_, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(p.host.c_str()));
  }
  while (true) {
    ERR_clear_error();
    errno = 0;
    int rc = SSL_connect(ssl_);
    if (rc == 1) return absl::OkStatus();
    if (absl::Status st = AfterIo(rc, POLLIN, deadline, "doing the TLS handshake"); !st.ok()) {
      // A handshake that failed (not one that ran out of time) is retried
      // without TLS in prefer mode, as libpq does.
      retry_without_tls_ = st.code() != absl::StatusCode::kDeadlineExceeded;
      return st;
    }
  }
}

namespace {

// The StartupMessage's body: protocol 3.0 and the non-empty parameters.
std::string StartupBody(const PgConnectParams& p) {
  std::string body;
  PutInt32(&body, kProtocol30);
  auto param = [&body](std::string_view k, std::string_view v) {
    if (v.empty()) return;
    PutCString(&body, k);
    PutCString(&body, v);
  };
  param("user", p.user);
  param("database", p.database);
  param("application_name", p.application_name);
  param("options", p.options);
  body.push_back('\0');
  return body;
}

// Refuses a weaker method once SCRAM has started: a man in the middle
// would ask for the password in clear (or an MD5 answer to attack).
absl::Status NoDowngrade(const std::optional<pgwire::ScramSha256>& scram, const char* method) {
  if (!scram) return absl::OkStatus();
  return absl::UnavailableError(Cat("the server asks for a ", method,
                                    " password in the middle of a SCRAM exchange: refused (a "
                                    "downgrade, possibly a man in the middle)"));
}

absl::Status NeedPassword(const PgConnectParams& p, const char* method) {
  if (!p.password.empty()) return absl::OkStatus();
  return absl::UnavailableError(
      Cat("the server asks for a password (", method, ") but none is configured"));
}

// AuthenticationCleartextPassword (3): the PasswordMessage to send.
absl::StatusOr<std::string> CleartextAnswer(const PgConnectParams& p,
                                            const std::optional<pgwire::ScramSha256>& scram) {
  RETURN_IF_ERROR(NoDowngrade(scram, "cleartext"));
  RETURN_IF_ERROR(NeedPassword(p, "password"));
  return Frame('p', Cat(p.password, '\0'));
}

// AuthenticationMD5Password (5), `rest` starting with the salt: the
// PasswordMessage to send.
absl::StatusOr<std::string> Md5Answer(const PgConnectParams& p, std::string_view rest,
                                      const std::optional<pgwire::ScramSha256>& scram) {
  Reader r(rest);
  std::string_view salt;
  if (!r.Bytes(4, &salt)) return absl::UnavailableError("protocol error: short MD5 salt");
  RETURN_IF_ERROR(NoDowngrade(scram, "MD5"));
  RETURN_IF_ERROR(NeedPassword(p, "md5"));
  return Frame('p', Cat(pgwire::Md5Password(p.user, p.password, salt), '\0'));
}

// AuthenticationSASL (10), `rest` listing the mechanisms: starts the SCRAM
// client in *scram and gives the SASLInitialResponse to send.
absl::StatusOr<std::string> SaslInitialAnswer(const PgConnectParams& p, std::string_view rest,
                                              std::optional<pgwire::ScramSha256>* scram) {
  Reader r(rest);
  bool offered = false;
  std::string all;
  std::string_view mech;
  while (r.CString(&mech) && !mech.empty()) {
    offered = offered || mech == "SCRAM-SHA-256";
    Append(&all, all.empty() ? "" : ", ", mech);
  }
  if (!offered) return absl::UnavailableError(Cat("unsupported SASL mechanism(s): ", all));
  if (*scram) return absl::UnavailableError("protocol error: second SASL exchange");
  RETURN_IF_ERROR(NeedPassword(p, "SCRAM-SHA-256"));
  scram->emplace("", p.password);
  std::string first = (*scram)->ClientFirst(), msg;
  PutCString(&msg, "SCRAM-SHA-256");
  PutInt32(&msg, static_cast<int32_t>(first.size()));
  msg += first;
  return Frame('p', msg);
}

// AuthenticationSASLContinue (11), `rest` the server-first-message: the
// SASLResponse (client-final-message) to send.
absl::StatusOr<std::string> SaslContinueAnswer(std::string_view rest,
                                               std::optional<pgwire::ScramSha256>& scram,
                                               Clock::time_point deadline) {
  if (!scram) return absl::UnavailableError("protocol error: SASLContinue without SASL");
  ASSIGN_OR_RETURN(std::string final_msg, scram->ClientFinal(rest));
  if (Clock::now() >= deadline)  // PBKDF2 itself does not look at the clock
    return absl::DeadlineExceededError("timeout while computing the SCRAM proof");
  return Frame('p', final_msg);
}

// The methods this client does not speak, named.
absl::Status UnsupportedAuthMethod(int32_t code) {
  switch (code) {
    case 2:
      return absl::UnavailableError("Kerberos V5 authentication is not supported");
    case 6:
      return absl::UnavailableError("SCM credentials authentication is not supported");
    case 7:
    case 8:
      return absl::UnavailableError("GSSAPI authentication is not supported");
    case 9:
      return absl::UnavailableError("SSPI authentication is not supported");
    default:
      return absl::UnavailableError(Cat("authentication method ", code, " is not supported"));
  }
}

}  // namespace

struct PgConnection::AuthExchange {
  std::optional<pgwire::ScramSha256> scram;
  bool scram_verified = false;
};

absl::Status PgConnection::Startup(const PgConnectParams& p, Clock::time_point deadline) {
  RETURN_IF_ERROR(SendAll(Frame(0, StartupBody(p)), deadline));
  AuthExchange auth;
  while (true) {
    ASSIGN_OR_RETURN(auto m, ReadMessage(deadline));
    Reader r(m.body);
    switch (m.type) {
      case 'R':
        if (absl::Status st = OnAuthRequest(p, m.body, auth, deadline); !st.ok()) return Broken(st);
        break;
      case 'E':
        // Refused before authentication on TLS (e.g. only hostnossl lines in
        // pg_hba.conf): libpq retries without TLS in prefer mode.
        if (ssl_ != nullptr && !authenticated_) retry_without_tls_ = true;
        return Broken(ServerErrorStatus(pgwire::ParseErrorResponse(m.body)));
      case 'S': {
        std::string_view k, v;
        if (r.CString(&k) && r.CString(&v)) parameters_[std::string(k)] = std::string(v);
        break;
      }
      case 'K': {
        int32_t pid = 0;
        r.Int32(&pid);
        backend_pid_ = pid;
        break;
      }
      case 'N':
      case 'v':
        break;  // notice; NegotiateProtocolVersion (we ask for nothing optional)
      case 'Z':
        if (!authenticated_)
          return Broken(
              absl::UnavailableError("protocol error: ReadyForQuery before authentication"));
        return absl::OkStatus();
      default:
        return Broken(absl::UnavailableError(
            Cat("protocol error: unexpected message ", TypeName(m.type), " at startup")));
    }
  }
}

absl::Status PgConnection::OnAuthRequest(const PgConnectParams& p, std::string_view body,
                                         AuthExchange& auth, Clock::time_point deadline) {
  Reader r(body);
  int32_t code = -1;
  if (!r.Int32(&code))
    return absl::UnavailableError("protocol error: short authentication request");
  if (authenticated_ && code != 0)
    return absl::UnavailableError("protocol error: authentication after AuthenticationOk");
  absl::StatusOr<std::string> answer;
  switch (code) {
    case 0:
      if (auth.scram && !auth.scram_verified) {
        return absl::UnavailableError(
            "SCRAM: the server ended the exchange without proving itself");
      }
      authenticated_ = true;
      return absl::OkStatus();
    case 3:
      answer = CleartextAnswer(p, auth.scram);
      break;
    case 5:
      answer = Md5Answer(p, r.rest(), auth.scram);
      break;
    case 10:
      answer = SaslInitialAnswer(p, r.rest(), &auth.scram);
      break;
    case 11:
      answer = SaslContinueAnswer(r.rest(), auth.scram, deadline);
      break;
    case 12: {
      if (!auth.scram) return absl::UnavailableError("protocol error: SASLFinal without SASL");
      absl::Status st = auth.scram->VerifyServerFinal(r.rest());
      auth.scram_verified = st.ok();
      return st;
    }
    default:
      return UnsupportedAuthMethod(code);
  }
  if (!answer.ok()) return answer.status();
  return SendAll(*answer, deadline);
}

absl::StatusOr<PgResult> PgConnection::SimpleQuery(std::string_view sql,
                                                   Clock::time_point deadline) {
  if (!ok()) return absl::FailedPreconditionError("the connection is broken");
  if (sql.find('\0') != std::string_view::npos)
    return absl::InvalidArgumentError("query contains a NUL byte");
  RETURN_IF_ERROR(SendAll(Frame('Q', Cat(sql, '\0')), deadline));
  PgResult result;
  bool described = false;             // a RowDescription came in the current statement
  size_t result_bytes = 0;            // all DataRows of this query, with overhead
  std::optional<absl::Status> error;  // the first error of this query
  auto fail = [&error](absl::Status st) {
    if (!error) error = std::move(st);
  };
  while (true) {
    auto m = ReadMessage(deadline);
    if (!m.ok()) {
      // A FATAL ErrorResponse before the close says more than the close.
      if (error && broken_) return *error;
      return m.status();
    }
    Reader r(m->body);
    switch (m->type) {
      case 'T': {
        int n = 0;
        if (!r.Int16(&n))
          return Broken(absl::UnavailableError("protocol error: short RowDescription"));
        result = PgResult{};  // a new result set replaces the previous one
        result.columns = n;
        described = true;
        break;
      }
      case 'D': {
        // Counted before parsing: what the row will hold (values and
        // their std::optional<std::string>s, the vector).
        result_bytes += m->body.size() + sizeof(std::vector<std::optional<std::string>>);
        if (m->body.size() >= 2) {
          result_bytes += sizeof(std::optional<std::string>) *
                          ((static_cast<size_t>(static_cast<unsigned char>(m->body[0])) << 8) |
                           static_cast<unsigned char>(m->body[1]));
        }
        if (result_bytes > pgwire::kMaxResultBytes) {
          return Broken(absl::ResourceExhaustedError(
              Cat("result too large (more than ", pgwire::kMaxResultBytes >> 20, " MiB)")));
        }
        auto row = pgwire::ParseDataRow(m->body);
        if (!row.ok()) return Broken(row.status());
        if (static_cast<int>(row->size()) != result.columns) {
          return Broken(
              absl::UnavailableError("protocol error: DataRow does not match RowDescription"));
        }
        result.rows.push_back(std::move(*row));
        break;
      }
      case 'C': {
        // A statement without rows (SET, INSERT...) is the result now, as
        // PQexec's last result: nothing of an earlier SELECT stays.
        if (!described) result = PgResult{};
        described = false;
        std::string_view tag;
        if (r.CString(&tag)) result.command_tag = tag;
        break;
      }
      case 'I':
        break;  // empty query
      case 'E': {
        auto e = pgwire::ParseErrorResponse(m->body);
        if (e.severity == "FATAL" || e.severity == "PANIC")
          broken_ = true;  // the server closes next
        fail(ServerErrorStatus(e));
        break;
      }
      case 'G': {  // CopyInResponse: refuse; the server answers with an error, then ReadyForQuery
        fail(absl::UnimplementedError("COPY is not supported"));
        RETURN_IF_ERROR(
            SendAll(Frame('f', Cat("COPY is not supported by setdiag", '\0')), deadline));
        break;
      }
      case 'H':  // CopyOutResponse: CopyData / CopyDone follow; drop them
        fail(absl::UnimplementedError("COPY is not supported"));
        break;
      case 'd':
      case 'c':
      case 'N':
      case 'A':
        break;  // copy data, notices, notifications
      case 'S': {
        std::string_view k, v;
        if (r.CString(&k) && r.CString(&v)) parameters_[std::string(k)] = std::string(v);
        break;
      }
      case 'Z':
        if (error) return *error;
        return result;
      default:
        return Broken(
            absl::UnavailableError(Cat("protocol error: unexpected message ", TypeName(m->type))));
    }
  }
}

absl::Status PgConnection::Wait(short events, Clock::time_point deadline, const char* what) {
  while (true) {
    int64_t left = MsLeft(deadline);
    if (left <= 0) return Broken(absl::DeadlineExceededError(Cat("timeout while ", what)));
    pollfd pfd{fd_, events, 0};
    int rc = poll(&pfd, 1, static_cast<int>(std::min<int64_t>(left, 60'000)));
    if (rc > 0) return absl::OkStatus();  // ready, or an error the next call reports
    if (rc < 0 && errno != EINTR)
      return Broken(absl::UnavailableError(Cat("poll: ", ErrnoText(errno))));
  }
}

absl::Status PgConnection::AfterIo(ssize_t n, short want, Clock::time_point deadline,
                                   const char* what) {
  int e = errno;
  if (ssl_ != nullptr) {
    switch (SSL_get_error(ssl_, static_cast<int>(n))) {
      case SSL_ERROR_WANT_READ:
        return Wait(POLLIN, deadline, what);
      case SSL_ERROR_WANT_WRITE:
        return Wait(POLLOUT, deadline, what);
      case SSL_ERROR_ZERO_RETURN:
        e = 0;
        break;
      case SSL_ERROR_SYSCALL:
        break;
      default:
        return Broken(absl::UnavailableError(Cat("TLS error while ", what, ": ", OpenSslError())));
    }
    ERR_clear_error();  // whatever SSL_ERROR_SYSCALL / ZERO_RETURN left queued
  } else if (n < 0 && (e == EAGAIN || e == EWOULDBLOCK)) {
    return Wait(want, deadline, what);
  } else if (n < 0 && e == EINTR) {
    return absl::OkStatus();
  }
  if (n == 0 || e == 0)
    return Broken(absl::UnavailableError("server closed the connection unexpectedly"));
  return Broken(absl::UnavailableError(Cat("error while ", what, ": ", ErrnoText(e))));
}

absl::Status PgConnection::SendAll(std::string_view data, Clock::time_point deadline) {
  if (fd_ < 0) return absl::FailedPreconditionError("not connected");
  while (!data.empty()) {
    ERR_clear_error();
    errno = 0;
    ssize_t n =
        ssl_ != nullptr
            ? SSL_write(ssl_, data.data(), static_cast<int>(std::min<size_t>(data.size(), 1 << 30)))
            : send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n > 0) {
      data.remove_prefix(static_cast<size_t>(n));
    } else {
      RETURN_IF_ERROR(AfterIo(n, POLLOUT, deadline, "sending to the server"));
    }
  }
  return absl::OkStatus();
}

absl::Status PgConnection::ReadSome(Clock::time_point deadline) {
  if (fd_ < 0) return absl::FailedPreconditionError("not connected");
  char buf[16384];
  while (true) {
    ERR_clear_error();
    errno = 0;
    ssize_t n = ssl_ != nullptr ? SSL_read(ssl_, buf, sizeof buf) : recv(fd_, buf, sizeof buf, 0);
    if (n > 0) {
      in_.append(buf, static_cast<size_t>(n));
      return absl::OkStatus();
    }
    RETURN_IF_ERROR(AfterIo(n, POLLIN, deadline, "waiting for the server"));
  }
}

absl::StatusOr<PgConnection::Message> PgConnection::ReadMessage(Clock::time_point deadline) {
  // The previous message (in_[..in_pos_]) has been consumed by now.
  if (in_pos_ == in_.size()) {
    in_.clear();
    in_pos_ = 0;
  }
  constexpr size_t kKeepCapacity = 256u << 10;
  if (in_.capacity() > kKeepCapacity && in_.size() - in_pos_ <= kKeepCapacity) {
    // After a large message: give the memory back.
    std::string(in_, in_pos_).swap(in_);
    in_pos_ = 0;
  }
  const uint32_t limit =
      authenticated_ ? pgwire::kMaxMessageLength : pgwire::kMaxStartupMessageLength;
  while (true) {
    std::string_view pending(in_.data() + in_pos_, in_.size() - in_pos_);
    Message m;
    auto got = pgwire::TakeMessage(&pending, limit, &m.type, &m.body);
    if (!got.ok()) return Broken(got.status());
    if (*got) {
      in_pos_ = in_.size() - pending.size();
      return m;  // m.body points into in_, kept until the next call
    }
    if (in_pos_ > 0) {  // keep only the partial message
      in_.erase(0, in_pos_);
      in_pos_ = 0;
    }
    RETURN_IF_ERROR(ReadSome(deadline));
  }
}

absl::Status PgConnection::Broken(absl::Status st) {
  broken_ = true;
  return st;
}

void PgConnection::Close() {
  if (fd_ >= 0 && !broken_) {
    // Terminate, best effort: one non-blocking attempt, no waiting.
    std::string x = Frame('X', "");
    if (ssl_ != nullptr) {
      SSL_write(ssl_, x.data(), static_cast<int>(x.size()));
      SSL_shutdown(ssl_);
    } else {
      [[maybe_unused]] ssize_t n = send(fd_, x.data(), x.size(), MSG_NOSIGNAL);
    }
  }
  if (ssl_ != nullptr) SSL_free(ssl_);  // frees the BIO too
  ssl_ = nullptr;
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  // The best-effort Terminate / shutdown above may fail and queue errors;
  // leave none on the thread for the next OpenSSL user.
  ERR_clear_error();
}

PgConnection::~PgConnection() { Close(); }

}  // namespace setdiag::agent
