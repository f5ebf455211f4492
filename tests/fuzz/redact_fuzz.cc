// Fuzz target: the redactor (agent/core/redact.h) with an oracle. Each
// input plants one known secret in fuzzer text, at a fuzzer-chosen offset,
// and runs it through one of the redactor's entry points: RedactText
// (configs, command lines), StreamRedactor (files: chunks of a
// fuzzer-chosen size, with a small or the default max_line, so that the
// window splitting of long lines is reached) or RedactJsonStrings (event
// payloads). The secret must not survive.
//
// Input: byte 0 picks the secret and the entry point, bytes 1-2 the
// offset, byte 3 the chunk size; the rest is the text.
//
// Secrets, each in a form docs/bundles.md says is always removed:
//   on a line of its own: password=<v> (key_value), a Luhn-valid card
//   number with spaces (card_number), postgres://user:<v>@host
//   (uri_credentials), Authorization: Bearer <token> (http_auth),
//   ALTER ROLE ... PASSWORD '<v>' (sql_password);
//   in the middle of a line, between blanks: password=<v>.
// Oracles: the secret's value occurs in the output no more often than the
// fuzzer text alone already carried it; RedactText is idempotent (its
// output comes back unchanged); StreamRedactor with the default max_line
// gives what RedactText gives (the inputs are shorter than one window).

#include <nlohmann/json.hpp>
#include <string>

#include "agent/core/redact.h"
#include "fuzz_util.h"

namespace {

namespace bundle = setdiag::agent::bundle;
using setdiag::fuzz::CountOf;
using setdiag::fuzz::Fail;

struct Secret {
  std::string_view planted;  // what is inserted
  std::string_view value;    // what must not come out
  bool own_line;             // inserted as "\n<planted>\n"; else " <planted> "
};

constexpr Secret kSecrets[] = {
    {"password=Kassa2024secret", "Kassa2024secret", true},
    {"4111 1111 1111 1111", "4111 1111 1111", true},
    {"postgres://set:Kassa2024secret@10.0.0.5:5432/set", "Kassa2024secret", true},
    {"Authorization: Bearer sdst_Zk3v9QmW2xP7rT1yLb8N", "Zk3v9QmW2xP7rT1yLb8N", true},
    {"ALTER ROLE cashier PASSWORD 'Kassa2024secret';", "Kassa2024secret", true},
    {"password=Kassa2024secret", "Kassa2024secret", false},
};
constexpr size_t kSecretCount = sizeof kSecrets / sizeof kSecrets[0];

std::string Stream(std::string_view text, size_t max_line, size_t chunk) {
  std::string out;
  bundle::StreamRedactor r(
      [&out](std::string_view piece) {
        out.append(piece);
        return absl::OkStatus();
      },
      max_line);
  for (size_t pos = 0; pos < text.size(); pos += chunk) {
    if (!r.Feed(text.substr(pos, chunk)).ok()) Fail("StreamRedactor::Feed failed");
  }
  if (!r.Finish().ok()) Fail("StreamRedactor::Finish failed");
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 4) return 0;
  const std::string_view all = setdiag::fuzz::AsText(data, size);
  const std::string_view text = all.substr(4);
  const Secret& secret = kSecrets[data[0] % kSecretCount];
  const int mode = static_cast<int>((data[0] / kSecretCount) %
                                    4);  // RedactText, stream small, stream default, JSON
  const size_t offset =
      text.empty() ? 0 : ((size_t{data[1]} << 8) | size_t{data[2]}) % (text.size() + 1);
  const size_t chunk = size_t{data[3]} + 1;

  std::string input(text.substr(0, offset));
  input += secret.own_line ? "\n" : " ";
  input += secret.planted;
  input += secret.own_line ? "\n" : " ";
  input += text.substr(offset);
  const size_t allowed = CountOf(text, secret.value);

  std::string out;
  switch (mode) {
    case 0: {
      out = bundle::RedactText(input, nullptr);
      if (bundle::RedactText(out, nullptr) != out) Fail("RedactText is not idempotent", input);
      if (Stream(input, bundle::StreamRedactor::kDefaultMaxLine, chunk) != out)
        Fail("StreamRedactor and RedactText disagree on text shorter than a window", input);
      break;
    }
    case 1:
      // The smallest window (4096, holding back a quarter): lines over it
      // are split, with inputs of scripts/fuzz's -max_len.
      out = Stream(input, 4096, chunk);
      break;
    case 2:
      out = Stream(input, bundle::StreamRedactor::kDefaultMaxLine, chunk);
      break;
    default: {
      nlohmann::json j = {{"message", input}, {"items", {input}}};
      bundle::RedactJsonStrings(&j, nullptr);
      out = j["message"].get<std::string>() + "\n" + j["items"][0].get<std::string>();
      if (CountOf(out, secret.value) > 2 * allowed)
        Fail("a planted secret survived RedactJsonStrings", input);
      return 0;
    }
  }
  if (CountOf(out, secret.value) > allowed) {
    Fail(mode == 0 ? "a planted secret survived RedactText"
                   : "a planted secret survived StreamRedactor",
         input);
  }
  return 0;
}
