#include "agent/bundle/bundle.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <set>
#include <system_error>
#include <thread>

#include "agent/bundle/archive.h"
#include "agent/bundle/collect_agent.h"
#include "agent/bundle/collect_files.h"
#include "agent/bundle/collect_host.h"
#include "agent/bundle/collect_set.h"
#include "common/files.h"
#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"
#include "common/version.h"

namespace setdiag::agent::bundle {
namespace {

using SteadyClock = std::chrono::steady_clock;

struct StepRun {
  BundleStep step;
  int64_t timeout_ms = 0;
  std::shared_ptr<internal::StepShared> shared;
  SteadyClock::time_point started;
  // Filled when the builder stops waiting.
  std::string status;  // ok, failed, timed_out, skipped
  std::string error;
  int64_t duration_ms = 0;
  std::vector<CollectedFile> files;
  std::vector<SkippedItem> skipped;
  std::vector<std::string> notes;
};

int64_t MsBetween(SteadyClock::time_point a, SteadyClock::time_point b) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count();
}

bool ValidStepName(std::string_view name) {
  if (name.empty() || name.size() > 64) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
  }
  return true;
}

// Starts the step on its own thread. The thread owns the step's function,
// its context and the shared state, so nothing it touches dies with the
// builder.
void Launch(StepRun* run, const std::string& scratch, int index, int64_t now_ms,
            int64_t window_ms) {
  run->shared = std::make_shared<internal::StepShared>();
  run->started = SteadyClock::now();
  std::string dir = Cat(scratch, "/", index, "-", run->step.name);
  if (::mkdir(dir.c_str(), 0700) != 0) {
    run->status = "failed";
    run->error = Cat("cannot create its scratch directory ", dir, ": ", std::strerror(errno));
    return;
  }
  auto ctx = std::make_shared<StepContext>(run->step.name, dir, now_ms, window_ms, run->shared);
  try {
    std::thread([shared = run->shared, ctx, fn = run->step.run]() {
      absl::Status st;
      try {
        st = fn ? fn(*ctx) : absl::InternalError("step without a body");
      } catch (const std::exception& e) {
        st = absl::InternalError(Cat("step failed with an exception: ", e.what()));
      } catch (...) {
        st = absl::InternalError("step failed with an unknown exception");
      }
      {
        MutexLock lock(&shared->mu);
        shared->done = true;
        shared->status = st;
        shared->finished = SteadyClock::now();
      }
      shared->cv.SignalAll();
    }).detach();
  } catch (const std::system_error& e) {
    run->status = "failed";
    run->error = Cat("cannot start a thread: ", e.what());
  }
}

void Wait(StepRun* run) {
  if (!run->status.empty()) return;  // never started
  auto& sh = *run->shared;
  MutexLock lock(&sh.mu);
  const auto deadline = run->started + std::chrono::milliseconds(run->timeout_ms);
  while (!sh.done) {
    if (!sh.cv.WaitUntil(&sh.mu, deadline)) break;
  }
  const bool done = sh.done;
  if (!done) {
    sh.abandoned = true;
    sh.cancelled.store(true);
    run->status = "timed_out";
    run->duration_ms = MsBetween(run->started, SteadyClock::now());
    run->error = Cat("did not finish within ", run->timeout_ms, " ms");
    if (!sh.files.empty())
      Append(&run->error, "; the ", sh.files.size(), " file(s) finished before that are included");
  } else {
    sh.abandoned = true;  // nothing more is taken from it either way
    run->duration_ms = MsBetween(run->started, sh.finished);
    run->status = sh.status.ok() ? "ok" : "failed";
    if (!sh.status.ok()) run->error = RedactText(std::string(sh.status.message()), nullptr);
  }
  run->files = std::move(sh.files);
  run->skipped = std::move(sh.skipped);
  run->notes = std::move(sh.notes);
}

