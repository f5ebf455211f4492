// The agent's own PostgreSQL client (agent/pg_wire.h) against a real
// PostgreSQL 15: trust, MD5 and SCRAM-SHA-256 authentication, TLS modes,
// the Unix socket, errors that keep the session usable, NULLs, timeouts, a
// server that goes away; and SetDatabase (agent/set_db.h) on top of it.
// libpq (tests only) sets the servers up.

#include "agent/pg_wire.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "agent/set_db.h"
#include "tests/integration/harness.h"
#include "tests/integration/pg_server.h"

namespace setdiag::testing {
namespace {

using agent::PgConnection;
using agent::PgConnectParams;
using agent::PgSslMode;
using namespace std::chrono_literals;
using ::testing::HasSubstr;

// Runs statements through libpq as the superuser; throws on failure.
void Exec(const std::string& conninfo, const std::string& sql) {
  PGconn* c = PQconnectdb(conninfo.c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    std::string err = PQerrorMessage(c);
    PQfinish(c);
    throw std::runtime_error("connect: " + err);
  }
  PGresult* r = PQexec(c, sql.c_str());
  ExecStatusType st = PQresultStatus(r);
  std::string err = PQresultErrorMessage(r);
  PQclear(r);
  PQfinish(c);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) throw std::runtime_error(sql + ": " + err);
}

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
  EXPECT_EQ(
      Msg(err.status()),
      "SET database 'set': query failed: ERROR: column \"nope\" does not exist (SQLSTATE 42703)");
}

}  // namespace
}  // namespace setdiag::testing
