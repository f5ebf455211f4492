#include "cli/bundles.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "cli/command.h"
#include "cli/output.h"
#include "common/config.h"
#include "common/digest.h"
#include "common/strings.h"

namespace setdiag::cli {
namespace {

using json = nlohmann::json;

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Whether the bundle's store has an agent connected now (GET
// /api/v1/stores/{id}); nullopt when that cannot be told.
std::optional<bool> StoreOnline(ApiClient& client, const json& b) {
  std::string store = Str(b, "store_id");
  if (store.empty()) return std::nullopt;
  auto res = client.Get(Cat("/api/v1/stores/", UrlEncode(store)));
  if (!res.ok() || res->status != 200) return std::nullopt;
  auto body = json::parse(res->body, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object()) return std::nullopt;
  const json& s = body.contains("store") ? body["store"] : body;
  if (!s.is_object() || !s.contains("online") || !s["online"].is_boolean()) return std::nullopt;
  return s["online"].get<bool>();
}

std::string Describe(const json& b, std::optional<bool> store_online = std::nullopt) {
  std::string state = Str(b, "state");
  uint64_t size = static_cast<uint64_t>(Int(b, "size")),
           got = static_cast<uint64_t>(Int(b, "bytes_received"));
  if (state == "requested") {
    // A requested bundle waits for the agent; only say "connect" when the
    // store is really not connected.
    if (store_online == std::optional<bool>(true)) {
      return "the store is connected; waiting for its agent to take the request";
    }
    if (store_online == std::optional<bool>(false)) return "waiting for the store to connect";
    return "waiting for the store's agent";
  }
  if (state == "building") return "the store is building it";
  if (state == "transferring" && size > 0) {
    return Cat("transferring ", HumanBytes(got), " of ", HumanBytes(size), " (", got * 100 / size,
               "%)");
  }
  if (state == "failed") return Cat("failed: ", Str(b, "error"));
  return state;
}

// Downloads a complete bundle to `output` and checks its SHA-256.
int Download(ApiClient& client, const json& b, std::string output, bool json_out) {
  std::string id = Str(b, "id");
  if (output.empty()) output = Cat("bundle-", Str(b, "store_id"), "-", id, ".tar.gz");
  uint64_t bytes = 0;
  auto res = client.Download(Cat("/api/v1/bundles/", UrlEncode(id), "/content"), output, &bytes);
  if (!res.ok() || res->status != 200) {
    int rc = kExitError;
    Parse(res, &rc);  // explains the failure
    return rc;
  }
  auto sha = FileSha256(output);
  if (!sha.ok()) {
    std::cerr << "setdiag: " << sha.status().message() << "\n";
    return kExitError;
  }
  if (*sha != Str(b, "sha256")) {
    std::cerr << "setdiag: " << output << ": checksum " << *sha
              << " does not match the collector's " << Str(b, "sha256")
              << "; the download is damaged, try again\n";
    std::remove(output.c_str());
    return kExitError;
  }
  if (json_out) {
    std::cout
        << Dump(json{{"bundle", b}, {"file", output}, {"bytes", bytes}, {"sha256_verified", true}},
                2)
        << "\n";
  } else {
    std::cout << output << "\n";
    std::cerr << "bundle " << id << " saved to " << output << " (" << HumanBytes(bytes)
              << ", sha256 " << *sha << " verified)\n";
  }
  return kExitOk;
}

}  // namespace

absl::StatusOr<std::string> FileSha256(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::NotFoundError(Cat("cannot read ", path));
  Sha256 sha;
  std::string buf(1 << 20, '\0');
  while (true) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0) {
      ::close(fd);
      return absl::UnavailableError(Cat("cannot read ", path));
    }
    if (n == 0) break;
    sha.Update(std::string_view(buf.data(), static_cast<size_t>(n)));
  }
  ::close(fd);
  return sha.HexDigest();
}

