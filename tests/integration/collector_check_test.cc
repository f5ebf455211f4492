// `setdiag-collector check` with real processes: the collector binary run as
// support runs it, certificates made by the openssl command, a real HTTP
// receiver (Boost.Beast, in this process), a real SMTP server (Debian's
// aiosmtpd), another program holding a port, and the collector itself
// running. Each case breaks one thing and expects its line to say so, with
// its hint, and the exit code to match.

#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <filesystem>
#include <memory>
#include <mutex>
#include <regex>
#include <thread>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "collector/notify/notifications.h"
#include "tests/integration/harness.h"

namespace setdiag::testing {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr char kSecret[] = "check-hmac-secret";

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

struct Received {
  std::map<std::string, std::string> headers;  // lowercase names
  std::string method, target, body;
};

// A webhook receiver on 127.0.0.1 answering every request with `status`.
class WebhookReceiver {
 public:
  explicit WebhookReceiver(unsigned status = 200) : status_(status) {}
  ~WebhookReceiver() { Stop(); }
  bool Start(uint16_t port = 0) {
    beast::error_code ec;
    tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), port);
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return false;
    port_ = acceptor_.local_endpoint().port();
    Accept();
    thread_ = std::thread([this] { ioc_.run(); });
    return true;
  }
  void Stop() {
    ioc_.stop();
    if (thread_.joinable()) thread_.join();
  }
  uint16_t port() const { return port_; }
  std::string url() const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/hooks/setdiag?token=t0p";
  }
  std::vector<Received> requests() const {
    std::lock_guard lock(mu_);
    return requests_;
  }
  int connections() const {
    std::lock_guard lock(mu_);
    return connections_;
  }

 private:
  struct Conn : std::enable_shared_from_this<Conn> {
    Conn(WebhookReceiver* o, tcp::socket s) : owner(o), socket(std::move(s)) {}
    void Read() {
      http::async_read(socket, buffer, req,
                       [self = shared_from_this()](beast::error_code ec, size_t) {
                         if (!ec) self->Respond();
                       });
    }
    void Respond() {
      Received rec;
      rec.method = std::string(req.method_string().data(), req.method_string().size());
      rec.target = std::string(req.target().data(), req.target().size());
      for (const auto& f : req) {
        rec.headers[Lower(std::string(f.name_string().data(), f.name_string().size()))] =
            std::string(f.value().data(), f.value().size());
      }
      rec.body = req.body();
      {
        std::lock_guard lock(owner->mu_);
        owner->requests_.push_back(rec);
      }
      res.version(11);
      res.result(owner->status_);
      res.set(http::field::content_type, "application/json");
      res.body() =
          owner->status_ / 100 == 2 ? R"({"accepted":true})" : R"({"error":"bad signature"})";
      res.keep_alive(false);
      res.prepare_payload();
      http::async_write(socket, res, [self = shared_from_this()](beast::error_code ec, size_t) {
        self->socket.shutdown(tcp::socket::shutdown_send, ec);
      });
    }
    WebhookReceiver* owner;
    tcp::socket socket;
    beast::flat_buffer buffer;
    http::request<http::string_body> req;
    http::response<http::string_body> res;
  };
  void Accept() {
    acceptor_.async_accept([this](beast::error_code ec, tcp::socket s) {
      if (ec) return;
      {
        std::lock_guard lock(mu_);
        ++connections_;
      }
      std::make_shared<Conn>(this, std::move(s))->Read();
      Accept();
    });
  }

  unsigned status_;
  asio::io_context ioc_;
  tcp::acceptor acceptor_{ioc_};
  std::thread thread_;
  uint16_t port_ = 0;
  mutable std::mutex mu_;
  std::vector<Received> requests_;
  int connections_ = 0;
};

// aiosmtpd writing each message it accepts as JSON (parsed by Python's email package).
constexpr char kSmtpScript[] = R"py(
import email, email.policy, json, os, sys, time
from aiosmtpd.controller import Controller

port, out_dir = int(sys.argv[1]), sys.argv[2]
count = 0

