#include "tools/store_sim/control_client.h"

#include <cctype>
#include <iostream>

#include <nlohmann/json.hpp>

#include "common/strings.h"
#include "tools/store_sim/http_client.h"
#include "tools/store_sim/till_set.h"
#include "tools/store_sim/tills.h"

namespace setdiag::store_sim {

namespace {

std::string UrlEncode(std::string_view s) {
  static const char* kHex = "0123456789ABCDEF";
  std::string out;
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == ',') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace

int RunCtl(const HostPort& control, const std::string& action, const std::string& tills) {
  std::string method, target;
  if (action == "status") {
    if (!tills.empty()) {
      std::cerr << "setdiag-store-sim ctl: status takes no till selection\n";
      return 2;
    }
    method = "GET";
    target = "/status";
  } else if (ParseTillAction(action)) {
    if (tills.empty()) {
      std::cerr << "setdiag-store-sim ctl: " << action << " needs a till selection, e.g. 1-11, 1,3,5 or all\n";
      return 2;
    }
    // Syntax only here; the simulator knows how many tills it has.
    if (auto parsed = ParseTillSet(tills, 1'000'000); !parsed.ok()) {
      std::cerr << "setdiag-store-sim ctl: " << parsed.status().message() << "\n";
      return 2;
    }
    method = "POST";
    target = Cat("/tills/", action, "?tills=", UrlEncode(tills));
  } else {
    std::cerr << "setdiag-store-sim ctl: unknown command '" << action
              << "' (use start, stop, mothball, unplug or status)\n";
    return 2;
  }
  HttpClient client(control.host, control.port, std::chrono::seconds(10));
  auto reply = client.Request(method, target);
  if (!reply.ok()) {
    std::cerr << "setdiag-store-sim ctl: the simulator is unreachable: " << reply.status().message() << "\n";
    return 1;
  }
  auto body = nlohmann::json::parse(reply->body, nullptr, false);
  if (reply->status != 200) {
    std::string msg = body.is_object() && body.contains("error") && body["error"].is_string()
                          ? body["error"].get<std::string>()
                          : reply->body;
    std::cerr << "setdiag-store-sim ctl: the simulator answered " << reply->status << ": " << msg << "\n";
    return reply->status == 400 ? 2 : 1;
  }
  std::cout << (body.is_discarded() ? reply->body : body.dump(2)) << "\n";
  return 0;
}

}  // namespace setdiag::store_sim
