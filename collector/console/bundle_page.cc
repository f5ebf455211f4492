// A diagnostic bundle: its state, its manifest for people (steps, files,
// what was not collected, redaction counts), the download, and a small JSON
// answer the ticket page polls for progress.

#include "collector/console/pages.h"
#include "common/strings.h"
#include "common/url.h"

namespace setdiag::collector::console {

using json = nlohmann::json;

namespace {

// A manifest is the agent's: any field may be absent or of another type.
json A(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_array() ? j[key] : json::array();
}
json O(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_object() ? j[key] : json::object();
}

json ManifestData(const json& m) {
  json d = json::object();
  json steps = json::array();
  for (const auto& s : A(m, "steps")) {
    json notes = json::array();
    for (const auto& n : A(s, "notes"))
      if (n.is_string()) notes.push_back(n);
    steps.push_back({{"name", Str(s, "name")},
                     {"status", Str(s, "status")},
                     {"duration_ms", std::to_string(Int(s, "duration_ms"))},
                     {"files", std::to_string(Int(s, "files"))},
                     {"error", Str(s, "error")},
                     {"notes", notes}});
  }
  json files = json::array();
  for (const auto& f : A(m, "files"))
    files.push_back(
        {{"path", Str(f, "path")}, {"size", Bytes(Int(f, "size"))}, {"method", Str(f, "method")}});
  json missing = json::array();
  for (const auto& n : A(m, "not_collected"))
    missing.push_back(
        {{"source", Str(n, "source")}, {"step", Str(n, "step")}, {"reason", Str(n, "reason")}});
  json rules = json::array();
  const json red = O(m, "redactions");
  const json by_rule = O(red, "by_rule");
  for (const auto& [rule, count] : by_rule.items())
    rules.push_back({{"rule", rule}, {"count", count.dump()}});
  d["steps"] = steps;
  d["files"] = files;
  d["not_collected"] = missing;
  d["redactions_total"] = std::to_string(Int(red, "total"));
  d["redaction_rules"] = rules;
  return d;
}

}  // namespace

HttpResponse BundlePage(const Backend& b, const Ctx& ctx, const std::string& id) {
  ApiResult r = b.Get(ctx, Cat("/api/v1/bundles/", UrlEncode(id)));
  if (!r.ok()) return ApiErrorPage(ctx, r);
  const json& bundle = r.body["bundle"];
  json d = BundleRowData(ctx, bundle);
  const std::string store = Str(bundle, "store_id");
  d["t"] = Texts(ctx.ru);
  d["store_id"] = store;
  d["store_url"] = Cat("/console/stores/", UrlEncode(store));
  if (bundle.contains("ticket_id") && bundle["ticket_id"].is_number()) {
    d["ticket_id"] = bundle["ticket_id"].dump();
    d["ticket_url"] = Cat("/console/tickets/", bundle["ticket_id"].dump());
  }
  d["file_name"] = Cat("bundle-", store, "-", id, ".tar.gz");
  if (bundle.contains("manifest") && bundle["manifest"].is_object())
    d["manifest"] = ManifestData(bundle["manifest"]);
  else
    d["manifest"] = false;
  return Page(ctx, Cat(Text(ctx.ru, "bundle"), " ", id), "", RenderTemplate("bundle", d));
}

HttpResponse BundleDownload(const Backend& b, const Ctx& ctx, const std::string& id) {
  HttpResponse res = b.Raw(ctx, "GET", Cat("/api/v1/bundles/", UrlEncode(id), "/content"));
  if (!res.file_path.empty()) return res;  // the file, streamed from disk
  ApiResult r{res.status, {}, ""};
  json body = json::parse(res.body, nullptr, false);
  if (body.is_object() && body.contains("error") && body["error"].is_string())
    r.error = body["error"].get<std::string>();
  return ApiErrorPage(ctx, r);
}

HttpResponse BundleStatus(const Backend& b, const Ctx& ctx, const std::string& id) {
  ApiResult r = b.Get(ctx, Cat("/api/v1/bundles/", UrlEncode(id)));
  if (!r.ok()) {
    HttpResponse res{r.status, json{{"error", r.error}}.dump()};
    return res;
  }
  json d = BundleRowData(ctx, r.body["bundle"]);
  return HttpResponse{200, json{{"state", d["state"]},
                                {"state_label", d["state_label"]},
                                {"percent", d["percent"]},
                                {"complete", d["complete"]}}
                               .dump()};
}

}  // namespace setdiag::collector::console