class Handler:
    async def handle_DATA(self, server, session, envelope):
        global count
        count += 1
        msg = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        record = {"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos,
                  "subject": str(msg["Subject"]), "headers": {k: str(v) for k, v in msg.items()},
                  "body": msg.get_content()}
        tmp = os.path.join(out_dir, ".%d.tmp" % count)
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f, ensure_ascii=False)
        os.rename(tmp, os.path.join(out_dir, "%04d.json" % count))
        return "250 Message accepted for delivery"

controller = Controller(Handler(), hostname="127.0.0.1", port=port)
controller.start()
open(os.path.join(out_dir, ".ready"), "w").close()
while True:
    time.sleep(3600)
)py";

class SmtpServer {
 public:
  explicit SmtpServer(const std::string& dir) : dir_(dir + "/smtp"), port_(FreePort()) {}
  bool Start() {
    std::filesystem::create_directories(dir_ + "/mail");
    WriteFile(dir_ + "/server.py", kSmtpScript);
    process_ =
        std::make_unique<Process>(std::vector<std::string>{"/usr/bin/python3", dir_ + "/server.py",
                                                           std::to_string(port_), dir_ + "/mail"},
                                  dir_ + "/server.log");
    WaitFor([&] { return std::filesystem::exists(dir_ + "/mail/.ready") || !process_->Running(); },
            20s);
    return std::filesystem::exists(dir_ + "/mail/.ready") && process_->Running();
  }
  std::string url() const { return "smtp://127.0.0.1:" + std::to_string(port_); }
  std::string Log() const { return process_ ? process_->Log() : ""; }
  std::vector<json> Messages() const {
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(dir_ + "/mail")) {
      if (e.path().filename().string().front() != '.') names.push_back(e.path().string());
    }
    std::sort(names.begin(), names.end());
    std::vector<json> out;
    for (const auto& n : names) out.push_back(json::parse(ReadFile(n)));
    return out;
  }

 private:
  std::string dir_;
  int port_;
  std::unique_ptr<Process> process_;
};

void Openssl(const std::vector<std::string>& args) {
  std::vector<std::string> argv{"/usr/bin/openssl"};
  argv.insert(argv.end(), args.begin(), args.end());
  CommandResult r = RunCommand(argv);
  if (r.exit_code != 0) throw std::runtime_error("openssl failed: " + r.err);
}

// The line of `out` that starts with `mark` and contains `text`, and the
// line after it (the hint), or "" when there is none.
std::pair<std::string, std::string> LineWith(const std::string& out, const std::string& mark,
                                             const std::string& text) {
  std::istringstream in(out);
  std::string line, next;
  while (std::getline(in, line)) {
    if (line.rfind(mark + " ", 0) == 0 && line.find(text) != std::string::npos) {
      std::getline(in, next);
      return {line, next};
    }
  }
  return {"", ""};
}

