#include "agent/link/uplink.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

#include "common/files.h"
#include "common/log.h"
#include "common/strings.h"
#include "common/version.h"
#include "setdiag/v1/link.grpc.pb.h"

namespace setdiag::agent {

namespace v1 = ::setdiag::v1;

namespace {
const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "?";
  }
}
}  // namespace

struct Uplink::OutBundle {
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

struct Uplink::SessionResult {
  bool handshake_done = false;
  bool acknowledged = false;               // the collector acknowledged a batch in this session
  int64_t overloaded_retry_after_ms = -1;  // >= 0 when the collector said so
  int64_t overloaded_retry_spread_ms = 0;  // the collector's spread hint, 0: none
  grpc::Status status;
};

Uplink::Uplink(UplinkOptions options, Outbox& outbox, Clock& clock)
    : options_(std::move(options)),
      outbox_(outbox),
      clock_(clock),
      backoff_(options_.backoff, clock, std::random_device{}()),
      started_ms_(clock.MonotonicMs()) {
  channel_ = MakeLinkChannel(options_);
}

std::shared_ptr<grpc::Channel> MakeLinkChannel(const UplinkOptions& options) {
  std::shared_ptr<grpc::ChannelCredentials> creds;
  grpc::ChannelArguments args;
  if (options.ca_pem.empty()) {
    creds = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.ca_pem;
    creds = grpc::SslCredentials(ssl);
    if (!options.server_name.empty()) {
      args.SetSslTargetNameOverride(options.server_name);
    }
  }
  // Detect a dead link (a store router rebooting) within a minute.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // We do our own backoff; keep gRPC's reconnect quick underneath it.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2'000);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 200);
  args.SetMaxSendMessageSize(4 * 1024 * 1024);
  args.SetString(GRPC_ARG_PRIMARY_USER_AGENT_STRING, Cat("setdiag-agent/", kVersion));
  // A private subchannel per channel: a fresh channel after a failed attempt
  // then really starts over instead of waiting out gRPC's own backoff, which
  // would otherwise stack on top of ours.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(options.target, creds, args);
}

LinkTlsProblem ClassifyTlsProblem(bool agent_uses_tls, int code, const std::string& message) {
  auto has = [&](const char* text) { return message.find(text) != std::string::npos; };
  if (!agent_uses_tls) {
    // A TLS port reads the HTTP/2 preface as a broken handshake and closes
    // the connection without a word.
    const bool closed = has("Socket closed") || has("Connection reset");
    return code == grpc::StatusCode::UNAVAILABLE && closed ? LinkTlsProblem::kCollectorExpectsTls
                                                           : LinkTlsProblem::kNone;
  }
  // A plaintext HTTP/2 port answers the ClientHello with frames that are no
  // TLS record.
  if (has("wrong version number") || has("packet length too long") || has("http request")) {
    return LinkTlsProblem::kCollectorWithoutTls;
  }
  if (has("andshake") || has("SSL") || has("ertificate")) return LinkTlsProblem::kHandshakeFailed;
  return LinkTlsProblem::kNone;
}

const char* LinkTlsHint(LinkTlsProblem problem) {
  switch (problem) {
    case LinkTlsProblem::kCollectorExpectsTls:
      return "the collector closed the connection without answering: it probably expects TLS; set "
             "collector.ca_file to the collector's CA certificate (and collector.server_name if "
             "the certificate "
             "names another host)";
    case LinkTlsProblem::kCollectorWithoutTls:
      return "the collector does not speak TLS on this port (it answered in plaintext): check the "
             "port in "
             "collector.address; a loopback collector without TLS needs no collector.ca_file";
    case LinkTlsProblem::kHandshakeFailed:
      return "the TLS handshake failed: collector.ca_file must be the CA that signed the "
             "collector's "
             "certificate, and the certificate must name the host of collector.address (or set "
             "collector.server_name)";
    case LinkTlsProblem::kNone:
      break;
  }
  return "";
}

CollectorProbe ProbeCollector(const UplinkOptions& options, int64_t timeout_ms, Clock& clock) {
  CollectorProbe r;
  auto channel = MakeLinkChannel(options);
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", Cat("Bearer ", options.token));
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  auto stub = v1::AgentLink::NewStub(channel);
  auto stream = stub->Connect(&ctx);
  v1::AgentMessage hello_msg;
  auto* hello = hello_msg.mutable_hello();
  hello->set_protocol_version(kProtocolVersion);
  hello->set_store_id(options.store_id);
  hello->set_agent_id(options.agent_id);
  hello->set_agent_version(kVersion);
  hello->set_probe(true);
  const int64_t sent = clock.NowMs();
  v1::CollectorMessage in;
  bool welcomed = false;
  if (stream->Write(hello_msg)) {
    while (stream->Read(&in)) {
      if (in.has_welcome()) {
        const int64_t received = clock.NowMs();
        welcomed = true;
        r.server_time_ms = in.welcome().server_time_ms();
        r.round_trip_ms = received - sent;
        r.offset_ms = r.server_time_ms - (sent + received) / 2;
        break;
      }
    }
  }
  stream->WritesDone();
  if (welcomed) ctx.TryCancel();  // a collector that ignores probe would keep the stream open
  grpc::Status st = stream->Finish();
  if (welcomed) {
    r.code = grpc::StatusCode::OK;
    return r;
  }
  r.code = st.ok() ? grpc::StatusCode::UNKNOWN : st.error_code();
  r.message = st.ok() ? "the collector ended the stream without a Welcome" : st.error_message();
  return r;
}

Uplink::~Uplink() { Stop(); }

void Uplink::Start() {
  if (bundles_enabled()) {
    LoadBuiltBundles();
    builder_ = std::thread([this] { BuilderLoop(); });
  }
  thread_ = std::thread([this] { Run(); });
}

void Uplink::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    if (active_ctx_) active_ctx_->TryCancel();
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  {
    std::lock_guard lock(bmu_);
    bundle_stopping_ = true;
  }
  bcv_.notify_all();
  if (builder_.joinable()) {
    bool building = false;
    {
      std::lock_guard lock(bmu_);
      for (const auto& [id, b] : bundles_) building |= b->state == OutBundle::State::kBuilding;
    }
    // A build in progress ends within its steps' timeouts.
    if (building) log::Info("bundles", "waiting for the bundle being built to finish");
    builder_.join();
  }
}

