// `setdiag-agent maintenance`: an engineer on site opens a window ("we are
// replacing the switch") in which no till or loading condition is raised;
// list and cancel show and end them (agent/store/maintenance.h).

#include "agent/store/maintenance.h"

#include <iostream>
#include <nlohmann/json.hpp>

#include "agent/commands/commands.h"
#include "common/clock.h"

namespace setdiag::agent {

int MaintenanceCommand(const AgentConfig& cfg, const MaintenanceArgs& args) {
  const std::string& action = args.action;
  const bool as_json = args.json;
  if (auto st = EnsureDir(cfg.state_dir); !st.ok()) {
    std::cerr << st.message() << "\n";
    return 1;
  }
  auto store = MaintenanceStore::Open(cfg.StatePath());
  if (!store.ok()) {
    std::cerr << "setdiag-agent maintenance: " << store.status().message() << "\n";
    return 1;
  }
  SystemClock clock;
  auto print = [&](const std::vector<MaintenanceWindow>& windows) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& w : windows) {
      out.push_back({{"id", w.id},
                     {"start_ms", w.start_ms},
                     {"end_ms", w.EffectiveEndMs()},
                     {"reason", w.reason},
                     {"opened_by", w.opened_by},
                     {"active", w.ActiveAt(clock.NowMs())}});
    }
    if (as_json) {
      std::cout << out.dump(2) << "\n";
      return;
    }
    if (windows.empty()) std::cout << "no maintenance windows\n";
    for (const auto& w : out) {
      std::cout << "#" << w["id"] << (w["active"].get<bool>() ? " ACTIVE " : " planned ")
                << "until " << FormatLocal(w["end_ms"].get<int64_t>()) << " by "
                << w["opened_by"].get<std::string>() << ": " << w["reason"].get<std::string>()
                << "\n";
    }
  };
  if (action == "list") {
    auto list = store->List(clock.NowMs());
    if (!list.ok()) {
      std::cerr << "setdiag-agent maintenance list: " << list.status().message() << "\n";
      return 1;
    }
    print(*list);
    return 0;
  }
  if (action == "cancel") {
    auto w = store->Cancel(args.id, clock.NowMs());
    if (!w.ok()) {
      std::cerr << "setdiag-agent maintenance cancel: " << w.status().message() << "\n";
      return 1;
    }
    std::cout << "maintenance #" << args.id
              << " cancelled; tills are expected again per the calendar\n";
    return 0;
  }
  int64_t ms = ParseDurationArg(args.duration);
  if (ms <= 0) {
    std::cerr << "setdiag-agent maintenance: --for needs a duration such as 30m or 2h\n";
    return kExitConfig;
  }
  auto w = store->Add(clock.NowMs(), ms, args.reason, args.by);
  if (!w.ok()) {
    std::cerr << "setdiag-agent maintenance: " << w.status().message() << "\n";
    return w.status().code() == absl::StatusCode::kInvalidArgument ? kExitConfig : 1;
  }
  std::cout << "maintenance #" << w->id << " open until " << FormatLocal(w->EffectiveEndMs())
            << ": no till or loading condition is raised meanwhile\n";
  return 0;
}

}  // namespace setdiag::agent
