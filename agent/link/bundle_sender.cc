#include "agent/link/bundle_sender.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "common/digest.h"
#include "common/files.h"
#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"
#include "setdiag/v1/link.pb.h"

namespace setdiag::agent {

namespace v1 = ::setdiag::v1;

struct BundleSender::OutBundle {
  enum class State { kQueued, kBuilding, kReady, kSending, kSent };
  State state = State::kQueued;
  BundleBuildRequest params;
  std::string trigger = "request";  // or "flight_recorder"
  std::string episode, event_kind;
  // Once built:
  std::string path, sha256, manifest;
  uint64_t size = 0;
  int64_t built_at_ms = 0;
  bool offer_pending = false;
  // While sending: the next byte, and the request that set it.
  uint64_t cursor = 0;
  uint64_t request_offset = UINT64_MAX;
  std::string request_sha;
};

BundleSender::BundleSender(BundleSenderOptions options, Clock& clock,
                           std::function<void()> wake_loop)
    : options_(std::move(options)), clock_(clock), wake_loop_(std::move(wake_loop)) {}

BundleSender::~BundleSender() { Stop(); }

void BundleSender::Start() {
  if (!enabled()) return;
  LoadBuiltBundles();
  builder_ = std::thread([this] { BuilderLoop(); });
}

void BundleSender::Stop() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  cv_.SignalAll();
  if (builder_.joinable()) {
    bool building = false;
    {
      MutexLock lock(&mu_);
      for (const auto& [id, b] : bundles_) building |= b->state == OutBundle::State::kBuilding;
    }
    // A build in progress ends within its steps' timeouts.
    if (building) log::Info("bundles", "waiting for the bundle being built to finish");
    builder_.join();
  }
}

namespace {

std::string SidecarPath(const std::string& dir, const std::string& id) {
  return Cat(dir, "/", id, ".json");
}
std::string BundlePath(const std::string& dir, const std::string& id) {
  return Cat(dir, "/", id, ".tar.gz");
}
std::string DoneMarkerPath(const std::string& dir, const std::string& id) {
  return Cat(dir, "/", id, ".done");
}

// "fr-<episode>-<state>", or a hash of the episode when it would not make a
// valid (file and wire) identifier.
std::string FlightRecorderId(const std::string& episode, const std::string& state) {
  std::string id = Cat("fr-", episode, "-", state);
  if (IsValidIdentifier(id, 128)) return id;
  return Cat("fr-", Sha256Hex(episode).substr(0, 40), "-", state);
}

bool FileExists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

void BundleSender::LoadBuiltBundles() {
  MutexLock lock(&mu_);  // before the builder starts; the lock states what guards bundles_
  const std::string& dir = options_.dir;
  if (::mkdir(dir.c_str(), 0750) != 0 && errno != EEXIST) {
    log::Error("bundles", ErrnoStatus(errno, "cannot create", dir).ToString());
    return;
  }
  std::error_code ec;
  const int64_t now = clock_.NowMs();
  std::vector<std::filesystem::path> drop;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.ends_with(".json")) {
      std::string id = name.substr(0, name.size() - 5);
      auto text = ReadWholeFile(entry.path().string());
      auto j = nlohmann::json::parse(text.ok() ? *text : std::string(), nullptr, false);
      struct stat st {};
      std::string path = BundlePath(dir, id);
      if (j.is_discarded() || !j.is_object() || ::stat(path.c_str(), &st) != 0 ||
          static_cast<uint64_t>(st.st_size) != j.value("size", uint64_t{0}) ||
          now - j.value("built_at_ms", int64_t{0}) > options_.keep_ms) {
        drop.push_back(entry.path());
        drop.emplace_back(path);
        continue;
      }
      auto b = std::make_unique<OutBundle>();
      b->state = OutBundle::State::kReady;
      b->params.request_id = id;
      b->trigger = j.value("trigger", "request");
      b->episode = j.value("episode", "");
      b->event_kind = j.value("event_kind", "");
      b->path = path;
      b->size = j.value("size", uint64_t{0});
      b->sha256 = j.value("sha256", "");
      b->manifest = j.value("manifest", "");
      b->built_at_ms = j.value("built_at_ms", int64_t{0});
      b->offer_pending = true;
      bundles_[id] = std::move(b);
    } else if (name.ends_with(".done")) {
      struct stat st {};
      if (::stat(entry.path().c_str(), &st) == 0 &&
          now / 1000 - static_cast<int64_t>(st.st_mtime) > options_.keep_ms / 1000) {
        drop.push_back(entry.path());
      }
    } else if (!name.ends_with(".tar.gz")) {
      drop.push_back(entry.path());  // half-built leftovers (.part, scratch directories)
    }
  }
  // Archives without a sidecar were never finished.
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.ends_with(".tar.gz") && !bundles_.contains(name.substr(0, name.size() - 7)))
      drop.push_back(entry.path());
  }
  for (const auto& p : drop) std::filesystem::remove_all(p, ec);
  if (!bundles_.empty())
    log::Info("bundles", Cat(bundles_.size(), " built bundle(s) wait to be sent"));
}