// ---- diagnostic bundles ----

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

void Uplink::NotifyLoop() {
  {
    std::lock_guard lock(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

void Uplink::LoadBuiltBundles() {
  const std::string& dir = options_.bundle_dir;
  if (::mkdir(dir.c_str(), 0750) != 0 && errno != EEXIST) {
    log::Error("bundles", Cat("cannot create ", dir, ": ", std::strerror(errno)));
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
          now - j.value("built_at_ms", int64_t{0}) > options_.bundle_keep_ms) {
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
          now / 1000 - static_cast<int64_t>(st.st_mtime) > options_.bundle_keep_ms / 1000) {
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

void Uplink::ForgetBundle(const std::string& id, bool done_marker) {
  const std::string& dir = options_.bundle_dir;
  bundles_.erase(id);
  ::unlink(BundlePath(dir, id).c_str());
  ::unlink(SidecarPath(dir, id).c_str());
  if (done_marker && id.starts_with("fr-")) {
    // The flight recorder must not capture the same episode again when its
    // event is sent again (a replay after a lost ack).
    (void)WriteFileAtomically(DoneMarkerPath(dir, id), "", 0640);
  }
}

void Uplink::ExpireBundles() {
  std::lock_guard lock(bmu_);
  const int64_t now = clock_.NowMs();
  std::vector<std::string> old;
  for (const auto& [id, b] : bundles_) {
    if (b->built_at_ms > 0 && now - b->built_at_ms > options_.bundle_keep_ms) old.push_back(id);
  }
  for (const auto& id : old) {
    log::Warn("bundles", Cat("bundle ", id, " was never taken by the collector; deleted"));
    ForgetBundle(id, true);
  }
}

void Uplink::CaptureFlightRecorder(const std::string& episode, const std::string& event_kind,
                                   const std::string& state) {
  if (!bundles_enabled() || !options_.flight_recorder) return;
  std::string id = FlightRecorderId(episode, state);
  {
    std::lock_guard lock(bmu_);
    if (bundles_.contains(id) || FileExists(DoneMarkerPath(options_.bundle_dir, id))) return;
    if (build_queue_.size() >= options_.bundle_max_queued) {
      log::Warn("bundles", Cat("flight recorder: too many bundles waiting; ", id, " not captured"));
      return;
    }
    auto b = std::make_unique<OutBundle>();
    b->trigger = "flight_recorder";
    b->episode = episode;
    b->event_kind = event_kind;
    b->params.request_id = id;
    b->params.out_path = BundlePath(options_.bundle_dir, id);
    b->params.reason =
        Cat("flight recorder: critical ", event_kind, " ", state, ", episode ", episode);
    bundles_[id] = std::move(b);
    build_queue_.push_back(id);
  }
  log::Info("bundles", Cat("flight recorder: capturing ", id));
  bcv_.notify_all();
}

void Uplink::OnBundleRequest(const std::string& id, uint64_t resume_offset,
                             const std::string& sha256, int64_t window_ms, bool exclude_logs,
                             const std::string& reason) {
  {
    std::lock_guard lock(bmu_);
    auto it = bundles_.find(id);
    if (it == bundles_.end()) {
      if (!bundles_enabled() || !IsValidIdentifier(id, 128)) {
        failures_.emplace_back(id,
                               "this agent cannot build bundles (no builder or bundle directory)");
      } else {
        auto b = std::make_unique<OutBundle>();
        b->params.request_id = id;
        b->params.out_path = BundlePath(options_.bundle_dir, id);
        b->params.window_ms = window_ms;
        b->params.exclude_logs = exclude_logs;
        b->params.reason = reason;
        bundles_[id] = std::move(b);
        build_queue_.push_back(id);
        log::Info("bundles", Cat("bundle ", id, " requested (", reason, "); building"));
        bcv_.notify_all();
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
  NotifyLoop();
}

void Uplink::OnBundleAck(const std::string& id, bool complete, bool cancelled) {
  if (!complete && !cancelled) return;
  std::lock_guard lock(bmu_);
  auto it = bundles_.find(id);
  if (it == bundles_.end()) return;
  if (it->second->state == OutBundle::State::kQueued ||
      it->second->state == OutBundle::State::kBuilding) {
    return;  // not ours yet to drop; the offer will be answered again
  }
  log::Info("bundles", Cat("bundle ", id,
                           complete ? " stored by the collector" : " not wanted by the collector",
                           "; local copy deleted"));
  ForgetBundle(id, true);
}

void Uplink::OnBundleSessionStart() {
  std::lock_guard lock(bmu_);
  for (auto& [id, b] : bundles_) {
    using S = OutBundle::State;
    if (b->state == S::kReady || b->state == S::kSending || b->state == S::kSent) {
      b->state = S::kReady;
      b->offer_pending = true;
      b->request_offset = UINT64_MAX;
    }
  }
}

void Uplink::BuilderLoop() {
  std::unique_lock lock(bmu_);
  while (true) {
    bcv_.wait(lock, [this] { return bundle_stopping_ || !build_queue_.empty(); });
    if (bundle_stopping_) return;
    std::string id = build_queue_.front();
    build_queue_.pop_front();
    auto it = bundles_.find(id);
    if (it == bundles_.end()) continue;
    it->second->state = OutBundle::State::kBuilding;
    BundleBuildRequest params = it->second->params;
    lock.unlock();
    const int64_t started = clock_.MonotonicMs();
    absl::StatusOr<BuiltBundle> built = options_.bundle_builder(params);
    const int64_t took = clock_.MonotonicMs() - started;
    lock.lock();
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
      lock.unlock();
      NotifyLoop();
      lock.lock();
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
            SidecarPath(options_.bundle_dir, id),
            sidecar.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), 0640);
        !st.ok()) {
      log::Warn("bundles",
                Cat("bundle ", id, ": ", st.ToString(), " (it will not survive a restart)"));
    }
    b.state = OutBundle::State::kReady;
    b.offer_pending = true;
    log::Info("bundles",
              Cat("bundle ", id, " built in ", took, " ms: ", b.size, " bytes, sha256 ", b.sha256));
    lock.unlock();
    NotifyLoop();
    lock.lock();
  }
}

template <typename Stream>
bool Uplink::PumpBundles(Stream& stream, bool* write_failed) {
  std::vector<v1::AgentMessage> control;
  {
    std::lock_guard lock(bmu_);
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
    if (!stream->Write(m)) {
      *write_failed = true;
      return wrote;
    }
    wrote = true;
  }
  for (size_t turn = 0; turn < options_.bundle_chunks_per_turn; ++turn) {
    std::string id, path, sha, manifest;
    uint64_t cursor = 0, size = 0;
    {
      std::lock_guard lock(bmu_);
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
      if (size - cursor <= options_.bundle_chunk_bytes) manifest = next->manifest;
    }
    const size_t n =
        static_cast<size_t>(std::min<uint64_t>(options_.bundle_chunk_bytes, size - cursor));
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
      std::lock_guard lock(bmu_);
      log::Error("bundles", Cat("bundle ", id, ": cannot read ", path, "; dropping it"));
      failures_.emplace_back(id, Cat("the agent lost the built file ", path));
      ForgetBundle(id, false);
      continue;
    }
    const bool last = cursor + n == size;
    c->set_last(last);
    if (last) c->set_manifest(manifest);
    if (!stream->Write(m)) {
      *write_failed = true;
      return wrote;
    }
    wrote = true;
    std::lock_guard lock(bmu_);
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

void Uplink::Wake() {
  {
    std::lock_guard lock(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

void Uplink::Run() {
  while (true) {
    {
      std::unique_lock lock(mu_);
      // Real waiting happens here; Backoff itself is pure and clock-driven.
      cv_.wait_for(lock, std::chrono::milliseconds(backoff_.MsUntilReady()),
                   [&] { return stopping_; });
      if (stopping_) return;
    }
    if (!backoff_.ReadyNow()) continue;
    SessionResult r = RunSession();
    connected_ = false;
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
    }
    if (r.handshake_done) {
      // Only a session that lasted or stored something resets the backoff: a
      // collector with broken storage welcomes us and fails every batch.
      if (!backoff_.SessionEnded(r.acknowledged)) {
        log::Debug("uplink", "the session ended before it was healthy; the backoff keeps growing");
      }
    } else {
      channel_ = MakeLinkChannel(options_);
    }
    int64_t delay;
    if (r.overloaded_retry_after_ms >= 0 ||
        r.status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      delay = backoff_.Overloaded(std::max<int64_t>(0, r.overloaded_retry_after_ms),
                                  r.overloaded_retry_spread_ms);
      log::Warn("uplink", Cat("collector is overloaded; reconnecting in ", delay, " ms"));
    } else if (r.status.error_code() == grpc::StatusCode::UNAUTHENTICATED ||
               r.status.error_code() == grpc::StatusCode::PERMISSION_DENIED) {
      delay = backoff_.Overloaded(0);
      log::Error("uplink", Cat("the collector refused this agent: ",
                               CodeName(r.status.error_code()), " ", r.status.error_message(),
                               "; check collector.token_file and "
                               "agent.store_id; retrying in ",
                               delay, " ms"));
    } else if (LinkTlsProblem tls = r.handshake_done ? LinkTlsProblem::kNone
                                                     : ClassifyTlsProblem(!options_.ca_pem.empty(),
                                                                          r.status.error_code(),
                                                                          r.status.error_message());
               tls != LinkTlsProblem::kNone) {
      // A configuration problem that no retry mends: an error, once per
      // window with how often it repeated meanwhile.
      delay = backoff_.Failed();
      const std::string line =
          Cat("link to ", options_.target, ": ", LinkTlsHint(tls), " (",
              CodeName(r.status.error_code()), " ", r.status.error_message(), ")");
      uint64_t skipped = 0;
      if (tls_errors_.Allow(line, clock_.MonotonicMs(), &skipped)) {
        log::Error(
            "uplink",
            Cat(line,
                skipped > 0 ? Cat("; ", skipped, " more time(s) since the last such line") : "",
                "; reconnecting in ", delay, " ms"));
      } else {
        log::Debug("uplink", Cat("link to ", options_.target,
                                 ": the same TLS failure; reconnecting in ", delay, " ms"));
      }
    } else {
      delay = backoff_.Failed();
      log::Warn("uplink",
                Cat("link to ", options_.target, " ended: ", CodeName(r.status.error_code()), " ",
                    r.status.error_message(), "; reconnecting in ", delay, " ms"));
    }
  }
}

Uplink::SessionResult Uplink::RunSession() {
  SessionResult result;
  grpc::ClientContext ctx;
  ctx.AddMetadata("authorization", Cat("Bearer ", options_.token));
  {
    std::lock_guard lock(mu_);
    if (stopping_) return result;
    active_ctx_ = &ctx;
  }
  auto stub = v1::AgentLink::NewStub(channel_);
  auto stream = stub->Connect(&ctx);

  auto finish = [&](SessionResult r) {
    r.status = stream->Finish();
    std::lock_guard lock(mu_);
    active_ctx_ = nullptr;
    return r;
  };

  v1::AgentMessage hello_msg;
  auto* hello = hello_msg.mutable_hello();
  hello->set_protocol_version(kProtocolVersion);
  hello->set_store_id(options_.store_id);
  hello->set_agent_id(options_.agent_id);
  hello->set_agent_version(kVersion);
  hello->set_first_unacked_sequence(outbox_.FirstUnacked());
  hello->set_next_sequence(outbox_.Stats().next_sequence);
  hello->set_outbox_id(outbox_.outbox_id());
  hello->set_outbox_fresh(outbox_.fresh());
  if (options_.held_episodes) {
    if (auto held = options_.held_episodes()) {
      hello->set_held_episodes_known(true);
      std::string names;
      for (const auto& h : *held) {
        auto* e = hello->add_held_episodes();
        e->set_kind(h.kind);
        e->set_episode(h.episode);
        Append(&names, names.empty() ? "" : ", ", h.kind, " ", h.episode);
      }
      if (held->empty())
        log::Debug("uplink", "hello: holding no raised condition");
      else
        log::Info("uplink",
                  Cat("hello: holding ", held->size(), " raised condition episode(s): ", names));
    }
  }
  if (!stream->Write(hello_msg)) return finish(result);

  v1::CollectorMessage in;
  if (!stream->Read(&in)) return finish(result);  // the collector ended it: Finish says why
  if (!in.has_welcome()) {
    if (in.has_overloaded()) {
      result.overloaded_retry_after_ms = in.overloaded().retry_after_ms();
      result.overloaded_retry_spread_ms = in.overloaded().retry_spread_ms();
    }
    ctx.TryCancel();
    return finish(result);
  }
  const auto& welcome = in.welcome();
  if (welcome.renumber_from() > 0) {
    if (auto st = outbox_.Renumber(welcome.renumber_from()); !st.ok()) {
      log::Error("uplink", Cat("cannot renumber outbox: ", st.ToString()));
      ctx.TryCancel();
      return finish(result);
    }
  } else if (welcome.last_committed_sequence() > 0) {
    if (auto st = outbox_.AckUpTo(welcome.last_committed_sequence()); !st.ok()) {
      log::Error("uplink", Cat("cannot apply resume point: ", st.ToString()));
    }
  }
  if (outbox_.fresh()) (void)outbox_.MarkSynced();
  int64_t status_interval_ms = welcome.status_interval_s() > 0
                                   ? int64_t{welcome.status_interval_s()} * 1000
                                   : options_.status_interval_ms;
  result.handshake_done = true;
  backoff_.SessionStarted();
  connected_ = true;
  // Bundle messages only to a collector that speaks version 2.
  const bool bundles_v2 = welcome.protocol_version() >= 2;
  if (bundles_v2) OnBundleSessionStart();
  log::Info("uplink", Cat("connected to ", options_.target, "; collector has up to ",
                          welcome.last_committed_sequence()));

  // Shared between this writer loop and the reader thread, guarded by mu_.
  uint64_t acked =
      welcome.renumber_from() > 0 ? welcome.renumber_from() - 1 : welcome.last_committed_sequence();
  bool reader_done = false;
  std::deque<uint64_t> pongs;

  std::thread reader([&] {
    v1::CollectorMessage msg;
    while (stream->Read(&msg)) {
      if (msg.has_ack()) {
        uint64_t up_to = msg.ack().up_to_sequence();
        if (auto st = outbox_.AckUpTo(up_to); !st.ok()) {
          log::Error("uplink", Cat("cannot delete acknowledged events: ", st.ToString()));
        }
        std::lock_guard lock(mu_);
        acked = std::max(acked, up_to);
        result.acknowledged = true;
      } else if (msg.has_ping()) {
        std::lock_guard lock(mu_);
        pongs.push_back(msg.ping().nonce());
      } else if (msg.has_overloaded()) {
        std::lock_guard lock(mu_);
        result.overloaded_retry_after_ms = msg.overloaded().retry_after_ms();
        result.overloaded_retry_spread_ms = msg.overloaded().retry_spread_ms();
      } else if (msg.has_bundle_request() && bundles_v2) {
        const auto& r = msg.bundle_request();
        OnBundleRequest(r.request_id(), r.resume_offset(), r.sha256(), r.window_ms(),
                        r.exclude_logs(), r.reason());
      } else if (msg.has_bundle_ack() && bundles_v2) {
        const auto& k = msg.bundle_ack();
        OnBundleAck(k.request_id(), k.complete(), k.cancelled());
      }
      cv_.notify_all();
    }
    std::lock_guard lock(mu_);
    reader_done = true;
    cv_.notify_all();
  });

  uint64_t last_sent = acked;
  int64_t next_status_ms = clock_.MonotonicMs();
  int64_t next_expiry_ms = clock_.MonotonicMs();
  bool write_failed = false;
  while (!write_failed) {
    uint64_t acked_now;
    std::deque<uint64_t> pongs_now;
    {
      std::lock_guard lock(mu_);
      if (stopping_ || reader_done) break;
      acked_now = acked;
      pongs_now.swap(pongs);
    }
    for (uint64_t nonce : pongs_now) {
      v1::AgentMessage m;
      m.mutable_pong()->set_nonce(nonce);
      if (!stream->Write(m)) write_failed = true;
    }
    if (clock_.MonotonicMs() >= next_status_ms) {
      OutboxStats s = outbox_.Stats();
      v1::AgentMessage m;
      auto* st = m.mutable_status();
      st->set_uptime_s((clock_.MonotonicMs() - started_ms_) / 1000);
      st->set_agent_version(kVersion);
      st->set_outbox_depth(s.depth);
      st->set_outbox_bytes(static_cast<uint64_t>(s.bytes));
      st->set_oldest_unsent_age_s(
          s.oldest_enqueued_ms
              ? std::max<int64_t>(0, (clock_.NowMs() - s.oldest_enqueued_ms) / 1000)
              : 0);
      st->set_gaps_total(s.gaps_total);
      st->set_sent_at_ms(clock_.NowMs());
      if (!stream->Write(m)) write_failed = true;
      next_status_ms = clock_.MonotonicMs() + status_interval_ms;
    }
    bool sent_any = false;
    last_sent = std::max(last_sent, acked_now);  // an ack never goes past what was sent
    if (last_sent - acked_now < options_.max_inflight) {
      auto events =
          outbox_.ReadAfter(last_sent, options_.batch_max_events, options_.batch_max_bytes);
      if (!events.ok()) {
        log::Error("uplink", Cat("cannot read outbox: ", events.status().ToString()));
      } else if (!events->empty()) {
        v1::AgentMessage m;
        auto* batch = m.mutable_batch();
        for (auto& e : *events) {
          // Only a collector that takes bundles gets flight recorder captures.
          if (bundles_v2 && e.severity == Severity::kCritical && bundles_enabled() &&
              options_.flight_recorder) {
            auto p = nlohmann::json::parse(e.payload, nullptr, false);
            if (p.is_object() && p["state"].is_string() && p["episode"].is_string()) {
              std::string state = p["state"].get<std::string>();
              std::string episode = p["episode"].get<std::string>();
              if ((state == "raised" || state == "escalated") && !episode.empty()) {
                CaptureFlightRecorder(episode, e.kind, state);
              }
            }
          }
          auto* out = batch->add_events();
          out->set_sequence(e.sequence);
          out->set_kind(std::move(e.kind));
          out->set_severity(static_cast<v1::Severity>(e.severity));
          out->set_detected_at_ms(e.detected_at_ms);
          out->set_payload(std::move(e.payload));
        }
        if (!stream->Write(m)) {
          write_failed = true;
        } else {
          last_sent = events->back().sequence;
          sent_any = true;
        }
      }
    }
    if (bundles_v2 && !write_failed) {
      if (clock_.MonotonicMs() >= next_expiry_ms) {
        ExpireBundles();
        next_expiry_ms = clock_.MonotonicMs() + 60'000;
      }
      if (PumpBundles(stream, &write_failed)) sent_any = true;
    }
    if (sent_any) continue;
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(options_.idle_poll_ms), [&] {
      return stopping_ || reader_done || woken_ || !pongs.empty() || acked != acked_now;
    });
    woken_ = false;
  }
  // When the collector ended the stream (or a write failed because it did),
  // Finish() reports its status: cancelling first would replace the real
  // cause (e.g. its storage error) with CANCELLED. Cancel only when we stop,
  // or when the reader does not see the end within a moment (a dead link).
  bool cancel;
  {
    std::unique_lock lock(mu_);
    if (!stopping_ && !reader_done) {
      cv_.wait_for(lock, std::chrono::seconds(2), [&] { return stopping_ || reader_done; });
    }
    cancel = stopping_ || !reader_done;
  }
  if (cancel) ctx.TryCancel();
  reader.join();
  return finish(result);
}

}  // namespace setdiag::agent
