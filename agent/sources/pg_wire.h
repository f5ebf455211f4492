#pragma once
// A small PostgreSQL client speaking the frontend/backend protocol 3.0
// directly, for the agent's read-only polling of SET's databases.
//
// Why not libpq: Debian's libpq pulls in Kerberos, LDAP, GnuTLS, p11-kit and
// its own TLS stack, about 5 MiB resident in a process whose whole budget is
// 15 MiB, to run a few SELECTs a second. This client needs only OpenSSL,
// which the agent links anyway. The tests and tools keep using libpq.
//
// Supported:
//  - TCP (host name, IPv4, IPv6; every resolved address is tried in turn)
//    and Unix sockets (host starting with '/' is the socket directory, the
//    socket is <dir>/.s.PGSQL.<port>). TCP keepalive (idle 5 s, interval
//    2 s, 3 probes) and TCP_USER_TIMEOUT are set on every TCP connection.
//    An IP literal is never looked up in DNS; a host NAME is resolved by
//    c-ares from /etc/hosts, then DNS (agent/sources/resolve.h: no NSS modules are
//    loaded), within connect_timeout_ms.
//  - sslmode disable | prefer (the default, as libpq's) | require. Like
//    libpq in these modes the server certificate is NOT verified: TLS
//    protects against passive eavesdropping only, not against an active
//    man in the middle. There is no verify-ca / verify-full. Unix sockets
//    never use TLS. As libpq, prefer retries the same address without TLS
//    when the TLS handshake fails or when the server answers the startup
//    on TLS with an error before authentication (pg_hba.conf with only
//    hostnossl lines); require never does.
//    The risk of prefer: a man in the middle can answer "no TLS" (or break
//    the handshake) and get a plain session; if the server (or the man in
//    the middle) then asks for a cleartext password (method 3), the
//    password crosses the network in clear, and an MD5 answer can be
//    attacked offline. Use SCRAM-SHA-256 on the server, and require where
//    the network is not trusted.
//  - Authentication: trust, cleartext password, MD5, SCRAM-SHA-256 (without
//    channel binding; the server's signature is verified, at most 100000
//    iterations are accepted). Once a SCRAM exchange has started, a request
//    for a cleartext or MD5 password is refused (a downgrade). GSSAPI, SSPI,
//    Kerberos and SCRAM-SHA-256-PLUS only are refused with an error naming
//    the method. The password is used as given (no SASLprep), which is
//    exact for ASCII passwords.
//  - The simple query protocol, results as text with NULL kept apart.
//
// Memory is bounded: a backend message may be at most 64 KiB before
// AuthenticationOk and 16 MiB after; one query's rows may hold at most
// 32 MiB (more: an error, and the connection is broken). The input buffer
// is shrunk back after a large message.
//
// Not read, unlike libpq: ~/.pgpass, pg_service.conf, the PG* environment
// variables; everything comes from PgConnectParams.
//
// Every operation has a deadline, enforced with poll(). A timeout, an I/O
// error, a protocol violation or a FATAL error marks the connection broken
// (ok() false) for good; an ordinary query error (ERROR) leaves it usable.
// No exceptions; writes never raise SIGPIPE (send with MSG_NOSIGNAL, also
// under TLS through our own OpenSSL BIO). Not thread-safe.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

typedef struct ssl_st SSL;  // NOLINT: OpenSSL's own spelling

namespace setdiag::agent {

enum class PgSslMode { kDisable, kPrefer, kRequire };

struct PgConnectParams {
  std::string host = "127.0.0.1";  // name, IPv4, IPv6, or a Unix-socket directory ("/...")
  int port = 5432;
  std::string user = "postgres";
  std::string password;  // empty: none; an error if the server asks for one
  std::string database;  // empty: same as user (the server's rule)
  std::string application_name;
  std::string options;  // the startup "options", e.g. "-c statement_timeout=5000"
  // Bounds each address's attempt: connect, TLS handshake, authentication.
  int64_t connect_timeout_ms = 3000;
  int64_t tcp_user_timeout_ms = 0;  // 0: the kernel's default
  PgSslMode sslmode = PgSslMode::kPrefer;
};

// One query's rows. With several statements in one query string the last
// statement's result is kept, as libpq's PQexec does: "SELECT 1; SET x = 1"
// gives the SET's (no columns, no rows, tag "SET").
struct PgResult {
  int columns = 0;  // 0 when the statement returns no rows (e.g. SET)
  std::vector<std::vector<std::optional<std::string>>> rows;  // nullopt: NULL
  std::string command_tag;                                    // e.g. "SELECT 3"
};

class PgConnection {
 public:
  using Clock = std::chrono::steady_clock;

  // Errors: Unavailable (unreachable, refused, TLS, authentication, server
  // error), DeadlineExceeded (timeout), InvalidArgument (bad params, e.g. a
  // NUL byte in user, database, options, application_name or password).
  static absl::StatusOr<std::unique_ptr<PgConnection>> Connect(const PgConnectParams& params);

  // Sends Terminate when the connection is still sound, then closes.
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  // A server ERROR returns its message ("ERROR: ... (SQLSTATE xxxxx)") and
  // the connection stays usable; anything worse marks it broken, also a
  // result larger than pgwire::kMaxResultBytes (ResourceExhausted, "result
  // too large (more than 32 MiB)").
  absl::StatusOr<PgResult> SimpleQuery(std::string_view sql, Clock::time_point deadline);

