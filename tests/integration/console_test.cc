// The support console in a real browser: Debian's chromium, headless, driven
// through chromium-driver, against a real collector with a real agent
// watching the simulator's tills in PostgreSQL. A support engineer signs in,
// sees a store's tills stop appear in the queue without reloading, watches
// the countdown move, acknowledges from the page, reads the stopped tills
// on the ticket, pulls a bundle and downloads it (the browser's SHA-256 is
// the collector's); a partner's engineer sees none of it on any page or in
// the live stream; a POST without the CSRF token is refused; sign out ends
// the session. Screenshots (ru/en, light/dark) go to the build tree.

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include "common/http_client.h"
#include "common/strings.h"
#include "tests/integration/harness.h"
#include "tests/integration/pg_server.h"
#include "tests/integration/webdriver.h"

namespace setdiag::testing {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

class ConsoleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pg_ = PgServer::Start();
    d_ = std::make_unique<Deployment>("console");
    control_port_ = FreePort();
    const int probe_port = FreePort();
    sim_ = std::make_unique<Process>(
        std::vector<std::string>{SETDIAG_STORE_SIM_BIN, "run", "--pg", pg_->ServerConnString(),
                                 "--store", "1042", "--tills", "20", "--interval", "500ms",
                                 "--control", "127.0.0.1:" + std::to_string(control_port_),
                                 "--probe-port", std::to_string(probe_port)},
        d_->dir() + "/sim.log");
    ASSERT_TRUE(WaitFor([&] { return SimCtl(control_port_, {"status"}).exit_code == 0; }, 30s))
        << sim_->Log();
    d_->StartCollector();
    const std::string extra =
        "[tills]\npoll_interval = \"500ms\"\nheartbeat_timeout = \"3s\"\nconfirm_window = "
        "\"3s\"\nclear_window = \"3s\"\nunreachable_confirm = \"2s\"\nprobe_timeout = "
        "\"300ms\"\nprobe_port = " +
        std::to_string(probe_port) +
        "\n[set_db]\nenabled = true\nhost = \"127.0.0.1\"\nport = " + std::to_string(pg_->port()) +
        "\nuser = \"postgres\"\nconnect_timeout = \"1s\"\n[server]\ncheck = false\n";
    agent_ = &d_->AddAgent("1042", d_->CreateStoreToken("1042", "acme"), extra);
    d_->StartAgent(*agent_);
    d_->CreateStoreToken("2077", "beta");  // another partner's store
    beta_token_ = d_->CreateUser("beta-desk", "partner", "beta");
    base_ = "http://127.0.0.1:" + std::to_string(d_->http_port());
    shots_ = std::string(SETDIAG_SCREENSHOT_DIR);
    std::filesystem::create_directories(shots_);
  }

  json Api(const std::string& target) {
    HttpClient http("127.0.0.1", static_cast<uint16_t>(d_->http_port()),
                    {.headers = {{"Authorization", "Bearer " + d_->support_token()}}});
    auto r = http.Request("GET", target);
    if (!r.ok() || r->status != 200) return json();
    return json::parse(r->body, nullptr, false);
  }

  void SignIn(WebDriver& wd, const std::string& token) {
    wd.Go(base_ + "/console/");
    ASSERT_NE(wd.Url().find("/console/signin"), std::string::npos) << wd.Url();
    wd.Type(wd.Find("#token"), token);
    wd.Click(wd.Find("input[name=lang][value=ru]"));  // the person's choice, kept
    wd.Click(wd.Find("#signin"));
    ASSERT_TRUE(WaitFor([&] { return wd.Url().find("/console/queue") != std::string::npos; }, 10s))
        << wd.Url();
  }

  void Shot(WebDriver& wd, const std::string& name) {
    std::ofstream(shots_ + "/" + name + ".png", std::ios::binary) << wd.ScreenshotPng();
  }

  // Events the page's own EventSource receives in `ms` milliseconds.
  json ListenInPage(WebDriver& wd, int ms, const std::function<void()>& meanwhile) {
    wd.Script(
        "window.__events = []; var es = new EventSource('/console/events');"
        "es.addEventListener('ticket', function (e) { window.__events.push(JSON.parse(e.data).id); "
        "});"
        "window.__es = es; return 1;");
    std::this_thread::sleep_for(1500ms);  // the stream has opened and read its cursor
    meanwhile();
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return wd.Script("window.__es.close(); return window.__events;");
  }

  std::unique_ptr<PgServer> pg_;
  std::unique_ptr<Deployment> d_;
  std::unique_ptr<Process> sim_;
  AgentSetup* agent_ = nullptr;
  int control_port_ = 0;
  std::string beta_token_, base_, shots_;
};

