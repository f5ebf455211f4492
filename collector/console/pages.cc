#include "collector/console/pages.h"

#include "common/strings.h"

namespace setdiag::collector::console {

using json = nlohmann::json;

namespace {

ApiResult FromResponse(const HttpResponse& res) {
  ApiResult r;
  r.status = res.status;
  json body = json::parse(res.body, nullptr, false);
  if (res.status == 200) {
    r.body = body.is_discarded() ? json::object() : body;
  } else {
    r.error = body.is_object() && body.contains("error") && body["error"].is_string()
                  ? body["error"].get<std::string>()
                  : res.body;
  }
  return r;
}

}  // namespace

std::string Str(const json& j, const char* key) {
  if (!j.is_object() || !j.contains(key)) return "";
  const json& v = j[key];
  return v.is_string() ? v.get<std::string>() : v.is_null() ? "" : v.dump();
}

int64_t Int(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_number() ? j[key].get<int64_t>() : 0;
}

HttpResponse Backend::Raw(const Ctx& ctx, const std::string& method,
                          const std::string& target) const {
  HttpRequest req;
  req.method = method;
  req.target = target;
  return api.HandleAs(ctx.who, req);
}

ApiResult Backend::Get(const Ctx& ctx, const std::string& target) const {
  return FromResponse(Raw(ctx, "GET", target));
}

ApiResult Backend::Post(const Ctx& ctx, const std::string& target, const json& body) const {
  HttpRequest req;
  req.method = "POST";
  req.target = target;
  req.body = body.dump();
  return FromResponse(api.HandleAs(ctx.who, req));
}

HttpResponse ApiErrorPage(const Ctx& ctx, const ApiResult& r) {
  if (r.status == 404) return ErrorPage(ctx, 404, Text(ctx.ru, "not_found"));
  if (r.status == 503) return ErrorPage(ctx, 503, Text(ctx.ru, "unavailable"));
  return ErrorPage(ctx, r.status, r.error);
}

std::string PriorityLabel(bool ru, const std::string& priority) { return Text(ru, priority); }

std::string StateLabel(bool ru, const std::string& state) {
  if (state == "open") return Text(ru, "open");
  if (state == "acknowledged") return Text(ru, "acknowledged_state");
  if (state == "resolved") return Text(ru, "resolved_state");
  return state;
}

std::string BundleStateLabel(bool ru, const std::string& state) {
  return Text(ru, Cat("b_", state));
}

std::string Bytes(int64_t n) { return n <= 0 ? "—" : HumanBytes(static_cast<uint64_t>(n)); }

std::string SafeBack(const std::string& back) {
  // Only our own pages: "/console/..." and never "//host" or a scheme.
  if (back.starts_with("/console/") && back.find("//") == std::string::npos &&
      back.find('\\') == std::string::npos && back.find('\r') == std::string::npos &&
      back.find('\n') == std::string::npos)
    return back;
  return "/console/queue";
}

}  // namespace setdiag::collector::console