absl::StatusOr<std::string> ReadManifestFromFile(const std::string& path) {
  archive* a = archive_read_new();
  archive_read_support_filter_gzip(a);
  archive_read_support_format_tar(a);
  if (archive_read_open_filename(a, path.c_str(), 64 * 1024) != ARCHIVE_OK) {
    std::string err = Cat("cannot open ", path, " as a .tar.gz: ", archive_error_string(a));
    archive_read_free(a);
    return absl::InvalidArgumentError(err);
  }
  archive_entry* entry = nullptr;
  while (true) {
    int r = archive_read_next_header(a, &entry);
    if (r == ARCHIVE_EOF) break;
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
      std::string err = Cat(path, ": ", archive_error_string(a));
      archive_read_free(a);
      return absl::InvalidArgumentError(err);
    }
    std::string_view name = archive_entry_pathname(entry);
    if (name == "manifest.json" || name.ends_with("/manifest.json")) {
      // Only the top-level manifest: <root>/manifest.json.
      if (std::count(name.begin(), name.end(), '/') <= 1) {
        std::string out;
        char buf[64 * 1024];
        la_ssize_t n;
        while ((n = archive_read_data(a, buf, sizeof buf)) > 0) {
          out.append(buf, static_cast<size_t>(n));
          if (out.size() > 64 * 1024 * 1024) break;
        }
        archive_read_free(a);
        if (n < 0) return absl::InvalidArgumentError(Cat(path, ": the manifest cannot be read"));
        return out;
      }
    }
    archive_read_data_skip(a);
  }
  archive_read_free(a);
  return absl::NotFoundError(Cat(path, " has no manifest.json: not a setdiag bundle?"));
}

int BundlePull(ApiClient& client, const PullArgs& args, bool json_out) {
  json request = json::object();
  if (args.ticket_id > 0) request["ticket_id"] = args.ticket_id;
  if (!args.window.empty()) request["window"] = args.window;
  if (args.no_logs) request["exclude_logs"] = true;
  if (!args.reason.empty()) request["reason"] = args.reason;
  int rc = kExitOk;
  auto created = Parse(
      client.Post(Cat("/api/v1/stores/", UrlEncode(args.store), "/bundles"), Dump(request)), &rc);
  if (!created) return rc;
  json b = (*created)["bundle"];
  const std::string id = Str(b, "id");
  if (!args.wait) {
    if (json_out)
      std::cout << Dump(*created, 2) << "\n";
    else
      std::cout << id << "\n";
    std::cerr << "bundle " << id << " requested from store " << args.store
              << "; follow it with 'setdiag bundle show " << id
              << "', fetch it with 'setdiag bundle get " << id << "'\n";
    return kExitOk;
  }
  std::cerr << "bundle " << id << " requested from store " << args.store << "\n";
  const bool tty = ::isatty(2) != 0;
  const int64_t started = SteadyMs();
  int64_t last_ms = started, transfer_started = 0;
  uint64_t last_bytes = 0, first_bytes = 0;
  std::string last_line;
  double rate = 0;
  while (true) {
    auto got = Parse(client.Get(Cat("/api/v1/bundles/", UrlEncode(id))), &rc);
    if (!got) return rc;
    b = (*got)["bundle"];
    const std::string state = Str(b, "state");
    const int64_t now = SteadyMs();
    const auto bytes = static_cast<uint64_t>(Int(b, "bytes_received"));
    if (state == "transferring") {
      if (transfer_started == 0) {
        transfer_started = now;
        first_bytes = bytes;
      } else if (now > last_ms && bytes >= last_bytes) {
        double inst =
            static_cast<double>(bytes - last_bytes) / (static_cast<double>(now - last_ms) / 1000.0);
        rate = rate == 0 ? inst : 0.5 * rate + 0.5 * inst;
      }
    }
    last_ms = now;
    last_bytes = bytes;
    std::optional<bool> online;
    if (state == "requested") online = StoreOnline(client, b);
    std::string line = Cat("bundle ", id, ": ", Describe(b, online));
    if (state == "transferring" && rate > 0)
      Append(&line, ", ", HumanBytes(static_cast<uint64_t>(rate)), "/s");
    if (tty) {
      std::cerr << "\r" << line << "\033[K" << std::flush;
    } else if (line.substr(0, line.find('(')) != last_line.substr(0, last_line.find('('))) {
      std::cerr << line << "\n";
    }
    last_line = line;
    if (state == "complete") {
      if (tty) std::cerr << "\n";
      if (transfer_started > 0 && now > transfer_started) {
        double secs = static_cast<double>(now - transfer_started) / 1000.0;
        std::cerr << "received " << HumanBytes(static_cast<uint64_t>(Int(b, "size"))) << " in "
                  << secs << " s ("
                  << HumanBytes(static_cast<uint64_t>(
                         static_cast<double>(Int(b, "size") - static_cast<int64_t>(first_bytes)) /
                         secs))
                  << "/s)\n";
      }
      return Download(client, b, args.output, json_out);
    }
    if (state == "failed" || state == "expired") {
      if (tty) std::cerr << "\n";
      std::cerr << "setdiag: bundle " << id << " " << state << (Str(b, "error").empty() ? "" : ": ")
                << Str(b, "error") << "\n";
      return kExitError;
    }
    if (now - started >= args.timeout_ms) {
      if (tty) std::cerr << "\n";
      std::cerr << "setdiag: bundle " << id << " is not complete after " << args.timeout_ms / 1000
                << " s (" << Describe(b)
                << "); the request stays open: fetch it later with 'setdiag bundle get " << id
                << "'\n";
      if (json_out) std::cout << Dump(*got, 2) << "\n";
      return kExitStillWaiting;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(args.poll_ms));
  }
}