TEST_F(ConsoleTest, SupportWorksATicketLiveAndAPartnerSeesNothingOfIt) {
  WebDriver wd(d_->dir() + "/chromedriver.log");
  SignIn(wd, d_->support_token());
  EXPECT_FALSE(wd.Exists("tr.ticket")) << "a healthy store has no ticket";
  wd.Script("window.__stay = 42; return 1;");

  // Eleven of twenty tills stop: the ticket appears without a reload.
  ASSERT_EQ(SimCtl(control_port_, {"stop", "1-11"}).exit_code, 0);
  ASSERT_TRUE(WaitFor([&] { return wd.Exists("tr.ticket"); }, 60s)) << agent_->process->Log();
  EXPECT_EQ(wd.Script("return window.__stay;"), 42) << "the page was reloaded";
  const std::string row = wd.Find("tr.ticket");
  const std::string id = wd.Attribute(row, "data-id");
  EXPECT_NE(wd.Text(row).find("1042"), std::string::npos) << wd.Text(row);
  EXPECT_NE(wd.Attribute(row, "class").find("new"), std::string::npos) << "a new row stands out";

  // Its countdown (the 2 h first response of a critical Expert ticket) moves.
  const std::string clock = wd.Find("tr.ticket .clock[data-running=\"true\"]");
  const std::string before = wd.Text(clock);
  EXPECT_TRUE(WaitFor([&] { return wd.Text(clock) != before; }, 5s)) << before;
  Shot(wd, "queue-ru-light");
  wd.ColorScheme("dark");
  Shot(wd, "queue-ru-dark");
  wd.ColorScheme("light");

  // Keyboard: j focuses the first ticket, x selects it, a acknowledges.
  wd.Keys("j");
  EXPECT_EQ(wd.Script("return document.activeElement.className;"), "ticket-link");
  wd.Keys("x");
  EXPECT_EQ(wd.Script("return document.querySelector('tr.ticket input').checked;"), true);
  wd.Keys("a");
  ASSERT_TRUE(WaitFor(
      [&] { return Api("/api/v1/tickets/" + id)["ticket"]["state"] == "acknowledged"; }, 10s));
  EXPECT_EQ(Api("/api/v1/tickets/" + id)["ticket"]["acknowledged_by"], "support-desk");
  ASSERT_TRUE(WaitFor([&] { return wd.Exists(".notice"); }, 10s));
  EXPECT_NE(wd.Text(wd.Find(".notice")).find("#" + id), std::string::npos);

  // The ticket shows the stopped tills as a table.
  wd.Go(base_ + "/console/tickets/" + id);
  ASSERT_TRUE(wd.Exists("#stopped-tills")) << wd.Script("return document.body.innerText;");
  EXPECT_EQ(wd.FindAll("#stopped-tills tbody tr").size(), 10u) << "the first 10, and 1 more";
  EXPECT_NE(wd.Text(wd.Find("#stopped-tills")).find("127.0.1."), std::string::npos);
  EXPECT_NE(wd.Text(wd.Find("#ticket-state")).find("принята"), std::string::npos)
      << wd.Text(wd.Find("#ticket-state")) << " / "
      << wd.Script("return document.documentElement.lang;");
  Shot(wd, "ticket-ru-light");
  wd.ColorScheme("dark");
  Shot(wd, "ticket-ru-dark");
  wd.ColorScheme("light");

  // A bundle: requested from the page, followed live, downloaded by the
  // browser with the checksum the collector verified.
  wd.Click(wd.Find("#request-bundle"));
  ASSERT_TRUE(
      WaitFor([&] { return wd.Exists("#bundles tr[data-origin=\"request\"] a.download"); }, 120s))
      << agent_->process->Log();
  const std::string href =
      wd.Attribute(wd.Find("#bundles tr[data-origin=\"request\"] a.download"), "href");
  json sha = wd.AsyncScript(
      "var done = arguments[arguments.length - 1];"
      "fetch(arguments[0]).then(function (r) { return r.arrayBuffer(); })"
      ".then(function (b) { return crypto.subtle.digest('SHA-256', b); })"
      ".then(function (h) { done(Array.from(new Uint8Array(h)).map(function (x) {"
      "  return x.toString(16).padStart(2, '0'); }).join('')); })"
      ".catch(function (e) { done('error: ' + e); });",
      json::array({href}));
  // "/console/bundles/<id>/download": the one requested (the flight
  // recorder may have captured another for the critical condition).
  const std::string prefix = "/console/bundles/";
  ASSERT_NE(href.find(prefix), std::string::npos) << href;
  std::string bundle_id = href.substr(href.find(prefix) + prefix.size());
  bundle_id = bundle_id.substr(0, bundle_id.find('/'));
  json bundle = Api("/api/v1/bundles/" + bundle_id)["bundle"];
  EXPECT_EQ(bundle["state"], "complete") << bundle.dump(2);
  EXPECT_EQ(sha, bundle["sha256"]);
  wd.Go(base_ + "/console/bundles/" + bundle_id);
  EXPECT_TRUE(wd.Exists("#manifest-steps tbody tr"))
      << wd.Url() << "\n"
      << wd.Script("return document.body.innerText;");

  // The stores page, in Russian, then English; light and dark.
  wd.Go(base_ + "/console/stores");
  EXPECT_NE(wd.Text(wd.Find("#stores")).find("1042"), std::string::npos);
  Shot(wd, "stores-ru-light");
  wd.ColorScheme("dark");
  Shot(wd, "stores-ru-dark");
  wd.ColorScheme("light");
  wd.Click(wd.Find("#lang-switch"));
  ASSERT_TRUE(
      WaitFor([&] { return wd.Script("return document.documentElement.lang;") == "en"; }, 5s));
  Shot(wd, "stores-en-light");
  wd.ColorScheme("dark");
  Shot(wd, "stores-en-dark");
  wd.Go(base_ + "/console/tickets/" + id);
  EXPECT_NE(wd.Text(wd.Find("#ticket-state")).find("acknowledged"), std::string::npos);
  Shot(wd, "ticket-en-dark");
  wd.ColorScheme("light");
  Shot(wd, "ticket-en-light");
  wd.ColorScheme("dark");
  wd.Go(base_ + "/console/queue");
  Shot(wd, "queue-en-dark");
  wd.ColorScheme("light");
  Shot(wd, "queue-en-light");

  // Accessibility basics: every control has a label, text contrast is at
  // least 4.5:1 in both themes.
  json unlabeled = wd.Script(
      "return Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea'))"
      ".filter(function (e) { return !(e.labels && e.labels.length) && "
      "!e.getAttribute('aria-label'); })"
      ".map(function (e) { return e.outerHTML; });");
  EXPECT_TRUE(unlabeled.empty()) << unlabeled.dump(2);
  for (const char* scheme : {"light", "dark"}) {
    wd.ColorScheme(scheme);
    json low = wd.Script(R"JS(
      function rgb(s) { var m = s.match(/\d+(\.\d+)?/g); return m.slice(0, 3).map(Number); }
      function lum(c) { var a = c.map(function (v) { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); });
        return 0.2126 * a[0] + 0.7152 * a[1] + 0.0722 * a[2]; }
      function bg(e) { while (e) { var c = getComputedStyle(e).backgroundColor;
        if (c && c !== 'transparent' && !/rgba\(.*, 0\)$/.test(c)) return c; e = e.parentElement; } return 'rgb(255,255,255)'; }
      var out = [];
      document.querySelectorAll('body, a, th, td, .prio, .clock, .sub, button, label').forEach(function (e) {
        if (!e.textContent.trim()) return;
        var f = lum(rgb(getComputedStyle(e).color)), b = lum(rgb(bg(e)));
        var ratio = (Math.max(f, b) + 0.05) / (Math.min(f, b) + 0.05);
        if (ratio < 4.5) out.push(e.tagName + '.' + e.className + ' ' + ratio.toFixed(2));
      });
      return out.slice(0, 10);)JS");
    EXPECT_TRUE(low.empty()) << scheme << ": " << low.dump(2);
  }
  wd.ColorScheme("light");

  // CSRF: the session's cookie alone does not change anything.
  std::string cookie;
  for (const auto& c : wd.Cookies())
    if (c["name"] == "setdiag_session") cookie = c["value"];
  ASSERT_FALSE(cookie.empty());
  const size_t timeline = Api("/api/v1/tickets/" + id)["timeline"].size();
  for (const auto& headers : std::vector<std::vector<std::pair<std::string, std::string>>>{
           {{"Cookie", "setdiag_session=" + cookie}},
           {{"Cookie", "setdiag_session=" + cookie}, {"Origin", "http://evil.example"}}}) {
    HttpClient http("127.0.0.1", static_cast<uint16_t>(d_->http_port()), {.headers = headers});
    auto r = http.Request("POST", "/console/tickets/" + id + "/notes", "text=forged",
                          "application/x-www-form-urlencoded");
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->status, 403) << r->body;
  }
  EXPECT_EQ(Api("/api/v1/tickets/" + id)["timeline"].size(), timeline) << "nothing was written";

  // A partner's engineer, in a browser of its own: not on any page, not in
  // the live stream, while the support engineer's stream sees the change.
  {
    WebDriver beta(d_->dir() + "/chromedriver-beta.log");
    SignIn(beta, beta_token_);
    EXPECT_FALSE(beta.Exists("tr.ticket"));
    beta.Go(base_ + "/console/tickets/" + id);
    EXPECT_EQ(beta.Text(beta.Find("main")).find("1042"), std::string::npos);
    EXPECT_TRUE(beta.Exists("main .error"));
    beta.Go(base_ + "/console/stores");
    EXPECT_EQ(beta.Text(beta.Find("#stores")).find("1042"), std::string::npos);
    EXPECT_NE(beta.Text(beta.Find("#stores")).find("2077"), std::string::npos);
    beta.Go(base_ + "/console/stores/1042");
    EXPECT_TRUE(beta.Exists("main .error"));
    beta.Go(base_ + "/console/bundles/" + bundle_id);
    EXPECT_TRUE(beta.Exists("main .error"));
    beta.Go(base_ + "/console/queue");
    wd.Go(base_ + "/console/queue");
    json support_events;
    json beta_events = ListenInPage(beta, 3000, [&] {
      support_events = json::array();
      wd.Script(
          "window.__events = []; var es = new EventSource('/console/events');"
          "es.addEventListener('ticket', function (e) { "
          "window.__events.push(JSON.parse(e.data).id); });"
          "window.__es = es; return 1;");
      std::this_thread::sleep_for(1500ms);
      HttpClient http("127.0.0.1", static_cast<uint16_t>(d_->http_port()),
                      {.headers = {{"Authorization", "Bearer " + d_->support_token()}}});
      auto r = http.Request("POST", "/api/v1/tickets/" + id + "/notes",
                            R"({"text":"calling the store"})");
      ASSERT_TRUE(r.ok() && r->status == 200);
    });
    support_events = wd.Script("window.__es.close(); return window.__events;");
    EXPECT_NE(std::find(support_events.begin(), support_events.end(), std::stoll(id)),
              support_events.end())
        << "the support stream sees the note: " << support_events.dump();
    EXPECT_TRUE(beta_events.empty()) << beta_events.dump();
  }

  // Sign out: the session is gone, and so is its live stream. A stream
  // opened with the cookie (a raw socket, read until the server ends it).
  wd.Go(base_ + "/console/queue");
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(d_->http_port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string get =
      "GET /console/events HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: setdiag_session=" + cookie +
      "\r\n\r\n";
  ASSERT_EQ(send(fd, get.data(), get.size(), 0), static_cast<ssize_t>(get.size()));
  timeval tv{15, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string head;
  char buf[4096];
  while (head.find("retry: 3000") == std::string::npos) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    ASSERT_GT(n, 0) << head;
    head.append(buf, static_cast<size_t>(n));
  }
  EXPECT_NE(head.find("text/event-stream"), std::string::npos) << head;
  wd.Click(wd.Find("#signout"));
  // The stream looks at its session once a second; a comment comes every
  // 15 s while it runs, so a stream still open after 10 s did not end.
  timeval tv5{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv5, sizeof tv5);
  const auto until = std::chrono::steady_clock::now() + 10s;
  ssize_t last = 1;
  while (last > 0 && std::chrono::steady_clock::now() < until) last = recv(fd, buf, sizeof buf, 0);
  EXPECT_EQ(last, 0) << "the stream did not end with its session (" << strerror(errno) << ")";
  close(fd);
  ASSERT_TRUE(WaitFor([&] { return wd.Url().find("/console/signin") != std::string::npos; }, 5s));
  wd.Go(base_ + "/console/queue");
  EXPECT_NE(wd.Url().find("/console/signin"), std::string::npos);
  HttpClient http("127.0.0.1", static_cast<uint16_t>(d_->http_port()),
                  {.headers = {{"Cookie", "setdiag_session=" + cookie}}});
  auto r = http.Request("GET", "/console/queue/rows");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->status, 401) << "the old cookie is worth nothing";
}

}  // namespace
}  // namespace setdiag::testing

