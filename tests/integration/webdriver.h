#pragma once
// A small W3C WebDriver client for the console's browser tests: Debian's
// chromium driven by chromium-driver (chromedriver) over its HTTP JSON
// protocol, headless. Enough for signing in, clicking, reading the page,
// running scripts in it, emulating the dark theme and taking screenshots.

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/http_client.h"
#include "tests/integration/harness.h"

namespace setdiag::testing {

class WebDriver {
 public:
  // Starts chromedriver on a free port and a headless chromium session;
  // throws std::runtime_error when either does not come up.
  explicit WebDriver(const std::string& log_path);
  ~WebDriver();

  void Go(const std::string& url);
  std::string Url();
  std::string Title();
  // Element ids ("element-6066-11e4-a52e-4f735466cecf") by CSS selector.
  std::vector<std::string> FindAll(const std::string& css);
  std::string Find(const std::string& css);  // throws when absent
  bool Exists(const std::string& css) { return !FindAll(css).empty(); }
  void Click(const std::string& element);
  void Type(const std::string& element, const std::string& text);
  // Sends keys to the page (keyboard shortcuts).
  void Keys(const std::string& text);
  std::string Text(const std::string& element);
  std::string Attribute(const std::string& element, const std::string& name);
  // Runs `body` as a function body (return ... gives the value).
  nlohmann::json Script(const std::string& body, nlohmann::json args = nlohmann::json::array());
  // Runs `body` asynchronously: it ends by calling arguments[arguments.length - 1](value).
  nlohmann::json AsyncScript(const std::string& body,
                             nlohmann::json args = nlohmann::json::array());
  // prefers-color-scheme: "dark" or "light" (DevTools emulation).
  void ColorScheme(const std::string& scheme);
  // A PNG of the viewport.
  std::string ScreenshotPng();
  nlohmann::json Cookies();
  void DeleteCookies();

 private:
  nlohmann::json Call(const std::string& method, const std::string& path,
                      const nlohmann::json& body = nullptr);

  std::unique_ptr<Process> driver_;
  std::unique_ptr<HttpClient> http_;
  std::string session_;
};

}  // namespace setdiag::testing
