// A ticket: its texts in the person's language, the SLA clocks, the
// evidence rendered for people, the actions its state allows, its bundles
// (request, progress, download) and the whole timeline.

#include "collector/console/pages.h"
#include "collector/console/sla_view.h"
#include "common/strings.h"
#include "common/url.h"

namespace setdiag::collector::console {

using json = nlohmann::json;

namespace {

json ClockRows(const Backend& b, const Ctx& ctx, const json& t) {
  json out = json::array();
  for (const ClockView& c : ClockViews(t, b.policy, b.business, b.clock.NowMs())) {
    const bool running = c.met_at_ms == 0;
    std::string text = !running ? Cat(Text(ctx.ru, "met"), " ", When(c.met_at_ms))
                       : c.remaining_ms < 0
                           ? Cat(Text(ctx.ru, "overdue"), " ", FormatSpan(c.remaining_ms, ctx.ru))
                           : FormatSpan(c.remaining_ms, ctx.ru);
    out.push_back({{"label", Text(ctx.ru, Cat("c_", c.name))},
                   {"business", c.business},
                   {"due", When(c.due_ms)},
                   {"state", c.state},
                   {"remaining_ms", std::to_string(c.remaining_ms)},
                   {"paused", c.paused},
                   {"paused_attr", c.paused ? "true" : "false"},
                   {"running", running},
                   {"running_attr", running ? "true" : "false"},
                   {"text", text}});
  }
  return out;
}

// The evidence (docs/notifications.md#evidence) as the template shows it.
json EvidenceData(const Ctx& ctx, const json& ev) {
  json d = {{"has_evidence", ev.is_object()}};
  if (!ev.is_object()) return d;
  if (ev.contains("likely_cause") && ev["likely_cause"].is_object())
    d["likely_cause"] = Str(ev["likely_cause"], ctx.ru ? "ru" : "en");
  if (ev.contains("tills") && ev["tills"].is_array()) {
    json tills = json::array();
    for (const auto& t : ev["tills"]) {
      const int64_t hb = Int(t, "last_heartbeat_ms");
      tills.push_back({{"number", t.contains("number") ? t["number"].dump() : ""},
                       {"last_heartbeat", hb ? When(hb) : Text(ctx.ru, "never")},
                       {"probe", Text(ctx.ru, Cat("probe_", Str(t, "probe")))},
                       {"stopped_since", When(Int(t, "stopped_since_ms"))},
                       {"address", Str(t, "address")}});
    }
    d["has_tills"] = !tills.empty();
    d["tills"] = tills;
    d["stopped"] = ev.contains("stopped") ? ev["stopped"].dump() : "";
    d["expected"] = ev.contains("expected") ? ev["expected"].dump() : "";
    d["tills_more"] = Int(ev, "tills_more") ? std::to_string(Int(ev, "tills_more")) : "";
  }
  if (ev.contains("stuck_package") && ev["stuck_package"].is_object()) {
    const auto& p = ev["stuck_package"];
    d["stuck_package"] = {{"ti", Str(p, "ti")},
                          {"import_type", Str(p, "import_type")},
                          {"since", When(Int(p, "since_ms"))}};
  }
  if (ev.contains("oldest_waiting_file") && ev["oldest_waiting_file"].is_object()) {
    const auto& w = ev["oldest_waiting_file"];
    d["oldest_waiting_file"] = {{"path", Str(w, "path")},
                                {"files", w.contains("files") ? w["files"].dump() : ""},
                                {"mtime", When(Int(w, "mtime_ms"))}};
  }
  if (ev.contains("lagging_tills") && ev["lagging_tills"].is_array()) {
    json lag = json::array();
    for (const auto& l : ev["lagging_tills"])
      lag.push_back({{"till", l.contains("till") ? l["till"].dump() : ""},
                     {"not_loaded", l.contains("not_loaded") ? l["not_loaded"].dump() : ""},
                     {"waiting_since", When(Int(l, "waiting_since_ms"))},
                     {"last_load", When(Int(l, "last_load_ms"))}});
    d["has_lagging"] = !lag.empty();
    d["lagging"] = lag;
  }
  if (ev.contains("failed_packages") && ev["failed_packages"].is_array()) {
    json failed = json::array();
    for (const auto& p : ev["failed_packages"])
      failed.push_back({{"ti", Str(p, "ti")},
                        {"arrived", When(Int(p, "arrived_ms"))},
                        {"status_name", Str(p, "status_name")},
                        {"message", Str(p, "message")}});
    d["has_failed"] = !failed.empty();
    d["failed"] = failed;
  }
  const char* lines_key = ctx.ru ? "lines_ru" : "lines_en";
  if (!d.contains("has_tills") && ev.contains(lines_key) && ev[lines_key].is_array()) {
    std::string lines;
    for (const auto& l : ev[lines_key])
      if (l.is_string()) Append(&lines, lines.empty() ? "" : "\n", l.get<std::string>());
    d["lines"] = lines;
  }
  return d;
}

json Actions(const Ctx& ctx, const json& t) {
  const std::string state = Str(t, "state");
  const bool resolved = state == "resolved";
  const bool error = Int(t, "error_registered_at_ms") != 0;
  const json& wa = t["sla"]["workaround"];
  const bool workaround_met = wa.is_object() && Int(wa, "met_at_ms") != 0;
  json out = json::array();
  auto add = [&](const char* action, bool required) {
    out.push_back({{"action", action},
                   {"id", Int(t, "id")},
                   {"csrf", ctx.session.csrf},
                   {"required", required},
                   {"label", Text(ctx.ru, Cat("act_", action))}});
  };
  if (state == "open") add("ack", false);
  add("notes", true);
  if (!resolved && !error) add("error", true);
  if (error && !workaround_met) add("workaround", true);
  if (!resolved) add("resolve", false);
  return out;
}

}  // namespace

json BundleRowData(const Ctx& ctx, const json& bundle) {
  const std::string state = Str(bundle, "state");
  const double progress = bundle.contains("progress") && bundle["progress"].is_number()
                              ? bundle["progress"].get<double>()
                              : 0.0;
  return {{"id", Str(bundle, "id")},
          {"state", state},
          {"state_label", BundleStateLabel(ctx.ru, state)},
          {"error", Str(bundle, "error")},
          {"origin", Str(bundle, "origin")},
          {"requested_by", Str(bundle, "requested_by")},
          {"reason", Str(bundle, "reason")},
          {"created", When(Int(bundle, "created_at_ms"))},
          {"percent", std::to_string(state == "complete" ? 100 : static_cast<int>(progress * 100))},
          {"size", Bytes(Int(bundle, "size"))},
          {"sha256", Str(bundle, "sha256")},
          {"complete", state == "complete"}};
}

HttpResponse TicketPage(const Backend& b, const Ctx& ctx, int64_t id, const std::string& notice,
                        const std::string& error, int status) {
  ApiResult r = b.Get(ctx, Cat("/api/v1/tickets/", id));
  if (!r.ok()) return ApiErrorPage(ctx, r);
  const json& t = r.body["ticket"];
  json d = EvidenceData(ctx, t["evidence"]);
  d.update({{"t", Texts(ctx.ru)},
            {"id", id},
            {"title", Str(t, ctx.ru ? "title_ru" : "title_en")},
            {"summary", Str(t, ctx.ru ? "summary_ru" : "summary_en")},
            {"store_id", Str(t, "store_id")},
            {"store_url", Cat("/console/stores/", UrlEncode(Str(t, "store_id")))},
            {"priority", Str(t, "priority")},
            {"priority_label", PriorityLabel(ctx.ru, Str(t, "priority"))},
            {"state", Str(t, "state")},
            {"state_label", StateLabel(ctx.ru, Str(t, "state"))},
            {"condition_active", t.value("condition_active", true)},
            {"condition", Str(t, "condition")},
            {"partner", Str(t, "partner")},
            {"tariff", Str(t, "tariff")},
            {"detected", When(Int(t, "detected_at_ms"))},
            {"registered", When(Int(t, "registered_at_ms"))},
            {"acknowledged", When(Int(t, "acknowledged_at_ms"))},
            {"acknowledged_by", Str(t, "acknowledged_by")},
            {"resolved", When(Int(t, "resolved_at_ms"))},
            {"resolved_by", Str(t, "resolved_by")},
            {"resolution", Str(t, "resolution")},
            {"csrf", ctx.session.csrf},
            {"notice", notice},
            {"error", error},
            {"clocks", ClockRows(b, ctx, t)},
            {"actions", Actions(ctx, t)}});
  json bundles = json::array();
  if (r.body.contains("bundles"))
    for (const auto& bundle : r.body["bundles"]) bundles.push_back(BundleRowData(ctx, bundle));
  d["bundles"] = bundles;
  json timeline = json::array();
  for (const auto& e : r.body["timeline"])
    timeline.push_back({{"at", When(Int(e, "at_ms"))},
                        {"actor", Str(e, "actor")},
                        {"type", Str(e, "type")},
                        {"type_label", Str(e, "type")},
                        {"text", Str(e, "text")}});
  d["timeline"] = timeline;
  return Page(ctx, Cat("#", id, " ", Str(t, ctx.ru ? "title_ru" : "title_en")), "queue",
              RenderTemplate("ticket", d), status);
}

HttpResponse TicketAction(const Backend& b, const Ctx& ctx, int64_t id, const std::string& action,
                          const Form& form) {
  if (action != "ack" && action != "notes" && action != "error" && action != "workaround" &&
      action != "resolve")
    return ErrorPage(ctx, 404, Text(ctx.ru, "not_found"));
  json body = json::object();
  const std::string text(Trim(FormValue(form, "text")));
  if (!text.empty()) body["text"] = text;
  ApiResult r = b.Post(ctx, Cat("/api/v1/tickets/", id, "/", action), body);
  if (r.status == 404 || r.status == 503) return ApiErrorPage(ctx, r);
  if (!r.ok()) return TicketPage(b, ctx, id, "", r.error, r.status);
  return Redirect(Cat("/console/tickets/", id, "?done=", action));
}

HttpResponse RequestBundle(const Backend& b, const Ctx& ctx, int64_t id, const Form& form) {
  ApiResult t = b.Get(ctx, Cat("/api/v1/tickets/", id));
  if (!t.ok()) return ApiErrorPage(ctx, t);
  const std::string store = Str(t.body["ticket"], "store_id");
  json body = {{"ticket_id", id}};
  if (std::string w = FormValue(form, "window"); !w.empty()) body["window"] = w;
  if (std::string reason(Trim(FormValue(form, "reason"))); !reason.empty()) body["reason"] = reason;
  ApiResult r = b.Post(ctx, Cat("/api/v1/stores/", UrlEncode(store), "/bundles"), body);
  if (r.status == 404 || r.status == 503) return ApiErrorPage(ctx, r);
  if (!r.ok()) return TicketPage(b, ctx, id, "", r.error, r.status);
  return Redirect(Cat("/console/tickets/", id, "?done=bundle"));
}

}  // namespace setdiag::collector::console
