#include "agent/bundle/step.h"

namespace setdiag::agent::bundle {

StepContext::StepContext(std::string name, std::string scratch_dir, int64_t now_ms,
                         int64_t window_ms, std::shared_ptr<internal::StepShared> shared)
    : name_(std::move(name)),
      scratch_dir_(std::move(scratch_dir)),
      now_ms_(now_ms),
      window_ms_(window_ms),
      shared_(std::move(shared)),
      last_add_(std::chrono::steady_clock::now()) {}

bool StepContext::AddFile(CollectedFile file) {
  auto now = std::chrono::steady_clock::now();
  if (file.collected_in_ms == 0) {
    file.collected_in_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(now - last_add_).count();
  }
  last_add_ = now;
  MutexLock lock(&shared_->mu);
  if (shared_->abandoned) return false;
  shared_->files.push_back(std::move(file));
  return true;
}

bool StepContext::AddText(std::string path, std::string_view text, std::string source,
                          std::string method) {
  CollectedFile f;
  f.path = std::move(path);
  f.content = RedactText(text, &f.redactions);
  f.source = std::move(source);
  f.method = std::move(method);
  return AddFile(std::move(f));
}

bool StepContext::AddJson(std::string path, const nlohmann::json& value, std::string source,
                          std::string method) {
  CollectedFile f;
  f.path = std::move(path);
  nlohmann::json copy = value;
  RedactJson(&copy, &f.redactions);
  // Invalid UTF-8 (a log line in CP1251 in a package message) must not throw.
  f.content = copy.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  f.source = std::move(source);
  f.method = std::move(method);
  return AddFile(std::move(f));
}

void StepContext::Skip(std::string source, std::string_view reason) {
  MutexLock lock(&shared_->mu);
  if (shared_->abandoned) return;
  shared_->skipped.push_back({std::move(source), RedactText(reason, nullptr)});
}

void StepContext::Note(std::string_view text) {
  MutexLock lock(&shared_->mu);
  if (shared_->abandoned) return;
  shared_->notes.push_back(RedactText(text, nullptr));
}

void RedactJson(nlohmann::json* value, RedactionCounts* counts) {
  if (value->is_string()) {
    const std::string& s = value->get_ref<const std::string&>();
    RedactionCounts local;
    std::string out = RedactText(s, &local);
    if (!local.empty()) {
      AddCounts(counts, local);
      *value = out;
    }
  } else if (value->is_object()) {
    for (auto it = value->begin(); it != value->end(); ++it) {
      if (it->is_string() && IsSecretKeyName(it.key()) &&
          !it->get_ref<const std::string&>().empty() &&
          it->get_ref<const std::string&>() != kRedacted) {
        *it = std::string(kRedacted);
        ++(*counts)["key_value"];
      } else {
        RedactJson(&*it, counts);
      }
    }
  } else if (value->is_array()) {
    for (auto& v : *value) RedactJson(&v, counts);
  }
}

}  // namespace setdiag::agent::bundle
