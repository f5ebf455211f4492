#include "tools/store_sim/control_client.h"

#include <cctype>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/http_client.h"
#include "common/strings.h"
#include "common/url.h"
#include "tools/store_sim/till_set.h"
#include "tools/store_sim/tills.h"

namespace setdiag::store_sim {

namespace {

int BadCtl(const std::string& message) {
  std::cerr << "setdiag-store-sim ctl: " << message << "\n";
  return 2;
}

constexpr const char* kUsage =
    "use status; start, stop, mothball or unplug TILLS; erp start [EVERY]; erp stop; server stall; "
    "server resume; server fail [STATUS [MESSAGE]]; soap stop; soap start; transport stall TILLS; "
    "transport resume TILLS";

}  // namespace

int RunCtl(const HostPort& control, const std::vector<std::string>& words) {
  if (words.empty()) return BadCtl(kUsage);
  const std::string& cmd = words[0];
  const std::string sub = words.size() > 1 ? words[1] : "";
  auto arity = [&](size_t min, size_t max) { return words.size() >= min && words.size() <= max; };
  // A till selection: syntax only here; the simulator knows how many tills it has.
  auto selection = [&](const std::string& tills, std::string* error) {
    if (tills.empty()) {
      *error = Cat(cmd, " needs a till selection, e.g. 1-11, 1,3,5 or all");
      return false;
    }
    if (auto parsed = ParseTillSet(tills, 1'000'000); !parsed.ok()) {
      *error = std::string(SV(parsed.status().message()));
      return false;
    }
    return true;
  };
  std::string method = "POST", target, error;
  if (cmd == "status") {
    if (words.size() != 1) return BadCtl("status takes no arguments");
    method = "GET";
    target = "/status";
  } else if (ParseTillAction(cmd)) {
    if (words.size() > 2) return BadCtl(Cat(cmd, " takes one till selection"));
    if (!selection(sub, &error)) return BadCtl(error);
    target = Cat("/tills/", cmd, "?tills=", UrlEncode(sub));
  } else if (cmd == "erp" && sub == "start" && arity(2, 3)) {
    target = words.size() == 3 ? Cat("/erp/start?every=", UrlEncode(words[2]))
                               : std::string("/erp/start");
  } else if (cmd == "erp" && sub == "stop" && arity(2, 2)) {
    target = "/erp/stop";
  } else if (cmd == "server" && (sub == "stall" || sub == "resume") && arity(2, 2)) {
    target = Cat("/server/", sub);
  } else if (cmd == "server" && sub == "fail" && arity(2, 4)) {
    target = "/server/fail";
    if (words.size() >= 3) Append(&target, "?status=", UrlEncode(words[2]));
    if (words.size() == 4) Append(&target, "&message=", UrlEncode(words[3]));
  } else if (cmd == "soap" && (sub == "stop" || sub == "start") && arity(2, 2)) {
    target = Cat("/soap/", sub);
  } else if (cmd == "transport" && (sub == "stall" || sub == "resume") && arity(2, 3)) {
    if (!selection(words.size() == 3 ? words[2] : "", &error)) return BadCtl(error);
    target = Cat("/transport/", sub, "?tills=", UrlEncode(words[2]));
  } else {
    std::string all;
    for (const auto& w : words) Append(&all, all.empty() ? "" : " ", w);
    return BadCtl(Cat("unknown command '", all, "' (", kUsage, ")"));
  }
  HttpClient client(control.host, control.port,
                    {.timeout = std::chrono::seconds(10),
                     .user_agent = "setdiag-store-sim",
                     .resolve = SystemResolver()});
  auto reply = client.Request(method, target);
  if (!reply.ok()) {
    std::cerr << "setdiag-store-sim ctl: the simulator is unreachable: " << reply.status().message()
              << "\n";
    return 1;
  }
  auto body = nlohmann::json::parse(reply->body, nullptr, false);
  if (reply->status != 200) {
    std::string msg = body.is_object() && body.contains("error") && body["error"].is_string()
                          ? body["error"].get<std::string>()
                          : reply->body;
    std::cerr << "setdiag-store-sim ctl: the simulator answered " << reply->status << ": " << msg
              << "\n";
    return reply->status == 400 ? 2 : 1;
  }
  std::cout << (body.is_discarded() ? reply->body : body.dump(2)) << "\n";
  return 0;
}

}  // namespace setdiag::store_sim