void BundleSender::Forget(const std::string& id, bool done_marker) {
  const std::string& dir = options_.dir;
  bundles_.erase(id);
  ::unlink(BundlePath(dir, id).c_str());
  ::unlink(SidecarPath(dir, id).c_str());
  if (done_marker && id.starts_with("fr-")) {
    // The flight recorder must not capture the same episode again when its
    // event is sent again (a replay after a lost ack).
    (void)WriteFileAtomically(DoneMarkerPath(dir, id), "", 0640);
  }
}

void BundleSender::Expire() {
  MutexLock lock(&mu_);
  const int64_t now = clock_.NowMs();
  std::vector<std::string> old;
  for (const auto& [id, b] : bundles_) {
    if (b->built_at_ms > 0 && now - b->built_at_ms > options_.keep_ms) old.push_back(id);
  }
  for (const auto& id : old) {
    log::Warn("bundles", Cat("bundle ", id, " was never taken by the collector; deleted"));
    Forget(id, true);
  }
}

void BundleSender::CaptureFlightRecorder(const std::string& episode, const std::string& event_kind,
                                         const std::string& state) {
  if (!enabled() || !options_.flight_recorder) return;
  std::string id = FlightRecorderId(episode, state);
  {
    MutexLock lock(&mu_);
    if (bundles_.contains(id) || FileExists(DoneMarkerPath(options_.dir, id))) return;
    if (build_queue_.size() >= options_.max_queued) {
      log::Warn("bundles", Cat("flight recorder: too many bundles waiting; ", id, " not captured"));
      return;
    }
    auto b = std::make_unique<OutBundle>();
    b->trigger = "flight_recorder";
    b->episode = episode;
    b->event_kind = event_kind;
    b->params.request_id = id;
    b->params.out_path = BundlePath(options_.dir, id);
    b->params.reason =
        Cat("flight recorder: critical ", event_kind, " ", state, ", episode ", episode);
    bundles_[id] = std::move(b);
    build_queue_.push_back(id);
  }
  log::Info("bundles", Cat("flight recorder: capturing ", id));
  cv_.SignalAll();
}

