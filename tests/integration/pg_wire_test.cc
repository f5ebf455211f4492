// The agent's own PostgreSQL client (agent/sources/pg_wire.h) against a real
// PostgreSQL 15: trust, MD5 and SCRAM-SHA-256 authentication, TLS modes,
// the Unix socket, errors that keep the session usable, NULLs, timeouts, a
// server that goes away; and SetDatabase (agent/sources/set_db.h) on top of it.
// libpq (tests only) sets the servers up.

#include "agent/sources/pg_wire.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "agent/sources/set_db.h"
#include "tests/integration/harness.h"
#include "tests/integration/pg_server.h"

namespace setdiag::testing {
namespace {

using agent::PgConnection;
using agent::PgConnectParams;
using agent::PgSslMode;
using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

// Runs statements through libpq as the superuser; throws on failure.
void Exec(const std::string& conninfo, const std::string& sql) { PgQuery(conninfo, sql); }

// ssl = on; md5user must use MD5, scramuser SCRAM-SHA-256, others trust.
std::unique_ptr<PgServer> StartAuthServer() {
  PgServer::Options o;
  o.ssl = true;
  o.password_encryption = "scram-sha-256";
  o.hba_lines = {"host all md5user 127.0.0.1/32 md5",
                 "host all scramuser 127.0.0.1/32 scram-sha-256"};
  auto pg = PgServer::Start(o);
  Exec(pg->ConnString(),
       "SET password_encryption = 'md5'; CREATE ROLE md5user LOGIN PASSWORD 'md5-Secret';"
       "SET password_encryption = 'scram-sha-256'; CREATE ROLE scramuser LOGIN PASSWORD "
       "'scram-Secret'");
  return pg;
}

PgConnectParams Params(const PgServer& pg, PgSslMode mode = PgSslMode::kPrefer) {
  PgConnectParams p;
  p.host = "127.0.0.1";
  p.port = pg.port();
  p.user = "postgres";
  p.database = "postgres";
  p.application_name = "pg_wire_test";
  p.connect_timeout_ms = 10'000;
  p.tcp_user_timeout_ms = 10'000;
  p.sslmode = mode;
  return p;
}

PgConnection::Clock::time_point In(std::chrono::milliseconds d) {
  return PgConnection::Clock::now() + d;
}

std::unique_ptr<PgConnection> MustConnect(const PgConnectParams& p) {
  auto c = PgConnection::Connect(p);
  if (!c.ok()) throw std::runtime_error("connect: " + std::string(c.status().message()));
  return std::move(*c);
}

// The single value of a one-row, one-column query ("<null>" for NULL).
std::string One(PgConnection& c, const std::string& sql) {
  auto r = c.SimpleQuery(sql, In(10s));
  if (!r.ok()) return "error: " + std::string(r.status().message());
  if (r->rows.size() != 1 || r->rows[0].size() != 1) return "not one value";
  return r->rows[0][0].value_or("<null>");
}

std::string Msg(const absl::Status& st) { return std::string(st.message()); }

TEST(PgWire, TrustSessionWithStartupParameters) {
  auto pg = PgServer::Start();
  PgConnectParams p = Params(*pg);
  p.options = "-c default_transaction_read_only=on -c statement_timeout=4321";
  auto c = MustConnect(p);
  EXPECT_TRUE(c->ok());
  EXPECT_FALSE(c->tls());  // prefer against a server without SSL: plain
  EXPECT_EQ(One(*c, "SELECT current_user"), "postgres");
  EXPECT_EQ(One(*c, "SELECT current_database()"), "postgres");
  EXPECT_EQ(One(*c, "SHOW application_name"), "pg_wire_test");
  EXPECT_EQ(One(*c, "SHOW statement_timeout"), "4321ms");
  EXPECT_EQ(One(*c, "SHOW transaction_read_only"), "on");
  EXPECT_EQ(One(*c, "SELECT pg_backend_pid()"), std::to_string(c->backend_pid()));
  EXPECT_EQ(c->server_parameters().at("TimeZone"), "Europe/Moscow");
  auto w = c->SimpleQuery("CREATE TABLE t (x int)", In(10s));
  ASSERT_FALSE(w.ok());
  EXPECT_THAT(Msg(w.status()), HasSubstr("read-only transaction"));
}

TEST(PgWire, Md5Password) {
  auto pg = StartAuthServer();
  PgConnectParams p = Params(*pg, PgSslMode::kDisable);
  p.user = "md5user";
  p.password = "md5-Secret";
  auto c = PgConnection::Connect(p);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(One(**c, "SELECT current_user"), "md5user");
  EXPECT_EQ(One(**c, "SELECT left(rolpassword, 3) FROM pg_authid WHERE rolname = 'md5user'"),
            "error: ERROR: permission denied for table pg_authid (SQLSTATE 42501)");

  p.password = "wrong";
  auto bad = PgConnection::Connect(p);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(Msg(bad.status()), HasSubstr("password authentication failed for user \"md5user\""));
  EXPECT_THAT(Msg(bad.status()), HasSubstr("28P01"));
}

TEST(PgWire, ScramSha256PlainAndOverTls) {
  auto pg = StartAuthServer();
  for (PgSslMode mode : {PgSslMode::kDisable, PgSslMode::kRequire}) {
    PgConnectParams p = Params(*pg, mode);
    p.user = "scramuser";
    p.password = "scram-Secret";
    auto c = PgConnection::Connect(p);
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ((*c)->tls(), mode == PgSslMode::kRequire);
    EXPECT_EQ(One(**c, "SELECT current_user"), "scramuser");
  }
}

TEST(PgWire, WrongOrMissingPasswordIsAClearError) {
  auto pg = StartAuthServer();
  PgConnectParams p = Params(*pg, PgSslMode::kDisable);
  p.user = "scramuser";
  p.password = "not-the-password";
  auto bad = PgConnection::Connect(p);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(Msg(bad.status()),
              HasSubstr("FATAL: password authentication failed for user \"scramuser\""));

  p.password.clear();
  auto none = PgConnection::Connect(p);
  ASSERT_FALSE(none.ok());
  EXPECT_THAT(Msg(none.status()),
              HasSubstr("asks for a password (SCRAM-SHA-256) but none is configured"));
}

TEST(PgWire, SslRequireAndPrefer) {
  auto ssl = StartAuthServer();
  for (PgSslMode mode : {PgSslMode::kRequire, PgSslMode::kPrefer}) {
    auto c = MustConnect(Params(*ssl, mode));
    EXPECT_TRUE(c->tls());
    EXPECT_EQ(One(*c, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"), "t");
  }
  auto plain_mode = MustConnect(Params(*ssl, PgSslMode::kDisable));
  EXPECT_FALSE(plain_mode->tls());
  EXPECT_EQ(One(*plain_mode, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"), "f");

  auto plain = PgServer::Start();
  auto req = PgConnection::Connect(Params(*plain, PgSslMode::kRequire));
  ASSERT_FALSE(req.ok());
  EXPECT_THAT(Msg(req.status()), HasSubstr("server does not support SSL, but SSL was required"));
  auto pref = PgConnection::Connect(Params(*plain, PgSslMode::kPrefer));
  ASSERT_TRUE(pref.ok()) << pref.status();
  EXPECT_FALSE((*pref)->tls());
  EXPECT_EQ(One(**pref, "SELECT 41 + 1"), "42");
}

TEST(PgWire, UnixSocket) {
  auto pg = PgServer::Start();
  PgConnectParams p = Params(*pg, PgSslMode::kRequire);  // never TLS on a Unix socket
  p.host = pg->socket_dir();
  auto c = MustConnect(p);
  EXPECT_FALSE(c->tls());
  EXPECT_EQ(One(*c, "SELECT inet_server_addr() IS NULL"), "t");  // NULL: not TCP

  p.port = pg->port() + 1;  // no socket file for that port
  auto missing = PgConnection::Connect(p);
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(Msg(missing.status()), HasSubstr(".s.PGSQL."));
  EXPECT_THAT(Msg(missing.status()), HasSubstr("No such file or directory"));
}

TEST(PgWire, QueryErrorKeepsTheConnectionUsable) {
  auto pg = PgServer::Start();
  auto c = MustConnect(Params(*pg));
  auto r = c->SimpleQuery("SELEC 1", In(10s));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(Msg(r.status()), "ERROR: syntax error at or near \"SELEC\" (SQLSTATE 42601)");
  EXPECT_TRUE(c->ok());
  EXPECT_EQ(One(*c, "SELECT 'still here'"), "still here");

  // An error in the second statement of a query string.
  r = c->SimpleQuery("SELECT 1; SELECT 1/0; SELECT 3", In(10s));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(Msg(r.status()), HasSubstr("division by zero (SQLSTATE 22012)"));
  EXPECT_EQ(One(*c, "SELECT 'and still'"), "and still");

  // COPY is refused without losing the session.
  r = c->SimpleQuery("COPY (SELECT 1) TO STDOUT", In(10s));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(c->ok());
  ASSERT_TRUE(c->SimpleQuery("CREATE TEMP TABLE t (x int)", In(10s)).ok());
  r = c->SimpleQuery("COPY t FROM STDIN", In(10s));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(c->ok());
  EXPECT_EQ(One(*c, "SELECT count(*) FROM t"), "0");
}

TEST(PgWire, RowsNullsAndResultSets) {
  auto pg = PgServer::Start();
  auto c = MustConnect(Params(*pg));
  auto r = c->SimpleQuery(
      "SELECT n, CASE WHEN n = 2 THEN NULL ELSE 'v' || n END, '' FROM generate_series(1, 3) n",
      In(10s));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->columns, 3);
  ASSERT_EQ(r->rows.size(), 3u);
  EXPECT_EQ(r->rows[0][1], std::optional<std::string>("v1"));
  EXPECT_EQ(r->rows[1][1], std::nullopt);
  EXPECT_EQ(r->rows[1][2], std::optional<std::string>(""));  // empty string, not NULL
  EXPECT_EQ(r->command_tag, "SELECT 3");

  // Several statements: the last result set, as PQexec.
  r = c->SimpleQuery("SELECT 1; SELECT 2, 3", In(10s));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->columns, 2);
  ASSERT_EQ(r->rows.size(), 1u);
  EXPECT_EQ(r->rows[0][1], std::optional<std::string>("3"));

  // No rows, no columns; an empty query.
  r = c->SimpleQuery("SET work_mem = '8MB'", In(10s));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->columns, 0);
  EXPECT_EQ(r->command_tag, "SET");
  r = c->SimpleQuery("", In(10s));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->rows.empty());

  // A large result crosses many reads.
  r = c->SimpleQuery("SELECT repeat('x', 1000) FROM generate_series(1, 5000)", In(30s));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->rows.size(), 5000u);
  EXPECT_EQ(r->rows[4999][0]->size(), 1000u);
}

TEST(PgWire, StatementTimeoutIsTheServersError) {
  auto pg = PgServer::Start();
  PgConnectParams p = Params(*pg);
  p.options = "-c statement_timeout=200";
  auto c = MustConnect(p);
  auto start = std::chrono::steady_clock::now();
  auto r = c->SimpleQuery("SELECT pg_sleep(10)", In(8s));
  ASSERT_FALSE(r.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_EQ(Msg(r.status()),
            "ERROR: canceling statement due to statement timeout (SQLSTATE 57014)");
  EXPECT_TRUE(c->ok());
  EXPECT_EQ(One(*c, "SELECT 1"), "1");
}

TEST(PgWire, ClientDeadlineBreaksTheConnection) {
  auto pg = PgServer::Start();
  auto c = MustConnect(Params(*pg));
  auto start = std::chrono::steady_clock::now();
  auto r = c->SimpleQuery("SELECT pg_sleep(10)", In(300ms));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  EXPECT_FALSE(c->ok());
  EXPECT_FALSE(c->SimpleQuery("SELECT 1", In(1s)).ok());
}

TEST(PgWire, ServerStoppedMidSession) {
  auto pg = PgServer::Start();
  auto c = MustConnect(Params(*pg));
  ASSERT_EQ(One(*c, "SELECT 1"), "1");
  pg->Stop();
  auto r = c->SimpleQuery("SELECT 1", In(10s));
  ASSERT_FALSE(r.ok());
  EXPECT_FALSE(c->ok());
  // The server says why before it closes (57P01, admin shutdown).
  EXPECT_THAT(Msg(r.status()), HasSubstr("terminating connection due to administrator command"));

  auto down = PgConnection::Connect(Params(*pg));
  ASSERT_FALSE(down.ok());
  EXPECT_THAT(Msg(down.status()), HasSubstr("Connection refused"));

  pg->StartAgain();
  auto again = PgConnection::Connect(Params(*pg));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(One(**again, "SELECT 2"), "2");
}

// Writing to a connection the server has dropped must not raise SIGPIPE
// (which would kill this process): a large query keeps writing after the
// peer's reset, in plain text and through TLS.
TEST(PgWire, NoSigpipeWhenTheServerIsGone) {
  auto pg = StartAuthServer();
  for (PgSslMode mode : {PgSslMode::kDisable, PgSslMode::kRequire}) {
    auto c = MustConnect(Params(*pg, mode));
    Exec(pg->ConnString(), "SELECT pg_terminate_backend(" + std::to_string(c->backend_pid()) + ")");
    std::this_thread::sleep_for(300ms);
    std::string big = "SELECT '" + std::string(32 << 20, 'x') + "'";
    auto r = c->SimpleQuery(big, In(20s));
    ASSERT_FALSE(r.ok());
    EXPECT_FALSE(c->ok());
    EXPECT_FALSE(Msg(r.status()).empty());
  }
}

TEST(PgWire, SetDatabaseReadsTheTillsAndReconnects) {
  auto pg = PgServer::Start();
  Exec(pg->ConnString(), "CREATE DATABASE set");
  Exec(pg->ConnString(), "CREATE DATABASE set_operday");
  Exec(pg->ConnString("set"),
       "CREATE TABLE cash_cash (number int, status text, cash_ip text, shop_number int);"
       "INSERT INTO cash_cash VALUES (1, 'ACTIVE', '10.0.0.1', 7), (2, 'ACTIVE', NULL, 7)");
  Exec(pg->ConnString("set_operday"),
       "CREATE TABLE od_cash_status (cashnum int, lastactivity timestamp, shopnum int);"
       "INSERT INTO od_cash_status VALUES (1, now()::timestamp, 7), (2, NULL, 7)");

  agent::SetDbConfig cfg;
  cfg.port = pg->port();
  agent::SetDatabase db(cfg);
  auto roster = db.ReadRoster();
  ASSERT_TRUE(roster.ok()) << roster.status();
  ASSERT_EQ(roster->size(), 2u);
  EXPECT_EQ((*roster)[0].address, "10.0.0.1");
  EXPECT_EQ((*roster)[1].address, "");  // NULL -> ""
  auto activity = db.ReadActivity();
  ASSERT_TRUE(activity.ok()) << activity.status();
  ASSERT_EQ(activity->size(), 1u);
  int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  EXPECT_NEAR(static_cast<double>(activity->at(1)), static_cast<double>(now_ms), 60'000.0);

  pg->Stop();
  auto down = db.ReadRoster();
  ASSERT_FALSE(down.ok());
  EXPECT_EQ(down.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(Msg(down.status()),
              HasSubstr("SET database 'set': query failed: FATAL: terminating connection"));
  down = db.ReadRoster();
  ASSERT_FALSE(down.ok());
  EXPECT_THAT(Msg(down.status()),
              HasSubstr("SET database 'set' at 127.0.0.1:" + std::to_string(pg->port()) + ": "));
  EXPECT_THAT(Msg(down.status()), HasSubstr("Connection refused"));
  pg->StartAgain();
  roster = db.ReadRoster();
  ASSERT_TRUE(roster.ok()) << roster.status();
  EXPECT_EQ(roster->size(), 2u);

  cfg.roster_query = "SELECT nope FROM cash_cash";
  agent::SetDatabase bad(cfg);
  auto err = bad.ReadRoster();
  ASSERT_FALSE(err.ok());
  // The database answers; the query does not fit it: not "unreachable".
  EXPECT_EQ(err.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(
      Msg(err.status()),
      HasSubstr(
          "SET database 'set': set_db.roster_query failed: ERROR: column \"nope\" does not exist "
          "(SQLSTATE 42703)"));
}

// ---- Items from review: multi-statement results, memory limits, prefer's
// fallback, hostile servers ------------------------------------------------

// "SELECT ...; SET ..." gives the SET's result, as PQexec: no columns, no
// rows of the earlier SELECT under the SET's tag.
TEST(PgWire, LastStatementWithoutRowsIsTheResult) {
  auto pg = PgServer::Start();
  auto c = MustConnect(Params(*pg));
  auto r = c->SimpleQuery("SELECT 1, 2 FROM generate_series(1, 3); SET work_mem = '8MB'", In(10s));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->command_tag, "SET");
  EXPECT_EQ(r->columns, 0);
  EXPECT_TRUE(r->rows.empty());
  // And the other way round: the SELECT's rows.
  r = c->SimpleQuery("SET work_mem = '8MB'; SELECT 7", In(10s));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->command_tag, "SELECT 1");
  EXPECT_EQ(r->columns, 1);
  ASSERT_EQ(r->rows.size(), 1u);
  EXPECT_EQ(r->rows[0][0], std::optional<std::string>("7"));
}

// A query's rows are capped at 32 MiB (the connection is then broken), a
// single message at 16 MiB; the input buffer is given back after a large
// message.
TEST(PgWire, ResultAndMessageSizeLimits) {
  auto pg = PgServer::Start();
  auto c = MustConnect(Params(*pg));
  auto r = c->SimpleQuery("SELECT repeat('x', 4000000)", In(30s));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->rows[0][0]->size(), 4000000u);
  EXPECT_LE(c->InputBufferCapacityForTest(), size_t{256} << 10);
  EXPECT_EQ(One(*c, "SELECT 1"), "1");
  EXPECT_LE(c->InputBufferCapacityForTest(), size_t{256} << 10);

  r = c->SimpleQuery("SELECT repeat('x', 1000) FROM generate_series(1, 40000)", In(30s));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(Msg(r.status()), "result too large (more than 32 MiB)");
  EXPECT_FALSE(c->ok());

  // Many small rows count their overhead too (each about 80 bytes held for
  // 11 on the wire).
  auto small = MustConnect(Params(*pg));
  r = small->SimpleQuery("SELECT 1 FROM generate_series(1, 600000)", In(30s));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(Msg(r.status()), "result too large (more than 32 MiB)");

  auto big = MustConnect(Params(*pg));
  r = big->SimpleQuery("SELECT repeat('x', 17000000)", In(30s));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(Msg(r.status()), HasSubstr("more than the limit of 16777216"));
  EXPECT_FALSE(big->ok());
}

// prefer falls back to plain as libpq does when the server refuses TLS
// sessions in pg_hba.conf (only hostnossl lines); require does not.
TEST(PgWire, PreferFallsBackWhenHbaRefusesTls) {
  PgServer::Options o;
  o.ssl = true;
  o.hba_lines = {"hostnossl all all 127.0.0.1/32 trust"};
  o.hba_replace = true;  // initdb's "host all all 127.0.0.1/32 trust" would accept TLS
  auto pg = PgServer::Start(o);
  auto pref = PgConnection::Connect(Params(*pg, PgSslMode::kPrefer));
  ASSERT_TRUE(pref.ok()) << pref.status();
  EXPECT_FALSE((*pref)->tls());
  EXPECT_EQ(One(**pref, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"), "f");

  auto req = PgConnection::Connect(Params(*pg, PgSslMode::kRequire));
  ASSERT_FALSE(req.ok());
  EXPECT_THAT(Msg(req.status()), HasSubstr("no pg_hba.conf entry"));
  EXPECT_THAT(Msg(req.status()), HasSubstr("SSL encryption"));
  EXPECT_THAT(Msg(req.status()), Not(HasSubstr("without TLS")));
}

// ---- A fake server playing a hostile one ----------------------------------
// One thread, a listening socket on 127.0.0.1; `script` runs for each
// accepted connection in turn (its index from 0), `connections` at most.

std::string Int32(int32_t v) {
  auto u = static_cast<uint32_t>(v);
  std::string out;
  for (int shift = 24; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((u >> shift) & 0xff));
  return out;
}

std::string Message(char type, const std::string& body) {
  return std::string(1, type) + Int32(static_cast<int32_t>(body.size() + 4)) + body;
}

std::string AuthRequest(int32_t code, const std::string& rest = "") {
  return Message('R', Int32(code) + rest);
}

void SendBytes(int fd, const std::string& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

// Up to n bytes, fewer on EOF or after 10 s of silence.
std::string ReadN(int fd, size_t n) {
  std::string out;
  char buf[4096];
  while (out.size() < n) {
    pollfd pfd{fd, POLLIN, 0};
    if (poll(&pfd, 1, 10'000) <= 0) break;
    ssize_t got = recv(fd, buf, std::min(sizeof buf, n - out.size()), 0);
    if (got <= 0) break;
    out.append(buf, static_cast<size_t>(got));
  }
  return out;
}

int32_t GetInt32(const std::string& s, size_t at) {
  if (s.size() < at + 4) return -1;
  uint32_t u = 0;
  for (size_t i = 0; i < 4; ++i) u = (u << 8) | static_cast<unsigned char>(s[at + i]);
  return static_cast<int32_t>(u);
}

// The startup packet (or SSLRequest): length word included.
std::string ReadStartup(int fd) {
  std::string len = ReadN(fd, 4);
  int32_t n = GetInt32(len, 0);
  if (n < 4 || n > 100000) return len;
  return len + ReadN(fd, static_cast<size_t>(n - 4));
}

// A frontend message: type, length, body; returns type + body.
std::string ReadMessage(int fd) {
  std::string head = ReadN(fd, 5);
  int32_t n = GetInt32(head, 1);
  if (n < 4 || n > 100000) return head;
  return head.substr(0, 1) + ReadN(fd, static_cast<size_t>(n - 4));
}

// Everything until the client closes (or 10 s of silence).
std::string ReadToEnd(int fd) { return ReadN(fd, size_t{1} << 24); }

class FakeServer {
 public:
  FakeServer(int connections, std::function<void(int fd, int index)> script) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (listen_fd_ < 0 || bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        listen(listen_fd_, 8) != 0 ||
        getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0 || pipe(stop_) != 0) {
      throw std::runtime_error("FakeServer: cannot listen");
    }
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this, connections, script = std::move(script)] {
      for (int i = 0; i < connections; ++i) {
        pollfd pfds[2] = {{listen_fd_, POLLIN, 0}, {stop_[0], POLLIN, 0}};
        if (poll(pfds, 2, 30'000) <= 0 || (pfds[1].revents & POLLIN) != 0) return;
        int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) return;
        script(fd, i);
        close(fd);
        accepted_ = i + 1;
      }
    });
  }
  ~FakeServer() {
    [[maybe_unused]] ssize_t n = write(stop_[1], "x", 1);
    thread_.join();
    close(listen_fd_);
    close(stop_[0]);
    close(stop_[1]);
  }
  FakeServer(const FakeServer&) = delete;
  FakeServer& operator=(const FakeServer&) = delete;

  int port() const { return port_; }
  int accepted() const { return accepted_; }

 private:
  int listen_fd_ = -1;
  int stop_[2] = {-1, -1};
  int port_ = 0;
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

PgConnectParams FakeParams(const FakeServer& fake, PgSslMode mode = PgSslMode::kDisable) {
  PgConnectParams p;
  p.host = "127.0.0.1";
  p.port = fake.port();
  p.user = "victim";
  p.password = "the-Password";
  p.connect_timeout_ms = 5'000;
  p.sslmode = mode;
  return p;
}

// The client nonce from a SASLInitialResponse ('p', mechanism, length,
// "n,,n=,r=<nonce>").
std::string ClientNonce(const std::string& msg) {
  auto at = msg.find(",r=");
  return at == std::string::npos ? "" : msg.substr(at + 3);
}

// A server asking for an absurd SCRAM iteration count would pin the CPU
// for minutes; refused at once.
TEST(PgWireHostileServer, ScramIterationCountIsCapped) {
  FakeServer fake(1, [](int fd, int) {
    ReadStartup(fd);
    SendBytes(fd, AuthRequest(10, std::string("SCRAM-SHA-256\0\0", 15)));
    std::string nonce = ClientNonce(ReadMessage(fd));
    SendBytes(fd, AuthRequest(11, "r=" + nonce + "evil,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1000000"));
    ReadToEnd(fd);
  });
  auto start = std::chrono::steady_clock::now();
  auto c = PgConnection::Connect(FakeParams(fake));
  ASSERT_FALSE(c.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  EXPECT_THAT(Msg(c.status()),
              HasSubstr("SCRAM: the server asks for 1000000 iterations, more than 100000"));
}

// After SCRAM has started, a request for the password in clear (or MD5) is
// a downgrade by a man in the middle: refused, the password never sent.
TEST(PgWireHostileServer, NoDowngradeFromScram) {
  for (int32_t method : {3, 5}) {
    std::mutex mu;
    std::string after_downgrade;
    {
      FakeServer fake(1, [&](int fd, int) {
        ReadStartup(fd);
        SendBytes(fd, AuthRequest(10, std::string("SCRAM-SHA-256\0\0", 15)));
        ReadMessage(fd);
        SendBytes(fd, AuthRequest(method, method == 5 ? std::string("salt") : std::string()));
        std::string rest = ReadToEnd(fd);
        std::lock_guard<std::mutex> lock(mu);
        after_downgrade = rest;
      });
      auto c = PgConnection::Connect(FakeParams(fake));
      ASSERT_FALSE(c.ok());
      EXPECT_THAT(Msg(c.status()), HasSubstr("in the middle of a SCRAM exchange: refused"))
          << method;
    }
    std::lock_guard<std::mutex> lock(mu);
    EXPECT_EQ(after_downgrade.find("the-Password"), std::string::npos) << method;
    EXPECT_EQ(after_downgrade.find("md5"), std::string::npos) << method;
  }
}

// Before authentication only small messages are accepted: a header
// announcing 1 MiB is refused at once, not waited for.
TEST(PgWireHostileServer, LargeMessageBeforeAuthenticationIsRefused) {
  FakeServer fake(1, [](int fd, int) {
    ReadStartup(fd);
    SendBytes(fd, "E" + Int32(1 << 20) + "SFATAL");
    ReadToEnd(fd);
  });
  auto start = std::chrono::steady_clock::now();
  auto c = PgConnection::Connect(FakeParams(fake));
  ASSERT_FALSE(c.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(Msg(c.status()), HasSubstr("more than the limit of 65536"));
}

// After authentication the frame limit is 16 MiB: a 200 MiB DataRow
// header is refused at once.
TEST(PgWireHostileServer, HugeMessageAfterAuthenticationIsRefused) {
  FakeServer fake(1, [](int fd, int) {
    ReadStartup(fd);
    SendBytes(fd, AuthRequest(0) + Message('Z', "I"));
    ReadMessage(fd);  // the query
    SendBytes(fd, Message('T', std::string("\0\1x\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 22)) +
                      "D" + Int32(200 << 20) + std::string(1000, '\0'));
    ReadToEnd(fd);
  });
  auto c = PgConnection::Connect(FakeParams(fake));
  ASSERT_TRUE(c.ok()) << c.status();
  auto start = std::chrono::steady_clock::now();
  auto r = (*c)->SimpleQuery("SELECT x", In(5s));
  ASSERT_FALSE(r.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  EXPECT_THAT(Msg(r.status()), HasSubstr("more than the limit of 16777216"));
  EXPECT_FALSE((*c)->ok());
}

// prefer: a failed TLS handshake is retried on the same address without
// TLS (as libpq); require: not.
TEST(PgWireHostileServer, PreferRetriesWithoutTlsAfterAFailedHandshake) {
  std::mutex mu;
  std::vector<std::string> firsts;  // what each connection began with
  {
    FakeServer fake(2, [&](int fd, int index) {
      std::string first = ReadStartup(fd);
      {
        std::lock_guard<std::mutex> lock(mu);
        firsts.push_back(first);
      }
      if (index == 0) {
        SendBytes(fd, "S");
        ReadN(fd, 5);                                       // the ClientHello's record header
        SendBytes(fd, "HTTP/1.1 400 Bad Request\r\n\r\n");  // not TLS
        return;
      }
      SendBytes(fd, AuthRequest(0) + Message('Z', "I"));
      ReadToEnd(fd);
    });
    auto c = PgConnection::Connect(FakeParams(fake, PgSslMode::kPrefer));
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_FALSE((*c)->tls());
  }
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_EQ(firsts.size(), 2u);
  EXPECT_EQ(GetInt32(firsts[0], 4), 80877103);  // SSLRequest
  EXPECT_EQ(GetInt32(firsts[1], 4), 3 << 16);   // plain startup

  FakeServer strict(2, [](int fd, int index) {
    ReadStartup(fd);
    if (index == 0) {
      SendBytes(fd, "S");
      ReadN(fd, 5);
      SendBytes(fd, "HTTP/1.1 400 Bad Request\r\n\r\n");
      return;
    }
    SendBytes(fd, AuthRequest(0) + Message('Z', "I"));
    ReadToEnd(fd);
  });
  auto req = PgConnection::Connect(FakeParams(strict, PgSslMode::kRequire));
  ASSERT_FALSE(req.ok());
  EXPECT_THAT(Msg(req.status()), HasSubstr("TLS"));
  EXPECT_EQ(strict.accepted(), 1);
}

// Closing a TLS connection whose server has gone (the best-effort
// Terminate and close_notify may fail) leaves no OpenSSL error queued on the
// thread. Such failures do not queue errors reliably, so one is queued by
// hand before the close, standing for them.
TEST(PgWire, CloseLeavesNoOpenSslErrors) {
  auto pg = StartAuthServer();
  auto c = MustConnect(Params(*pg, PgSslMode::kRequire));
  ASSERT_TRUE(c->tls());
  Exec(pg->ConnString(), "SELECT pg_terminate_backend(" + std::to_string(c->backend_pid()) + ")");
  std::this_thread::sleep_for(300ms);
  ERR_clear_error();
  ERR_raise(ERR_LIB_SSL, SSL_R_PROTOCOL_IS_SHUTDOWN);
  ASSERT_NE(ERR_peek_error(), 0u);
  c.reset();
  EXPECT_EQ(ERR_peek_error(), 0u);
}

// A Unix socket whose listen queue is full makes connect() fail with
// EAGAIN: a clear failure, not "in progress".
TEST(PgWire, FullUnixListenQueueIsAClearError) {
  std::string dir = MakeTempDir("pgq");
  const int port = 6999;
  std::string path = dir + "/.s.PGSQL." + std::to_string(port);
  int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  std::memcpy(sun.sun_path, path.c_str(), path.size() + 1);
  ASSERT_EQ(bind(lfd, reinterpret_cast<sockaddr*>(&sun), sizeof sun), 0);
  ASSERT_EQ(listen(lfd, 0), 0);
  std::vector<int> fillers;
  bool full = false;
  for (int i = 0; i < 16 && !full; ++i) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (connect(fd, reinterpret_cast<sockaddr*>(&sun), sizeof sun) != 0 && errno == EAGAIN) {
      full = true;
      close(fd);
    } else {
      fillers.push_back(fd);
    }
  }
  ASSERT_TRUE(full);
  PgConnectParams p;
  p.host = dir;
  p.port = port;
  p.connect_timeout_ms = 2'000;
  auto c = PgConnection::Connect(p);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(Msg(c.status()), HasSubstr("listen queue is full"));
  for (int fd : fillers) close(fd);
  close(lfd);
}

// A host name (not an IP literal) still goes through the resolver.
TEST(PgWire, HostNameIsResolved) {
  auto pg = PgServer::Start();
  PgConnectParams p = Params(*pg);
  p.host = "localhost";
  auto c = PgConnection::Connect(p);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(One(**c, "SELECT 1"), "1");
}

}  // namespace
}  // namespace setdiag::testing
