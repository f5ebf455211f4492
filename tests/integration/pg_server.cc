#include "tests/integration/pg_server.h"

#include <libpq-fe.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <thread>
#include <vector>

#include "tests/integration/harness.h"

namespace setdiag::testing {

std::vector<std::vector<std::string>> PgQuery(const std::string& conninfo, const std::string& sql) {
  PGconn* c = PQconnectdb(conninfo.c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    std::string err = PQerrorMessage(c);
    PQfinish(c);
    throw std::runtime_error("connect: " + err);
  }
  PGresult* r = PQexec(c, sql.c_str());
  ExecStatusType st = PQresultStatus(r);
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
    std::string err = PQresultErrorMessage(r);
    PQclear(r);
    PQfinish(c);
    throw std::runtime_error(sql + ": " + err);
  }
  std::vector<std::vector<std::string>> rows;
  for (int i = 0; i < PQntuples(r); ++i) {
    std::vector<std::string> row;
    for (int j = 0; j < PQnfields(r); ++j)
      row.push_back(PQgetisnull(r, i, j) ? "<null>" : PQgetvalue(r, i, j));
    rows.push_back(std::move(row));
  }
  PQclear(r);
  PQfinish(c);
  return rows;
}

namespace {

std::string BinDir() {
  if (const char* d = std::getenv("SETDIAG_PG_BINDIR"); d != nullptr && *d != '\0') return d;
  return "/usr/lib/postgresql/15/bin";
}

bool IsRoot() { return geteuid() == 0; }

std::string Runuser() {
  for (const char* p : {"/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"}) {
    if (access(p, X_OK) == 0) return p;
  }
  throw std::runtime_error(
      "PgServer: runuser not found (util-linux); needed to run PostgreSQL as postgres");
}

// Runs a PostgreSQL tool as the postgres user (directly when not root).
CommandResult RunAsPostgres(const std::string& tool, const std::vector<std::string>& args) {
  std::vector<std::string> argv;
  if (IsRoot()) argv = {Runuser(), "-u", "postgres", "--"};
  argv.push_back(BinDir() + "/" + tool);
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv);
}

void ChownToPostgres(const std::string& path) {
  if (!IsRoot()) return;
  passwd* pw = getpwnam("postgres");
  if (pw == nullptr)
    throw std::runtime_error(
        "PgServer: no 'postgres' OS user; run scripts/deps to install postgresql-15");
  if (chown(path.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
    throw std::runtime_error("PgServer: cannot chown " + path + " to postgres");
  }
}

}  // namespace

std::unique_ptr<PgServer> PgServer::Start() { return Start(Options{}); }

std::unique_ptr<PgServer> PgServer::Start(const Options& options) {
  if (access((BinDir() + "/initdb").c_str(), X_OK) != 0) {
    throw std::runtime_error("PgServer: " + BinDir() +
                             "/initdb not found; run scripts/deps to install postgresql-15");
  }
  std::unique_ptr<PgServer> pg(new PgServer(options));
  pg->Init();
  std::string why;
  // FreePort can race with another process taking the port: try a few.
  for (int attempt = 0; attempt < 3; ++attempt) {
    pg->port_ = FreePort();
    if (pg->TryStart(&why)) return pg;
  }
  throw std::runtime_error("PgServer: the server did not start: " + why + "\n--- server log ---\n" +
                           pg->Log());
}

