#include "collector/console/console.h"

#include <openssl/crypto.h>

#include "collector/api/request.h"
#include "collector/console/assets.h"
#include "collector/console/pages.h"
#include "common/log.h"
#include "common/strings.h"
#include "common/url.h"

namespace setdiag::collector::console {

namespace {

constexpr const char* kSessionCookie = "setdiag_session";
constexpr const char* kLangCookie = "setdiag_lang";

bool SameSecret(const std::string& a, const std::string& b) {
  return a.size() == b.size() && !a.empty() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// A state-changing request from another site carries its Origin (every
// browser sends one on POST); ours is this host.
bool SameOrigin(const HttpRequest& r) {
  const std::string origin = r.Header("origin");
  if (origin.empty() || origin == "null") return origin.empty();
  const std::string host = r.Header("host");
  return origin == Cat("http://", host) || origin == Cat("https://", host);
}

size_t CountCookies(std::string_view header, std::string_view name) {
  size_t n = 0;
  for (std::string_view part : Split(header, ';', false)) {
    std::string_view p = Trim(part);
    if (p.size() > name.size() && p.substr(0, name.size()) == name && p[name.size()] == '=') ++n;
  }
  return n;
}

std::string LangOf(const HttpRequest& r) {
  std::string lang = CookieValue(r.Header("cookie"), kLangCookie);
  if (lang == "ru" || lang == "en") return lang;
  return r.Header("accept-language").starts_with("en") ? "en" : "ru";
}

}  // namespace

struct Console::Impl {
  Impl(AdminApi& api, TicketPolicy p, const BusinessClock& business, Clock& clock, Options o)
      : policy(std::move(p)),
        options(o),
        sessions(clock, o.session_lifetime_ms),
        backend{api, policy, business, clock, o.live_poll_ms, &sessions} {}

  TicketPolicy policy;
  Options options;
  Sessions sessions;
  Backend backend;

  // Secure when the request came over TLS (console.listen with the
  // collector's certificate) or the console is told it is behind TLS.
  std::string Cookie(const HttpRequest& r, const std::string& name, const std::string& value,
                     int64_t max_age_s) const {
    return Cat(name, "=", value, "; Path=/; Max-Age=", max_age_s, "; SameSite=Strict; HttpOnly",
               r.tls || options.tls ? "; Secure" : "");
  }

  HttpResponse SignInPage(const HttpRequest& r, const std::string& error, int status) const {
    const bool ru = LangOf(r) == "ru";
    nlohmann::json d = {{"t", Texts(ru)},
                        {"ru", ru},
                        {"lang", ru ? "ru" : "en"},
                        {"css", StaticUrl("console.css")},
                        {"error", error}};
    return Html(status, RenderTemplate("signin", d));
  }

  HttpResponse SignIn(const HttpRequest& r) {
    if (!SameOrigin(r)) return SignInPage(r, Text(LangOf(r) == "ru", "csrf_refused"), 403);
    const Form form = ParseForm(r.body);
    std::string lang = FormValue(form, "lang");
    if (lang != "ru" && lang != "en") lang = LangOf(r);
    const std::string token(Trim(FormValue(form, "token")));
    auto user = backend.api.Authenticate(token);
    if (!user.ok()) return SignInPage(r, Text(lang == "ru", "unavailable"), 503);
    if (!*user) {
      log::Warn("console", "sign-in refused: unknown or revoked token");
      return SignInPage(r, Text(lang == "ru", "signin_failed"), 401);
    }
    auto opened = sessions.Open((*user)->id, lang);
    log::Info("console", Cat("user ", (*user)->name, " signed in"));
    const int64_t age_s = sessions.lifetime_ms() / 1000;
    return Redirect("/console/queue",
                    {{"Set-Cookie", Cookie(r, kSessionCookie, opened.id, age_s)},
                     {"Set-Cookie", Cookie(r, kLangCookie, lang, 365LL * 86400)}});
  }

  // The signed-in person, or nullopt (no, expired or revoked session).
  std::optional<Ctx> Context(const HttpRequest& r) {
    const std::string cookies = r.Header("cookie");
    // Two session cookies: one was planted (cookies are per host, not per
    // port, so another service on this host could set one): neither counts.
    if (CountCookies(cookies, kSessionCookie) > 1) return std::nullopt;
    const std::string id = CookieValue(cookies, kSessionCookie);
    auto session = sessions.Find(id);
    if (!session) return std::nullopt;
    auto user = backend.api.UserById(session->user_id);
    if (!user.ok() || !*user) {
      sessions.Close(id);
      return std::nullopt;
    }
    return Ctx{r, **user, *session, id, session->lang != "en"};
  }

  HttpResponse Static(const std::string& name) const {
    for (const StaticFile& f : StaticFiles()) {
      if (f.served_name != name) continue;
      HttpResponse res = Html(200, std::string(f.content));
      res.body_type = f.content_type;
      res.headers.emplace_back("Cache-Control", "public, max-age=31536000, immutable");
      return res;
    }
    return Html(404, "not found");
  }