namespace setdiag::testing {
namespace {

// console.listen: the console for browsers on the network, HTTPS with the
// collector's own certificate; the session cookie is Secure there, the live
// stream works over TLS, and plain HTTP on that port gets no page. curl
// plays the browser here (the same TLS the console's users get).
TEST(ConsoleTls, TheConsoleListenerServesHttpsWithTheCollectorsCertificate) {
  const std::string pki = MakeTempDir("console-pki");
  MakeTestPki(pki, "collector.test");
  const int port = FreePort();
  Deployment d("console-tls", "tls_cert_file = \"" + pki + "/server.pem\"\ntls_key_file = \"" +
                                  pki + "/server.key\"\n[console]\nlisten = \"127.0.0.1:" +
                                  std::to_string(port) + "\"\n");
  d.StartCollector();
  const std::string host = "collector.test:" + std::to_string(port);
  const std::string resolve = host + ":127.0.0.1";
  auto curl = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv{"/usr/bin/curl", "-sS",           "--max-time", "10",
                                  "--cacert",      pki + "/ca.pem", "--resolve",  resolve};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return RunCommand(argv);
  };
  CommandResult page = curl({"https://" + host + "/console/signin"});
  ASSERT_EQ(page.exit_code, 0) << page.err;
  EXPECT_NE(page.out.find("id=\"token\""), std::string::npos) << page.out;