nlohmann::json BundleConfigJson(const BundleConfig& b) {
  return {{"window_ms", b.window_ms},
          {"log_globs", b.log_globs},
          {"log_file_cap_bytes", b.log_file_cap_bytes},
          {"log_total_cap_bytes", b.log_total_cap_bytes},
          {"config_files", b.config_files},
          {"step_timeout_ms", b.step_timeout_ms},
          {"logs_timeout_ms", b.logs_timeout_ms}};
}

nlohmann::json SetDbJson(const SetDbConfig& d) {
  nlohmann::json j = {
      {"host", d.host},
      {"port", d.port},
      {"user", d.user},
      {"password", d.password.empty() ? "" : std::string(kRedacted)},
      {"database_set", d.database_set},
      {"database_operday", d.database_operday},
      {"connect_timeout_ms", d.connect_timeout_ms},
      {"query_timeout_ms", d.query_timeout_ms},
      {"roster_query", d.roster_query.empty() ? "default" : d.roster_query},
      {"activity_query", d.activity_query.empty() ? "default" : d.activity_query},
      {"packages_query", d.packages_query.empty() ? "default" : d.packages_query},
      {"transport_query", d.transport_query.empty() ? "default" : d.transport_query}};
  j["shop_number"] = d.shop_number ? nlohmann::json(*d.shop_number) : nlohmann::json(nullptr);
  return j;
}

std::optional<SetDbConfig> SetDbOf(const AgentConfig& c) {
  if (c.loading.set_db) return c.loading.set_db;
  return c.tills.set_db;
}

}  // namespace

BundleOptions BundleOptions::FromConfig(const AgentConfig& config) {
  BundleOptions o;
  o.config = config.bundle;
  o.agent_config_path = config.config_path;
  return o;
}

nlohmann::json EffectiveConfigJson(const AgentConfig& c) {
  nlohmann::json roster = nlohmann::json::array();
  for (const auto& t : c.tills.roster) {
    roster.push_back({{"number", t.number}, {"address", t.address}, {"mothballed", t.mothballed}});
  }
  const auto& sc = c.tills.server;
  const auto& l = c.loading;
  auto set_db = SetDbOf(c);
  return {
      {"agent",
       {{"store_id", c.store_id},
        {"agent_id", c.agent_id},
        {"state_dir", c.state_dir},
        {"log_level", c.log_level},
        {"status_interval_ms", c.status_interval_ms}}},
      {"collector",
       {{"address", c.collector_address},
        {"token", c.token.empty() ? "" : std::string(kRedacted)},
        {"ca_file", c.ca_file},
        {"server_name", c.server_name},
        {"allow_insecure", c.allow_insecure}}},
      {"outbox",
       {{"max_bytes", c.outbox.max_bytes},
        {"max_age_ms", c.outbox.max_age_ms},
        {"max_event_bytes", c.outbox.max_event_bytes}}},
      {"backoff",
       {{"initial_ms", c.backoff.initial_ms},
        {"max_ms", c.backoff.max_ms},
        {"overloaded_min_ms", c.backoff.overloaded_min_ms}}},
      {"tills",
       {{"enabled", c.tills_enabled},
        {"poll_interval_ms", c.tills.poll_interval_ms},
        {"heartbeat_timeout_ms", c.tills.policy.heartbeat_timeout_ms},
        {"confirm_window_ms", c.tills.policy.confirm_ms},
        {"clear_window_ms", c.tills.policy.clear_ms},
        {"single_till_threshold_ms", c.tills.policy.single_till_ms},
        {"unreachable_confirm_ms", c.tills.policy.unreachable_confirm_ms},
        {"probe_port", c.tills.probe_port},
        {"probe_timeout_ms", c.tills.probe_timeout_ms},
        {"probe_every_ms", c.tills.probe_every_ms},
        {"roster", roster}}},
      {"set_db", set_db ? SetDbJson(*set_db) : nlohmann::json({{"enabled", false}})},
      {"server",
       {{"check", sc.enabled},
        {"host", sc.host},
        {"port_soap", sc.port_soap},
        {"port_transport", sc.port_transport},
        {"port_db", sc.port_db},
        {"deployed_marker", sc.deployed_marker},
        {"failed_marker", sc.failed_marker}}},
      {"loading",
       {{"enabled", c.loading_enabled},
        {"poll_interval_ms", l.poll_interval_ms},
        {"stuck_threshold_ms", l.policy.stuck_ms},
        {"inbox_threshold_ms", l.policy.inbox_age_ms},
        {"transport", l.watch_transport},
        {"transport_threshold_ms", l.policy.transport_lag_ms},
        {"erp_every_ms", l.policy.erp_every_ms},
        {"erp_window_minutes", {l.erp_window_start_min, l.erp_window_end_min}},
        {"server_confirm_ms", l.policy.server_confirm_ms},
        {"service_confirm_ms", l.policy.service_confirm_ms},
        {"clear_window_ms", l.policy.clear_ms},
        {"inboxes", l.inboxes},
        {"inbox_pattern", l.inbox_pattern},
        {"import_services", l.service_urls},
        {"service_every_ms", l.service_every_ms},
        {"disks", l.disks},
        {"disk_min_free_fraction", l.policy.disk_min_free_fraction},
        {"disk_min_free_bytes", l.policy.disk_min_free_bytes}}},
      {"push", {{"udp_listen", c.push_udp_listen}, {"http_listen", c.push_http_listen}}},
      {"calendar", {{"time_zone", c.calendar ? c.calendar->time_zone_name() : "UTC"}}},
      {"bundle", BundleConfigJson(c.bundle)},
  };
}