  HttpResponse Post(const Ctx& ctx, const std::vector<std::string_view>& seg) {
    const Form form = ParseForm(ctx.http.body);
    const std::string csrf = ctx.http.Header("x-csrf-token").empty()
                                 ? FormValue(form, "csrf")
                                 : ctx.http.Header("x-csrf-token");
    if (!SameOrigin(ctx.http) || !SameSecret(csrf, ctx.session.csrf)) {
      log::Warn("console", Cat("refused ", ctx.http.target, " of user ", ctx.who.name,
                               ": no valid CSRF token"));
      return ErrorPage(ctx, 403, Text(ctx.ru, "csrf_refused"));
    }
    if (seg.size() == 1 && seg[0] == "signout") {
      sessions.Close(ctx.session_id);
      log::Info("console", Cat("user ", ctx.who.name, " signed out"));
      return Redirect("/console/signin", {{"Set-Cookie", Cookie(ctx.http, kSessionCookie, "", 0)}});
    }
    if (seg.size() == 1 && seg[0] == "lang") {
      std::string lang = FormValue(form, "lang") == "en" ? "en" : "ru";
      sessions.SetLang(ctx.session_id, lang);
      return Redirect(SafeBack(FormValue(form, "back")),
                      {{"Set-Cookie", Cookie(ctx.http, kLangCookie, lang, 365LL * 86400)}});
    }
    if (seg.size() == 2 && seg[0] == "tickets" && seg[1] == "bulk")
      return BulkAction(backend, ctx, form);
    if (seg.size() == 3 && seg[0] == "tickets") {
      auto id = api::ParseTicketId(seg[1]);
      if (!id) return ErrorPage(ctx, 404, Text(ctx.ru, "not_found"));
      if (seg[2] == "bundle") return RequestBundle(backend, ctx, *id, form);
      return TicketAction(backend, ctx, *id, std::string(seg[2]), form);
    }
    return ErrorPage(ctx, 404, Text(ctx.ru, "not_found"));
  }

  HttpResponse Route(const HttpRequest& r);

  HttpResponse Get(const Ctx& ctx, const std::vector<std::string_view>& seg) {
    if (seg.empty() || (seg.size() == 1 && seg[0] == "signin")) return Redirect("/console/queue");
    if (seg[0] == "queue" && seg.size() == 1) return QueuePage(backend, ctx, false);
    if (seg[0] == "queue" && seg.size() == 2 && seg[1] == "rows")
      return QueuePage(backend, ctx, true);
    if (seg[0] == "events" && seg.size() == 1) return LiveEvents(backend, ctx);
    if (seg[0] == "tickets" && seg.size() == 2) {
      auto id = api::ParseTicketId(seg[1]);
      if (!id) return ErrorPage(ctx, 404, Text(ctx.ru, "not_found"));
      const RequestTarget t = ParseRequestTarget(ctx.http.target);
      auto done = t.query.find("done");
      std::string notice = done == t.query.end() ? "" : Text(ctx.ru, Cat("done_", done->second));
      if (notice.starts_with("done_")) notice.clear();  // not one of ours
      return TicketPage(backend, ctx, *id, notice, "");
    }
    if (seg[0] == "bundles" && seg.size() == 2) return BundlePage(backend, ctx, UrlDecode(seg[1]));
    if (seg[0] == "bundles" && seg.size() == 3 && seg[2] == "download")
      return BundleDownload(backend, ctx, UrlDecode(seg[1]));
    if (seg[0] == "bundles" && seg.size() == 3 && seg[2] == "status")
      return BundleStatus(backend, ctx, UrlDecode(seg[1]));
    if (seg[0] == "stores" && seg.size() == 1) return StoresPage(backend, ctx);
    if (seg[0] == "stores" && seg.size() == 2) return StorePage(backend, ctx, UrlDecode(seg[1]));
    return ErrorPage(ctx, 404, Text(ctx.ru, "not_found"));
  }
};

Console::Console(AdminApi& api, TicketPolicy policy, const BusinessClock& business, Clock& clock,
                 Options options)
    : impl_(std::make_unique<Impl>(api, std::move(policy), business, clock, options)) {}

Console::~Console() = default;

Sessions& Console::sessions() { return impl_->sessions; }

bool Console::Owns(const HttpRequest& request) {
  const std::string path = ParseRequestTarget(request.target).path;
  return path == "/" || path == "/console" || path.starts_with("/console/");
}

HttpResponse Console::Handle(const HttpRequest& r) {
  try {
    return impl_->Route(r);
  } catch (const std::exception& e) {
    // A page that cannot be made is a defect: logged, and said as a page.
    log::Error("console", Cat(r.method, " ", ParseRequestTarget(r.target).path, ": ", e.what()));
    return Html(500, "<!DOCTYPE html><title>setdiag</title><p>Internal error / Внутренняя ошибка");
  }
}

HttpResponse Console::Impl::Route(const HttpRequest& r) {
  const std::string path = ParseRequestTarget(r.target).path;
  if (path == "/" || path == "/console" || path == "/console/") return Redirect("/console/queue");
  std::vector<std::string_view> seg =
      Split(std::string_view(path).substr(std::string_view("/console/").size()), '/', false);
  if (seg.size() == 2 && seg[0] == "static" && r.method == "GET")
    return Static(std::string(seg[1]));
  if (seg.size() == 1 && seg[0] == "signin") {
    if (r.method == "POST") return SignIn(r);
    if (!Context(r)) return SignInPage(r, "", 200);
  }
  auto ctx = Context(r);
  if (!ctx) {
    if (r.method == "GET" && !(seg.size() == 1 && seg[0] == "events") &&
        !(seg.size() == 2 && seg[1] == "rows"))
      return Redirect("/console/signin");
    return Html(401, "signed out");
  }
  if (r.method == "POST") return Post(*ctx, seg);
  if (r.method == "GET") return Get(*ctx, seg);
  HttpResponse res = Html(405, "method not allowed");
  res.headers.emplace_back("Allow", "GET, POST");
  return res;
}

}  // namespace setdiag::collector::console
