#include "tools/store_sim/goods_board.h"

#include "common/strings.h"

namespace setdiag::store_sim {

std::string_view PackageStatusName(int statusid) {
  switch (statusid) {
    case kPkgUnknown:
      return "unknown";
    case kPkgNoSuchPackage:
      return "no such package";
    case kPkgXmlError:
      return "XML error";
    case kPkgInProcess:
      return "in process";
    case kPkgCorrect:
      return "correct";
    case kPkgInvalidItem:
      return "invalid item";
    case kPkgInternalError:
      return "internal error";
    default:
      return "";
  }
}

std::string_view ServerModeName(ServerMode m) {
  switch (m) {
    case ServerMode::kProcessing:
      return "processing";
    case ServerMode::kStalled:
      return "stalled";
    case ServerMode::kFailing:
      return "failing";
  }
  return "?";
}

namespace {
std::string Every(int64_t ms) { return ms % 1000 == 0 ? Cat(ms / 1000, "s") : Cat(ms, "ms"); }

std::string Describe(const ServerState& s) {
  if (s.mode != ServerMode::kFailing) return std::string(ServerModeName(s.mode));
  return Cat("failing with status ", s.fail_status, " (", PackageStatusName(s.fail_status), ") '",
             s.fail_message, "'");
}
}  // namespace

GoodsBoard::GoodsBoard(int tills, int64_t erp_every_ms, std::string erp_type) {
  erp_.sending = erp_every_ms > 0;
  erp_.every_ms = erp_every_ms;
  erp_.type = std::move(erp_type);
  tills_.resize(static_cast<size_t>(tills));
}

ErpState GoodsBoard::erp() const {
  MutexLock lock(&mu_);
  return erp_;
}

ServerState GoodsBoard::server() const {
  MutexLock lock(&mu_);
  return server_;
}

std::vector<TillLoad> GoodsBoard::tills() const {
  MutexLock lock(&mu_);
  return tills_;
}

uint64_t GoodsBoard::erp_generation() const {
  MutexLock lock(&mu_);
  return erp_generation_;
}

std::string GoodsBoard::StartErp(std::optional<int64_t> every_ms) {
  MutexLock lock(&mu_);
  bool was_sending = erp_.sending;
  int64_t was_every = erp_.every_ms;
  if (every_ms) erp_.every_ms = *every_ms;
  if (was_sending && was_every == erp_.every_ms) return "";
  erp_.sending = true;
  ++erp_generation_;
  return Cat(
      "-> sending ", erp_.type, " every ", Every(erp_.every_ms),
      was_sending ? Cat(" (was every ", Every(was_every), ")") : std::string(" (was stopped)"));
}

std::string GoodsBoard::StopErp() {
  MutexLock lock(&mu_);
  if (!erp_.sending) return "";
  erp_.sending = false;
  return Cat("-> stopped (was sending every ", Every(erp_.every_ms), ")");
}

std::string GoodsBoard::Stall() {
  MutexLock lock(&mu_);
  if (server_.mode == ServerMode::kStalled) return "";
  std::string was = Describe(server_);
  server_.mode = ServerMode::kStalled;
  return Cat("-> stalled: packages stay in process, inbox files stay, no product files (was ", was,
             ")");
}

std::string GoodsBoard::Resume() {
  MutexLock lock(&mu_);
  if (server_.mode == ServerMode::kProcessing) return "";
  std::string was = Describe(server_);
  server_.mode = ServerMode::kProcessing;
  return Cat("-> processing (was ", was, ")");
}

std::string GoodsBoard::Fail(int status, const std::string& message) {
  MutexLock lock(&mu_);
  ServerState next = server_;
  next.mode = ServerMode::kFailing;
  next.fail_status = status;
  next.fail_message = message;
  if (server_.mode == ServerMode::kFailing && server_.fail_status == status &&
      server_.fail_message == message) {
    return "";
  }
  std::string was = Describe(server_);
  server_ = next;
  return Cat("-> ", Describe(server_), " (was ", was, ")");
}

std::vector<int> GoodsBoard::SetTransportStalled(const std::vector<int>& numbers, bool stalled) {
  MutexLock lock(&mu_);
  std::vector<int> changed;
  for (int n : numbers) {
    TillLoad& t = tills_.at(static_cast<size_t>(n - 1));
    if (t.transport_stalled == stalled) continue;
    t.transport_stalled = stalled;
    changed.push_back(n);
  }
  return changed;
}

void GoodsBoard::NoteSent(const std::string& ti) {
  MutexLock lock(&mu_);
  erp_.last_ti = ti;
  ++erp_.sent;
}

void GoodsBoard::SetInProcess(int64_t n) {
  MutexLock lock(&mu_);
  server_.in_process = n;
}

void GoodsBoard::NoteProcessed() {
  MutexLock lock(&mu_);
  ++server_.processed;
}

void GoodsBoard::SetNotLoaded(int number, int64_t count) {
  MutexLock lock(&mu_);
  tills_.at(static_cast<size_t>(number - 1)).notloaded = count;
}

void GoodsBoard::NoteLoaded(const std::vector<int>& numbers, int64_t now_ms) {
  MutexLock lock(&mu_);
  for (int n : numbers) {
    TillLoad& t = tills_.at(static_cast<size_t>(n - 1));
    t.notloaded = 0;
    t.last_load_ms = now_ms;
  }
}

void GoodsBoard::SetLastLoad(int number, std::optional<int64_t> ms) {
  MutexLock lock(&mu_);
  tills_.at(static_cast<size_t>(number - 1)).last_load_ms = ms;
}

}  // namespace setdiag::store_sim
