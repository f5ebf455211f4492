#include "collector/console/render.h"

#include <kainjow/mustache.hpp>
#include <map>
#include <mutex>
#include <stdexcept>

#include "collector/console/assets.h"
#include "common/strings.h"
#include "common/time_format.h"
#include "common/url.h"

namespace setdiag::collector::console {

namespace mustache = kainjow::mustache;
using json = nlohmann::json;

namespace {

mustache::data ToData(const json& j) {
  switch (j.type()) {
    case json::value_t::object: {
      mustache::data d{mustache::data::type::object};
      for (const auto& [k, v] : j.items()) d.set(k, ToData(v));
      return d;
    }
    case json::value_t::array: {
      mustache::data d{mustache::data::type::list};
      for (const auto& v : j) d.push_back(ToData(v));
      return d;
    }
    case json::value_t::string:
      // An empty string is false, as null is: {{#resolved}}...{{/resolved}}
      // shows nothing for a ticket not resolved (and {{resolved}} renders "").
      if (j.get_ref<const std::string&>().empty()) return mustache::data{false};
      return mustache::data{j.get<std::string>()};
    case json::value_t::boolean:
      return mustache::data{j.get<bool>()};
    case json::value_t::null:
    case json::value_t::discarded:
      return mustache::data{false};
    default:
      return mustache::data{j.dump()};  // numbers
  }
}

// Parsed once per template; a template is never changed at run time.
const mustache::mustache& Template(std::string_view name) {
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<mustache::mustache>, std::less<>> cache;
  std::lock_guard<std::mutex> lock(mu);
  if (auto it = cache.find(name); it != cache.end()) return *it->second;
  const std::string path = Cat("templates/", name, ".mustache");
  std::string_view text = AssetContent(path);
  if (text.empty()) throw std::runtime_error(Cat("no console template ", path));
  auto t = std::make_unique<mustache::mustache>(std::string(text));
  if (!t->is_valid()) throw std::runtime_error(Cat(path, ": ", t->error_message()));
  return *cache.emplace(std::string(name), std::move(t)).first->second;
}

constexpr const char* kCsp =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

}  // namespace

std::string RenderTemplate(std::string_view name, const json& data) {
  // Each render on a copy: mustache objects keep state while rendering.
  mustache::mustache t = Template(name);
  std::string out = t.render(ToData(data));
  if (!t.is_valid()) throw std::runtime_error(Cat(name, ": ", t.error_message()));
  return out;
}

HttpResponse Html(int status, std::string body) {
  HttpResponse r{status, std::move(body)};
  r.body_type = "text/html; charset=utf-8";
  r.headers = {{"Content-Security-Policy", kCsp},
               {"X-Content-Type-Options", "nosniff"},
               {"X-Frame-Options", "DENY"},
               {"Referrer-Policy", "same-origin"}};
  return r;
}

HttpResponse Redirect(const std::string& location,
                      std::vector<std::pair<std::string, std::string>> headers) {
  HttpResponse r = Html(303, "");
  r.headers.emplace_back("Location", location);
  for (auto& h : headers) r.headers.push_back(std::move(h));
  return r;
}

HttpResponse Page(const Ctx& ctx, const std::string& title, const std::string& nav,
                  const std::string& content, int status) {
  json d = {{"t", Texts(ctx.ru)},
            {"title", title},
            {"lang", ctx.ru ? "ru" : "en"},
            {"other_lang", ctx.ru ? "en" : "ru"},
            {"other_lang_label", ctx.ru ? "English" : "Русский"},
            {"user", ctx.who.name},
            {"role", ctx.who.role == Role::kSupport
                         ? Text(ctx.ru, "role_support")
                         : Cat(Text(ctx.ru, "role_partner"), " ", ctx.who.partner)},
            {"csrf", ctx.session.csrf},
            {"css", StaticUrl("console.css")},
            {"js", StaticUrl("console.js")},
            {"nav_queue", nav == "queue"},
            {"nav_stores", nav == "stores"},
            // After a POST the page is that POST's answer: back to the queue.
            {"back", ctx.http.method == "GET" ? ctx.http.target : std::string("/console/queue")},
            {"content", content}};
  return Html(status, RenderTemplate("layout", d));
}

HttpResponse ErrorPage(const Ctx& ctx, int status, const std::string& message) {
  json d = {{"t", Texts(ctx.ru)}, {"status", status}, {"message", message}};
  return Page(ctx, Text(ctx.ru, "error_title"), "", RenderTemplate("error", d), status);
}

std::string When(int64_t ms) { return ms == 0 ? std::string() : FormatMsk(ms); }

std::vector<std::pair<std::string, std::string>> ParseForm(std::string_view body) {
  std::vector<std::pair<std::string, std::string>> out;
  for (std::string_view part : Split(body, '&', false)) {
    if (part.empty()) continue;
    std::string p(part);
    for (char& c : p)
      if (c == '+') c = ' ';
    const auto eq = p.find('=');
    out.emplace_back(UrlDecode(p.substr(0, eq)),
                     eq == std::string::npos ? std::string() : UrlDecode(p.substr(eq + 1)));
  }
  return out;
}

std::string FormValue(const std::vector<std::pair<std::string, std::string>>& form,
                      std::string_view key) {
  for (const auto& [k, v] : form)
    if (k == key) return v;
  return "";
}

std::string CookieValue(std::string_view header, std::string_view name) {
  for (std::string_view part : Split(header, ';', false)) {
    std::string_view p = Trim(part);
    if (p.size() > name.size() && p.substr(0, name.size()) == name && p[name.size()] == '=')
      return std::string(p.substr(name.size() + 1));
  }
  return "";
}

}  // namespace setdiag::collector::console
