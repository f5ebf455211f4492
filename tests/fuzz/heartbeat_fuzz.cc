// Fuzz target: heartbeats pushed by tills (agent/sources/push_receiver.h). The UDP
// receiver hands each datagram, and the HTTP receiver each POST body, to
// the one pure parser ParseHeartbeat (the sockets around it only count and
// cap sizes; the HTTP request handling is fuzzed by http_server_fuzz.cc).
// The input is one datagram / body.
//
// Oracles beyond the sanitizers, from the documented format
// (docs/till-watch.md): an accepted heartbeat is at most 512 bytes, is a
// JSON object whose "store" is the receiver's store (string, or integer
// written the same), and whose "till" is an integer in 1..99999, returned
// as the till number; a heartbeat for another store is FailedPrecondition,
// anything else malformed InvalidArgument.

#include <nlohmann/json.hpp>
#include <string>

#include "agent/sources/push_receiver.h"
#include "fuzz_util.h"

using setdiag::fuzz::Fail;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body = setdiag::fuzz::AsText(data, size);
  for (const char* store_name : {"1042", "store-1"}) {
    const std::string store = store_name;
    auto till = setdiag::agent::ParseHeartbeat(body, store);
    if (!till.ok()) {
      const auto code = till.status().code();
      if (code != absl::StatusCode::kInvalidArgument &&
          code != absl::StatusCode::kFailedPrecondition)
        Fail("ParseHeartbeat failed with an undocumented code", till.status().ToString());
      continue;
    }
    if (body.size() > setdiag::agent::kMaxHeartbeatBytes)
      Fail("accepted a heartbeat over 512 bytes", body);
    if (*till < 1 || *till > 99'999) Fail("accepted a till number out of 1..99999", body);
    // The same judgement, made independently from the parsed document.
    auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object())
      Fail("accepted something that is not a JSON object", body);
    const auto& s = j["store"];
    const std::string s_text = s.is_string()           ? s.get<std::string>()
                               : s.is_number_integer() ? std::to_string(s.get<int64_t>())
                                                       : std::string("\x01not a store");
    if (s_text != store) Fail("accepted a heartbeat for another store", body);
    if (!j["till"].is_number_integer() || j["till"].get<int64_t>() != *till)
      Fail("the till number is not the document's \"till\"", body);
  }
  return 0;
}
