#include "tests/integration/webdriver.h"

#include <chrono>
#include <stdexcept>
#include <thread>

#include "common/digest.h"
#include "common/strings.h"

namespace setdiag::testing {

using json = nlohmann::json;
using namespace std::chrono_literals;

namespace {
constexpr const char* kElement = "element-6066-11e4-a52e-4f735466cecf";
}

WebDriver::WebDriver(const std::string& log_path) {
  const int port = FreePort();
  driver_ = std::make_unique<Process>(
      std::vector<std::string>{"/usr/bin/chromedriver", Cat("--port=", port)}, log_path);
  http_ = std::make_unique<HttpClient>(
      "127.0.0.1", static_cast<uint16_t>(port),
      HttpClientOptions{.timeout = std::chrono::seconds(60), .body_limit = 64 * 1024 * 1024});
  if (!WaitFor(
          [&] {
            auto r = http_->Request("GET", "/status");
            return r.ok() && r->status == 200;
          },
          20s))
    throw std::runtime_error("chromedriver did not start: " + driver_->Log());
  json caps = {{"capabilities",
                {{"alwaysMatch",
                  {{"browserName", "chrome"},
                   {"goog:chromeOptions",
                    {{"binary", "/usr/bin/chromium"},
                     {"args",
                      {"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                       "--window-size=1366,900", "--lang=ru-RU", "--no-first-run",
                       "--disable-background-networking", "--disable-extensions"}}}}}}}}};
  json r = Call("POST", "/session", caps);
  session_ = r["sessionId"].get<std::string>();
}

WebDriver::~WebDriver() {
  try {
    if (!session_.empty()) Call("DELETE", "/session/" + session_);
  } catch (const std::exception&) {
  }
  if (driver_) driver_->Stop();
}

json WebDriver::Call(const std::string& method, const std::string& path, const json& body) {
  const std::string full = path.starts_with("/session/") || path == "/session" || path == "/status"
                               ? path
                               : "/session/" + session_ + path;
  auto r = http_->Request(method, full, body.is_null() ? "" : body.dump(),
                          "application/json; charset=utf-8");
  if (!r.ok())
    throw std::runtime_error(Cat("webdriver ", method, " ", full, ": ", r.status().message()));
  json answer = json::parse(r->body, nullptr, false);
  if (r->status != 200) {
    throw std::runtime_error(Cat("webdriver ", method, " ", full, " answered ", r->status, ": ",
                                 answer.is_discarded() ? r->body : answer.dump()));
  }
  if (path == "/session") return answer["value"];
  return answer.is_discarded() ? json() : answer["value"];
}

void WebDriver::Go(const std::string& url) { Call("POST", "/url", {{"url", url}}); }
std::string WebDriver::Url() { return Call("GET", "/url").get<std::string>(); }
std::string WebDriver::Title() { return Call("GET", "/title").get<std::string>(); }

std::vector<std::string> WebDriver::FindAll(const std::string& css) {
  std::vector<std::string> out;
  for (const auto& e : Call("POST", "/elements", {{"using", "css selector"}, {"value", css}}))
    out.push_back(e[kElement].get<std::string>());
  return out;
}

std::string WebDriver::Find(const std::string& css) {
  auto all = FindAll(css);
  if (all.empty()) throw std::runtime_error("no element " + css + " on " + Url());
  return all.front();
}

void WebDriver::Click(const std::string& e) {
  Call("POST", "/element/" + e + "/click", json::object());
}

void WebDriver::Type(const std::string& e, const std::string& text) {
  Call("POST", "/element/" + e + "/value", {{"text", text}});
}

void WebDriver::Keys(const std::string& text) {
  json actions = json::array();
  for (char c : text) {
    actions.push_back({{"type", "keyDown"}, {"value", std::string(1, c)}});
    actions.push_back({{"type", "keyUp"}, {"value", std::string(1, c)}});
  }
  Call("POST", "/actions",
       {{"actions", {{{"type", "key"}, {"id", "keyboard"}, {"actions", actions}}}}});
}

std::string WebDriver::Text(const std::string& e) {
  return Call("GET", "/element/" + e + "/text").get<std::string>();
}

std::string WebDriver::Attribute(const std::string& e, const std::string& name) {
  json v = Call("GET", "/element/" + e + "/attribute/" + name);
  return v.is_string() ? v.get<std::string>() : "";
}

json WebDriver::Script(const std::string& body, json args) {
  return Call("POST", "/execute/sync", {{"script", body}, {"args", args}});
}

json WebDriver::AsyncScript(const std::string& body, json args) {
  return Call("POST", "/execute/async", {{"script", body}, {"args", args}});
}

void WebDriver::ColorScheme(const std::string& scheme) {
  Call("POST", "/goog/cdp/execute",
       {{"cmd", "Emulation.setEmulatedMedia"},
        {"params", {{"features", {{{"name", "prefers-color-scheme"}, {"value", scheme}}}}}}});
}

std::string WebDriver::ScreenshotPng() {
  auto png = Unbase64(Call("GET", "/screenshot").get<std::string>());
  if (!png) throw std::runtime_error("webdriver: screenshot is not base64");
  return *png;
}

json WebDriver::Cookies() { return Call("GET", "/cookie"); }
void WebDriver::DeleteCookies() { Call("DELETE", "/cookie"); }

}  // namespace setdiag::testing