void BundleSender::OnRequest(const std::string& id, uint64_t resume_offset,
                             const std::string& sha256, int64_t window_ms, bool exclude_logs,
                             const std::string& reason) {
  {
    MutexLock lock(&mu_);
    auto it = bundles_.find(id);
    if (it == bundles_.end()) {
      if (!enabled() || !IsValidIdentifier(id, 128)) {
        failures_.emplace_back(id,
                               "this agent cannot build bundles (no builder or bundle directory)");
      } else {
        auto b = std::make_unique<OutBundle>();
        b->params.request_id = id;
        b->params.out_path = BundlePath(options_.dir, id);
        b->params.window_ms = window_ms;
        b->params.exclude_logs = exclude_logs;
        b->params.reason = reason;
        bundles_[id] = std::move(b);
        build_queue_.push_back(id);
        log::Info("bundles", Cat("bundle ", id, " requested (", reason, "); building"));
        cv_.SignalAll();
      }
    } else {
      OutBundle& b = *it->second;
      using S = OutBundle::State;
      if (b.state == S::kReady || b.state == S::kSending || b.state == S::kSent) {
        if (b.state == S::kSending && resume_offset == b.request_offset && sha256 == b.request_sha)
          return;
        b.request_offset = resume_offset;
        b.request_sha = sha256;
        // Bytes the collector holds of another file are void: from the start.
        b.cursor = (!sha256.empty() && sha256 != b.sha256) ? 0 : std::min(resume_offset, b.size);
        b.state = S::kSending;
        log::Info("bundles",
                  Cat("bundle ", id, ": sending ", b.size - b.cursor, " of ", b.size, " bytes",
                      b.cursor > 0 ? Cat(" from resume_offset ", b.cursor) : ""));
      }
      // Queued or building: the offer follows when it is built.
    }
  }
  wake_loop_();
}

void BundleSender::OnAck(const std::string& id, bool complete, bool cancelled) {
  if (!complete && !cancelled) return;
  MutexLock lock(&mu_);
  auto it = bundles_.find(id);
  if (it == bundles_.end()) return;
  if (it->second->state == OutBundle::State::kQueued ||
      it->second->state == OutBundle::State::kBuilding) {
    return;  // not ours yet to drop; the offer will be answered again
  }
  log::Info("bundles", Cat("bundle ", id,
                           complete ? " stored by the collector" : " not wanted by the collector",
                           "; local copy deleted"));
  Forget(id, true);
}

void BundleSender::OnSessionStart() {
  MutexLock lock(&mu_);
  for (auto& [id, b] : bundles_) {
    using S = OutBundle::State;
    if (b->state == S::kReady || b->state == S::kSending || b->state == S::kSent) {
      b->state = S::kReady;
      b->offer_pending = true;
      b->request_offset = UINT64_MAX;
    }
  }
}

void BundleSender::BuilderLoop() {
  mu_.Lock();
  while (true) {
    while (!stopping_ && build_queue_.empty()) cv_.Wait(&mu_);
    if (stopping_) break;
    std::string id = build_queue_.front();
    build_queue_.pop_front();
    auto it = bundles_.find(id);
    if (it == bundles_.end()) continue;
    it->second->state = OutBundle::State::kBuilding;
    BundleBuildRequest params = it->second->params;
    mu_.Unlock();
    const int64_t started = clock_.MonotonicMs();
    absl::StatusOr<BuiltBundle> built = options_.builder(params);
    const int64_t took = clock_.MonotonicMs() - started;
    mu_.Lock();
    it = bundles_.find(id);
    if (it == bundles_.end()) {
      if (built.ok()) ::unlink(built->path.c_str());
      continue;
    }
    OutBundle& b = *it->second;
    if (!built.ok()) {
      std::string error(built.status().message());
      log::Error("bundles", Cat("bundle ", id, " could not be built: ", error));
      if (b.trigger == "request") failures_.emplace_back(id, error);
      bundles_.erase(it);
      mu_.Unlock();
      wake_loop_();
      mu_.Lock();
      continue;
    }
    b.path = built->path;
    b.size = built->size;
    b.sha256 = built->sha256;
    b.manifest = built->manifest_json.size() <= 1024 * 1024 ? built->manifest_json : "";
    b.built_at_ms = clock_.NowMs();
    nlohmann::json sidecar = {{"id", id},
                              {"size", b.size},
                              {"sha256", b.sha256},
                              {"trigger", b.trigger},
                              {"episode", b.episode},
                              {"event_kind", b.event_kind},
                              {"built_at_ms", b.built_at_ms},
                              {"manifest", b.manifest}};
    if (auto st = WriteFileAtomically(
            SidecarPath(options_.dir, id),
            sidecar.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), 0640);
        !st.ok()) {
      log::Warn("bundles",
                Cat("bundle ", id, ": ", st.ToString(), " (it will not survive a restart)"));
    }
    b.state = OutBundle::State::kReady;
    b.offer_pending = true;
    log::Info("bundles",
              Cat("bundle ", id, " built in ", took, " ms: ", b.size, " bytes, sha256 ", b.sha256));
    mu_.Unlock();
    wake_loop_();
    mu_.Lock();
  }
  mu_.Unlock();
}