class CollectorCheck : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = MakeTempDir("collector-check");
    grpc_port_ = FreePort();
    http_port_ = FreePort();
    Openssl({"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "365", "-subj",
             "/CN=collector.test", "-addext", "subjectAltName=DNS:collector.test", "-keyout",
             dir_ + "/good.key", "-out", dir_ + "/good.pem"});
    // Calendars for this year and the next (in UTC, the zone of the config below).
    const int64_t year = absl::ToCivilYear(absl::Now(), absl::UTCTimeZone()).year();
    std::filesystem::create_directories(dir_ + "/calendars");
    for (int64_t y : {year, year + 1}) {
      WriteFile(dir_ + "/calendars/ru-" + std::to_string(y) + ".txt",
                "year " + std::to_string(y) + "\n");
    }
    WriteFile(dir_ + "/hook.secret", std::string(kSecret) + "\n");
    ASSERT_TRUE(receiver_.Start());
    smtp_ = std::make_unique<SmtpServer>(dir_);
    ASSERT_TRUE(smtp_->Start()) << smtp_->Log();
  }

  void TearDown() override {
    collector_.reset();
    receiver_.Stop();
    smtp_.reset();
    if (std::getenv("SETDIAG_KEEP_TEST_DIRS") == nullptr) std::filesystem::remove_all(dir_);
  }

  struct Options {
    std::string cert = {}, key = {};              // default: the good pair
    std::string webhook_url = {}, smtp_url = {};  // default: the receivers
    std::string extra = {};
  };

  std::string Config() { return Config(Options()); }
  std::string Config(Options o) {
    if (o.cert.empty()) o.cert = dir_ + "/good.pem";
    if (o.key.empty()) o.key = dir_ + "/good.key";
    if (o.webhook_url.empty()) o.webhook_url = receiver_.url();
    if (o.smtp_url.empty()) o.smtp_url = smtp_->url();
    std::ostringstream c;
    c << "[collector]\ndata_dir = \"" << dir_ << "/data\"\n"
      << "[grpc]\nlisten = \"127.0.0.1:" << grpc_port_ << "\"\ntls_cert_file = \"" << o.cert
      << "\"\ntls_key_file = \"" << o.key << "\"\n"
      << "[http]\nlisten = \"127.0.0.1:" << http_port_ << "\"\n"
      << "[sla]\ncalendar_dir = \"" << dir_ << "/calendars\"\ntime_zone = \"UTC\"\n"
      << "[notify]\ntimeout = \"2s\"\n"
      << "[notify.webhook.helpdesk]\nurl = \"" << o.webhook_url << "\"\nsecret_file = \"" << dir_
      << "/hook.secret\"\n"
      << "[notify.email.duty]\nsmtp_url = \"" << o.smtp_url << "\"\nfrom = \"setdiag@example.ru\"\n"
      << "to = [\"duty@example.ru\"]\n"
      << o.extra;
    const std::string path = dir_ + "/collector-" + std::to_string(++configs_) + ".toml";
    WriteFile(path, c.str());
    return path;
  }

  CommandResult Check(const std::string& config, std::vector<std::string> args = {"--lang", "en"}) {
    std::vector<std::string> argv{SETDIAG_COLLECTOR_BIN, "-c", config, "check"};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  }

  json CheckJson(const std::string& config, int* exit_code, std::vector<std::string> more = {}) {
    std::vector<std::string> args{"--json"};
    args.insert(args.end(), more.begin(), more.end());
    CommandResult r = Check(config, args);
    *exit_code = r.exit_code;
    return json::parse(r.out);
  }

  static const json* Line(const json& report, const std::string& id) {
    for (const auto& c : report["checks"]) {
      if (c["id"] == id) return &c;
    }
    return nullptr;
  }

  void StartCollector(const std::string& config) {
    collector_ = std::make_unique<Process>(
        std::vector<std::string>{SETDIAG_COLLECTOR_BIN, "-c", config}, dir_ + "/collector.log");
    // Logged once both listeners are up (collector/main.cc).
    ASSERT_TRUE(WaitFor(
        [&] { return collector_->Log().find(", admin API on http://") != std::string::npos; }, 20s))
        << collector_->Log();
  }

  std::string dir_;
  int grpc_port_ = 0, http_port_ = 0, configs_ = 0;
  WebhookReceiver receiver_;
  std::unique_ptr<SmtpServer> smtp_;
  std::unique_ptr<Process> collector_;
};