int BundleList(ApiClient& client, const std::string& store, int64_t ticket_id, bool json_out) {
  std::string path = "/api/v1/bundles?limit=1000";
  if (!store.empty()) Append(&path, "&store=", UrlEncode(store));
  if (ticket_id > 0) Append(&path, "&ticket=", ticket_id);
  int rc = kExitOk;
  auto body = Parse(client.Get(path), &rc);
  if (!body) return rc;
  if (json_out) {
    std::cout << Dump(*body, 2) << "\n";
    return kExitOk;
  }
  std::printf("%-26s %-8s %-7s %-16s %-13s %-10s %-21s %s\n", "ID", "STORE", "TICKET", "ORIGIN",
              "STATE", "SIZE", "CREATED (UTC)", "BY");
  size_t n = 0;
  for (const auto& b : (*body)["bundles"]) {
    ++n;
    std::string state = Str(b, "state");
    if (state == "transferring" && Int(b, "size") > 0) {
      state = Cat(state, " ", Int(b, "bytes_received") * 100 / Int(b, "size"), "%");
    }
    std::printf(
        "%-26s %-8s %-7s %-16s %-13s %-10s %-21s %s\n", Str(b, "id").c_str(),
        Str(b, "store_id").c_str(),
        b["ticket_id"].is_number() ? Cat(Int(b, "ticket_id")).c_str() : "-",
        Str(b, "origin").c_str(), state.c_str(),
        Int(b, "size") > 0 ? HumanBytes(static_cast<uint64_t>(Int(b, "size"))).c_str() : "-",
        FormatUtc(Int(b, "created_at_ms")).c_str(), Str(b, "requested_by").c_str());
  }
  std::fprintf(stderr, "%zu bundle(s)\n", n);
  return kExitOk;
}

int BundleShow(ApiClient& client, const std::string& id, bool json_out) {
  int rc = kExitOk;
  auto body = Parse(client.Get(Cat("/api/v1/bundles/", UrlEncode(id))), &rc);
  if (!body) return rc;
  if (json_out) {
    std::cout << Dump(*body, 2) << "\n";
    return kExitOk;
  }
  const json& b = (*body)["bundle"];
  std::printf(
      "Bundle %s: %s\n", Str(b, "id").c_str(),
      Describe(b, Str(b, "state") == "requested" ? StoreOnline(client, b) : std::nullopt).c_str());
  std::printf("  store       %s\n", Str(b, "store_id").c_str());
  std::printf("  ticket      %s\n",
              b["ticket_id"].is_number() ? Cat(Int(b, "ticket_id")).c_str() : "-");
  std::printf("  origin      %s (%s)\n", Str(b, "origin").c_str(), Str(b, "requested_by").c_str());
  if (!Str(b, "reason").empty()) std::printf("  reason      %s\n", Str(b, "reason").c_str());
  std::printf("  requested   %s\n", FormatUtc(Int(b, "created_at_ms")).c_str());
  if (Int(b, "completed_at_ms") > 0)
    std::printf("  completed   %s\n", FormatUtc(Int(b, "completed_at_ms")).c_str());
  if (Int(b, "size") > 0)
    std::printf("  size        %s\n", HumanBytes(static_cast<uint64_t>(Int(b, "size"))).c_str());
  if (!Str(b, "sha256").empty()) std::printf("  sha256      %s\n", Str(b, "sha256").c_str());
  return kExitOk;
}

