#pragma once
// What every console page is made with: the request's context (who, which
// language, the session's CSRF token), the Mustache templates (escaping by
// default: {{x}} escapes, only {{{x}}} of HTML we rendered ourselves does
// not), the layout around each page and the security headers of every
// answer.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "collector/console/sessions.h"
#include "collector/store/storage.h"
#include "common/http_server.h"

namespace setdiag::collector::console {

struct Ctx {
  const HttpRequest& http;
  User who;
  Session session;
  std::string session_id;
  bool ru = true;
};

// The texts of the console in one language, for templates ({{t.queue}}).
const nlohmann::json& Texts(bool ru);
// One text by key (for messages built in code).
std::string Text(bool ru, const std::string& key);

// Renders templates/<name>.mustache with `data` (JSON objects, arrays,
// strings, numbers and booleans as Mustache sections and values). Throws
// std::runtime_error for a template that does not parse (a build defect).
std::string RenderTemplate(std::string_view name, const nlohmann::json& data);

// A whole page: `content` (rendered HTML) inside the layout with the
// navigation, the language switch and sign-out. `nav` names the active tab.
HttpResponse Page(const Ctx& ctx, const std::string& title, const std::string& nav,
                  const std::string& content, int status = 200);
// An HTML answer with the console's security headers.
HttpResponse Html(int status, std::string body);
// 303 See Other to `location` (after a form POST), with more headers.
HttpResponse Redirect(const std::string& location,
                      std::vector<std::pair<std::string, std::string>> headers = {});
// A page that says what went wrong, in the context's language.
HttpResponse ErrorPage(const Ctx& ctx, int status, const std::string& message);

// Moscow time with the zone ("2026-11-27 02:06 MSK"); "" for 0.
std::string When(int64_t ms);

// The fields of an application/x-www-form-urlencoded body, in order (a key
// may repeat: the queue's checked tickets).
std::vector<std::pair<std::string, std::string>> ParseForm(std::string_view body);
// The first value of `key`, "" when absent.
std::string FormValue(const std::vector<std::pair<std::string, std::string>>& form,
                      std::string_view key);
// The value of cookie `name` in a Cookie header, "" when absent.
std::string CookieValue(std::string_view cookie_header, std::string_view name);

}  // namespace setdiag::collector::console