bool BundleSender::Pump(const WriteFn& write, bool* write_failed) {
  std::vector<v1::AgentMessage> control;
  {
    MutexLock lock(&mu_);
    for (auto& [id, error] : failures_) {
      v1::AgentMessage m;
      m.mutable_bundle_failed()->set_request_id(id);
      m.mutable_bundle_failed()->set_error(error);
      control.push_back(std::move(m));
    }
    failures_.clear();
    for (auto& [id, b] : bundles_) {
      if (!b->offer_pending) continue;
      b->offer_pending = false;
      v1::AgentMessage m;
      auto* o = m.mutable_bundle_offer();
      o->set_request_id(id);
      o->set_size(b->size);
      o->set_sha256(b->sha256);
      o->set_trigger(b->trigger);
      o->set_episode(b->episode);
      o->set_event_kind(b->event_kind);
      o->set_built_at_ms(b->built_at_ms);
      control.push_back(std::move(m));
    }
  }
  bool wrote = false;
  for (const auto& m : control) {
    if (!write(m)) {
      *write_failed = true;
      return wrote;
    }
    wrote = true;
  }
  for (size_t turn = 0; turn < options_.chunks_per_turn; ++turn) {
    std::string id, path, sha, manifest;
    uint64_t cursor = 0, size = 0;
    {
      MutexLock lock(&mu_);
      OutBundle* next = nullptr;
      for (auto& [bid, b] : bundles_) {
        if (b->state == OutBundle::State::kSending) {
          next = b.get();
          id = bid;
          break;
        }
      }
      if (next == nullptr) break;
      path = next->path;
      sha = next->sha256;
      cursor = next->cursor;
      size = next->size;
      if (size - cursor <= options_.chunk_bytes) manifest = next->manifest;
    }
    const size_t n = static_cast<size_t>(std::min<uint64_t>(options_.chunk_bytes, size - cursor));
    v1::AgentMessage m;
    auto* c = m.mutable_bundle_chunk();
    c->set_request_id(id);
    c->set_offset(cursor);
    c->set_total_size(size);
    c->set_sha256(sha);
    // Straight from disk into the message: never the whole file in memory.
    std::string* data = c->mutable_data();
    data->resize(n);
    bool read_ok = true;
    if (n > 0) {
      int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      size_t got = 0;
      while (fd >= 0 && got < n) {
        ssize_t r = ::pread(fd, data->data() + got, n - got, static_cast<off_t>(cursor + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += static_cast<size_t>(r);
      }
      if (fd >= 0) ::close(fd);
      read_ok = got == n;
    }
    if (!read_ok) {
      MutexLock lock(&mu_);
      log::Error("bundles", Cat("bundle ", id, ": cannot read ", path, "; dropping it"));
      failures_.emplace_back(id, Cat("the agent lost the built file ", path));
      Forget(id, false);
      continue;
    }
    const bool last = cursor + n == size;
    c->set_last(last);
    if (last) c->set_manifest(manifest);
    if (!write(m)) {
      *write_failed = true;
      return wrote;
    }
    wrote = true;
    MutexLock lock(&mu_);
    auto it = bundles_.find(id);
    if (it != bundles_.end() && it->second->state == OutBundle::State::kSending &&
        it->second->cursor == cursor) {
      it->second->cursor = cursor + n;
      if (last) {
        it->second->state = OutBundle::State::kSent;
        log::Info("bundles",
                  Cat("bundle ", id, ": all ", size, " bytes sent; waiting for the collector"));
      }
    }
  }
  return wrote;
}

}  // namespace setdiag::agent