int BundleGet(ApiClient& client, const std::string& id, const std::string& output, bool json_out) {
  int rc = kExitOk;
  auto body = Parse(client.Get(Cat("/api/v1/bundles/", UrlEncode(id))), &rc);
  if (!body) return rc;
  const json& b = (*body)["bundle"];
  if (Str(b, "state") != "complete") {
    std::cerr << "setdiag: bundle " << id << " is not complete: " << Describe(b) << "\n";
    return Str(b, "state") == "failed" || Str(b, "state") == "expired" ? kExitError
                                                                       : kExitStillWaiting;
  }
  return Download(client, b, output, json_out);
}

int BundleManifest(ApiClient& client, const std::string& what, bool json_out) {
  json manifest;
  struct stat st {};
  if (::stat(what.c_str(), &st) == 0) {
    auto text = ReadManifestFromFile(what);
    if (!text.ok()) {
      std::cerr << "setdiag: " << text.status().message() << "\n";
      return kExitError;
    }
    manifest = json::parse(*text, nullptr, false);
  } else {
    if (!IsValidIdentifier(what)) {
      std::cerr << "setdiag: " << what << " is neither a file nor a bundle id\n";
      return kExitUsage;
    }
    int rc = kExitOk;
    auto body = Parse(client.Get(Cat("/api/v1/bundles/", UrlEncode(what))), &rc);
    if (!body) return rc;
    manifest = (*body)["bundle"]["manifest"];
    if (manifest.is_null()) {
      std::cerr << "setdiag: bundle " << what << " has no manifest yet ("
                << Describe((*body)["bundle"]) << ")\n";
      return kExitNotFound;
    }
  }
  if (manifest.is_discarded() || !manifest.is_object()) {
    std::cerr << "setdiag: the manifest is not a JSON object\n";
    return kExitError;
  }
  if (json_out) {
    std::cout << Dump(manifest, 2) << "\n";
    return kExitOk;
  }
  const json& window = manifest.contains("window") ? manifest["window"] : json::object();
  std::printf("Bundle of store %s, agent %s %s, created %s\n", Str(manifest, "store_id").c_str(),
              Str(manifest, "agent_id").c_str(), Str(manifest, "agent_version").c_str(),
              FormatUtc(Int(manifest, "created_at_ms")).c_str());
  if (window.is_object() && Int(window, "ms") > 0) {
    std::printf("Window: %s .. %s\n", FormatUtc(Int(window, "from_ms")).c_str(),
                FormatUtc(Int(window, "to_ms")).c_str());
  }
  if (manifest.contains("steps") && manifest["steps"].is_array()) {
    std::printf("\nSTEP            STATUS      TIME     FILES  ERROR\n");
    for (const auto& s : manifest["steps"]) {
      std::printf("%-15s %-11s %6lld ms %5lld  %s\n", Str(s, "name").c_str(),
                  Str(s, "status").c_str(), static_cast<long long>(Int(s, "duration_ms")),
                  static_cast<long long>(Int(s, "files")), Str(s, "error").c_str());
    }
  }
  if (manifest.contains("files") && manifest["files"].is_array()) {
    std::printf("\nFILE                                                          SIZE  STEP\n");
    for (const auto& f : manifest["files"]) {
      std::printf("%-58s %10s  %s\n", Str(f, "path").c_str(),
                  HumanBytes(static_cast<uint64_t>(Int(f, "size"))).c_str(),
                  Str(f, "step").c_str());
    }
  }
  if (manifest.contains("not_collected") && manifest["not_collected"].is_array() &&
      !manifest["not_collected"].empty()) {
    std::printf("\nNot collected:\n");
    for (const auto& n : manifest["not_collected"]) {
      std::printf("  %s (%s): %s\n", Str(n, "source").c_str(), Str(n, "step").c_str(),
                  Str(n, "reason").c_str());
    }
  }
  if (manifest.contains("redactions") && manifest["redactions"].is_object()) {
    std::printf("\nValues redacted: %lld\n",
                static_cast<long long>(Int(manifest["redactions"], "total")));
  }
  return kExitOk;
}