  CommandResult signin =
      curl({"-D", "-", "-o", "/dev/null", "-H", "Origin: https://" + host, "--data-urlencode",
            "token=" + d.support_token(), "-d", "lang=en", "https://" + host + "/console/signin"});
  ASSERT_EQ(signin.exit_code, 0) << signin.err;
  EXPECT_NE(signin.out.find("303"), std::string::npos) << signin.out;
  std::smatch m;
  ASSERT_TRUE(
      std::regex_search(signin.out, m, std::regex("setdiag_session=([0-9a-f]{64});[^\r\n]*")))
      << signin.out;
  const std::string cookie_line = m[0];
  EXPECT_NE(cookie_line.find("; Secure"), std::string::npos) << cookie_line;
  EXPECT_NE(cookie_line.find("; HttpOnly"), std::string::npos) << cookie_line;
  EXPECT_NE(cookie_line.find("SameSite=Strict"), std::string::npos) << cookie_line;
  const std::string session = m[1];

  CommandResult queue =
      curl({"-H", "Cookie: setdiag_session=" + session, "https://" + host + "/console/queue"});
  EXPECT_NE(queue.out.find("Open tickets"), std::string::npos) << queue.out;
  // A second session cookie (planted by another service on this host: cookies
  // are per host, not per port) makes neither count.
  CommandResult planted =
      curl({"-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "-H",
            "Cookie: setdiag_session=" + session + "; setdiag_session=" + std::string(64, 'a'),
            "https://" + host + "/console/queue"});
  EXPECT_NE(planted.out.find("303"), std::string::npos) << planted.out;
  EXPECT_NE(planted.out.find("/console/signin"), std::string::npos) << planted.out;
  // The live stream over TLS: its head and first block arrive.
  CommandResult events = curl({"-N", "--max-time", "3", "-H", "Cookie: setdiag_session=" + session,
                               "https://" + host + "/console/events"});
  EXPECT_NE(events.out.find("retry: 3000"), std::string::npos) << events.out << events.err;
  // Plain HTTP on the TLS port: no page.
  CommandResult plain =
      RunCommand({"/usr/bin/curl", "-sS", "--max-time", "5",
                  "http://127.0.0.1:" + std::to_string(port) + "/console/signin"});
  EXPECT_EQ(plain.out.find("id=\"token\""), std::string::npos) << plain.out;
  // The loopback listener stays plain HTTP, for the CLI.
  EXPECT_EQ(d.Cli({"stores", "list"}).exit_code, 0);
  std::filesystem::remove_all(pki);
}

// A sign-in token never crosses a network in plaintext: on a non-loopback
// http.listen the API answers, the console does not.
TEST(ConsoleTls, ANonLoopbackPlainHttpListenerServesNoConsole) {
  Deployment d("console-plain-net");
  const std::string loopback = "listen = \"127.0.0.1:" + std::to_string(d.http_port()) + "\"";
  std::string cfg = ReadFile(d.collector_config());
  ASSERT_NE(cfg.find(loopback), std::string::npos) << cfg;
  cfg.replace(cfg.find(loopback), loopback.size(),
              "listen = \"0.0.0.0:" + std::to_string(d.http_port()) + "\"");
  WriteFile(d.collector_config(), cfg);
  d.StartCollector();
  const std::string base = "http://127.0.0.1:" + std::to_string(d.http_port());
  CommandResult page =
      RunCommand({"/usr/bin/curl", "-sS", "-w", " %{http_code}", base + "/console/signin"});
  EXPECT_NE(page.out.find("use console.listen (HTTPS)"), std::string::npos) << page.out;
  EXPECT_NE(page.out.find(" 404"), std::string::npos) << page.out;
  EXPECT_EQ(d.Cli({"stores", "list"}).exit_code, 0) << "the API still answers";
}

TEST(ConsoleTls, AConsoleListenerOnTheNetworkWithoutTlsIsAConfigError) {
  Deployment d("console-notls");
  WriteFile(d.collector_config(),
            ReadFile(d.collector_config()) +
                "[console]\nlisten = \"0.0.0.0:" + std::to_string(FreePort()) + "\"\n");
  CommandResult r = RunCommand({SETDIAG_COLLECTOR_BIN, "--config", d.collector_config(), "check"});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE((r.out + r.err).find("key 'console.listen'"), std::string::npos) << r.out << r.err;
  EXPECT_NE((r.out + r.err).find("grpc.tls_cert_file"), std::string::npos) << r.out << r.err;
}

}  // namespace
}  // namespace setdiag::testing
