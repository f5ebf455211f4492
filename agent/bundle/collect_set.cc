#include "agent/bundle/collect_set.h"

#include <fnmatch.h>
#include <sys/stat.h>

#include <algorithm>
#include <charconv>
#include <filesystem>

#include "common/strings.h"

namespace setdiag::agent::bundle {
namespace {

namespace fs = std::filesystem;

constexpr size_t kMaxRows = 5000;
constexpr size_t kMaxListing = 500;

std::optional<int64_t> Int(const std::string& s) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

// A time column as Unix ms plus a readable UTC copy; null when empty.
void PutTime(nlohmann::json* j, const std::string& key, const std::string& value, int64_t now_ms) {
  auto ms = Int(value);
  if (!ms) {
    (*j)[key + "_ms"] = nullptr;
    return;
  }
  (*j)[key + "_ms"] = *ms;
  (*j)[key + "_utc"] = IsoUtc(*ms);
  (*j)[key + "_age_s"] = (now_ms - *ms) / 1000;
}

int64_t MtimeMs(const struct stat& st) {
  return int64_t{st.st_mtim.tv_sec} * 1000 + st.st_mtim.tv_nsec / 1'000'000;
}

nlohmann::json Marker(const std::string& path) {
  nlohmann::json j = {{"path", path}};
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    j["exists"] = false;
    j["error"] = std::strerror(errno);
    return j;
  }
  j["exists"] = true;
  j["size"] = static_cast<int64_t>(st.st_size);
  j["mtime_utc"] = IsoUtc(MtimeMs(st));
  return j;
}

bool IsConnectionError(const absl::Status& st) {
  return st.code() == absl::StatusCode::kUnavailable &&
         std::string_view(st.message().data(), st.message().size()).find("query failed") ==
             std::string_view::npos;
}

}  // namespace