namespace {

class BundleCommands final : public CommandGroup {
 public:
  explicit BundleCommands(CLI::App& app) {
    auto* bundle =
        app.add_subcommand("bundle", "Diagnostic bundles pulled from stores through the collector");
    bundle->require_subcommand(1);
    pull_ = bundle->add_subcommand(
        "pull",
        "Ask a store for a bundle (sent over its agent's own link; waits for an offline store), "
        "show progress, download and verify it");
    pull_->add_option("--store", args_.store, "Store id")->required();
    pull_->add_option("--ticket", args_.ticket_id, "Attach it to this ticket (of that store)")
        ->check(kTicketIdRange);
    pull_->add_option("-o,--output", args_.output,
                      "Where to save it (default bundle-<store>-<id>.tar.gz)");
    pull_->add_option("--window", args_.window,
                      "How far back logs and history go, e.g. 6h (default: the agent's)");
    pull_->add_flag("--no-logs", args_.no_logs, "Leave the store server's log files out");
    pull_->add_option("--reason", args_.reason, "Why, for the record");
    pull_->add_flag("--no-wait", no_wait_, "Print the bundle id and return at once");
    pull_
        ->add_option("--timeout", timeout_,
                     "Give up waiting after this long (the request stays open)")
        ->capture_default_str();
    list_ = bundle->add_subcommand("list", "List bundles, oldest first");
    list_->add_option("--store", store_, "Only this store");
    list_->add_option("--ticket", ticket_, "Only bundles attached to this ticket")
        ->check(kTicketIdRange);
    show_ = bundle->add_subcommand("show", "A bundle's state and progress");
    show_->add_option("id", id_, "Bundle id")->required();
    get_ = bundle->add_subcommand("get", "Download a complete bundle and verify its checksum");
    get_->add_option("id", id_, "Bundle id")->required();
    get_->add_option("-o,--output", output_,
                     "Where to save it (default bundle-<store>-<id>.tar.gz)");
    manifest_ = bundle->add_subcommand("manifest",
                                       "Print a bundle's manifest: what is inside and what is not");
    manifest_->add_option("bundle", id_, "A downloaded .tar.gz, or a bundle id")->required();
  }

  std::optional<int> Run(ApiClient& client, const Output& out) override {
    if (pull_->parsed()) {
      auto ms = ConfigReader::ParseDurationMs(timeout_);
      if (!ms || *ms <= 0) {
        std::cerr << "setdiag: --timeout needs a duration such as 90s or 10m\n";
        return kExitUsage;
      }
      args_.timeout_ms = *ms;
      args_.wait = !no_wait_;
      return BundlePull(client, args_, out.json);
    }
    if (list_->parsed()) return BundleList(client, store_, ticket_, out.json);
    if (show_->parsed()) return BundleShow(client, id_, out.json);
    if (get_->parsed()) return BundleGet(client, id_, output_, out.json);
    if (manifest_->parsed()) return BundleManifest(client, id_, out.json);
    return std::nullopt;
  }

 private:
  CLI::App* pull_ = nullptr;
  CLI::App* list_ = nullptr;
  CLI::App* show_ = nullptr;
  CLI::App* get_ = nullptr;
  CLI::App* manifest_ = nullptr;
  PullArgs args_;
  std::string timeout_ = "10m", output_, id_, store_;
  bool no_wait_ = false;
  int64_t ticket_ = 0;
};

}  // namespace

std::unique_ptr<CommandGroup> AddBundleCommands(CLI::App& app) {
  return std::make_unique<BundleCommands>(app);
}

}  // namespace setdiag::cli