void PgServer::Init() {
  dir_ = MakeTempDir("pg");
  // mkdtemp makes it 0700: the postgres user must own it.
  ChownToPostgres(dir_);
  std::filesystem::create_directory(dir_ + "/sock");
  ChownToPostgres(dir_ + "/sock");
  auto r = RunAsPostgres("initdb", {"-D", dir_ + "/data", "-U", "postgres", "-A", "trust",
                                    "--no-locale", "-E", "UTF8", "--no-sync", "--no-instructions"});
  if (r.exit_code != 0) throw std::runtime_error("PgServer: initdb failed:\n" + r.out + r.err);
  std::string conf = ReadFile(dir_ + "/data/postgresql.conf");
  conf +=
      "\n# setdiag tests (tests/integration/pg_server.cc)\n"
      "listen_addresses = '127.0.0.1'\n"
      "unix_socket_directories = '" +
      dir_ +
      "/sock'\n"
      "fsync = off\n"
      "synchronous_commit = off\n"
      "full_page_writes = off\n"
      "shared_buffers = 16MB\n"
      "max_connections = 50\n"
      "timezone = '" +
      options_.timezone +
      "'\n"
      "log_timezone = '" +
      options_.timezone +
      "'\n"
      "log_min_messages = warning\n";
  if (!options_.password_encryption.empty()) {
    conf += "password_encryption = '" + options_.password_encryption + "'\n";
  }
  if (options_.ssl) {
    // A self-signed certificate; the server wants the key owned by itself
    // and not readable by others.
    const std::string crt = dir_ + "/data/server.crt", key = dir_ + "/data/server.key";
    std::string openssl;
    for (const char* path : {"/usr/bin/openssl", "/bin/openssl", "/usr/local/bin/openssl"}) {
      if (openssl.empty() && access(path, X_OK) == 0) openssl = path;
    }
    if (openssl.empty())
      throw std::runtime_error(
          "PgServer: the openssl CLI is needed for ssl = on (package openssl)");
    auto r2 = RunCommand({openssl, "req", "-new", "-x509", "-days", "2", "-nodes", "-newkey",
                          "rsa:2048", "-subj", "/CN=localhost", "-keyout", key, "-out", crt});
    if (r2.exit_code != 0)
      throw std::runtime_error("PgServer: openssl req failed:\n" + r2.out + r2.err);
    for (const auto& f : {crt, key}) {
      ChownToPostgres(f);
      if (chmod(f.c_str(), 0600) != 0) throw std::runtime_error("PgServer: cannot chmod " + f);
    }
    conf += "ssl = on\nssl_cert_file = '" + crt + "'\nssl_key_file = '" + key + "'\n";
  }
  WriteFile(dir_ + "/data/postgresql.conf", conf);
  if (!options_.hba_lines.empty()) {
    std::string hba;
    for (const auto& line : options_.hba_lines) hba += line + "\n";
    if (!options_.hba_replace) hba += ReadFile(dir_ + "/data/pg_hba.conf");
    WriteFile(dir_ + "/data/pg_hba.conf", hba);
  }
}

bool PgServer::TryStart(std::string* why) {
  auto r = RunAsPostgres("pg_ctl", {"-D", dir_ + "/data", "-l", dir_ + "/server.log", "-w", "-t",
                                    "60", "-o", "-p " + std::to_string(port_), "start"});
  if (r.exit_code != 0) {
    *why = "pg_ctl start exited " + std::to_string(r.exit_code) + ": " + r.out + r.err;
    return false;
  }
  running_ = true;
  std::string conn = ConnString();
  bool up = WaitFor([&] { return PQping(conn.c_str()) == PQPING_OK; }, std::chrono::seconds(30),
                    std::chrono::milliseconds(50));
  if (!up) {
    *why = "it did not accept connections within 30 s";
    Stop();
  }
  return up;
}

PgServer::~PgServer() {
  try {
    if (running_) Stop();
  } catch (...) {
  }
  if (!dir_.empty() && std::getenv("SETDIAG_KEEP_TEST_DIRS") == nullptr) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

std::string PgServer::ConnString(const std::string& dbname) const {
  return ServerConnString() + " dbname=" + dbname;
}

std::string PgServer::ServerConnString() const {
  return "host=127.0.0.1 port=" + std::to_string(port_) + " user=postgres";
}

void PgServer::Stop() {
  if (!running_) return;
  auto r = RunAsPostgres("pg_ctl", {"-D", dir_ + "/data", "-m", "fast", "-w", "-t", "60", "stop"});
  running_ = false;
  if (r.exit_code != 0) {
    throw std::runtime_error("PgServer: pg_ctl stop failed: " + r.out + r.err +
                             "\n--- server log ---\n" + Log());
  }
}

void PgServer::StartAgain() {
  if (running_) return;
  std::string why;
  if (!TryStart(&why)) {
    throw std::runtime_error("PgServer: restart failed: " + why + "\n--- server log ---\n" + Log());
  }
}

std::string PgServer::Log() const { return ReadFile(dir_ + "/server.log"); }

}  // namespace setdiag::testing