std::vector<BundleStep> DefaultSteps(const AgentConfig& c, const BundleOptions& o) {
  std::vector<BundleStep> steps;
  const BundleConfig& b = o.config;
  if (o.include_config) {
    steps.push_back(MakeConfigStep(o.agent_config_path, EffectiveConfigJson(c), b.config_files,
                                   o.config_error));
  }
  if (o.include_logs) {
    steps.push_back(MakeLogsStep(b.log_globs, static_cast<uint64_t>(b.log_file_cap_bytes),
                                 static_cast<uint64_t>(b.log_total_cap_bytes), b.logs_timeout_ms));
  }
  if (o.include_history) steps.push_back(MakeHistoryStep(c.HistoryPath()));
  if (o.include_set) {
    if (auto db = SetDbOf(c)) {
      steps.push_back(MakeSetDbStep(*db));
    } else {
      BundleStep skipped = MakeStep("set_db", 0, nullptr);
      skipped.skip_reason = "SET's database is not configured (set_db.enabled = false)";
      steps.push_back(std::move(skipped));
    }
    steps.push_back(MakeSetServerStep(c.tills.server, c.loading.inboxes, c.loading.inbox_pattern));
  }
  if (o.include_host) {
    steps.push_back(MakeHostStep());
    steps.push_back(MakeDisksStep());
    steps.push_back(MakeClockStep());
  }
  if (o.include_agent) {
    steps.push_back(MakeAgentStep({c.store_id, c.agent_id, c.state_dir, c.OutboxPath(),
                                   c.StatePath(), c.HistoryPath(), c.outbox}));
  }
  return steps;
}