TEST_F(CollectorCheck, AGoodConfigPassesAndSendsAndChangesNothing) {
  const std::string config = Config();
  // A database that exists, as on a collector that has run.
  ASSERT_EQ(RunCommand({SETDIAG_COLLECTOR_BIN, "-c", config, "token", "list"}).exit_code, 0);
  const std::string db_path = dir_ + "/data/collector.db";
  const std::string db_before = ReadFile(db_path);
  ASSERT_FALSE(db_before.empty());

  CommandResult r = Check(config);
  std::cerr << r.out;
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("all checks passed"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("✗"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("\n! "), std::string::npos) << r.out;
  EXPECT_NE(LineWith(r.out, "✓", "TLS certificate " + dir_ + "/good.pem: valid until").first, "")
      << r.out;
  EXPECT_NE(LineWith(r.out, "✓", "webhook helpdesk (http://127.0.0.1:").first, "") << r.out;
  EXPECT_EQ(r.out.find("t0p"), std::string::npos) << "the URL's token was shown";
  EXPECT_NE(LineWith(r.out, "✓", "the SMTP server answers: 220").first, "") << r.out;

  int rc = -1;
  json report = CheckJson(config, &rc);
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(report["ok"], true);
  for (const char* id :
       {"config", "grpc.listen", "http.listen", "grpc.tls", "grpc.tls_expiry", "sla.calendar",
        "database", "notify.webhook.helpdesk", "notify.email.duty"}) {
    const json* line = Line(report, id);
    ASSERT_NE(line, nullptr) << id << " missing: " << report.dump(2);
    EXPECT_EQ((*line)["verdict"], "ok") << report.dump(2);
    EXPECT_FALSE((*line)["text_ru"].get<std::string>().empty());
  }

  CommandResult ru = Check(config, {"--lang", "ru"});
  EXPECT_EQ(ru.exit_code, 0);
  EXPECT_NE(ru.out.find("всё в порядке"), std::string::npos) << ru.out;
  EXPECT_NE(ru.out.find("SMTP-сервер отвечает"), std::string::npos) << ru.out;

  // Connected to, never sent to; the database is byte for byte the same.
  EXPECT_GE(receiver_.connections(), 3);
  EXPECT_TRUE(receiver_.requests().empty());
  EXPECT_TRUE(smtp_->Messages().empty());
  EXPECT_EQ(ReadFile(db_path), db_before);
}

TEST_F(CollectorCheck, AnExpiredCertificateFailsOnItsLineWithTheHint) {
  const std::string pki = dir_ + "/pki";
  std::filesystem::create_directories(pki);
  MakeTestPki(pki, "collector.test");
  // Issued for 2025 with the test CA: `openssl ca` takes explicit dates.
  WriteFile(pki + "/index.txt", "");
  WriteFile(pki + "/serial.txt", "1000\n");
  WriteFile(pki + "/ca.cnf",
            "[ca]\ndefault_ca = d\n[d]\ndatabase = " + pki + "/index.txt\nnew_certs_dir = " + pki +
                "\nserial = " + pki +
                "/serial.txt\ndefault_md = sha256\npolicy = p\nunique_subject = no\n"
                "[p]\ncommonName = supplied\n");
  Openssl({"ca", "-batch", "-config", pki + "/ca.cnf", "-cert", pki + "/ca.pem", "-keyfile",
           pki + "/ca.key", "-in", pki + "/server.csr", "-out", pki + "/expired.pem", "-startdate",
           "20250101000000Z", "-enddate", "20250201000000Z", "-notext"});

  CommandResult r = Check(Config({.cert = pki + "/expired.pem", .key = pki + "/server.key"}));
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  auto [line, hint] = LineWith(
      r.out, "✗", "TLS certificate " + pki + "/expired.pem: expired on 2025-02-01 00:00 UTC");
  EXPECT_NE(line, "") << r.out;
  EXPECT_EQ(hint.rfind("    what to do: ", 0), 0u) << hint;
  EXPECT_NE(hint.find("grpc.tls_cert_file"), std::string::npos) << hint;
  // The key still matches: only the expiry fails.
  EXPECT_NE(LineWith(r.out, "✓", "load and match").first, "") << r.out;
  EXPECT_NE(r.out.find("some checks failed"), std::string::npos);

  // MakeTestPki's own certificate runs out in two days: a warning with the date, still exit 0.
  CommandResult soon = Check(Config({.cert = pki + "/server.pem", .key = pki + "/server.key"}));
  EXPECT_EQ(soon.exit_code, 0) << soon.out;
  auto [warn, warn_hint] =
      LineWith(soon.out, "!", "TLS certificate " + pki + "/server.pem: expires on ");
  EXPECT_NE(warn, "") << soon.out;
  EXPECT_TRUE(
      std::regex_search(warn, std::regex(R"(expires on \d{4}-\d\d-\d\d \d\d:\d\d UTC, in 1 day)")))
      << warn;
  EXPECT_NE(warn_hint.find("renew"), std::string::npos) << warn_hint;

  // A key of another certificate.
  CommandResult mismatch = Check(Config({.cert = pki + "/server.pem", .key = dir_ + "/good.key"}));
  EXPECT_EQ(mismatch.exit_code, 1);
  EXPECT_NE(
      LineWith(mismatch.out, "✗", "does not belong to certificate " + pki + "/server.pem").first,
      "")
      << mismatch.out;
}

// `check` reports a wrong key as a failed check (exit 1, above); serving
// with it is a bad config: exit 2 naming the key, its line and what is
// wrong, instead of exit 1 "cannot listen on ...".
TEST_F(CollectorCheck, ServingWithTlsFilesGrpcCannotUseIsABadConfigNamingTheKey) {
  WriteFile(dir_ + "/junk", "not a key\n");
  Openssl({"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "365", "-subj",
           "/CN=other.test", "-keyout", dir_ + "/other.key", "-out", dir_ + "/other.pem"});
  auto serve = [&](const std::string& config) {
    Process p({SETDIAG_COLLECTOR_BIN, "-c", config},
              dir_ + "/serve-" + std::to_string(configs_) + ".log");
    EXPECT_TRUE(WaitFor([&] { return !p.Running(); }, 20s)) << "still serving:\n" << p.Log();
    const int rc = p.Stop();
    return std::pair{rc, p.Log()};
  };
  struct Case {
    std::string cert, key, line_and_key, what;
  };
  for (const Case& c : std::vector<Case>{
           {dir_ + "/good.pem", dir_ + "/junk",
            ":6: key 'grpc.tls_key_file': ", "'" + dir_ + "/junk' is not a PEM private key"},
           {dir_ + "/good.pem", dir_ + "/good.pem",
            ":6: key 'grpc.tls_key_file': ", "'" + dir_ + "/good.pem' is not a PEM private key"},
           {dir_ + "/good.pem", dir_ + "/other.key", ":6: key 'grpc.tls_key_file': ",
            "'" + dir_ + "/other.key' does not match the certificate in '" + dir_ + "/good.pem'"},
           {dir_ + "/junk", dir_ + "/good.key",
            ":5: key 'grpc.tls_cert_file': ", "'" + dir_ + "/junk' holds no PEM certificate"},
       }) {
    SCOPED_TRACE(c.cert + " + " + c.key);
    const std::string config = Config({.cert = c.cert, .key = c.key});
    auto [rc, log] = serve(config);
    EXPECT_EQ(rc, 2) << log;
    EXPECT_NE(log.find("setdiag-collector: bad config: " + config + c.line_and_key + c.what),
              std::string::npos)
        << log;
    EXPECT_EQ(log.find("cannot listen"), std::string::npos) << log;
  }
  // The admin commands do not need the TLS files.
  EXPECT_EQ(
      RunCommand({SETDIAG_COLLECTOR_BIN, "-c", Config({.key = dir_ + "/junk"}), "token", "list"})
          .exit_code,
      0);
  // The good pair still serves.
  StartCollector(Config());
  EXPECT_TRUE(collector_->Running());
}

TEST_F(CollectorCheck, APortTakenByAnotherProgramFailsNamingIt) {
  WriteFile(dir_ + "/hold.py",
            "import socket, sys, time\n"
            "s = socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            "s.bind(('127.0.0.1', int(sys.argv[1])))\ns.listen()\n"
            "open(sys.argv[2], 'w').close()\ntime.sleep(600)\n");
  Process holder(
      {"/usr/bin/python3", dir_ + "/hold.py", std::to_string(grpc_port_), dir_ + "/held"},
      dir_ + "/hold.log");
  ASSERT_TRUE(WaitFor([&] { return std::filesystem::exists(dir_ + "/held"); }, 10s))
      << holder.Log();

  CommandResult r = Check(Config());
  EXPECT_EQ(r.exit_code, 1) << r.out;
  auto [line, hint] = LineWith(r.out, "✗", "grpc.listen 127.0.0.1:" + std::to_string(grpc_port_));
  EXPECT_NE(line, "") << r.out;
  EXPECT_NE(line.find("in use by python3 (pid " + std::to_string(holder.pid()) + ")"),
            std::string::npos)
      << line;
  EXPECT_NE(hint.find("give grpc.listen another port"), std::string::npos) << hint;
  EXPECT_NE(LineWith(r.out, "✓", "http.listen").first, "") << r.out;
}

TEST_F(CollectorCheck, TheRunningCollectorOnItsPortsIsAWarningNotAFailure) {
  const std::string config = Config();
  StartCollector(config);
  int rc = -1;
  json report = CheckJson(config, &rc);
  EXPECT_EQ(rc, 0) << report.dump(2);
  for (const char* id : {"grpc.listen", "http.listen"}) {
    const json* line = Line(report, id);
    ASSERT_NE(line, nullptr);
    EXPECT_EQ((*line)["verdict"], "warn") << (*line).dump();
    EXPECT_NE((*line)["text_en"].get<std::string>().find("in use by the running collector"),
              std::string::npos)
        << (*line).dump();
    EXPECT_NE((*line)["text_ru"].get<std::string>().find("занят работающим коллектором"),
              std::string::npos);
  }
  EXPECT_EQ((*Line(report, "database"))["verdict"], "ok") << report.dump(2);
  EXPECT_TRUE(collector_->Running());
}

TEST_F(CollectorCheck, AWebhookReceiverDownFailsWithTheHintAndUpPasses) {
  const int port = FreePort();
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/hooks/setdiag";
  const std::string config = Config({.webhook_url = url});
  CommandResult down = Check(config);
  EXPECT_EQ(down.exit_code, 1) << down.out;
  auto [line, hint] =
      LineWith(down.out, "✗", "webhook helpdesk (http://127.0.0.1:" + std::to_string(port) + ")");
  EXPECT_NE(line.find("not reachable: Connection refused"), std::string::npos) << down.out;
  EXPECT_NE(hint.find("check notify.webhook.helpdesk.url, that the receiver runs"),
            std::string::npos)
      << hint;

  WebhookReceiver up;
  ASSERT_TRUE(up.Start(static_cast<uint16_t>(port)));
  CommandResult r = Check(config);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(LineWith(r.out, "✓",
                     "webhook helpdesk (http://127.0.0.1:" + std::to_string(port) + "): reachable")
                .first,
            "")
      << r.out;
  EXPECT_TRUE(up.requests().empty());
}

TEST_F(CollectorCheck, SendTestDeliversExactlyOneWebhookAndOneMail) {
  const std::string config = Config();
  ASSERT_EQ(RunCommand({SETDIAG_COLLECTOR_BIN, "-c", config, "token", "list"}).exit_code, 0);
  const std::string db_before = ReadFile(dir_ + "/data/collector.db");

  CommandResult r = Check(config, {"--lang", "en", "--send-test"});
  std::cerr << r.out;
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(LineWith(r.out, "✓", "webhook helpdesk: test notification delivered (HTTP 200").first,
            "")
      << r.out;
  EXPECT_NE(LineWith(r.out, "✓",
                     "e-mail duty: test message accepted by the SMTP server for duty@example.ru")
                .first,
            "")
      << r.out;

  auto requests = receiver_.requests();
  ASSERT_EQ(requests.size(), 1u);
  const Received& req = requests[0];
  EXPECT_EQ(req.method, "POST");
  EXPECT_EQ(req.target, "/hooks/setdiag?token=t0p");
  EXPECT_EQ(req.headers.at("x-setdiag-event"), "setdiag.test");
  EXPECT_EQ(req.headers.at("x-setdiag-signature"), collector::SignBody(kSecret, req.body));
  json body = json::parse(req.body);
  EXPECT_EQ(body["type"], "setdiag.test");
  EXPECT_EQ(body["test"], true);
  EXPECT_EQ(body["id"], req.headers.at("idempotency-key"));
  EXPECT_NE(body["subject_en"].get<std::string>().find("TEST"), std::string::npos);
  EXPECT_NE(body["subject_ru"].get<std::string>().find("ТЕСТ"), std::string::npos);

  ASSERT_TRUE(WaitFor([&] { return !smtp_->Messages().empty(); }, 5s)) << smtp_->Log();
  auto mails = smtp_->Messages();
  ASSERT_EQ(mails.size(), 1u);
  EXPECT_EQ(mails[0]["rcpt_tos"], json::array({"duty@example.ru"}));
  EXPECT_EQ(mails[0]["mail_from"], "setdiag@example.ru");
  const std::string subject = mails[0]["subject"];
  EXPECT_NE(subject.find("ТЕСТ"), std::string::npos) << subject;
  EXPECT_NE(subject.find("TEST"), std::string::npos) << subject;
  const std::string text = mails[0]["body"];
  EXPECT_NE(text.find("Тикета нет"), std::string::npos) << text;
  EXPECT_NE(text.find("There is no ticket"), std::string::npos) << text;
  EXPECT_EQ(mails[0]["headers"]["X-Setdiag-Test"], "true");

  // Not through the outbox: the database is untouched.
  EXPECT_EQ(ReadFile(dir_ + "/data/collector.db"), db_before);
}

TEST_F(CollectorCheck, SendTestRefusedByTheReceiverFails) {
  WebhookReceiver refusing(401);
  ASSERT_TRUE(refusing.Start());
  CommandResult r = Check(Config({.webhook_url = refusing.url()}), {"--lang", "en", "--send-test"});
  EXPECT_EQ(r.exit_code, 1) << r.out;
  auto [line, hint] = LineWith(r.out, "✗", "webhook helpdesk: test notification refused: HTTP 401");
  EXPECT_NE(line, "") << r.out;
  EXPECT_NE(hint.find("X-Setdiag-Signature"), std::string::npos) << hint;
  EXPECT_EQ(refusing.requests().size(), 1u);
}

TEST_F(CollectorCheck, AnSmtpTargetThatIsNotSmtpFails) {
  // The HTTP receiver accepts the connection and waits for a request: no greeting.
  const std::string not_smtp = "smtp://127.0.0.1:" + std::to_string(receiver_.port());
  CommandResult r = Check(Config({.smtp_url = not_smtp}));
  EXPECT_EQ(r.exit_code, 1) << r.out;
  auto [line, hint] =
      LineWith(r.out, "✗", "e-mail duty (" + not_smtp + "): no SMTP greeting within 2000 ms");
  EXPECT_NE(line, "") << r.out;
  EXPECT_NE(hint.find("an SMTP server?"), std::string::npos) << hint;

  const int down = FreePort();
  CommandResult refused = Check(Config({.smtp_url = "smtp://127.0.0.1:" + std::to_string(down)}));
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(LineWith(refused.out, "✗",
                     "e-mail duty (smtp://127.0.0.1:" + std::to_string(down) + "): not reachable")
                .first,
            "")
      << refused.out;
}

TEST_F(CollectorCheck, ABadConfigExitsTwoNamingTheLineAndKey) {
  const std::string config = Config({.extra = "[bundles]\nkeep_fo = \"1d\"\n"});
  CommandResult r = Check(config);
  EXPECT_EQ(r.exit_code, 2) << r.out;
  auto [line, hint] = LineWith(r.out, "✗", "config " + config + ":");
  EXPECT_NE(line.find("unknown key 'bundles.keep_fo'"), std::string::npos) << r.out;
  EXPECT_TRUE(std::regex_search(line, std::regex(R"(\.toml:\d+: )"))) << line;
  EXPECT_NE(hint.find("docs/config.md"), std::string::npos) << hint;
  EXPECT_NE(r.err.find("bad config"), std::string::npos) << r.err;

  int rc = -1;
  json report = CheckJson(config, &rc);
  EXPECT_EQ(rc, 2);
  EXPECT_EQ(report["ok"], false);
  EXPECT_EQ(report["checks"][0]["id"], "config");
  EXPECT_EQ(report["checks"][0]["verdict"], "fail");
  // Nothing else was looked at.
  EXPECT_EQ(report["checks"].size(), 1u);
  EXPECT_EQ(receiver_.connections(), 0);
}

}  // namespace
}  // namespace setdiag::testing
