#include "collector/console/sessions.h"

#include <algorithm>

#include "common/files.h"

namespace setdiag::collector::console {

Sessions::Opened Sessions::Open(const std::string& user_id, const std::string& lang) {
  Opened out;
  out.id = RandomHex(32);
  out.session.user_id = user_id;
  out.session.csrf = RandomHex(32);
  out.session.lang = lang;
  out.session.expires_ms = clock_.NowMs() + lifetime_ms_;
  MutexLock lock(&mu_);
  if (by_hash_.size() >= kMaxSessions) {
    auto first = std::min_element(
        by_hash_.begin(), by_hash_.end(),
        [](const auto& a, const auto& b) { return a.second.expires_ms < b.second.expires_ms; });
    by_hash_.erase(first);
  }
  by_hash_[Sha256Hex(out.id)] = out.session;
  return out;
}

std::optional<Session> Sessions::Find(std::string_view id) {
  if (id.empty()) return std::nullopt;
  const std::string key = Sha256Hex(id);
  MutexLock lock(&mu_);
  auto it = by_hash_.find(key);
  if (it == by_hash_.end()) return std::nullopt;
  if (it->second.expires_ms <= clock_.NowMs()) {
    by_hash_.erase(it);
    return std::nullopt;
  }
  return it->second;
}

void Sessions::Close(std::string_view id) {
  const std::string key = Sha256Hex(id);
  MutexLock lock(&mu_);
  by_hash_.erase(key);
}

void Sessions::SetLang(std::string_view id, const std::string& lang) {
  const std::string key = Sha256Hex(id);
  MutexLock lock(&mu_);
  if (auto it = by_hash_.find(key); it != by_hash_.end()) it->second.lang = lang;
}

size_t Sessions::size() {
  MutexLock lock(&mu_);
  return by_hash_.size();
}

}  // namespace setdiag::collector::console
