#include "tools/store_sim/tills.h"

namespace setdiag::store_sim {

std::string_view TillStateName(TillState s) {
  switch (s) {
    case TillState::kRunning:
      return "running";
    case TillState::kStopped:
      return "stopped";
    case TillState::kMothballed:
      return "mothballed";
    case TillState::kUnplugged:
      return "unplugged";
  }
  return "?";
}

std::string_view TillActionName(TillAction a) {
  switch (a) {
    case TillAction::kStart:
      return "start";
    case TillAction::kStop:
      return "stop";
    case TillAction::kMothball:
      return "mothball";
    case TillAction::kUnplug:
      return "unplug";
  }
  return "?";
}

std::optional<TillAction> ParseTillAction(std::string_view name) {
  if (name == "start") return TillAction::kStart;
  if (name == "stop") return TillAction::kStop;
  if (name == "mothball") return TillAction::kMothball;
  if (name == "unplug") return TillAction::kUnplug;
  return std::nullopt;
}

TillState Till::state() const {
  if (!plugged) return TillState::kUnplugged;
  if (status == kStatusClosedDown) return TillState::kMothballed;
  return software_running ? TillState::kRunning : TillState::kStopped;
}

namespace {

// Plausible registry values: SET 10 builds and the POS models stores use.
// Every fifth till is a self-checkout.
std::string FirmwareFor(int n) { return n % 5 == 0 ? "10.3.6.2" : "10.3.6.1"; }
std::string HardwareFor(int n) {
  if (n % 5 == 0) return "SCO Crystal Self-Checkout / ATOL 30F";
  return n % 2 ? "POS Aura Pro 15 / Shtrih-M-01F" : "POS Posiflex XT-3815 / ATOL 55F";
}
std::string CashierFor(int n) {
  static const char* kNames[] = {"Иванова Ольга",   "Петров Сергей",  "Смирнова Анна",
                                 "Кузнецова Мария", "Попов Дмитрий",  "Васильева Елена",
                                 "Соколова Ирина",  "Михайлов Андрей"};
  return kNames[static_cast<size_t>(n - 1) % (sizeof kNames / sizeof kNames[0])];
}

}  // namespace

TillBoard::TillBoard(int count, const std::vector<int>& mothballed,
                     const std::function<std::string(int)>& ip_of)
    : count_(count) {
  tills_.resize(static_cast<size_t>(count));
  for (int n = 1; n <= count; ++n) {
    Till& t = tills_[static_cast<size_t>(n - 1)];
    t.number = n;
    t.cash_ip = ip_of(n);
    t.fwversion = FirmwareFor(n);
    t.hardwarename = HardwareFor(n);
    t.cashier = CashierFor(n);
  }
  for (int n : mothballed) {
    Till& t = tills_[static_cast<size_t>(n - 1)];
    t.status = kStatusClosedDown;
    t.software_running = false;
  }
}

ApplyResult TillBoard::Apply(TillAction action, const std::vector<int>& numbers) {
  MutexLock lock(&mu_);
  ApplyResult result;
  bool roster_changed = false;
  for (int n : numbers) {
    Till& t = tills_.at(static_cast<size_t>(n - 1));
    Till before = t;
    switch (action) {
      case TillAction::kStart:
        t.status = kStatusActive;
        t.plugged = true;
        t.software_running = true;
        break;
      case TillAction::kStop:
        t.software_running = false;
        break;
      case TillAction::kMothball:
        t.status = kStatusClosedDown;
        t.software_running = false;
        break;
      case TillAction::kUnplug:
        t.plugged = false;
        t.software_running = false;
        break;
    }
    bool changed = before.status != t.status || before.plugged != t.plugged ||
                   before.software_running != t.software_running;
    (changed ? result.changed : result.unchanged).push_back(n);
    roster_changed |= before.status != t.status;
  }
  if (roster_changed) ++roster_version_;
  return result;
}

std::vector<Till> TillBoard::Snapshot() const {
  MutexLock lock(&mu_);
  return tills_;
}

uint64_t TillBoard::roster_version() const {
  MutexLock lock(&mu_);
  return roster_version_;
}

void TillBoard::MarkActivity(const std::vector<int>& numbers, int64_t now_ms) {
  MutexLock lock(&mu_);
  for (int n : numbers) tills_.at(static_cast<size_t>(n - 1)).last_activity_ms = now_ms;
}

}  // namespace setdiag::store_sim