BundleStep MakeSetDbStep(SetDbConfig db) {
  return MakeStep("set_db", 0, [db](StepContext& ctx) -> absl::Status {
    SetDbConfig c = db;
    c.connect_timeout_ms = std::clamp<int64_t>(c.connect_timeout_ms, 1000, 5000);
    c.query_timeout_ms = std::clamp<int64_t>(c.query_timeout_ms, 100, 10'000);
    std::string roster_q =
        c.roster_query.empty() ? DefaultRosterQuery(c.shop_number) : c.roster_query;
    std::string activity_q = c.activity_query.empty()
                                 ? DefaultActivityQuery(c.shop_number, c.time_zone)
                                 : c.activity_query;
    std::string packages_q =
        c.packages_query.empty() ? DefaultPackagesQuery(c.time_zone) : c.packages_query;
    std::string transport_q = c.transport_query.empty()
                                  ? DefaultTransportQuery(c.shop_number, c.time_zone)
                                  : c.transport_query;
    const std::string where = Cat(c.host, ":", c.port);
    SetDatabase set(c);
    std::vector<std::string> failures;
    const int64_t now = ctx.now_ms();

    auto roster = set.ReadRoster();
    if (ctx.cancelled()) return absl::CancelledError("stopped at the step timeout");
    auto activity = set.ReadActivity();
    if (ctx.cancelled()) return absl::CancelledError("stopped at the step timeout");
    nlohmann::json tills = {{"database", c.database_set},
                            {"activity_database", c.database_operday},
                            {"roster_query", roster_q},
                            {"activity_query", activity_q}};
    if (c.shop_number) tills["shop_number"] = *c.shop_number;
    if (!roster.ok()) failures.push_back(Cat("roster: ", roster.status().message()));
    if (!activity.ok()) failures.push_back(Cat("activity: ", activity.status().message()));
    tills["roster_error"] =
        roster.ok() ? nullptr : nlohmann::json(std::string(roster.status().message()));
    tills["activity_error"] =
        activity.ok() ? nullptr : nlohmann::json(std::string(activity.status().message()));
    nlohmann::json rows = nlohmann::json::array();
    if (roster.ok()) {
      for (const auto& r : *roster) {
        nlohmann::json t = {{"number", r.number}, {"status", r.status}, {"address", r.address}};
        if (activity.ok()) {
          auto a = activity->find(r.number);
          PutTime(&t, "last_activity", a == activity->end() ? "" : std::to_string(a->second), now);
        }
        rows.push_back(std::move(t));
      }
    } else if (activity.ok()) {
      for (const auto& [number, ms] : *activity) {
        nlohmann::json t = {{"number", number}};
        PutTime(&t, "last_activity", std::to_string(ms), now);
        rows.push_back(std::move(t));
      }
    }
    tills["tills"] = std::move(rows);
    if (roster.ok() || activity.ok())
      ctx.AddJson("set/tills.json", tills, Cat("postgresql://", where));

    auto table = [&](const char* name, const std::string& query, std::vector<const char*> columns,
                     const std::vector<const char*>& time_columns,
                     absl::StatusOr<std::vector<std::vector<std::string>>> result) {
      if (!result.ok()) {
        failures.push_back(Cat(name, ": ", result.status().message()));
        return;
      }
      nlohmann::json out = {
          {"database", c.database_set}, {"query", query}, {"rows_total", result->size()}};
      nlohmann::json list = nlohmann::json::array();
      for (size_t i = 0; i < result->size() && i < kMaxRows; ++i) {
        const auto& r = (*result)[i];
        nlohmann::json j = nlohmann::json::object();
        for (size_t k = 0; k < columns.size() && k < r.size(); ++k) {
          bool is_time = std::find(time_columns.begin(), time_columns.end(),
                                   std::string_view(columns[k])) != time_columns.end();
          if (is_time)
            PutTime(&j, columns[k], r[k], now);
          else if (auto v = Int(r[k]))
            j[columns[k]] = *v;
          else
            j[columns[k]] = r[k];
        }
        list.push_back(std::move(j));
      }
      out["rows"] = std::move(list);
      if (result->size() > kMaxRows) out["rows_left_out"] = result->size() - kMaxRows;
      ctx.AddJson(Cat("set/", name, ".json"), out,
                  Cat("postgresql://", where, "/", c.database_set));
    };
    if (!roster.ok() && IsConnectionError(roster.status())) {
      ctx.Skip(Cat("postgresql://", where, "/", c.database_set),
               "packages and transport not queried: the database did not answer for the roster");
    } else {
      table("packages", packages_q,
            {"ti", "arrived", "status_id", "status_name", "import_type", "message"}, {"arrived"},
            set.ReadPackages());
      if (ctx.cancelled()) return absl::CancelledError("stopped at the step timeout");
      table("transport", transport_q, {"till", "last_load", "not_loaded", "oldest_unloaded_file"},
            {"last_load", "oldest_unloaded_file"}, set.ReadTransport());
    }
    if (failures.empty()) return absl::OkStatus();
    std::string msg;
    for (const auto& f : failures) Append(&msg, msg.empty() ? "" : "; ", f);
    return absl::UnavailableError(msg);
  });
}

BundleStep MakeSetServerStep(ServerCheckConfig server, std::vector<std::string> inboxes,
                             std::string inbox_pattern) {
  return MakeStep(
      "set_server", 0, [server, inboxes, inbox_pattern](StepContext& ctx) -> absl::Status {
        const int64_t now = ctx.now_ms();
        nlohmann::json out = {{"check_enabled", server.enabled}};
        out["deployed_marker"] = Marker(server.deployed_marker);
        out["failed_marker"] = Marker(server.failed_marker);
        // The deployments folder: Set10.ear and its markers (.deployed,
        // .failed, .isdeploying, .undeployed...).
        std::string dir = fs::path(server.deployed_marker).parent_path().string();
        nlohmann::json listing = nlohmann::json::array();
        std::error_code ec;
        fs::directory_iterator it(dir, ec);
        if (ec) {
          out["deployments_error"] = Cat(dir, ": ", ec.message());
        } else {
          for (; it != fs::directory_iterator() && listing.size() < kMaxListing; it.increment(ec)) {
            if (ec) break;
            struct stat st {};
            std::string p = it->path().string();
            if (::lstat(p.c_str(), &st) != 0) continue;
            listing.push_back({{"name", it->path().filename().string()},
                               {"type", S_ISDIR(st.st_mode)   ? "dir"
                                        : S_ISREG(st.st_mode) ? "file"
                                                              : "other"},
                               {"size", static_cast<int64_t>(st.st_size)},
                               {"mtime_utc", IsoUtc(MtimeMs(st))}});
          }
          std::sort(listing.begin(), listing.end(),
                    [](const nlohmann::json& a, const nlohmann::json& b) {
                      return a["name"] < b["name"];
                    });
        }
        out["deployments_dir"] = dir;
        out["deployments"] = std::move(listing);
        if (ctx.cancelled()) return absl::CancelledError("stopped at the step timeout");
        nlohmann::json ports = nlohmann::json::object();
        const std::vector<std::pair<const char*, uint16_t>> wanted = {
            {"soap", server.port_soap},
            {"transport", server.port_transport},
            {"db", server.port_db}};
        for (const auto& [name, port] : wanted) {
          ProbeResult r = ProbeTcp({server.host}, port, 1000)[0];
          ports[name] = {{"host", server.host},
                         {"port", port},
                         {"result", r == ProbeResult::kAnswers    ? "open"
                                    : r == ProbeResult::kRefused  ? "refused"
                                    : r == ProbeResult::kNoAnswer ? "no_answer"
                                                                  : "not_probed"}};
        }
        out["ports"] = std::move(ports);
        ctx.AddJson("set/server.json", out, "deployment markers, TCP connects");

        nlohmann::json boxes = nlohmann::json::array();
        for (const auto& path : inboxes) {
          if (ctx.cancelled()) return absl::CancelledError("stopped at the step timeout");
          nlohmann::json box = {{"path", path}, {"pattern", inbox_pattern}};
          std::vector<nlohmann::json> entries;
          int64_t matching = 0, total = 0;
          fs::directory_iterator d(path, ec);
          if (ec) {
            box["readable"] = false;
            box["error"] = ec.message();
            boxes.push_back(std::move(box));
            continue;
          }
          for (; d != fs::directory_iterator(); d.increment(ec)) {
            if (ec) {
              box["error"] = ec.message();
              break;
            }
            struct stat st {};
            std::string p = d->path().string();
            if (::stat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
            std::string name = d->path().filename().string();
            bool match = fnmatch(inbox_pattern.c_str(), name.c_str(), 0) == 0;
            ++total;
            matching += match ? 1 : 0;
            int64_t mtime = MtimeMs(st);
            entries.push_back({{"name", name},
                               {"size", static_cast<int64_t>(st.st_size)},
                               {"mtime_ms", mtime},
                               {"mtime_utc", IsoUtc(mtime)},
                               {"age_s", (now - mtime) / 1000},
                               {"matches_pattern", match}});
          }
          std::sort(entries.begin(), entries.end(),
                    [](const nlohmann::json& a, const nlohmann::json& b) {
                      return a["mtime_ms"] < b["mtime_ms"];
                    });
          box["readable"] = true;
          box["files_total"] = total;
          box["files_matching"] = matching;
          if (entries.size() > kMaxListing) {
            box["entries_left_out"] = entries.size() - kMaxListing;
            entries.resize(kMaxListing);
          }
          box["entries_oldest_first"] = std::move(entries);
          boxes.push_back(std::move(box));
        }
        if (!inboxes.empty())
          ctx.AddJson("set/inboxes.json", boxes, "loading.inboxes");
        else
          ctx.Note("no inbox folders configured (loading.inboxes)");
        return absl::OkStatus();
      });
}

}  // namespace setdiag::agent::bundle
