// Diagnostic bundles on an agent stream (protocol version 2): requests go
// out with the offset held on disk, offers are decided on the writer
// thread, chunks are appended by BundleFiles, a complete file is recorded
// and acknowledged, a mismatch or gap asks again (collector/link/session.h,
// docs/bundles.md).

#include <nlohmann/json.hpp>

#include "collector/link/session.h"
#include "common/log.h"
#include "common/status.h"
#include "common/strings.h"

namespace setdiag::collector::link_internal {
namespace {

bool IsHex64(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

// A request (new, pending at Hello, or the answer to an offer) goes out
// with the offset held on disk, which only the files thread knows.
// `wire_id` is the agent's id of the row.
void LinkSession::BeginBundle(const BundleRow& row, const std::string& wire_id, Actions& a,
                              bool reset) {
  if (finish_requested_ || files_ == nullptr) return;
  BundleEntry& e = bundles_[row.id];
  e.wire_id = wire_id;
  if (e.sha256 != row.sha256) e.announced = false;
  e.sha256 = row.sha256;
  e.size = row.size;
  e.window_ms = row.window_ms;
  e.exclude_logs = row.exclude_logs;
  e.reason = row.origin == "request" ? Cat("requested by ", row.requested_by,
                                           row.reason.empty() ? "" : ": ", row.reason)
                                     : row.reason;
  e.finishing = false;
  e.last_resync = UINT64_MAX;
  if (reset) files_->Reset(row.id);
  files_->Held(row.id, [shared = shared_, id = row.id](uint64_t held) {
    WithSession(shared, [&](LinkSession& s, Actions& act) { s.SendBundleRequest(id, held, act); });
  });
  if (row.state == "requested") {
    Clock& clock = clock_;
    queue_.Submit(
        [id = row.id, &clock](sql::Db& db) { return MarkBundleDelivered(db, id, clock.NowMs()); },
        nullptr);
  }
  (void)a;
}

void LinkSession::SendBundleRequest(const std::string& id, uint64_t held, Actions& a) {
  auto it = bundles_.find(id);
  if (it == bundles_.end()) return;
  const BundleEntry& e = it->second;
  v1::CollectorMessage m;
  auto* r = m.mutable_bundle_request();
  r->set_request_id(e.wire_id);
  r->set_resume_offset(held);
  if (held > 0) r->set_sha256(e.sha256);
  r->set_window_ms(e.window_ms);
  r->set_exclude_logs(e.exclude_logs);
  r->set_reason(e.reason);
  log::Info("link", Cat("agent ", agent_id_, ": bundle ", id,
                        e.wire_id != id ? Cat(" (the agent's ", e.wire_id, ")") : "", " requested",
                        held > 0 ? Cat(", resume_offset ", held) : ""));
  Send(m, a);
}

// `wire_id`: the agent's request_id.
void LinkSession::SendBundleAck(const std::string& wire_id, uint64_t held, bool complete,
                                Actions& a) {
  v1::CollectorMessage m;
  auto* ack = m.mutable_bundle_ack();
  ack->set_request_id(wire_id);
  ack->set_received_up_to(held);
  ack->set_complete(complete);
  ack->set_cancelled(!complete);
  Send(m, a);
}

bool LinkSession::CheckBundlePreconditions(Actions& a) {
  if (!hello_seen_ || agent_id_.empty()) {
    Reject(grpc::StatusCode::FAILED_PRECONDITION, "the first message must be Hello", a);
    return false;
  }
  if (version_ < 2 || files_ == nullptr) {
    Reject(grpc::StatusCode::FAILED_PRECONDITION, "bundle messages need protocol version 2", a);
    return false;
  }
  return true;
}

void LinkSession::HandleBundleOffer(Actions& a) {
  if (!CheckBundlePreconditions(a)) return;
  const v1::BundleOffer& o = in_.bundle_offer();
  if (!IsValidIdentifier(o.request_id(), limits_.max_id_bytes)) {
    return Reject(grpc::StatusCode::INVALID_ARGUMENT,
                  "bundle_offer.request_id must be 1..128 of [A-Za-z0-9._-]", a);
  }
  if (!IsHex64(o.sha256())) {
    return Reject(grpc::StatusCode::INVALID_ARGUMENT,
                  "bundle_offer.sha256 must be 64 lowercase hex digits", a);
  }
  if (o.trigger() != "request" && o.trigger() != "flight_recorder") {
    return Reject(grpc::StatusCode::INVALID_ARGUMENT,
                  "bundle_offer.trigger must be request or flight_recorder", a);
  }
  if (o.episode().size() > 256 ||
      (!o.event_kind().empty() && !IsValidIdentifier(o.event_kind(), limits_.max_kind_bytes))) {
    return Reject(grpc::StatusCode::INVALID_ARGUMENT,
                  "bundle_offer.episode or event_kind is malformed", a);
  }
  IncomingOffer offer{o.request_id(), o.sha256(),     o.trigger(),
                      o.episode(),    o.event_kind(), o.size()};
  auto decision = std::make_shared<OfferDecision>();
  Clock& clock = clock_;
  const uint64_t max_bytes = bundle_limits_.max_bundle_bytes;
  bool queued = queue_.Submit(
      [store = store_id_, offer, decision, max_bytes, &clock](sql::Db& db) -> absl::Status {
        ASSIGN_OR_RETURN(auto d, DecideOffer(db, store, offer, max_bytes, clock.NowMs()));
        *decision = std::move(d);
        return absl::OkStatus();
      },
      [shared = shared_, decision, wire_id = offer.request_id,
       id = BundleIdForOffer(store_id_, offer.request_id)](absl::Status st) {
        WithSession(shared, [&](LinkSession& s, Actions& act) {
          if (!st.ok()) {
            log::Error("link",
                       Cat("agent ", s.agent_id_, ": bundle offer ", id, ": ", st.ToString()));
            return;  // the agent offers it again at its next connect
          }
          switch (decision->kind) {
            case OfferDecision::kRequest:
              return s.BeginBundle(decision->row, wire_id, act, decision->reset);
            case OfferDecision::kComplete:
              return s.SendBundleAck(wire_id, decision->row.size, true, act);
            case OfferDecision::kCancel:
              log::Info("link", Cat("agent ", s.agent_id_, ": bundle ", id,
                                    " not wanted: ", decision->why));
              return s.SendBundleAck(wire_id, 0, false, act);
          }
        });
      },
      /*weight=*/1);
  if (!queued) return RejectOverloaded(1, a);  // a bundle offer: a slot of the shortest length
  MaybeRead(a);
}

void LinkSession::HandleBundleChunk(Actions& a) {
  if (!CheckBundlePreconditions(a)) return;
  v1::BundleChunk& c = *in_.mutable_bundle_chunk();
  const uint64_t len = c.data().size();
  if (!IsValidIdentifier(c.request_id(), limits_.max_id_bytes)) {
    return Reject(grpc::StatusCode::INVALID_ARGUMENT,
                  "bundle_chunk.request_id must be 1..128 of [A-Za-z0-9._-]", a);
  }
  if (len > bundle_limits_.max_chunk_bytes) {
    return Reject(
        grpc::StatusCode::INVALID_ARGUMENT,
        Cat("bundle_chunk.data is ", len, " bytes; the limit is ", bundle_limits_.max_chunk_bytes),
        a);
  }
  if (c.total_size() > bundle_limits_.max_bundle_bytes || c.offset() > c.total_size() ||
      len > c.total_size() - c.offset() || (c.last() && c.offset() + len != c.total_size()) ||
      (!c.last() && len == 0)) {
    return Reject(grpc::StatusCode::INVALID_ARGUMENT,
                  "bundle_chunk: offset, size and total_size do not add up", a);
  }
  if (!IsHex64(c.sha256())) {
    return Reject(grpc::StatusCode::INVALID_ARGUMENT,
                  "bundle_chunk.sha256 must be 64 lowercase hex digits", a);
  }
  if (c.manifest().size() > bundle_limits_.max_manifest_bytes) {
    return Reject(grpc::StatusCode::INVALID_ARGUMENT, "bundle_chunk.manifest is too large", a);
  }
  const std::string id = BundleIdForOffer(store_id_, c.request_id());
  auto it = bundles_.find(id);
  if (it == bundles_.end()) {
    // Not requested on this stream: another store's bundle, or one that
    // is done. Ignored; the agent is told to drop it.
    log::Warn("link",
              Cat("agent ", agent_id_, ": chunk of bundle ", id, " that was not requested here"));
    SendBundleAck(c.request_id(), 0, false, a);
    return MaybeRead(a);
  }
  BundleEntry& e = it->second;
  if (e.finishing) return MaybeRead(a);
  if (e.sha256 != c.sha256()) {
    if (c.offset() != 0) {
      // Bytes of another file: ask for this one from the start.
      if (e.last_resync != 0) {
        e.last_resync = 0;
        SendBundleRequest(id, 0, a);
      }
      return MaybeRead(a);
    }
    // A new file from offset 0 replaces what was held.
    e.sha256 = c.sha256();
    e.announced = false;
    files_->Reset(id);
  }
  e.size = c.total_size();
  if (!e.announced) {
    e.announced = true;
    Clock& clock = clock_;
    queue_.Submit(
        [id, size = c.total_size(), sha = c.sha256(), held = c.offset(), &clock](sql::Db& db) {
          return MarkBundleTransferring(db, id, size, sha, held, clock.NowMs());
        },
        nullptr);
  }
  if (c.last()) e.manifest = c.manifest();
  bundle_bytes_in_flight_ += len;
  counters_.bundle_bytes_received += len;
  files_->Append(
      id, c.offset(), std::move(*c.mutable_data()), c.total_size(), c.sha256(),
      [shared = shared_, id, len](const BundleFiles::AppendResult& r) {
        WithSession(shared, [&](LinkSession& s, Actions& act) { s.OnAppended(id, len, r, act); });
      });
  MaybeRead(a);
}

void LinkSession::OnAppended(const std::string& id, uint64_t len,
                             const BundleFiles::AppendResult& r, Actions& a) {
  bundle_bytes_in_flight_ -= len;
  auto it = bundles_.find(id);
  if (!r.status.ok()) {
    log::Error("link", Cat("agent ", agent_id_, ": bundle ", id, ": ", r.status.ToString()));
    return RequestFinish(
        grpc::Status(grpc::StatusCode::UNAVAILABLE, "collector storage failed; will retry"), a);
  }
  if (it == bundles_.end()) return MaybeRead(a);
  BundleEntry& e = it->second;
  if (r.gap) {
    if (e.last_resync != r.held) {
      e.last_resync = r.held;
      SendBundleRequest(id, r.held, a);
    }
  } else if (r.mismatch && !e.finishing) {
    e.finishing = true;
    Clock& clock = clock_;
    auto failed = std::make_shared<bool>(false);
    queue_.Submit(
        [id, failed, &clock](sql::Db& db) -> absl::Status {
          ASSIGN_OR_RETURN(auto f, RecordBundleMismatch(db, id, clock.NowMs()));
          *failed = f;
          return absl::OkStatus();
        },
        [shared = shared_, id, failed](absl::Status st) {
          WithSession(shared, [&](LinkSession& s, Actions& act) {
            auto entry = s.bundles_.find(id);
            if (entry == s.bundles_.end()) return;
            if (st.ok() && *failed) {
              const std::string wire_id = entry->second.wire_id;
              s.bundles_.erase(entry);
              return s.SendBundleAck(wire_id, 0, false, act);
            }
            entry->second.finishing = false;
            entry->second.sha256.clear();
            entry->second.last_resync = 0;
            s.SendBundleRequest(id, 0, act);
          });
        });
  } else if (r.finished && !e.finishing) {
    e.finishing = true;
    Clock& clock = clock_;
    IngestCounters& counters = counters_;
    queue_.Submit(
        [id, size = e.size, sha = e.sha256, manifest = e.manifest, &clock](sql::Db& db) {
          auto m = nlohmann::json::parse(manifest, nullptr, false);
          return MarkBundleComplete(db, id, size, sha, m.is_discarded() ? "" : manifest,
                                    clock.NowMs());
        },
        [shared = shared_, id, wire_id = e.wire_id, size = e.size, &counters](absl::Status st) {
          WithSession(shared, [&](LinkSession& s, Actions& act) {
            if (!st.ok()) {
              // The file is in place; the agent keeps its copy and offers
              // it again at its next connect, which completes the row.
              log::Error("link", Cat("agent ", s.agent_id_, ": bundle ", id,
                                     " stored but not recorded: ", st.ToString()));
              if (auto entry = s.bundles_.find(id); entry != s.bundles_.end())
                entry->second.finishing = false;
              return;
            }
            counters.bundles_completed++;
            log::Info("link", Cat("agent ", s.agent_id_, ": bundle ", id, " complete, ", size,
                                  " bytes, checksum verified"));
            s.bundles_.erase(id);
            s.SendBundleAck(wire_id, size, true, act);
          });
        });
  }
  MaybeRead(a);
}

void LinkSession::HandleBundleFailed(Actions& a) {
  if (!CheckBundlePreconditions(a)) return;
  const v1::BundleFailed& f = in_.bundle_failed();
  const std::string id = BundleIdForOffer(store_id_, f.request_id());
  auto it = bundles_.find(id);
  if (it == bundles_.end()) return MaybeRead(a);
  bundles_.erase(it);
  std::string error = f.error().substr(0, 1000);
  log::Warn("link", Cat("agent ", agent_id_, ": bundle ", id, " failed: ", error));
  Clock& clock = clock_;
  queue_.Submit(
      [id, error, &clock](sql::Db& db) {
        return MarkBundleFailed(db, id, Cat("the agent: ", error), clock.NowMs());
      },
      nullptr);
  MaybeRead(a);
}

}  // namespace setdiag::collector::link_internal