  bool ok() const { return fd_ >= 0 && !broken_; }
  bool tls() const { return ssl_ != nullptr; }
  // ParameterStatus values reported by the server (server_version, TimeZone...).
  const std::map<std::string, std::string>& server_parameters() const { return parameters_; }
  int backend_pid() const { return backend_pid_; }
  // The input buffer's capacity (tests of its shrinking).
  size_t InputBufferCapacityForTest() const { return in_.capacity(); }

 private:
  // body points into in_: valid until the next ReadMessage.
  struct Message {
    char type = 0;
    std::string_view body;
  };

  PgConnection() = default;
  absl::Status ConnectTo(const PgConnectParams& p, const void* addr, unsigned addr_len, int family,
                         Clock::time_point deadline);
  absl::Status StartTls(const PgConnectParams& p, Clock::time_point deadline);
  absl::Status Startup(const PgConnectParams& p, Clock::time_point deadline);
  // The authentication exchange during Startup (the SCRAM client, once started).
  struct AuthExchange;
  // Handles one AuthenticationRequest ('R', its body): answers the server's
  // request (password, MD5, SASL), checks the SCRAM server-final, or takes
  // AuthenticationOk. An error breaks the connection (the caller's Broken()).
  absl::Status OnAuthRequest(const PgConnectParams& p, std::string_view body, AuthExchange& auth,
                             Clock::time_point deadline);
  absl::Status Wait(short events, Clock::time_point deadline, const char* what);
  // After a send/recv/SSL_* call that returned n <= 0: waits for what the
  // call needs (want: POLLIN or POLLOUT for plain sockets), or breaks the
  // connection with the reason.
  absl::Status AfterIo(ssize_t n, short want, Clock::time_point deadline, const char* what);
  absl::Status SendAll(std::string_view data, Clock::time_point deadline);
  absl::Status ReadSome(Clock::time_point deadline);
  absl::StatusOr<Message> ReadMessage(Clock::time_point deadline);
  absl::Status Broken(absl::Status st);
  void Close();

  int fd_ = -1;
  SSL* ssl_ = nullptr;
  bool broken_ = false;
  bool authenticated_ = false;  // AuthenticationOk seen: the larger frame limit applies
  // Set when a prefer attempt failed in a way libpq retries without TLS.
  bool retry_without_tls_ = false;
  std::string in_;  // received, not yet parsed: in_[in_pos_..]
  size_t in_pos_ = 0;
  std::map<std::string, std::string> parameters_;
  int backend_pid_ = 0;
};

// The pure parts, exposed for unit tests.
namespace pgwire {

// Frame limits (the length word, which counts itself): before
// AuthenticationOk only short messages are legitimate (libpq too keeps small
// limits there), after it 16 MiB, far above what the agent's queries return.
inline constexpr uint32_t kMaxStartupMessageLength = 64u << 10;
inline constexpr uint32_t kMaxMessageLength = 16u << 20;
// One query's rows in total (DataRow bytes plus the per-value overhead).
inline constexpr size_t kMaxResultBytes = size_t{32} << 20;
// The most SCRAM iterations accepted (PostgreSQL uses 4096): a hostile
// server could otherwise make PBKDF2 spin for minutes, deaf to deadlines.
inline constexpr int kMaxScramIterations = 100000;

// Frames one backend message off the front of *buf: true and *buf advanced
// when a whole message is there (*body then points into the old *buf),
// false when more bytes are needed, an error when the length word is
// impossible (< 4 or > max_length).
absl::StatusOr<bool> TakeMessage(std::string_view* buf, uint32_t max_length, char* type,
                                 std::string_view* body);

// DataRow body -> values (nullopt for NULL).
absl::StatusOr<std::vector<std::optional<std::string>>> ParseDataRow(std::string_view body);
// ErrorResponse / NoticeResponse body -> "SEVERITY: message (SQLSTATE xxxxx)".
struct ServerError {
  std::string severity;  // non-localized (V) when sent, else S
  std::string sqlstate;
  std::string text;
};
ServerError ParseErrorResponse(std::string_view body);

// "md5" + md5hex(md5hex(password + user) + salt), the MD5 method's answer.
std::string Md5Password(std::string_view user, std::string_view password, std::string_view salt);

// SCRAM-SHA-256 client (RFC 5802, RFC 7677), gs2 header "n,," (no channel
// binding). PostgreSQL ignores the SCRAM user name and libpq sends it empty.
class ScramSha256 {
 public:
  // client_nonce empty: 18 random bytes, base64.
  ScramSha256(std::string user, std::string password, std::string client_nonce = "");
  std::string ClientFirst() const { return "n,," + client_first_bare_; }
  absl::StatusOr<std::string> ClientFinal(std::string_view server_first);
  // OK only when the server proved it knows the password.
  absl::Status VerifyServerFinal(std::string_view server_final) const;

 private:
  std::string password_;
  std::string nonce_;
  std::string client_first_bare_;
  std::string expected_server_signature_;  // raw bytes, set by ClientFinal
};

}  // namespace pgwire
}  // namespace setdiag::agent