namespace {

// Scratch files live beside the output (same file system, not /tmp, which
// may be memory). Leave a third of the free space for the rest: the logs'
// total cap is lowered to that, with a note saying so.
void CapLogsToFreeSpace(const std::string& out_dir, BundleOptions* opts,
                        std::vector<std::string>* notes) {
  struct statvfs vfs {};
  if (::statvfs(out_dir.c_str(), &vfs) != 0) return;
  auto avail = static_cast<int64_t>(static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize);
  int64_t budget = avail / 3;
  if (opts->include_logs && budget < opts->config.log_total_cap_bytes) {
    opts->config.log_total_cap_bytes = std::max<int64_t>(budget, 0);
    notes->push_back(Cat("only ", avail / (1024 * 1024), " MiB free in ", out_dir,
                         ": logs capped at ", budget / (1024 * 1024), " MiB in total"));
  }
}

// The built-in steps, then the caller's; InvalidArgument for a bad or a
// duplicate step name.
absl::StatusOr<std::vector<BundleStep>> AllSteps(const AgentConfig& config,
                                                 const BundleOptions& opts) {
  std::vector<BundleStep> steps = DefaultSteps(config, opts);
  for (const auto& s : opts.extra_steps) steps.push_back(s);
  std::set<std::string> names;
  for (const auto& s : steps) {
    if (!ValidStepName(s.name))
      return absl::InvalidArgumentError(Cat("bad bundle step name '", s.name, "'"));
    if (!names.insert(s.name).second)
      return absl::InvalidArgumentError(Cat("duplicate bundle step '", s.name, "'"));
  }
  return steps;
}

// Removes the scratch directory (<out>.tmp-XXXXXX/) and all in it when the
// build ends, whichever way.
struct ScratchRemover {
  std::string dir;
  ~ScratchRemover() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

absl::StatusOr<std::string> MakeScratchDir(const std::string& out_path) {
  std::string scratch = out_path + ".tmp-XXXXXX";
  if (::mkdtemp(scratch.data()) == nullptr) {
    return absl::UnavailableError(
        Cat("cannot create a scratch directory beside ", out_path, ": ", std::strerror(errno)));
  }
  return scratch;
}

// Starts every step that is not skipped (all at once), then waits for each
// in turn up to its timeout.
std::vector<StepRun> RunSteps(const std::vector<BundleStep>& steps, const BundleOptions& opts,
                              const std::string& scratch, int64_t created_ms) {
  std::vector<StepRun> runs(steps.size());
  for (size_t i = 0; i < steps.size(); ++i) {
    StepRun& r = runs[i];
    r.step = steps[i];
    r.timeout_ms = r.step.timeout_ms > 0 ? r.step.timeout_ms : opts.config.step_timeout_ms;
    if (!r.step.skip_reason.empty()) {
      r.status = "skipped";
      r.error = r.step.skip_reason;
      continue;
    }
    Launch(&r, scratch, static_cast<int>(i), created_ms, opts.config.window_ms);
  }
  for (auto& r : runs) Wait(&r);
  return runs;
}

// What the manifest lists, gathered while the steps' files are archived.
struct ArchiveListing {
  nlohmann::json files = nlohmann::json::array();
  nlohmann::json skipped = nlohmann::json::array();  // "not_collected"
  nlohmann::json steps = nlohmann::json::array();
  RedactionCounts by_rule;
  nlohmann::json redacted_files = nlohmann::json::array();
  std::set<std::string> paths;  // inside the root, each once
};

// Where the archive goes: <root>/<path> with each file's modification time.
struct ArchiveTarget {
  TarGzWriter& writer;
  const std::string& root;
  int64_t mtime_s;
};

// Adds one collected file to the archive and the listing. False (and
// nothing listed) when the file is left out; an error when the archive
// itself cannot be written.
absl::StatusOr<bool> ArchiveFile(const ArchiveTarget& to, const StepRun& r, const CollectedFile& f,
                                 ArchiveListing* listing) {
  std::string path = f.path;
  for (int n = 2; !listing->paths.insert(path).second; ++n) path = Cat(f.path, "~", n);
  std::string name = Cat(to.root, "/", path);
  uint64_t size = f.content.size();
  absl::StatusOr<std::string> sha = f.local_path.empty()
                                        ? to.writer.AddBytes(name, f.content, to.mtime_s)
                                        : to.writer.AddFile(name, f.local_path, to.mtime_s, &size);
  if (!sha.ok()) {
    // A scratch file that cannot be read, one that changed, or a name the
    // writer refuses: that file is left out, the bundle goes on.
    if (sha.status().code() == absl::StatusCode::kFailedPrecondition ||
        sha.status().code() == absl::StatusCode::kDataLoss ||
        sha.status().code() == absl::StatusCode::kInvalidArgument) {
      listing->skipped.push_back({{"step", r.step.name},
                                  {"source", f.source},
                                  {"reason", Cat("not archived: ", sha.status().message())}});
      return false;
    }
    return sha.status();
  }
  nlohmann::json entry = {{"path", path},
                          {"size", size},
                          {"sha256", *sha},
                          {"step", r.step.name},
                          {"collected_in_ms", f.collected_in_ms},
                          {"source", f.source},
                          {"method", f.method}};
  if (!f.details.empty()) entry["details"] = f.details;
  listing->files.push_back(std::move(entry));
  if (!f.redactions.empty()) {
    AddCounts(&listing->by_rule, f.redactions);
    listing->redacted_files.push_back(
        {{"path", path}, {"by_rule", f.redactions}, {"total", TotalCount(f.redactions)}});
  }
  return true;
}

// The manifest's entry for one step that put `taken` files in the archive.
nlohmann::json StepJson(const StepRun& r, int64_t taken) {
  nlohmann::json step = {
      {"name", r.step.name},
      {"status", r.status},
      {"duration_ms", r.duration_ms},
      {"timeout_ms", r.timeout_ms},
      {"files", taken},
      {"error", r.error.empty() ? nlohmann::json(nullptr) : nlohmann::json(r.error)}};
  if (!r.notes.empty()) step["notes"] = r.notes;
  return step;
}

void CountStep(const StepRun& r, int64_t taken, BundleResult* result) {
  if (r.status == "ok")
    ++result->steps_ok;
  else if (r.status == "failed")
    ++result->steps_failed;
  else if (r.status == "timed_out")
    ++result->steps_timed_out;
  else
    ++result->steps_skipped;
  result->files += taken;
}

// Archives one step's files and lists the step, what it could not collect
// and its counts; an error when the archive cannot be written.
absl::Status ArchiveStep(const ArchiveTarget& to, const StepRun& r, ArchiveListing* listing,
                         BundleResult* result) {
  int64_t taken = 0;
  for (const auto& f : r.files) {
    ASSIGN_OR_RETURN(bool archived, ArchiveFile(to, r, f, listing));
    if (archived) ++taken;
  }
  for (const auto& s : r.skipped)
    listing->skipped.push_back({{"step", r.step.name}, {"source", s.source}, {"reason", s.reason}});
  listing->steps.push_back(StepJson(r, taken));
  CountStep(r, taken, result);
  return absl::OkStatus();
}

nlohmann::json ManifestJson(const AgentConfig& config, const BundleOptions& opts,
                            int64_t created_ms, const std::string& root,
                            const std::vector<std::string>& notes, const BundleResult& result,
                            const ArchiveListing& listing) {
  return {
      {"format", "setdiag-bundle"},
      {"format_version", kBundleFormatVersion},
      {"root", root},
      {"store_id", config.store_id},
      {"agent_id", KnownAgentId(config.agent_id, config.state_dir)},
      {"agent_version", kVersion},
      {"created_at_ms", created_ms},
      {"created_at_utc", IsoUtc(created_ms)},
      {"window",
       {{"from_ms", created_ms - opts.config.window_ms},
        {"to_ms", created_ms},
        {"ms", opts.config.window_ms}}},
      {"options", BundleConfigJson(opts.config)},
      {"config_error", opts.config_error.empty()
                           ? nlohmann::json(nullptr)
                           : nlohmann::json(RedactText(opts.config_error, nullptr))},
      {"summary",
       {{"steps_ok", result.steps_ok},
        {"steps_failed", result.steps_failed},
        {"steps_timed_out", result.steps_timed_out},
        {"steps_skipped", result.steps_skipped},
        {"files", result.files}}},
      {"steps", listing.steps},
      {"files", listing.files},
      {"not_collected", listing.skipped},
      {"redactions",
       {{"total", result.redactions},
        {"by_rule", listing.by_rule},
        {"files", listing.redacted_files}}},
      {"notes", notes},
  };
}

// Writes every step's files, then manifest.json last, and closes the
// archive; fills in the result's counts, size and SHA-256.
absl::Status WriteArchive(const AgentConfig& config, const BundleOptions& opts, int64_t created_ms,
                          const std::vector<std::string>& notes, const std::vector<StepRun>& runs,
                          const ArchiveTarget& to, BundleResult* result) {
  ArchiveListing listing;
  for (const auto& r : runs) RETURN_IF_ERROR(ArchiveStep(to, r, &listing, result));
  result->redactions = TotalCount(listing.by_rule);

  result->manifest = ManifestJson(config, opts, created_ms, to.root, notes, *result, listing);
  std::string manifest_text =
      result->manifest.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  RETURN_IF_ERROR(to.writer.AddBytes(Cat(to.root, "/manifest.json"), manifest_text, to.mtime_s));
  RETURN_IF_ERROR(to.writer.Close());
  result->size = to.writer.compressed_bytes();
  result->sha256 = to.writer.compressed_sha256();
  return absl::OkStatus();
}

// Moves the finished <out>.part to out_path (removing it when that fails)
// and syncs the directory.
absl::Status Publish(const std::string& part, const std::string& out_path,
                     const std::string& out_dir) {
  if (::rename(part.c_str(), out_path.c_str()) != 0) {
    absl::Status st = ErrnoStatus(errno, Cat("cannot rename ", part, " to"), out_path);
    ::unlink(part.c_str());
    return st;
  }
  // The bundle is written; where the directory cannot be synced the build
  // still succeeds (it is evidence, and can be built again), and says so.
  if (absl::Status st = SyncDirectory(out_dir); !st.ok()) log::Warn("bundle", st.ToString());
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<BundleResult> BuildBundle(const AgentConfig& config, const BundleOptions& options,
                                         const std::string& out_path, Clock& clock) {
  const int64_t created_ms = clock.NowMs();
  if (out_path.empty()) return absl::InvalidArgumentError("no output path for the bundle");
  BundleOptions opts = options;
  std::vector<std::string> notes;
  if (opts.config.window_ms <= 0)
    return absl::InvalidArgumentError("the bundle window must be positive");

  std::string out_dir = std::filesystem::path(out_path).parent_path().string();
  if (out_dir.empty()) out_dir = ".";
  CapLogsToFreeSpace(out_dir, &opts, &notes);
  ASSIGN_OR_RETURN(const std::vector<BundleStep> steps, AllSteps(config, opts));

  ASSIGN_OR_RETURN(const std::string scratch, MakeScratchDir(out_path));
  const ScratchRemover remover{scratch};
  const std::vector<StepRun> runs = RunSteps(steps, opts, scratch, created_ms);

  const std::string store = config.store_id.empty() ? "unknown" : config.store_id;
  const std::string root = Cat("setdiag-bundle-", store, "-", IsoUtc(created_ms, true));
  const std::string part = out_path + ".part";
  ASSIGN_OR_RETURN(auto writer, TarGzWriter::Create(part));
  BundleResult result;
  const absl::Status written =
      WriteArchive(config, opts, created_ms, notes, runs,
                   ArchiveTarget{*writer, root, created_ms / 1000}, &result);
  writer.reset();
  if (!written.ok()) {
    ::unlink(part.c_str());
    return written;
  }
  RETURN_IF_ERROR(Publish(part, out_path, out_dir));
  result.path = out_path;
  return result;
}

}  // namespace setdiag::agent::bundle
