#pragma once
// A real PostgreSQL server for integration tests: a private cluster in a
// fresh temp dir, made with Debian's PostgreSQL 15 binaries and run as the
// `postgres` OS user (PostgreSQL refuses to run as root). Listens on
// 127.0.0.1 on a free port with its unix socket inside the temp dir; trust
// authentication; durability off (fsync=off) for speed.
//
// Time zone: the cluster's TimeZone is Europe/Moscow (UTC+3, no DST) unless
// Options say otherwise, as on a Russian store server. SET writes local
// timestamps without zone (e.g. od_cash_status.lastactivity), so tests that
// run in UTC would hide time-zone bugs; this default exposes them.
//
// Needs the postgresql-15 package (scripts/deps installs it). The binaries
// directory can be overridden with $SETDIAG_PG_BINDIR.

#include <memory>
#include <string>
#include <vector>

namespace setdiag::testing {

// Runs SQL through libpq over a fresh connection (the tests' own view of the
// database, independent of the code under test). Rows of a query, NULL as
// "<null>"; none for a command. Throws std::runtime_error on failure.
std::vector<std::vector<std::string>> PgQuery(const std::string& conninfo, const std::string& sql);

class PgServer {
 public:
  struct Options {
    std::string timezone = "Europe/Moscow";
    // ssl = on with a self-signed certificate made by the openssl CLI
    // (needs the openssl package). Off by default.
    bool ssl = false;
    // Lines put before initdb's pg_hba.conf (first match wins), e.g.
    // "host all md5user 127.0.0.1/32 md5". Without them: trust for all.
    std::vector<std::string> hba_lines;
    // hba_lines replace initdb's pg_hba.conf instead of going before it
    // (whose "host all all 127.0.0.1/32 trust" would match anything not
    // matched above, e.g. TLS connections after "hostnossl" lines).
    bool hba_replace = false;
    // password_encryption ("md5" or "scram-sha-256"); empty: the default.
    std::string password_encryption;
  };

  // Creates and starts a cluster and waits until it accepts connections.
  // Throws std::runtime_error (with the server log) on failure.
  static std::unique_ptr<PgServer> Start();
  static std::unique_ptr<PgServer> Start(const Options& options);

  // Stops the server (if running) and removes the directory, unless
  // $SETDIAG_KEEP_TEST_DIRS is set.
  ~PgServer();
  PgServer(const PgServer&) = delete;
  PgServer& operator=(const PgServer&) = delete;

  // "host=127.0.0.1 port=P user=postgres dbname=postgres"
  std::string ConnString() const { return ConnString("postgres"); }
  std::string ConnString(const std::string& dbname) const;
  // Without dbname, as setdiag-store-sim --pg wants it.
  std::string ServerConnString() const;

  // pg_ctl stop -m fast. Connections are cut; the data stays.
  void Stop();
  // Starts the same cluster again on the same port. Throws on failure.
  void StartAgain();
  bool running() const { return running_; }

  int port() const { return port_; }
  const std::string& dir() const { return dir_; }
  // The unix socket's directory (socket file .s.PGSQL.<port>).
  std::string socket_dir() const { return dir_ + "/sock"; }
  const std::string& timezone() const { return options_.timezone; }
  std::string Log() const;

 private:
  explicit PgServer(Options options) : options_(std::move(options)) {}
  void Init();
  // Starts on port_; returns false (with the reason) if it did not come up.
  bool TryStart(std::string* why);

  Options options_;
  std::string dir_;
  int port_ = 0;
  bool running_ = false;
};

}  // namespace setdiag::testing
